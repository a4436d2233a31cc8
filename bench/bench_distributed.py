"""Data-parallel training over MPI: 2 ranks x 1 thread vs 1 process x 2 threads, and a scaling cost model.

Usage:  python bench/bench_distributed.py [--models deepconvnet,lenet] [--batch 100] [--steps 10] [--rounds 2]

For each model (fastconv.models, float32, input 1x28x28, Adam) one training step on a global batch of --batch:
  1x2  = one process on 2 threads: ``gradient`` on the whole batch, ``Adam.update``;
  2x1  = ``mpiexec -n 2``, 1 thread each: each rank's ``gradient`` on its half (``distributed.shard``), then
         ``DistributedOptimizer.update`` (one fused allreduce of the gradients, then Adam).
Before timing, the 2x1 parameters after 3 steps are checked against 1x2's (float32 to 1e-4: Adam scales a
rounding-level gradient difference up to its step size, lr = 1e-3) and across ranks
(bit-identical). Blocks of the two alternate (--rounds); each keeps its best mean step time over --steps steps.
The allreduce of the gradients alone is timed in the 2x1 run (mean over --steps calls) and reported with its
share of the step. The cost model then takes the measured compute time per example and predicts, for a ring
allreduce (2(p-1)/p of the gradient bytes sent and received per rank, plus 2(p-1) latencies), the step time,
throughput and scaling efficiency at 2, 8, 64 and 256 ranks on 10 and 100 Gbit/s networks, and the per-rank
batch each needs for 90% efficiency; it is checked against the 2-rank measurement here, with the bandwidth and
latency of this machine's shared-memory transport measured by a large and a tiny allreduce.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from _timing import machine_line

HERE = os.path.dirname(os.path.abspath(__file__))
NETWORKS = {"10 Gbit/s": (10e9 / 8, 20e-6), "100 Gbit/s": (100e9 / 8, 5e-6)}  # bytes/s, latency (assumed)


# ======================================================================================================
# one block of steps (run both in the 1x2 process and in each rank of the 2x1 job)


def data(batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, batch)


def make(name, distributed_):
    from fastconv.models import build
    from fastconv.optimizer import Adam

    net = build(name, dtype=np.float32, seed=0)
    for layer in (net.layers.values() if isinstance(net.layers, dict) else net.layers):
        if hasattr(layer, "dropout_ratio"):
            layer.dropout_ratio = 0.0  # deterministic gradients for the equality check
    opt = Adam(lr=1e-3)
    if distributed_:
        from fastconv import distributed as dist

        opt = dist.DistributedOptimizer(opt)
    return net, opt


def step_time(name, batch, steps, distributed_):
    """(mean step s, mean allreduce s or 0, gradient bytes, params after 3 steps)."""
    net, opt = make(name, distributed_)
    x, t = data(batch)
    idx = np.arange(batch)
    if distributed_:
        from fastconv import distributed as dist

        idx = dist.shard(idx)
    xs, ts = x[idx], t[idx]
    for _ in range(3):
        opt.update(net.params, net.gradient(xs, ts))
    check = {k: v.copy() for k, v in net.params.items()}
    if distributed_:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.update(net.params, net.gradient(xs, ts))
    step = (time.perf_counter() - t0) / steps
    grads = net.gradient(xs, ts)
    reduce_s = 0.0
    if distributed_:
        buffers = {}
        dist.allreduce_mean(grads, buffers)  # allocate the fused buffer once, as the optimizer does
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            dist.allreduce_mean(grads, buffers)
        reduce_s = (time.perf_counter() - t0) / steps
    return step, reduce_s, sum(g.nbytes for g in grads.values()), check


def transport():
    """(bytes/s, latency s) of this machine's MPI allreduce: a 64 MB and an 8-byte allreduce."""
    from fastconv import distributed as dist

    big, tiny = {"g": np.ones(16 << 20, np.float32)}, {"g": np.ones(2, np.float32)}
    buffers: dict = {}
    dist.allreduce_mean(big, buffers)
    t0 = time.perf_counter()
    for _ in range(5):
        dist.allreduce_mean(big, buffers)
    t_big = (time.perf_counter() - t0) / 5
    buffers = {}
    dist.allreduce_mean(tiny, buffers)
    t0 = time.perf_counter()
    for _ in range(200):
        dist.allreduce_mean(tiny, buffers)
    latency = (time.perf_counter() - t0) / 200 / 2  # a 2-rank ring: 2(p-1) = 2 messages
    p = dist.size()
    return 2 * (p - 1) / p * big["g"].nbytes / (t_big - 2 * (p - 1) * latency), latency


def worker(args):
    """Rank side of the 2x1 run: print one JSON line (rank 0)."""
    import fastconv
    from fastconv import distributed as dist

    fastconv.set_num_threads(1)
    dist.init(timeout=300)
    out = {}
    for name in args.models.split(","):
        step, reduce_s, gbytes, check = step_time(name, args.batch, args.steps, True)
        out[name] = {"step": step, "reduce": reduce_s, "grad_bytes": gbytes,
                     "check": {k: v.tolist() for k, v in check.items()}}
        digests = dist.allgather([check[k].tobytes() for k in sorted(check)])
        if any(d != digests[0] for d in digests):
            raise SystemExit(f"{name}: the ranks' parameters differ")
    out["transport"] = transport()
    if dist.rank() == 0:
        print(json.dumps(out), flush=True)


