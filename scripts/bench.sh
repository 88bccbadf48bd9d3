#!/usr/bin/env bash
# What `make bench` runs: micro-benchmarks, hooked-vs-unhooked calls, the side-by-side overhead
# comparison against strace/ltrace/bpftrace, resident memory, and the analyzer on 10M events.
# bench/RESULTS.md explains the numbers and records one sitting.
#
#   scripts/bench.sh [PART...]     PART: micro hooks instr fixed side server memory analyzer
#                                  (default: all)
#   scripts/bench.sh --smoke       every bench binary once, minimal time; for the test runner
#
# Environment:
#   BENCH_QUICK=1    fewer runs and smaller workloads (about a third of the time)
#   BENCH_RUNS=N     runs per tool and workload in the side-by-side comparison (default 5; quick 3)
#   BENCH_OUT=DIR    where raw results go (default build/bench/results)
#   BENCH_TRACERS="untraced httptrace"  only these tools in the side-by-side comparison (default:
#                    every one installed: untraced httptrace strace strace-seccomp ltrace bpftrace)
#   BENCH_TOOL_BUDGET=S  seconds one tool may spend on one workload before its remaining runs are
#                    skipped (default 60; quick 20). ltrace needs minutes for (a) otherwise. A
#                    tool always gets at least 2 runs; the table says how many it got.
#
# Expects the binaries `make bench` builds: build/bench/*, build/libhttptrace.so, build/httptrace,
# build/tests/http_client. A part (or a tool) whose prerequisites are missing is skipped with a
# line saying why, never silently.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=$ROOT/build/bench
LIB=$ROOT/build/libhttptrace.so
CLI=$ROOT/build/httptrace
CLIENT=$ROOT/build/tests/http_client
RT=$B/run_timed
NOOP=$B/libnoop_preload.so
OUT=${BENCH_OUT:-$ROOT/build/bench/results}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${BENCH_RUNS:-3}; else RUNS=${BENCH_RUNS:-5}; fi
if [ "$QUICK" = 1 ]; then BUDGET=${BENCH_TOOL_BUDGET:-20}; else BUDGET=${BENCH_TOOL_BUDGET:-60}; fi

