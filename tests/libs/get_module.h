// The one entry point of the test modules in tests/libs/, which build/tests/dl_get dlopen()s.
//
//   ht_get(host, port, path, cafile, mode, out, cap)
//     one request on a new connection ("Connection: close"), the response read to its end;
//     writes the status line (or why it failed) to out. Returns 0 on success.
//     mode (HTTPS modules only): 0 = SSL_connect; 1 = SSL_set_connect_state + SSL_do_handshake.
#pragma once

#include <cstddef>

extern "C" __attribute__((visibility("default"))) int ht_get(const char* host, int port,
                                                             const char* path, const char* cafile,
                                                             int mode, char* out, size_t cap);
using ht_get_fn = decltype(&ht_get);
