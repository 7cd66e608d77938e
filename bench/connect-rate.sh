#!/usr/bin/env bash
# bench/run.sh connect-rate: connections per second through a load-balancing middle box, Serval against kernel TCP.
# Five network namespaces joined by a bridge (in the router's namespace), 10.77.0.0/24: a client (.2), a router (.1)
# and three replicas (.11-.13). Serval: servald in ServiceRouter mode on the router, three `serval-perf server`
# replicas registering the service with it (weights CONNECT_RATE_WEIGHTS, default "1 1 2"); the router forwards each
# SYN to a replica, the rest of the connection goes directly between client and replica. Baseline: haproxy (TCP mode,
# same weights) on the router in front of three kernel TCP servers (`serval-perf server --tcp`) on the replicas.
# The same client code (`serval-perf connect-rate`) drives both: CONNECT_RATE_CLIENTS loops (default 64) of connect,
# one-byte echo (CONNECT_RATE_ECHO=1, the default; 0 = connect and close only) and close for CONNECT_RATE_SECONDS
# (default 10) after a 1 s warm-up (not recorded: the first connections pay for JIT compilation). Needs root;
# installs haproxy if missing. The last line is the summary (p99 of connect + echo):
#   connect-rate: serval_cps=<n> haproxy_cps=<n> ratio=<n> serval_p99_ms=<n> haproxy_p99_ms=<n> failed=<n>
# (failed = Serval connections that failed for any reason, warm-up included; ratio = serval_cps / haproxy_cps).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
clients="${CONNECT_RATE_CLIENTS:-64}"
seconds="${CONNECT_RATE_SECONDS:-10}"
echo_byte="${CONNECT_RATE_ECHO:-1}"
read -r -a weights <<<"${CONNECT_RATE_WEIGHTS:-1 1 2}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [ "$(id -u)" -ne 0 ]; then
  echo "connect-rate: needs root (network namespaces, veth, bridge)" >&2
  exit 1
fi

case "$clients$seconds" in
  ''|*[!0-9]*) echo "connect-rate: CONNECT_RATE_CLIENTS and CONNECT_RATE_SECONDS must be whole numbers" >&2; exit 2 ;;
esac
if [ "$clients" -lt 1 ] || [ "$clients" -gt 1024 ] || [ "$seconds" -lt 1 ] || [ "$seconds" -gt 300 ]; then
  echo "connect-rate: CONNECT_RATE_CLIENTS must be 1-1024 and CONNECT_RATE_SECONDS 1-300" >&2
  exit 2
fi
case "$echo_byte" in
  0|1) ;;
  *) echo "connect-rate: CONNECT_RATE_ECHO must be 0 or 1" >&2; exit 2 ;;
esac
if [ "${#weights[@]}" -ne 3 ]; then
  echo "connect-rate: CONNECT_RATE_WEIGHTS must be three weights, e.g. \"1 1 2\"" >&2
  exit 2
fi
for w in "${weights[@]}"; do
  case "$w" in
    ''|*[!0-9]*|0) echo "connect-rate: CONNECT_RATE_WEIGHTS must be whole numbers of at least 1" >&2; exit 2 ;;
  esac
done

# Namespaces are named svcr-<PID of the script>-<role>. Those of an earlier run whose script is gone (aborted by
# SIGKILL, before its trap could run) are removed first; a live run's are left alone.
for ns in $(ip netns list | awk '{print $1}' | grep '^svcr-[0-9]*-' || true); do
  owner="${ns#svcr-}"
  owner="${owner%%-*}"
  if ! kill -0 "$owner" 2>/dev/null; then
    echo "connect-rate: removing stale namespace $ns" >&2
    ip netns del "$ns" 2>/dev/null || true
  fi
done

if ! command -v haproxy >/dev/null 2>&1; then
  echo "connect-rate: installing haproxy" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy) >&2
fi

for project in serval-perf servald servalctl; do
  dotnet build "$root/src/$project/$project.csproj" -c Release --nologo -v quiet >&2
done
perf_dll="$root/src/serval-perf/bin/Release/net10.0/serval-perf.dll"
servald_dll="$root/src/servald/bin/Release/net10.0/servald.dll"
servalctl_dll="$root/src/servalctl/bin/Release/net10.0/servalctl.dll"

prefix="svcr-$$"
ns_router="$prefix-router"
ns_client="$prefix-client"
ns_replicas=("$prefix-r1" "$prefix-r2" "$prefix-r3")
router_addr=10.77.0.1
client_addr=10.77.0.2
replica_addrs=(10.77.0.11 10.77.0.12 10.77.0.13)
tcp_port=7000
service=connect-rate
work="$(mktemp -d)"
control="$work/router.sock"
# Every process the script starts runs under timeout (bounded) and its PID is kept in this file.
pids="$work/pids"
: >"$pids"

