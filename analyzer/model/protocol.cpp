#include "analyzer/model/protocol.h"

namespace httptrace::analyzer {

CallEvidence read_call(const DataCall& call, bool inbound, HttpRequestView& request, HttpResponseView& response) {
  CallEvidence e;
  const bool request_side = call.is_send != inbound;
  using K = tf::CaptureKind;
  if (call.capture == K::kH2Frames) {
    e.protocol = Protocol::kH2;
    e.h2_frames = true;
  } else if (request_side && (call.capture == K::kHttpReq || call.capture == K::kOpaque)) {
    if (sniff_h2_preface(call.cap)) {
      e.protocol = Protocol::kH2;
    } else if (call.capture == K::kHttpReq && sniff_request(call.cap, request, call.flags & tf::kDataCaptureCut)) {
      e.has_request = true;
      e.protocol = Protocol::kHttp1;
    }
  } else if (!request_side && call.capture == K::kHttpResp) {
    if (sniff_response(call.cap, response)) {
      e.has_response = true;
      e.protocol = Protocol::kHttp1;
    }
  }
  return e;
}

}  // namespace httptrace::analyzer
