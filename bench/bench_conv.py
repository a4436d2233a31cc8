"""Convolutions on small batches of large images: fastconv on 1 and on all threads, vs PyTorch (if installed).

Usage:  python bench/bench_conv.py [--batch 1] [--repeat 10] [--rounds 3] [--threads N] [--no-torch]

The MNIST networks spread a batch of 100 images over the threads (bench_layers.py measures those). With fewer
images than threads, fastconv's stride-1 kernels share each image's tiles between the threads instead; this
bench measures that: forward and backward (dx, dW, db) of 3x3 / pad 1 convolutions of VGG/ResNet-like shapes
on --batch images, float32. Every implementation (fastconv on 1 and on N threads, torch) is checked first against
fastconv.reference (float64, from the same float32 inputs): forward and gradients (dx, dW, db) within 1e-4 of
each result's largest magnitude ("All results match. Starting benchmarks."); fastconv's 1- and N-thread results
must also be the same bits. Measurement blocks alternate (_timing.interleaved_best): min of --repeat runs, best
of --rounds blocks. Ratios are side by side in one run; absolute times vary with the host's load.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastconv  # noqa: E402
from fastconv import ops  # noqa: E402
from fastconv.reference import layers as ref_layers  # noqa: E402
from _timing import interleaved_best, machine_line  # noqa: E402

# (C, H=W, FN): 3x3 filters, pad 1, stride 1
SHAPES = [(3, 224, 64), (64, 56, 64), (128, 28, 128), (256, 14, 256)]


# float32 results against the float64 reference: sums of up to C*9 (forward, dx) or N*H*W (dW, db) products
RTOL = 1e-4


def check(name, got, want):
    """``got`` within RTOL of ``want``'s largest magnitude, or an AssertionError naming it."""
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(np.asarray(got, dtype=np.float64) - want).max()) / scale
    assert err < RTOL, f"{name} differs from the reference: {err:.2e}"


def reference(x, W, b, dout):
    """(out, dx, dW, db) of fastconv.reference's Convolution in float64, 3x3, stride 1, pad 1."""
    ref = ref_layers.Convolution(W.astype(np.float64), b.astype(np.float64), 1, 1)
    out = ref.forward(x.astype(np.float64))
    dx = ref.backward(dout.astype(np.float64))
    return out, dx, ref.dW, ref.db


def with_threads(n, f):
    def run():
        fastconv.set_num_threads(n)
        return f()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
            import torch.nn.functional as F
            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    print(machine_line(threads=args.threads), flush=True)
    rng = np.random.default_rng(0)
    T = args.threads
    inputs = []
    for C, H, FN in SHAPES:
        x = rng.standard_normal((args.batch, C, H, H)).astype(np.float32)
        W = (rng.standard_normal((FN, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        b = rng.standard_normal(FN).astype(np.float32)
        dout = rng.standard_normal((args.batch, FN, H, H)).astype(np.float32)
        inputs.append((C, H, FN, x, W, b, dout))

    # correctness first: every implementation against the float64 reference
    for C, H, FN, x, W, b, dout in inputs:
        ref = reference(x, W, b, dout)
        got = {}
        for n in (1, T):
            fastconv.set_num_threads(n)
            got[n] = (ops.conv_forward(x, W, b, 1, 1),) + ops.conv_backward(x, W, dout, 1, 1)
            for name, g, r in zip(("out", "dx", "dW", "db"), got[n], ref):
                check(f"fastconv {n}T {(C, H, FN)} {name}", g, r)
        for g1, gT in zip(got[1], got[T]):
            assert np.array_equal(g1, gT), f"{(C, H, FN)}: 1 and {T} threads differ"
        if torch:
            xt = torch.from_numpy(x).requires_grad_(True)
            Wt = torch.from_numpy(W).requires_grad_(True)
            bt = torch.from_numpy(b).requires_grad_(True)
            out_t = F.conv2d(xt, Wt, bt, padding=1)
            gx, gW, gb = torch.autograd.grad(out_t, (xt, Wt, bt), torch.from_numpy(dout))
            for name, t, r in zip(("out", "dx", "dW", "db"), (out_t.detach(), gx, gW, gb), ref):
                check(f"torch {(C, H, FN)} {name}", t.numpy(), r)
    fastconv.set_num_threads(T)
    print("All results match. Starting benchmarks.", flush=True)

    print(f"batch {args.batch}, 3x3 pad 1, float32, min of {args.repeat} runs x {args.rounds} alternating blocks (ms)")
    head = f"{'input':>18} {'FN':>4} | pass | fastconv 1T | fastconv {T}T | {T}T speed-up"
    print(head + (f" | torch {T}T | x vs torch" if torch else ""))
    for C, H, FN, x, W, b, dout in inputs:
        fns = {"fwd": {}, "bwd": {}}
        fns["fwd"]["1T"] = with_threads(1, lambda: ops.conv_forward(x, W, b, 1, 1))
        fns["fwd"]["NT"] = with_threads(T, lambda: ops.conv_forward(x, W, b, 1, 1))
        fns["bwd"]["1T"] = with_threads(1, lambda: ops.conv_backward(x, W, dout, 1, 1))
        fns["bwd"]["NT"] = with_threads(T, lambda: ops.conv_backward(x, W, dout, 1, 1))
        if torch:
            xt = torch.from_numpy(x).requires_grad_(True)
            Wt = torch.from_numpy(W).requires_grad_(True)
            bt = torch.from_numpy(b).requires_grad_(True)
            dt = torch.from_numpy(dout)
            xd = x.copy()

            def t_fwd():
                with torch.no_grad():
                    F.conv2d(torch.from_numpy(xd), Wt.detach(), bt.detach(), padding=1)

            def t_bwd():
                o = F.conv2d(xt, Wt, bt, padding=1)
                torch.autograd.grad(o, (xt, Wt, bt), dt)

            fns["fwd"]["torch"], fns["bwd"]["torch"] = t_fwd, t_bwd
        for pas in ("fwd", "bwd"):
            t = interleaved_best(fns[pas], args.rounds, args.repeat)
            line = (f"{str((args.batch, C, H, H)):>18} {FN:>4} | {pas}  | {t['1T'] * 1e3:11.2f} | "
                    f"{t['NT'] * 1e3:{len(f'fastconv {T}T')}.2f} | {t['1T'] / t['NT']:{len(f'{T}T speed-up')}.2f}x")
            if torch:
                line += f" | {t['torch'] * 1e3:{len(f'torch {T}T')}.2f} | {t['torch'] / t['NT']:9.2f}x"
            print(line, flush=True)
    fastconv.set_num_threads(T)


if __name__ == "__main__":
    main()
