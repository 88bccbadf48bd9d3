#include "analyzer/read/trace_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace httptrace::analyzer {

namespace {

struct KindInfo {
  const char* name;
  size_t min_size;
};

KindInfo kind_info_slow(uint16_t kind) {
  using K = tf::EventKind;
  switch (static_cast<K>(kind)) {
    case K::kDns: return {"dns", sizeof(tf::DnsEvent)};
    case K::kSocket: return {"socket", sizeof(tf::SocketEvent)};
    case K::kConnect: return {"connect", sizeof(tf::ConnectEvent)};
    case K::kConnectDone: return {"connect_done", sizeof(tf::ConnectDoneEvent)};
    case K::kData: return {"data", sizeof(tf::DataEvent)};
    case K::kClose: return {"close", sizeof(tf::CloseEvent)};
    case K::kDup: return {"dup", sizeof(tf::DupEvent)};
    case K::kFork: return {"fork", sizeof(tf::ForkEvent)};
    case K::kInherit: return {"inherit", sizeof(tf::InheritEvent)};
    case K::kTlsHandshake: return {"tls_handshake", sizeof(tf::TlsHandshakeEvent)};
    case K::kTlsClose: return {"tls_close", sizeof(tf::TlsCloseEvent)};
    case K::kExec: return {"exec", sizeof(tf::ExecEvent)};
    case K::kStack: return {"stack", sizeof(tf::StackEvent)};
    case K::kAccept: return {"accept", sizeof(tf::AcceptEvent)};
    case K::kLost: return {"lost", sizeof(tf::LostEvent)};
    case K::kThread: return {"thread", sizeof(tf::ThreadEvent)};
    case K::kExecInherit: return {"exec_inherit", sizeof(tf::InheritEvent)};
    case K::kAddrPath: return {"addr_path", sizeof(tf::AddrPathEvent)};
    case K::kH2Headers: return {"h2_headers", sizeof(tf::H2HeadersEvent)};
    case K::kModule: return {"module", sizeof(tf::ModuleEvent)};
    default: break;
  }
  return {"?", 0};
}

// The switch above as a table: it is consulted for every event.
constexpr uint16_t kKindsKnown = 21;
struct KindTable {
  KindInfo info[kKindsKnown];
  KindTable() {
    for (uint16_t k = 0; k < kKindsKnown; ++k) info[k] = kind_info_slow(k);
  }
};
const KindTable kKinds;

inline KindInfo kind_info(uint16_t kind) { return kind < kKindsKnown ? kKinds.info[kind] : KindInfo{"?", 0}; }

// Bytes the variable tail of an event needs beyond its fixed struct.
size_t tail_size(const tf::EventHeader* h) {
  switch (static_cast<tf::EventKind>(h->kind)) {
    case tf::EventKind::kDns: return reinterpret_cast<const tf::DnsEvent*>(h)->host_len;
    case tf::EventKind::kData: return reinterpret_cast<const tf::DataEvent*>(h)->cap_len;
    case tf::EventKind::kExec: return reinterpret_cast<const tf::ExecEvent*>(h)->path_len;
    case tf::EventKind::kStack: return size_t{reinterpret_cast<const tf::StackEvent*>(h)->depth} * 8;
    case tf::EventKind::kAddrPath: return reinterpret_cast<const tf::AddrPathEvent*>(h)->path_len;
    case tf::EventKind::kH2Headers: {
      const auto* e = reinterpret_cast<const tf::H2HeadersEvent*>(h);
      size_t n = 0;
      for (uint16_t len : e->len) n += len;
      return n;
    }
    case tf::EventKind::kModule: return reinterpret_cast<const tf::ModuleEvent*>(h)->path_len;
    default: return 0;
  }
}

// Each field of an H2HeadersEvent within the recorder's bound, and only present fields non-empty.
bool h2_headers_valid(const tf::EventHeader* h) {
  static constexpr uint16_t kMax[tf::kH2Fields] = {24, static_cast<uint16_t>(tf::kTargetMax), 255, 3, 128};
  const auto* e = reinterpret_cast<const tf::H2HeadersEvent*>(h);
  for (int f = 0; f < tf::kH2Fields; ++f) {
    if (e->len[f] > kMax[f] || (e->len[f] != 0 && !(e->fields & (1u << f)))) return false;
  }
  return true;
}

// What makes a ModuleEvent unusable, or nullptr.
const char* module_problem(const tf::ModuleEvent& e) {
  if (e.build_id_len > tf::kModuleBuildIdMax) return "module build-id longer than 32 bytes";
  if (e.text_start > e.text_end) return "module code range ends before it starts";
  return nullptr;
}

bool has_trace_name(const char* name) { return std::strstr(name, ".trace") != nullptr; }

const char* file_type(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

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

// Reads grow from a small first chunk (most threads of a big process have few events) to 64 KiB.
constexpr uint32_t kFirstChunk = 1024;
constexpr uint32_t kMaxChunk = 64 * 1024;
// An event held back in the window pins every byte read after it; past this it is let go even if
// it is not the earliest (only a trace with wild timestamps gets here).
constexpr uint32_t kMaxPinned = 256 * 1024;
constexpr uint32_t kNoForce = std::numeric_limits<uint32_t>::max();

}  // namespace

size_t event_min_size(uint16_t kind) { return kind_info(kind).min_size; }
const char* drop_cause_name(size_t cause) {
  switch (static_cast<tf::DropCause>(cause)) {
    case tf::DropCause::kSizeCap: return "size_cap";
    case tf::DropCause::kDiskFull: return "disk_full";
    case tf::DropCause::kFileSizeLimit: return "file_size_limit";
    case tf::DropCause::kTooLarge: return "too_large";
    case tf::DropCause::kNested: return "nested";
    case tf::DropCause::kTruncated: return "truncated";
  }
  return nullptr;
}


std::string_view event_kind_name(uint16_t kind) { return kind_info(kind).name; }

uint64_t order_time(const tf::EventHeader* h) {
  auto completion = [h](uint64_t dur) {
    const uint64_t t = h->ts_ns + dur;
    return t < h->ts_ns ? std::numeric_limits<uint64_t>::max() : t;
  };
  using K = tf::EventKind;
  switch (static_cast<K>(h->kind)) {
    case K::kData: {
      const auto* d = reinterpret_cast<const tf::DataEvent*>(h);
      return d->dir == uint8_t(tf::Direction::kRecv) ? completion(d->dur_ns) : h->ts_ns;
    }
    case K::kDns: return completion(reinterpret_cast<const tf::DnsEvent*>(h)->dur_ns);
    case K::kConnect: return completion(reinterpret_cast<const tf::ConnectEvent*>(h)->dur_ns);
    case K::kTlsHandshake: return completion(reinterpret_cast<const tf::TlsHandshakeEvent*>(h)->dur_ns);
    // AcceptEvent's ts_ns is already when accept() returned (its dur_ns is the time before).
    default: return h->ts_ns;
  }
}

// An event read ahead, waiting in its thread's reorder window.
struct TraceSet::Pending {
  uint64_t order;
  uint64_t file_off;
  uint64_t uid;
  uint32_t at;  // offset in the cursor's buffer
  int32_t tid;
};

// A loaded cursor: the bytes read from its current segment and the events waiting in its window.
// The buffer holds, contiguously, every byte from the oldest waiting event to what was read.
struct TraceSet::Live {
  std::unique_ptr<uint8_t[]> buf;
  uint32_t cap = 0, len = 0, parse = 0;  // parse: the next byte to validate
  uint64_t parse_off = 0;                // file offset of buf[parse]
  uint64_t read_off = 0;                 // file offset of buf[len]
  uint64_t seg_end = 0;                  // file offset past the current segment's trusted bytes
  uint32_t chunk = kFirstChunk;
  int32_t tid = 0;                       // whose events these are (a ThreadEvent changes it)
  uint64_t uid = 0;
  uint64_t last_order = 0;               // of the last event parsed: a StackEvent's place
  bool done = false;                     // no more events after the window
  uint32_t force_at = kNoForce;          // buffer offset of an event that must go next
  Pending win[2 * kWindow];              // sorted by order (stable): [head, tail)
  uint32_t head = 0, tail = 0;

