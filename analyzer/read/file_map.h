// Read-only mappings of trace files, safe against a file truncated while it is read.
//
// The reader parses events in place in a mapping (no copy into its own buffers). A file cut short
// under it (another program truncating it, logrotate copytruncate) turns every access past the new
// end into SIGBUS. A process-wide handler, installed with the first mapping, puts anonymous zero
// pages under the faulting address of one of these mappings and notes the lowest faulted offset;
// the access is retried and reads zeros. The reader checks fault_offset() as it parses and treats
// everything from there on as lost, with the same warning as a short read. A consumer holding an
// event at that moment reads zeros (kind 0 is no event kind, lengths 0), never a crash. A SIGBUS
// outside these mappings goes to the action that was there before (the default: the process dies,
// as it would have).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace httptrace::analyzer {

class FileMap {
 public:
  FileMap() = default;
  ~FileMap() { unmap(); }
  FileMap(const FileMap&) = delete;
  FileMap& operator=(const FileMap&) = delete;

  // Maps len bytes of fd read-only; false (and nothing mapped) if the file cannot be mapped or
  // every guard slot is taken: the caller then reads with pread().
  bool map(int fd, size_t len);
  void unmap();
  bool mapped() const { return base_ != nullptr; }
  const uint8_t* data() const { return base_; }
  size_t size() const { return len_; }

  // The lowest file offset (a page start) where an access faulted, or UINT64_MAX.
  uint64_t fault_offset() const { return fault_slot()->load(std::memory_order_acquire); }
  // Where the handler notes it (valid while mapped).
  const std::atomic<uint64_t>* fault_slot() const;
  // Lets the kernel drop the pages of [off, off + n) from this process (they stay in the page
  // cache): memory follows what is being read, not how much of the file was read.
  void release(uint64_t off, uint64_t n) const;

  static size_t page_size();

 private:
  const uint8_t* base_ = nullptr;
  size_t len_ = 0;
  int slot_ = -1;
};

}  // namespace httptrace::analyzer
