#!/usr/bin/env bash
# Installs the npm packages the OTLP export tests decode with (the OpenTelemetry project's own
# generated protobuf code) into build/npm-cache, once. Pinned to 0.57: the last line that ships the
# protobufjs code generated from opentelemetry-proto (later ones only encode). Prints node_modules.
#   scripts/npm-otlp.sh            exit 1 (with the reason) when npm is missing or the install fails
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=build/npm-cache/otlp
PKGS=(@opentelemetry/otlp-transformer@0.57.2)
STAMP="$DIR/.installed-$(echo "${PKGS[*]}" | md5sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  command -v npm >/dev/null || { echo "npm-otlp: npm not found (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"name":"httptrace-otlp-tests","private":true}' >"$DIR/package.json"
  npm install --prefix "$DIR" --no-audit --no-fund --silent "${PKGS[@]}" >&2
  touch "$STAMP"
fi
echo "$PWD/$DIR/node_modules"
