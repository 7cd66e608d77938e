#!/usr/bin/env bash
# bench/run.sh translate: the translators' overhead (docs/serval-translate.md). Two network namespaces on a veth pair,
# shaped to 1 Gbit/s with tbf (TRANSLATE_RATE, default 1gbit; "none" for the bare veth). Kernel TCP (iperf3) from
# a to b directly, against the same iperf3 client and server with both translators in the path: in a,
# `serval-translate tcp-to-serval` takes the client's TCP connections on 127.0.0.1 and relays each over a Serval stream
# (UDP encapsulation) to b, where `serval-translate serval-to-tcp` relays it to the iperf3 server on 127.0.0.1. Medians
# of TRANSLATE_RUNS runs (default 1) of TRANSLATE_SECONDS (default 5). Needs root; installs iperf3 if missing.
#   translate: kernel_gbps=<n> translated_gbps=<n> ratio=<n>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
runs="${TRANSLATE_RUNS:-1}"
seconds="${TRANSLATE_SECONDS:-5}"
rate="${TRANSLATE_RATE:-1gbit}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [ "$(id -u)" -ne 0 ]; then
  echo "translate: needs root (network namespaces, veth, tc)" >&2
  exit 1
fi
case "$runs$seconds" in
  ''|*[!0-9]*) echo "translate: TRANSLATE_RUNS and TRANSLATE_SECONDS must be whole numbers" >&2; exit 2 ;;
esac
if [ "$runs" -lt 1 ] || [ "$runs" -gt 10 ] || [ "$seconds" -lt 1 ] || [ "$seconds" -gt 60 ]; then
  echo "translate: TRANSLATE_RUNS must be 1-10 and TRANSLATE_SECONDS 1-60" >&2
  exit 2
fi
if ! command -v iperf3 >/dev/null 2>&1; then
  echo "translate: installing iperf3" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3) >&2
fi

dotnet build "$root/src/serval-translate/serval-translate.csproj" -c Release --nologo -v quiet >&2
translate_dll="$root/src/serval-translate/bin/Release/net10.0/serval-translate.dll"

# Two namespaces on one veth pair, cleaned up (with every PID in "$work/pids") on exit.
. "$here/veth-pair.sh"
veth_pair t 192.168.78
if [ "$rate" != none ]; then
  ip netns exec "$ns_a" tc qdisc add dev "$veth_a" root tbf rate "$rate" burst 256kb latency 20ms
  ip netns exec "$ns_b" tc qdisc add dev "$veth_b" root tbf rate "$rate" burst 256kb latency 20ms
fi
echo "translate: namespaces $ns_a ($addr_a) and $ns_b ($addr_b), veth shaped to $rate, $runs run(s) of $seconds s" >&2


# The translators, started once: a's TCP 127.0.0.1:9000 -> service perf.translate at b -> b's 127.0.0.1:5201.
ip netns exec "$ns_b" timeout 900 dotnet "$translate_dll" serval-to-tcp --udp "$addr_b" --service perf.translate --target 127.0.0.1:5201 >"$work/to-tcp.log" 2>&1 &
echo "$!" >>"$work/pids"
ip netns exec "$ns_a" timeout 900 dotnet "$translate_dll" tcp-to-serval --udp "$addr_a" --listen 127.0.0.1:9000 --service perf.translate --peer "$addr_b" >"$work/to-serval.log" 2>&1 &
echo "$!" >>"$work/pids"
wait_for "$work/to-tcp.log" "listening" 600
wait_for "$work/to-serval.log" "listening" 600

# One iperf3 run from a to TARGET:PORT, the server in b on BIND: prints Gbit/s received.
run() {
  local target="$1" port="$2" bind="$3"
  ip netns exec "$ns_b" timeout $((seconds + 60)) iperf3 -s -1 --forceflush -B "$bind" >"$work/iperf-server.log" 2>&1 &
  local server=$!
  echo "$server" >>"$work/pids"
  wait_for "$work/iperf-server.log" "listening" 600
  ip netns exec "$ns_a" timeout $((seconds + 30)) iperf3 -c "$target" -p "$port" -t "$seconds" -J >"$work/iperf.json"
  wait "$server" || true
  python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$work/iperf.json"
}

# Median of the runs: NAME ARGS...
measure() {
  local name="$1"; shift
  local values=()
  for i in $(seq "$runs"); do
    local v
    v="$(run "$@")"
    echo "  $name run $i: $v Gbit/s" >&2
    values+=("$v")
  done
  python3 -c 'import statistics,sys; print("%.3f" % statistics.median(float(x) for x in sys.argv[1:]))' "${values[@]}"
}

kernel="$(measure kernel_tcp "$addr_b" 5201 "$addr_b")"
translated="$(measure translated 127.0.0.1 9000 127.0.0.1)"
python3 - "$kernel" "$translated" <<'PY'
import sys
k, t = (float(x) for x in sys.argv[1:])
print("translate: kernel_gbps=%.3f translated_gbps=%.3f ratio=%.3f" % (k, t, t / k if k > 0 else 0))
PY
