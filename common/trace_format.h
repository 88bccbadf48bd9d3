// The httptrace on-disk format: the one definition shared by the writer (interpose/) and the
// reader (analyzer/). docs/trace-format.md explains it in prose; this file is the authority.
//
// A trace file is one process's recording:
//
//   [FileHeader: kHeaderSize bytes][segment 0][segment 1]...        each segment kSegmentSize bytes
//
// The writer maps the whole file MAP_SHARED. Each thread claims whole segments (one atomic add on
// FileHeader::segments_claimed per segment) and is the only writer of its segments, so the hot path
// writes no shared cache line. Inside a segment, events are appended one after another; after an
// event's bytes are written, SegmentHeader::committed is advanced with a release store. A reader
// (even of the file of a process killed with -9) trusts bytes [0, committed) of each segment and
// nothing past it. A segment whose magic is not kSegmentMagic was claimed but never started (or the
// file ended first) and is skipped.
//
// Format evolution. A reader skips an event kind it does not know (every event carries its size)
// and warns once per kind, so adding a kind or appending bytes to a struct needs nothing more.
// A change that would make an older reader *wrong* (not merely blind) either raises
// kMinReaderVersion or, for something a file may or may not use, sets a bit in
// FileHeader::features; a reader refuses a file with a feature bit it does not know.
//
// Version 2 adds: per-cause drop counters (FileHeader::dropped_by_cause, LostEvent in the stream),
// a unique id per thread (SegmentHeader::thread_uid; tids are reused), segments handed from an
// exited thread to a new one (ThreadEvent; this is why a v1 reader must refuse v2 files),
// accepted connections (AcceptEvent), Unix-domain addresses (AddrPathEvent), sockets adopted
// across exec (kExecInherit), more allow-listed HTTP header lines in captures, and the
// kDataCaptureCut flag. Readers of version 2 still read version 1 files.
//
// All integers are little-endian (x86_64 / aarch64 host order); the header records the byte order
// so a reader on another machine refuses rather than misreads. Records are plain structs with fixed
// layout, checked by static_assert below: no bitfields, no pointers, no implicit padding.
#pragma once

#include <cstddef>
#include <cstdint>

