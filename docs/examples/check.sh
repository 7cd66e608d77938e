#!/usr/bin/env bash
# Runs the shell examples of README.md and docs/ (serval-cat, servalctl, servald, router-fleet, wireshark) on this
# machine (127.0.0.x, no privileges; etcd and tshark parts skipped when not installed) with the
# programs built in Release, and says which passed. Usage: docs/examples/check.sh [TEXT] (from anywhere; builds what
# it needs; with TEXT, only the checks whose name contains it).
# Every background process is ended by its process id; every wait is bounded.
set -uo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/serval-cat -c Release -v q -nologo >/dev/null && dotnet build src/servald -c Release -v q -nologo >/dev/null \
  && dotnet build src/servalctl -c Release -v q -nologo >/dev/null || { echo "build failed"; exit 1; }
cat=src/serval-cat/bin/Release/net10.0/serval-cat
# Variables, not functions: a backgrounded "$servald ..." is the dotnet process itself, so $! is its id.
servald="dotnet src/servald/bin/Release/net10.0/servald.dll"
servalctl="dotnet src/servalctl/bin/Release/net10.0/servalctl.dll"
work=$(mktemp -d)
passed=0 failed=0
cleanup() {
  rm -rf "$work"
}
trap cleanup EXIT
only=${1:-}  # optional: run only the checks whose name contains this text
check() { # NAME COMMAND...: runs COMMAND (bounded by timeout), reports
  local name=$1; shift
  [ -z "$only" ] || [[ "$name" == *"$only"* ]] || return 0
  # The check's background processes (its jobs) are ended by their ids when it ends, however it ends.
  if timeout "${CHECK_TIMEOUT:-60}" bash -c "trap 'kill \$(jobs -p) 2>/dev/null' EXIT; $*" >"$work/out" 2>&1; then
    echo "ok    $name"; passed=$((passed + 1))
  else
    echo "FAIL  $name"; sed 's/^/      /' "$work/out"; failed=$((failed + 1))
  fi
}
# Waits (bounded) until a control socket exists.
socket_up() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
# Waits (bounded, 30 s) until the router behind a control socket lists a registration matching a pattern.
registered() { for _ in $(seq 300); do $servalctl --socket "$1" router registrations 2>/dev/null | grep -q "$2" && return 0; sleep 0.1; done; return 1; }
export -f socket_up registered
export cat work servald servalctl

# README.md: serval-cat copies a file over a stream.
check "README: serval-cat file copy" '
  $cat --udp 127.0.0.2 listen shop.echo > $work/received < /dev/null & l=$!
  sleep 1; $cat --udp 127.0.0.3 connect shop.echo --peer 127.0.0.2 < README.md; wait $l; cmp README.md $work/received'

# README.md: $servalctl id.
check "README: servalctl id shop.api" '
  [ "$($servalctl id shop.api)" = "$($servalctl id shop.api)" ] && $servalctl id shop.api | grep -Eq "^[0-9a-f]{64}$"'

# docs/serval-cat.md: a file over a stream, checked at both ends.
check "serval-cat.md: 10 MB file over a stream" '
  head -c 10000000 /dev/urandom > $work/file.bin
  $cat --udp 127.0.0.2 listen test.files > $work/received.bin < /dev/null & l=$!
  sleep 1
  $cat --udp 127.0.0.3 connect test.files --peer 127.0.0.2 < $work/file.bin
  wait $l; cmp $work/file.bin $work/received.bin'

# docs/serval-cat.md: a question and an answer.
check "serval-cat.md: question and answer" '
  $cat --udp 127.0.0.2 listen test.ask <<< "answer" > $work/q & l=$!
  sleep 1
  a=$($cat --udp 127.0.0.3 connect test.ask --peer 127.0.0.2 <<< "question")
  wait $l; [ "$a" = "answer" ] && [ "$(cat $work/q)" = "question" ]'