  size_t waiting() const { return tail - head; }
};

TraceSet::TraceSet() = default;

TraceSet::~TraceSet() {
  for (auto& io : io_)
    if (io.fd >= 0) close(io.fd);
}

uint64_t TraceSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& s : segments_) n += s.end - s.offset - sizeof(tf::SegmentHeader);
  return n;
}

void TraceSet::warn(std::string msg, bool even_muted) {
  if (mute_ && !even_muted) return;
  if (echo_warnings_) fmt::print(stderr, "httptrace: warning: {}\n", msg);
  warnings_.push_back(std::move(msg));
}

bool TraceSet::add(const std::string& arg, OpenError& err) {
  if (max_open_ == 0) {
    // Half the descriptors the process may still open: the rest are the caller's (output files,
    // a child's pipes). Files beyond it are closed and reopened as they are read.
    rlimit rl{};
    const uint64_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    max_open_ = static_cast<uint32_t>(std::clamp<uint64_t>(soft > 64 ? (soft - 32) / 2 : 8, 8, 4096));
  }
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
    if (!open_file(path, true, e) && !e.message.empty()) {
      err = std::move(e);
      return false;
    }
  }
  if (files_.size() == before) {
    err.message = fmt::format("{}: no httptrace trace files in this directory", arg);
    return false;
  }
  return true;
}

