#include "interpose/tls/gnutls_api.h"

namespace httptrace::tls {

bool GnutlsApi::fill(GnutlsApi& api, void* lib) {
  bool ok = true;
#define HTTPTRACE_LOAD(name) ok = load(api.name, lib, #name) && ok;
  HTTPTRACE_GNUTLS_HOOKED(HTTPTRACE_LOAD)
  HTTPTRACE_GNUTLS_QUERIES(HTTPTRACE_LOAD)
#undef HTTPTRACE_LOAD
#define HTTPTRACE_LOAD_OPTIONAL(name) load(api.name, lib, #name);
  HTTPTRACE_GNUTLS_OPTIONAL(HTTPTRACE_LOAD_OPTIONAL)
#undef HTTPTRACE_LOAD_OPTIONAL
  return ok;
}

CallerApis<GnutlsApi>& gnutls() {
  static constinit CallerApis<GnutlsApi> table;
  return table;
}

}  // namespace httptrace::tls
