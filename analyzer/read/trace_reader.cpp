#include "analyzer/read/trace_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace httptrace::analyzer {

namespace {

struct KindInfo {
  const char* name;
  size_t min_size;
};

KindInfo kind_info(uint16_t kind) {
  switch (static_cast<tf::EventKind>(kind)) {
    case tf::EventKind::kDns: return {"dns", sizeof(tf::DnsEvent)};
    case tf::EventKind::kSocket: return {"socket", sizeof(tf::SocketEvent)};
    case tf::EventKind::kConnect: return {"connect", sizeof(tf::ConnectEvent)};
    case tf::EventKind::kConnectDone: return {"connect_done", sizeof(tf::ConnectDoneEvent)};
    case tf::EventKind::kData: return {"data", sizeof(tf::DataEvent)};
    case tf::EventKind::kClose: return {"close", sizeof(tf::CloseEvent)};
    case tf::EventKind::kDup: return {"dup", sizeof(tf::DupEvent)};
    case tf::EventKind::kFork: return {"fork", sizeof(tf::ForkEvent)};
    case tf::EventKind::kInherit: return {"inherit", sizeof(tf::InheritEvent)};
    case tf::EventKind::kTlsHandshake: return {"tls_handshake", sizeof(tf::TlsHandshakeEvent)};
    case tf::EventKind::kTlsClose: return {"tls_close", sizeof(tf::TlsCloseEvent)};
    case tf::EventKind::kExec: return {"exec", sizeof(tf::ExecEvent)};
    case tf::EventKind::kStack: return {"stack", sizeof(tf::StackEvent)};
    // Reserved for server-side tracing; no struct yet, so only the header is required.
    case tf::EventKind::kAccept: return {"accept", sizeof(tf::EventHeader)};
  }
  return {"?", 0};
}

// Bytes the variable tail of an event needs beyond its fixed struct.
size_t tail_size(const tf::EventHeader* h) {
  switch (static_cast<tf::EventKind>(h->kind)) {
    case tf::EventKind::kDns: return reinterpret_cast<const tf::DnsEvent*>(h)->host_len;
    case tf::EventKind::kData: return reinterpret_cast<const tf::DataEvent*>(h)->cap_len;
    case tf::EventKind::kExec: return reinterpret_cast<const tf::ExecEvent*>(h)->path_len;
    case tf::EventKind::kStack: return size_t{reinterpret_cast<const tf::StackEvent*>(h)->depth} * 8;
    default: return 0;
  }
}

bool has_trace_name(const char* name) { return std::strstr(name, ".trace") != nullptr; }

}  // namespace

size_t event_min_size(uint16_t kind) { return kind_info(kind).min_size; }
std::string_view event_kind_name(uint16_t kind) { return kind_info(kind).name; }

TraceSet::~TraceSet() {
  for (auto& f : files_)
    if (f.fd >= 0) close(f.fd);
}

uint64_t TraceSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& s : segments_) n += s.end - s.offset - sizeof(tf::SegmentHeader);
  return n;
}

void TraceSet::warn(std::string msg) {
  if (mute_) return;
  if (echo_warnings_) fmt::print(stderr, "httptrace: warning: {}\n", msg);
  warnings_.push_back(std::move(msg));
}

