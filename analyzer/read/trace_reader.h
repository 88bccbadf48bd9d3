// Reads trace files and streams their events in the order they happened.
//
// Files are read with pread(), not mmap()ed: a mapping of a multi-GB trace faults page by page
// (slow under virtualisation) and counts toward the analyzer's resident size. Each thread's cursor
// reads only the committed bytes of its segments, in chunks that start small and double (a thread
// with one event costs a few hundred bytes, a busy one 64 KiB reads), and a cursor holds memory
// only from when the merge reaches its thread's first event to its last. Memory follows the threads
// that have events pending at once, never what a header claims (segment sizes, counts).
//
// Every byte of a trace is untrusted: the file may come from a crashed program, another machine or
// a fuzzer. Headers are validated when a file is opened; events are validated one by one as the
// stream reaches them, so damage costs a warning plus the rest of that segment, never a crash. An
// event kind this reader does not know is skipped by its size, with one warning per kind.
//
// Order (SPEC §5): each event has an order time, when it happened (order_time() below: a read at
// its completion, a write at its start, ...). Within one thread, events come in the order its
// segments were filled (thread_seq), repaired by a small reorder window for calls written after
// the calls they contain (the socket write inside SSL_write); across threads and files, a k-way
// merge by order time (CLOCK_MONOTONIC is system-wide, so a process tree shares one clock). The
// stream is sorted by order time for any well-formed trace; a trace with wild timestamps comes out
// in some order, never out of bounds.
//
// Threads: v2 files name each thread by a unique thread_uid (tids are reused), and a segment may be
// handed from an exited thread to a new one (a ThreadEvent starts the new thread's run). v1 files
// have neither: a thread is its tid.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/trace_format.h"

namespace httptrace::analyzer {

namespace tf = httptrace::format;

// One trace file: the process it recorded.
struct TraceFile {
  std::string path;
  uint64_t size = 0;
  uint32_t version = 0;   // the writer's format version (1 or 2)
  uint32_t features = 0;  // FileHeader::features (all known to this reader, or it was refused)
  int32_t pid = 0;
  int32_t ppid = 0;
  uint64_t mono_anchor_ns = 0;
  uint64_t real_anchor_ns = 0;
  uint64_t dropped_events = 0;
  std::array<uint64_t, tf::kDropCauses> dropped_by_cause{};  // by tf::DropCause; zeros in v1 files
  uint32_t flags = 0;
  uint32_t argc = 0;
  std::string exe;
  std::vector<std::string> argv;

  uint64_t to_unix_ns(uint64_t mono_ns) const { return real_anchor_ns + (mono_ns - mono_anchor_ns); }
};

// A loaded object of a traced process (ModuleEvent): where its code was, for mapping a stack's
// return addresses back to the file (analyzer/symbols/).
struct Module {
  std::string path;       // as recorded; the main program's is its file's exe
  uint64_t bias = 0;      // process address = file vaddr + bias
  uint64_t text_start = 0, text_end = 0;
  uint64_t ts_ns = 0;     // when the recorder found it loaded
  std::string build_id;   // raw bytes; empty when it had none
  uint8_t flags = 0;      // tf::kModule*
  bool contains(uint64_t pc) const { return pc >= text_start && pc < text_end; }
};

// The modules of one file that the stream has reached so far, in stream order. Append-only and
// bounded (kMax per file, a hostile trace cannot make it grow further): the reading thread adds,
// and any thread may read the first size() entries meanwhile (an exporter formats connections
// on its own thread), because entries never move once published.
class ModuleList {
 public:
  static constexpr size_t kMax = 4096;
  size_t size() const { return n_.load(std::memory_order_acquire); }
  const Module& operator[](size_t i) const { return (*chunks_[i / kChunk])[i % kChunk]; }
  // The reading thread only. False when the list is full.
  bool add(Module m);
  // Only while no other thread reads (a restarted stream).
  void clear() { n_.store(0, std::memory_order_release); }

 private:
  static constexpr size_t kChunk = 64;
  std::array<std::unique_ptr<std::array<Module, kChunk>>, kMax / kChunk> chunks_;
  std::atomic<size_t> n_{0};
};

// A validated event, pointing into a cursor's buffer: valid until the next call to next().
struct Event {
  const tf::EventHeader* h = nullptr;
  uint32_t file = 0;        // index into TraceSet::files()
  int32_t pid = 0;
  int32_t tid = 0;
  uint64_t thread_uid = 0;  // unique per thread within its file: as recorded (v2); v1: the tid, plus
                            // (k << 32) for the k-th later thread that had the same tid
  uint64_t order_ns = 0;    // when it happened (order_time(); a StackEvent: its predecessor's)
  uint64_t offset = 0;      // byte offset in the file, for messages

  tf::EventKind kind() const { return static_cast<tf::EventKind>(h->kind); }
  // The fixed part of the event as its struct; the reader checked size >= sizeof(T).
  template <class T> const T& as() const { return *reinterpret_cast<const T*>(h); }
  // Bytes after the fixed part of T (host name, capture, path, stack), bounds already checked.
  template <class T> const uint8_t* tail() const { return reinterpret_cast<const uint8_t*>(h) + sizeof(T); }
};

// Why a file could not be opened at all (exit status 1), as "PATH: reason".
struct OpenError {
  std::string message;
};

class TraceSet {
 public:
  TraceSet();
  ~TraceSet();
  TraceSet(const TraceSet&) = delete;
  TraceSet& operator=(const TraceSet&) = delete;

