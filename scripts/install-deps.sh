#!/usr/bin/env bash
# Installs the Debian packages a target needs, when they are missing.
#   --build  compile libhttptrace.so and the CLI      --test  + test tools (real clients/servers)
#   --demo   + demo clients                           --bench + side-by-side peers
#   --fuzz   + clang and its libFuzzer / sanitizer runtimes (make fuzz; make test runs them too)
#   --all    everything
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

build=(g++ make libfmt-dev libunwind-dev libssl-dev libgnutls28-dev libnghttp2-dev libdw-dev libelf-dev)
test=(libgtest-dev nlohmann-json3-dev curl wget python3 python3-requests openssl nodejs nginx-light
      nghttp2-client libpython3.11-testsuite
      patchelf ruby php-cli php-curl openjdk-17-jdk-headless postgresql chromium tcpdump)
demo=(curl python3 openssl)
bench=(libbenchmark-dev strace ltrace bpftrace wrk apache2-utils valgrind)
fuzz=(clang libclang-rt-14-dev)

want=("${build[@]}")
case "${1:---build}" in
  --build) ;;
  --test)  want+=("${test[@]}" libbenchmark-dev "${fuzz[@]}") ;;
  --demo)  want+=("${demo[@]}") ;;
  --bench) want+=("${test[@]}" "${bench[@]}") ;;
  --fuzz)  want+=("${fuzz[@]}") ;;
  --all)   want+=("${test[@]}" "${bench[@]}" "${fuzz[@]}") ;;
  *) echo "usage: $0 [--build|--test|--demo|--bench|--fuzz|--all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  # nodejs from another repository (nodesource) still counts: only the node binary matters.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "httptrace: missing Debian packages: ${missing[*]}" >&2
  echo "install them with:  sudo apt-get update && sudo $line" >&2
  exit 1
fi
echo "httptrace: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package list makes apt-get install fail with 404s; refresh it once.
apt-get update -qq >/dev/null || true
# nginx's package starts a service on port 80 after installing; keep it from doing so.
if printf '%s\n' "${missing[@]}" | grep -q '^nginx' && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
$line -qq >/dev/null
