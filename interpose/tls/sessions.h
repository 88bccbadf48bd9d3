// Per-TLS-session state of the OpenSSL and GnuTLS hooks, keyed by the library's session pointer
// (SSL* or gnutls_session_t). A fixed open-addressing table claimed with CAS: no lock and no
// allocation, because the hooks run on the program's I/O path and may run in any thread.
//
// Ownership: a TLS library forbids using one session from two threads at once, so the thread that
// is inside a call on a session is the only one touching its fields; the key's acquire/release
// hand-off orders them when a freed slot is reused by another session on another thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "interpose/record/h2_conn.h"
#include "interpose/tls/h2.h"

namespace httptrace::tls {

enum class HandshakeState : uint8_t {
  kNone = 0,     // no handshake call seen yet
  kRunning = 1,  // first handshake call seen (hs_start_ns), not finished
  kDone = 2,     // finished or failed and recorded; later calls are data only
};

struct Session {
  std::atomic<uintptr_t> key;  // kEmptyKey, kDeletedKey, or the session pointer
  uint64_t hs_start_ns;        // CLOCK_MONOTONIC at the first handshake call
  int32_t fd;                  // socket the session runs over, -1 until known
  uint32_t conn;               // the recorder's connection id for fd, 0 until known
  HandshakeState hs;
  uint8_t last_dir;            // format::Direction of the previous plaintext call, kNoDir at first
  bool h2;                     // ALPN chose h2: plaintext is framed, see tls/h2.h
  H2Cursor h2_dir[2];          // indexed by format::Direction; used when h2_conn is null
  h2::Conn* h2_conn;           // decoding state (record/h2_conn.h), claimed at the first h2 call
  bool h2_claimed;             // a claim was tried (the pool may have been full)
  bool h2_lost;                // h2_conn went away mid-connection: no frame walk is in step now
};

inline constexpr uintptr_t kEmptyKey = 0;
inline constexpr uintptr_t kDeletedKey = 1;
inline constexpr uint8_t kNoDir = 0xff;
inline constexpr size_t kSessionSlots = 4096;  // power of two; live TLS sessions per process

// The session for key, created (fields reset) if absent. nullptr when the table is full or key is
// not a pointer; callers then pass the call through unrecorded.
Session* session_get(const void* key);
// The session for key, or nullptr.
Session* session_find(const void* key);
// Frees the slot (SSL_free / gnutls_deinit). s must come from session_get/find of this thread.
void session_release(Session* s);

// Test hook: forget every session (the table is process-global).
void sessions_reset_for_test();

}  // namespace httptrace::tls