bool TraceSet::add(const std::string& arg, OpenError& err) {
  struct stat st;
  if (stat(arg.c_str(), &st) != 0) {
    err.message = fmt::format("{}: {}", arg, std::strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) return open_file(arg, false, err);

  DIR* d = opendir(arg.c_str());
  if (!d) {
    err.message = fmt::format("{}: {}", arg, std::strerror(errno));
    return false;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (has_trace_name(e->d_name)) names.emplace_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());  // deterministic file order for ties in the merge
  size_t before = files_.size();
  for (const auto& n : names) {
    std::string path = arg + (arg.ends_with('/') ? "" : "/") + n;
    OpenError e;
    if (!open_file(path, true, e) && !e.message.empty()) warn(e.message);
  }
  if (files_.size() == before) {
    err.message = fmt::format("{}: no httptrace trace files in this directory", arg);
    return false;
  }
  return true;
}

namespace {

// pread until n bytes or EOF; returns bytes read (short only at EOF or on error).
size_t read_at(int fd, void* buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + got, n - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

// quiet_bad_magic: inside a directory, a *.trace* file that is not ours is skipped silently.
bool TraceSet::open_file(const std::string& path, bool quiet_bad_magic, OpenError& err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err.message = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  auto fail = [&](std::string msg) {
    close(fd);
    err.message = std::move(msg);
    return false;
  };
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fail(fmt::format("{}: not a regular file", path));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  tf::FileHeader h;
  std::memset(&h, 0, sizeof h);
  const size_t got = read_at(fd, &h, sizeof h, 0);
  if (got < sizeof(tf::kMagic) || std::memcmp(h.magic, tf::kMagic, sizeof(tf::kMagic)) != 0)
    return fail(quiet_bad_magic ? "" : fmt::format("{}: not an httptrace trace (bad magic)", path));
  if (got < sizeof(tf::FileHeader))
    return fail(fmt::format("{}: truncated: {} bytes, the file header alone is {}", path, size,
                            sizeof(tf::FileHeader)));
  if (h.byte_order != tf::kByteOrderMark)
    return fail(fmt::format("{}: written on a host with a different byte order (mark {:#010x})", path,
                            h.byte_order));
  if (h.min_reader_version > tf::kVersion)
    return fail(fmt::format("{}: written by a newer httptrace (format version {}, needs a reader of "
                            "version {} or later; this httptrace reads version {}): please upgrade",
                            path, h.version, h.min_reader_version, tf::kVersion));
  if (h.header_size < sizeof(tf::FileHeader) || h.header_size % 8 != 0 ||
      h.segment_size <= sizeof(tf::SegmentHeader) || h.segment_size % 8 != 0 ||
      h.segment_size > (1u << 20))
    return fail(fmt::format("{}: corrupt header: header_size {} segment_size {}", path, h.header_size,
                            h.segment_size));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  TraceFile f;
  f.path = path;
  f.fd = fd;
  f.size = size;
  f.pid = h.pid;
  f.ppid = h.ppid;
  f.mono_anchor_ns = h.mono_anchor_ns;
  f.real_anchor_ns = h.real_anchor_ns;
  f.dropped_events = h.dropped_events;
  f.flags = h.flags;
  f.argc = h.argc;
  f.exe.assign(h.exe, std::min<size_t>(h.exe_len, tf::kExeMax));
  size_t argv_len = std::min<size_t>(h.argv_len, tf::kArgvMax);
  for (size_t i = 0; i < argv_len;) {
    const char* s = h.argv + i;
    size_t n = strnlen(s, argv_len - i);
    f.argv.emplace_back(s, n);
    i += n + 1;
  }
  files_.push_back(std::move(f));
  segment_size_.push_back(h.segment_size);
  index_segments(static_cast<uint32_t>(files_.size() - 1), h);
  return true;
}

void TraceSet::index_segments(uint32_t fi, const tf::FileHeader& h) {
  const TraceFile& f = files_[fi];
  const uint64_t hs = h.header_size, ss = h.segment_size;
  // A file cut short (copied while written, disk full) may end inside the claimed segments. Only
  // data actually lost is worth a warning: a last segment whose committed bytes are all there is
  // fine even if its unused tail is missing.
  const uint64_t n = h.segments_claimed;
  struct Found {
    int32_t tid;
    Segment s;
  };
  std::vector<Found> found;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t off = hs + i * ss;
    tf::SegmentHeader sh;
    if (off + sizeof(tf::SegmentHeader) > f.size || read_at(f.fd, &sh, sizeof sh, off) != sizeof sh) {
      warn(fmt::format("{}: file ends at byte {} but {} segments were claimed (truncated, e.g. by a "
                       "crash); reading what is there",
                       f.path, f.size, n));
      break;
    }
    if (sh.magic != tf::kSegmentMagic) {
      // Zero: claimed but never started. Anything else is damage.
      if (sh.magic != 0) warn(fmt::format("{}: offset {}: bad segment magic {:#x}; segment skipped", f.path, off, sh.magic));
      continue;
    }
    uint64_t committed = sh.committed;
    if (committed > ss - sizeof(tf::SegmentHeader)) {
      warn(fmt::format("{}: offset {}: segment committed {} exceeds the segment size; reading up to its end",
                       f.path, off, committed));
      committed = ss - sizeof(tf::SegmentHeader);
    }
    uint64_t end = off + sizeof(tf::SegmentHeader) + committed;
    if (end > f.size) {
      warn(fmt::format("{}: offset {}: segment cut short by the end of the file; reading up to byte {}",
                       f.path, off, f.size));
      end = f.size;
    }
    found.push_back({sh.tid, {off, sh.thread_seq, end}});
  }
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    if (a.tid != b.tid) return a.tid < b.tid;
    return a.s.thread_seq < b.s.thread_seq;
  });
  for (size_t i = 0; i < found.size();) {
    size_t j = i;
    Cursor c{};
    c.file = fi;
    c.tid = found[i].tid;
    c.seg_begin = static_cast<uint32_t>(segments_.size());
    for (; j < found.size() && found[j].tid == found[i].tid; ++j) segments_.push_back(found[j].s);
    c.seg_end = static_cast<uint32_t>(segments_.size());
    cursors_.push_back(std::move(c));
    i = j;
  }
}

