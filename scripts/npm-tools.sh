#!/usr/bin/env bash
# Installs the npm packages the export tests check our output with (har-validator, the HAR 1.2
# schema's own validator) into build/npm-cache, once. Idempotent: a second run does nothing.
# Prints the node_modules directory on success; exits 1 (with npm's message) when npm or the
# registry is unavailable, so a test can skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=build/npm-cache
PKGS=(har-validator@5.1.5)
need=()
for p in "${PKGS[@]}"; do
  name=${p%@*}
  [ -f "$PREFIX/node_modules/$name/package.json" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v npm >/dev/null || { echo "npm-tools: npm not found (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$PREFIX"
  # A lock around the install: two test binaries may ask at once.
  exec 9>"$PREFIX/.lock"
  flock 9
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${need[@]}" >&2
fi
echo "$(pwd)/$PREFIX/node_modules"
