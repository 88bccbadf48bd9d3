#!/usr/bin/env bash
# make demo: start a loopback HTTP and HTTPS test server, trace real curl runs with some connection
# reuse and some new connections, then print the timeline and the reuse report.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/httptrace-demo.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The server prints "PORT n" once it listens; it exits when its stdin closes.
start_server() {  # start_server NAME [ARGS...] -> sets PORT_<NAME>
  local name=$1 in=$work/$1.in out=$work/$1.out line=""; shift
  mkfifo "$in" "$out"
  python3 tests/servers/http_server.py "$@" <"$in" >"$out" 2>"$work/$name.err" &
  pids+=($!)
  exec {ifd}>"$in" {ofd}<"$out"      # we hold its stdin open for as long as the demo runs
  read -r -t 15 -u "$ofd" line || { echo "demo: $name server did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "${line#PORT }"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
start_server http
start_server https --tls "$work/cert.pem" "$work/key.pem"
H="http://localhost:$PORT_http" S="https://localhost:$PORT_https"

echo "# three requests on one keep-alive connection, one that waits 150 ms for the server,"
echo "# then a second curl (a new connection), two HTTPS requests sharing one TLS connection, and"
echo "# python3 (its getaddrinfo shows as the dns phase; curl answers localhost itself)"
build/httptrace run -o "$work/trace" -- sh -c "
  curl -s -o /dev/null $H/index.html -o /dev/null $H/delay/150 -o /dev/null $H/chunked/4 &&
  curl -s -o /dev/null $H/close -o /dev/null $H/after-close &&
  curl -s -k -o /dev/null $S/secure/a -o /dev/null $S/secure/b &&
  python3 -c 'import http.client as h; c=h.HTTPConnection(\"localhost\", $PORT_http); [(c.request(\"GET\", p), c.getresponse().read()) for p in (\"/py/1\", \"/py/2\")]'"
