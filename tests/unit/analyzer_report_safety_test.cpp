// Reports on hostile traces: timestamps far outside the others must not write outside a bar, and
// no byte a trace controls may reach the terminal as a control sequence.
#include <cctype>
#include <cstring>
#include <sstream>

#include <gtest/gtest.h>

#include "analyzer/report/duration_text.h"
#include "analyzer/report/printable.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000, ms = 1000 * us;

std::string golden_trace() {
  std::string f = __FILE__;
  std::FILE* in = std::fopen((f.substr(0, f.rfind('/')) + "/../golden/session.trace").c_str(), "rb");
  std::string bytes;
  if (!in) return bytes;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) bytes.append(buf, n);
  std::fclose(in);
  return bytes;
}

// Every line with a bar is exactly `width` columns wide, whatever the times were.
void expect_bars_fit(const std::string& out, size_t width, const std::string& what) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find('|') == std::string::npos) continue;
    EXPECT_EQ(columns(line), width) << what << ": " << line;
  }
}

std::string reports_of(const std::string& path, bool color) {
  TraceSet ts;
  OpenError err;
  if (!ts.add(path, err)) return "";
  ts.start();
  std::string out = capture_output([&](std::FILE* f) { write_timeline(ts, f, {color, 100}); });
  ts.start();
  out += capture_output([&](std::FILE* f) { write_reuse(ts, f); });
  return out;
}

// The reproduction, generalised: any 8 aligned bytes of the golden trace set to a value
// far past every other timestamp (or to all ones) must still give bars inside their row.
TEST(TimelineSafety, AnyEightBytesFarInTheFuture) {
  const std::string good = golden_trace();
  ASSERT_GT(good.size(), 4096u);
  TempDir dir;
  const std::string path = dir.file("bad.trace");
  const uint64_t values[] = {uint64_t{1} << 62, ~uint64_t{0}, uint64_t{1} << 40};
  size_t readable = 0;
  for (size_t off = sizeof(format::FileHeader); off + 8 <= good.size(); off += 8) {
    for (uint64_t v : values) {
      std::string bad = good;
      std::memcpy(bad.data() + off, &v, 8);
      ASSERT_TRUE(TraceBuilder::write_file(path, bad));
      const std::string out = reports_of(path, false);
      readable += !out.empty();
      expect_bars_fit(out, 100, "offset " + std::to_string(off));
      if (::testing::Test::HasFailure()) return;  // one example is enough
    }
  }
  EXPECT_GT(readable, 100u);
}

TEST(TimelineSafety, HugeDurations) {
  for (uint64_t dur : {uint64_t{1} << 62, ~uint64_t{0} - 5, uint64_t{1} << 45}) {
    TraceBuilder b;
    b.dns(1, 1 * ms, "example.com", dur, {ipv4("10.0.0.1")});
    b.socket(1, 2 * ms, 1, 3);
    b.connect(1, 2 * ms + 10, 1, 3, ipv4("10.0.0.1", 80), dur);
    b.tls_handshake(1, 3 * ms, 1, 3, dur);
    b.send(1, 4 * ms, 1, 10, dur, "GET / HTTP/1.1");
    b.recv(1, 5 * ms, 1, 10, dur, "HTTP/1.1 200 OK");
    b.close(1, 6 * ms, 1, 3);
    TempDir dir;
    TraceSet ts;
    ASSERT_TRUE(open_built(ts, dir, {&b}));
    std::string out = capture_output([&](std::FILE* f) { write_timeline(ts, f, {false, 100}); });
    expect_bars_fit(out, 100, "dur " + std::to_string(dur));
  }
}

// A trace spanning all of 2^64 ns on the narrowest axis: the tick step once wrapped to 1 ns and
// the axis took 2^64 ticks (a hang the fuzzer found; tests/fuzz/reproducers/timeline-axis-hang).
TEST(TimelineSafety, WholeRangeOnANarrowAxisEnds) {
  for (int width : {20, 100}) {
    TraceBuilder b;
    b.dns(1, 0, "example.com", ~uint64_t{0}, {ipv4("10.0.0.1")});
    b.socket(1, 0, 1, 3);
    b.connect(1, 0, 1, 3, ipv4("10.0.0.1", 80), ~uint64_t{0});
    TempDir dir;
    TraceSet ts;
    ASSERT_TRUE(open_built(ts, dir, {&b}));
    std::string out = capture_output([&](std::FILE* f) { write_timeline(ts, f, {false, width}); });
    EXPECT_NE(out.find("connect"), std::string::npos) << out;
  }
}

// Output a terminal will show: with colour, only our own SGR sequences (ESC [ digits m) and
// newlines; without colour, no control byte but the newline at all.
void expect_terminal_safe(const std::string& out, bool color) {
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c == '\n') continue;
    if (c == 0x1b && color) {
      size_t j = i + 1;
      ASSERT_LT(j, out.size());
      ASSERT_EQ(out[j], '[') << "at " << i;
      ++j;
      while (j < out.size() && (std::isdigit(static_cast<unsigned char>(out[j])) || out[j] == ';')) ++j;
      ASSERT_LT(j, out.size());
      ASSERT_EQ(out[j], 'm') << "not an SGR sequence at " << i << ": " << out.substr(i, 20);
      i = j;
      continue;
    }
    ASSERT_FALSE(c < 0x20 || c == 0x7f) << "control byte " << int(c) << " at " << i << " in\n" << out;
  }
  // C1 controls (CSI is U+009B) and bidi overrides must not appear either.
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos);
  EXPECT_EQ(out.find("\xe2\x80\xae"), std::string::npos);
}