TMP=$(mktemp -d /tmp/httptrace-bench.XXXXXX)
NGINX_PID=""
cleanup() {
  # Only the nginx master we started (its pid file is in our own prefix); it stops its worker.
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*"; }
skip() { printf 'SKIP %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
section() { printf '\n=== %s ===\n' "$*"; }

# Google Benchmark prints this for Debian's libbenchmark build; it concerns the library, not us.
quiet_gb() { grep -v -e '^\*\*\*WARNING\*\*\* Library was built as DEBUG' -e '^Load Average'; }

build_noop() {
  [ -x "$NOOP" ] && [ "$NOOP" -nt bench/noop/noop_preload.cpp ] && return 0
  ${CXX:-g++} -O2 -std=c++20 -shared -fPIC -fvisibility=hidden -o "$NOOP" \
    bench/noop/noop_preload.cpp -ldl
}

machine() {
  say "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  say "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)," \
      "TSC flags: $(grep -m1 -o -w -E 'constant_tsc|nonstop_tsc|tsc_reliable' /proc/cpuinfo | tr '\n' ' ')"
  say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---------------------------------------------------------------------------------------------
# micro: clock, record, mapping, fd table benchmarks (every build/bench/*_bench but syscall_bench,
# which needs the preload runs below).
micro() {
  section "micro-benchmarks (median of repetitions)"
  local reps=3 mt=0.1
  [ "$QUICK" = 1 ] && reps=1 mt=0.05
  local b name
  for b in "$B"/*_bench; do
    name=$(basename "$b")
    [ "$name" = syscall_bench ] && continue
    say "--- $name"
    "$b" --benchmark_min_time=$mt --benchmark_repetitions=$reps \
      --benchmark_report_aggregates_only=true --benchmark_out="$OUT/$name.json" \
      --benchmark_out_format=json 2>&1 | quiet_gb | grep -E -v '_(mean|stddev|cv)\b'
  done
  say "--- clock_check (cross-core ordering of each timestamp source)"
  "$B/clock_check" 200000
}

# ---------------------------------------------------------------------------------------------
# hooks: the same benchmark binary, alternately run bare, under a no-op preload, under
# libhttptrace.so with HTTPTRACE_DISABLE=1, and under libhttptrace.so recording.
hooks() {
  section "hooked vs unhooked calls (syscall_bench; median of runs, real time per iteration)"
  local variants=(bare)
  if build_noop; then variants+=(noop); else skip "no-op preload: could not build $NOOP"; fi
  if [ -f "$LIB" ]; then variants+=(disabled traced); else skip "httptrace: $LIB not built"; fi
  local rounds=5 mt=0.2
  [ "$QUICK" = 1 ] && rounds=2 mt=0.1
  local r v env
  for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
      rm -rf "$TMP/hooks" && mkdir -p "$TMP/hooks"
      case $v in
        bare) env=() ;;
        noop) env=(LD_PRELOAD="$NOOP") ;;
        disabled) env=(LD_PRELOAD="$LIB" HTTPTRACE_DISABLE=1) ;;
        traced) env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/hooks/%p.trace") ;;
      esac
      env "${env[@]}" "$B/syscall_bench" --benchmark_min_time=$mt --benchmark_format=json \
        >"$OUT/syscall.$v.$r.json" 2>/dev/null || say "syscall_bench failed under $v (run $r)"
    done
  done
  python3 - "$OUT" "$rounds" "${variants[@]}" <<'EOF'
import json, statistics, sys
out, rounds, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = {}  # (bench, variant) -> [ns]
for v in variants:
    for r in range(1, rounds + 1):
        try:
            data = json.load(open(f"{out}/syscall.{v}.{r}.json"))
        except (OSError, ValueError):
            continue
        for b in data["benchmarks"]:
            times.setdefault((b["name"], v), []).append(b["real_time"])
names = sorted({n for n, _ in times}, key=lambda n: n)
head = "| benchmark | " + " | ".join(f"{v} ns" for v in variants)
extra = [v for v in variants if v != "bare"]
head += "".join(f" | {v}/bare | {v}-bare ns" for v in extra) + " |"
print(head)
print("|" + "---|" * (1 + len(variants) + 2 * len(extra)))
for n in names:
    med = {v: statistics.median(times[(n, v)]) for v in variants if (n, v) in times}
    row = f"| {n} | " + " | ".join(f"{med[v]:.0f}" if v in med else "-" for v in variants)
    for v in extra:
        if v in med and "bare" in med:
            row += f" | {med[v] / med['bare']:.3f} | {med[v] - med['bare']:+.0f}"
        else:
            row += " | - | -"
    print(row + " |")
spread = {v: [] for v in variants}
for (n, v), xs in times.items():
    if len(xs) > 1:
        spread[v].append((max(xs) - min(xs)) / statistics.median(xs))
print("run-to-run spread (max-min)/median, worst benchmark: " +
      ", ".join(f"{v} {max(s) * 100:.0f}%" for v, s in spread.items() if s))
EOF
}

# ---------------------------------------------------------------------------------------------
# side: loopback nginx as the peer; the same workloads untraced and under each tracer.
NGINX_DIR=""
HTTP_PORT=""
HTTPS_PORT=""

start_nginx() {
  have nginx || { skip "side-by-side: nginx not installed (apt-get install nginx-light)"; return 1; }
  have openssl || { skip "side-by-side: openssl CLI not installed"; return 1; }
  NGINX_DIR=$TMP/nginx
  mkdir -p "$NGINX_DIR/tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$NGINX_DIR/key.pem" -out "$NGINX_DIR/cert.pem" >/dev/null 2>&1 ||
    { skip "side-by-side: openssl could not make a certificate"; return 1; }
  local attempt
  for attempt in 1 2 3; do
    # Two ports the kernel just handed out; nginx binds them a moment later (retried if taken).
    read -r HTTP_PORT HTTPS_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
    local d=$NGINX_DIR t=$NGINX_DIR/tmp
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
error_log $d/error.log;
pid $d/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $t; proxy_temp_path $t; fastcgi_temp_path $t; uwsgi_temp_path $t; scgi_temp_path $t;
  # One connection carries every request of workloads (a), (c), (d): never close it early.
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$HTTP_PORT; listen [::1]:$HTTP_PORT;
    location / { return 200 "ok\n"; }
  }
  server {
    listen 127.0.0.1:$HTTPS_PORT ssl; listen [::1]:$HTTPS_PORT ssl;
    ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem;
    location / { return 200 "ok\n"; }
  }
}
EOF
    # nginx daemonises only after its listening sockets are bound: when this returns 0, the
    # ports accept connections. No waiting needed.
    if nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"; then
      NGINX_PID=$(cat "$d/nginx.pid")
      say "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1/::1 ports $HTTP_PORT (http) $HTTPS_PORT (https)"
      return 0
    fi
  done
  skip "side-by-side: nginx did not start: $(tail -n 2 "$NGINX_DIR/error.log")"
  return 1
}

# bpftrace script: one counting uprobe per intercepted libc/libssl function.
write_bpftrace_script() {
  local libc libssl probes="" f
  libc=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
  libssl=$(ldconfig -p | awk '/libssl\.so\.3 .*x86-64/ {print $NF; exit}')
  for f in getaddrinfo socket connect send sendto sendmsg write writev recv recvfrom recvmsg \
           read readv close shutdown; do
    probes+="uprobe:$libc:$f,"
  done
  for f in SSL_connect SSL_do_handshake SSL_read SSL_read_ex SSL_write SSL_write_ex \
           SSL_shutdown SSL_free; do
    probes+="uprobe:$libssl:$f,"
  done
  # BEGIN fires after every probe is attached: READY is the moment the workload may start.
  printf 'BEGIN { printf("READY\\n"); }\n%s { @hits = count(); }\n' "${probes%,}" >"$TMP/count.bt"
}

LTRACE_CALLS=getaddrinfo+socket+connect+send+sendto+sendmsg+write+writev+recv+recvfrom+recvmsg+read+readv+close+shutdown+SSL_connect+SSL_do_handshake+SSL_read+SSL_write+SSL_shutdown+SSL_free

# ltrace's -e matches calls made through the PLT of the named object: the program itself for our
# client, libcurl for curl.
ltrace_filter() {
  case $1 in
    curl*) local f out=""; for f in ${LTRACE_CALLS//+/ }; do out+="$f@libcurl.so.4+"; done
           printf '%s' "${out%+}" ;;
    *) printf '%s' "$LTRACE_CALLS" ;;
  esac
}

# Runs one workload under bpftrace attached by pid before the program's first instruction.
# Prints run_timed's line on stderr like every other tool.
bpftrace_run() {
  local d=$TMP/bt
  rm -rf "$d" && mkdir -p "$d" && mkfifo "$d/announce" "$d/go" "$d/out"
  "$RT" --announce "$d/announce" --gate "$d/go" -- "$@" >/dev/null 2>"$d/rt.err" &
  local rt=$! cpid="" ann out line ready=0
  exec {ann}<>"$d/announce"
  read -r -t 30 cpid <&"$ann"
  exec {ann}>&-
  if [ -z "$cpid" ]; then kill "$rt" 2>/dev/null; wait "$rt"; echo "no child pid" >&2; return 1; fi
  bpftrace -p "$cpid" "$TMP/count.bt" >"$d/out" 2>"$d/bt.err" &
  local bt=$!
  exec {out}<"$d/out"
  while read -r -t 60 line <&"$out"; do
    if [ "$line" = READY ]; then ready=1; break; fi
  done
  if [ $ready = 1 ]; then
    echo go >"$d/go"
  else
    kill "$cpid" 2>/dev/null  # the gated child: it never ran the workload
  fi
  wait "$rt"
  local rc=$?
  kill -INT "$bt" 2>/dev/null  # not yet reaped, so the pid is still bpftrace's
  wait "$bt"
  cat <&"$out" >"$d/counts"
  exec {out}<&-
  cat "$d/rt.err" >&2
  local hits
  hits=$(awk '/@hits:/ {print $2}' "$d/counts")
  echo "bpftrace_hits=${hits:-0}" >&2
  [ $ready = 1 ] || { echo "bpftrace never became ready: $(head -c 300 "$d/bt.err")" >&2; return 1; }
  return $rc
}

# run_tool TOOL WORKLOAD-ARGV... -> prints "WALL CPU" seconds (or FAIL) on stdout.
run_tool() {
  local tool=$1 wname=$2
  shift 2
  local err=$TMP/run.err rc
  case $tool in
    untraced) "$RT" -- "$@" >/dev/null 2>"$err" ;;
    httptrace)
      rm -rf "$TMP/traces" && mkdir -p "$TMP/traces"
      "$RT" --env LD_PRELOAD="$LIB" --env HTTPTRACE_OUTPUT="$TMP/traces/%p.trace" -- "$@" \
        >/dev/null 2>"$err" ;;
    strace) "$RT" -- strace -f -qq -o /dev/null -e trace=network "$@" >/dev/null 2>"$err" ;;
    strace-seccomp)
      "$RT" -- strace --seccomp-bpf -f -qq -o /dev/null -e trace=network "$@" >/dev/null 2>"$err" ;;
    ltrace) "$RT" -- ltrace -f -o /dev/null -e "$(ltrace_filter "$wname")" "$@" >/dev/null 2>"$err" ;;
    bpftrace) bpftrace_run "$@" 2>"$err" ;;
  esac
  rc=$?
  local ns cpu
  ns=$(sed -n 's/^elapsed_ns=\([0-9]*\) .*/\1/p' "$err" | tail -n 1)
  cpu=$(sed -n 's/^elapsed_ns=.* cpu_ns=\([0-9]*\).*/\1/p' "$err" | tail -n 1)
  if [ $rc -ne 0 ] || [ -z "$ns" ]; then
    echo "FAIL"
    say "  $tool on $wname failed (rc $rc): $(grep -v '^elapsed_ns=' "$err" | head -c 300)" >&2
    return
  fi
  if [ "$tool" = httptrace ] && ! ls "$TMP/traces"/*.trace >/dev/null 2>&1; then
    say "  httptrace on $wname wrote no trace file" >&2
  fi
  awk -v ns="$ns" -v cpu="${cpu:-0}" 'BEGIN { printf "%.4f %.4f\n", ns / 1e9, cpu / 1e9 }'
}

side() {
  section "side-by-side overhead (loopback nginx peer, $RUNS runs each, round-robin)"
  start_nginx || return 0
  local n_a=20000 n_b=2000 n_c=200 n_d=1000
  [ "$QUICK" = 1 ] && n_a=5000 n_b=500
  local i
  for i in $(seq "$n_c"); do
    printf 'url = "https://localhost:%s/c/%d"\noutput = "/dev/null"\n' "$HTTPS_PORT" "$i"
  done >"$TMP/c.cfg"
  for i in $(seq "$n_d"); do
    printf 'url = "http://127.0.0.1:%s/d/%d"\noutput = "/dev/null"\n' "$HTTP_PORT" "$i"
  done >"$TMP/d.cfg"

  local -A cmd
  if [ -x "$CLIENT" ]; then
    cmd[a]="$CLIENT keepalive 127.0.0.1 $HTTP_PORT $n_a"
    # "localhost": a real getaddrinfo (files backend) for every connection.
    cmd[b]="$CLIENT sequential-new localhost $HTTP_PORT $n_b"
  else
    skip "workloads (a) and (b): $CLIENT not built"
  fi
  if have curl; then
    cmd[c]="curl -sk --http1.1 -K $TMP/c.cfg"
    cmd[d]="curl -s --http1.1 -K $TMP/d.cfg"
  else
    skip "workloads (c) and (d): curl not installed"
  fi
  local -A label=(
    [a]="(a) keep-alive, $n_a requests, http_client"
    [b]="(b) new connection + lookup per request, $n_b requests, http_client"
    [c]="(c) curl, $n_c URLs, one HTTPS connection"
    [d]="(d) curl, $n_d URLs, one HTTP connection")

  local tools=(untraced)
  if [ -f "$LIB" ]; then tools+=(httptrace); else skip "httptrace: $LIB not built"; fi
  if have strace; then
    tools+=(strace)
    if strace --seccomp-bpf -f -qq -o /dev/null -e trace=network true 2>/dev/null; then
      tools+=(strace-seccomp)
    else
      skip "strace --seccomp-bpf: not supported here"
    fi
  else
    skip "strace: not installed"
  fi
  if have ltrace; then tools+=(ltrace); else skip "ltrace: not installed"; fi
  if ! have bpftrace; then
    skip "bpftrace: not installed"
  elif [ "$(id -u)" -ne 0 ]; then
    skip "bpftrace: needs root"
  else
    write_bpftrace_script
    tools+=(bpftrace)
  fi
  if [ -n "${BENCH_TRACERS:-}" ]; then
    local keep=() t
    for t in "${tools[@]}"; do
      [[ " $BENCH_TRACERS " == *" $t "* ]] && keep+=("$t")
    done
    tools=("${keep[@]}")
  fi
  say "tools: ${tools[*]}"

  local tsv=$OUT/side.tsv w r k t secs t0
  local -A spent=()
  : >"$tsv"
  local started=$SECONDS
  for w in a b c d; do
    [ -n "${cmd[$w]:-}" ] || continue
    say "${label[$w]}"
    for r in $(seq "$RUNS"); do
      # Rotate the order every round so no tool always runs right after the same neighbour.
      local line="  run $r:"
      for k in $(seq 0 $((${#tools[@]} - 1))); do
        t=${tools[$(((k + r) % ${#tools[@]}))]}
        if [ "$r" -gt 2 ] && [ "${spent[$w:$t]:-0}" -gt "$BUDGET" ]; then
          line+=" $t=over-budget"
          continue
        fi
        t0=$SECONDS
        local cpu
        # shellcheck disable=SC2086  # the command lines above are plain words
        read -r secs cpu < <(run_tool "$t" "$w:${cmd[$w]%% *}" ${cmd[$w]})
        spent[$w:$t]=$((${spent[$w:$t]:-0} + SECONDS - t0))
        printf '%s\t%s\t%s\t%s\t%s\n' "$w" "$t" "$r" "$secs" "${cpu:-0}" >>"$tsv"
        line+=" $t=$secs"
      done
      say "$line"
    done
  done
  say "side-by-side wall time: $((SECONDS - started)) s"
  python3 - "$tsv" "${tools[@]}" <<'EOF'
import statistics, sys
tsv, tools = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(tsv):
    w, t, r, s, _ = line.rstrip("\n").split("\t")
    if s != "FAIL":
        runs.setdefault((w, t), []).append(float(s))
ws = sorted({w for w, _ in runs})
most = max((len(xs) for xs in runs.values()), default=0)
print("\n| workload | " + " | ".join(tools) + " |")
print("|---|" + "---|" * len(tools))
for w in ws:
    base = statistics.median(runs[(w, "untraced")]) if (w, "untraced") in runs else None
    cells = []
    for t in tools:
        xs = runs.get((w, t))
        if not xs:
            cells.append("FAIL")
            continue
        m = statistics.median(xs)
        cell = f"{m:.3f} s (x{m / base:.3f})" if base else f"{m:.3f} s"
        cells.append(cell + (f" [{len(xs)} runs]" if len(xs) != most else ""))
    print(f"| ({w}) | " + " | ".join(cells) + " |")
# Load drifts during a sitting; a ratio taken within each round (tools run back to back, order
# rotated) cancels most of it. Median of those per-round ratios, and its spread.
rounds = {}
for line in open(tsv):
    w, t, r, s, cpu = line.rstrip("\n").split("\t")
    if s != "FAIL":
        rounds.setdefault((w, r), {})[t] = (float(s), float(cpu))
for col, what in ((0, "wall time"), (1, "the workload's CPU time (user+sys)")):
    print(f"\nper-round ratio to untraced, {what} (median; p25..p75 over rounds):")
    for w in ws:
        cells = []
        for t in tools:
            if t == "untraced":
                continue
            rs = sorted(v[t][col] / v["untraced"][col] for (ww, _), v in rounds.items()
                        if ww == w and t in v and "untraced" in v and v["untraced"][col] > 0)
            if rs:
                q = lambda p: rs[min(len(rs) - 1, int(p * len(rs)))]
                cells.append(f"{t} x{statistics.median(rs):.3f} ({q(0.25):.3f}..{q(0.75):.3f})")
        print(f"  ({w}) " + "  ".join(cells))
print("\nmedian seconds (ratio to untraced from the same sitting); min..max per cell:")
for w in ws:
    print(f"  ({w}) " + "  ".join(
        f"{t} {min(runs[(w, t)]):.3f}..{max(runs[(w, t)]):.3f}" for t in tools if (w, t) in runs))
EOF
}

# ---------------------------------------------------------------------------------------------
# instr: instructions per hooked call (callgrind; the steady metric on a VM without hardware
# counters), bare vs under libhttptrace.so, and the timed cost of a read() of /dev/zero with and
# without the preload, alternated so load drift hits both alike.
instr() {
  section "instructions per call (valgrind --tool=callgrind, build/bench/hook_cost)"
  [ -f "$LIB" ] || { skip "instr: $LIB not built"; return 0; }
  local n=10000 v
  if have valgrind; then
    for v in bare traced; do
      local env=()
      [ $v = traced ] && env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/instr.%p.trace")
      env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$v.out" \
        "$B/hook_cost" $n >/dev/null 2>&1 || say "callgrind run failed ($v)"
    done
    rm -f "$TMP"/instr.*.trace
    python3 - "$OUT" $n <<'EOF2'
import re, subprocess, sys
out, n = sys.argv[1], int(sys.argv[2])
# calls per loop iteration that go through a hook, and how many of them record an event
loops = {"loop_devzero_read": ("read(/dev/zero), untracked fd", 1, 0),
         "loop_pipe_rw": ("write+read on a pipe, untracked", 2, 0),
         "loop_tcp_exchange": ("TCP: send+recv, both ends tracked (4 captures)", 4, 4),
         "loop_tcp_same_dir": ("TCP: recv of 1 byte, same direction (no capture)", 1, 1)}
ir = {}
for v in ("bare", "traced"):
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", f"{out}/callgrind.{v}.out"],
                          capture_output=True, text=True).stdout
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) .*hook_cost\.cpp:.*?(loop_\w+)\(", line)
        if m and "=>" not in line:
            ir[(v, m.group(2))] = int(m.group(1).replace(",", ""))
print("| loop (per iteration) | bare instr | traced instr | added | added per hooked call | added per event |")
print("|---|---|---|---|---|---|")
for name, (what, calls, events) in loops.items():
    if ("bare", name) not in ir or ("traced", name) not in ir:
        continue
    b, t = ir[("bare", name)] / n, ir[("traced", name)] / n
    per_event = f"{(t - b) / events:.0f}" if events else "-"
    print(f"| {what} | {b:.1f} | {t:.1f} | {t - b:+.1f} | {(t - b) / calls:+.1f} | {per_event} |")
EOF2
  else
    skip "instruction counts: valgrind not installed"
  fi

  section "read() of /dev/zero: ns per call, bare / no-op preload / traced, alternated"
  local rounds=21 calls=300000 r
  [ "$QUICK" = 1 ] && rounds=7
  build_noop || true
  : >"$OUT/readcost.tsv"
  for r in $(seq "$rounds"); do
    for v in bare noop traced; do
      local env=()
      case $v in
        noop) [ -f "$NOOP" ] || continue; env=(LD_PRELOAD="$NOOP") ;;
        traced) env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/instr.%p.trace") ;;
      esac
      env "${env[@]}" "$B/hook_cost" --time $calls |
        sed -n "s/^devzero_read_ns=\([0-9.]*\).*/$r\t$v\t\1/p" >>"$OUT/readcost.tsv"
      rm -f "$TMP"/instr.*.trace
    done
  done
  python3 - "$OUT/readcost.tsv" <<'EOF2'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    r, v, ns = line.split()
    by.setdefault(r, {})[v] = float(ns)
for v in ("bare", "noop", "traced"):
    xs = [d[v] for d in by.values() if v in d]
    if xs:
        print(f"{v:7s} median {statistics.median(xs):8.1f} ns  (min {min(xs):.1f}, max {max(xs):.1f})")
for v in ("noop", "traced"):
    ds = sorted(d[v] - d["bare"] for d in by.values() if v in d and "bare" in d)
    if ds:
        q = lambda p: ds[min(len(ds) - 1, int(p * len(ds)))]
        print(f"{v} - bare, per round: median {statistics.median(ds):+.1f} ns, "
              f"p25..p75 {q(0.25):+.1f}..{q(0.75):+.1f} ns over {len(ds)} rounds")
EOF2
}

# ---------------------------------------------------------------------------------------------
# memory: VmRSS at the end of workload (a), and with 1,000 threads alive, traced vs untraced.
memory() {
  section "resident memory (kB, /proc/self/status at the end of the work)"
  [ -f "$LIB" ] || { skip "memory: $LIB not built"; return 0; }
  [ -n "$HTTP_PORT" ] || start_nginx || { skip "memory (a): no nginx"; }
  local n_a=20000 v out
  [ "$QUICK" = 1 ] && n_a=5000
  for v in untraced traced; do
    rm -rf "$TMP/mem" && mkdir -p "$TMP/mem"
    local env=()
    [ $v = traced ] && env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/mem/%p.trace")
    if [ -n "$HTTP_PORT" ]; then
      out=$(env "${env[@]}" "$B/mem_probe" keepalive 127.0.0.1 "$HTTP_PORT" "$n_a")
      say "keepalive $n_a requests, $v: $out"
    fi
    out=$(env "${env[@]}" "$B/mem_probe" threads 1000)
    say "1000 threads, $v: $out"
    [ $v = traced ] && say "  trace files: $(du -sk "$TMP/mem" | cut -f1) kB on disk"
  done
}

# ---------------------------------------------------------------------------------------------
# analyzer: a synthetic 10M-event trace through `export --format json` and `reuse`.
analyzer() {
  section "analyzer at scale"
  [ -x "$CLI" ] || { skip "analyzer: $CLI not built"; return 0; }
  local events=10000000 conns=200000
  [ "$QUICK" = 1 ] && events=1000000 conns=20000
  local trace=$TMP/synthetic.trace
  "$B/gen_trace" -o "$trace" -c $conns -e $events -t 8 || return 0
  say "trace: $(du -m "$trace" | cut -f1) MB"
  local sub
  for sub in "export --format json -o $TMP/out.json" "reuse" "timeline --color=never"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$CLI" $sub "$trace" >"$TMP/an.out" 2>"$TMP/time.txt"
    local rc=$?
    local wall rss secs
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TMP/time.txt")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/time.txt")
    secs=$(awk -v w="$wall" 'BEGIN { n = split(w, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }')
    awk -v e=$events -v s="$secs" -v rss="$rss" -v what="${sub%% -o*}" -v rc=$rc 'BEGIN {
      printf "httptrace %-22s %6.2f s  %6.2f M events/s  peak RSS %d MB  exit %d\n",
             what, s, (s > 0 ? e / s / 1e6 : 0), rss / 1024, rc }'
    [ $rc -eq 0 ] || say "  stderr: $(grep -v -e '^\s' "$TMP/time.txt" | head -c 300)"
  done
  rm -f "$trace" "$TMP/out.json"
}

