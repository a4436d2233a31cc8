"""Optimizer updates: fastconv.optimizer (one fused kernel per parameter) vs the NumPy reference.

Usage:  python bench/bench_optim.py [--dtype float32|float64] [--repeat 20] [--threads N] [--big 8000000]

Per optimizer, one update(params, grads) of DeepConvNet's parameter set (fastconv.models.DeepConvNet: 16
arrays, 4-D conv weights and 1-D biases) and of one large array of --big elements (out of cache: memory bound).
Before timing, both implementations run 3 updates from the same start and must agree (they are expected to be
bit-identical). Then: ms (min of --repeat), GB/s = bytes that must move / time (p and g read, the state read,
p and the state written: 3, 5 or 7 arrays), and the ratio reference / fastconv, measured side by side in one
run. Absolute times vary with the machine's load; each timing block starts after a short pause (_timing.py).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _timing import best_time, machine_line

import fastconv
from fastconv import optimizer as fc_optim
from fastconv.models import DeepConvNet
from fastconv.reference import optimizer as ref_optim

# name -> arrays moved per element (read p, g, state; write p, state)
ARRAYS_MOVED = {"SGD": 3, "Momentum": 5, "Nesterov": 5, "AdaGrad": 5, "RMSprop": 5, "Adam": 7, "Adadelta": 7}
STATE = {"SGD": (), "Momentum": ("v",), "Nesterov": ("v",), "AdaGrad": ("h",), "RMSprop": ("h",),
         "Adam": ("m", "v"), "Adadelta": ("h", "d")}


def deepconvnet_params(dtype):
    np.random.seed(0)
    return DeepConvNet(dtype=dtype).params


def grads_like(params, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}


def verify(params, dtype) -> None:
    """3 updates of every optimizer, fastconv vs reference from the same start; exit on a mismatch."""
    tol = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}[np.dtype(dtype)]
    exact = True
    for name in ARRAYS_MOVED:
        p_fc = {k: v.copy() for k, v in params.items()}
        p_ref = {k: v.copy() for k, v in params.items()}
        o_fc, o_ref = getattr(fc_optim, name)(weight_decay=1e-4), getattr(ref_optim, name)(weight_decay=1e-4)
        for step in range(3):
            g = grads_like(params, seed=step)
            o_fc.update(p_fc, g)
            o_ref.update(p_ref, g)
        pairs = [(p_fc[k], p_ref[k], k) for k in params]
        pairs += [(getattr(o_fc, s)[k], getattr(o_ref, s)[k], f"{s}[{k}]") for s in STATE[name] for k in params]
        for a, b, what in pairs:
            if not np.array_equal(a, b):
                exact = False
                err = np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))
                if err > tol:
                    sys.exit(f"MISMATCH: {name} {what} max relative error {err:.2e} > {tol:.0e}")
    print("All results match" + (" (bit-identical)." if exact else " (within tolerance).") + " Starting benchmarks.")


def bench_set(label, params, repeat) -> None:
    n = sum(v.size for v in params.values())
    itemsize = next(iter(params.values())).dtype.itemsize
    grads = grads_like(params)
    print(f"\n{label}: {len(params)} arrays, {n:,} elements ({n * itemsize / 1e6:.2f} MB), min of {repeat}")
    print(f"{'optimizer':10s} | {'fastconv ms':>11s} | {'GB/s':>6s} | {'reference ms':>12s} | {'GB/s':>6s} | "
          f"{'x vs reference':>14s}")
    for name, arrays in ARRAYS_MOVED.items():
        p_fc = {k: v.copy() for k, v in params.items()}
        p_ref = {k: v.copy() for k, v in params.items()}
        o_fc, o_ref = getattr(fc_optim, name)(), getattr(ref_optim, name)()
        o_fc.update(p_fc, grads)  # create the state outside the timing
        o_ref.update(p_ref, grads)
        t_fc = best_time(lambda: o_fc.update(p_fc, grads), repeat)
        t_ref = best_time(lambda: o_ref.update(p_ref, grads), repeat)
        nbytes = arrays * n * itemsize
        print(f"{name:10s} | {t_fc * 1e3:11.3f} | {nbytes / t_fc / 1e9:6.1f} | {t_ref * 1e3:12.3f} | "
              f"{nbytes / t_ref / 1e9:6.1f} | {t_ref / t_fc:13.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all cores)")
    parser.add_argument("--big", type=int, default=8_000_000, help="elements of the large array (0: skip)")
    args = parser.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    print(machine_line())
    params = deepconvnet_params(dtype)
    verify(params, dtype)
    bench_set(f"DeepConvNet parameters, {dtype.name}", params, args.repeat)
    if args.big:
        big = {"W": np.random.default_rng(2).standard_normal(args.big).astype(dtype)}
        bench_set(f"one large array, {dtype.name}", big, max(3, args.repeat // 4))


if __name__ == "__main__":
    main()
