// The one way a symbol leaves libhttptrace.so: everything else is hidden (-fvisibility=hidden),
// and interpose/hooks/exports.map lists exactly the names marked with this.
#pragma once

#define HT_EXPORT extern "C" __attribute__((visibility("default")))