# docs/serval-cat.md: through a service router.
check "serval-cat.md: through a service router" '
  $servald --Serval:Mode=ServiceRouter --Serval:Udp:0:Address=127.0.0.10 --Serval:ControlSocket=$work/router.sock > $work/router.log 2>&1 & r=$!
  socket_up $work/router.sock
  $cat --udp 127.0.0.2 --router 127.0.0.10 listen shop.echo <<< "hello from the replica" & l=$!
  sleep 2
  got=$($cat --udp 127.0.0.3 --router 127.0.0.10 connect shop.echo < /dev/null)
  wait $l; kill $r; wait $r 2>/dev/null
  [ "$got" = "hello from the replica" ]'

# docs/serval-cat.md: datagrams.
check "serval-cat.md: datagrams" '
  $cat -u --udp 127.0.0.2 listen test.lines < /dev/null > $work/lines & l=$!
  sleep 1
  seq 1 100 | $cat -u --udp 127.0.0.3 connect test.lines --peer 127.0.0.2
  sleep 1; kill $l 2>/dev/null; wait $l 2>/dev/null
  [ "$(wc -l < $work/lines)" -ge 90 ]'

# docs/serval-cat.md: refused (exit 3) and timed out (exit 4); then attached to that servald.
check "serval-cat.md: exit 3, exit 4, attached" '
  $servald --Serval:Udp:0:Address=127.0.0.4 --Serval:ControlSocket=$work/host4.sock > $work/host4.log 2>&1 & s=$!
  socket_up $work/host4.sock
  $cat --udp 127.0.0.3 connect nobody.here --peer 127.0.0.4 < /dev/null; r=$?
  $cat --udp 127.0.0.3 -w 2 connect nobody.here --peer 127.0.0.5 < /dev/null; t=$?
  $cat --attach $work/host4.sock listen shop.att <<< "from the attached listener" > $work/att & l=$!
  sleep 1
  got=$($cat --attach $work/host4.sock connect shop.att <<< "from the attached client")
  wait $l; kill $s; wait $s 2>/dev/null
  echo "refused $r, timed out $t, got \"$got\", listener got \"$(cat $work/att)\""
  [ $r = 3 ] && [ $t = 4 ] && [ "$got" = "from the attached listener" ] && [ "$(cat $work/att)" = "from the attached client" ]'

# docs/servalctl.md: decode with filters (the embedded sample capture when no file is given).
check "servalctl.md: decode --json, --hex" '
  $servalctl decode --json | head -1 | grep -q "\"frame\"" && $servalctl decode --hex | grep -q "0000"'

# docs/servald.md: --help and --version.
check "servald.md: servald --help, --version" '
  $servald --help | grep -q "^Usage: servald" && $servald --version | grep -Eq "^servald [0-9]+\.[0-9]+\.[0-9]+"'

# docs/servalctl.md and docs/security.md: a self-certifying serviceID's key file, then the refusal of a readable one.
check "servalctl.md: id new, id show, a key file others can read" '
  id=$($servalctl id new --prefix 0x5e1f/16 --out $work/shop.key) || exit 1
  echo "$id" | grep -Eq "^5e1f[0-9a-f]{60}$" && [ "$(stat -c %a $work/shop.key)" = 600 ] \
    && [ "$($servalctl id show $work/shop.key)" = "$id" ] || exit 1
  $servalctl id new --prefix 0x5e1f/16 --out $work/shop.key; [ $? = 1 ] || exit 1
  chmod 644 $work/shop.key; msg=$($servalctl id show $work/shop.key 2>&1); r=$?
  echo "$msg"; [ $r = 1 ] && echo "$msg" | grep -q "must be 0600"'

# docs/servald.md: a router on three subnets with a registration key, a replica registering with it (what an attached
# application binds), servalctl router registrations on the router, and a client reaching the replica by name.
check "servald.md: router with a key, a replica registering, router registrations" '
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > $work/key)
  Serval__Router__KeyFile=$work/key $servald --Serval:Mode=ServiceRouter --Serval:ControlSocket=$work/r.sock \
    --Serval:Udp:0:Address=127.0.1.1 --Serval:Udp:1:Address=127.0.11.1 --Serval:Udp:2:Address=127.0.12.1 > $work/r.log 2>&1 & r=$!
  socket_up $work/r.sock || exit 1
  Serval__Registration__KeyFile=$work/key $servald --Serval:Udp:0:Address=127.0.11.2 --Serval:ControlSocket=$work/h.sock \
    --Serval:Registration:Routers:0=127.0.11.1 > $work/h.log 2>&1 & h=$!
  socket_up $work/h.sock || exit 1
  $cat --attach $work/h.sock listen shop.keyed <<< "keyed replica" > /dev/null & l=$!
  registered $work/r.sock "127.0.11.2"
  $servalctl --socket $work/r.sock router registrations
  $servalctl --socket $work/r.sock router registrations | grep -q "127.0.11.2" || exit 1
  got=$($cat --udp 127.0.12.5 --router 127.0.12.1 -w 5 connect shop.keyed < /dev/null)
  wait $l; kill $h $r; wait $h $r 2>/dev/null
  [ "$got" = "keyed replica" ]'