cleanup() {
  if [ -f "$pids" ]; then
    while read -r pid; do
      kill "$pid" 2>/dev/null || true
    done <"$pids"
  fi
  ip netns del "$ns_client" 2>/dev/null || true
  ip netns del "$ns_router" 2>/dev/null || true
  for ns in "${ns_replicas[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Topology: a bridge in the router's namespace; a veth from each other namespace to it.
ip netns add "$ns_router"
ip -n "$ns_router" link set lo up
ip -n "$ns_router" link add br0 type bridge
ip -n "$ns_router" addr add "$router_addr/24" dev br0
ip -n "$ns_router" link set br0 up
attach() {
  local ns="$1" addr="$2" port="$3"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$port" netns "$ns_router" type veth peer name eth0 netns "$ns"
  ip -n "$ns_router" link set "$port" master br0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}
attach "$ns_client" "$client_addr" vclient
for i in 0 1 2; do
  attach "${ns_replicas[$i]}" "${replica_addrs[$i]}" "vr$((i + 1))"
done
# Kernel TCP: the client and haproxy open ~10^5 connections in a run; let them reuse TIME-WAIT ports.
for ns in "$ns_client" "$ns_router"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
done
echo "connect-rate: namespaces $ns_client ($client_addr), $ns_router ($router_addr), ${ns_replicas[*]} (${replica_addrs[*]}); $clients loop(s), $seconds s, echo $echo_byte, weights ${weights[*]}" >&2

# Starts a bounded background process in a namespace: NS LOG SECONDS COMMAND...; prints its PID.
start() {
  local ns="$1" log="$2" limit="$3"
  shift 3
  ip netns exec "$ns" timeout "$limit" "$@" >"$log" 2>&1 &
  echo "$!" >>"$pids"
  echo "$!"
}

# Waits (bounded) until FILE contains TEXT.
wait_for() {
  local file="$1" text="$2"
  for _ in $(seq 300); do
    if grep -q "$text" "$file" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "connect-rate: timed out waiting for '$text' in $file:" >&2
  cat "$file" >&2 || true
  return 1
}

limit=$((seconds + 300))
echo_flag=()
[ "$echo_byte" = 1 ] && echo_flag=(--echo)

# Prints the client's summary line from its JSON: NAME FILE.
describe() {
  python3 - "$1" "$2" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[2]))
l, c = r["latency_ms"], r["connect_ms"]
print("  %s: %d connections (after %d in the 1 s warm-up, %d failed there), %.1f/s, failed %d %s; latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f; connect ms p50 %.3f p99 %.3f; client cpu %.2f s"
      % (sys.argv[1], r["connections"], r["warmup_connections"], r["warmup_failed"], r["connections_per_second"], r["failed"], json.dumps(r["failures"]), l["p50"], l["p90"], l["p99"], l["p999"], l["max"], c["p50"], c["p99"], r["cpu_seconds"]))
print("  %s histogram (ms, connections): %s" % (sys.argv[1], " ".join("<=%s:%d" % (b["le_ms"], b["count"]) for b in r["histogram"] if b["count"])))
if "engine" in r:
    print("  %s client engine: %s" % (sys.argv[1], json.dumps(r["engine"])))
PY
}

# --- Serval: servald service router, three registering replicas ------------------------------------------------
router_pid="$(start "$ns_router" "$work/router.log" "$limit" dotnet "$servald_dll" --Serval:Name=router --Serval:Mode=ServiceRouter \
  "--Serval:Udp:0:Address=$router_addr" "--Serval:ControlSocket=$control")"
for _ in $(seq 300); do
  [ -S "$control" ] && break
  sleep 0.1
done
if [ ! -S "$control" ]; then
  echo "connect-rate: servald did not start:" >&2
  cat "$work/router.log" >&2
  exit 1
fi
servalctl() {
  ip netns exec "$ns_router" timeout 20 dotnet "$servalctl_dll" --socket "$control" "$@"
}

replica_pids=()
for i in 0 1 2; do
  replica_pids+=("$(start "${ns_replicas[$i]}" "$work/replica$i.log" "$limit" dotnet "$perf_dll" server --udp "${replica_addrs[$i]}" \
    --service "$service" --register "$router_addr" --weight "${weights[$i]}")")
done
for i in 0 1 2; do
  wait_for "$work/replica$i.log" "listening"
done

# Bounded wait until the router holds the three registrations (active).
registered=0
for _ in $(seq 100); do
  registered="$(servalctl router registrations --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["registrations"] if r["state"] == "active"))' 2>/dev/null || echo 0)"
  [ "$registered" = 3 ] && break
  sleep 0.2
done
if [ "$registered" != 3 ]; then
  echo "connect-rate: the router holds $registered of 3 registrations:" >&2
  servalctl router registrations >&2 || true
  exit 1
fi
servalctl router registrations >&2 || true

echo "connect-rate: serval: $clients loops for $seconds s through the service router" >&2
serval_exit=0
ip netns exec "$ns_client" timeout $((seconds + 120)) dotnet "$perf_dll" connect-rate --udp "$client_addr:54325" --server "$router_addr" \
  --service "$service" -P "$clients" -t "$seconds" --warmup 1 "${echo_flag[@]}" --json >"$work/serval.json" 2>"$work/serval-client.log" || serval_exit=$?

