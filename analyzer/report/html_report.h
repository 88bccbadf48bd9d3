// `httptrace report [-o FILE.html] TRACE...`: SPEC §10, one self-contained HTML page.
//
// The page needs nothing but itself: CSS and JS are inline (html_assets.h), the data is JSON in
// <script type="application/json"> elements, no URL is ever fetched. What it holds:
// - a waterfall of the connections on one time axis (zoom, pan, hover details per phase), drawn
//   by the page's script from the streamed connection data;
// - tables written by us as plain HTML (readable without scripts, printable): summary and
//   dropped-event warning, reuse per endpoint (the `httptrace reuse` numbers, from the same
//   ReuseCollector), why new connections were opened, stale-reuse failures, the call tree of
//   each request that started a chain of calls (distributed tracing), processes.
//
// Memory and size stay bounded whatever the trace: connections are written into the page as the
// model completes them, only the first max_drawn (and at most max_exchanges exchanges in all)
// are drawn individually, and the tables keep per-endpoint and per-reason counters plus at most
// max_listed rows each; call trees keep max_call_nodes requests and draw max_drawn rows. The page
// says what was left out.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

struct HtmlReportOptions {
  uint64_t max_drawn = 5000;        // connections drawn in the waterfall
  uint64_t max_exchanges = 100000;  // exchanges drawn, over all drawn connections
  uint64_t max_listed = 1000;       // rows of each list table (replaced connections, failures)
  uint64_t max_call_nodes = 100000; // requests of call chains kept for the call trees
};

// False if writing failed.
bool write_report_html(TraceSet& traces, std::FILE* out, const HtmlReportOptions& opt = {});
// The page into path ("-": stdout), replaced atomically (AtomicOutput); false with a message on
// stderr when it could not be written.
bool write_report_file(TraceSet& traces, const std::string& path);

// Text for an HTML element or a quoted attribute: & < > " ' as references, and what a trace may
// hold that a page should not show as it is (controls, invalid UTF-8, bidi overrides) made
// visible the way printable() does it for a terminal.
void append_html_text(std::string& out, std::string_view s);

// A JSON string literal that is safe inside <script>: besides JSON's own escaping, every < > &
// as \u003c \u003e \u0026, so no "</script>" or "<!--" can end or change the element.
void append_script_json_string(std::string& out, std::string_view s);

}  // namespace httptrace::analyzer
