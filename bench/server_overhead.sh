#!/usr/bin/env bash
# Server-side overhead (issue 11): Debian's nginx serving keep-alive requests on 127.0.0.1,
# untraced vs traced (LD_PRELOAD on the master; its workers inherit it), wrk as the load. For each
# file (a small one, and one of 64 KiB that nginx sends with sendfile) and each round, one
# untraced and one traced run back to back, order alternating by round; each run starts its own
# nginx and stops it with SIGQUIT. Prints requests/s per run, the medians and the per-round
# traced/untraced throughput ratio (target: traced keeps >= 1/1.05 of the throughput).
#
# Every traced run is checked against wrk's own counts: the worker's trace holds the accepted
# connections (as many as wrk opened), and the bytes nginx sent on them are at least what wrk
# read and at most that plus one response per connection (wrk stops mid-response); the traces of
# all nginx processes must read without a warning. A failed check makes the exit status 1.
#
#   bench/server_overhead.sh [--smoke]      (scripts/bench.sh server; --smoke from bench.sh --smoke)
#   bench/server_overhead.sh --instr        user-space instructions per request of the nginx
#                                           process, untraced vs traced (callgrind, ab -k -c1: the
#                                           difference between 1,000 and 4,000 requests)
#
# Environment: SERVER_RUNS (rounds, default 5), SERVER_SECONDS (wrk duration, default 3),
# SERVER_CONNS (wrk connections, default 8), LIB, CLI (default build/libhttptrace.so,
# build/httptrace), BENCH_OUT (raw results; default build/bench/results).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIB=${LIB:-$ROOT/build/libhttptrace.so}
CLI=${CLI:-$ROOT/build/httptrace}
OUT=${BENCH_OUT:-$ROOT/build/bench/results}
RUNS=${SERVER_RUNS:-5}
SECS=${SERVER_SECONDS:-3}
CONNS=${SERVER_CONNS:-8}
FILES=(small.txt big.bin)
INSTR=0
# --instr: instructions per request instead (valgrind; steady under load, user space only).
if [ "${1:-}" = --instr ]; then INSTR=1; fi
VARIANTS=(untraced traced)
# For the test runner: one traced run on the sendfile path, about 3 s; the checks still apply.
if [ "${1:-}" = --smoke ]; then RUNS=1 SECS=1 CONNS=2 FILES=(big.bin) VARIANTS=(traced); fi

say() { printf '%s\n' "$*"; }
for t in nginx wrk python3; do
  command -v "$t" >/dev/null || { say "SKIP server overhead: $t not installed"; exit 0; }
done
[ -f "$LIB" ] && [ -x "$CLI" ] || { say "SKIP server overhead: $LIB or $CLI not built"; exit 0; }
mkdir -p "$OUT"

TMP=$(mktemp -d /tmp/httptrace-server.XXXXXX)
chmod 755 "$TMP"  # nginx's worker runs as nobody when started as root: it reads the files here
MASTER=""
cleanup() {
  # Only the master we started (its pid file is in our own prefix); it stops its workers.
  [ -n "$MASTER" ] && kill -QUIT "$MASTER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/www" "$TMP/tmp"
printf 'hello, world\n' >"$TMP/www/small.txt"
head -c 65536 /dev/urandom >"$TMP/www/big.bin"
# wrk's exact counts (its summary line rounds the bytes).
cat >"$TMP/count.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk_requests=%d wrk_bytes=%d wrk_us=%d wrk_errors=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

PORT=""
# start_nginx DIR traced|untraced: a fresh nginx (one worker, sendfile on) with its prefix in DIR.
# nginx daemonises only after its listening socket is bound: when it returns 0, the port accepts
# connections.
start_nginx() {
  local d=$1 how=$2 attempt
  mkdir -p "$d/traces"
  # The worker runs as nobody (nginx started as root): it must be able to create its trace.
  chmod 1777 "$d/traces"
  for attempt in 1 2 3; do
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
error_log $d/error.log notice;
pid $d/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $TMP/tmp; proxy_temp_path $TMP/tmp; fastcgi_temp_path $TMP/tmp;
  uwsgi_temp_path $TMP/tmp; scgi_temp_path $TMP/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$PORT; root $TMP/www; }
}
EOF
    local env=()
    [ "$how" = traced ] && env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$d/traces/%p.trace")
    if env "${env[@]}" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"; then
      MASTER=$(cat "$d/nginx.pid")
      return 0
    fi
  done
  say "nginx did not start: $(tail -n 2 "$d/error.log")"
  return 1
}

