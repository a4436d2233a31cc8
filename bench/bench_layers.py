"""DeepConvNet (book ch08) on fastconv.layers vs the NumPy reference: one training step and every layer.

Usage:  python bench/bench_layers.py [--batch 100] [--repeat 5] [--threads N]

The fastconv network runs with float32 parameters; the reference network is the book's code path
(fastconv.reference.layers) with float64 parameters, the book's default. Both are built from the same
seed. Before timing, gradients are checked to agree (dropout disabled for the check), then:
  1. DeepConvNet gradient() (forward + backward, batch N x 1x28x28), min of --repeat runs;
  2. each layer's forward and backward on the activations of that step.
Ratios are measured side by side in one run; absolute times vary with the machine's load. Each timing block
starts after a short pause that lets NumPy's BLAS threads stop spinning (see _timing.py).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _timing import best_time, machine_line

import fastconv
from fastconv.models import DeepConvNet
from fastconv.reference import layers as ref_layers


def build(dtype, layers, seed=0):
    np.random.seed(seed)
    return DeepConvNet(dtype=dtype, layers=layers)


def set_dropout(net, ratio):
    for layer in net.layers:
        if hasattr(layer, "dropout_ratio"):
            layer.dropout_ratio = ratio


def verify(batch=8):
    """fastconv float32 and float64 gradients against the float64 reference (dropout off)."""
    rng = np.random.default_rng(1)
    x = rng.random((batch, 1, 28, 28))
    t = rng.integers(0, 10, batch)
    ref = build(np.float64, ref_layers)
    set_dropout(ref, 0.0)
    g_ref = ref.gradient(x, t)
    for dtype, rtol in ((np.float64, 1e-9), (np.float32, 2e-3)):
        net = build(dtype, None)
        set_dropout(net, 0.0)
        g = net.gradient(x.astype(dtype), t)
        for key in g_ref:
            scale = np.abs(g_ref[key]).max()
            err = np.abs(g[key] - g_ref[key]).max() / scale
            if err > rtol:
                sys.exit(f"MISMATCH: {np.dtype(dtype).name} {key} relative error {err:.2e} > {rtol:.0e}")
    print("All results match. Starting benchmarks.")


def layer_rows(net_fc, net_ref, x, t, repeat):
    """Time each layer's forward and backward on the activations of one step."""
    rows = []
    h_fc, h_ref = x.astype(np.float32), x.astype(np.float64)
    for i, (lf, lr) in enumerate(zip(net_fc.layers, net_ref.layers)):
        name = type(lf).__name__
        shape = h_fc.shape
        in_fc, in_ref = h_fc, h_ref
        if hasattr(lf, "dropout_ratio"):
            fwd_fc, fwd_ref = (lambda: lf.forward(in_fc, True)), (lambda: lr.forward(in_ref, True))
        else:
            fwd_fc, fwd_ref = (lambda: lf.forward(in_fc)), (lambda: lr.forward(in_ref))
        tf_fc, tf_ref = best_time(fwd_fc, repeat), best_time(fwd_ref, repeat)
        h_fc, h_ref = fwd_fc(), fwd_ref()
        d_fc = np.random.default_rng(i).standard_normal(h_fc.shape).astype(np.float32)
        d_ref = d_fc.astype(np.float64)
        tb_fc, tb_ref = best_time(lambda: lf.backward(d_fc), repeat), best_time(lambda: lr.backward(d_ref), repeat)
        rows.append((f"{i:2d} {name}", shape, tf_fc, tf_ref, tb_fc, tb_ref))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    print(machine_line())
    verify()

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28))
    t = rng.integers(0, 10, args.batch)
    nets = {
        "fastconv float32": (build(np.float32, None), x.astype(np.float32)),
        "fastconv float64": (build(np.float64, None), x),
        "reference float64 (book)": (build(np.float64, ref_layers), x),
        "reference float32": (build(np.float32, ref_layers), x.astype(np.float32)),
    }
    print(f"\nDeepConvNet gradient(), batch {args.batch} x 1x28x28, min of {args.repeat}")
    print(f"{'implementation':28s} | {'ms':>9s} | {'x vs reference float64':>22s}")
    times = {}
    for name, (net, xx) in nets.items():
        times[name] = best_time(lambda: net.gradient(xx, t), args.repeat)
    base = times["reference float64 (book)"]
    for name, sec in times.items():
        print(f"{name:28s} | {sec * 1e3:9.1f} | {base / sec:21.1f}x")

    print(f"\nper layer: fastconv float32 vs reference float64, batch {args.batch}, min of {args.repeat} (ms)")
    print(f"{'layer':18s} | {'input':18s} | {'fwd fc':>7s} | {'fwd ref':>7s} | {'x':>6s} | {'bwd fc':>7s} | "
          f"{'bwd ref':>7s} | {'x':>6s}")
    net_fc, _ = nets["fastconv float32"]
    net_ref, _ = nets["reference float64 (book)"]
    for name, shape, tf_fc, tf_ref, tb_fc, tb_ref in layer_rows(net_fc, net_ref, x, t, args.repeat):
        print(f"{name:18s} | {str(shape):18s} | {tf_fc * 1e3:7.2f} | {tf_ref * 1e3:7.2f} | {tf_ref / tf_fc:5.1f}x | "
              f"{tb_fc * 1e3:7.2f} | {tb_ref * 1e3:7.2f} | {tb_ref / tb_fc:5.1f}x")


if __name__ == "__main__":
    main()