// in_directory: a *.trace* file that is not ours (bad magic, not a regular file) is skipped, with
// a warning unless it merely is some other kind of file.
bool TraceSet::open_file(const std::string& path, bool in_directory, OpenError& err) {
  // The type is checked before open(): opening a FIFO for reading would wait for a writer forever.
  // O_NONBLOCK covers the race of a FIFO put there between the two.
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    err.message = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    if (in_directory) {
      warn(fmt::format("{}: {}, not a trace file; skipped", path, file_type(st.st_mode)));
      return false;
    }
    err.message = fmt::format("{}: {}, not a trace file", path, file_type(st.st_mode));
    return false;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    err.message = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  auto fail = [&](std::string msg) {
    close(fd);
    err.message = std::move(msg);
    return false;
  };
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (in_directory) return fail("");
    return fail(fmt::format("{}: not a regular file", path));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  tf::FileHeader h;
  std::memset(&h, 0, sizeof h);
  const size_t got = read_at(fd, &h, sizeof h, 0);
  if (got < sizeof(tf::kMagic) || std::memcmp(h.magic, tf::kMagic, sizeof(tf::kMagic)) != 0)
    return fail(in_directory ? "" : fmt::format("{}: not an httptrace trace (bad magic)", path));
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
  if (h.version < 1)
    return fail(fmt::format("{}: corrupt header: format version {}", path, h.version));
  // features was reserved (zero) in version 1.
  if (h.version >= 2 && (h.features & ~tf::kFeaturesKnown) != 0)
    return fail(fmt::format("{}: uses format features {:#x} that this httptrace does not know (written "
                            "by a newer httptrace, format version {}): please upgrade",
                            path, h.features & ~tf::kFeaturesKnown, h.version));
  // Segments are whole pages (the writer maps them); 1 MiB is far above any writer's choice.
  if (h.header_size < sizeof(tf::FileHeader) || h.header_size % 8 != 0 || h.header_size > (1u << 20) ||
      h.segment_size < 4096 || h.segment_size % 4096 != 0 || h.segment_size > (1u << 20))
    return fail(fmt::format("{}: corrupt header: header_size {} segment_size {}", path, h.header_size,
                            h.segment_size));

  TraceFile f;
  f.path = path;
  f.size = size;
  f.version = h.version;
  f.features = h.version >= 2 ? h.features : 0;
  f.pid = h.pid;
  f.ppid = h.ppid;
  f.mono_anchor_ns = h.mono_anchor_ns;
  f.real_anchor_ns = h.real_anchor_ns;
  f.dropped_events = h.dropped_events;
  if (h.version >= 2)
    for (int i = 0; i < tf::kDropCauses; ++i) f.dropped_by_cause[i] = h.dropped_by_cause[i];
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
  // Workers that switched to a user who cannot write the directory recorded nothing: say so
  // here, where the user looks (the recorder could not tell them: their stderr was not its own).
  if (h.version >= 2 && h.children_untraced > 0)
    warn(fmt::format("{}: {} process(es) forked by pid {} or its children could not create a trace "
                     "file and were not traced (the last, pid {}: {}); a server whose workers switch "
                     "user needs an HTTPTRACE_OUTPUT directory they can write",
                     path, h.children_untraced, h.pid, h.child_untraced_pid,
                     std::strerror(h.child_untraced_errno)));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  files_.push_back(std::move(f));
  FileIo io;
  io.dev = st.st_dev;
  io.ino = st.st_ino;
  io_.push_back(io);
  modules_.push_back(std::make_unique<ModuleList>());
  modules_full_warned_.push_back(false);
  const uint32_t fi = static_cast<uint32_t>(files_.size() - 1);
  index_segments(fi, fd, h);
  // Keep the descriptor for the reads to come while there is room; otherwise reopen later.
  if (open_count_ < max_open_) {
    io_[fi].fd = fd;
    ++open_count_;
  } else {
    close(fd);
  }
  return true;
}

