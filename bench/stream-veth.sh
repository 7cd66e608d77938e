#!/usr/bin/env bash
# bench/run.sh stream-veth: stream goodput between two network namespaces joined by a veth pair (default MTU 1500).
# Kernel TCP (iperf3) against Serval streams (serval-perf) over UDP encapsulation and over raw IP, then the same veth
# shaped to 1 Gbit/s with tbf: kernel TCP against Serval over UDP. Medians of STREAM_VETH_RUNS runs (default 3) of
# STREAM_VETH_SECONDS seconds (default 5). Needs root; installs iperf3 if missing. The last line is the summary:
#   stream-veth: kernel_gbps=<n> serval_udp_gbps=<n> serval_raw_gbps=<n> ratio_udp=<n> shaped_kernel_gbps=<n> shaped_serval_gbps=<n> shaped_ratio=<n>
#     udp_blast_gbps=<n> ratio_blast=<n> ratio_raw=<n>
# udp_blast_gbps: a second baseline measured in the same run, unshaped: what a plain .NET UDP socket with segmentation
# offload (serval-perf udp-blast: one sending thread, 64 KiB per call; the receiver with UDP_GRO) delivers between the
# same namespaces with datagrams filling the same MTU. ratio_blast = serval_udp / udp_blast, ratio_raw = serval_raw / kernel.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
runs="${STREAM_VETH_RUNS:-3}"
seconds="${STREAM_VETH_SECONDS:-5}"
# STREAM_VETH_NICE (default 0): niceness for all measured processes (iperf3 and serval-perf alike), e.g. -10 on a
# machine busy with other work, so that the user-space stack's threads are scheduled promptly (kernel TCP runs in
# softirq context regardless).
nice_level="${STREAM_VETH_NICE:-0}"
# STREAM_VETH_LOAD (default 0): busy loops started for the whole measurement (each ended by its PID, and bounded by
# timeout), to measure a busy host reproducibly: both stacks then compete with N runnable threads for the CPUs.
load="${STREAM_VETH_LOAD:-0}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [ "$(id -u)" -ne 0 ]; then
  echo "stream-veth: needs root (network namespaces, veth, tc, raw IP)" >&2
  exit 1
fi

case "${nice_level#-}" in
  ''|*[!0-9]*) echo "stream-veth: STREAM_VETH_NICE must be a whole number (-20 to 19)" >&2; exit 2 ;;
esac
case "$load" in
  ''|*[!0-9]*) echo "stream-veth: STREAM_VETH_LOAD must be a whole number (0-64)" >&2; exit 2 ;;
esac
if [ "$load" -gt 64 ]; then
  echo "stream-veth: STREAM_VETH_LOAD must be 0-64" >&2
  exit 2
fi
case "$runs$seconds" in
  *[!0-9]*) echo "stream-veth: STREAM_VETH_RUNS and STREAM_VETH_SECONDS must be whole numbers" >&2; exit 2 ;;
esac
if [ "$runs" -lt 1 ] || [ "$runs" -gt 10 ] || [ "$seconds" -lt 1 ] || [ "$seconds" -gt 60 ]; then
  echo "stream-veth: STREAM_VETH_RUNS must be 1-10 and STREAM_VETH_SECONDS 1-60" >&2
  exit 2
fi

if ! command -v iperf3 >/dev/null 2>&1; then
  echo "stream-veth: installing iperf3" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3) >&2
fi

dotnet build "$root/src/serval-perf/serval-perf.csproj" -c Release --nologo -v quiet >&2
perf_dll="$root/src/serval-perf/bin/Release/net10.0/serval-perf.dll"

# Two namespaces on one veth pair, cleaned up (with every PID in "$work/pids") on exit.
. "$here/veth-pair.sh"
veth_pair "" 192.168.77
echo "stream-veth: namespaces $ns_a ($addr_a) and $ns_b ($addr_b), veth MTU $(ip -n "$ns_a" -o link show "$veth_a" | sed -E 's/.* mtu ([0-9]+).*/\1/'), $runs run(s) of $seconds s, nice $nice_level, $load busy loop(s)" >&2

# Busy loops for STREAM_VETH_LOAD: bounded by the longest the whole bench can take (5 measurements of RUNS runs).
for _ in $(seq "$load"); do
  timeout $((5 * runs * (seconds + 95) + 60)) sh -c 'while :; do :; done' &
  echo "$!" >>"$work/pids"
done


# One kernel TCP run: prints Gbit/s received.
kernel_run() {
  ip netns exec "$ns_b" nice -n "$nice_level" timeout $((seconds + 60)) iperf3 -s -1 --forceflush -B "$addr_b" >"$work/iperf-server.log" 2>&1 &
  local server=$!
  echo "$server" >>"$work/pids"
  wait_for "$work/iperf-server.log" "listening"
  ip netns exec "$ns_a" nice -n "$nice_level" timeout $((seconds + 30)) iperf3 -c "$addr_b" -B "$addr_a" -t "$seconds" -J >"$work/iperf.json"
  wait "$server" || true
  python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$work/iperf.json"
}

