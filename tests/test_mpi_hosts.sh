#!/usr/bin/env bash
# Data parallel across hosts (docs/distributed.md), on one machine: each host is a network
# namespace with its own address, host name and mounts (scripts/netns_hosts.sh), the ranks
# are started in them by Open MPI's rsh launcher through an agent, and talk over TCP only
# (--mca btl tcp,self). Checks:
#  1. the ranks run on 2 hosts and reach each other over TCP (`bench --comm`);
#  2. 2 hosts x batch 4 == 1 process x batch 8 (loss per step and weights to 1e-5);
#  3. a host that sees a different binary, or a different list of training shards, is
#     refused at start with a message naming it; a host may hold only its own training shards;
#  4. rank 1's process killed mid-run: every rank stops within a bound, the last checkpoint
#     is intact, and resuming on 2 hosts ends bit-identical to an uninterrupted run;
#  5. host 2's link cut mid-run: the other rank stops within the watchdog's bound with a
#     message naming it, and the last checkpoint is intact.
# Skipped (exit 77, with the reason) without MPI, without root, or where network
# namespaces cannot be made.
source "$(dirname "$0")/mpi_common.sh"
mpi_require
NS="$SRC/scripts/netns_hosts.sh"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip > /dev/null && command -v unshare > /dev/null || skip "needs iproute2 and unshare"
tmpdir mpi_hosts
D="$T/net"
cleanup() { bash "$NS" down "$D" > /dev/null 2>&1; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
if ! bash "$NS" up "$D" 2 > "$T/ns.log" 2>&1; then
  skip "cannot create network namespaces here: $(tail -1 "$T/ns.log")"
fi
if ! bash "$NS" run "$D" h1 true > "$T/ns.log" 2>&1; then   # entering one needs unshare (UTS, mount)
  skip "cannot enter a namespace host here (unshare --uts --mount): $(tail -1 "$T/ns.log")"
fi
# TCP only, on the namespaces' addresses; ranks yield while they wait, so the kernel's
# packet processing (softirq) on the same 2 cores is not starved by spinning ranks; the
# launcher's own connections probe a silent host after 3 s (TCP keepalive), so a lost host
# ends the job instead of leaving mpirun waiting for its daemon.
MPI0=(bash "$NS" run "$D" h0 mpirun --hostfile "$D/hosts" --mca plm_rsh_agent "$D/agent.sh"
      --mca btl tcp,self --mca oob_tcp_if_include 198.18.0.0/24 --mca btl_tcp_if_include 198.18.0.0/24
      --mca mpi_yield_when_idle 1 --bind-to none -x OMP_NUM_THREADS=1 -x MIXTAPE_DIST_TIMEOUT -np 2)
MPI=("${MPI0[@]}" --mca oob_tcp_keepalive_time 3 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3)
export MIXTAPE_DIST_TIMEOUT=60
TO="timeout -k 5 120"
quiet() { grep -v 'setpgid' "$@"; }   # Open MPI's harmless note about the agent's process group

# 1. two hosts, TCP
$TO "${MPI[@]}" "$M" bench --comm --bytes 1048576 --repeat 3 > "$T/comm.log" 2>&1
rc=$?
quiet "$T/comm.log" | sed 's/^/   /'
check "bench --comm: 2 ranks on 2 hosts (rc $rc)" "[ $rc = 0 ] && grep -q '2 ranks on 2 host(s); rank 1 on h2' $T/comm.log"

# 1b. the gradient all-reduce across hosts, in buckets of --bucket-mb started during backward
$TO "${MPI[@]}" "$M" bench --model mixer_tiny --img-size 16 --in-chans 1 --patch-size 4 --embed-dim 64 --depth 2 \
  -b 8 --steps 3 --warmup 1 --threads 1 --mode train --bucket-mb 0.02 > "$T/bench.log" 2>&1
rc=$?
quiet "$T/bench.log" | grep -E '^(train|allreduce):' | sed 's/^/   /'
check "bench across 2 hosts with --bucket-mb 0.02: several buckets, some started during backward (rc $rc)" \
  "[ $rc = 0 ] && awk '/^allreduce:/{for(i=1;i<=NF;i++) if(\$i ~ /^bucket/){n=\$(i-1)}; if(match(\$0,/MB of gradients, [0-9.]+ bucket/)){e=substr(\$0,RSTART+17,RLENGTH-24)+0}} END{exit !(n+0 >= 3 && e > 0)}' $T/bench.log"

mpi_same_run_setup

# 2. 2 hosts x 4 == 1 x 8
$TO "$M" train "${MODEL[@]}" "${NOAUG[@]}" "${COMMON[@]}" -b 8 --epochs 2 --max-steps 12 --output "$T/one" \
  > "$T/one.log" 2>&1
rc1=$?
$TO "${MPI[@]}" "$M" train "${MODEL[@]}" "${NOAUG[@]}" "${COMMON[@]}" -b 4 --epochs 2 --max-steps 12 \
  --output "$T/two" > "$T/two.log" 2>&1
rc2=$?
check "1 process and 2 hosts x 1 rank succeed (rc $rc1, $rc2)" "[ $rc1 = 0 ] && [ $rc2 = 0 ]"
check "2 hosts x 4 == 1 x 8: loss per step and /model after 12 steps agree to 1e-5" "$PY - <<EOF
import json, h5py, numpy as np
def rows(p):
    return [(r['step'], r['loss']) for r in map(json.loads, open(p)) if 'epoch_time' not in r and 'val_loss' not in r]
a, b = rows('$T/one/metrics.jsonl'), rows('$T/two/metrics.jsonl')
assert len(a) == len(b) == 12, (len(a), len(b))
for (sa, la), (sb, lb) in zip(a, b):
    assert sa == sb and abs(la - lb) <= 1e-5 * abs(la), (sa, la, lb)
fa, fb = h5py.File('$T/one/last.h5', 'r'), h5py.File('$T/two/last.h5', 'r')
for k in fa['model']:
    x, y = fa['model'][k][...].astype(np.float64), fb['model'][k][...].astype(np.float64)
    assert np.linalg.norm(x - y) / (np.linalg.norm(x) + 1e-2) <= 1e-5, k
EOF"

# 3a. host h2 sees another binary at the same path (a copy with one byte appended)
cp "$M" "$T/other-mixtape"; printf 'x' >> "$T/other-mixtape"
echo "$T/other-mixtape $M" > "$D/mounts.h2"
$TO "${MPI[@]}" "$M" train "${MODEL[@]}" "${NOAUG[@]}" "${COMMON[@]}" -b 4 --epochs 1 --output "$T/bin" \
  > "$T/bin.log" 2>&1
rc=$?
rm -f "$D/mounts.h2"
check "a different binary on h2 is refused at start (rc $rc)" \
  "[ $rc != 0 ] && [ $rc != 124 ] && grep -q 'rank 1 (host h2) runs with a different binary' $T/bin.log && [ ! -f $T/bin/last.h5 ]"

# 3b. host h2 sees a different shard list file at the same path
mkdir -p "$T/shards" "$T/other"
"$PY" - "$T" <<'EOF'
import sys, io, tarfile
d = sys.argv[1]
for s in range(4):
    with tarfile.open(f"{d}/shards/s-{s:06d}.tar", "w") as t:
        for i in range(4):
            for ext, data in (("png", b"\x89PNG not read"), ("cls", b"1")):
                ti = tarfile.TarInfo(f"k{s}_{i}.{ext}"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
open(f"{d}/shards/list.txt", "w").write("".join(f"s-{s:06d}.tar\n" for s in range(4)))
open(f"{d}/other/list.txt", "w").write("".join(f"s-{s:06d}.tar\n" for s in (0, 1, 3, 2)))
open(f"{d}/shards/classes.txt", "w").write("a\nb\nc\nd\n")
EOF
echo "$T/other/list.txt $T/shards/list.txt" > "$D/mounts.h2"
$TO "${MPI[@]}" "$M" train "${MODEL[@]}" "${NOAUG[@]}" "${COMMON[@]}" --train "$T/shards/list.txt" -b 4 --epochs 1 \
  --output "$T/lst" > "$T/lst.log" 2>&1
rc=$?
rm -f "$D/mounts.h2"
check "a different shard list on h2 is refused at start (rc $rc)" \
  "[ $rc != 0 ] && [ $rc != 124 ] && grep -q 'rank 1 (host h2) runs with a different list of training shards' $T/lst.log"

# 3c. each host holds only its own training shards (shard i belongs to rank i % 2): h1 sees
# shards 0 and 2 at $T/data, h2 shards 1 and 3 at the same path; classes.txt on both
mkdir -p "$T/data" "$T/h1" "$T/h2"
"$PY" - "$T" <<'EOF'
import sys, numpy as np
from tinydata import png_gray, write_shard
d = sys.argv[1]
rng = np.random.default_rng(3)
for s in range(4):
    items = []
    for i in range(8):
        k = (s + i) % 4
        a = rng.integers(0, 90, (8, 8)); a[2 * k:2 * k + 2, :] += 150
        items.append((f"k{s}_{i}", png_gray(a.astype(np.uint8)), k))
    write_shard(f"{d}/h{1 + s % 2}/s-{s:06d}.tar", items)
for h in (1, 2):
    open(f"{d}/h{h}/classes.txt", "w").write("a\nb\nc\nd\n")
EOF
echo "$T/h1 $T/data" > "$D/mounts.h1"
echo "$T/h2 $T/data" > "$D/mounts.h2"
$TO "${MPI[@]}" "$M" train "${MODEL[@]}" "${NOAUG[@]}" --train "$T/data/s-{000000..000003}.tar" --seed 3 -b 4 \
  --epochs 1 --warmup-epochs 0 --threads 1 -j 1 --output "$T/own" > "$T/own.log" 2>&1
rc=$?
rm -f "$D/mounts.h1" "$D/mounts.h2"
check "each host holding only its own training shards trains (rc $rc)" \
  "[ $rc = 0 ] && grep -q 'train loss' $T/own.log && [ -f $T/own/last.h5 ]"

# 4. rank 1's process killed mid-run
LONG=("${MODEL[@]}" "${NOAUG[@]}" "${COMMON[@]}" -b 4 --epochs 200 --checkpoint-every 3)
P=$(cat "$D/prefix")
kill_when_saved() {   # $1 run dir: once its first checkpoint exists, kill h2's mixtape process
  for _ in $(seq 600); do [ -f "$1/last.h5" ] && break; sleep 0.1; done
  sleep 0.3
  for pid in $(ip netns pids "${P}_h2"); do
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = mixtape ] && kill -9 "$pid"
  done
}
kill_when_saved "$T/k" &
t0=$(date +%s.%N)
$TO "${MPI[@]}" "$M" train "${LONG[@]}" --output "$T/k" > "$T/k.log" 2>&1
rck=$?
dt=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.1f", a - b}')
wait
check "rank 1 killed: the job stops non-zero ($rck) in ${dt%.*} s, within the 120 s bound" "[ $rck != 0 ] && [ $rck != 124 ]"
check "rank 1 killed: the launcher names the lost rank and host" "grep -q 'rank 1 .* on node h2' $T/k.log"
kstep=$("$PY" -c "import h5py; print(int(h5py.File('$T/k/last.h5','r').attrs['step']))" 2>/dev/null)
check "after the kill last.h5 is a readable checkpoint (step ${kstep:-?})" "[ -n '$kstep' ] && [ '$kstep' -ge 3 ]"
if [ -n "$kstep" ]; then
  stop=$((kstep + 4))
  $TO "${MPI[@]}" "$M" train "${LONG[@]}" --max-steps $stop --resume "$T/k" > "$T/k2.log" 2>&1
  rcr=$?
  $TO "${MPI[@]}" "$M" train "${LONG[@]}" --max-steps $stop --output "$T/u" > "$T/u.log" 2>&1
  rcu=$?
  check "resume on 2 hosts from step $kstep to $stop (rc $rcr, uninterrupted rc $rcu)" "[ $rcr = 0 ] && [ $rcu = 0 ]"
  check "resumed == uninterrupted at step $stop (bit-identical /model)" "$PY - <<EOF
import h5py, numpy as np
a, b = h5py.File('$T/k/last.h5', 'r'), h5py.File('$T/u/last.h5', 'r')
assert a.attrs['step'] == b.attrs['step'] == $stop, (a.attrs['step'], b.attrs['step'])
for k in a['model']:
    assert np.array_equal(a['model'][k][...], b['model'][k][...]), k
EOF"
fi

# 5. h2's link cut mid-run: rank 0 waits in a collective; its watchdog stops it
cut_when_saved() {
  for _ in $(seq 600); do [ -f "$1/last.h5" ] && break; sleep 0.1; done
  sleep 0.3
  ip -n "${P}_h2" link set eth0 down
}
export MIXTAPE_DIST_TIMEOUT=8
cut_when_saved "$T/c" &
t0=$(date +%s.%N)
timeout -k 5 60 "${MPI[@]}" "$M" train "${LONG[@]}" --output "$T/c" > "$T/c.log" 2>&1
rcc=$?
dt=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.1f", a - b}')
wait
left=$(for pid in $(ip netns pids "${P}_h1"); do cat /proc/"$pid"/comm; done 2>/dev/null | grep -c '^mixtape$')
check "link cut: rank 0 stops (its host has ${left} mixtape process left)" "[ '$left' = 0 ]"
check "link cut: the job ends non-zero ($rcc) after ${dt} s, within the bound of 8 s (watchdog) + 30 s" \
  "[ $rcc != 0 ] && [ $rcc != 124 ] && awk -v t=$dt 'BEGIN{exit !(t < 38 + 20)}'"
# Whichever notices first names the lost host: the launcher (its keepalive) or rank 0's watchdog.
check "link cut: a message names the lost host h2, or rank 0's wait" \
  "grep -Eq 'Remote daemon: .* on node h2|rank 0 \(host h1\): no reply from the other ranks for [0-9]+ s' $T/c.log"
cstep=$("$PY" -c "import h5py; print(int(h5py.File('$T/c/last.h5','r').attrs['step']))" 2>/dev/null)
check "after the cut last.h5 is a readable checkpoint (step ${cstep:-?})" "[ -n '$cstep' ] && [ '$cstep' -ge 3 ]"

# 5b. the same without the launcher's keepalive: rank 0's own watchdog stops it (the
# launcher itself would wait for the lost host's daemon; the test ends it)
bash "$NS" down "$D" > /dev/null 2>&1; bash "$NS" up "$D" 2 > /dev/null 2>&1
P=$(cat "$D/prefix")
export MIXTAPE_DIST_TIMEOUT=4
cut_when_saved "$T/w" &
( "${MPI0[@]}" "$M" train "${LONG[@]}" --output "$T/w" > "$T/w.log" 2>&1 ) &
job=$!
for _ in $(seq 300); do grep -q 'no reply from the other ranks' "$T/w.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
left=$(for pid in $(ip netns pids "${P}_h1"); do cat /proc/"$pid"/comm; done 2>/dev/null | grep -c '^mixtape$')
kill "$job" 2>/dev/null; pkill -f "$D/agent.sh" 2>/dev/null; wait
check "watchdog: rank 0 stops by itself after 4 s without a reply, naming itself and the wait" \
  "[ '$left' = 0 ] && grep -q 'rank 0 (host h1): no reply from the other ranks for [0-9]* s in the gradient all-reduce\|rank 0 (host h1): no reply from the other ranks for [0-9]* s in an' $T/w.log"

finish "$T"