namespace {

// A v1 file names a thread by its tid only, and the kernel reuses tids: two threads with one tid
// show up as one tid whose thread_seq values repeat (0, 0, 1, 1, ...). Each run of a repeated
// seq is split off into its own chain: a segment joins the chain that ended with the previous seq
// at the latest time not after its own first event (threads with one tid never overlap in time).
// F is index_segments' Found, sorted by (uid, tid, seq); chain numbers are assigned in place.
template <class F> void split_reused_tids(F* found, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t j = i;
    bool repeats = false;
    for (; j < n && found[j].uid == found[i].uid && found[j].tid == found[i].tid; ++j)
      repeats |= j > i && found[j].s.thread_seq == found[j - 1].s.thread_seq;
    if (found[i].uid == 0 && repeats) {
      std::stable_sort(found + i, found + j, [](const F& a, const F& b) {
        return a.s.thread_seq != b.s.thread_seq ? a.s.thread_seq < b.s.thread_seq : a.first_ts < b.first_ts;
      });
      struct Tail {
        uint64_t seq, ts;
      };
      std::vector<Tail> chains;
      for (size_t k = i; k < j; ++k) {
        F& seg = found[k];
        size_t best = chains.size();
        for (size_t c = 0; c < chains.size(); ++c) {
          if (chains[c].seq + 1 != seg.s.thread_seq || chains[c].ts > seg.first_ts) continue;
          if (best == chains.size() || chains[c].ts > chains[best].ts) best = c;
        }
        if (best == chains.size()) chains.push_back({});
        chains[best] = {seg.s.thread_seq, seg.first_ts};
        seg.chain = static_cast<uint32_t>(best);
      }
    }
    i = j;
  }
}

}  // namespace