# Graceful stop; returns when the master (which reaps its workers first) is gone: the traces are
# complete then.
stop_nginx() {
  kill -QUIT "$MASTER" 2>/dev/null
  timeout 30 tail --pid="$MASTER" -s 0.05 -f /dev/null
  MASTER=""
}

# The worker's user+system CPU time so far, in clock ticks (/proc/PID/stat fields 14 and 15):
# steadier than throughput when other work shares the CPUs.
HZ=$(getconf CLK_TCK)
worker_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

FAIL=0
# check_trace DIR FILE-SIZE WRK-LINE: the traced run's files against wrk's counts.
check_trace() {
  local d=$1 size=$2 wrk=$3
  "$CLI" export --format json "$d/traces" >"$d/trace.json" 2>"$d/export.err"
  python3 - "$d/trace.json" "$d/export.err" "$PORT" "$size" "$CONNS" "$wrk" <<'EOF' || FAIL=1
import json, sys
path, err, port, size, conns, wrk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
w = dict(kv.split("=") for kv in wrk.split())
reqs, got = int(w["wrk_requests"]), int(w["wrk_bytes"])
d = json.load(open(path))
warnings = open(err).read().strip()
# wrk first opens one connection to check the address, and closes it unused.
inbound = [c for c in d["connections"] if c["local"] == f"127.0.0.1:{port}"]
used = [c for c in inbound if c["bytes_sent"] > 0]
sent = sum(c["bytes_sent"] for c in inbound)
per_resp = got / reqs if reqs else 0
ok = (int(w["wrk_errors"]) == 0 and not warnings and d["summary"]["warnings"] == 0 and d["summary"]["dropped_events"] == 0
      and len(used) == conns and len(inbound) <= conns + 1 and got <= sent <= got + conns * (per_resp + 1))
print(f"    trace check: {d['summary']['processes']} processes, {len(inbound)} accepted connections, "
      f"{len(used)} with responses (wrk: {conns} + its address check), nginx sent {sent} B, wrk read {got} B in {reqs} responses "
      f"({per_resp:.0f} B each, file {size} B), {w['wrk_errors']} wrk errors"
      f"{'' if ok else '  <-- FAILED'}{'; warnings: ' + warnings[:300] if warnings else ''}")
sys.exit(0 if ok else 1)
EOF
}

