#include "analyzer/report/row_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <queue>

namespace httptrace::analyzer {

namespace {

// On disk, each row: key.start, key.pid, key.conn, seq, len, then len bytes. Native byte order:
// the file lives only as long as this process.
constexpr size_t kRecordHead = 8 + 4 + 4 + 8 + 4;
constexpr size_t kReadChunk = 256u << 10;

int open_temp(std::string& error) {
  const char* dir = std::getenv("TMPDIR");
  std::string d = dir && *dir ? dir : "/tmp";
  int fd = open(d.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string templ = d + "/httptrace-rows.XXXXXX";
  fd = mkostemp(templ.data(), O_CLOEXEC);
  if (fd < 0) {
    error = d + ": " + std::strerror(errno);
    return -1;
  }
  unlink(templ.c_str());
  return fd;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

template <class T> void put(std::string& out, const T& v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
template <class T> T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

// Reads one sorted run back, a chunk at a time; the current row is always whole in buf.
class RowSpool::RunReader {
 public:
  RunReader(int fd, Run run) : fd_(fd), pos_(run.begin), end_(run.end) {}
  // Loads the next row; false at the end of the run or on a read error (ok() tells which).
  bool next() {
    head_ += len_;
    len_ = 0;
    if (!ensure(kRecordHead)) return false;
    const char* p = buf_.data() + head_;
    key_.start = get<uint64_t>(p);
    key_.pid = get<int32_t>(p + 8);
    key_.conn = get<uint32_t>(p + 12);
    seq_ = get<uint64_t>(p + 16);
    const uint32_t body = get<uint32_t>(p + 24);
    if (!ensure(kRecordHead + body)) {
      ok_ = false;  // the run ended inside a row we wrote ourselves: the file was damaged
      return false;
    }
    len_ = kRecordHead + body;
    return true;
  }
  std::string_view row() const { return {buf_.data() + head_ + kRecordHead, len_ - kRecordHead}; }
  const RowKey& key() const { return key_; }
  uint64_t seq() const { return seq_; }
  bool ok() const { return ok_; }

 private:
  // Makes n bytes from head_ available; false at the end of the run.
  bool ensure(size_t n) {
    if (filled_ - head_ >= n) return true;
    buf_.erase(0, head_);
    filled_ -= head_;
    head_ = 0;
    if (buf_.size() < std::max(n, kReadChunk)) buf_.resize(std::max(n, kReadChunk));
    while (filled_ < n && pos_ < end_) {
      const size_t want = std::min<uint64_t>(buf_.size() - filled_, end_ - pos_);
      ssize_t r = pread(fd_, buf_.data() + filled_, want, off_t(pos_));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        ok_ = false;
        return false;
      }
      filled_ += size_t(r);
      pos_ += uint64_t(r);
    }
    return filled_ >= n;
  }

  int fd_;
  uint64_t pos_, end_;
  std::string buf_;
  size_t head_ = 0, len_ = 0, filled_ = 0;
  RowKey key_;
  uint64_t seq_ = 0;
  bool ok_ = true;
};

RowSpool::RowSpool(size_t budget) : budget_(budget) {}

RowSpool::~RowSpool() {
  if (fd_ >= 0) close(fd_);
}

void RowSpool::add(const RowKey& key, std::string_view row) {
  if (!no_file_ && !entries_.empty() && arena_.size() + row.size() > budget_ && !flush_run()) no_file_ = true;
  entries_.push_back({key, seq_++, arena_.size(), uint32_t(row.size())});
  arena_.append(row);
}

void RowSpool::sort_buffer() {
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.key < b.key) return true;
    if (b.key < a.key) return false;
    return a.seq < b.seq;
  });
}

bool RowSpool::flush_run() {
  if (fd_ < 0 && (fd_ = open_temp(error_)) < 0) return false;
  sort_buffer();
  const uint64_t begin = file_size_;
  std::string out;
  out.reserve(1u << 20);
  auto spill = [&] {
    if (!write_all(fd_, out.data(), out.size())) {
      error_ = std::string("temporary file: ") + std::strerror(errno);
      return false;
    }
    file_size_ += out.size();
    out.clear();
    return true;
  };
  for (const Entry& e : entries_) {
    put(out, e.key.start);
    put(out, e.key.pid);
    put(out, e.key.conn);
    put(out, e.seq);
    put(out, e.len);
    out.append(arena_, e.off, e.len);
    if (out.size() >= (1u << 20) && !spill()) return false;
  }
  if (!spill()) return false;
  runs_.push_back({begin, file_size_});
  entries_.clear();
  arena_.clear();
  return true;
}

bool RowSpool::drain(const std::function<void(std::string_view)>& emit) {
  // A last buffer that cannot be spilled (disk full) is merged from memory as one more run.
  if (!runs_.empty() && !entries_.empty() && !no_file_ && !flush_run()) no_file_ = true;
  sort_buffer();
  std::vector<std::unique_ptr<RunReader>> readers;
  for (const Run& r : runs_) readers.push_back(std::make_unique<RunReader>(fd_, r));
  const size_t memory = readers.size();  // the source index of the in-memory run
  size_t mem_next = 0;
  struct Head {
    RowKey key;
    uint64_t seq;
    size_t source;
    bool operator<(const Head& o) const {  // inverted: std::priority_queue pops the largest
      if (key < o.key) return false;
      if (o.key < key) return true;
      return seq > o.seq;
    }
  };
  std::priority_queue<Head> heap;
  bool ok = true;
  auto advance = [&](size_t source) {
    if (source == memory) {
      if (mem_next < entries_.size()) heap.push({entries_[mem_next].key, entries_[mem_next].seq, memory});
      return;
    }
    RunReader& r = *readers[source];
    if (r.next()) heap.push({r.key(), r.seq(), source});
    else ok = ok && r.ok();
  };
  for (size_t i = 0; i <= memory; ++i) advance(i);
  while (!heap.empty()) {
    const size_t source = heap.top().source;
    heap.pop();
    if (source == memory) {
      const Entry& e = entries_[mem_next++];
      emit(std::string_view(arena_).substr(e.off, e.len));
    } else {
      emit(readers[source]->row());
    }
    advance(source);
  }
  entries_.clear();
  arena_.clear();
  if (!ok && error_.empty()) error_ = "temporary file: read failed";
  return ok;
}

}  // namespace httptrace::analyzer