void TraceSet::index_segments(uint32_t fi, int fd, const tf::FileHeader& h) {
  const TraceFile& f = files_[fi];
  const uint64_t hs = h.header_size, ss = h.segment_size;
  const bool v2 = h.version >= 2;
  // A file cut short (copied while written, disk full) may end inside the claimed segments. Only
  // data actually lost is worth a warning: a last segment whose committed bytes are all there is
  // fine even if its unused tail is missing.
  const uint64_t n = h.segments_claimed;
  struct Found {
    uint64_t uid;
    int32_t tid;
    uint32_t chain;     // v1: which of the threads that had this tid
    uint64_t first_ts;  // of the segment's first event (0 if it has none)
    Segment s;
  };
  std::vector<Found> found;
  struct {
    tf::SegmentHeader sh;
    tf::EventHeader first;
  } head;
  const tf::SegmentHeader& sh = head.sh;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t off = hs + i * ss;
    std::memset(&head, 0, sizeof head);
    if (off + sizeof(tf::SegmentHeader) > f.size || read_at(fd, &head, sizeof head, off) < sizeof sh) {
      warn(fmt::format("{}: file ends at byte {} but {} segments were claimed (truncated, e.g. by a "
                       "crash); reading what is there",
                       f.path, f.size, n));
      break;
    }
    if (sh.magic != tf::kSegmentMagic) {
      // Zero: claimed but never started. Anything else is damage.
      if (sh.magic != 0) {
        warn(fmt::format("{}: offset {}: bad segment magic {:#x}; segment skipped", f.path, off, sh.magic));
        continue;
      }
      // A sparse file (a header claiming many segments, few of them written) has holes where the
      // unstarted segments are: jump to the next data instead of reading every hole.
      const off_t data = lseek(fd, static_cast<off_t>(off + ss), SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // nothing but holes to the end
      if (data > static_cast<off_t>(off + ss)) {
        const uint64_t skip = (static_cast<uint64_t>(data) - hs) / ss;
        if (skip > i + 1) i = skip - 1;
      }
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
    found.push_back({v2 && sh.thread_uid ? sh.thread_uid : 0, sh.tid, 0,
                     committed >= sizeof(tf::EventHeader) ? head.first.ts_ns : 0, {off, sh.thread_seq, end}});
  }
  // One chain per thread: (uid, tid) is the thread in v2 files (a reused tid has a new uid), the
  // tid alone in v1 (uid 0).
  auto by_thread = [](const Found& a, const Found& b) {
    if (a.uid != b.uid) return a.uid < b.uid;
    if (a.tid != b.tid) return a.tid < b.tid;
    if (a.chain != b.chain) return a.chain < b.chain;
    return a.s.thread_seq < b.s.thread_seq;
  };
  std::stable_sort(found.begin(), found.end(), by_thread);
  split_reused_tids(found.data(), found.size());
  std::stable_sort(found.begin(), found.end(), by_thread);
  for (size_t i = 0; i < found.size();) {
    size_t j = i;
    Cursor c{};
    c.file = fi;
    c.tid = found[i].tid;
    c.uid = found[i].uid ? found[i].uid
                         : static_cast<uint32_t>(found[i].tid) | (uint64_t{found[i].chain} << 32);
    c.state = State::kUnloaded;
    c.seg_begin = static_cast<uint32_t>(segments_.size());
    for (; j < found.size() && found[j].uid == found[i].uid && found[j].tid == found[i].tid &&
           found[j].chain == found[i].chain;
         ++j)
      segments_.push_back(found[j].s);
    c.seg_end = static_cast<uint32_t>(segments_.size());
    c.seg = c.seg_begin;
    cursors_.push_back(std::move(c));
    i = j;
  }
}

// The file's descriptor, reopened if it was closed to stay within max_open_ (the least recently
// read one is closed to make room). -1 if the file cannot be read any more.
int TraceSet::fd_for(uint32_t fi) {
  FileIo& io = io_[fi];
  io.used = ++io_tick_;
  if (io.fd >= 0 || io.failed) return io.fd;
  while (open_count_ >= max_open_) {
    uint32_t lru = 0;
    uint64_t best = std::numeric_limits<uint64_t>::max();
    for (uint32_t i = 0; i < io_.size(); ++i)
      if (io_[i].fd >= 0 && io_[i].used < best) best = io_[i].used, lru = i;
    if (best == std::numeric_limits<uint64_t>::max()) break;
    close(io_[lru].fd);
    io_[lru].fd = -1;
    --open_count_;
  }
  const std::string& path = files_[fi].path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_dev) != io.dev ||
                  uint64_t(st.st_ino) != io.ino)) {
    close(fd);
    fd = -1;
    errno = ESTALE;
  }
  if (fd < 0) {
    // Given once, and even while a first window is reread: it is news then.
    warn(fmt::format("{}: cannot reopen ({}); the rest of this file is not read", path,
                     errno == ESTALE ? "replaced by another file" : std::strerror(errno)),
         true);
    io.failed = true;
    return -1;
  }
  io.fd = fd;
  ++open_count_;
  return fd;
}

size_t TraceSet::read_file(uint32_t fi, void* buf, size_t n, uint64_t off) {
  const int fd = fd_for(fi);
  return fd < 0 ? 0 : read_at(fd, buf, n, off);
}

void TraceSet::begin_segment(Cursor& c) {
  Live& l = *c.live;
  const Segment& s = segments_[c.seg];
  l.len = l.parse;  // unparsed bytes of the previous segment (its stray tail) are dropped
  l.parse_off = l.read_off = s.offset + sizeof(tf::SegmentHeader);
  l.seg_end = std::max(s.end, l.read_off);
  l.tid = c.tid;
  l.uid = c.uid;
}

bool TraceSet::ensure(Cursor& c, uint32_t n) {
  Live& l = *c.live;
  if (l.len - l.parse >= n) [[likely]] return true;
  return refill(c, n);
}