# ---------------------------------------------------------------------------------------------
# fixed: what the recorder costs a process once (bench/fixed_cost.cpp): the first network call of
# a program with a second thread, and a whole one-request process, untraced / preloaded but
# disabled / traced, side by side in one run.
fixed() {
  section "fixed cost per process (bench/fixed_cost)"
  local rounds=30
  [ "$QUICK" = 1 ] && rounds=10
  "$B/fixed_cost" --rounds "$rounds" "$LIB" | tee "$OUT/fixed_cost.txt"
}

# ---------------------------------------------------------------------------------------------
# server: nginx traced vs untraced under wrk (bench/server_overhead.sh; SERVER_* tune it).
server() {
  section "server side: nginx under wrk, untraced vs traced (bench/server_overhead.sh)"
  local rc
  BENCH_OUT=$OUT "$ROOT/bench/server_overhead.sh" "$@" | tee "$OUT/server.txt"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || say "FAIL server overhead: a run or a trace check failed (exit $rc)"
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# smoke: proves every bench binary still runs; seconds, not minutes.
smoke() {
  local fail=0 b
  for b in "$B"/*_bench; do
    if "$b" --benchmark_min_time=0.001 >/dev/null 2>"$TMP/smoke.err"; then
      say "ok   $(basename "$b")"
    else
      say "FAIL $(basename "$b"): $(head -c 300 "$TMP/smoke.err")"
      fail=1
    fi
  done
  if [ -f "$LIB" ]; then
    mkdir -p "$TMP/smoke"
    if LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/smoke/%p.trace" "$B/syscall_bench" \
         --benchmark_min_time=0.001 >/dev/null 2>&1; then
      say "ok   syscall_bench under libhttptrace.so"
    else
      say "FAIL syscall_bench under libhttptrace.so"; fail=1
    fi
  fi
  if "$B/clock_check" 2000 >/dev/null; then say "ok   clock_check"; else say "FAIL clock_check"; fail=1; fi
  if "$RT" -- true 2>/dev/null; then say "ok   run_timed"; else say "FAIL run_timed"; fail=1; fi
  local gen
  if gen=$("$B/gen_trace" -o "$TMP/smoke.trace" -c 50 -e 2000 -t 3); then
    say "ok   gen_trace"
    if [ -x "$CLI" ]; then
      # The generator must write what the analyzer reads: every connection and request it made,
      # without a warning.
      local want got
      want=$(sed -n 's/.* connections=\([0-9]*\) requests=\([0-9]*\) .*/\1 \2/p' <<<"$gen")
      got=$("$CLI" export --format json "$TMP/smoke.trace" 2>"$TMP/smoke.err" |
            python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["connections"], s["requests"])')
      if [ -n "$want" ] && [ "$got" = "$want" ] && [ ! -s "$TMP/smoke.err" ]; then
        say "ok   httptrace export of a generated trace ($got connections/requests)"
      else
        say "FAIL httptrace export of a generated trace: want '$want' got '$got' $(head -c 300 "$TMP/smoke.err")"
        fail=1
      fi
    fi
  else
    say "FAIL gen_trace"; fail=1
  fi
  if "$B/mem_probe" threads 20 >/dev/null; then say "ok   mem_probe"; else say "FAIL mem_probe"; fail=1; fi
  local srv
  if srv=$(BENCH_OUT=$TMP "$ROOT/bench/server_overhead.sh" --smoke 2>&1); then
    say "ok   server_overhead --smoke$(grep -q '^SKIP' <<<"$srv" && printf ' (%s)' "$(grep -m1 '^SKIP' <<<"$srv")")"
  else
    say "FAIL server_overhead --smoke: $(grep -E 'FAILED|error|did not' <<<"$srv" | head -c 300)"; fail=1
  fi
  if "$B/fixed_cost" --rounds 1 "$LIB" >/dev/null; then say "ok   fixed_cost"; else say "FAIL fixed_cost"; fail=1; fi
  if "$B/hook_cost" 100 >/dev/null && "$B/hook_cost" --time 100 >/dev/null; then
    say "ok   hook_cost"
  else
    say "FAIL hook_cost"; fail=1
  fi
  return $fail
}

mkdir -p "$OUT"
if [ "${1:-}" = --smoke ]; then
  smoke
  exit $?
fi
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(micro hooks instr fixed side server memory analyzer)
machine
start=$SECONDS
for p in "${parts[@]}"; do
  case $p in
    micro | hooks | instr | fixed | side | server | memory | analyzer) "$p" ;;
    *) echo "usage: $0 [--smoke] [micro|hooks|instr|fixed|side|server|memory|analyzer]..." >&2; exit 2 ;;
  esac
done
say ""
say "total: $((SECONDS - start)) s; raw results in $OUT"
