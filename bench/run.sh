#!/usr/bin/env bash
# Runs a named benchmark set and prints a one-line summary as the last line of output.
#   bench/run.sh service-table    service-table lookups (BenchmarkDotNet), updates and memory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here/Serval.Benchmarks/Serval.Benchmarks.csproj"
binary="$here/Serval.Benchmarks/bin/Release/net10.0/Serval.Benchmarks.dll"

usage() {
  echo "usage: $0 NAME" >&2
  echo "  names: service-table" >&2
  exit 2
}

[ $# -eq 1 ] || usage

case "$1" in
  service-table)
    artifacts="$here/BenchmarkDotNet.Artifacts/service-table"
    dotnet build "$project" -c Release --nologo -v quiet
    rm -rf "$artifacts"
    # BenchmarkDotNet: lookups against 100k and 1M prefixes, and the reference's one-bit trie (short job, see
    # ServiceTableBenchmarkConfig). Then the summary mode: updates/s, bytes per prefix, and the final line.
    (cd "$here" && dotnet "$binary" --filter '*ServiceTable*' --artifacts "$artifacts")
    dotnet "$binary" --service-table-summary "$artifacts"
    ;;
  *)
    usage
    ;;
esac