// A trace whose host name, request target, protocol strings and TLS texts hold terminal escape
// sequences, a C1 CSI, a bidi override and invalid UTF-8.
TraceBuilder hostile_trace() {
  const std::string evil = "evil\x1b]0;owned\x07\x1b[2J\xc2\x9b" "31m\xe2\x80\xae\xff.example";
  TraceBuilder b;
  b.dns(1, 1 * ms, evil, 100 * us, {ipv4("10.0.0.9")});
  b.socket(1, 2 * ms, 1, 3);
  b.connect(1, 2 * ms + 10, 1, 3, ipv4("10.0.0.9", 443), 100 * us);
  tf::TlsHandshakeEvent e{};
  e.h = TraceBuilder::head(tf::EventKind::kTlsHandshake, 1, 3 * ms);
  e.dur_ns = 1 * ms;
  e.fd = 3;
  e.error = 1;
  e.version = 0x0304;
  e.library = uint8_t(tf::TlsLibrary::kOpenssl);
  std::strcpy(e.cipher, "AES\x1b[5mBLINK");
  std::strcpy(e.sni, evil.c_str());
  std::strcpy(e.alpn, "h\x1b[8m");
  std::strcpy(e.error_text, "bad\x1b[1Arecord\r");
  b.add(1, e);
  // Plaintext through the TLS hooks (the flag), so the exchange is built from these calls.
  b.data(1, 5 * ms, 1, 3, tf::Direction::kSend, 40, 10 * us, tf::CaptureKind::kHttpReq,
         "GET /\x1b[31mred\x1b[0m\x08\x7f HTTP/1.1", tf::kDataTlsPlaintext);
  b.data(1, 6 * ms, 1, 3, tf::Direction::kRecv, 100, 10 * us, tf::CaptureKind::kHttpResp, "HTTP/1.1 200 OK",
         tf::kDataTlsPlaintext);
  b.close(1, 7 * ms, 1, 3);
  return b;
}

TEST(TerminalSafety, HostileStringsAreEscapedInTimelineAndReuse) {
  TraceBuilder b = hostile_trace();
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  for (bool color : {false, true}) {
    ts.start();
    std::string timeline = capture_output([&](std::FILE* f) { write_timeline(ts, f, {color, 100}); });
    expect_terminal_safe(timeline, color);
    // Escaped, not dropped: the user can still see what the trace said.
    EXPECT_NE(timeline.find("evil\\x1b]0;owned\\x07\\x1b[2J\\u{009b}31m\\u{202e}\\xff.example"), std::string::npos)
        << timeline;
    EXPECT_NE(timeline.find("\\x1b[31mred"), std::string::npos) << timeline;
  }
  ts.start();
  std::string reuse = capture_output([&](std::FILE* f) { write_reuse(ts, f); });
  expect_terminal_safe(reuse, false);
  EXPECT_NE(reuse.find("evil\\x1b]0;owned"), std::string::npos) << reuse;
}

TEST(DurationText, UnitsAndAlwaysNineColumnsAtMost) {
  EXPECT_EQ(duration_text(0), "0ns");
  EXPECT_EQ(duration_text(999), "999ns");
  EXPECT_EQ(duration_text(12'340), "12.3µs");
  EXPECT_EQ(duration_text(12'350), "12.4µs");  // half up
  EXPECT_EQ(duration_text(4'560'000), "4.56ms");
  EXPECT_EQ(duration_text(1'005'000), "1.01ms");
  EXPECT_EQ(duration_text(1'230'000'000), "1.23s");
  EXPECT_EQ(duration_text(123'000'000'000), "2m03s");
  EXPECT_EQ(duration_text(uint64_t{3600 + 420} * 1'000'000'000), "1h07m");
  EXPECT_EQ(duration_text(uint64_t{3 * 86400 + 4 * 3600} * 1'000'000'000), "3d04h");
  EXPECT_EQ(duration_text(~uint64_t{0}), ">999d");
  for (uint64_t v = 1; v != 0; v <<= 1) {
    EXPECT_LE(columns(duration_text(v)), 9u) << v;
    EXPECT_LE(columns(duration_text(v - 1)), 9u) << v - 1;
  }
}

TEST(Printable, EscapesControlsAndInvalidUtf8KeepsText) {
  EXPECT_EQ(printable("plain.example:443/a?b=c"), "plain.example:443/a?b=c");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("\x1b[2J\t\r\n\x7f\\"), "\\x1b[2J\\t\\r\\n\\x7f\\\\");
  EXPECT_EQ(printable("\xc2\x9b\xc2\x85"), "\\u{009b}\\u{0085}");         // C1 CSI, NEL
  EXPECT_EQ(printable("\xe2\x80\xae\xe2\x81\xa6"), "\\u{202e}\\u{2066}");  // bidi override, isolate
  EXPECT_EQ(printable("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");                 // invalid, overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");                 // a UTF-16 surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");     // past U+10FFFF
  EXPECT_EQ(printable("\xe6\x97"), "\\xe6\\x97");                             // cut short
  EXPECT_EQ(columns("caf\xc3\xa9"), 4u);
  EXPECT_EQ(cut_to_columns("caf\xc3\xa9s", 4), "caf~");
  EXPECT_EQ(cut_to_columns("\xc3\xa9\xc3\xa9\xc3\xa9", 2), "\xc3\xa9~");
  EXPECT_EQ(cut_to_columns("short", 10), "short");
}

}  // namespace
}  // namespace httptrace::testing
