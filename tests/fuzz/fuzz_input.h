// The fuzz input as a trace file: the reader opens paths, so each input is written to one memfd
// (no disk, no cleanup) named by its /proc/self/fd path.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace httptrace::fuzz {

inline const std::string& as_trace_file(const uint8_t* data, size_t size) {
  static int fd = memfd_create("fuzz.trace", MFD_CLOEXEC);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  return path;
}

}  // namespace httptrace::fuzz
