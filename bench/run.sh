#!/usr/bin/env bash
# Runs a named benchmark set; the last line printed is the set's one-line summary (other tools read it).
#   bench/run.sh wire             parse/emit of SAL packets:  wire: parse_ns=<median> emit_ns=<median> alloc_bytes=<n>
#   bench/run.sh service-table    service-table lookups (BenchmarkDotNet), updates and memory
#   bench/run.sh stream-sim       two engines in memory on one thread, 1 GiB stream transfer (steady state):
#                                 stream-sim: goodput_gbps=<n> cpu_ns_per_byte=<n> alloc_bytes_per_segment=<n>
#   bench/run.sh secure           authenticated flows (docs/security.md), two engines in memory on one thread, one run:
#                                 stream goodput per CPU-second ordinary, authenticated and encrypted (SECURE_BYTES,
#                                 default 256 MiB each, 1500-byte MTU); connects per CPU-second ordinary and with an
#                                 ownership proof (SECURE_CONNECTS, 2000); an on-path attacker forging SECURE_SPOOFS
#                                 (1000000) RST/FIN/RSYN/ACK/data packets and replays against an authenticated flow
#                                 carrying 8 MiB whose SHA-256 is checked:
#                                 secure: plain_gbps=<n> auth_gbps=<n> aead_gbps=<n> auth_ratio=<n> aead_ratio=<n>
#                                   plain_cps=<n> proof_cps=<n> onpath_spoofs_accepted=<n>
#   bench/run.sh registration     a service router on loopback UDP: registrations it absorbs per second, and the time
#                                 from a replica's bind to the first SYN routed to it (REGISTRATION_ARGS="HOSTS PER_HOST
#                                 SAMPLES", default "100 500 200"):
#                                 registration: registrations_per_s=<n> bind_to_routable_ms_p50=<n> p99=<n>
#   bench/run.sh delay-release    a held SYN leaving once its rule appears, on loopback UDP hosts: rule added through the
#                                 API -> the SYN handed to the client's link; a registration's Register received by a
#                                 service router -> the SYN it held handed to its link (DELAY_RELEASE_SAMPLES, default 200):
#                                 delay-release: delay_release_ms_p50=<n> p99=<n> registration_release_ms_p50=<n> p99=<n> samples=<n>+<n>
#   bench/run.sh migration        (root) two namespaces, two veth pairs; a stream transfer migrated 100 times between
#                                 the sender's two interfaces (MIGRATION_COUNT, MIGRATION_TRIGGER=explicit|link-state,
#                                 MIGRATION_BOTTLENECK_MBPS=300, 0 for none); MIGRATION_TRIGGER=renumber: one veth, the
#                                 sender's only address replaced by one in the other subnet each time (a link policy
#                                 follows it), gap = longest pause in delivery; MIGRATION_TRIGGER=both: client and server
#                                 in two namespaces behind a service router namespace, both renumbered at once (neither
#                                 reaches the other's last address; the RSYN relayed by the router reconnects them):
#                                 migration: gap_ms_p50=<n> gap_ms_p99=<n> failed=<n> bytes_lost=<n>
#   bench/run.sh mobility         (root) migration with MIGRATION_TRIGGER=renumber and =both (MOBILITY_MOVES, default 100
#                                 each), delay-release, and adhoc when this tree has it (else adhoc_connect_ms=NA);
#                                 failed and bytes_lost are the sums; delay_release_ms is delay-release's p99 (rule
#                                 added -> held SYN handed to the link); adhoc_connect_ms is adhoc's connect_ms_p50:
#                                 mobility: renumber_gap_ms_p50=<n> renumber_gap_ms_p99=<n> both_gap_ms_p50=<n> both_gap_ms_p99=<n>
#                                   failed=<n> bytes_lost=<n> adhoc_connect_ms=<n> delay_release_ms=<n>
#   bench/run.sh adhoc            (root) zero configuration on one bridge: three namespaces, one UDP link each, no route,
#                                 rule or router configured; ADHOC_CONNECTS (50) connects by serviceID over the
#                                 broadcast default rule (connect call -> established), then a service router started in
#                                 the third namespace (start -> it holds the server's registration, learned from its
#                                 advertisement):
#                                 adhoc: connect_ms_p50=<n> connect_ms_p99=<n> router_found_ms=<n> failed=<n>
#   bench/run.sh http             one Kestrel app on loopback, on TCP and on a Serval service (UDP encapsulation):
#                                 small GETs/s with 16 concurrent requests and large-upload goodput, HttpClient against
#                                 each in the same run (HTTP_ARGS="SECONDS UPLOAD_MIB", default "5 512"):
#                                 http: tcp_rps=<n> serval_rps=<n> ratio_rps=<n> tcp_upload_gbps=<n> serval_upload_gbps=<n> ratio_upload=<n>
#   bench/run.sh stream-veth      (root) kernel TCP vs Serval streams (serval-perf) between two namespaces over a veth,
#                                 then on the veth shaped to 1 Gbit/s (bench/stream-veth.sh; STREAM_VETH_RUNS, _SECONDS,
#                                 _NICE, and _LOAD=N busy loops to measure a busy host):
#                                 stream-veth: kernel_gbps=<n> serval_udp_gbps=<n> serval_raw_gbps=<n> ratio_udp=<n>
#                                   shaped_kernel_gbps=<n> shaped_serval_gbps=<n> shaped_ratio=<n> udp_blast_gbps=<n> ratio_blast=<n> ratio_raw=<n>
#                                 (udp_blast: a plain .NET UDP socket with GSO between the same namespaces, same MTU)
#                                   shaped_kernel_gbps=<n> shaped_serval_gbps=<n> shaped_ratio=<n>
#   bench/run.sh forward          (root) a service router's forwarding against the kernel's IP forwarding (bench/forward.sh):
#                                 sender -> router -> receiver namespaces, one sender thread of 48-byte datagrams, to a
#                                 serviceID through a ServalHost in service-router mode and as plain UDP routed by the
#                                 kernel, same run (FORWARD_RUNS=1, FORWARD_SECONDS=5, FORWARD_WARMUP=3); router CPU from
#                                 the router process's CPU time, allocation from its GC.GetTotalAllocatedBytes:
#                                 forward: serval_pps=<n> kernel_pps=<n> ratio=<n> router_cpu_ns_per_packet=<n> alloc_bytes_per_packet=<n>
#   bench/run.sh connect-rate     (root) connections/s through a middle box (bench/connect-rate.sh): a client, a router
#                                 and 3 replica namespaces on a bridge; Serval (servald service router, 3 registering
#                                 serval-perf replicas, weights 1:1:2) against haproxy in TCP mode in front of 3 kernel
#                                 TCP servers; CONNECT_RATE_CLIENTS loops (64) of connect + 1-byte echo + close for
#                                 CONNECT_RATE_SECONDS (10), both measured by serval-perf connect-rate (CONNECT_RATE_ECHO=0:
#                                 connect + close only; CONNECT_RATE_WEIGHTS="1 1 2"). p99 = connect + echo latency,
#                                 failed = Serval connections that failed, ratio = serval_cps / haproxy_cps:
#                                 connect-rate: serval_cps=<n> haproxy_cps=<n> ratio=<n> serval_p99_ms=<n> haproxy_p99_ms=<n> failed=<n>
#   bench/run.sh hostile          the stack under attack (bounded parts, loopback and in memory): a SYN flood from a plain
#                                 UDP socket while a client connects + echoes 1 byte in a loop (HOSTILE_FLOOD_SECONDS=10);
#                                 9 kinds of spoofed packets x HOSTILE_SPOOFS (1000000) against an established flow of two
#                                 engines in memory; managed heap per released TIME-WAIT flow (HOSTILE_TIMEWAIT_FLOWS=20000);
#                                 a soak of verified connect/transfer/close loops (HOSTILE_SOAK_SECONDS=600, e.g. 60 to shorten):
#                                 (spoofs_accepted: the kinds the stack can check; data in the window and forged pure ACKs
#                                 carry no nonce and are only rejected with high probability, printed separately):
#                                 hostile: synflood_pps=<n> legit_success=<n> legit_p99_ms=<n> spoofs_sent=<n> spoofs_accepted=<n>
#                                   timewait_bytes_per_flow=<n> soak_heap_growth=<n> flow_faults=<n>
#   bench/run.sh flows            FLOWS_N idle connections (default 50000, up to 1000000) between two hosts in one process
#                                 (UDP links on loopback; both ends counted) against as many kernel TCP connections on
#                                 loopback (FLOWS_KERNEL_N, default FLOWS_N capped by the file-descriptor limit), each in a
#                                 process of its own; at most FLOWS_WINDOW (1024) connects in flight. Bytes per flow =
#                                 RSS growth (plus, for the kernel, slab growth from /proc/slabinfo) / flows after a full
#                                 collection; open_per_s = Serval connections opened and accepted per second; max_flows =
#                                 Serval flows held open at once; ratio = serval_bytes_per_flow / kernel_bytes_per_flow:
#                                 flows: serval_bytes_per_flow=<n> kernel_bytes_per_flow=<n> ratio=<n> open_per_s=<n> max_flows=<n>
#   bench/run.sh fig7             (root) the replicated web service of docs/evaluation.md: ASP.NET Core instances over
#                                 Serval (egress FIG7_RATE_MBPS each, default 20) behind a servald service router, 4
#                                 clients x 20 requests of 3 MB in flight; 2 -> 4 -> 2 -> 3 instances at 60/120/180 s;
#                                 then haproxy (TCP mode, same link rate) in front of 4 Kestrel-over-TCP instances:
#                                 fig7: phases_rps=<a,b,c,d> phases_gbps=<a,b,c,d> per_instance_spread=<n> haproxy_gbps=<n>
#   bench/run.sh fig8             (root) the partitioned key-value store of docs/evaluation.md: memcached-protocol SETs
#                                 of 1 KiB over Serval datagrams at FIG8_RATE requests/s (default 300) to prefix + key,
#                                 16 partitions over 4 servers reassigned as servers leave (10, 20 s) and return (30, 40 s):
#                                 fig8: offered_rps=<n> served_rps=<n> lost=<n> partition_moves=<n> max_imbalance=<n>
#   bench/run.sh fleet            (root, etcd installed) three servald service routers sharing their registrations through
#                                 a 3-member etcd cluster, all in namespaces; FLEET_ARGS="HOSTS SERVICES SAMPLES CONNECTS"
#                                 (default "100 50 100 100") simulated hosts x services registering (host k with router
#                                 k mod 3), then: propagation = bind at a host -> its rule in the router it does not use;
#                                 CONNECTS connections through each router; router_failover_ms = a router killed -> the
#                                 next new connection through the fleet (a client using all three routers) succeeds:
#                                 fleet: registrations_per_s=<n> propagation_ms_p50=<n> propagation_ms_p99=<n> router_failover_ms=<n> failed=<n>
#   bench/run.sh paper            (root) the paper's experiments (docs/evaluation.md), each writing its CSV and PNG to
#                                 docs/figures/: builds bench/experiments once and runs fig7 fig8 fig9 fig10 table in
#                                 order (names this tree's serval-experiments does not know are skipped with a note),
#                                 printing each one's last line as it ends; PAPER_ARGS (e.g.
#                                 "--scale 0.3 --out /tmp/figs") is passed to every serval-experiments run. Exit 1 when
#                                 one failed (its line is then "NAME: failed").
#   bench/run.sh fig9             (root) interface load balancing, docs/evaluation.md (FIG9_RATE_MBPS, default 50):
#                                 fig9: before_mbps=<a,b> after_mbps=<a,b> gap_ms=<n>
#   bench/run.sh fig10            (root) a host moving across subnets during a transfer (FIG10_RATE_MBPS, default 100):
#                                 fig10: stall_ms=<n> bytes_lost=<n>
#   bench/run.sh translate        (root) the translators' overhead: iperf3 between two namespaces on a veth shaped to
#                                 1 Gbit/s, directly and through serval-translate tcp-to-serval + serval-to-tcp
#                                 (bench/translate-veth.sh; TRANSLATE_RUNS, _SECONDS, _RATE):
#                                 translate: kernel_gbps=<n> translated_gbps=<n> ratio=<n>
#   bench/run.sh table            (root) the microbenchmark table of docs/evaluation.md: stream-veth (STREAM_VETH_RUNS
#                                 default 1 here), connect-rate (CONNECT_RATE_SECONDS default 5 here), registration,
#                                 delay-release, translate; writes docs/figures/table.md (commands, date, load average):
#                                 table: kernel_gbps=<n> serval_gbps=<n> shaped_ratio=<n> serval_cps=<n> haproxy_cps=<n>
#                                   registrations_per_s=<n> bind_to_routable_ms_p50=<n> delay_release_ms_p50=<n>
#                                   translated_ratio=<n>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here/Serval.Benchmarks/Serval.Benchmarks.csproj"
binary="$here/Serval.Benchmarks/bin/Release/net10.0/Serval.Benchmarks.dll"
experiments_project="$here/experiments/Serval.Experiments/Serval.Experiments.csproj"
experiments_dll="$here/experiments/Serval.Experiments/bin/Release/net10.0/serval-experiments.dll"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