# docs/servald.md and docs/resolution.md: names resolved from a static file (the client has no route of its own).
check "servald.md: Resolver:StaticFile" '
  printf "%s\n" "# SERVICE TARGET" "shop.static 127.0.0.22" > $work/services
  $cat --udp 127.0.0.22 listen shop.static <<< "from the static file" > /dev/null & l=$!
  $servald --Serval:Udp:0:Address=127.0.0.23 --Serval:ControlSocket=$work/s.sock --Serval:Resolver:StaticFile=$work/services > $work/s.log 2>&1 & s=$!
  socket_up $work/s.sock || exit 1
  sleep 1
  got=$($cat --attach $work/s.sock -w 5 connect shop.static < /dev/null)
  wait $l; kill $s; wait $s 2>/dev/null
  [ "$got" = "from the static file" ]'

# Starts the published servald under a parent named "systemd" with NOTIFY_SOCKET set, waits (bounded) for its
# notification, ends it by its process id. Exit 0 when it said READY=1 with its control socket bound.
cat > "$work/notify.py" <<'PY'
import os, socket, subprocess, sys, time
work, opt = sys.argv[1], sys.argv[2]
path = os.path.join(work, "notify")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
env = dict(os.environ, NOTIFY_SOCKET=path, Serval__ControlSocket=os.path.join(work, "sd.sock"))
pidfile = os.path.join(work, "servald.pid")
script = '"$@" & echo $! > "$0"; wait $!'
sh = subprocess.Popen([os.path.join(work, "systemd"), "-c", script, pidfile, "dotnet", "servald.dll",
                       "--Serval:Udp:0:Address=127.0.0.31"], cwd=opt, env=env, stdout=subprocess.DEVNULL)
ready = False
try:
    got = s.recv(4096).decode()
    print(got.strip())
    ready = "READY=1" in got and os.path.exists(env["Serval__ControlSocket"])
finally:
    for _ in range(100):
        if os.path.exists(pidfile) and open(pidfile).read().strip():
            break
        time.sleep(0.1)
    os.kill(int(open(pidfile).read()), 15)
    sh.wait(20)
sys.exit(0 if ready else 1)
PY

# docs/servald.md "Running under systemd": the published daemon, its unit checked by systemd-analyze (paths pointed at
# the published copy), and the readiness notification it sends on a notify socket, as systemd would see it.
check "servald.md: publish, servald.service, READY=1 on NOTIFY_SOCKET" '
  dotnet publish src/servald -c Release -o $work/opt -v q -nologo > /dev/null || exit 1
  [ -f $work/opt/servald.service ] && [ -f $work/opt/appsettings.json ] || { echo "unit or appsettings.json not published"; exit 1; }
  if command -v systemd-analyze > /dev/null; then
    sed "s#/opt/servald#$work/opt#g; s#/usr/bin/dotnet#$(command -v dotnet)#" $work/opt/servald.service > $work/servald.service
    systemd-analyze verify $work/servald.service 2>&1 | grep -v "^$" | tee $work/verify
    ! grep -qi "error\|invalid\|unknown" $work/verify || exit 1
  fi
  # The hosting library recognises systemd by the name of the parent process: a copy of sh named "systemd" starts it.
  cp /bin/sh $work/systemd
  python3 $work/notify.py $work $work/opt'

