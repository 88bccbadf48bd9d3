#include "interpose/tls/openssl_api.h"

namespace httptrace::tls {

bool OpensslApi::fill(OpensslApi& api, void* lib) {
  bool ok = true;
#define HTTPTRACE_LOAD(name) ok = load(api.name, lib, #name) && ok;
  HTTPTRACE_OPENSSL_HOOKED(HTTPTRACE_LOAD)
  HTTPTRACE_OPENSSL_QUERIES(HTTPTRACE_LOAD)
#undef HTTPTRACE_LOAD
  return ok;
}

ApiTable<OpensslApi>& openssl() {
  static constinit ApiTable<OpensslApi> table;
  return table;
}

}  // namespace httptrace::tls
