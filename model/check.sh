#!/usr/bin/env bash
# Model-checks the RSYN migration protocol (model/migration.pml) with SPIN -- docs/migration-model.md.
#
#   model/check.sh            the CI set: the fixed protocol must pass every safety (assertions, invalid end
#                             states) and liveness (acceptance cycles under the fairness premise) check, and
#                             every negative control (one fix removed) must fail -- so the checks are not vacuous
#   model/check.sh --full     bigger bounds (tens of minutes, several GB)
#   model/check.sh --engine   the engine's logic as of commit 0daf590: expected to fail, prints counterexamples
#
# Exit status 0 only if every check gave the expected result. Counterexamples (trails replayed as readable
# traces) are written to model/out/, which git ignores; all generated files (pan, pan.c, ...) live in a
# temporary directory.
set -uo pipefail
cd "$(dirname "$0")"
here=$(pwd)
mode=${1:-ci}

die() { echo "model: $*" >&2; echo "model: FAILED"; exit 1; }

if ! command -v spin >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "model: installing spin (Debian package 'spin')"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin) >/dev/null 2>&1
    fi
    command -v spin >/dev/null 2>&1 \
        || die "spin is not installed and could not be installed; install the Debian package 'spin' (apt-get install spin) or put spin on PATH"
fi
command -v gcc >/dev/null 2>&1 || die "gcc is needed to compile the SPIN verifier"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p out
rm -f out/*.txt out/*.trail

# check NAME KIND EXPECT DEFINES...
#   KIND   safety (assertions + invalid end states) | liveness (acceptance cycles, never claim 'settle')
#   EXPECT pass | fail
checks=()
check() { checks+=("$*"); }

base="-DFORGE=0"
case "$mode" in
ci | "")
    # the fixed protocol
    check two-each      safety   pass -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 $base
    check two-each      liveness pass -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 $base
    check two-one-lossy safety   pass -DMIGA=2 -DMIGB=1 -DLOSS=2 -DDUPS=1 $base
    check two-one-lossy liveness pass -DMIGA=2 -DMIGB=1 -DLOSS=2 -DDUPS=1 $base
    check one-each-forged safety   pass -DMIGA=1 -DMIGB=1 -DLOSS=2 -DDUPS=1 -DFORGE=1
    check one-each-forged liveness pass -DMIGA=1 -DMIGB=1 -DLOSS=2 -DDUPS=1 -DFORGE=1
    # negative controls: each fix is needed (and the checker finds violations)
    check without-fix-A liveness fail -DNO_FIX_A -DMIGA=1 -DMIGB=0 -DLOSS=1 -DDUPS=0 $base
    check without-fix-B liveness fail -DNO_FIX_B -DMIGA=2 -DMIGB=1 -DLOSS=2 -DDUPS=1 $base
    check without-fix-C safety   fail -DNO_FIX_C -DMIGA=1 -DMIGB=1 -DLOSS=1 -DDUPS=0 $base
    check without-fix-D liveness fail -DNO_FIX_D -DMIGA=2 -DMIGB=1 -DLOSS=1 -DDUPS=1 $base
    check without-fix-E liveness fail -DNO_FIX_E -DMIGA=1 -DMIGB=1 -DLOSS=0 -DDUPS=0 -DRELEASE=0 $base
    # both ends move: a service router relays A's RSYN to B's registration (-DROUTER), and both ends may lose their
    # old addresses while their migrations overlap (-DBOTH_BREAK drops assumption E2)
    check both-move     safety   pass -DROUTER -DBOTH_BREAK -DMIGA=1 -DMIGB=2 -DLOSS=1 -DDUPS=1 $base
    check both-move     liveness pass -DROUTER -DBOTH_BREAK -DMIGA=1 -DMIGB=2 -DLOSS=1 -DDUPS=1 $base
    check without-relay liveness fail -DROUTER -DNO_RELAY -DBOTH_BREAK -DMIGA=1 -DMIGB=1 -DLOSS=0 -DDUPS=0 $base
    check without-fix-F liveness fail -DROUTER -DNO_FIX_F -DBOTH_BREAK -DMIGA=1 -DMIGB=2 -DLOSS=0 -DDUPS=0 $base
    ;;
--full)
    check two-each-lossier safety   pass -DMIGA=2 -DMIGB=2 -DLOSS=2 -DDUPS=1 $base
    check two-each-lossier liveness pass -DMIGA=2 -DMIGB=2 -DLOSS=2 -DDUPS=1 $base
    check two-each-cap4    safety   pass -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 -DCAP=4 $base
    check two-each-forged  safety   pass -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 -DFORGE=1
    check two-each-forged  liveness pass -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 -DFORGE=1
    check three-one        safety   pass -DMIGA=3 -DMIGB=1 -DLOSS=1 -DDUPS=1 $base
    check three-one        liveness pass -DMIGA=3 -DMIGB=1 -DLOSS=1 -DDUPS=1 $base
    check one-each-cap4    safety   pass -DMIGA=1 -DMIGB=1 -DLOSS=3 -DDUPS=2 -DCAP=4 -DFORGE=1
    check one-each-cap4    liveness pass -DMIGA=1 -DMIGB=1 -DLOSS=3 -DDUPS=2 -DCAP=4 -DFORGE=1
    # the paper's limit: both ends losing their old addresses during overlapping migrations (no router)
    check both-break       liveness fail -DBOTH_BREAK -DMIGA=1 -DMIGB=1 -DLOSS=0 -DDUPS=0 $base
    # ... which the relay through the service router overcomes
    check both-move-2-1    safety   pass -DROUTER -DBOTH_BREAK -DMIGA=2 -DMIGB=1 -DLOSS=1 -DDUPS=1 $base
    check both-move-2-1    liveness pass -DROUTER -DBOTH_BREAK -DMIGA=2 -DMIGB=1 -DLOSS=1 -DDUPS=1 $base
    check both-move-lossy  safety   pass -DROUTER -DBOTH_BREAK -DMIGA=1 -DMIGB=2 -DLOSS=2 -DDUPS=1 $base
    check both-move-lossy  liveness pass -DROUTER -DBOTH_BREAK -DMIGA=1 -DMIGB=2 -DLOSS=2 -DDUPS=1 $base
    check both-move-2-2    safety   pass -DROUTER -DBOTH_BREAK -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=0 $base
    check router-two-each  safety   pass -DROUTER -DMIGA=2 -DMIGB=2 -DLOSS=1 -DDUPS=1 $base
    ;;
--engine)
    # the engine as of commit 0daf590; the traces are discussed in docs/migration-model.md
    check engine-1-0-loss1     liveness fail -DENGINE -DMIGA=1 -DMIGB=0 -DLOSS=1 -DDUPS=0 -DRELEASE=0 $base
    check engine-1-1-reorder   safety   fail -DENGINE -DMIGA=1 -DMIGB=1 -DLOSS=0 -DDUPS=0 -DRELEASE=0 $base
    check engine-1-1-loss1     safety   fail -DENGINE -DMIGA=1 -DMIGB=1 -DLOSS=1 -DDUPS=0 -DRELEASE=0 $base
    check engine-2-0-dup-loss  safety   fail -DENGINE -DMIGA=2 -DMIGB=0 -DLOSS=1 -DDUPS=1 -DRELEASE=0 $base
    check engine-2-1-lossy     liveness fail -DENGINE -DMIGA=2 -DMIGB=1 -DLOSS=2 -DDUPS=1 $base
    ;;
*)
    echo "usage: model/check.sh [--full|--engine]" >&2
    exit 2
    ;;
esac

# Runs one check in its own directory; writes a one-line result to $dir/result.
run_one() {
    local idx=$1 name=$2 kind=$3 expect=$4
    shift 4
    local dir="$work/$idx-$name-$kind" cflags="-w -DMEMLIM=6000" pflags="-m2000000 -n"
    mkdir -p "$dir" && cp migration.pml "$dir/"
    cd "$dir" || return
    local t0=$SECONDS
    if ! spin -a "$@" migration.pml >spin.out 2>&1 || [ ! -f pan.c ]; then
        echo "ERROR $name $kind: spin -a failed: $(head -3 spin.out | tr '\n' ' ')" >result
        return
    fi
    if [ "$kind" = safety ]; then cflags="$cflags -DNOCLAIM"; else pflags="$pflags -a"; fi
    # big state spaces: compressed state vectors and full optimisation; tiny ones (negative controls): no
    # optimisation, since compiling pan.c then costs more than the search
    case " $* " in
    *" -DMIGA=2 -DMIGB=2 "* | *" -DMIGA=3 "* | *" -DCAP=4 "*) cflags="$cflags -O2 -DCOLLAPSE" ;;
    *) if [ "$expect" = fail ]; then cflags="$cflags -O0"; else cflags="$cflags -O1"; fi ;;
    esac
    # shellcheck disable=SC2086
    if ! gcc $cflags -o pan pan.c >gcc.out 2>&1; then
        echo "ERROR $name $kind: gcc failed: $(head -3 gcc.out | tr '\n' ' ')" >result
        return
    fi
    # shellcheck disable=SC2086
    ./pan $pflags >pan.out 2>&1
    local secs=$((SECONDS - t0))
    local errors states trans what
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | tail -1)
    states=$(awk '/states, stored/ {print $1; exit}' pan.out)
    trans=$(awk '/transitions \(= / {print $1; exit}' pan.out)
    what=$(grep -m1 -E '^pan:[0-9]+: ' pan.out | sed 's/^pan:[0-9]*: //; s/ (at depth.*//; s/assertion violated.*/assertion violated/')
    local stats="states=${states:-?} transitions=${trans:-?} ${secs}s"
    if grep -q -E 'max search depth too small|out of memory|VECTORSZ' pan.out; then
        echo "ERROR $name $kind: search incomplete ($(grep -m1 -E 'too small|out of memory|VECTORSZ' pan.out)) $stats" >result
        return
    fi
    if [ -z "$errors" ]; then
        echo "ERROR $name $kind: no verifier result: $(tail -3 pan.out | tr '\n' ' ')" >result
        return
    fi
    local got=pass
    [ "$errors" != 0 ] && got=fail
    if [ "$got" = fail ] && [ -f migration.pml.trail ]; then
        cp migration.pml.trail "$here/out/$name-$kind.trail"
        {
            echo "# $name ($kind): $what"
            echo "# defines: $*"
            spin -T -t "$@" migration.pml 2>&1 | grep -v -E '^\s*$|^spin: trail|^#processes|processes created|proc .*\(|Never claim|^ltl|^\s*[a-z]+(\[[0-9]+\])? = '
        } >"$here/out/$name-$kind.txt"
    fi
    if [ "$got" = "$expect" ]; then
        if [ "$got" = pass ]; then
            echo "ok    $name $kind: no errors; $stats" >result
        else
            echo "ok    $name $kind: violation found as expected ($what); $stats; trace: model/out/$name-$kind.txt" >result
        fi
    else
        if [ "$got" = fail ]; then
            echo "FAIL  $name $kind: $what; $stats; trace: model/out/$name-$kind.txt" >result
        else
            echo "FAIL  $name $kind: expected a violation, found none; $stats" >result
        fi
    fi
}

jobs_max=$(nproc 2>/dev/null || echo 2)
[ "$jobs_max" -gt 4 ] && jobs_max=4
echo "model: spin $(spin -V | sed -n 's/Spin Version \([^ ]*\).*/\1/p'), ${#checks[@]} checks, $jobs_max at a time ($mode)"
start=$SECONDS
i=0
for c in "${checks[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    (run_one $i $c) &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n 2>/dev/null || sleep 0.2
    done
done
wait

status=0
i=0
for c in "${checks[@]}"; do
    i=$((i + 1))
    set -- $c
    r=$(cat "$work/$i-$1-$2/result" 2>/dev/null || echo "ERROR $1 $2: no result")
    echo "  $r"
    case "$r" in ok*) ;; *) status=1 ;; esac
done
if [ "$mode" = --engine ]; then
    echo "model: counterexamples of the engine's logic in model/out/ (see docs/migration-model.md)"
fi
if [ $status = 0 ]; then
    echo "model: all ${#checks[@]} checks as expected in $((SECONDS - start))s"
else
    ls out/*.txt >/dev/null 2>&1 && echo "model: traces in model/out/"
    echo "model: FAILED"
fi
exit $status
