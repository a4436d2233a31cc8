"""Max and average pooling, forward and backward: fastconv vs the NumPy reference vs PyTorch (if installed).

Usage:  python bench/bench_pool.py [--batch 100] [--repeat 10] [--rounds 3] [--threads N] [--no-torch]

Shapes: the pooling layers of the book's DeepConvNet (2x2, stride 2, on 16@28x28, 32@16x16, 64@8x8: the tight
2x2 loop of cpu/pool.cpp) and an overlapping, padded 3x3 / stride 2 / pad 1 window (the general path), float32,
batch --batch. Implementations:
  fastconv                  ops.maxpool_* / ops.avgpool_* (what layers.Pooling / AvgPooling run);
  reference float64 (book)  fastconv.reference.layers.Pooling / AvgPooling (im2col + max / mean), float64
                            like the book's networks; "x vs reference" is measured against it;
  torch                     F.max_pool2d (return_indices) / F.avg_pool2d (count_include_pad=True, fastconv's
                            convention), float32; backward through torch.autograd.grad.
Every implementation is checked against the reference first ("All results match. Starting benchmarks.").
Pooling is a single pass over memory: GB/s counts the bytes each pass must move (x and out forward, plus the
int32 argmax of max pooling; dout and dx backward, plus argmax). Measurement blocks alternate
(_timing.interleaved_best): min of --repeat runs, best of --rounds blocks; ratios are side by side in one run.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from _timing import interleaved_best, machine_line

import fastconv
from fastconv import ops
from fastconv.reference import layers as ref_layers

# (C, H=W, pool, stride, pad)
SHAPES = [(16, 28, 2, 2, 0), (32, 16, 2, 2, 0), (64, 8, 2, 2, 0), (16, 28, 3, 2, 1)]
REF = "reference float64 (book)"
# float32 results against the float64 reference: a max is exact; an average of at most 9 values is within a few
# float32 ulps of the result's scale.
RTOL = 1e-5


def check(name, got, want):
    got = np.asarray(got, dtype=np.float64)
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got - want).max()) / scale
    assert err <= RTOL, f"{name}: max relative error {err:.2e} against the reference"


def timed_calls(kind, x, dout, P, S, pad, torch, F):
    """({impl: forward call}, {impl: backward call}) of one pooling, each backward after its own forward."""
    x64, dout64 = x.astype(np.float64), dout.astype(np.float64)
    ref = (ref_layers.Pooling if kind == "max" else ref_layers.AvgPooling)(P, P, S, pad)
    ref.forward(x64)
    if kind == "max":
        _, argmax = ops.maxpool_forward(x, P, P, S, pad)
        fwd = {"fastconv": lambda: ops.maxpool_forward(x, P, P, S, pad)}
        bwd = {"fastconv": lambda: ops.maxpool_backward(dout, argmax, x.shape, P, P, S, pad)}
    else:
        fwd = {"fastconv": lambda: ops.avgpool_forward(x, P, P, S, pad)}
        bwd = {"fastconv": lambda: ops.avgpool_backward(dout, x.shape, P, P, S, pad)}
    fwd[REF] = lambda: ref.forward(x64)
    bwd[REF] = lambda: ref.backward(dout64)
    if torch:
        xt, dt = torch.from_numpy(x), torch.from_numpy(dout)
        xg = xt.clone().requires_grad_(True)
        def pool(t):
            if kind == "max":
                return F.max_pool2d(t, P, S, pad, return_indices=True)[0]
            return F.avg_pool2d(t, P, S, pad, count_include_pad=True)

        out = pool(xg)

        def t_fwd():
            with torch.no_grad():
                pool(xt)

        fwd["torch"] = t_fwd
        bwd["torch"] = lambda: torch.autograd.grad(out, (xg,), dt, retain_graph=True)
    return fwd, bwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    fastconv.set_num_threads(args.threads)
    torch = F = None
    if not args.no_torch:
        try:
            import torch
            import torch.nn.functional as F

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    print(machine_line(threads=args.threads), flush=True)
    rng = np.random.default_rng(0)
    cases = []
    for C, H, P, S, pad in SHAPES:
        x = rng.standard_normal((args.batch, C, H, H)).astype(np.float32)
        OH = (H + 2 * pad - P) // S + 1
        dout = rng.standard_normal((args.batch, C, OH, OH)).astype(np.float32)
        for kind in ("max", "avg"):
            cases.append((kind, C, H, P, S, pad, x, dout))

    # ---------------------------------------------------------------------------------------------------
    # correctness first: every implementation against the float64 reference
    for kind, C, H, P, S, pad, x, dout in cases:
        ref = (ref_layers.Pooling if kind == "max" else ref_layers.AvgPooling)(P, P, S, pad)
        r_out = ref.forward(x.astype(np.float64))
        r_dx = ref.backward(dout.astype(np.float64))
        if kind == "max":
            out, argmax = ops.maxpool_forward(x, P, P, S, pad)
            dx = ops.maxpool_backward(dout, argmax, x.shape, P, P, S, pad)
        else:
            out = ops.avgpool_forward(x, P, P, S, pad)
            dx = ops.avgpool_backward(dout, x.shape, P, P, S, pad)
        check(f"fastconv {kind} out", out, r_out)
        check(f"fastconv {kind} dx", dx, r_dx)
        if torch:
            xt = torch.from_numpy(x).requires_grad_(True)
            if kind == "max":
                ot = F.max_pool2d(xt, P, S, pad)
            else:
                ot = F.avg_pool2d(xt, P, S, pad, count_include_pad=True)
            (gx,) = torch.autograd.grad(ot, (xt,), torch.from_numpy(dout))
            check(f"torch {kind} out", ot.detach().numpy(), r_out)
            check(f"torch {kind} dx", gx.numpy(), r_dx)
    print("All results match. Starting benchmarks.", flush=True)

    # ---------------------------------------------------------------------------------------------------
    # timing
    print(f"batch {args.batch}, float32 (reference float64), min of {args.repeat} runs x {args.rounds} alternating "
          "blocks")
    head = f"{'pooling':>28} | pass | {'implementation':<24} | {'ms':>8} | {'GB/s':>6} | x vs reference"
    print(head)
    for kind, C, H, P, S, pad, x, dout in cases:
        fwd, bwd = timed_calls(kind, x, dout, P, S, pad, torch, F)
        n_in, n_out = x.size, dout.size
        idx = 4 * n_out if kind == "max" else 0  # the int32 argmax, written forward and read backward
        moved = {"fwd": 4 * (n_in + n_out) + idx, "bwd": 4 * (n_out + n_in) + idx}
        label = f"{kind} {P}x{P} s{S} p{pad} {(args.batch, C, H, H)}"
        for pas, fns in (("fwd", fwd), ("bwd", bwd)):
            t = interleaved_best(fns, args.rounds, args.repeat)
            for name, sec in t.items():
                gbs = f"{moved[pas] / sec / 1e9:6.1f}" if name != REF else f"{'-':>6}"  # float64: other bytes
                print(f"{label:>28} | {pas}  | {name:<24} | {sec * 1e3:8.3f} | {gbs} | {t[REF] / sec:13.2f}x",
                      flush=True)


if __name__ == "__main__":
    main()
