#include "interpose/record/events.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

#include "interpose/record/exec_env.h"
#include "interpose/record/h2_conn.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"
#include "interpose/record/stacks.h"
#include "interpose/record/sys.h"

namespace httptrace {

using format::EventKind;

namespace {

void local_addr(int fd, format::Addr& out) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    to_addr(reinterpret_cast<sockaddr*>(&ss), len, out);
  }
}

// The path of an AF_UNIX address: a pathname without its NUL, an abstract name with its leading
// NUL; empty for an unnamed socket.
size_t unix_path(const sockaddr* sa, socklen_t len, const char** path) {
  constexpr size_t kOff = offsetof(sockaddr_un, sun_path);
  if (sa == nullptr || sa->sa_family != AF_UNIX || len <= static_cast<socklen_t>(kOff)) return 0;
  const char* p = reinterpret_cast<const sockaddr_un*>(sa)->sun_path;
  size_t n = static_cast<size_t>(len) - kOff;
  if (n > sizeof(sockaddr_un::sun_path)) n = sizeof(sockaddr_un::sun_path);
  if (p[0] != '\0') n = strnlen(p, n);
  *path = p;
  return n;
}

void emit_path(int fd, uint32_t conn, uint8_t which, const sockaddr* sa, socklen_t len,
               uint64_t ts) {
  const char* path = nullptr;
  const size_t n = unix_path(sa, len, &path);
  if (n == 0) return;
  auto ev = new_event<format::AddrPathEvent>(EventKind::kAddrPath, conn, ts);
  ev.fd = fd;
  ev.which = which;
  ev.path_len = static_cast<uint16_t>(n);
  trace_writer().emit(&ev, sizeof(ev), path, n);
}

// Our own end of a Unix connection, when it has a name (a client's usually has none).
void emit_local_path(int fd, uint32_t conn, uint64_t ts) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    emit_path(fd, conn, 1, reinterpret_cast<sockaddr*>(&ss), len, ts);
  }
}

// The C library's name-service cache daemon: every getaddrinfo/getpwnam tries it first (and
// finds nothing, ENOENT, where nscd does not run). That is libc's business, not the program's.
// Likewise nss-systemd's user database (getpwnam with "systemd" in nsswitch.conf).
bool is_libc_daemon(const sockaddr* sa, socklen_t len) {
  const char* path = nullptr;
  const size_t n = unix_path(sa, len, &path);
  constexpr const char* kPrefixes[] = {"/var/run/nscd/", "/run/nscd/", "/run/systemd/userdb/"};
  for (const char* p : kPrefixes) {
    const size_t pn = strlen(p);
    if (n > pn && memcmp(path, p, pn) == 0) return true;
  }
  return false;
}

void emit_socket(int fd, uint32_t conn, int domain, int type, int protocol, uint64_t ts) {
  auto ev = new_event<format::SocketEvent>(EventKind::kSocket, conn, ts);
  ev.fd = fd;
  ev.domain = domain;
  ev.type = type;
  ev.protocol = protocol;
  trace_writer().emit(&ev, sizeof(ev));
}

void emit_connect_done(int fd, uint32_t conn, int error, format::ConnectDoneHow how,
                       uint64_t ts) {
  auto ev = new_event<format::ConnectDoneEvent>(EventKind::kConnectDone, conn, ts);
  ev.fd = fd;
  ev.error = error;
  ev.how = static_cast<uint8_t>(how);
  if (error == 0) local_addr(fd, ev.local);
  trace_writer().emit(&ev, sizeof(ev));
}

