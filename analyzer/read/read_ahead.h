// The reader on a thread of its own, a few batches ahead of its caller. Reading (the kernel's
// copy of the file, the merge of the threads' streams, parsing) is a third of what a report
// costs on a trace of short connections; on a second core it overlaps the model's work instead
// of adding to it. Events come out in exactly the order TraceSet::next() gives them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

class ReadAhead {
 public:
  // Starts reading traces (already start()ed) at once. Until the destructor has run, only this
  // object may use traces (its modules() excepted: they are safe to read meanwhile).
  explicit ReadAhead(TraceSet& traces);
  ~ReadAhead();  // stops the reading thread, also mid-stream
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // The next events in order, valid until the next call; empty at the end. Rethrows what the
  // reading thread threw.
  std::span<const Event> next_batch();
  // TraceSet::consumed_bytes() as of the end of the batch last handed out.
  uint64_t consumed_bytes() const { return consumed_; }

  static constexpr size_t kBatchEvents = 4096;
  static constexpr size_t kBatchBytes = 1 << 20;  // events are at most 64 KiB: a batch ~1 MiB
  static constexpr size_t kBatches = 4;

 private:
  struct Batch {
    std::vector<Event> events;
    // The events' own bytes, copied (the reader's buffers move on): room for kBatchBytes and
    // then one more event of the largest size, so filling never moves them.
    std::unique_ptr<uint64_t[]> bytes;
    uint64_t consumed = 0;
  };
  void run();
  bool fill(Batch& b);  // false at the end of the stream

  TraceSet& traces_;
  Batch batches_[kBatches];
  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t filled_ = 0;    // batches the reader has finished, in total
  uint64_t taken_ = 0;     // batches handed out (the last one is still in use)
  bool done_ = false;      // the reader has finished: filled_ is final
  bool stop_ = false;      // the caller is gone
  std::exception_ptr error_;
  uint64_t consumed_ = 0;
  std::thread thread_;
};

}  // namespace httptrace::analyzer