# docs/router-fleet.md: a 3-member etcd cluster on 127.0.9.1-3, two routers of one fleet, a replica registering with
# one router of its list; the other router sees the registration (accepted by r1) and forwards a client to it.
if command -v etcd > /dev/null; then
check "router-fleet.md: etcd cluster, two routers, RouterSelection=One" '
  cluster=m1=http://127.0.9.1:2380,m2=http://127.0.9.2:2380,m3=http://127.0.9.3:2380; pids=""
  for i in 1 2 3; do
    etcd --name m$i --data-dir $work/etcd$i --listen-client-urls http://127.0.9.$i:2379 --advertise-client-urls http://127.0.9.$i:2379 \
      --listen-peer-urls http://127.0.9.$i:2380 --initial-advertise-peer-urls http://127.0.9.$i:2380 --initial-cluster $cluster \
      --initial-cluster-state new --log-level error --logger zap > $work/etcd$i.log 2>&1 & pids="$pids $!"
  done
  fleet="--Serval:Router:Fleet:Endpoints:0=http://127.0.9.1:2379 --Serval:Router:Fleet:Endpoints:1=http://127.0.9.2:2379 --Serval:Router:Fleet:Endpoints:2=http://127.0.9.3:2379"
  $servald --Serval:Name=r1 --Serval:Mode=ServiceRouter --Serval:Udp:0:Address=127.0.1.1 --Serval:ControlSocket=$work/r1.sock $fleet > $work/r1.log 2>&1 & pids="$pids $!"
  $servald --Serval:Name=r2 --Serval:Mode=ServiceRouter --Serval:Udp:0:Address=127.0.2.1 --Serval:ControlSocket=$work/r2.sock $fleet > $work/r2.log 2>&1 & pids="$pids $!"
  socket_up $work/r1.sock && socket_up $work/r2.sock || exit 1
  $servald --Serval:Udp:0:Address=127.0.5.7 --Serval:ControlSocket=$work/h7.sock --Serval:Registration:Routers:0=127.0.1.1 \
    --Serval:Registration:Routers:1=127.0.2.1 --Serval:Registration:RouterSelection=One > $work/h7.log 2>&1 & pids="$pids $!"
  socket_up $work/h7.sock || exit 1
  $cat --attach $work/h7.sock listen shop.fleet <<< "from the fleet" > /dev/null & l=$!
  registered $work/r2.sock "r1"
  $servalctl --socket $work/r2.sock router status; $servalctl --socket $work/r2.sock router registrations
  $servalctl --socket $work/r2.sock router registrations | grep "127.0.5.7" | grep -q "r1" || exit 1
  got=$($cat --udp 127.0.5.8 --router 127.0.2.1 -w 5 connect shop.fleet < /dev/null)
  wait $l; kill $pids; wait $pids 2>/dev/null
  [ "$got" = "from the fleet" ]'
else
  echo "skip  router-fleet.md: etcd is not installed (apt-get install etcd-server etcd-client)"
fi

# docs/servald.md "Link policies": a host that follows the addresses of its interface eth0 (a namespace with a veth
# named eth0, root only) registers through that link with a router outside; a client reaches it by name.
if [ "$(id -u)" = 0 ] && command -v ip > /dev/null; then
check "servald.md: LinkPolicies on eth0 (namespace), registering with a router" '
  trap "kill \$(jobs -p) 2>/dev/null; ip netns del svdoc 2>/dev/null; ip link del svdoc0 2>/dev/null" EXIT
  ip netns del svdoc 2>/dev/null; ip link del svdoc0 2>/dev/null
  ip netns add svdoc && ip link add svdoc0 type veth peer name eth0 netns svdoc || exit 1
  ip addr add 10.78.0.1/24 dev svdoc0 && ip addr add 10.78.0.3/24 dev svdoc0 && ip link set svdoc0 up || exit 1
  ip -n svdoc addr add 10.78.0.2/24 dev eth0 && ip -n svdoc link set eth0 up && ip -n svdoc link set lo up || exit 1
  $servald --Serval:Mode=ServiceRouter --Serval:Udp:0:Address=10.78.0.1 --Serval:ControlSocket=$work/pr.sock > $work/pr.log 2>&1 &
  socket_up $work/pr.sock || exit 1
  ip netns exec svdoc $servald --Serval:LinkPolicies:0:IPv6=false --Serval:LinkPolicies:0:Interfaces:0=eth0 \
    --Serval:RegisterWithRouter=10.78.0.1 --Serval:ControlSocket=$work/ph.sock > $work/ph.log 2>&1 &
  socket_up $work/ph.sock || exit 1
  ip netns exec svdoc $cat --attach $work/ph.sock listen shop.policy <<< "from eth0" > /dev/null & l=$!
  registered $work/pr.sock "10.78.0.2"
  $servalctl --socket $work/pr.sock router registrations
  got=$($cat --udp 10.78.0.3 --router 10.78.0.1 -w 5 connect shop.policy < /dev/null)
  wait $l
  [ "$got" = "from eth0" ]'
