#!/usr/bin/env bash
# The OpenMP wait policy and `bench --contend`:
#   - with neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set, a compute command re-executes itself
#     once so that libgomp (which reads them when it loads) starts with GOMP_SPINCOUNT=1000: the
#     running process's initial environment (/proc/PID/environ, same PID) carries it, and its
#     name (/proc/PID/comm) is still the binary's, not "exe";
#   - a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins: no re-exec, nothing added;
#   - `bench --contend N` reports the policy, runs 1 thread and all cores (or --threads T) for
#     --rounds R with medians and their ratio, leaves no competitor behind (also when the
#     benchmark fails), passes the benchmark's exit code on, refuses bad values with exit 2.
set -euo pipefail
M=${MIXTAPE:?MIXTAPE must point to the mixtape binary}
[ -r /proc/self/environ ] || { echo "needs /proc"; exit 77; }
T=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
fails=0
run() { set +e; "$@"; rc=$?; set -e; }
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
TINY=(--model mixer_tiny --img-size 8 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 16 --depth 1 -b 4)

# The environment a long-running bench started with, once it has re-executed (or after 3 s).
environ_of() {
  env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" "$M" bench "${TINY[@]}" --steps 1000000 --mode forward --threads 2 \
    > /dev/null 2>&1 &
  local pid=$! i
  PIDS+=("$pid")
  for i in $(seq 30); do
    tr '\0' '\n' < "/proc/$pid/environ" > "$T/env" 2>/dev/null || true
    grep -q '^MIXTAPE_WAIT_POLICY_APPLIED=' "$T/env" && break
    sleep 0.1
  done
  sleep 1 # past main()'s first lines (the name is set there) and into the benchmark
  cat "/proc/$pid/comm" > "$T/comm" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
environ_of
check "re-exec with GOMP_SPINCOUNT=1000 when the user set nothing" \
  'grep -qx "GOMP_SPINCOUNT=1000" "$T/env" && grep -q "^MIXTAPE_WAIT_POLICY_APPLIED=1" "$T/env"'
check "the re-executed process keeps its name for ps / pkill ($(cat "$T/comm"))" '[ "$(cat "$T/comm")" = "$(basename "$M" | cut -c1-15)" ]'
environ_of OMP_WAIT_POLICY=passive
check "OMP_WAIT_POLICY=passive wins: no re-exec, no GOMP_SPINCOUNT" \
  'grep -qx "OMP_WAIT_POLICY=passive" "$T/env" && ! grep -q "^GOMP_SPINCOUNT=\|^MIXTAPE_WAIT" "$T/env"'
environ_of GOMP_SPINCOUNT=77
check "GOMP_SPINCOUNT=77 wins" 'grep -qx "GOMP_SPINCOUNT=77" "$T/env" && ! grep -q "^MIXTAPE_WAIT" "$T/env"'

TAG=--bucket-mb=3.0517578125 # marks this test's processes (competitors are forks of the orchestrator)
left() { grep -l -a -e "bucket-mb=3.05175781[2]5" /proc/[0-9]*/cmdline 2>/dev/null | wc -l; } # (not itself)
B=("$M" bench "${TINY[@]}" --steps 2 --warmup 1 --mode train "$TAG")

run env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "${B[@]}" --contend 1 --rounds 3 > "$T/s.out" 2>&1
cores=$(grep -c ^processor /proc/cpuinfo)
check "summary exits 0" '[ $rc = 0 ]'
check "header: competitors, cores, load, the mixtape default policy" \
  'grep -q "^contend: 1 busy process(es), [0-9]* core(s) available, load average before [0-9.]* [0-9.]* [0-9.]*; OpenMP wait: GOMP_SPINCOUNT=1000 (mixtape default)" "$T/s.out"'
check "3 rounds per thread count" '[ "$(grep -c "^round [123]  threads 1: train [0-9.]* img/s" "$T/s.out")" = 3 ]'
check "median line for 1 thread" 'grep -q "^threads 1: train: [0-9.]* img/s  (medians of 3 round(s), 1 busy process(es))" "$T/s.out"'
med() { grep "^round .*  threads $1: train" "$T/s.out" | awk '{print $6}' | sort -g | sed -n 2p; }
check "the median is the middle round" \
  '[ "$(printf "%.1f" "$(med 1)")" = "$(sed -n "s/^threads 1: train: \([0-9.]*\) .*/\1/p" "$T/s.out")" ]'
if [ "$cores" -ge 2 ]; then
  check "ratio line = median(all cores) / median(1 thread)" \
    'awk -v a="$(med "$cores")" -v b="$(med 1)" -v r="$(sed -n "s/^threads $cores \/ threads 1: train \([0-9.]*\)x.*/\1/p" "$T/s.out")" \
       "BEGIN { exit !(r != \"\" && (a / b - r) ^ 2 < 1e-4) }"'
fi
sleep 0.2
check "no competitor left" '[ "$(left)" = 0 ]'

run "${B[@]}" --contend 2 --rounds 1 --threads 1 > "$T/t.out" 2>&1
check "--threads 1: only that count, exit 0" \
  '[ $rc = 0 ] && grep -q "^threads 1: train: " "$T/t.out" && ! grep -q "^threads 2" "$T/t.out" && grep -q "^contend: 2 busy" "$T/t.out"'
run env OMP_WAIT_POLICY=active "${B[@]}" --contend 0 --rounds 1 --threads 1 > "$T/u.out" 2>&1
check "a user's OMP_WAIT_POLICY is reported as theirs" 'grep -q "OpenMP wait: OMP_WAIT_POLICY=active (environment)" "$T/u.out"'

run "${B[@]}" --contend 1 --rounds 1 --threads 1 --drop 7 > "$T/f.out" 2>&1
check "a failing benchmark's exit code (2) is passed on" '[ $rc = 2 ] && grep -q -- "--drop" "$T/f.out"'
sleep 0.2
check "no competitor left after a failure" '[ "$(left)" = 0 ]'
for bad in "--contend x" "--contend -1" "--contend 1 --rounds 0" "--contend 1 --sgemm"; do
  run "$M" bench "${TINY[@]}" $bad > "$T/bad.out" 2>&1
  check "bench $bad: exit 2 with a message" '[ $rc = 2 ] && [ -s "$T/bad.out" ]'
done

[ $fails = 0 ] || { echo "$fails failure(s)"; for f in "$T"/*.out; do echo "== $f"; cat "$f"; done; exit 1; }
echo "all ok"