// A socket we did not see created (made before we were loaded, or by a raw syscall) that is now
// connecting somewhere over TCP: start tracking it as if socket() had just been called.
uint32_t adopt(int fd, uint64_t ts) {
  if (!FdTable::in_range(fd)) return 0;
  int type = 0, domain = 0, protocol = 0;
  socklen_t len = sizeof(int);
  if (sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return 0;
  len = sizeof(int);
  if (sys::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return 0;
  if (!is_stream(domain, type)) return 0;
  len = sizeof(int);
  sys::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
  const uint32_t conn = next_conn_id();
  g_fd_table.track(fd, conn);
  emit_socket(fd, conn, domain, type, protocol, ts);
  return conn;
}

}  // namespace

bool to_addr(const sockaddr* sa, socklen_t len, format::Addr& out) {
  out = {};
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in;
    memcpy(&in, sa, sizeof(in));
    out.family = AF_INET;
    out.port = ntohs(in.sin_port);
    memcpy(out.ip, &in.sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6;
    memcpy(&in6, sa, sizeof(in6));
    out.family = AF_INET6;
    out.port = ntohs(in6.sin6_port);
    out.scope_id = in6.sin6_scope_id;
    memcpy(out.ip, &in6.sin6_addr, 16);
    return true;
  }
  if (sa->sa_family == AF_UNIX && len >= static_cast<socklen_t>(sizeof(sa_family_t))) {
    out.family = AF_UNIX;
    return true;
  }
  return false;
}

bool is_tcp(int domain, int type) {
  // SOCK_NONBLOCK / SOCK_CLOEXEC ride in the type argument.
  return (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM;
}

bool is_stream(int domain, int type) {
  return is_tcp(domain, type) || (domain == AF_UNIX && (type & 0xf) == SOCK_STREAM);
}

void on_socket(int fd, int domain, int type, int protocol, uint64_t ts) {
  if (fd < 0) return;
  on_new_fd(fd, ts);  // whatever the new socket is, the number's old socket is gone
  if (!is_tcp(domain, type) || !FdTable::in_range(fd) || !recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  const uint32_t conn = next_conn_id();
  g_fd_table.track(fd, conn);
  emit_socket(fd, conn, domain, type, protocol, ts);
}

void on_connect(int fd, const sockaddr* addr, socklen_t len, uint64_t t0, uint64_t t1, int rc,
                int err) {
  format::Addr peer;
  if (!to_addr(addr, len, peer) || !recording()) return;
  const bool unix_domain = peer.family == AF_UNIX;
  if (unix_domain && is_libc_daemon(addr, len)) return;
  ReentryGuard guard;
  if (!guard) return;
  const uint64_t word = g_fd_table.load(fd);
  uint32_t conn = FdTable::conn_of(word);
  const int error = rc == 0 ? 0 : err;
  if (conn != 0 && FdTable::pending(word)) {
    // Some programs poll a non-blocking connect by calling connect() again.
    if (error == EALREADY || error == EINPROGRESS || error == EINTR) return;
    if (g_fd_table.clear_pending(fd, conn)) {
      emit_connect_done(fd, conn, error == EISCONN ? 0 : error, format::ConnectDoneHow::kPoll, t1);
    }
    return;
  }
  if (conn == 0 && (conn = adopt(fd, t0)) == 0) return;

  auto ev = new_event<format::ConnectEvent>(EventKind::kConnect, conn, t0);
  ev.dur_ns = t1 - t0;
  ev.fd = fd;
  ev.error = error;
  ev.peer = peer;
  // An interrupted blocking connect goes on in the background, exactly like EINPROGRESS.
  const bool pending = error == EINPROGRESS || error == EINTR;
  if (error == 0 || pending) local_addr(fd, ev.local);
  if (pending) g_fd_table.set_pending(fd, conn);
  trace_writer().emit(&ev, sizeof(ev));
  if (unix_domain) {
    emit_path(fd, conn, 0, addr, len, t0);
    if (error == 0 || pending) emit_local_path(fd, conn, t0);
  }
  record_stack(t0, conn);
}

void on_listen(int fd) {
  if (g_fd_table.load(fd) == 0 || foreign_process()) return;
  g_fd_table.untrack(fd);
}

void on_accept(int listen_fd, int fd, const sockaddr* addr, socklen_t addr_len, uint64_t t0,
               uint64_t t1) {
  if (fd < 0) return;
  on_new_fd(fd, t1);
  if (!FdTable::in_range(fd) || !recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  auto ev = new_event<format::AcceptEvent>(EventKind::kAccept, 0, t1);
  // Our own end tells the family (and is needed anyway); the peer is what accept() wrote, when
  // the program asked for it.
  sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  if (sys::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return;
  if (!to_addr(reinterpret_cast<sockaddr*>(&local), local_len, ev.local)) return;
  if (ev.local.family == AF_UNIX) {
    int type = 0;
    socklen_t tl = sizeof(type);
    if (sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) return;
  }
  sockaddr_storage peer;
  socklen_t peer_len = sizeof(peer);
  const sockaddr* peer_sa = addr;
  if (addr != nullptr && addr_len >= static_cast<socklen_t>(sizeof(sa_family_t))) {
    peer_len = addr_len;
  } else if (sys::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) {
    peer_sa = reinterpret_cast<sockaddr*>(&peer);
  } else {
    peer_sa = nullptr;
  }
  if (peer_sa != nullptr) to_addr(peer_sa, peer_len, ev.peer);
  const uint32_t conn = next_conn_id();
  g_fd_table.track(fd, conn);
  ev.h.conn = conn;
  ev.dur_ns = t1 - t0;
  ev.fd = fd;
  ev.listen_fd = listen_fd;
  trace_writer().emit(&ev, sizeof(ev));
  if (ev.local.family == AF_UNIX) {
    if (peer_sa != nullptr) emit_path(fd, conn, 0, peer_sa, peer_len, t1);
    emit_path(fd, conn, 1, reinterpret_cast<sockaddr*>(&local), local_len, t1);
  }
}

void on_so_error(int fd, int so_error, uint64_t ts) {
  const uint64_t word = g_fd_table.load(fd);
  const uint32_t conn = FdTable::conn_of(word);
  if (conn == 0 || !FdTable::pending(word) || !recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  if (so_error == 0) {
    // SO_ERROR is also 0 while the handshake is still under way: only a peer proves success.
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (sys::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
  }
  if (g_fd_table.clear_pending(fd, conn)) {
    emit_connect_done(fd, conn, so_error, format::ConnectDoneHow::kSoError, ts);
  }
}

uint32_t untrack_for_close(int fd) {
  if (fd >= 0 && fd == trace_writer().fd() && !foreign_process()) trace_writer().note_fd_gone(fd);
  const uint64_t word = g_fd_table.load(fd);
  if (word == 0) return 0;
  if (foreign_process()) return 0;  // a vfork child: the table is its parent's
  return FdTable::conn_of(g_fd_table.untrack(fd));
}

namespace {
void emit_close(int fd, uint32_t conn, int err, format::CloseHow how, uint64_t ts) {
  auto ev = new_event<format::CloseEvent>(EventKind::kClose, conn, ts);
  ev.fd = fd;
  ev.error = err;
  ev.how = static_cast<uint8_t>(how);
  trace_writer().emit(&ev, sizeof(ev));
}
}  // namespace

void record_close(int fd, uint32_t conn, int err, format::CloseHow how, uint64_t ts) {
  if (how == format::CloseHow::kClose) h2::release_conn(conn);  // an h2c connection's pool slot
  if (conn == 0 || !recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  emit_close(fd, conn, err, how, ts);
}

void on_close_range(unsigned first, unsigned last, uint64_t ts) {
  const int hw = g_fd_table.high_water();
  const int mine = trace_writer().fd();
  const bool takes_ours = mine >= 0 && static_cast<unsigned>(mine) >= first &&
                          static_cast<unsigned>(mine) <= last;
  if ((hw == 0 || first >= static_cast<unsigned>(hw)) && !takes_ours) return;
  if (foreign_process()) return;
  if (takes_ours) trace_writer().note_fd_gone(mine);
  const unsigned end = last < static_cast<unsigned>(hw) ? last + 1 : static_cast<unsigned>(hw);
  for (unsigned fd = first; fd < end; ++fd) {
    const uint32_t conn = FdTable::conn_of(g_fd_table.untrack(static_cast<int>(fd)));
    if (conn != 0) record_close(static_cast<int>(fd), conn, 0, format::CloseHow::kClose, ts);
  }
}

void on_new_fd(int fd, uint64_t ts) {
  if (g_fd_table.load(fd) == 0 || foreign_process()) return;
  const uint32_t conn = FdTable::conn_of(g_fd_table.untrack(fd));
  if (conn != 0) record_close(fd, conn, 0, format::CloseHow::kClose, ts);
}

uint32_t untrack_for_dup_target(int oldfd, int newfd) {
  if (oldfd == newfd) return 0;
  return untrack_for_close(newfd);
}

void on_dup(int oldfd, int newfd, uint64_t ts) {
  const uint32_t conn = conn_of_fd(oldfd);
  if (conn == 0 || newfd < 0 || oldfd == newfd || !recording()) return;
  if (foreign_process()) return;
  ReentryGuard guard;
  if (!guard) return;
  g_fd_table.track(newfd, conn);
  auto ev = new_event<format::DupEvent>(EventKind::kDup, conn, ts);
  ev.oldfd = oldfd;
  ev.newfd = newfd;
  trace_writer().emit(&ev, sizeof(ev));
}

void record_dns(format::DnsCall call, const char* host, uint64_t t0, uint64_t t1, int error,
                const format::Addr* addrs, int naddr) {
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  auto ev = new_event<format::DnsEvent>(EventKind::kDns, 0, t0);
  ev.dur_ns = t1 - t0;
  ev.error = error;
  ev.lookup_id = next_lookup_id();
  ev.call = static_cast<uint8_t>(call);
  const size_t host_len = host != nullptr ? strnlen(host, 1024) : 0;
  ev.host_len = static_cast<uint16_t>(host_len);
  if (naddr > 8) naddr = 8;
  for (int i = 0; i < naddr; ++i) ev.addrs[i] = addrs[i];
  ev.naddr = static_cast<uint16_t>(naddr > 0 ? naddr : 0);
  trace_writer().emit(&ev, sizeof(ev), host, host_len);
  record_stack(t0, 0);
}

namespace {
bool add_distinct(const format::Addr& a, format::Addr* out, int& n, int cap) {
  for (int i = 0; i < n; ++i) {
    if (out[i].family == a.family && memcmp(out[i].ip, a.ip, sizeof(a.ip)) == 0) return n < cap;
  }
  out[n++] = a;
  return n < cap;
}
}  // namespace

int collect_addrs(const addrinfo* ai, format::Addr* out, int cap) {
  int n = 0;
  // The list is the resolver's; bound the walk anyway in case it is corrupt.
  for (int i = 0; ai != nullptr && i < 1024 && n < cap; ai = ai->ai_next, ++i) {
    format::Addr a;
    if (!to_addr(ai->ai_addr, ai->ai_addrlen, a)) continue;
    a.port = 0;
    if (!add_distinct(a, out, n, cap)) break;
  }
  return n;
}

int collect_addrs(const hostent* he, format::Addr* out, int cap) {
  int n = 0;
  if (he == nullptr || he->h_addr_list == nullptr) return 0;
  const size_t alen = he->h_addrtype == AF_INET ? 4 : he->h_addrtype == AF_INET6 ? 16 : 0;
  if (alen == 0 || static_cast<size_t>(he->h_length) != alen) return 0;
  for (int i = 0; he->h_addr_list[i] != nullptr && i < 1024 && n < cap; ++i) {
    format::Addr a = {};
    a.family = static_cast<uint16_t>(he->h_addrtype);
    memcpy(a.ip, he->h_addr_list[i], alen);
    if (!add_distinct(a, out, n, cap)) break;
  }
  return n;
}

// Fork and exec are recorded only in a file that exists already: alone they are not about the
// network, and a process that never touched it gets no file (lifecycle.cpp).
void on_fork_parent(int child_pid, uint64_t ts, format::ForkHow how) {
  if (child_pid <= 0 || !recording() || !trace_writer().active()) return;
  ReentryGuard guard;
  if (!guard) return;
  auto ev = new_event<format::ForkEvent>(EventKind::kFork, 0, ts);
  ev.child_pid = child_pid;
  ev.how = static_cast<uint8_t>(how);
  trace_writer().emit(&ev, sizeof(ev));
}

namespace {
// Appends the decimal digits of v at out[pos], within cap; returns the new position.
size_t append_uint(char* out, size_t pos, size_t cap, unsigned long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (pos + static_cast<size_t>(n) >= cap) return cap;
  while (n > 0) out[pos++] = digits[--n];
  return pos;
}
}  // namespace

const char* on_exec(const char* path, uint64_t ts, ExecHandover& h) {
  h.entry[0] = '\0';
  h.nclosed = 0;
  if (foreign_process() || !recording()) return nullptr;
  ReentryGuard guard;
  if (!guard) return nullptr;
  if (trace_writer().active()) {
    auto ev = new_event<format::ExecEvent>(EventKind::kExec, 0, ts);
    const size_t len = path != nullptr ? strnlen(path, 4096) : 0;
    ev.path_len = static_cast<uint32_t>(len);
    trace_writer().emit(&ev, sizeof(ev), path, len);
  }
  const size_t cap = sizeof(h.entry);
  size_t pos = strlen(kExecFdsVar);
  memcpy(h.entry, kExecFdsVar, pos);
  h.entry[pos++] = '=';
  pos = append_uint(h.entry, pos, cap, static_cast<unsigned long>(recorder_pid()));
  if (pos < cap) h.entry[pos++] = ':';
  const size_t header = pos;
  const int hw = g_fd_table.high_water();
  for (int fd = 0; fd < hw; ++fd) {
    const uint32_t conn = FdTable::conn_of(g_fd_table.load(fd));
    if (conn == 0) continue;
    const int flags = sys::fcntl(fd, F_GETFD, 0);
    if (flags < 0) continue;  // closed behind our back: the next user of the number says so
    if ((flags & FD_CLOEXEC) != 0) {
      if (h.nclosed == static_cast<int>(sizeof(h.closed_fd) / sizeof(h.closed_fd[0]))) continue;
      g_fd_table.untrack(fd);
      h.closed_fd[h.nclosed] = fd;
      h.closed_conn[h.nclosed++] = conn;
      emit_close(fd, conn, 0, format::CloseHow::kClose, ts);
      continue;
    }
    // "fd=conn," while it fits (what does not fit is simply not adopted).
    size_t p = append_uint(h.entry, pos, cap, static_cast<unsigned long>(fd));
    if (p < cap) h.entry[p++] = '=';
    p = append_uint(h.entry, p, cap, conn);
    if (p + 1 >= cap) break;
    h.entry[p++] = ',';
    pos = p;
  }
  if (pos == header) return nullptr;
  h.entry[pos - 1] = '\0';  // the last ','
  return h.entry;
}

void on_exec_failed(const ExecHandover& h) {
  for (int i = 0; i < h.nclosed; ++i) g_fd_table.track(h.closed_fd[i], h.closed_conn[i]);
}

void on_exec_inherit(int fd, unsigned parent_conn) {
  if (!FdTable::in_range(fd) || !recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  int type = 0, domain = 0;
  socklen_t len = sizeof(int);
  if (sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return;
  len = sizeof(int);
  if (sys::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return;
  if (!is_stream(domain, type)) return;
  const uint32_t conn = next_conn_id();
  g_fd_table.track(fd, conn);
  auto ev = new_event<format::InheritEvent>(EventKind::kExecInherit, conn, now_ns());
  ev.fd = fd;
  ev.parent_conn = parent_conn;
  trace_writer().emit(&ev, sizeof(ev));
}

}  // namespace httptrace
