"""SpatialBatchNormalization and Upsampling (issue 16) on fastconv.layers vs the NumPy reference vs PyTorch.

Usage:  python bench/bench_spatial_layers.py [--repeat 5] [--rounds 3] [--threads N] [--no-torch] [--quick]

Shapes are the activations these layers see in the issue's networks on 28x28 Fashion-MNIST: ResNet-20's three
stages at batch 128 (16@28x28, 32@14x14, 64@7x7), the Keras DCGAN generator's batch norms at batch 256
(256@7x7, 128@7x7, 64@14x14) and 2x upsamplings of 14x14 and 7x7 maps (nearest, and bilinear with
align_corners=False).

Implementations, float32 unless named:
  fastconv                 fastconv.layers.SpatialBatchNormalization / Upsampling (C++ kernels);
  reference float64        fastconv.reference.layers (plain NumPy), the "x vs reference" baseline;
  torch NCHW, torch channels_last
                           torch.nn.BatchNorm2d (training mode) and F.interpolate on the same data, the input
                           converted once with memory_format=torch.channels_last for the second.
Each row times the forward alone ("fwd") and a forward followed by the backward ("fwd+bwd": for torch,
``out.backward(dout)`` with the input requiring its gradient, so dx, and for batch norm dgamma and dbeta, are
computed as fastconv computes them). Before timing, every implementation's forward and backward are checked
against the float64 reference. fastconv and torch run with the same thread count (--threads, default all
cores). Measurement blocks alternate between implementations (--rounds blocks, min of --repeat runs each, see
_timing.py), so load changes on a shared host do not favour one side; absolute times vary, ratios are measured
side by side in one run.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from _timing import interleaved_best, machine_line

import fastconv
from fastconv import layers
from fastconv.reference import layers as ref_layers

REF, FC, T_NCHW, T_CL = "reference float64", "fastconv", "torch NCHW", "torch channels_last"

# (label, shape) of the batch-norm inputs and (label, shape, scale, mode) of the upsampling inputs
BN_CASES = [
    ("ResNet stage 1", (128, 16, 28, 28)),
    ("ResNet stage 2", (128, 32, 14, 14)),
    ("ResNet stage 3", (128, 64, 7, 7)),
    ("DCGAN gen 256@7x7", (256, 256, 7, 7)),
    ("DCGAN gen 128@7x7", (256, 128, 7, 7)),
    ("DCGAN gen 64@14x14", (256, 64, 14, 14)),
]
UP_CASES = [
    ("nearest 14->28", (128, 32, 14, 14), 2, "nearest"),
    ("bilinear 14->28", (128, 32, 14, 14), 2, "bilinear"),
    ("nearest 7->14", (128, 64, 7, 7), 2, "nearest"),
    ("bilinear 7->14", (128, 64, 7, 7), 2, "bilinear"),
]


def import_torch(disabled: bool):
    if disabled:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


# ======================================================================================================
# the implementations: each case gives {name: (fwd, fwd_bwd, result)} where result() returns (out, dx)


def bn_impls(torch, shape, rng, with_ref: bool) -> dict:
    C = shape[1]
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
    dout = rng.standard_normal(shape).astype(np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(C)).astype(np.float32)
    impls = {}

    fc = layers.SpatialBatchNormalization(gamma, beta)

    def fc_both():
        out = fc.forward(x)
        return out, fc.backward(dout)

    impls[FC] = (lambda: fc.forward(x), fc_both, fc_both)

    if with_ref:
        x64, d64 = x.astype(np.float64), dout.astype(np.float64)
        ref = ref_layers.SpatialBatchNormalization(gamma.astype(np.float64), beta.astype(np.float64))

        def ref_both():
            out = ref.forward(x64)
            return out, ref.backward(d64)

        impls[REF] = (lambda: ref.forward(x64), ref_both, ref_both)

    if torch is not None:
        for name, cl in ((T_NCHW, False), (T_CL, True)):
            bn = torch.nn.BatchNorm2d(C, eps=1e-5)
            with torch.no_grad():
                bn.weight.copy_(torch.from_numpy(gamma))
                bn.bias.copy_(torch.from_numpy(beta))
            impls[name] = torch_impl(torch, bn, x, dout, cl)
    return impls


def up_impls(torch, shape, scale, mode, rng, with_ref: bool) -> dict:
    x = rng.standard_normal(shape).astype(np.float32)
    out_shape = (shape[0], shape[1], shape[2] * scale, shape[3] * scale)
    dout = rng.standard_normal(out_shape).astype(np.float32)
    impls = {}

    fc = layers.Upsampling(scale, mode)

    def fc_both():
        out = fc.forward(x)
        return out, fc.backward(dout)

    impls[FC] = (lambda: fc.forward(x), fc_both, fc_both)

    if with_ref:
        x64, d64 = x.astype(np.float64), dout.astype(np.float64)
        ref = ref_layers.Upsampling(scale, mode)

        def ref_both():
            out = ref.forward(x64)
            return out, ref.backward(d64)

        impls[REF] = (lambda: ref.forward(x64), ref_both, ref_both)

    if torch is not None:
        kw = {"align_corners": False} if mode == "bilinear" else {}

        def up(t):
            return torch.nn.functional.interpolate(t, scale_factor=scale, mode=mode, **kw)

        for name, cl in ((T_NCHW, False), (T_CL, True)):
            impls[name] = torch_impl(torch, up, x, dout, cl)
    return impls


def torch_impl(torch, module, x, dout, cl: bool):
    fmt = torch.channels_last if cl else torch.contiguous_format
    xt = torch.from_numpy(x).to(memory_format=fmt).requires_grad_(True)
    dt = torch.from_numpy(dout)

    def fwd():
        with torch.no_grad():
            return module(xt)

    def both():
        xt.grad = None
        out = module(xt)
        out.backward(dt)
        return out

    def result():
        out = both()
        return out.detach().contiguous().numpy(), xt.grad.contiguous().numpy()

    if cl:  # the upstream gradient in the output's layout, converted once, outside the timed calls
        dt = dt.to(memory_format=torch.channels_last)
    return fwd, both, result


# ======================================================================================================
# verify, time, print


def verify(torch, rng) -> None:
    """Every implementation's out and dx against the float64 reference (float32 tolerances)."""
    cases = [("bn", s) for _, s in BN_CASES[:1] + BN_CASES[3:4]] + [("up", c) for c in UP_CASES[:2]]
    for kind, c in cases:
        if kind == "bn":
            impls, what = bn_impls(torch, c, np.random.default_rng(1), True), f"SpatialBN {c}"
        else:
            impls, what = up_impls(torch, c[1], c[2], c[3], np.random.default_rng(1), True), f"{c[0]} {c[1]}"
        want = impls[REF][2]()
        for name, (_, _, result) in impls.items():
            got = result()
            for part, g, w in zip(("out", "dx"), got, want):
                scale = max(1.0, float(np.abs(w).max()))
                err = float(np.abs(np.asarray(g, np.float64) - w).max()) / scale
                if not err < 1e-4:
                    raise SystemExit(f"MISMATCH {what} {name} {part}: max error {err:.3g} of the scale")
    print("All results match. Starting benchmarks.")


