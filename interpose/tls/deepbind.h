// Objects loaded with RTLD_DEEPBIND (PHP loads every extension so): their references resolve in
// their own dependency tree first, so libcurl inside PHP's curl.so binds socket, connect, send,
// SSL_read... straight to libc and libssl, past the preloaded wrappers that every other object
// reaches. After such a dlopen() (hooks/dl.cpp) the new objects' GOT entries for the names
// libhttptrace.so exports are pointed at our wrappers, exactly as a normal load would have bound
// them, and the objects are registered as deepbind (tls/caller_scope.h) so the TLS wrappers
// still call the function that object's own tree provides. Nothing else changes: a reference to
// any other name, or to one of our names that the object's tree defines somewhere other than
// where our wrapper would go (its own `connect`, say), keeps its binding.
//
// Objects loaded by another namespace (dlmopen) are not touched: our wrappers call the base
// namespace's libc, and mixing two C libraries' state (a getaddrinfo result freed by the other
// one's freeaddrinfo) would break the program.
#pragma once

#include <cstddef>
#include <cstdint>

namespace httptrace::tls {

// Objects ever added to the process (dl_phdr_info::dlpi_adds), and ever removed (dlpi_subs):
// compared before and after a dlopen/dlclose to tell whether it loaded or unloaded anything.
uint64_t objects_added();
uint64_t objects_removed();

// handle: what a successful dlopen(..., RTLD_DEEPBIND) returned, having added objects. Rebinds
// and registers the handle's object and every object loaded after it. Returns how many GOT
// entries were rewritten.
size_t rebind_deepbind(void* handle);

}  // namespace httptrace::tls