servalctl stats --json >"$work/router-stats.json" 2>&1 || true
crashed=0
for i in 0 1 2; do
  if ! kill -0 "${replica_pids[$i]}" 2>/dev/null; then
    crashed=$((crashed + 1))
    echo "connect-rate: replica $((i + 1)) (${replica_addrs[$i]}) exited during the run:" >&2
    tail -n 30 "$work/replica$i.log" >&2
  fi
done
# Stop the replicas (SIGTERM through timeout; they print their engine counters) and the router, bounded.
for pid in "${replica_pids[@]}" "$router_pid"; do
  kill "$pid" 2>/dev/null || true
done
for pid in "${replica_pids[@]}" "$router_pid"; do
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
done
for i in 0 1 2; do
  echo "  replica $((i + 1)) (weight ${weights[$i]}): $(grep -h 'accepted\|Unhandled\|Exception' "$work/replica$i.log" | head -n 3 | tr '\n' ' ')" >&2
done
python3 - "$work/router-stats.json" <<'PY' >&2 || true
import json, sys
try:
    s = json.load(open(sys.argv[1]))
    print("  router engine: " + json.dumps({k: v for k, v in s["engine"].items() if v not in (0, "0", 0.0)}))
except Exception as e:
    print("  router stats unavailable: %s" % e)
PY
if grep -q 'Unhandled exception\|InvalidOperationException' "$work/router.log"; then
  echo "connect-rate: the router logged an exception:" >&2
  grep -m 5 -A 5 'Unhandled exception\|InvalidOperationException' "$work/router.log" >&2
fi
if [ "$serval_exit" -ne 0 ] || [ ! -s "$work/serval.json" ]; then
  echo "connect-rate: the Serval client failed (exit $serval_exit):" >&2
  cat "$work/serval-client.log" >&2
  exit 1
fi
describe serval "$work/serval.json"
[ "$crashed" -eq 0 ] || echo "connect-rate: $crashed replica(s) crashed during the Serval run" >&2

# --- Kernel TCP: haproxy in TCP mode, three kernel TCP servers -------------------------------------------------
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend connect_rate
    bind $router_addr:$tcp_port
    default_backend replicas
backend replicas
    balance roundrobin
    server r1 ${replica_addrs[0]}:$tcp_port weight ${weights[0]}
    server r2 ${replica_addrs[1]}:$tcp_port weight ${weights[1]}
    server r3 ${replica_addrs[2]}:$tcp_port weight ${weights[2]}
EOF
tcp_pids=()
for i in 0 1 2; do
  tcp_pids+=("$(start "${ns_replicas[$i]}" "$work/tcp$i.log" "$limit" dotnet "$perf_dll" server --tcp "${replica_addrs[$i]}:$tcp_port")")
done
for i in 0 1 2; do
  wait_for "$work/tcp$i.log" "listening"
done
haproxy_pid="$(start "$ns_router" "$work/haproxy.log" "$limit" haproxy -db -f "$work/haproxy.cfg")"
listening=0
for _ in $(seq 100); do
  if ip netns exec "$ns_router" ss -ltnH "sport = :$tcp_port" | grep -q .; then
    listening=1
    break
  fi
  sleep 0.1
done
if [ "$listening" = 0 ]; then
  echo "connect-rate: haproxy is not listening on $router_addr:$tcp_port:" >&2
  cat "$work/haproxy.log" >&2
  exit 1
fi

echo "connect-rate: haproxy: $clients loops for $seconds s through haproxy (TCP mode)" >&2
ip netns exec "$ns_client" timeout $((seconds + 120)) dotnet "$perf_dll" connect-rate --tcp "$router_addr:$tcp_port" \
  -P "$clients" -t "$seconds" --warmup 1 "${echo_flag[@]}" --json >"$work/haproxy.json" 2>"$work/haproxy-client.log" || {
  echo "connect-rate: the kernel TCP client failed:" >&2
  cat "$work/haproxy-client.log" "$work/haproxy.log" >&2
  exit 1
}
for pid in "${tcp_pids[@]}" "$haproxy_pid"; do
  kill "$pid" 2>/dev/null || true
done
describe haproxy "$work/haproxy.json"

python3 - "$work/serval.json" "$work/haproxy.json" <<'PY'
import json, sys
s, h = (json.load(open(p)) for p in sys.argv[1:])
sc, hc = s["connections_per_second"], h["connections_per_second"]
ratio = sc / hc if hc > 0 else 0
print("connect-rate: serval_cps=%.1f haproxy_cps=%.1f ratio=%.3f serval_p99_ms=%.3f haproxy_p99_ms=%.3f failed=%d"
      % (sc, hc, ratio, s["latency_ms"]["p99"], h["latency_ms"]["p99"], s["failed"] + s["warmup_failed"]))
PY
