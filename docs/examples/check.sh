#!/usr/bin/env bash
# Runs the shell examples of README.md and docs/serval-cat.md on this machine (127.0.0.x, no privileges) with the
# programs built in Release, and says which passed. Usage: docs/examples/check.sh (from anywhere; builds what it needs).
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
check() { # NAME COMMAND...: runs COMMAND (bounded by timeout), reports
  local name=$1; shift
  # The check's background processes (its jobs) are ended by their ids when it ends, however it ends.
  if timeout 60 bash -c "trap 'kill \$(jobs -p) 2>/dev/null' EXIT; $*" >"$work/out" 2>&1; then
    echo "ok    $name"; passed=$((passed + 1))
  else
    echo "FAIL  $name"; sed 's/^/      /' "$work/out"; failed=$((failed + 1))
  fi
}
# Waits (bounded) until a control socket exists.
socket_up() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
export -f socket_up
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

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