# ======================================================================================================
# the launcher


def run_mpi(args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpiexec", "-n", "2", sys.executable, os.path.join(HERE, "bench_distributed.py"), "--worker",
           "--models", args.models, "--batch", str(args.batch), "--steps", str(args.steps)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if run.returncode != 0:
        raise SystemExit(f"mpiexec failed ({run.returncode}): {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def cost_model(t_ex, grad_bytes, bandwidth, latency, p, b):
    """Step time, examples/s and efficiency of p ranks with b examples each on a ring allreduce."""
    t_ar = 2 * (p - 1) / p * grad_bytes / bandwidth + 2 * (p - 1) * latency
    step = b * t_ex + t_ar
    return step, p * b / step, b * t_ex / step, t_ar


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="deepconvnet,lenet")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import fastconv

    fastconv.set_num_threads(2)
    print(machine_line(2))
    print("load average (1, 5, 15 min) at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    names = args.models.split(",")
    single = {n: float("inf") for n in names}
    multi: dict = {}
    for r in range(args.rounds):
        order = ("single", "mpi") if r % 2 == 0 else ("mpi", "single")
        for what in order:
            if what == "single":
                for n in names:
                    step, _, gbytes, check = step_time(n, args.batch, args.steps, False)
                    single[n] = min(single[n], step)
                    single[n + ":check"], single[n + ":bytes"] = check, gbytes
            else:
                got = run_mpi(args)
                for n in names:
                    if n not in multi or got[n]["step"] < multi[n]["step"]:
                        multi[n] = got[n]
                multi["transport"] = got["transport"]
    for n in names:  # the same computation: the 2x1 parameters equal 1x2's
        for k, v in single[n + ":check"].items():
            np.testing.assert_allclose(np.asarray(multi[n]["check"][k], np.float32), v, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{n} {k}")
    print("All results match (2x1 parameters after 3 steps equal 1x2's; ranks bit-identical).")
    print("load average (1, 5, 15 min) after the timed runs: {:.2f} {:.2f} {:.2f}\n".format(*os.getloadavg()))

    print(f"training step, global batch {args.batch}, float32, Adam; best mean of {args.steps} steps, "
          f"{args.rounds} alternating rounds")
    print(f"{'model':<12} | {'1x2 ms':>7} | {'2x1 ms':>7} | {'1x2 ex/s':>9} | {'2x1 ex/s':>9} | {'2x1 / 1x2':>9} | "
          f"{'grad MB':>7} | {'allreduce ms':>12} | {'of step':>7}")
    for n in names:
        s, m = single[n], multi[n]
        print(f"{n:<12} | {s * 1e3:7.2f} | {m['step'] * 1e3:7.2f} | {args.batch / s:9.0f} | "
              f"{args.batch / m['step']:9.0f} | {s / m['step']:8.2f}x | {m['grad_bytes'] / 1e6:7.3f} | "
              f"{m['reduce'] * 1e3:12.3f} | {m['reduce'] / m['step']:6.1%}")

    bw, lat = multi["transport"]
    print(f"\nthis machine's MPI allreduce (shared memory, 2 ranks): {bw / 1e9:.2f} GB/s, latency {lat * 1e6:.1f} us")
    print("cost model check, 2 ranks here: predicted allreduce = 2(p-1)/p * grad bytes / bandwidth + 2(p-1) * "
          "latency")
    for n in names:
        m = multi[n]
        b = args.batch // 2
        t_ex = (m["step"] - m["reduce"]) / b
        step, _, _, t_ar = cost_model(t_ex, m["grad_bytes"], bw, lat, 2, b)
        print(f"  {n:<12} allreduce predicted {t_ar * 1e3:.3f} ms, measured {m['reduce'] * 1e3:.3f} ms; step "
              f"predicted {step * 1e3:.2f} ms, measured {m['step'] * 1e3:.2f} ms")

    print("\nprojection (compute per example as measured on one 1-thread rank here; ring allreduce; latency "
          "20 us at 10 Gbit/s, 5 us at 100 Gbit/s, assumed)")
    print(f"{'model':<12} | {'network':<10} | {'ranks':>5} | {'b/rank':>6} | {'allreduce ms':>12} | "
          f"{'ex/s':>9} | {'efficiency':>10} | {'b/rank for 90%':>14}")
    for n in names:
        m = multi[n]
        b = args.batch // 2
        t_ex = (m["step"] - m["reduce"]) / b
        for net_name, (nbw, nlat) in NETWORKS.items():
            for ranks in (2, 8, 64, 256):
                _, ex_s, eff, t_ar = cost_model(t_ex, m["grad_bytes"], nbw, nlat, ranks, b)
                need = int(np.ceil(9 * t_ar / t_ex))
                print(f"{n:<12} | {net_name:<10} | {ranks:5d} | {b:6d} | {t_ar * 1e3:12.3f} | {ex_s:9.0f} | "
                      f"{eff:10.1%} | {need:14d}")


if __name__ == "__main__":
    main()
