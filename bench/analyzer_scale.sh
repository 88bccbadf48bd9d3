#!/usr/bin/env bash
# The analyzer at scale: generates synthetic traces of EVENTS events (default 10 million) and
# times `httptrace export --format json` (to /dev/null and to a file), `--format har` and
# `--format chrome` (to /dev/null), `--format otlp` (OTLP/JSON to a file), `httptrace reuse` and
# `httptrace timeline` (to /dev/null) on
# them, with peak RSS. Two traces: few connections (4 open at once, each with thousands of
# requests) and a million short connections (still 4 open at once), whose peak RSS should match:
# memory follows the open connections, not the trace.
#
#   bench/analyzer_scale.sh [EVENTS]        BEFORE=path/to/old/httptrace adds a comparison column
#   RUNS=3 (best of), WORK=dir for the traces (default: a temp dir, removed afterwards),
#   CMDS="timeline reuse" to time only some of export-null export-file har-null chrome-null
#   otlp-file reuse why timeline
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
RUNS=${RUNS:-3}
make --no-print-directory -s build/httptrace build/bench/gen_trace >/dev/null
[ -x /usr/bin/time ] || { echo "analyzer_scale: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
WORK=${WORK:-}
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/httptrace-scale.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
fi
[ -s "$WORK/few.trace" ] || build/bench/gen_trace -o "$WORK/few.trace" -c $((EVENTS / 1000)) -e "$EVENTS" >/dev/null
[ -s "$WORK/many.trace" ] || build/bench/gen_trace -o "$WORK/many.trace" -c $((EVENTS / 10)) -e "$EVENTS" >/dev/null
cat "$WORK"/*.trace >/dev/null  # page cache warm: time the analyzer, not the disk

# best wall time, the peak RSS and the CPU time (user + sys) of that run, as "seconds KB cpu":
# on a machine shared with other work the CPU time is the steadier number.
measure() {
  local best="" rss="" cpu=""
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>/dev/null || { echo "FAILED: $*" >&2; return 1; }
    read -r t m u s <"$WORK/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t rss=$m cpu=$(awk "BEGIN{print $u + $s}"); fi
  done
  echo "$best $rss $cpu"
}

printf '%-10s %-28s %-8s %10s %10s %10s %8s\n' trace command binary seconds "Mev/s" "peak RSS" "cpu s"
for trace in few many; do
  for cmd in ${CMDS:-export-null export-file har-null chrome-null otlp-file reuse why timeline}; do
    for bin in ${BEFORE:+"$BEFORE"} build/httptrace; do
      label=$([ "$bin" = build/httptrace ] && echo after || echo before)
      case $cmd in
        export-null) args=(export --format json "$WORK/$trace.trace") ;;
        export-file) args=(export --format json -o "$WORK/out.json" "$WORK/$trace.trace") ;;
        har-null) args=(export --format har "$WORK/$trace.trace") ;;
        chrome-null) args=(export --format chrome "$WORK/$trace.trace") ;;
        otlp-file) args=(export --format otlp -o "$WORK/out.otlp.json" "$WORK/$trace.trace") ;;
        reuse) args=(reuse "$WORK/$trace.trace") ;;
        why) args=(why "$WORK/$trace.trace") ;;
        timeline) args=(timeline "$WORK/$trace.trace") ;;
      esac
      read -r s kb cpu < <(measure "$bin" "${args[@]}")
      printf '%-10s %-28s %-8s %10s %10.1f %7d MB %8s\n' "$trace" "$cmd" "$label" "$s" \
        "$(awk "BEGIN{print $EVENTS / $s / 1e6}")" $((kb / 1024)) "$cpu"
    done
  done
done
rm -f "$WORK/out.json" "$WORK/out.otlp.json"