bool TraceSet::refill(Cursor& c, uint32_t n) {
  Live& l = *c.live;
  if (l.len - l.parse + (l.seg_end - l.read_off) < n) return false;
  // Keep only what is still needed: the waiting events and the unparsed bytes.
  uint32_t keep = l.parse;
  for (size_t i = l.head; i < l.tail; ++i) keep = std::min(keep, l.win[i].at);
  if (keep > 0) {
    std::memmove(l.buf.get(), l.buf.get() + keep, l.len - keep);
    l.len -= keep;
    l.parse -= keep;
    for (size_t i = l.head; i < l.tail; ++i) l.win[i].at -= keep;
    if (l.force_at != kNoForce) l.force_at -= keep;
  }
  if (l.len > kMaxPinned && l.force_at == kNoForce && l.waiting() > 0) {
    // The oldest waiting event has held the buffer too long: it goes next.
    uint32_t oldest = l.parse;
    for (size_t i = l.head; i < l.tail; ++i) oldest = std::min(oldest, l.win[i].at);
    l.force_at = oldest;
  }
  const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(n - (l.len - l.parse), l.chunk), l.seg_end - l.read_off);
  if (l.len + want > l.cap) {
    const uint32_t cap = static_cast<uint32_t>(std::max<uint64_t>(l.len + want, std::min<uint64_t>(2ull * l.cap, l.len + kMaxChunk)));
    auto nb = std::make_unique<uint8_t[]>(cap);
    if (l.len) std::memcpy(nb.get(), l.buf.get(), l.len);
    l.buf = std::move(nb);
    l.cap = cap;
  }
  const size_t got = read_file(c.file, l.buf.get() + l.len, want, l.read_off);
  l.len += static_cast<uint32_t>(got);
  l.read_off += got;
  l.chunk = std::min(l.chunk * 2, kMaxChunk);
  if (got < want) {
    if (!io_[c.file].failed)  // that was said once for the whole file
      warn(fmt::format("{}: offset {}: read failed or file shrank; segment cut short", files_[c.file].path,
                       l.read_off));
    l.seg_end = l.read_off;
    return l.len - l.parse >= n;
  }
  return true;
}

// Validates the event at the parse position and queues it in the window, moving past unknown
// kinds, damage (the rest of that segment) and segment ends. False when the thread has no more.
bool TraceSet::parse_one(Cursor& c) {
  Live& l = *c.live;
  const TraceFile& f = files_[c.file];
  for (;;) {
    const char* why = nullptr;
    const tf::EventHeader* h = nullptr;
    if (!ensure(c, sizeof(tf::EventHeader))) {
      const uint64_t left = l.len - l.parse + (l.seg_end - l.read_off);
      if (left)
        warn(fmt::format("{}: offset {}: {} stray bytes at the end of a segment of thread {}", f.path,
                         l.parse_off, left, l.tid));
    } else {
      h = reinterpret_cast<const tf::EventHeader*>(l.buf.get() + l.parse);
      const uint16_t kind = h->kind, size = h->size;
      const KindInfo ki = kind_info(kind);
      if (size % 8 != 0) why = "event size not a multiple of 8";
      else if (size < ki.min_size || size < sizeof(tf::EventHeader)) why = "event smaller than its kind's record";
      else if (l.parse_off + size > l.seg_end) why = "event runs past the committed bytes";
      else if (!ensure(c, size)) why = "event cut short by the end of the file";
      if (!why) {
        h = reinterpret_cast<const tf::EventHeader*>(l.buf.get() + l.parse);  // ensure() may move it
        if (ki.min_size == 0) {
          if (warned_kind_.empty()) warned_kind_.resize(65536);
          if (!warned_kind_[kind]) {
            warned_kind_[kind] = true;
            warn(fmt::format("{}: offset {}: event kind {} is unknown to this httptrace (written by a newer "
                             "one?); events of this kind are skipped",
                             f.path, l.parse_off, kind));
          }
          l.parse += size;
          l.parse_off += size;
          continue;
        }
        if (ki.min_size + tail_size(h) > size) why = "string or capture length runs past the event";
        else if (kind == uint16_t(tf::EventKind::kDns) && reinterpret_cast<const tf::DnsEvent*>(h)->naddr > 8)
          why = "dns address count above 8";
        else if (kind == uint16_t(tf::EventKind::kH2Headers) && !h2_headers_valid(h))
          why = "h2 header field longer than its bound";
        else if (kind == uint16_t(tf::EventKind::kModule))
          why = module_problem(*reinterpret_cast<const tf::ModuleEvent*>(h));
      }
      if (!why) {
        if (kind == uint16_t(tf::EventKind::kThread)) {
          const auto* t = reinterpret_cast<const tf::ThreadEvent*>(h);
          l.tid = t->tid;
          l.uid = t->thread_uid ? t->thread_uid : static_cast<uint32_t>(t->tid);
        }
        // A module is written right before the stack that needed it (or at file creation, a
        // thread's first event): in its predecessor's place too, so the stack stays next to it.
        const bool placed = kind == uint16_t(tf::EventKind::kStack) ||
                            (kind == uint16_t(tf::EventKind::kModule) && l.last_order != 0);
        const uint64_t order = placed ? l.last_order : order_time(h);
        l.last_order = order;
        // Insert after every waiting event with an order <= this one: in-order input appends.
        const Pending p{order, l.parse_off, l.uid, l.parse, l.tid};
        if (l.tail == 2 * kWindow) {
          std::memmove(l.win, l.win + l.head, (l.tail - l.head) * sizeof(Pending));
          l.tail -= l.head;
          l.head = 0;
        }
        size_t i = l.tail++;
        while (i > l.head && l.win[i - 1].order > order) {
          l.win[i] = l.win[i - 1];
          --i;
        }
        l.win[i] = p;
        l.parse += size;
        l.parse_off += size;
        return true;
      }
      warn(fmt::format("{}: offset {}: corrupt event (kind {}, size {}): {}; skipping the rest of "
                       "this segment of thread {}",
                       f.path, l.parse_off, kind, size, why, l.tid));
    }
    // Next segment of this thread.
    if (c.seg + 1 >= c.seg_end) return false;
    ++c.seg;
    begin_segment(c);
  }
}

