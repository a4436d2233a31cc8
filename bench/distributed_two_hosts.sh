#!/usr/bin/env bash
# Two "machines" on this one: network namespaces fcA (10.77.0.1) and fcB (10.77.0.2) joined by a veth pair,
# and a 2-rank fastconv.distributed job whose ranks talk over TCP between them, as two hosts would. mpirun
# starts the remote rank through an rsh agent that enters the other namespace instead of ssh-ing to it.
# Needs root (ip netns), OpenMPI and mpi4py. Prints each rank's result and the bytes that crossed the veth
# link; everything it creates is removed on exit. Bounded: every step has a timeout.
set -euo pipefail
py=${PYTHON:-python3}
tmp=$(mktemp -d)
A=fcA$$ B=fcB$$ VA=fva$$ VB=fvb$$
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"
ip link set "$VB" netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev "$VA"
ip -n "$B" addr add 10.77.0.2/24 dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up
ip -n "$B" link set "$VB" up

cat >"$tmp/agent.sh" <<AGENT
#!/bin/sh
# mpirun's rsh agent: "agent.sh HOST CMD..." runs CMD in the namespace that plays HOST
host="\$1"; shift
case "\$host" in
  10.77.0.1) ns=$A ;;
  10.77.0.2) ns=$B ;;
  *) echo "agent.sh: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
AGENT
chmod +x "$tmp/agent.sh"

cat >"$tmp/job.py" <<'JOB'
import time
import numpy as np
from fastconv import distributed as dist
dist.init(timeout=60)
r, p = dist.rank(), dist.size()
g = {"g": np.full(1 << 22, r + 1.0, np.float32)}  # 16 MiB of "gradients"
dist.allreduce_mean(g)
t0 = time.perf_counter()
for _ in range(5):
    g["g"][:] = r + 1.0
    dist.allreduce_mean(g)
dt = (time.perf_counter() - t0) / 5
# rank 0 prints every rank's line: two processes writing to mpirun's one stdout could interleave
for rank, mean, t in dist.allgather((r, float(g["g"][0]), dt)):
    if r == 0:
        print(f"rank {rank}/{p}: mean {mean} (expected {(p + 1) / 2}), 16 MiB allreduce {t * 1e3:.1f} ms "
              f"= {2 * (p - 1) / p * g['g'].nbytes / t / 1e9:.2f} GB/s per rank", flush=True)
JOB

tx() { ip netns exec "$A" cat "/sys/class/net/$VA/statistics/tx_bytes"; }
before=$(tx)
cd "$tmp"
timeout 120 ip netns exec "$A" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
  mpirun -H 10.77.0.1,10.77.0.2 -n 2 --mca plm_rsh_agent "$tmp/agent.sh" \
  --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  -x PATH "$py" "$tmp/job.py"
echo "bytes sent over the veth link from host A: $(( $(tx) - before ))"