  // Adds a file, or every file named *.trace* inside a directory that starts with the magic.
  // Returns false and fills err when ARG cannot be used at all, or when a trace of ours inside the
  // directory cannot be read (a partial answer must not look like a whole one).
  bool add(const std::string& arg, OpenError& err);

  // Warnings (damaged or truncated data) are collected here; echo them to stderr as they happen
  // when echo is set.
  void set_echo_warnings(bool echo) { echo_warnings_ = echo; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  const std::vector<TraceFile>& files() const { return files_; }
  uint64_t total_bytes() const;

  // Starts (or restarts, for a second report) streaming. Call after every add().
  void start();
  // The next event in order; false at the end.
  bool next(Event& ev);
  // Every valid event once, thread by thread instead of in time order: for a pass that needs no
  // order (it skips the merge). Abandons a stream in progress; call start() before next() again.
  // Module lists are not updated.
  void scan(const std::function<void(const Event&)>& f);
  // Bytes of event data consumed so far (for a progress bar).
  uint64_t consumed_bytes() const { return consumed_; }

  // The loaded objects of file (ModuleEvents, HTTPTRACE_STACKS=1) the stream has handed out so
  // far; restarted by start(). Safe to read from another thread while next() runs.
  const ModuleList& modules(uint32_t file) const { return *modules_[file]; }

  // The earliest event start (ts_ns) of the traces (valid after start(); false if none).
  bool earliest(uint64_t& mono_ns, uint32_t& file) const;

  // Descriptors kept open at once (files beyond it are reopened when read); for tests.
  void set_max_open_files(uint32_t n) { max_open_ = n ? n : 1; }

  static constexpr uint32_t kWindow = 32;  // events a thread's reorder window holds

 private:
  struct Segment {
    uint64_t offset;  // of the segment header
    uint64_t thread_seq;
    uint64_t end;     // file offset just past the trusted events
  };
  struct Pending;
  struct Live;
  enum class State : uint8_t { kUnloaded, kLive, kDone };
  struct Cursor {
    uint64_t first_key;  // the key of its first window (found in start()), until loaded
    uint64_t uid;        // the chain's thread (as its segment headers say)
    uint32_t file;
    int32_t tid;
    uint32_t seg_begin, seg_end, seg;  // into segments_
    State state;
    std::unique_ptr<Live> live;
  };
  struct FileIo {
    int fd = -1;
    uint64_t dev = 0, ino = 0;
    uint64_t used = 0;   // tick of the last read, for closing the least recently used
    bool failed = false; // reopening failed or found another file: reads return nothing
  };
  // A heap entry carries its own key, so the merge compares contiguous 16-byte entries instead of
  // chasing into cursors. rank is the cursor's position in (file, thread) order: the tie-break.
  struct HeapEntry {
    uint64_t key;
    uint32_t rank;
    uint32_t cursor;
    bool operator<(const HeapEntry& o) const { return key != o.key ? key < o.key : rank < o.rank; }
  };

  bool open_file(const std::string& path, bool in_directory, OpenError& err);
  void index_segments(uint32_t file_index, int fd, const tf::FileHeader& h);
  int fd_for(uint32_t file);
  size_t read_file(uint32_t file, void* buf, size_t n, uint64_t off);
  bool load(Cursor& c);                       // first window of a cursor; false if it has no events
  void begin_segment(Cursor& c);
  bool ensure(Cursor& c, uint32_t n);         // n bytes at the parse position, from this segment
  bool refill(Cursor& c, uint32_t n);         // ensure()'s reading part
  bool parse_one(Cursor& c);                  // one more valid event into the window
  void fill(Cursor& c);
  uint64_t key(const Cursor& c) const;
  void refresh_top();                         // the cursor at the heap top gave an event: refill it
  void describe(const Cursor& c, const Pending& p, Event& ev) const;  // ev for p, read by c
  void warn(std::string msg, bool even_muted = false);
  void add_module(uint32_t file, const tf::EventHeader& h);  // a kModule event handed out
  void sift_down(size_t i);

  std::vector<TraceFile> files_;
  std::vector<FileIo> io_;
  std::vector<std::unique_ptr<ModuleList>> modules_;  // per file
  std::vector<bool> modules_full_warned_;
  std::vector<Segment> segments_;
  std::vector<Cursor> cursors_;
  std::vector<HeapEntry> heap_;  // min-heap by (key, rank)
  std::vector<std::string> warnings_;
  std::vector<bool> warned_kind_;  // unknown kinds already warned about
  uint32_t max_open_ = 0, open_count_ = 0;
  uint64_t io_tick_ = 0;
  bool owed_ = false;  // the heap top handed out an event and must be refilled before the next
  bool echo_warnings_ = false;
  bool started_ = false;
  bool mute_ = false;  // a restarted stream does not repeat its warnings
  uint64_t consumed_ = 0;
  uint64_t earliest_ts_ = 0;
  uint32_t earliest_file_ = 0;
  bool has_earliest_ = false;
};

// When an event happened (common/trace_format.h): a read at its completion (ts_ns + dur_ns), a
// write at its start, any other event with a duration at its completion, the rest at ts_ns. (A
// StackEvent's place comes from the stream; here it is its own ts_ns.)
uint64_t order_time(const tf::EventHeader* h);

// Minimum size of each event kind's fixed part; 0 for a kind this reader does not know.
size_t event_min_size(uint16_t kind);
std::string_view event_kind_name(uint16_t kind);
// A DropCause's name ("size_cap", ...), nullptr for a slot no cause uses yet.
const char* drop_cause_name(size_t cause);

}  // namespace httptrace::analyzer
