"""Depthwise and transposed convolutions, forward + backward: fastconv vs PyTorch channels_last (and NCHW).

Usage:  python bench/bench_conv_family.py [--batch 64] [--repeat 5] [--rounds 3] [--threads N]
                                         [--dtype float32]

Shapes (float32 by default):
  depthwise   MobileNet-v1 blocks on 28x28 Fashion-MNIST: 3x3 filters, groups == C, stride 1 and 2, "same"
              padding (fastconv.layers.Convolution(W, None, s, "same", groups=C); torch: F.conv2d with
              groups=C and padding 1, the same output size and work);
  transposed  the Keras DCGAN generator's Conv2DTranspose layers (5x5, "same", 256 -> 128 at stride 1 on 7x7,
              128 -> 64 and 64 -> 1 at stride 2) (fastconv.layers.Deconvolution(W, None, s, "same"); torch:
              F.conv_transpose2d with padding 2 and output_padding s - 1, the same output size and work).
A step is forward + backward (dx, dW; no bias, as in those networks). torch runs with its input and weights in
channels_last (the faster layout on CPU for these) and in NCHW, with the same thread count as fastconv
(--threads, default all cores). Before timing, fastconv's outputs and gradients are checked against the
float64 reference and against torch with the padding spelt out exactly (F.pad, a crop). Blocks of the
implementations alternate (--rounds blocks each, min of --repeat runs after a warm-up; see _timing.py), so
load changes on a shared host do not favour one side. Ratios are measured side by side in one run; absolute
times vary with the machine's load (the header and the footer print the load average).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from _timing import interleaved_best, machine_line

import fastconv
from fastconv import layers
from fastconv.reference import layers as ref_layers

# (name, N-independent shape): depthwise (C, H, W, stride); transposed (C_in, C_out, H, W, K, stride)
DEPTHWISE = [
    ("dw 32@28x28 s1", 32, 28, 28, 1),
    ("dw 64@28x28 s2", 64, 28, 28, 2),
    ("dw 128@14x14 s1", 128, 14, 14, 1),
    ("dw 256@7x7 s1", 256, 7, 7, 1),
]
TRANSPOSED = [
    ("deconv 256->128 7x7 s1", 256, 128, 7, 7, 5, 1),
    ("deconv 128->64 7x7 s2", 128, 64, 7, 7, 5, 2),
    ("deconv 64->1 14x14 s2", 64, 1, 14, 14, 5, 2),
]


def same_pads(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def make_cases(batch, dtype, rng):
    cases = []
    for name, C, H, W, s in DEPTHWISE:
        x = rng.standard_normal((batch, C, H, W)).astype(dtype)
        w = (rng.standard_normal((C, 1, 3, 3)) / 3).astype(dtype)
        layer = layers.Convolution(w, None, s, "same", groups=C)
        ref = ref_layers.Convolution(w.astype(np.float64), None, s, "same", 1, C)
        cases.append(("depthwise", name, x, w, s, layer, ref))
    for name, Ci, Co, H, W, K, s in TRANSPOSED:
        x = rng.standard_normal((batch, Ci, H, W)).astype(dtype)
        w = (rng.standard_normal((Ci, Co, K, K)) / np.sqrt(Ci * K * K)).astype(dtype)
        layer = layers.Deconvolution(w, None, s, "same")
        ref = ref_layers.Deconvolution(w.astype(np.float64), None, s, "same")
        cases.append(("transposed", name, x, w, s, layer, ref))
    return cases


def torch_fns(torch, kind, x, w, s, dout, channels_last, exact):
    """A callable running torch's forward + backward (dx, dW) of the case, and one returning (y, dx, dW).

    exact: fastconv's padding spelt out (an F.pad where "same" is asymmetric, a crop of the transposed
    convolution's extra row), for the check; otherwise torch's own symmetric padding with the same output size
    and the same work, for the timing (no extra pass over memory on torch's side).
    """
    F = torch.nn.functional
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt = torch.from_numpy(x).to(memory_format=fmt).requires_grad_(True)
    wt = torch.from_numpy(w).to(memory_format=fmt).requires_grad_(True)
    dt = torch.from_numpy(dout).to(memory_format=fmt)
    K = w.shape[2]
    if kind == "depthwise":
        (pt, pb), (pl, pr) = same_pads(x.shape[2], K, s), same_pads(x.shape[3], K, s)

        def fwd():
            if exact and (pt, pl) != (pb, pr):
                return F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, None, stride=s, groups=x.shape[1])
            return F.conv2d(xt, wt, None, stride=s, padding=K // 2, groups=x.shape[1])
    else:
        # Keras 'same': the transposed convolution crops (K - s)//2 rows on top and the rest at the bottom
        top = (K - s) // 2

        def fwd():
            if exact:
                y = F.conv_transpose2d(xt, wt, None, stride=s, padding=top)
                return y[:, :, : x.shape[2] * s, : x.shape[3] * s]
            return F.conv_transpose2d(xt, wt, None, stride=s, padding=(K - 1) // 2, output_padding=s - 1)

    def step():
        xt.grad = None
        wt.grad = None
        y = fwd()
        y.backward(dt)
        return y

    def result():
        y = step()
        return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()

    return step, result


def check(name, got, want, rtol):
    for key, g, r in zip(("y", "dx", "dW"), got, want):
        err = np.abs(np.asarray(g, np.float64) - r).max() / max(np.abs(r).max(), 1e-30)
        if not err <= rtol:
            sys.exit(f"MISMATCH: {name} {key} relative error {err:.2e} > {rtol:.0e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("bench_conv_family needs PyTorch (pip install torch)")
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    print(machine_line(args.threads))
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    rng = np.random.default_rng(0)
    cases = make_cases(args.batch, dtype, rng)
    rtol = 1e-9 if dtype == np.float64 else 2e-4

    # verification: fastconv against the float64 reference (two images) and against torch (the timed inputs)
    for kind, name, x, w, s, layer, ref in cases:
        dout = rng.standard_normal(layer.forward(x).shape).astype(dtype)
        small = (layer.forward(x[:2]), layer.backward(dout[:2]), layer.dW)
        r_y = ref.forward(x[:2].astype(np.float64))
        check(f"{name} vs reference", small, (r_y, ref.backward(dout[:2].astype(np.float64)), ref.dW), rtol)
        full = (layer.forward(x), layer.backward(dout), layer.dW)
        for cl in (False, True):
            _, result = torch_fns(torch, kind, x, w, s, dout, cl, exact=True)
            check(f"{name} vs torch {'channels_last' if cl else 'NCHW'}", full, result(), 1e-3)
    print("All results match. Starting benchmarks.", flush=True)

    print(f"\nbatch {args.batch}, {dtype.name}, {args.threads} threads: forward + backward (dx, dW), ms")
    head = f"{'case':<24} | {'fastconv':>9} | {'torch CL':>9} | {'torch NCHW':>10} | {'x vs torch CL':>13}"
    print(head)
    print("-" * len(head))
    for kind, name, x, w, s, layer, _ in cases:
        dout = rng.standard_normal(layer.forward(x).shape).astype(dtype)

        def fc_step(layer=layer, x=x, dout=dout):
            layer.forward(x)
            layer.backward(dout)

        t_cl, _ = torch_fns(torch, kind, x, w, s, dout, True, exact=False)
        t_nchw, _ = torch_fns(torch, kind, x, w, s, dout, False, exact=False)
        best = interleaved_best(
            {"fastconv": fc_step, "torch CL": t_cl, "torch NCHW": t_nchw},
            rounds=args.rounds,
            repeat=args.repeat,
        )
        ms = {k: v * 1e3 for k, v in best.items()}
        print(
            f"{name:<24} | {ms['fastconv']:9.3f} | {ms['torch CL']:9.3f} | {ms['torch NCHW']:10.3f} | "
            f"{ms['torch CL'] / ms['fastconv']:12.2f}x",
            flush=True,
        )
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
