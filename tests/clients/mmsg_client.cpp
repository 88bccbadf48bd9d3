// mmsg_client: one HTTP exchange over a connected loopback TCP pair, both ends in this process,
// moved only with sendmmsg/recvmmsg (no real program we know uses them on TCP). The client end
// connect()s, the server end is accept()ed, so both are tracked connections when traced.
//
//   mmsg_client       client: sendmmsg of a GET split over two messages (request line and Host
//                     in the first); server: recvmmsg (MSG_WAITFORONE) until the blank line,
//                     then sendmmsg of the status + headers and the body as two messages; client:
//                     recvmmsg until the whole response is in. Then the error paths: recvmmsg with
//                     MSG_DONTWAIT and nothing pending (EAGAIN), and sendmmsg after the peer shut
//                     its end and closed (EPIPE, MSG_NOSIGNAL).
//
// Prints one line per step, with results and errno names, so a traced and an untraced run can be
// compared line for line. Exit 0 on success, 1 on a failure (message on stderr).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr char kRequestHead[] = "GET /mmsg HTTP/1.1\r\nHost: 127.0.0.1\r\n";
constexpr char kRequestTail[] = "Connection: close\r\n\r\n";
constexpr char kResponseHead[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n";
constexpr char kResponseBody[] = "hello";

int fail(const char* what) {
  std::fprintf(stderr, "mmsg_client: %s: %s\n", what, std::strerror(errno));
  return 1;
}

// Sends two buffers as two messages in one call; returns the call's result, bytes in *moved.
int send_two(int fd, const char* a, const char* b, size_t* moved) {
  iovec v[2] = {{const_cast<char*>(a), std::strlen(a)}, {const_cast<char*>(b), std::strlen(b)}};
  mmsghdr m[2] = {};
  m[0].msg_hdr.msg_iov = &v[0];
  m[0].msg_hdr.msg_iovlen = 1;
  m[1].msg_hdr.msg_iov = &v[1];
  m[1].msg_hdr.msg_iovlen = 1;
  const int r = sendmmsg(fd, m, 2, MSG_NOSIGNAL);
  *moved = 0;
  for (int i = 0; i < r; ++i) *moved += m[i].msg_len;
  return r;
}

// recvmmsg into up to three 16-byte buffers until `want` bytes or EOF; false on an error.
bool receive(int fd, size_t want, std::string* out) {
  for (int calls = 0; calls < 1000 && out->size() < want; ++calls) {
    char buf[3][16];
    iovec v[3];
    mmsghdr m[3] = {};
    for (int i = 0; i < 3; ++i) {
      v[i] = {buf[i], sizeof buf[i]};
      m[i].msg_hdr.msg_iov = &v[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    const int r = recvmmsg(fd, m, 3, MSG_WAITFORONE, nullptr);
    if (r < 0) return false;
    bool eof = false;
    for (int i = 0; i < r; ++i) {
      if (m[i].msg_len == 0) eof = true;
      out->append(buf[i], m[i].msg_len);
    }
    if (eof) break;
  }
  return true;
}

const char* errno_name(int e) {
  switch (e) {
    case 0: return "0";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    default: return "other";
  }
}

}  // namespace

int main() {
  const int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls, 4) != 0 ||
      getsockname(ls, reinterpret_cast<sockaddr*>(&a), &alen) != 0)
    return fail("listen");
  const int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail("connect");
  const int s = accept(ls, nullptr, nullptr);
  if (s < 0) return fail("accept");
  std::printf("port %d\n", ntohs(a.sin_port));

  size_t moved;
  int r = send_two(c, kRequestHead, kRequestTail, &moved);
  std::printf("client sendmmsg: %d messages, %zu bytes\n", r, moved);
  if (r < 0) return fail("client sendmmsg");
  const size_t req_len = std::strlen(kRequestHead) + std::strlen(kRequestTail);
  std::string req;
  if (!receive(s, req_len, &req)) return fail("server recvmmsg");
  std::printf("server received %zu bytes, request %s\n", req.size(),
              req == std::string(kRequestHead) + kRequestTail ? "intact" : "DAMAGED");

  r = send_two(s, kResponseHead, kResponseBody, &moved);
  std::printf("server sendmmsg: %d messages, %zu bytes\n", r, moved);
  if (r < 0) return fail("server sendmmsg");
  const size_t resp_len = std::strlen(kResponseHead) + std::strlen(kResponseBody);
  std::string resp;
  if (!receive(c, resp_len, &resp)) return fail("client recvmmsg");
  std::printf("client received %zu bytes, response %s\n", resp.size(),
              resp == std::string(kResponseHead) + kResponseBody ? "intact" : "DAMAGED");

  // Nothing pending: EAGAIN, the buffers untouched.
  char buf[8] = "unset";
  iovec v = {buf, sizeof buf};
  mmsghdr m = {};
  m.msg_hdr.msg_iov = &v;
  m.msg_hdr.msg_iovlen = 1;
  errno = 0;
  r = recvmmsg(c, &m, 1, MSG_DONTWAIT, nullptr);
  std::printf("recvmmsg nothing pending: %d %s buffer %s\n", r, errno_name(errno), buf);

  // The server end goes away; the first write may still be accepted by the kernel, a later one
  // fails with EPIPE (ECONNRESET once the peer's RST is in).
  close(s);
  int err = 0;
  r = 0;
  for (int i = 0; i < 100 && r >= 0; ++i) {
    errno = 0;
    r = send_two(c, kRequestHead, kRequestTail, &moved);
    err = errno;
  }
  std::printf("sendmmsg after peer closed: %d %s\n", r,
              err == EPIPE || err == ECONNRESET ? "EPIPE-or-ECONNRESET" : errno_name(err));
  close(c);
  close(ls);
  return 0;
}