# One Serval run over LINK (udp | raw): prints Gbit/s the server received.
serval_run() {
  local link="$1" server_link client_link peer
  if [ "$link" = udp ]; then
    server_link=(--udp "$addr_b:54325"); client_link=(--udp "$addr_a"); peer="$addr_b:54325"
  else
    server_link=(--raw "$addr_b"); client_link=(--raw "$addr_a"); peer="$addr_b"
  fi
  ip netns exec "$ns_b" nice -n "$nice_level" timeout $((seconds + 90)) dotnet "$perf_dll" server "${server_link[@]}" --one-off --json >"$work/perf-server.json" 2>"$work/perf-server.log" &
  local server=$!
  echo "$server" >>"$work/pids"
  wait_for "$work/perf-server.log" "listening"
  ip netns exec "$ns_a" nice -n "$nice_level" timeout $((seconds + 60)) dotnet "$perf_dll" client "${client_link[@]}" --server "$peer" -t "$seconds" --json >"$work/perf-client.json"
  wait "$server" || true
  python3 - "$work/perf-client.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["flows"][0]
print("%.3f" % (r["goodput_bps"] / 1e9))
print("  serval: %.3f Gbit/s, %d bytes in %.2f s, retrans %d, srtt %.0f us, client cpu %.2f s, offload sends %d, fallbacks %d"
      % (r["goodput_bps"] / 1e9, r["bytes"], r["seconds"], r["retransmissions"], f.get("srtt_us", 0), r["cpu_seconds"],
         r["links"][0]["offload_sends"], r["links"][0]["offload_fallbacks"]), file=sys.stderr)
PY
}

# One UDP blast run: a plain .NET UDP socket with segmentation offload (serval-perf udp-blast), datagrams of the size
# that fills the veth's MTU, from a to b; prints the Gbit/s the receiver counted. The ceiling of any user-space stack
# over UDP on this machine: what .NET pushes through a UDP socket at all.
blast_run() {
  local mtu
  mtu="$(ip -n "$ns_a" -o link show "$veth_a" | sed -E 's/.* mtu ([0-9]+).*/\1/')"
  ip netns exec "$ns_b" nice -n "$nice_level" timeout $((seconds + 60)) dotnet "$perf_dll" udp-blast receive --bind "$addr_b:54399" -t "$seconds" >"$work/blast-server.out" 2>"$work/blast-server.log" &
  local server=$!
  echo "$server" >>"$work/pids"
  wait_for "$work/blast-server.log" "listening"
  ip netns exec "$ns_a" nice -n "$nice_level" timeout $((seconds + 60)) dotnet "$perf_dll" udp-blast send --bind "$addr_a:0" --to "$addr_b:54399" -t $((seconds + 1)) -l $((mtu - 28)) 2>"$work/blast-client.log"
  wait "$server" || true
  sed "s/^/  /" "$work/blast-client.log" >&2
  sed -n -E 's/^udp-blast: gbps=([0-9.]+).*/\1/p' "$work/blast-server.out"
}

# Median of the runs of a measurement: NAME FUNCTION ARGS...
measure() {
  local name="$1"; shift
  local values=()
  for i in $(seq "$runs"); do
    local v
    v="$("$@")"
    echo "  $name run $i: $v Gbit/s" >&2
    values+=("$v")
  done
  python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print("%.3f" % statistics.median(v))' "${values[@]}"
}

kernel="$(measure kernel_tcp kernel_run)"
serval_udp="$(measure serval_udp serval_run udp)"
serval_raw="$(measure serval_raw serval_run raw)"
udp_blast="$(measure udp_blast blast_run)"

# Shape both directions to 1 Gbit/s (the data direction is a → b).
for pair in "$ns_a:$veth_a" "$ns_b:$veth_b"; do
  ip netns exec "${pair%%:*}" tc qdisc add dev "${pair#*:}" root tbf rate 1gbit burst 256kb latency 20ms
done
echo "stream-veth: veth shaped with tbf rate 1gbit burst 256kb latency 20ms on both ends" >&2
shaped_kernel="$(measure shaped_kernel_tcp kernel_run)"
shaped_serval="$(measure shaped_serval_udp serval_run udp)"

python3 - "$kernel" "$serval_udp" "$serval_raw" "$shaped_kernel" "$shaped_serval" "$udp_blast" <<'PY'
import sys
k, su, sr, sk, ss, ub = (float(x) for x in sys.argv[1:])
ratio = su / k if k > 0 else 0
shaped_ratio = ss / sk if sk > 0 else 0
ratio_blast = su / ub if ub > 0 else 0
ratio_raw = sr / k if k > 0 else 0
print("stream-veth: kernel_gbps=%.3f serval_udp_gbps=%.3f serval_raw_gbps=%.3f ratio_udp=%.3f shaped_kernel_gbps=%.3f shaped_serval_gbps=%.3f shaped_ratio=%.3f udp_blast_gbps=%.3f ratio_blast=%.3f ratio_raw=%.3f"
      % (k, su, sr, ratio, sk, ss, shaped_ratio, ub, ratio_blast, ratio_raw))
PY
