# Sourced by the two-namespace benchmarks (stream-veth.sh, translate-veth.sh): two network namespaces joined by one
# veth pair, every process started by the caller recorded by PID in "$work/pids" and ended on exit with the namespaces.
#   veth_pair TAG SUBNET   creates ns_a/ns_b ("sv-TAGa-…", "sv-TAGb-…"), veth_a/veth_b ("svTAGa…", "svTAGb…"),
#                          addr_a=SUBNET.1, addr_b=SUBNET.2
#                          (/24), both links and loopbacks up, a fresh "$work" folder, and the EXIT/INT/TERM cleanup.
#   wait_for FILE TEXT [TRIES]   waits (bounded: TRIES x 0.1 s, default 200) until FILE contains TEXT.

veth_pair() {
  local tag="$1" subnet="$2" suffix
  suffix="$(printf '%04x%02x' $((RANDOM)) $((RANDOM % 256)))"
  ns_a="sv-${tag}a-$suffix"
  ns_b="sv-${tag}b-$suffix"
  veth_a="sv${tag}a$suffix"
  veth_b="sv${tag}b$suffix"
  addr_a="$subnet.1"
  addr_b="$subnet.2"
  work="$(mktemp -d)"
  trap veth_pair_cleanup EXIT INT TERM

  ip netns add "$ns_a"
  ip netns add "$ns_b"
  ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
  ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
  ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
  for ns in "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
  done
  ip -n "$ns_a" link set "$veth_a" up
  ip -n "$ns_b" link set "$veth_b" up
}

veth_pair_cleanup() {
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      kill "$pid" 2>/dev/null || true
    done <"$work/pids"
  fi
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  rm -rf "$work"
}

wait_for() {
  local file="$1" text="$2" tries="${3:-200}"
  for _ in $(seq "$tries"); do
    if grep -q "$text" "$file" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for '$text' in $file:" >&2
  cat "$file" >&2 || true
  return 1
}
