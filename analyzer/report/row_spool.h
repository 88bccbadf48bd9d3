// Report rows put back in the order a reader wants (a timeline: by connection start) when they
// are produced in another order (the model hands over connections as they close), in bounded
// memory: an external merge sort. Rows collect in memory up to a budget; a full buffer is sorted
// and appended as one run to an unlinked temporary file; drain() merges the runs. A trace that
// fits in the budget never touches the disk.
//
// Memory: the budget, plus one read buffer per run while draining (each the larger of 256 KiB
// and the largest row). Without a temporary file (no writable $TMPDIR) everything stays in
// memory, which is what the report did before.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace httptrace::analyzer {

struct RowKey {
  uint64_t start = 0;
  int32_t pid = 0;
  uint32_t conn = 0;
  bool operator<(const RowKey& o) const {
    if (start != o.start) return start < o.start;
    if (pid != o.pid) return pid < o.pid;
    return conn < o.conn;
  }
};

class RowSpool {
 public:
  static constexpr size_t kDefaultBudget = 32u << 20;
  explicit RowSpool(size_t budget = kDefaultBudget);
  ~RowSpool();
  RowSpool(const RowSpool&) = delete;
  RowSpool& operator=(const RowSpool&) = delete;

  void add(const RowKey& key, std::string_view row);
  // Calls emit for every row, in key order (rows with equal keys: in the order added). Call
  // once. False if the temporary file could not be written or read back (error() says why);
  // rows already emitted stay emitted.
  bool drain(const std::function<void(std::string_view)>& emit);

  size_t runs() const { return runs_.size(); }
  const std::string& error() const { return error_; }

 private:
  struct Entry {
    RowKey key;
    uint64_t seq;
    uint64_t off;
    uint32_t len;
  };
  struct Run {
    uint64_t begin, end;
  };
  class RunReader;

  void sort_buffer();
  bool flush_run();

  size_t budget_;
  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<Run> runs_;
  uint64_t seq_ = 0;
  int fd_ = -1;
  bool no_file_ = false;
  uint64_t file_size_ = 0;
  std::string error_;
};

}  // namespace httptrace::analyzer