# instr_per_request HOW FILE: callgrind on a single-process nginx (master_process off).
instr_per_request() {
  local how=$1 file=$2 n total=()
  for n in 1000 4000; do
    local d=$TMP/instr.$how.$file.$n
    mkdir -p "$d/traces" && chmod 1777 "$d/traces"
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$d/nginx.conf" <<EOF
master_process off;
daemon off;
error_log $d/error.log notice;
pid $d/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $TMP/tmp; proxy_temp_path $TMP/tmp; fastcgi_temp_path $TMP/tmp;
  uwsgi_temp_path $TMP/tmp; scgi_temp_path $TMP/tmp;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$PORT; root $TMP/www; }
}
EOF
    local env=()
    [ "$how" = traced ] && env=(LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$d/traces/%p.trace")
    env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
      nginx -p "$d" -c "$d/nginx.conf" >/dev/null 2>&1 &
    local vg=$! i
    # Under valgrind nginx takes a while to listen: bounded polling, then the measured load.
    for i in $(seq 150); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/$file" && break
      sleep 0.2
    done
    ab -k -q -n "$n" -c 1 "http://127.0.0.1:$PORT/$file" >/dev/null 2>&1
    kill -QUIT "$vg" 2>/dev/null
    wait "$vg"
    total+=("$(callgrind_annotate "$d/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')")
  done
  awk -v a="${total[0]:-0}" -v b="${total[1]:-0}" 'BEGIN { printf "%.0f\n", (b - a) / 3000 }'
}

if [ "$INSTR" = 1 ]; then
  for t in valgrind ab curl; do
    command -v "$t" >/dev/null || { say "SKIP server instructions: $t not installed"; exit 0; }
  done
  say "instructions per request, nginx single process (callgrind; ab -k -c1; (4000 - 1000 requests) / 3000)"
  say "| file | untraced | traced | added | traced/untraced |"
  say "|---|---|---|---|---|"
  for file in "${FILES[@]}"; do
    u=$(instr_per_request untraced "$file")
    t=$(instr_per_request traced "$file")
    awk -v f="$file" -v u="$u" -v t="$t" 'BEGIN { printf "| %s | %d | %d | %+d | x%.3f |\n", f, u, t, t - u, u ? t / u : 0 }'
  done
  exit 0
fi

TSV=$OUT/server.tsv
: >"$TSV"
say "nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker; wrk -t1 -c$CONNS -d${SECS}s keep-alive; $RUNS rounds"
for file in "${FILES[@]}"; do
  size=$(stat -c %s "$TMP/www/$file")
  say "--- /$file ($size B)"
  for r in $(seq "$RUNS"); do
    order=("${VARIANTS[@]}")
    [ $((r % 2)) = 0 ] && [ ${#order[@]} = 2 ] && order=(traced untraced)
    for how in "${order[@]}"; do
      d=$TMP/run.$file.$r.$how
      mkdir -p "$d"
      start_nginx "$d" "$how" || { FAIL=1; continue; }
      # `nginx` returns once the master runs; the worker is forked a moment later: bounded wait.
      worker=""
      for _ in $(seq 200); do
        worker=$(pgrep -P "$MASTER" | head -n 1)
        [ -n "$worker" ] && break
        sleep 0.01
      done
      if [ -z "$worker" ]; then say "  run $r $how: nginx started no worker"; stop_nginx; FAIL=1; continue; fi
      cpu0=$(worker_cpu "$worker")
      line=$(wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$TMP/count.lua" "http://127.0.0.1:$PORT/$file" |
             grep '^wrk_requests=')
      cpu1=$(worker_cpu "$worker")
      stop_nginx
      if [ -z "$line" ]; then say "  run $r $how: wrk gave no result"; FAIL=1; continue; fi
      read -r rps us < <(awk -v c="$((cpu1 - cpu0))" -v hz="$HZ" '{
        split($1, a, "="); split($3, b, "=");
        printf "%.0f %.2f\n", a[2] / (b[2] / 1e6), a[2] ? c / hz * 1e6 / a[2] : 0 }' <<<"$line")
      say "  run $r $how: $rps requests/s, worker CPU $us us/request ($line)"
      printf '%s\t%s\t%s\t%s\t%s\n' "$file" "$how" "$r" "$rps" "$us" >>"$TSV"
      if grep -q -E '\[(alert|crit|emerg|error)\]' "$d/error.log"; then
        say "    nginx error log: $(grep -E '\[(alert|crit|emerg|error)\]' "$d/error.log" | head -n 3)"
        FAIL=1
      fi
      [ "$how" = traced ] && check_trace "$d" "$size" "$line"
    done
  done
done

python3 - "$TSV" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
failed = 0
for f, how, r, rps, us in rows:
    if not rps or not us:  # a run that measured nothing (its own lines say why): not a ratio
        failed += 1
        continue
    by.setdefault(f, {}).setdefault(r, {})[how] = (float(rps), float(us))
if failed:
    print(f"({failed} run(s) measured nothing and are left out of the ratios)")
def cell(rounds, col, ratio):
    rs = sorted(ratio(v["untraced"][col], v["traced"][col]) for v in rounds.values()
                if len(v) == 2 and min(v["untraced"][col], v["traced"][col]) > 0)
    return f"x{statistics.median(rs):.3f} ({rs[0]:.3f}..{rs[-1]:.3f})" if rs else "-"
complete = {f: r for f, r in by.items()
            if all(how in v for v in r.values() for how in ("untraced", "traced"))}
if not complete:
    sys.exit(0)
print("\n| file | untraced req/s | traced req/s | throughput loss untraced/traced | "
      "worker CPU us/req untraced | traced | CPU traced/untraced |")
print("|---|---|---|---|---|---|---|")
for f, rounds in complete.items():
    med = lambda how, col: statistics.median(v[how][col] for v in rounds.values() if how in v)
    print(f"| {f} | {med('untraced', 0):.0f} | {med('traced', 0):.0f} | "
          f"{cell(rounds, 0, lambda u, t: u / t)} | {med('untraced', 1):.2f} | "
          f"{med('traced', 1):.2f} | {cell(rounds, 1, lambda u, t: t / u)} |")
print("(ratios: median over rounds of the ratio within each round, min..max)")
EOF
exit $FAIL
