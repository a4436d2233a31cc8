"""DeepConvNet in float32, float16 and bfloat16, side by side: one training step (gradient(): forward + backward
of a batch) and the peak memory of one inference at batch 1000.

Usage:  python bench/bench_precision.py [--batch 100] [--infer-batch 1000] [--threads N]
(FASTCONV_ISA=avx2 / scalar in the environment lowers the ISA, for every process it starts.)

The 16-bit types are storage types (kernels compute in float32, see csrc/common/half.h), so on a CPU without
native 16-bit arithmetic the gain to expect is the halved memory traffic, not more FLOP/s. Memory: each dtype
is measured in a fresh process (the kernels' per-thread arenas start empty): NumPy buffers allocated during
predict() (tracemalloc peak) plus the kernels' own scratch (fastconv._cpu.workspace_bytes()['peak']); the
input batch and the parameters exist before the measurement and are not counted. Results are checked first:
the 16-bit inference losses must be within 5% of float32's (the 16-bit networks hold float32's parameters
rounded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc

import numpy as np
from _timing import interleaved_best, machine_line

import fastconv
from fastconv import models

DTYPES = ("float32", "float16", "bfloat16")


def dtype_of(name: str):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def networks(seed: int = 0) -> dict:
    """One DeepConvNet per dtype, all on the float32 network's parameters rounded to the narrowest type used."""
    np.random.seed(seed)
    nets = {name: models.DeepConvNet(dtype=dtype_of(name)) for name in DTYPES}
    for k, v in nets["float32"].params.items():
        for name in DTYPES[1:]:
            nets[name].params[k][...] = v.astype(dtype_of(name))
    return nets


def memory_one(name: str, batch: int) -> dict:
    """Peak bytes of one predict() at ``batch`` in dtype ``name`` (run in a fresh process)."""
    net = networks()[name]
    x = np.random.default_rng(0).random((batch, 1, 28, 28)).astype(dtype_of(name))
    cpu = fastconv._cpu
    cpu.reset_workspace_peak()
    before = cpu.workspace_bytes()["current"]
    tracemalloc.start()
    y = net.predict(x, train_flg=False)
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scratch = cpu.workspace_bytes()["peak"] - before
    del y
    return {"dtype": name, "numpy_peak": numpy_peak, "scratch_peak": scratch, "total": numpy_peak + scratch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory-one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    if args.memory_one:
        print(json.dumps(memory_one(args.memory_one, args.infer_batch)))
        return

    print(machine_line(args.threads))
    nets = networks()
    rng = np.random.default_rng(1)
    x32 = rng.random((args.batch, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, args.batch)
    xs = {name: x32.astype(dtype_of(name)) for name in DTYPES}
    # inference-mode losses (no dropout masks, which each network would draw for itself)
    losses = {name: fastconv.ops.softmax_cross_entropy(
        nets[name].predict(xs[name], train_flg=False).astype(np.float32), t)[0] for name in DTYPES}
    for name in DTYPES[1:]:
        if not abs(losses[name] - losses["float32"]) <= 0.05 * abs(losses["float32"]):
            raise SystemExit(f"{name} loss {losses[name]} differs from float32's {losses['float32']}")
    print("All results match (losses " + ", ".join(f"{n} {v:.4f}" for n, v in losses.items()) + "). "
          "Starting benchmarks.")
    best = interleaved_best({name: (lambda n=name: nets[n].gradient(xs[n], t)) for name in DTYPES}, rounds=2,
                            repeat=3)
    print(f"\nDeepConvNet gradient() (forward + backward), batch {args.batch}, min of 2 x 3 interleaved runs")
    print("dtype    | ms      | x vs float32")
    for name in DTYPES:
        print(f"{name:8} | {best[name] * 1e3:7.1f} | {best['float32'] / best[name]:.2f}x")

    print(f"\nDeepConvNet predict() peak memory, batch {args.infer_batch} (fresh process per dtype)")
    print("dtype    | NumPy MiB | scratch MiB | total MiB | x of float32")
    res = {}
    for name in DTYPES:
        cmd = [sys.executable, __file__, "--memory-one", name, "--infer-batch", str(args.infer_batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        res[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    for name in DTYPES:
        r = res[name]
        print(f"{name:8} | {r['numpy_peak'] / 2**20:9.1f} | {r['scratch_peak'] / 2**20:11.1f} | "
              f"{r['total'] / 2**20:9.1f} | {r['total'] / res['float32']['total']:.2f}")


if __name__ == "__main__":
    main()