// Reads segment c.seg into the buffer not holding the event handed out last, so that event stays
// valid until the caller asks for the next one.
bool TraceSet::load_segment(Cursor& c) {
  const Segment& s = segments_[c.seg];
  const TraceFile& f = files_[c.file];
  c.which ^= 1;
  if (!c.bufs[c.which]) c.bufs[c.which] = std::make_unique<uint8_t[]>(segment_size_[c.file]);
  c.buf = c.bufs[c.which].get();
  const uint64_t want = s.end - s.offset;
  const uint64_t got = read_at(f.fd, c.buf, want, s.offset);
  c.file_off = s.offset;
  c.pos = sizeof(tf::SegmentHeader);
  c.end = got;
  if (got < want) {
    warn(fmt::format("{}: offset {}: read failed or file shrank; segment cut short", f.path, s.offset + got));
    if (c.end < c.pos) c.end = c.pos;
  }
  return true;
}

// Positions c on a valid event at or after c.pos, crossing segment boundaries. Damage ends the
// segment (the events before it are kept); the thread continues with its next segment.
bool TraceSet::load_event(Cursor& c) {
  const TraceFile& f = files_[c.file];
  for (;;) {
    if (c.pos + sizeof(tf::EventHeader) <= c.end) {
      const auto* h = reinterpret_cast<const tf::EventHeader*>(c.buf + c.pos);
      const KindInfo ki = kind_info(h->kind);
      const char* why = nullptr;
      if (ki.min_size == 0) why = "unknown event kind";
      else if (h->size % 8 != 0) why = "event size not a multiple of 8";
      else if (h->size < ki.min_size) why = "event smaller than its kind's record";
      else if (c.pos + h->size > c.end) why = "event runs past the committed bytes";
      else if (ki.min_size + tail_size(h) > h->size) why = "string or capture length runs past the event";
      else if (h->kind == uint16_t(tf::EventKind::kDns) && reinterpret_cast<const tf::DnsEvent*>(h)->naddr > 8)
        why = "dns address count above 8";
      if (!why) {
        c.ts = h->ts_ns;
        return true;
      }
      warn(fmt::format("{}: offset {}: corrupt event (kind {}, size {}): {}; skipping the rest of "
                       "this segment of thread {}",
                       f.path, c.file_off + c.pos, h->kind, h->size, why, c.tid));
    } else if (c.pos != c.end) {
      warn(fmt::format("{}: offset {}: {} stray bytes at the end of a segment of thread {}", f.path,
                       c.file_off + c.pos, c.end - c.pos, c.tid));
    }
    // Next segment of this thread.
    if (c.seg + 1 >= c.seg_end) return false;
    ++c.seg;
    load_segment(c);
  }
}

void TraceSet::sift_down(size_t i) {
  const size_t n = heap_.size();
  const HeapEntry e = heap_[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= n) break;
    if (l + 1 < n && heap_[l + 1] < heap_[l]) ++l;
    if (!(heap_[l] < e)) break;
    heap_[i] = heap_[l];
    i = l;
  }
  heap_[i] = e;
}

void TraceSet::start() {
  mute_ = started_;
  started_ = true;
  consumed_ = 0;
  heap_.clear();
  // Cursors were created file by file, each file's threads in tid order: index order is rank.
  for (uint32_t i = 0; i < cursors_.size(); ++i) {
    Cursor& c = cursors_[i];
    c.seg = c.seg_begin;
    load_segment(c);
    if (load_event(c)) heap_.push_back({c.ts, i, i});
  }
  for (size_t i = heap_.size(); i-- > 0;) sift_down(i);
}

bool TraceSet::earliest(uint64_t& mono_ns, uint32_t& file) const {
  if (heap_.empty()) return false;
  const Cursor& c = cursors_[heap_[0].cursor];
  mono_ns = c.ts;
  file = c.file;
  return true;
}

bool TraceSet::next(Event& ev) {
  if (heap_.empty()) return false;
  Cursor& c = cursors_[heap_[0].cursor];
  ev.h = reinterpret_cast<const tf::EventHeader*>(c.buf + c.pos);
  ev.file = c.file;
  ev.pid = files_[c.file].pid;
  ev.tid = c.tid;
  ev.offset = c.file_off + c.pos;
  c.pos += ev.h->size;
  consumed_ += ev.h->size;
  if (!load_event(c)) {
    heap_[0] = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(0);
  } else {
    heap_[0].ts = c.ts;
    // Usually the same thread has the next event too: one comparison with the runner-up instead
    // of a full sift.
    const size_t n = heap_.size();
    if (n > 1) {
      const size_t r = n > 2 && heap_[2] < heap_[1] ? 2 : 1;
      if (heap_[r] < heap_[0]) sift_down(0);
    }
  }
  return true;
}

}  // namespace httptrace::analyzer
