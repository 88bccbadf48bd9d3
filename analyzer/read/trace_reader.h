// Reads trace files and streams their events in time order.
//
// Files are read with pread() one segment at a time into two buffers per thread cursor, not
// mmap()ed: a mapping of a multi-GB trace faults page by page (slow under virtualisation) and
// counts toward the analyzer's resident size, while 2 x 64 KiB per thread keeps memory
// proportional to the number of threads and the kernel's readahead keeps the reads sequential.
//
// Every byte of a trace is untrusted: the file may come from a crashed program, another machine or
// a fuzzer. Headers are validated when a file is opened; events are validated one by one as the
// stream reaches them, so damage costs a warning plus the rest of that segment, never a crash.
//
// Order: within one thread, events are in the order its segments were filled (thread_seq); across
// threads and files, a k-way merge by ts_ns (CLOCK_MONOTONIC is system-wide, so the threads of a
// whole process tree share one clock). Memory is one cursor per thread, independent of trace size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/trace_format.h"

namespace httptrace::analyzer {

namespace tf = httptrace::format;

// One mapped trace file: the process it recorded and where its segments are.
struct TraceFile {
  std::string path;
  int fd = -1;
  uint64_t size = 0;
  int32_t pid = 0;
  int32_t ppid = 0;
  uint64_t mono_anchor_ns = 0;
  uint64_t real_anchor_ns = 0;
  uint64_t dropped_events = 0;
  uint32_t flags = 0;
  uint32_t argc = 0;
  std::string exe;
  std::vector<std::string> argv;

  uint64_t to_unix_ns(uint64_t mono_ns) const { return real_anchor_ns + (mono_ns - mono_anchor_ns); }
};

// A validated event, pointing into a cursor's buffer: valid until the next call to next().
struct Event {
  const tf::EventHeader* h = nullptr;
  uint32_t file = 0;   // index into TraceSet::files()
  int32_t pid = 0;
  int32_t tid = 0;
  uint64_t offset = 0; // byte offset in the file, for messages

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
  TraceSet() = default;
  ~TraceSet();
  TraceSet(const TraceSet&) = delete;
  TraceSet& operator=(const TraceSet&) = delete;

  // Adds a file, or every file named *.trace* inside a directory that starts with the magic.
  // Returns false and fills err when ARG cannot be used at all.
  bool add(const std::string& arg, OpenError& err);

  // Warnings (damaged or truncated data) are collected here; echo them to stderr as they happen
  // when echo is set.
  void set_echo_warnings(bool echo) { echo_warnings_ = echo; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  const std::vector<TraceFile>& files() const { return files_; }
  uint64_t total_bytes() const;

  // Starts (or restarts, for a second report) streaming. Call after every add().
  void start();
  // The next event in time order; false at the end.
  bool next(Event& ev);
  // Bytes of event data consumed so far (for a progress bar).
  uint64_t consumed_bytes() const { return consumed_; }

  // The earliest event's timestamp (valid after start(); false if there are no events).
  bool earliest(uint64_t& mono_ns, uint32_t& file) const;

 private:
  struct Segment {
    uint64_t offset;     // of the segment header
    uint64_t thread_seq;
    uint64_t end;        // file offset just past the trusted events
  };
  struct Cursor {
    uint64_t ts;         // ts of the current event (heap key)
    uint32_t file;
    int32_t tid;
    uint32_t seg_begin, seg_end, seg;  // into segments_
    uint64_t pos;        // offset of the current event, in the buffer
    uint64_t end;        // end of the current segment's trusted bytes, in the buffer
    uint64_t file_off;   // file offset of buffer byte 0 (the segment header)
    uint8_t* buf;        // the current segment's bytes: one of bufs, alternating per segment
    std::unique_ptr<uint8_t[]> bufs[2];
    uint32_t which;
  };

  bool open_file(const std::string& path, bool quiet_bad_magic, OpenError& err);
  void index_segments(uint32_t file_index, const tf::FileHeader& h);
  bool load_event(Cursor& c);       // validate the event at c.pos (moving on past damage)
  bool load_segment(Cursor& c);     // read segment c.seg into the other buffer
  void warn(std::string msg);
  // A heap entry carries its own key, so the merge compares contiguous 16-byte entries instead of
  // chasing into cursors. rank is the cursor's position in (file, tid) order: the tie-break.
  struct HeapEntry {
    uint64_t ts;
    uint32_t rank;
    uint32_t cursor;
    bool operator<(const HeapEntry& o) const { return ts != o.ts ? ts < o.ts : rank < o.rank; }
  };
  void sift_down(size_t i);

  std::vector<TraceFile> files_;
  std::vector<Segment> segments_;
  std::vector<Cursor> cursors_;
  std::vector<uint32_t> segment_size_;  // per file
  std::vector<HeapEntry> heap_;  // min-heap by (ts, file, tid)
  std::vector<std::string> warnings_;
  bool echo_warnings_ = false;
  bool started_ = false;
  bool mute_ = false;  // a restarted stream does not repeat its warnings
  uint64_t consumed_ = 0;
};

// Minimum size of each event kind's fixed part; 0 for a kind this reader does not know.
size_t event_min_size(uint16_t kind);
std::string_view event_kind_name(uint16_t kind);

}  // namespace httptrace::analyzer
