#!/usr/bin/env bash
# Runs a named benchmark suite; the last line printed is the suite's summary (other tools read it).
#   bench/run.sh wire            parse/emit of SAL packets: "wire: parse_ns=<median> emit_ns=<median> alloc_bytes=<n>"
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

usage() { echo "usage: bench/run.sh wire" >&2; exit 2; }
[ $# -ge 1 ] || usage

case "$1" in
  wire)
    dotnet build bench/Serval.Benchmarks -c Release >&2
    log=$(mktemp)
    (cd bench/Serval.Benchmarks && dotnet run -c Release --no-build -- wire) | tee "$log" >&2
    grep '^wire: ' "$log" | tail -n 1
    rm -f "$log"
    ;;
  *)
    usage
    ;;
esac
