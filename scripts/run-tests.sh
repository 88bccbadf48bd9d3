#!/usr/bin/env bash
# Runs every test binary, then prints one closing line "tests: N passed, N failed".
# GoogleTest prints "[  PASSED  ] N tests." / "[  FAILED  ] N tests, listed below:"; we add them up.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0 failed=0 status=0
run() {
  local name=$1; shift
  local log; log=$(mktemp)
  echo "=== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$log" | tail -n1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below.*/\1/p' "$log" | tail -n1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  # A crash or a non-gtest failure still fails the run even though no count was printed.
  if [ "$rc" -ne 0 ]; then status=1; [ -z "$f" ] && failed=$((failed + 1)); fi
  rm -f "$log"
}
# build-asan/: the same unit tests under AddressSanitizer + UBSan (make asan).
for t in build/unit_interpose build/unit_analyzer build/integration_tests build-asan/unit_interpose \
         build-asan/unit_analyzer; do
  [ -x "$t" ] && run "${t#build/}" "$t"
done
# A few seconds of each libFuzzer target (make fuzz runs them longer).
if [ -x build-fuzz/fuzz_reader ]; then
  run fuzz-smoke scripts/fuzz.sh --smoke
fi
# CPython's own HTTP suites, untraced and traced: the same outcome for every case (issue 7).
run differential-quick scripts/differential.sh --quick
if [ -x scripts/bench.sh ]; then
  run bench-smoke scripts/bench.sh --smoke
fi
echo
echo "tests: $passed passed, $failed failed"
exit $status
