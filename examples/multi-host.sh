#!/usr/bin/env bash
# The deployment of docs/deployment.md, run on one machine: three network namespaces stand for three machines on two
# subnets, joined by a machine that is both the IP router and the Serval service router.
#
#   replica 10.77.1.2 --- 10.77.1.1 [router] 10.77.2.1 --- 10.77.2.2 client
#
# The router runs servald in ServiceRouter mode with a registration key; the replica runs servald registering with
# it and serves "shop.web" from an unmodified HTTP server through serval-translate serval-to-tcp (attached to its
# servald); the client runs servald and serval-translate tcp-to-serval, and curl fetches a file through it. The script
# checks the file's SHA-256, prints the router's registrations, and removes everything it created.
#
# Needs root (network namespaces), python3 and curl. Usage: examples/multi-host.sh [--keep-logs] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "multi-host: needs root (it creates network namespaces)" >&2
  exit 2
fi
for tool in ip python3 curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "multi-host: $tool is not installed" >&2; exit 2; }
done

keep_logs=false
build=true
for arg in "$@"; do
  case "$arg" in
    --keep-logs) keep_logs=true ;;
    --no-build) build=false ;;
    *) echo "usage: examples/multi-host.sh [--keep-logs] [--no-build]" >&2; exit 2 ;;
  esac
done

if $build; then
  for project in servald servalctl serval-translate; do
    dotnet build "src/$project" -c Release -v q -nologo >/dev/null
  done
fi
servald=(dotnet "$(pwd)/src/servald/bin/Release/net10.0/servald.dll")
servalctl=(dotnet "$(pwd)/src/servalctl/bin/Release/net10.0/servalctl.dll")
translate=(dotnet "$(pwd)/src/serval-translate/bin/Release/net10.0/serval-translate.dll")
for binary in "${servald[1]}" "${servalctl[1]}" "${translate[1]}"; do
  [ -f "$binary" ] || { echo "multi-host: $binary is not built (run without --no-build)" >&2; exit 2; }
done

tag="mh$$"
ns_router="$tag-router"
ns_replica="$tag-replica"
ns_client="$tag-client"
work=$(mktemp -d /tmp/serval-multi-host.XXXXXX)
pids=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ns in "$ns_client" "$ns_replica" "$ns_router"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] || $keep_logs; then
    echo "multi-host: logs in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# --- the "machines" and their IP configuration -------------------------------------------------------------------
for ns in "$ns_router" "$ns_replica" "$ns_client"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "$tag-r1" netns "$ns_router" type veth peer name eth0 netns "$ns_replica"
ip link add "$tag-r2" netns "$ns_router" type veth peer name eth0 netns "$ns_client"
ip -n "$ns_router" addr add 10.77.1.1/24 dev "$tag-r1"
ip -n "$ns_router" addr add 10.77.2.1/24 dev "$tag-r2"
ip -n "$ns_router" link set "$tag-r1" up
ip -n "$ns_router" link set "$tag-r2" up
ip netns exec "$ns_router" sysctl -qw net.ipv4.ip_forward=1
ip -n "$ns_replica" addr add 10.77.1.2/24 dev eth0
ip -n "$ns_replica" link set eth0 up
ip -n "$ns_replica" route add default via 10.77.1.1
ip -n "$ns_client" addr add 10.77.2.2/24 dev eth0
ip -n "$ns_client" link set eth0 up
ip -n "$ns_client" route add default via 10.77.2.1

# --- the shared registration key (one file per machine in a real deployment, mode 0600) ----------------------------
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/registration.key"

start() { # start NAME NAMESPACE COMMAND... : runs in the background, output to $work/NAME.log
  local name=$1 ns=$2
  shift 2
  ip netns exec "$ns" "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
}

wait_for() { # wait_for FILE TEXT SECONDS
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "multi-host: timed out waiting for '$2' in $1" >&2
      cat "$1" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

wait_socket() { # wait_socket PATH SECONDS
  local deadline=$((SECONDS + $2))
  until [ -S "$1" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "multi-host: no control socket $1" >&2; return 1; }
    sleep 0.1
  done
}

# --- the service router ---------------------------------------------------------------------------------------------
start router "$ns_router" env Serval__Router__KeyFile="$work/registration.key" "${servald[@]}" \
  --Serval:Name=router --Serval:Mode=ServiceRouter \
  --Serval:Udp:0:Address=10.77.1.1 --Serval:Udp:1:Address=10.77.2.1 \
  --Serval:ControlSocket="$work/router.sock"
wait_socket "$work/router.sock" 60

# --- the replica: servald registering with the router, an unmodified HTTP server, the translator ---------------------
mkdir -p "$work/www"
head -c 3000000 /dev/urandom >"$work/www/blob"
start replica "$ns_replica" env Serval__Registration__KeyFile="$work/registration.key" "${servald[@]}" \
  --Serval:Name=replica --Serval:Udp:0:Address=10.77.1.2 --Serval:Registration:Routers:0=10.77.1.1 \
  --Serval:ControlSocket="$work/replica.sock"
wait_socket "$work/replica.sock" 60
start http "$ns_replica" python3 -m http.server 8080 --bind 127.0.0.1 --directory "$work/www"
start replica-translate "$ns_replica" "${translate[@]}" serval-to-tcp --attach "$work/replica.sock" \
  --service shop.web --target 127.0.0.1:8080
wait_for "$work/replica-translate.log" "listening on" 60

# --- the client: servald with the router as its default route, the translator for unmodified TCP clients ------------
start client "$ns_client" env Serval__Registration__KeyFile="$work/registration.key" "${servald[@]}" \
  --Serval:Name=client --Serval:Udp:0:Address=10.77.2.2 --Serval:Registration:Routers:0=10.77.2.1 \
  --Serval:ControlSocket="$work/client.sock"
wait_socket "$work/client.sock" 60
start client-translate "$ns_client" "${translate[@]}" tcp-to-serval --attach "$work/client.sock" \
  --listen 127.0.0.1:9000 --service shop.web
wait_for "$work/client-translate.log" "listening on" 60

# --- the registration reaches the router, then curl fetches the file by service name --------------------------------
deadline=$((SECONDS + 30))
until ip netns exec "$ns_router" "${servalctl[@]}" router registrations --socket "$work/router.sock" 2>/dev/null \
  | grep -q "active"; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "multi-host: the replica never registered" >&2; exit 1; }
  sleep 0.2
done
echo "== router registrations"
ip netns exec "$ns_router" "${servalctl[@]}" router registrations --socket "$work/router.sock"

ip netns exec "$ns_client" curl -sS --max-time 30 -o "$work/fetched" http://127.0.0.1:9000/blob
want=$(sha256sum <"$work/www/blob" | cut -d' ' -f1)
got=$(sha256sum <"$work/fetched" | cut -d' ' -f1)
echo "== client flows"
ip netns exec "$ns_client" "${servalctl[@]}" flow list --socket "$work/client.sock" || true
if [ "$want" != "$got" ]; then
  echo "multi-host: FAILED: fetched $(stat -c %s "$work/fetched") bytes, sha256 $got, expected $want" >&2
  exit 1
fi
echo "multi-host: fetched 3000000 bytes through the service router, sha256 $got matches"
