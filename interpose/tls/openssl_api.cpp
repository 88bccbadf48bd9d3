#include "interpose/tls/openssl_api.h"

namespace httptrace::tls {

bool OpensslApi::fill(OpensslApi& api, void* lib) {
  bool ok = true;
#define HTTPTRACE_LOAD(name) ok = load(api.name, lib, #name) && ok;
  HTTPTRACE_OPENSSL_HOOKED(HTTPTRACE_LOAD)
  HTTPTRACE_OPENSSL_QUERIES(HTTPTRACE_LOAD)
#undef HTTPTRACE_LOAD
#define HTTPTRACE_LOAD_OPTIONAL(name) load(api.name, lib, #name);
  HTTPTRACE_OPENSSL_OPTIONAL(HTTPTRACE_LOAD_OPTIONAL)
#undef HTTPTRACE_LOAD_OPTIONAL
  return ok;
}

CallerApis<OpensslApi>& openssl() {
  static constinit CallerApis<OpensslApi> table;
  return table;
}

}  // namespace httptrace::tls
