#!/usr/bin/env bash
# bench/run.sh forward (root): a service router's forwarding rate and cost against the kernel's IP forwarding, in
# the same topology and the same run. Three network namespaces in a line, sender -- router -- receiver (two veth
# pairs, 10.91.1.0/24 and 10.91.2.0/24). One sender thread sends 48-byte payloads as fast as it can:
#   kernel: plain UDP datagrams to the receiver, routed by the router namespace's kernel (ip_forward=1);
#   serval: unconnected Serval datagrams to a serviceID, UDP-encapsulated to a ServalHost in service-router mode
#           (bench/Serval.Benchmarks forward-router), whose FORWARD rule sends them on to the receiver.
# The receiver counts what arrives over FORWARD_SECONDS (default 5) after FORWARD_WARMUP (3) seconds; the router
# measures its own CPU time (/proc via Process.TotalProcessorTime, all threads) and the bytes it allocated
# (GC.GetTotalAllocatedBytes) over the same kind of window. FORWARD_RUNS (default 1) alternating runs; the medians
# are reported. Bounded (timeouts on every process); namespaces and processes removed on exit, INT and TERM.
# Last line:
#   forward: serval_pps=<n> kernel_pps=<n> ratio=<n> router_cpu_ns_per_packet=<n> alloc_bytes_per_packet=<n>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="$here/Serval.Benchmarks/bin/Release/net10.0/Serval.Benchmarks.dll"
runs="${FORWARD_RUNS:-1}"
seconds="${FORWARD_SECONDS:-5}"
warmup="${FORWARD_WARMUP:-3}"
send_seconds=$((warmup + seconds + 4))

if [ "$(id -u)" != 0 ]; then
  echo "forward: needs root (network namespaces)" >&2
  exit 2
fi

suffix="$(printf '%04x' $((RANDOM)))"
ns_s="sv-fws-$suffix"
ns_r="sv-fwr-$suffix"
ns_c="sv-fwc-$suffix"
work="$(mktemp -d)"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  ip netns del "$ns_s" 2>/dev/null || true
  ip netns del "$ns_r" 2>/dev/null || true
  ip netns del "$ns_c" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ip netns add "$ns_s"
ip netns add "$ns_r"
ip netns add "$ns_c"
ip link add "fws$suffix" netns "$ns_s" type veth peer name "fwrs$suffix" netns "$ns_r"
ip link add "fwc$suffix" netns "$ns_c" type veth peer name "fwrc$suffix" netns "$ns_r"
ip -n "$ns_s" addr add 10.91.1.2/24 dev "fws$suffix"
ip -n "$ns_r" addr add 10.91.1.1/24 dev "fwrs$suffix"
ip -n "$ns_r" addr add 10.91.2.1/24 dev "fwrc$suffix"
ip -n "$ns_c" addr add 10.91.2.2/24 dev "fwc$suffix"
for ns in "$ns_s" "$ns_r" "$ns_c"; do
  ip -n "$ns" link set lo up
done
ip -n "$ns_s" link set "fws$suffix" up
ip -n "$ns_r" link set "fwrs$suffix" up
ip -n "$ns_r" link set "fwrc$suffix" up
ip -n "$ns_c" link set "fwc$suffix" up
ip -n "$ns_s" route add default via 10.91.1.1
ip -n "$ns_c" route add default via 10.91.2.1
ip netns exec "$ns_r" sysctl -qw net.ipv4.ip_forward=1

# Waits (bounded: 300 x 0.1 s) until FILE contains TEXT.
wait_for() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "forward: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2 || true
  return 1
}

# The value of KEY=<v> in the last line of FILE that has it.
field() {
  grep -o "$2=[0-9.]*" "$1" | tail -n 1 | cut -d= -f2
}

median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run_kernel() {
  local log="$work/kernel-recv.log"
  : >"$log"
  timeout 60 ip netns exec "$ns_c" dotnet "$binary" forward-recv 10.91.2.2:9000 "$warmup" "$seconds" >"$log" 2>&1 &
  local recv=$!
  pids+=("$recv")
  wait_for "$log" "recv: ready"
  timeout 60 ip netns exec "$ns_s" dotnet "$binary" forward-send 10.91.2.2:9000 udp "$send_seconds" >"$work/kernel-send.log" 2>&1 &
  local send=$!
  pids+=("$send")
  wait "$recv" || true
  wait "$send" || true
  echo "  kernel: $(tail -n 1 "$log"); $(tail -n 1 "$work/kernel-send.log")" >&2
  field "$log" pps >>"$work/kernel_pps"
}

run_serval() {
  local rlog="$work/router.log" clog="$work/serval-recv.log"
  : >"$rlog"
  : >"$clog"
  timeout 90 ip netns exec "$ns_r" dotnet "$binary" forward-router 10.91.1.1 10.91.2.1 10.91.2.2:54325 "$warmup" "$seconds" >"$rlog" 2>&1 &
  local router=$!
  pids+=("$router")
  timeout 60 ip netns exec "$ns_c" dotnet "$binary" forward-recv 10.91.2.2:54325 "$warmup" "$seconds" >"$clog" 2>&1 &
  local recv=$!
  pids+=("$recv")
  wait_for "$rlog" "router: ready"
  wait_for "$clog" "recv: ready"
  timeout 60 ip netns exec "$ns_s" dotnet "$binary" forward-send 10.91.1.1:54325 serval "$send_seconds" >"$work/serval-send.log" 2>&1 &
  local send=$!
  pids+=("$send")
  wait "$recv" || true
  wait "$router" || true
  wait "$send" || true
  echo "  serval: $(tail -n 1 "$clog"); $(grep 'by thread' "$rlog" || true); $(tail -n 1 "$rlog"); $(tail -n 1 "$work/serval-send.log")" >&2
  field "$clog" pps >>"$work/serval_pps"
  field "$rlog" cpu_ns_per_packet >>"$work/cpu"
  field "$rlog" alloc_bytes_per_packet >>"$work/alloc"
}

echo "forward: $runs run(s), ${warmup} s warm-up + ${seconds} s measured; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((r = 0; r < runs; r++)); do
  if ((r % 2 == 0)); then
    run_kernel
    run_serval
  else
    run_serval
    run_kernel
  fi
done

serval=$(median <"$work/serval_pps")
kernel=$(median <"$work/kernel_pps")
cpu=$(median <"$work/cpu")
alloc=$(median <"$work/alloc")
ratio=$(awk -v s="$serval" -v k="$kernel" 'BEGIN { printf "%.3f", (k > 0 ? s / k : 0) }')
echo "forward: load average after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "forward: serval_pps=$serval kernel_pps=$kernel ratio=$ratio router_cpu_ns_per_packet=$cpu alloc_bytes_per_packet=$alloc"