namespace httptrace::format {

inline constexpr char kMagic[8] = {'H', 'T', 'T', 'P', 'T', 'R', 'C', '\n'};
inline constexpr uint32_t kVersion = 2;            // what this writer produces
inline constexpr uint32_t kMinReaderVersion = 2;   // oldest reader that can read it
inline constexpr uint32_t kFeaturesKnown = 0;      // FileHeader::features bits this code knows
inline constexpr uint32_t kByteOrderMark = 0x01020304;
inline constexpr uint32_t kHeaderSize = 4096;
inline constexpr uint32_t kSegmentSize = 64 * 1024;
inline constexpr uint32_t kSegmentMagic = 0x31474553;  // "SEG1"
inline constexpr size_t kExeMax = 512;
inline constexpr size_t kArgvMax = 3072;

// Offset 0 of the file. Fields marked "atomic" are updated while the program runs, through
// std::atomic_ref; everything else is written once before the first segment is claimed.
struct FileHeader {
  char magic[8];                // kMagic
  uint32_t version;             // kVersion of the writer
  uint32_t min_reader_version;  // a reader older than this must refuse the file
  uint32_t byte_order;          // kByteOrderMark as written by the host
  uint32_t header_size;         // kHeaderSize
  uint32_t segment_size;        // kSegmentSize
  uint32_t flags;               // kFileFlag*
  int32_t pid;
  int32_t ppid;
  uint64_t mono_anchor_ns;      // CLOCK_MONOTONIC ...
  uint64_t real_anchor_ns;      // ... and CLOCK_REALTIME read at the same moment
  uint64_t segments_claimed;    // atomic: segments [0, n) may hold data (some may be unstarted)
  uint64_t dropped_events;      // atomic: events not recorded (buffer or size cap exhausted)
  uint64_t max_segments;        // HTTPTRACE_MAX_MB expressed in segments
  uint32_t exe_len;             // bytes used in exe
  uint32_t argv_len;            // bytes used in argv: NUL-separated arguments, possibly cut short
  uint32_t argc;                // the program's real argument count (argv may hold fewer)
  uint32_t features;            // kFeature* bits a reader must understand (none defined yet)
  uint64_t reserved[8];
  char exe[kExeMax];            // /proc/self/exe target, not NUL-terminated beyond exe_len
  char argv[kArgvMax];
  // Version 2. atomic: dropped_events split by DropCause (their sum is dropped_events).
  uint64_t dropped_by_cause[8];
  // atomic: fork children of this process that could not create their own trace file (a worker
  // that dropped privileges to a user who cannot write the directory); they record nothing. The
  // child writes these through its inherited view of this header. 0 in older files.
  uint64_t children_untraced;
  int32_t child_untraced_pid;    // the last such child
  int32_t child_untraced_errno;  // and why its file could not be created
  uint64_t reserved2[14];
};

// Why events were not recorded. Each lost event is counted once, in FileHeader::dropped_events,
// in dropped_by_cause[cause], and (when the thread can write again) in a LostEvent.
enum class DropCause : uint8_t {
  kSizeCap = 0,        // HTTPTRACE_MAX_MB reached
  kDiskFull = 1,       // growing the file failed (ENOSPC, EDQUOT, ...)
  kFileSizeLimit = 2,  // RLIMIT_FSIZE (ulimit -f) would be exceeded
  kTooLarge = 3,       // one event bigger than a segment's payload
  kNested = 4,         // an event from a signal handler nested deeper than the writer allows
  kTruncated = 5,      // the file was truncated or replaced under us: recording stopped
};
inline constexpr int kDropCauses = 8;  // slots in dropped_by_cause
inline constexpr uint32_t kFileFlagStacks = 1u << 0;  // HTTPTRACE_STACKS was on

// Offset 0 of every segment.
// A segment is written by one thread at a time. When a thread exits, the rest of its segment may
// be handed to a thread that starts later: that thread first writes a ThreadEvent, and the events
// after it (to the next ThreadEvent or committed) are its own. tid/thread_uid/thread_seq below
// describe the events before the first ThreadEvent.
struct SegmentHeader {
  uint32_t magic;        // kSegmentMagic, written when the owning thread starts the segment
  int32_t tid;           // the thread that writes this segment (first, if it was handed on)
  uint64_t committed;    // release-stored: bytes of whole events after this header
  uint64_t thread_seq;   // 0 for a thread's first segment, then 1, 2, ... (per thread order)
  uint64_t thread_uid;   // v2: unique per thread within the process (1, 2, ...); 0 in v1 files
  uint64_t reserved[4];
};
inline constexpr uint32_t kSegmentPayload = kSegmentSize - sizeof(SegmentHeader);

// An IPv4 or IPv6 socket address. family is AF_INET (2) or AF_INET6 (10); 0 means none.
// ip holds 4 or 16 bytes in network order; port is in host order. family AF_UNIX (1): ip and
// port are zero and the path, if the socket has one, follows in an AddrPathEvent.
struct Addr {
  uint16_t family;
  uint16_t port;
  uint32_t scope_id;
  uint8_t ip[16];
};

enum class EventKind : uint16_t {
  kDns = 1,           // DnsEvent: a name lookup finished
  kSocket = 2,        // SocketEvent: a TCP socket was created (conn id assigned)
  kConnect = 3,       // ConnectEvent: connect() returned
  kConnectDone = 4,   // ConnectDoneEvent: a connect that returned EINPROGRESS was found finished
  kData = 5,          // DataEvent: a read/write on a tracked socket or TLS session
  kClose = 6,         // CloseEvent: close() or shutdown() of a tracked socket
  kDup = 7,           // DupEvent: a tracked socket got another descriptor
  kFork = 8,          // ForkEvent: (parent side) a child process was created
  kInherit = 9,       // InheritEvent: (child side) a tracked socket existed at the fork
  kTlsHandshake = 10, // TlsHandshakeEvent: a TLS handshake finished (or failed)
  kTlsClose = 11,     // TlsCloseEvent: SSL_shutdown / SSL_free / gnutls_bye / gnutls_deinit
  kExec = 12,         // ExecEvent: the process is about to exec (its tracked sockets may survive)
  kStack = 13,        // StackEvent: call stack of the event just before it (HTTPTRACE_STACKS=1)
  kAccept = 14,       // AcceptEvent: accept()/accept4() returned a connection (conn id assigned)
  kLost = 15,         // LostEvent: this thread dropped events before this point
  kThread = 16,       // ThreadEvent: the rest of this segment belongs to another thread
  kExecInherit = 17,  // InheritEvent: a tracked socket survived exec; parent_conn = its id in the
                      //   previous image's file (same pid)
  kAddrPath = 18,     // AddrPathEvent: the AF_UNIX path of the connection's peer or local end
  kModule = 19,       // ModuleEvent: a loaded object (path, base, build-id), at file creation and
                      //   before a stack that needs objects loaded since (HTTPTRACE_STACKS=1)
  kH2Headers = 20,    // H2HeadersEvent: allow-listed fields of one HPACK-decoded h2 header block
};

// Every event starts with this. size includes the header and is a multiple of 8, so the next
// event starts at offset + size. conn is the per-process connection id given at socket() (1, 2,
// ...); 0 for events not tied to a connection. ts_ns is CLOCK_MONOTONIC at the start of the call.
// The pid comes from the FileHeader, the tid from the SegmentHeader (or the last ThreadEvent).
//
// When an event happened (what readers order by, SPEC §5): a read (DataEvent, dir kRecv) at its
// completion, ts_ns + dur_ns, the moment its data was there; a write at its start; any other event
// with a dur_ns at its completion; the rest at ts_ns; a StackEvent at the place of the event it
// follows. Events are written when their call returns, so a call that contains another (the socket
// write inside SSL_write, a signal handler's I/O) is written after it: within one thread these
// times are in order except across such nesting, which a reader repairs with a small window.
struct EventHeader {
  uint16_t kind;   // EventKind
  uint16_t size;
  uint32_t conn;
  uint64_t ts_ns;
};

// Errors are recorded as positive errno values (0 = success). getaddrinfo errors are EAI_* codes.

struct DnsEvent {            // followed by host_len bytes of host name, then padding to 8
  EventHeader h;
  uint64_t dur_ns;
  int32_t error;             // 0, or the getaddrinfo EAI_* code (negative), or h_errno for gethostbyname
  uint32_t lookup_id;        // per-process lookup number
  uint16_t naddr;            // addresses used in addrs
  uint16_t host_len;
  uint8_t call;              // DnsCall
  uint8_t pad[3];
  Addr addrs[8];             // the first 8 addresses returned (port 0)
};
enum class DnsCall : uint8_t { kGetaddrinfo = 1, kGethostbyname = 2, kGethostbynameR = 3 };

struct SocketEvent {
  EventHeader h;
  int32_t fd;
  int32_t domain;
  int32_t type;
  int32_t protocol;
};

struct ConnectEvent {        // ts_ns = call start
  EventHeader h;
  uint64_t dur_ns;           // time inside connect()
  int32_t fd;
  int32_t error;             // 0, EINPROGRESS (completion follows as ConnectDone), or the errno
  Addr peer;
  Addr local;                // getsockname after a successful connect; family 0 otherwise
};

struct ConnectDoneEvent {    // ts_ns = when the program learnt the result
  EventHeader h;
  int32_t fd;
  int32_t error;             // 0 or the SO_ERROR value
  uint8_t how;               // ConnectDoneHow
  uint8_t pad[7];
  Addr local;
};
enum class ConnectDoneHow : uint8_t { kSoError = 1, kFirstWrite = 2, kFirstRead = 3, kPoll = 4 };

enum class Direction : uint8_t { kSend = 0, kRecv = 1 };

enum class DataCall : uint8_t {
  kSend = 1, kSendto, kSendmsg, kWrite, kWritev,
  kSendfile = 6, kSpliceOut, kSendmmsg,  // v2, additive (docs/trace-format.md, Data calls)
  kRecv = 16, kRecvfrom, kRecvmsg, kRead, kReadv,
  kSpliceIn = 21, kRecvmmsg,             // v2, additive
  kSslWrite = 32, kSslWriteEx, kSslRead, kSslReadEx,
  kGnutlsSend = 48, kGnutlsRecv,
};

// DataEvent::flags
inline constexpr uint8_t kDataTlsPlaintext = 1u << 0;  // bytes seen through a TLS library hook
inline constexpr uint8_t kDataDirChange = 1u << 1;     // first call after the other direction (or first ever);
                                                       //   v2: a call the other way that began, even
                                                       //   if it has not returned, counts as "after"
inline constexpr uint8_t kDataCaptureCut = 1u << 2;    // v2: the capture's request target was cut
inline constexpr uint8_t kDataH2FramesCut = 1u << 3;   // kH2Frames: more frames started in the call than
                                                       //   fit; DATA (without END_STREAM) and control
                                                       //   frame headers were left out first
inline constexpr uint8_t kDataStatusLineMore = 1u << 4;  // kHttpResp, not at a direction change: the
                                                         //   rest of a status line the previous reads
                                                         //   cut (a client reading it a byte at a time)

// Capture: at a direction change the writer keeps a sanitised prefix of the bytes, never a body
// or a header value other than Host. Its content depends on capture_kind:
//   kCaptureNone      nothing recorded
//   kCaptureHttpReq   the request line, then "\r\n"-separated lines of the allow-listed request
//                     headers present, in their order: Host, Connection, traceparent (v1: Host
//                     only). A target longer than kTargetMax is cut there (flag kDataCaptureCut)
//                     and the line goes on with " HTTP/1.x" as sent, so it still parses; a
//                     header line is kept whole or not at all (no cut Host, ever). Header names
//                     are written as listed here, the value trimmed of surrounding blanks. Only
//                     the bytes of that one call are seen: headers sent in a later call are not.
//   kCaptureHttpResp  the status line, then the allow-listed response header lines present:
//                     Connection, Keep-Alive (v1: the status line only); after an interim head
//                     (1xx but 101) the heads that follow in the same call, each as "\r\n", its
//                     status line and its allow-listed lines (at most three). When the read ended inside
//                     the status line, the next reads (at most kStatusLineReads) keep it going with
//                     kDataStatusLineMore: their bytes up to and including the line's "\n", printable
//                     ASCII only (curl reads an HTTP proxy's answer to CONNECT a byte at a time).
//   kCaptureTls       up to kTlsCaptureMax bytes of TLS records starting at a record header
//                     (ClientHello / ServerHello are public handshake metadata, not payload)
//   kCaptureOpaque    up to 8 bytes, only enough to recognise a protocol (e.g. h2 preface)
//   kCaptureH2Frames  TLS plaintext of an h2 session (ALPN "h2"), at every call, not only at a
//                     direction change: the 9-byte headers (length, type, flags, stream id) of
//                     the frames that start in this call, up to kH2CaptureMaxFrames, never any
//                     payload. HEADERS frames (type 1) sent/received count requests/responses.
//                     When the call started more frames, the headers of HEADERS, PUSH_PROMISE,
//                     RST_STREAM, GOAWAY and END_STREAM frames are kept over the others and the
//                     event has kDataH2FramesCut. The same capture is used for h2c (a plain
//                     socket whose first bytes sent or received were the client preface).
//   kTlsBody          the body of a TLS handshake record whose 5-byte header was all the previous
//                     read on this socket returned (OpenSSL's socket BIO reads a record's header
//                     and body in two calls); up to kTlsCaptureMax bytes: a ServerHello is public
enum class CaptureKind : uint8_t { kNone = 0, kHttpReq = 1, kHttpResp = 2, kTls = 3, kOpaque = 4,
                                   kH2Frames = 5, kTlsBody = 6 };
inline constexpr size_t kHttpCaptureMax = 768;   // v1: 256
inline constexpr unsigned kStatusLineReads = 128;
inline constexpr size_t kTargetMax = 256;
inline constexpr size_t kTlsCaptureMax = 2048;
inline constexpr size_t kH2CaptureMaxFrames = 112;  // 1008 bytes (28 before H2HeadersEvent)

struct DataEvent {           // followed by cap_len captured bytes, then padding to 8
  EventHeader h;
  int64_t result;            // bytes transferred (>= 0) or -errno
  uint64_t dur_ns;           // time inside the call
  int32_t fd;
  uint8_t dir;               // Direction
  uint8_t call;              // DataCall
  uint8_t flags;             // kData*
  uint8_t capture_kind;      // CaptureKind
  uint16_t cap_len;
  uint8_t pad[6];
};

struct CloseEvent {
  EventHeader h;
  int32_t fd;
  int32_t error;             // errno of the call, 0 on success
  uint8_t how;               // CloseHow
  uint8_t pad[7];
};
enum class CloseHow : uint8_t { kClose = 1, kShutdownRd = 2, kShutdownWr = 3, kShutdownRdWr = 4 };

struct DupEvent {            // conn = the connection; newfd now refers to it too
  EventHeader h;
  int32_t oldfd;
  int32_t newfd;
};

struct ForkEvent {
  EventHeader h;
  int32_t child_pid;
  uint8_t how;               // ForkHow
  uint8_t pad[3];
};
enum class ForkHow : uint8_t { kFork = 1, kVfork = 2, kPosixSpawn = 3 };

struct InheritEvent {        // conn = the id given in the child; parent_conn = the parent's id
  EventHeader h;
  int32_t fd;
  uint32_t parent_conn;
};

enum class TlsLibrary : uint8_t { kOpenssl = 1, kGnutls = 2, kWire = 3 };

struct TlsHandshakeEvent {   // ts_ns = first handshake call on this session
  EventHeader h;
  uint64_t dur_ns;           // first call .. the call that completed (or failed)
  int32_t fd;
  int32_t error;             // 0, or the library's error code (SSL_get_error / gnutls error)
  uint16_t version;          // wire version: 0x0303 = TLS 1.2, 0x0304 = TLS 1.3
  uint8_t library;           // TlsLibrary
  uint8_t resumed;           // 1 if the session was resumed
  uint8_t pad[4];
  char cipher[64];           // NUL-terminated
  char sni[256];
  char alpn[32];
  char error_text[64];       // library's short description when error != 0
};

struct TlsCloseEvent {
  EventHeader h;
  int32_t fd;
  uint8_t library;           // TlsLibrary
  uint8_t how;               // TlsCloseHow
  uint8_t pad[2];
};
enum class TlsCloseHow : uint8_t { kShutdown = 1, kFree = 2 };

struct ExecEvent {           // followed by path_len bytes of the program path, then padding
  EventHeader h;
  uint32_t path_len;
  uint32_t pad;
};

struct AcceptEvent {         // ts_ns = when accept() returned; conn = the new connection's id
  EventHeader h;
  uint64_t dur_ns;           // time inside accept()
  int32_t fd;                // the new descriptor
  int32_t listen_fd;
  Addr peer;
  Addr local;
};

struct LostEvent {           // written by a thread before its next event after it lost some
  EventHeader h;             // ts_ns = when the first of them was lost
  uint64_t count;
  uint8_t cause;             // DropCause
  uint8_t pad[7];
};

struct ThreadEvent {         // the events after this one in this segment are this thread's
  EventHeader h;
  int32_t tid;
  uint32_t pad;
  uint64_t thread_uid;
  uint64_t thread_seq;       // position of this run in the thread's chain, as SegmentHeader's
};

struct AddrPathEvent {       // follows the Connect/Accept event of an AF_UNIX connection;
  EventHeader h;             // followed by path_len bytes (an abstract name starts with NUL)
  int32_t fd;
  uint8_t which;             // 0 peer, 1 local
  uint8_t pad;
  uint16_t path_len;
};

struct StackEvent {          // followed by depth return addresses (uint64_t)
  EventHeader h;
  uint32_t depth;
  uint32_t pad;
};

// An HTTP/2 header block (HEADERS + CONTINUATION, or PUSH_PROMISE), HPACK-decoded inside the
// traced process; only the allow-listed fields below are kept, never another header's value.
// Written when the call that completed the block returns, just before that call's DataEvent;
// ts_ns is when that call happened (a read's completion, a write's start), so it sorts with it.
// Followed by the present fields' bytes in kH2Field order (len[i] bytes each, absent ones 0),
// then padding to 8. :path is cut at kTargetMax (kH2PathCut); the others are kept whole or left
// out when longer than their bound (method 24, authority 255, status 3, traceparent 128).
struct H2HeadersEvent {
  EventHeader h;
  uint32_t stream;           // stream id of the block (for PUSH_PROMISE: the promised stream)
  uint8_t dir;               // Direction: sent or received by the traced program
  uint8_t flags;             // kH2*
  uint8_t fields;            // 1 << kH2Field* of the fields present
  uint8_t pad;
  uint16_t len[5];           // byte length of each field, indexed by kH2Field*
  uint8_t pad2[6];
};
inline constexpr uint8_t kH2EndStream = 1u << 0;    // the HEADERS frame carried END_STREAM
inline constexpr uint8_t kH2PathCut = 1u << 1;      // :path was longer than kTargetMax
inline constexpr uint8_t kH2PushPromise = 1u << 2;  // the block came in a PUSH_PROMISE
inline constexpr int kH2FieldMethod = 0, kH2FieldPath = 1, kH2FieldAuthority = 2,
                     kH2FieldStatus = 3, kH2FieldTraceparent = 4, kH2Fields = 5;
// Longest H2HeadersEvent: header + 24 + 256 + 255 + 3 + 128 bytes of fields, padded.
inline constexpr size_t kH2HeadersMax = 40 + 672;
// A loaded object of the process (HTTPTRACE_STACKS=1 only): what the analyzer needs to map a
// recorded return address to a file and an offset in it, despite ASLR, after the process is gone.
// Written for every object loaded when the file is created, then, before a StackEvent, for the
// objects loaded since the last ones were written (dlopen, dlmopen, a library's own loads) -- so
// every address of a stack lies in an object recorded before it. An object unloaded and another
// loaded at its addresses: both are in the file, the later one with the later ts_ns.
struct ModuleEvent {         // followed by path_len bytes of path, then padding; conn 0
  EventHeader h;             // ts_ns: when the object was found loaded (at most the stack's ts)
  uint64_t bias;             // dlpi_addr: process address = file vaddr + bias (0: non-PIE program)
  uint64_t text_start;       // process addresses [text_start, text_end) span the object's
  uint64_t text_end;         //   executable PT_LOAD segments
  uint16_t path_len;         // 0 for the main program (its path is FileHeader::exe)
  uint8_t build_id_len;      // bytes of the GNU build-id (NT_GNU_BUILD_ID) in build_id; 0: none
  uint8_t flags;             // kModule*
  uint32_t pad;
  uint8_t build_id[32];      // the first build_id_len bytes (kModuleBuildIdCut: it was longer)
};
inline constexpr uint8_t kModuleMain = 1u << 0;        // the program itself
inline constexpr uint8_t kModuleVdso = 1u << 1;        // the kernel's vDSO: no file on disk
inline constexpr uint8_t kModuleBuildIdCut = 1u << 2;  // the build-id is longer than 32 bytes
inline constexpr size_t kModuleBuildIdMax = 32;

inline constexpr size_t padded(size_t n) { return (n + 7) & ~size_t{7}; }

static_assert(sizeof(FileHeader) <= kHeaderSize);
static_assert(sizeof(SegmentHeader) == 64);
static_assert(sizeof(Addr) == 24);
static_assert(sizeof(EventHeader) == 16);
static_assert(sizeof(DnsEvent) == 232);
static_assert(offsetof(DnsEvent, addrs) == 40);
static_assert(sizeof(SocketEvent) == 32);
static_assert(sizeof(ConnectEvent) == 80);
static_assert(offsetof(ConnectEvent, peer) == 32);
static_assert(sizeof(ConnectDoneEvent) == 56);
static_assert(sizeof(DataEvent) == 48);
static_assert(sizeof(CloseEvent) == 32);
static_assert(sizeof(DupEvent) == 24);
static_assert(sizeof(ForkEvent) == 24);
static_assert(sizeof(InheritEvent) == 24);
static_assert(sizeof(TlsHandshakeEvent) == 456);
static_assert(sizeof(TlsCloseEvent) == 24);
static_assert(sizeof(ExecEvent) == 24);
static_assert(sizeof(StackEvent) == 24);
static_assert(sizeof(AcceptEvent) == 80);
static_assert(sizeof(LostEvent) == 32);
static_assert(sizeof(ThreadEvent) == 40);
static_assert(sizeof(AddrPathEvent) == 24);
static_assert(sizeof(H2HeadersEvent) == 40);
static_assert(sizeof(ModuleEvent) == 80);
static_assert(offsetof(ModuleEvent, path_len) == 40 && offsetof(ModuleEvent, build_id) == 48);
static_assert(offsetof(FileHeader, exe) == 160 && offsetof(FileHeader, dropped_by_cause) == 3744);
static_assert(kSegmentSize % 4096 == 0 && kHeaderSize % 4096 == 0);

}  // namespace httptrace::format
