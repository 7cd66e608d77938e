#!/usr/bin/env bash
# bench/run.sh table: the microbenchmark table of docs/evaluation.md (the paper's section 5), gathered from the
# existing benchmarks, each run once by bench/run.sh: stream-veth (kernel TCP vs Serval streams over a veth, unshaped
# and shaped to 1 Gbit/s; STREAM_VETH_RUNS default 1 and STREAM_VETH_SECONDS default 5 here), connect-rate (Serval
# service router vs haproxy; CONNECT_RATE_SECONDS default 5 here), registration, delay-release and translate (iperf3
# directly and through both translators, bench/translate-veth.sh; TRANSLATE_RUNS 1, TRANSLATE_SECONDS 5). Writes the table,
# with the command behind every figure, the date and the load average before and after, to TABLE_OUT (default
# docs/figures/table.md). Needs root (stream-veth and connect-rate use network namespaces). The last line:
#   table: kernel_gbps=<n> serval_gbps=<n> shaped_ratio=<n> serval_cps=<n> haproxy_cps=<n> registrations_per_s=<n>
#     bind_to_routable_ms_p50=<n> delay_release_ms_p50=<n> translated_ratio=<n>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${TABLE_OUT:-$here/../docs/figures/table.md}"
export STREAM_VETH_RUNS="${STREAM_VETH_RUNS:-1}" STREAM_VETH_SECONDS="${STREAM_VETH_SECONDS:-5}"
export CONNECT_RATE_SECONDS="${CONNECT_RATE_SECONDS:-5}"
export TRANSLATE_RUNS="${TRANSLATE_RUNS:-1}" TRANSLATE_SECONDS="${TRANSLATE_SECONDS:-5}"

if [ "$(id -u)" -ne 0 ]; then
  echo "table: needs root (stream-veth and connect-rate use network namespaces)" >&2
  exit 1
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }

# The value of KEY=<v> in a summary line.
field() {
  printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Runs bench/run.sh NAME, its output to stderr; prints its last line (exits when it failed or printed no summary).
run() {
  local name=$1 log line
  log=$(mktemp)
  if ! "$here/run.sh" "$name" 2>&1 | tee "$log" >&2; then
    echo "table: bench/run.sh $name failed" >&2
    rm -f "$log"
    exit 1
  fi
  line=$(grep "^$name: " "$log" | tail -n 1)
  rm -f "$log"
  [ -n "$line" ] || { echo "table: bench/run.sh $name printed no summary line" >&2; exit 1; }
  printf '%s\n' "$line"
}

started="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_before="$(load)"
stream=$(run stream-veth)
load_stream="$(load)"
connect=$(run connect-rate)
load_connect="$(load)"
registration=$(run registration)
release=$(run delay-release)
translate=$(run translate)
load_after="$(load)"

mkdir -p "$(dirname "$out")"
{
  echo "<!-- written by bench/run.sh table ($started); do not edit by hand -->"
  echo "Run $started on $(nproc) cores ($(uname -r)); load average (1, 5, 15 min) $load_before at the start, $load_stream after stream-veth, $load_connect after connect-rate, $load_after at the end."
  echo
  echo "| measurement | here | command |"
  echo "|---|---|---|"
  echo "| stream goodput, kernel TCP over a veth | $(field "$stream" kernel_gbps) Gbit/s | \`STREAM_VETH_RUNS=$STREAM_VETH_RUNS STREAM_VETH_SECONDS=$STREAM_VETH_SECONDS bench/run.sh stream-veth\` |"
  echo "| stream goodput, Serval (UDP encapsulation) over the same veth | $(field "$stream" serval_udp_gbps) Gbit/s (ratio $(field "$stream" ratio_udp)) | same run |"
  echo "| stream goodput, Serval (raw IP) over the same veth | $(field "$stream" serval_raw_gbps) Gbit/s | same run |"
  echo "| stream goodput on a 1 Gbit/s link (tbf): kernel TCP / Serval | $(field "$stream" shaped_kernel_gbps) / $(field "$stream" shaped_serval_gbps) Gbit/s (ratio $(field "$stream" shaped_ratio)) | same run |"
  echo "| connections/s through a middle box: Serval service router (forwards each SYN) / haproxy (TCP proxy) | $(field "$connect" serval_cps) / $(field "$connect" haproxy_cps) (ratio $(field "$connect" ratio)) | \`CONNECT_RATE_SECONDS=$CONNECT_RATE_SECONDS bench/run.sh connect-rate\` |"
  echo "| connect + 1-byte echo latency p99: Serval / haproxy | $(field "$connect" serval_p99_ms) / $(field "$connect" haproxy_p99_ms) ms ($(field "$connect" failed) failed) | same run |"
  echo "| registrations a service router absorbs | $(field "$registration" registrations_per_s) /s | \`bench/run.sh registration\` |"
  echo "| bind to first routed SYN, p50 / p99 | $(field "$registration" bind_to_routable_ms_p50) / $(field "$registration" p99) ms | same run |"
  echo "| held SYN released after its rule appears, p50 / p99 | $(field "$release" delay_release_ms_p50) / $(field "$release" p99) ms | \`bench/run.sh delay-release\` |"
  echo "| iperf3 goodput on a 1 Gbit/s link (tbf): direct kernel TCP / through tcp-to-serval + serval-to-tcp | $(field "$translate" kernel_gbps) / $(field "$translate" translated_gbps) Gbit/s (ratio $(field "$translate" ratio)) | \`TRANSLATE_RUNS=$TRANSLATE_RUNS TRANSLATE_SECONDS=$TRANSLATE_SECONDS bench/run.sh translate\` |"
  echo
  echo "Summary lines:"
  echo
  for line in "$stream" "$connect" "$registration" "$release" "$translate"; do
    echo "    $line"
  done
} >"$out"
echo "table: wrote $out" >&2

echo "table: kernel_gbps=$(field "$stream" kernel_gbps) serval_gbps=$(field "$stream" serval_udp_gbps) shaped_ratio=$(field "$stream" shaped_ratio) serval_cps=$(field "$connect" serval_cps) haproxy_cps=$(field "$connect" haproxy_cps) registrations_per_s=$(field "$registration" registrations_per_s) bind_to_routable_ms_p50=$(field "$registration" bind_to_routable_ms_p50) delay_release_ms_p50=$(field "$release" delay_release_ms_p50) translated_ratio=$(field "$translate" ratio)"