// Tops the window up to kWindow events once it is down to half: parsing in batches keeps the
// per-event cost low, and at least kWindow / 2 events are always looked ahead.
void TraceSet::fill(Cursor& c) {
  Live& l = *c.live;
  if (l.waiting() >= kWindow / 2) return;
  while (!l.done && l.waiting() < kWindow && l.force_at == kNoForce)
    if (!parse_one(c)) l.done = true;
}

uint64_t TraceSet::key(const Cursor& c) const {
  const Live& l = *c.live;
  if (l.force_at != kNoForce)
    for (size_t i = l.head; i < l.tail; ++i)
      if (l.win[i].at == l.force_at) return l.win[i].order;
  return l.win[l.head].order;
}

bool TraceSet::load(Cursor& c) {
  c.live = std::make_unique<Live>();
  c.seg = c.seg_begin;
  c.state = State::kLive;
  begin_segment(c);
  fill(c);
  if (c.live->waiting() == 0) {
    c.live.reset();
    c.state = State::kDone;
    return false;
  }
  return true;
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
  for (auto& m : modules_) m->clear();
  mute_ = started_;
  started_ = true;
  consumed_ = 0;
  owed_ = false;
  heap_.clear();
  has_earliest_ = false;
  // Each thread's first window is read once here, for its key (a call written after the calls it
  // contains may be its earliest event) and the earliest start, then dropped: a thread holds
  // memory only from when the merge reaches it. Cursors were created file by file, each file's
  // threads in order: index order is rank.
  for (uint32_t i = 0; i < cursors_.size(); ++i) {
    Cursor& c = cursors_[i];
    c.live.reset();
    c.state = State::kUnloaded;
    if (!load(c)) continue;
    c.first_key = key(c);
    const Live& l = *c.live;
    for (size_t k = l.head; k < l.tail; ++k) {
      const uint64_t ts = reinterpret_cast<const tf::EventHeader*>(l.buf.get() + l.win[k].at)->ts_ns;
      if (!has_earliest_ || ts < earliest_ts_) earliest_ts_ = ts, earliest_file_ = c.file, has_earliest_ = true;
    }
    c.live.reset();
    c.state = State::kUnloaded;
    heap_.push_back({c.first_key, i, i});
  }
  for (size_t i = heap_.size(); i-- > 0;) sift_down(i);
}

bool ModuleList::add(Module m) {
  const size_t n = n_.load(std::memory_order_relaxed);
  if (n >= kMax) return false;
  auto& chunk = chunks_[n / kChunk];
  if (!chunk) chunk = std::make_unique<std::array<Module, kChunk>>();
  (*chunk)[n % kChunk] = std::move(m);
  n_.store(n + 1, std::memory_order_release);
  return true;
}

