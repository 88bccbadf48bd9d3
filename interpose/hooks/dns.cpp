// Interposed name lookups: one DnsEvent per finished lookup, with the first 8 distinct addresses.
#include <cerrno>

#include "interpose/record/events.h"
#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/recorder.h"

using namespace httptrace;
using namespace httptrace::libc;
using format::DnsCall;

HT_EXPORT int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                          addrinfo** res) {
  auto real = real_getaddrinfo();
  if (real == nullptr) return EAI_SYSTEM;  // with errno = ENOSYS: getaddrinfo's own convention
  const uint64_t t0 = now_ns();
  const int rc = real(node, service, hints, res);
  const uint64_t t1 = now_ns();
  if (node != nullptr) {
    ErrnoSaver keep;
    format::Addr addrs[8];
    const int n = rc == 0 && res != nullptr ? collect_addrs(*res, addrs, 8) : 0;
    record_dns(DnsCall::kGetaddrinfo, node, t0, t1, rc, addrs, n);
  }
  return rc;
}

HT_EXPORT hostent* gethostbyname(const char* name) {
  auto real = real_gethostbyname();
  if (real == nullptr) {
    errno = ENOSYS;
    h_errno = NO_RECOVERY;
    return nullptr;
  }
  const uint64_t t0 = now_ns();
  hostent* he = real(name);
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  format::Addr addrs[8];
  const int n = collect_addrs(he, addrs, 8);
  record_dns(DnsCall::kGethostbyname, name, t0, t1, he != nullptr ? 0 : h_errno, addrs, n);
  return he;
}

HT_EXPORT int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen,
                              hostent** result, int* h_errnop) {
  auto real = real_gethostbyname_r();
  if (real == nullptr) return ENOSYS;
  const uint64_t t0 = now_ns();
  const int rc = real(name, ret, buf, buflen, result, h_errnop);
  const uint64_t t1 = now_ns();
  // ERANGE: the caller retries with a larger buffer; the retry is the lookup that counts.
  if (rc != ERANGE) {
    ErrnoSaver keep;
    const hostent* he = result != nullptr ? *result : nullptr;
    format::Addr addrs[8];
    const int n = collect_addrs(he, addrs, 8);
    int error = 0;
    if (he == nullptr) error = h_errnop != nullptr && *h_errnop != 0 ? *h_errnop : rc;
    record_dns(DnsCall::kGethostbynameR, name, t0, t1, error, addrs, n);
  }
  return rc;
}
