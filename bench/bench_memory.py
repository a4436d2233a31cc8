"""Peak extra memory of one convolution forward + backward (DeepConvNet's conv2 by default) vs its column matrix.

Usage:  python bench/bench_memory.py [--batch 100] [--dtype float32] [--threads N] [--json]

Run in a fresh process so the kernels' per-thread arenas start empty. Two parts are measured:
  * NumPy buffers allocated during forward + backward (tracemalloc peak; NumPy reports its data buffers to it):
    the output, dx, dW, db and any temporary the Python layer makes;
  * the kernels' own scratch (fastconv._cpu.workspace_bytes()['peak']: per-thread arenas plus per-call packed
    operands, all threads).
Their sum is compared with the size of the im2col column matrix (N*OH*OW x C*FH*FW) a plain im2col + GEMM
implementation would allocate (45 MB for conv2 at batch 100 in float32). The issue asks for less than half.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc

import numpy as np

import fastconv
from fastconv import layers
from fastconv.util import conv_output_size


def measure(batch: int = 100, C: int = 16, H: int = 28, FN: int = 16, F: int = 3, pad: int = 1,
            dtype=np.float32) -> dict:
    """Bytes used by one Convolution forward + backward; see the module docstring."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, C, H, H)).astype(dtype)
    W = (0.1 * rng.standard_normal((FN, C, F, F))).astype(dtype)
    b = np.zeros(FN, dtype=dtype)
    conv = layers.Convolution(W, b, stride=1, pad=pad)
    OH = conv_output_size(H, F, 1, pad)
    dout = rng.standard_normal((batch, FN, OH, OH)).astype(dtype)
    cpu = fastconv._cpu
    scratch_before = cpu.workspace_bytes()["current"]
    cpu.reset_workspace_peak()
    tracemalloc.start()
    out = conv.forward(x)
    dx = conv.backward(dout)
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scratch_peak = cpu.workspace_bytes()["peak"]
    itemsize = np.dtype(dtype).itemsize
    col = batch * OH * OH * C * F * F * itemsize
    del out, dx
    return {
        "shape": f"x ({batch},{C},{H},{H}) W ({FN},{C},{F},{F}) pad {pad}",
        "dtype": np.dtype(dtype).name,
        "threads": fastconv.get_num_threads(),
        "numpy_peak": numpy_peak,
        "scratch_before": scratch_before,
        "scratch_peak": scratch_peak,
        "total": numpy_peak + scratch_peak,
        "col_bytes": col,
        "ratio": (numpy_peak + scratch_peak) / col,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    r = measure(batch=args.batch, dtype=np.dtype(args.dtype))
    if args.json:
        print(json.dumps(r))
        return
    mb = 1e6
    print(f"conv forward + backward, {r['shape']}, {r['dtype']}, {r['threads']} threads")
    print(f"  NumPy buffers (tracemalloc peak)   {r['numpy_peak'] / mb:8.2f} MB  (out, dx, dW, db)")
    print(f"  kernel scratch (workspace peak)    {r['scratch_peak'] / mb:8.2f} MB")
    print(f"  total                              {r['total'] / mb:8.2f} MB")
    print(f"  column matrix (N*OH*OW x C*FH*FW)  {r['col_bytes'] / mb:8.2f} MB  -> total is {r['ratio']:.2f}x of it "
          f"(bound: < 0.5x)")


if __name__ == "__main__":
    main()