void TraceSet::add_module(uint32_t file, const tf::EventHeader& h) {
  const auto& e = reinterpret_cast<const tf::ModuleEvent&>(h);
  Module m;
  const auto* tail = reinterpret_cast<const char*>(&e + 1);
  if (e.path_len) m.path.assign(tail, e.path_len);
  else if (e.flags & tf::kModuleMain) m.path = files_[file].exe;
  m.bias = e.bias;
  m.text_start = e.text_start;
  m.text_end = e.text_end;
  m.ts_ns = e.h.ts_ns;
  m.build_id.assign(reinterpret_cast<const char*>(e.build_id), e.build_id_len);
  m.flags = e.flags;
  if (!modules_[file]->add(std::move(m)) && !modules_full_warned_[file]) {
    modules_full_warned_[file] = true;
    warn(fmt::format("{}: more than {} loaded objects recorded; the rest are ignored (their stack "
                     "frames stay unresolved)",
                     files_[file].path, ModuleList::kMax));
  }
}

bool TraceSet::earliest(uint64_t& mono_ns, uint32_t& file) const {
  if (!has_earliest_) return false;
  mono_ns = earliest_ts_;
  file = earliest_file_;
  return true;
}

void TraceSet::refresh_top() {
  Cursor& c = cursors_[heap_[0].cursor];
  fill(c);
  if (c.live->waiting() == 0) {
    c.live.reset();
    c.state = State::kDone;
    heap_[0] = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(0);
    return;
  }
  heap_[0].key = key(c);
  // Usually the same thread has the next event too: one comparison with the runner-up instead of
  // a full sift.
  const size_t n = heap_.size();
  if (n > 1) {
    const size_t r = n > 2 && heap_[2] < heap_[1] ? 2 : 1;
    if (heap_[r] < heap_[0]) sift_down(0);
  }
}

void TraceSet::describe(const Cursor& c, const Pending& p, Event& ev) const {
  ev.h = reinterpret_cast<const tf::EventHeader*>(c.live->buf.get() + p.at);
  ev.file = c.file;
  ev.pid = files_[c.file].pid;
  ev.tid = p.tid;
  ev.thread_uid = p.uid;
  ev.order_ns = p.order;
  ev.offset = p.file_off;
}

void TraceSet::scan(const std::function<void(const Event&)>& f) {
  owed_ = false;
  heap_.clear();
  for (Cursor& c : cursors_) {
    c.live.reset();
    if (!load(c)) continue;
    Live& l = *c.live;
    Event ev;
    for (;;) {
      for (; l.head < l.tail; ++l.head) {
        describe(c, l.win[l.head], ev);
        f(ev);
      }
      l.force_at = kNoForce;  // order does not matter here
      if (l.done) break;
      fill(c);
      if (l.waiting() == 0) break;
    }
    c.live.reset();
    c.state = State::kDone;
  }
}

bool TraceSet::next(Event& ev) {
  // The event handed out last stays valid until now: only now may its cursor read over it.
  if (owed_) {
    owed_ = false;
    refresh_top();
  }
  for (;;) {
    if (heap_.empty()) return false;
    Cursor& c = cursors_[heap_[0].cursor];
    if (c.state == State::kLive) break;
    // The same first window as in start(): its warnings were given then.
    const bool mute = mute_;
    mute_ = true;
    const bool loaded = load(c);
    mute_ = mute;
    if (!loaded) {
      heap_[0] = heap_.back();
      heap_.pop_back();
      if (!heap_.empty()) sift_down(0);
      continue;
    }
    heap_[0].key = key(c);
    sift_down(0);
  }
  Cursor& c = cursors_[heap_[0].cursor];
  Live& l = *c.live;
  size_t pick = l.head;
  if (l.force_at != kNoForce) {
    for (size_t i = l.head; i < l.tail; ++i)
      if (l.win[i].at == l.force_at) pick = i;
    l.force_at = kNoForce;
  }
  const Pending p = l.win[pick];
  if (pick == l.head) {
    ++l.head;
  } else {
    std::memmove(l.win + pick, l.win + pick + 1, (l.tail - pick - 1) * sizeof(Pending));
    --l.tail;
  }
  describe(c, p, ev);
  if (ev.h->kind == uint16_t(tf::EventKind::kModule)) add_module(c.file, *ev.h);
  consumed_ += ev.h->size;
  owed_ = true;
  return true;
}

}  // namespace httptrace::analyzer
