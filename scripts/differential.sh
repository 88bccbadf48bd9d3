#!/usr/bin/env bash
# Differential run (issue 7): CPython's own network test suites, untraced and traced, must give
# the same outcome for every test case. Debian's python3 with its test package
# (libpython3.11-testsuite, installed by scripts/install-deps.sh --test) runs each module twice,
# with --junit-xml; the per-case outcomes (passed, failed, error, skipped and the skip reason)
# and the exit status are compared, and the traces of the traced run must read without a warning.
#
#   scripts/differential.sh              the full set (several minutes)
#   scripts/differential.sh --quick      three fast modules (what make test runs)
#   scripts/differential.sh MODULE...    the named modules
#
# Environment: LIB, CLI (default build/libhttptrace.so, build/httptrace), PYTHON (default
# /usr/bin/python3: a pyenv shim would run another interpreter without Debian's test package).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIB=${LIB:-$ROOT/build/libhttptrace.so}
CLI=${CLI:-$ROOT/build/httptrace}
PY=${PYTHON:-/usr/bin/python3}
say() { echo "differential: $*"; }

FULL=(test_socket test_httplib test_ssl test_asyncio test_selectors test_httpservers
      test_urllib2_localnet test_poplib test_ftplib test_smtplib test_xmlrpc)
QUICK=(test_httplib test_httpservers test_urllib2_localnet)
if [ "${1:-}" = --quick ]; then MODS=("${QUICK[@]}"); elif [ $# -gt 0 ]; then MODS=("$@"); else MODS=("${FULL[@]}"); fi

[ -f "$LIB" ] && [ -x "$CLI" ] || { say "SKIP: $LIB or $CLI not built"; exit 0; }
[ -x "$PY" ] || { say "SKIP: $PY not installed"; exit 0; }
# --timeout: a hung case fails its module instead of the whole run. VSOCK cases are left out: in a
# VM whose vsock is the host's control channel (firecracker) ThreadedVSOCKSocketStreamTest
# blocks in accept() forever, traced or not.
ARGS=(--timeout 300 -i '*VSOCK*')
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
status=0 same=0
for m in "${MODS[@]}"; do
  if ! "$PY" -c "import test.$m" 2>/dev/null; then
    say "SKIP $m: not in $PY's test package (libpython3-testsuite)"
    continue
  fi
  mkdir -p "$TMP/$m/traces"
  start=$(date +%s)
  "$PY" -m test "$m" "${ARGS[@]}" --junit-xml "$TMP/$m/untraced.xml" >"$TMP/$m/untraced.log" 2>&1
  u=$?
  LD_PRELOAD="$LIB" HTTPTRACE_OUTPUT="$TMP/$m/traces/%p.trace" \
    "$PY" -m test "$m" "${ARGS[@]}" --junit-xml "$TMP/$m/traced.xml" >"$TMP/$m/traced.log" 2>&1
  t=$?
  secs=$(($(date +%s) - start))
  # The traced run's own files must read cleanly: a warning there is a recorder bug.
  "$CLI" export --format json -o "$TMP/$m/trace.json" "$TMP/$m/traces" 2>"$TMP/$m/export.err"
  e=$?
  files=$(find "$TMP/$m/traces" -name '*.trace' | wc -l)
  if "$PY" - "$m" "$u" "$t" "$TMP/$m/untraced.xml" "$TMP/$m/traced.xml" "$e" "$TMP/$m/export.err" \
      "$files" "$secs" "$TMP/$m/trace.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
mod, u_rc, t_rc, u_xml, t_xml, e_rc, e_err, files, secs, trace_json = sys.argv[1:]
def outcomes(path):
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("classname", "") + "." + case.get("name", "")
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = child.tag + (": " + (child.get("message") or "")[:120]
                                    if child.tag == "skipped" else "")
        out[name] = kind
    return out
try:
    u, t = outcomes(u_xml), outcomes(t_xml)
except (OSError, ET.ParseError) as err:
    print(f"differential: {mod}: no result file ({err})")
    sys.exit(1)
diff = sorted(n for n in u.keys() | t.keys() if u.get(n) != t.get(n))
warn = open(e_err).read().strip()
ran = sum(1 for k in u.values() if k == "passed")
try:
    summary = json.load(open(trace_json))["summary"]
    seen = f"{summary['connections']} connections, {summary['requests']} requests recorded"
except (OSError, ValueError, KeyError):
    seen = "no trace read"
print(f"differential: {mod}: {len(u)} cases ({ran} passed untraced), exit {u_rc} untraced / "
      f"{t_rc} traced, {len(diff)} different; {files} trace files, {seen}; {secs}s")
for n in diff[:20]:
    print(f"  {n}: untraced {u.get(n, 'absent')} / traced {t.get(n, 'absent')}")
if warn or e_rc != "0":
    print(f"  reading the traces: exit {e_rc}: {warn[:400]}")
sys.exit(1 if diff or u_rc != t_rc or warn or e_rc != "0" else 0)
EOF
  then
    same=$((same + 1))
  else
    status=1
    echo "  logs: tail of the traced run:"; tail -n 15 "$TMP/$m/traced.log" | sed 's/^/    /'
  fi
done
[ $status -eq 0 ] && echo "[  PASSED  ] $same tests."
exit $status