else
  echo "skip  servald.md: LinkPolicies on eth0 (needs root for a network namespace)"
fi

# docs/wireshark.md and docs/servalctl.md: the dissector and servalctl decode on a capture file.
check "wireshark.md: tshark with the dissector; servalctl.md: decode a capture" '
  pcap=tests/Serval.Wire.Tests/TestData/tcp_basic.pcap
  if command -v tshark > /dev/null; then
    tshark -X lua_script:tools/wireshark/serval.lua -r $pcap | head -3
    tshark -X lua_script:tools/wireshark/serval.lua -r $pcap -V -Y serval | grep -q "Service Access Layer\|serval" || exit 1
    printf "%s %s\n" "$(printf %s demo.echo | sha256sum | cut -d" " -f1)" demo.echo > $work/services.txt
    tshark -X lua_script:tools/wireshark/serval.lua -o serval.names_file:$work/services.txt -r $pcap > /dev/null || exit 1
  else echo "tshark not installed: dissector part skipped"; fi
  $servalctl decode $pcap --hex | grep -q "0000" || exit 1
  n=$($servalctl decode $pcap --json --flow 0x2 | jq -c "{frame, control, tcp}" | grep -c "\"frame\"")
  echo "frames of flow 0x2: $n"; [ "$n" -gt 0 ]'

# docs/packaging.md: the packages into a feed of their own, a tool installed into a fresh tool path, and a console
# app of another solution that takes the Serval package from that feed, connects to a service and gets its answer.
version=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
export version
CHECK_TIMEOUT=900 check "packaging.md: pack, dotnet tool install, an app using the package" '
  step() { "$@" > $work/step.log 2>&1 || { tail -20 $work/step.log; echo "failed: $*"; exit 1; }; }
  step dotnet build Serval.sln -c Release -v q -nologo
  step dotnet pack Serval.sln -c Release --no-build -v q -nologo -p:PackageOutputPath=$work/feed
  step dotnet tool install --tool-path $work/tools --add-source $work/feed servalctl --version $version
  [ "$($work/tools/servalctl id shop.api)" = "$($servalctl id shop.api)" ] || { echo "installed servalctl differs"; exit 1; }
  cd $work && step dotnet new console -o myapp && cd myapp || exit 1
  step dotnet add package Serval --version $version --source ../feed
  cat > Program.cs <<"CS"
using System.Net;
using System.Text;
using Serval;
using Serval.Links;

await using var host = await ServalHost.StartAsync(new ServalHostOptions
{
    Name = "myapp",
    Links = [new UdpLink(IPAddress.Parse("127.0.0.41"))],
});
var hello = ServiceId.FromName("myapp.hello");
await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(hello) });
var server = Task.Run(async () =>
{
    await using var connection = await listener.AcceptConnectionAsync();
    var stream = connection.GetStream();
    await stream.WriteAsync(Encoding.UTF8.GetBytes("hello from the package"));
    stream.CompleteWrites();
    await stream.CopyToAsync(Stream.Null);             // until the end of stream from the client
});
await using var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = host, Service = hello });
var s = client.GetStream();
s.CompleteWrites();
var text = await new StreamReader(s, Encoding.UTF8).ReadToEndAsync();
await server;
Console.WriteLine(text);
CS
  out=$(dotnet run -c Release 2>&1); echo "$out"
  [ "$out" = "hello from the package" ]'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
