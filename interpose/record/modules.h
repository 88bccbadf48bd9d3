// HTTPTRACE_STACKS=1: the loaded objects as ModuleEvents, so the analyzer can map a stack's
// return addresses to files and offsets (ASLR) long after the process is gone.
#pragma once

#include <cstdint>

namespace httptrace {

// Writes a ModuleEvent for every loaded object not yet written to this file, if any object was
// loaded since the last call (dl_iterate_phdr's load counter: one cheap call otherwise). ts is
// the time written into new events: the caller's stack time, or now at file creation. Called
// when the trace file is created and before every StackEvent, so the objects a stack's addresses
// lie in are in the file before it, however they were loaded (dlopen, dlmopen, glibc's own NSS
// loads). Nothing when stacks are off. The caller holds the ReentryGuard; no allocation: a fixed
// table remembers what was written. Inside a signal handler that interrupted the recorder
// (nesting depth > 1) it does nothing: the loader's lock may be held by the interrupted code.
void record_new_modules(uint64_t ts);

// A fork child starts a new file: everything is written again there. Single-threaded.
void reset_modules();

}  // namespace httptrace