def time_case(impls: dict, args) -> dict:
    fwd = interleaved_best({n: f for n, (f, _, _) in impls.items()}, args.rounds, args.repeat)
    both = interleaved_best({n: b for n, (_, b, _) in impls.items()}, args.rounds, args.repeat)
    return {"fwd": fwd, "fwd+bwd": both}


def ratio(times: dict, other: str) -> str:
    if other not in times:
        return "-"
    return f"{times[other] / times[FC]:.2f}x"


def print_table(title: str, rows: list) -> None:
    print(f"\n{title}")
    print(f"{'case':20s} | {'shape':18s} | {'pass':7s} | {'fastconv ms':>11s} | {'torch NCHW':>10s} | "
          f"{'torch CL':>9s} | {'ref f64':>8s} | {'vs torch CL':>11s} | {'vs NCHW':>7s} | {'vs ref':>8s}")
    for label, shape, res in rows:
        for part, t in res.items():
            def ms(k, t=t):
                return f"{t[k] * 1e3:.3f}" if k in t else "-"

            print(f"{label:20s} | {str(shape):18s} | {part:7s} | {ms(FC):>11s} | {ms(T_NCHW):>10s} | "
                  f"{ms(T_CL):>9s} | {ms(REF):>8s} | {ratio(t, T_CL):>11s} | {ratio(t, T_NCHW):>7s} | "
                  f"{ratio(t, REF):>8s}")
    print("(ratios: the other implementation's time / fastconv's; > 1 means fastconv is faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per block (min is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per implementation")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fastconv and torch (default: all cores)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    parser.add_argument("--no-ref", action="store_true", help="leave the NumPy reference out of the timings")
    parser.add_argument("--quick", action="store_true", help="2 repeats x 1 round (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.rounds = 2, 1
    if args.repeat < 1 or args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--repeat, --rounds and --threads must be >= 1")
    threads = args.threads or os.cpu_count() or 1
    fastconv.set_num_threads(threads)
    torch = import_torch(args.no_torch)
    if torch is not None:
        torch.set_num_threads(threads)
    print(machine_line(threads=threads) + (f" | torch threads {torch.get_num_threads()}" if torch else ""))
    rng = np.random.default_rng(0)
    verify(torch, rng)
    how = f"float32, min of {args.repeat} runs x {args.rounds} alternating blocks"

    rows = []
    for label, shape in BN_CASES:
        rows.append((label, shape, time_case(bn_impls(torch, shape, rng, not args.no_ref), args)))
    print_table(f"SpatialBatchNormalization (training mode), {how}", rows)

    rows = []
    for label, shape, scale, mode in UP_CASES:
        impls = up_impls(torch, shape, scale, mode, rng, not args.no_ref)
        rows.append((label, shape, time_case(impls, args)))
    print_table(f"Upsampling, {how}", rows)


if __name__ == "__main__":
    main()
