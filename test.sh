#!/usr/bin/env bash
# Runs the test projects (Release) and prints "N passed, N failed" summed over all of them.
# Usage: ./test.sh [TIER] [extra dotnet test arguments, e.g. --filter ...]
#   TIER: all (default: every tier), fast (unit, packet-level and simulator tests, a few minutes), slow (child
#   processes, external servers, long property runs) or netns (Linux network namespaces; they skip without root).
#   A test's tier is its xunit trait "Tier" ("slow", "netns"); a test without one is fast. A --filter given here is
#   combined with the tier's.
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

tier=all
case "${1:-}" in
  all | fast | slow | netns) tier=$1; shift ;;
esac

case "$tier" in
  all) tier_filter="" ;;
  fast) tier_filter="Tier!=slow&Tier!=netns" ;;
  slow) tier_filter="Tier=slow" ;;
  netns) tier_filter="Tier=netns" ;;
esac

# Pull a --filter out of the extra arguments and join it with the tier's.
args=()
user_filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) user_filter=$2; shift 2 ;;
    --filter=*) user_filter=${1#--filter=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
filter=$tier_filter
if [ -n "$user_filter" ]; then
  if [ -n "$tier_filter" ]; then
    filter="($tier_filter)&($user_filter)"
  else
    filter=$user_filter
  fi
fi
if [ -n "$filter" ]; then
  args+=(--filter "$filter")
fi

results="$(pwd)/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

status=0
for proj in tests/*/*.csproj; do
  name=$(basename "$proj" .csproj)
  grep -q '<IsTestProject>true</IsTestProject>' "$proj" || continue
  if ! dotnet test "$proj" -c Release --logger "trx;LogFileName=$name.trx" --results-directory "$results" ${args[@]+"${args[@]}"}; then
    status=1
  fi
done

passed=0
failed=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  e=$(sed -n 's/.* error="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0}))
done

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "test.sh: a test run failed without reporting a failed test (build or crash)" >&2
  failed=1
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "test.sh: no tests ran" >&2
  failed=1
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