usage() {
  echo "usage: $0 NAME" >&2
  echo "  names: wire service-table stream-sim secure stream-veth connect-rate forward registration delay-release migration mobility adhoc http hostile fleet flows" >&2
  echo "         translate paper fig7 fig8 fig9 fig10 table" >&2
  exit 2
}

[ $# -eq 1 ] || usage

# Builds the benchmarks, unless a caller that already did (mobility) says so.
build() {
  [ "${SERVAL_BENCH_BUILT:-0}" = 1 ] || dotnet build "$project" -c Release --nologo -v quiet >&2
}

# Builds serval-experiments, unless bench/run.sh paper already did.
build_experiments() {
  [ "${SERVAL_EXPERIMENTS_BUILT:-0}" = 1 ] || dotnet build "$experiments_project" -c Release --nologo -v quiet >&2
}

# Runs one experiment of serval-experiments (bounded), with PAPER_ARGS and the given extra arguments.
experiment() {
  local name=$1
  shift
  build_experiments
  # shellcheck disable=SC2086
  timeout 900 dotnet "$experiments_dll" "$name" ${PAPER_ARGS:-} "$@"
}

# The value of KEY=<v> in a summary line.
field() {
  printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Runs "$0 NAME" with the given environment, its output to stderr; prints its last line (empty when it failed).
summary_of() {
  local name=$1 log
  shift
  log=$(mktemp)
  if env "$@" SERVAL_BENCH_BUILT=1 "$0" "$name" 2>&1 | tee "$log" >&2; then
    tail -n 1 "$log"
  fi
  rm -f "$log"
}

case "$1" in
  fig7)
    # haproxy is installed (apt-get) when missing; servald is built with serval-experiments.
    experiment fig7 --rate-mbps "${FIG7_RATE_MBPS:-20}"
    ;;
  fig8)
    experiment fig8 --rate "${FIG8_RATE:-300}"
    ;;
  wire)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    log=$(mktemp)
    (cd "$here/Serval.Benchmarks" && dotnet "$binary" wire) | tee "$log" >&2
    grep '^wire: ' "$log" | tail -n 1
    rm -f "$log"
    ;;
  service-table)
    artifacts="$here/BenchmarkDotNet.Artifacts/service-table"
    dotnet build "$project" -c Release --nologo -v quiet >&2
    rm -rf "$artifacts"
    # BenchmarkDotNet: lookups against 100k and 1M prefixes, and the reference's one-bit trie (short job, see
    # ServiceTableBenchmarkConfig). Then the summary mode: updates/s, bytes per prefix, and the final line.
    (cd "$here" && dotnet "$binary" --filter '*ServiceTable*' --artifacts "$artifacts")
    dotnet "$binary" --service-table-summary "$artifacts"
    ;;
  stream-sim)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    dotnet "$binary" stream-sim "${STREAM_SIM_BYTES:-1073741824}"
    ;;
  secure)
    build
    # Bounded: in memory, one thread; the three figures come from the same run.
    timeout 1800 dotnet "$binary" secure "${SECURE_BYTES:-268435456}" "${SECURE_CONNECTS:-2000}" "${SECURE_SPOOFS:-1000000}"
    ;;
  registration)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    # shellcheck disable=SC2086
    dotnet "$binary" registration ${REGISTRATION_ARGS:-100 500 200}
    ;;
  delay-release)
    build
    # Bounded: every sample has a 10 s deadline.
    timeout 600 dotnet "$binary" delay-release "${DELAY_RELEASE_SAMPLES:-200}"
    ;;
  fleet)
    servald_project="$here/../src/servald/servald.csproj"
    dotnet build "$servald_project" -c Release --nologo -v quiet >&2
    dotnet build "$project" -c Release --nologo -v quiet >&2
    # Bounded: at most 600 s inside the program; namespaces, etcd and servald are removed (by id) on every exit path.
    # shellcheck disable=SC2086
    timeout 700 dotnet "$binary" fleet "$here/../src/servald/bin/Release/net10.0/servald.dll" ${FLEET_ARGS:-100 50 100 100}
    ;;
  migration)
    build
    # Bounded: at most 180 s inside the program; namespaces and processes are removed on every exit path.
    timeout 300 dotnet "$binary" migration "${MIGRATION_COUNT:-100}" "${MIGRATION_TRIGGER:-explicit}" "${MIGRATION_BOTTLENECK_MBPS:-300}"
    ;;
  mobility)
    build
    moves=${MOBILITY_MOVES:-100}
    renumber=$(summary_of migration MIGRATION_COUNT="$moves" MIGRATION_TRIGGER=renumber)
    both=$(summary_of migration MIGRATION_COUNT="$moves" MIGRATION_TRIGGER=both)
    release=$(summary_of delay-release)
    adhoc_ms=NA
    adhoc_failed=0
    if grep -q '^  adhoc)' "${BASH_SOURCE[0]}"; then
      adhoc=$(summary_of adhoc)
      case "$adhoc" in
        adhoc:*)
          adhoc_ms=$(field "$adhoc" connect_ms_p50)
          adhoc_failed=$(field "$adhoc" failed)
          ;;
        *) echo "mobility: bench/run.sh adhoc gave no summary line" >&2 ;;
      esac
    fi
    for line in "$renumber" "$both" "$release"; do
      [ -n "$line" ] || { echo "mobility: a part failed (see above)" >&2; exit 1; }
    done
    failed=$(( $(field "$renumber" failed) + $(field "$both" failed) + ${adhoc_failed:-0} ))
    lost=$(( $(field "$renumber" bytes_lost) + $(field "$both" bytes_lost) ))
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    echo "mobility: renumber_gap_ms_p50=$(field "$renumber" gap_ms_p50) renumber_gap_ms_p99=$(field "$renumber" gap_ms_p99) both_gap_ms_p50=$(field "$both" gap_ms_p50) both_gap_ms_p99=$(field "$both" gap_ms_p99) failed=$failed bytes_lost=$lost adhoc_connect_ms=$adhoc_ms delay_release_ms=$(field "$release" p99)"
    ;;
  adhoc)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    # Bounded: at most 240 s inside the program; namespaces are removed on every exit path.
    timeout 300 dotnet "$binary" adhoc "${ADHOC_CONNECTS:-50}"
    ;;
  http)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    # Bounded: a few measurements of at most 60 s each, uploads time out after 300 s.
    # shellcheck disable=SC2086
    timeout 900 dotnet "$binary" http ${HTTP_ARGS:-5 512}
    ;;
  hostile)
    dotnet build "$project" -c Release --nologo -v quiet >&2
    # Bounded: flood and spoof parts of at most a few minutes, the soak HOSTILE_SOAK_SECONDS plus about a minute.
    timeout $((${HOSTILE_SOAK_SECONDS:-600} + 1200)) dotnet "$binary" hostile
    ;;
  flows)
    build
    n=${FLOWS_N:-50000}
    case "$n" in ''|*[!0-9]*) echo "flows: FLOWS_N must be a whole number" >&2; exit 2 ;; esac
    if [ "$n" -lt 1 ] || [ "$n" -gt 1000000 ]; then echo "flows: FLOWS_N must be 1-1000000" >&2; exit 2; fi
    # The kernel baseline needs two descriptors per connection.
    fd_max=$(cat /proc/sys/fs/nr_open)
    kn=${FLOWS_KERNEL_N:-$n}
    if [ $((2 * kn + 4096)) -gt "$fd_max" ]; then kn=$(((fd_max - 4096) / 2)); fi
    ulimit -n $((2 * kn + 4096)) 2>/dev/null || { kn=$((($(ulimit -n) - 4096) / 2)); echo "flows: descriptor limit $(ulimit -n): kernel baseline with $kn connections" >&2; }
    echo "flows: $n Serval flows, $kn kernel TCP connections; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    # Bounded: each part times out; its sockets and hosts go with its process.
    kernel=$(cd "$here/Serval.Benchmarks" && timeout 900 dotnet "$binary" flows kernel "$kn" | tail -n 1)
    echo "$kernel" >&2
    serval=$(cd "$here/Serval.Benchmarks" && timeout 3600 dotnet "$binary" flows serval "$n" | tail -n 1)
    echo "$serval" >&2
    case "$kernel$serval" in
      flows-kernel:*flows-serval:*) ;;
      *) echo "flows: a part failed (see above)" >&2; exit 1 ;;
    esac
    sb=$(field "$serval" bytes_per_flow)
    kb=$(field "$kernel" bytes_per_flow)
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    echo "flows: serval_bytes_per_flow=$sb kernel_bytes_per_flow=$kb ratio=$(awk -v a="$sb" -v b="$kb" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }') open_per_s=$(field "$serval" open_per_s) max_flows=$(field "$serval" flows)"
    ;;
  stream-veth)
    exec "$here/stream-veth.sh"
    ;;
  connect-rate)
    exec "$here/connect-rate.sh"
    ;;
  forward)
    build
    exec "$here/forward.sh"
    ;;
  fig9)
    experiment fig9 --rate-mbps "${FIG9_RATE_MBPS:-50}"
    ;;
  fig10)
    experiment fig10 --rate-mbps "${FIG10_RATE_MBPS:-100}"
    ;;
  translate)
    exec "$here/translate-veth.sh"
    ;;
  table)
    exec "$here/paper-table.sh"
    ;;
  paper)
    build_experiments
    known=$(dotnet "$experiments_dll" --help 2>&1 | sed -n 's/^  names: //p')
    status=0
    for name in fig7 fig8 fig9 fig10 table; do
      if [ "$name" != table ] && ! printf ' %s ' "$known" | grep -q " $name "; then
        echo "paper: $name is not in this tree's serval-experiments (names: $known); skipped" >&2
        continue
      fi
      echo "paper: $name" >&2
      line=$(summary_of "$name" SERVAL_EXPERIMENTS_BUILT=1)
      case "$line" in
        "$name: "*) ;;
        *) line="$name: failed"; status=1 ;;
      esac
      echo "$line"
    done
    echo "paper: $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    exit "$status"
    ;;
  *)
    usage
    ;;
esac
