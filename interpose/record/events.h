// Recording of the libc-level events (socket life-cycle, DNS, process), called by the libc hooks
// after the real call returned. Each function is a no-op when the process is not recording; each
// expects to run inside an ErrnoSaver (it may make syscalls of its own).
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <cstdint>

#include "common/trace_format.h"

namespace httptrace {

// Converts an AF_INET/AF_INET6 address, or an AF_UNIX one (family only: the path goes in an
// AddrPathEvent); false (and out zeroed) for anything else.
bool to_addr(const sockaddr* sa, socklen_t len, format::Addr& out);

// AF_INET/AF_INET6 stream sockets are tracked from socket(); AF_UNIX stream sockets from their
// connect() or accept() (is_stream), so the many that a process makes and never connects, or
// connects only to the C library's own daemons, cost nothing.
bool is_tcp(int domain, int type);
bool is_stream(int domain, int type);

void on_socket(int fd, int domain, int type, int protocol, uint64_t ts);
// A connect() that returned rc (err = its errno). Adopts an untracked TCP or Unix stream socket
// (a Unix one, or one created before we were loaded or by a raw syscall) when it connects.
void on_connect(int fd, const sockaddr* addr, socklen_t len, uint64_t t0, uint64_t t1, int rc,
                int err);
// listen(): a listening socket is not a connection; it stops being tracked (its SocketEvent
// stays, with no connect: readers do not report it).
void on_listen(int fd);
// accept()/accept4() on listen_fd returned fd; addr holds addr_len valid bytes of the peer's
// address (what the kernel wrote, within the program's buffer) or is null: an AcceptEvent, and
// fd is tracked as a new connection.
void on_accept(int listen_fd, int fd, const sockaddr* addr, socklen_t addr_len, uint64_t t0,
               uint64_t t1);
// getsockopt(SO_ERROR) on a socket with a pending connect.
void on_so_error(int fd, int so_error, uint64_t ts);

// close(): untrack_for_close() runs before the real close (the number can be handed to another
// thread the moment the kernel frees it), record_close() after it with the connection it had.
uint32_t untrack_for_close(int fd);
void record_close(int fd, uint32_t conn, int err, format::CloseHow how, uint64_t ts);
// close_range()/closefrom(): untracks and records every tracked fd in [first, last].
void on_close_range(unsigned first, unsigned last, uint64_t ts);

// A call that is not close() gave out descriptor number fd. If we still track that number, the
// socket was closed where we could not see it (libuv closes with syscall(SYS_close)): record the
// close now and forget it, so the new file's reads and writes are not taken for the socket's.
void on_new_fd(int fd, uint64_t ts);

// dup2/dup3 over a tracked newfd implicitly closes it: call before the real call, like close.
uint32_t untrack_for_dup_target(int oldfd, int newfd);
// After a successful dup/dup2/dup3/fcntl(F_DUPFD*): newfd now refers to oldfd's connection.
void on_dup(int oldfd, int newfd, uint64_t ts);

void record_dns(format::DnsCall call, const char* host, uint64_t t0, uint64_t t1, int error,
                const format::Addr* addrs, int naddr);
// Collects up to 8 distinct addresses from a getaddrinfo result.
int collect_addrs(const addrinfo* ai, format::Addr* out, int cap);
int collect_addrs(const hostent* he, format::Addr* out, int cap);

void on_fork_parent(int child_pid, uint64_t ts, format::ForkHow how = format::ForkHow::kFork);

// What an exec hook keeps on its stack between on_exec() and the real exec.
struct ExecHandover {
  char entry[1024];       // "HTTPTRACE_EXEC_FDS=<pid>:<fd>=<conn>,..." (exec_env.h)
  int closed_fd[64];      // close-on-exec sockets recorded as closed, in case the exec fails
  uint32_t closed_conn[64];
  int nclosed = 0;
};
// Just before exec: an ExecEvent; each tracked socket marked close-on-exec is recorded as closed
// (the exec closes it); the others are written into h.entry for the new image to adopt. Returns
// h.entry, or nullptr when there is nothing to hand over. Does nothing in a vfork child.
const char* on_exec(const char* path, uint64_t ts, ExecHandover& h);
// The exec returned: the close-on-exec sockets are still open and tracked again.
void on_exec_failed(const ExecHandover& h);
// In the new image, before main: fd, a socket the previous image had as parent_conn, is tracked
// again under a new id (InheritEvent kExecInherit).
void on_exec_inherit(int fd, unsigned parent_conn);

}  // namespace httptrace
