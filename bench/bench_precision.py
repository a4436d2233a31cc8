"""Reduced precision against float32, side by side in one run: DeepConvNet's training step and inference memory.

Usage:  python bench/bench_precision.py [--batch 100] [--rounds 3] [--repeat 5] [--threads N] [--isa avx2|avx512]
                                        [--mem-batch 1000] [--json]

1. Training step (batch 100 by default): ``gradient()`` plus the update, as ``Trainer`` does it for each
   precision: float32 with Adam on the parameters; float16 and bfloat16 as mixed precision
   (:mod:`fastconv.precision`: forward and backward in the reduced dtype, gradients unscaled to float32, Adam on
   the float32 master weights, the masters rounded back into the network). The three alternate in blocks
   (``_timing.interleaved_best``), so a change of load hits all of them; each keeps its best block.
2. Peak memory of inference (``predict`` of a batch of 1000 in inference mode), each dtype in a fresh child
   process so the kernels' arenas start empty: NumPy's buffers (tracemalloc peak, the input included) plus the
   kernels' scratch (``fastconv._cpu.workspace_bytes()['peak']``).

3. With ``--book-params PATH`` (the book's pretrained ``ch08/deep_convnet_params.pkl``, read through fastconv's
   safe reader): the share of test images on which DeepConvNet in float16 (and bfloat16) predicts the class
   float32 predicts, as the book's ``half_float_network.py`` experiment; on MNIST where it is installed, else on
   Fashion-MNIST's test images (only agreement is measured, not accuracy).

Issue 15's bars: the reduced-precision step >= 1.5x float32's on a CPU with AVX512_BF16 or AVX512_FP16, >= 1.0x
elsewhere; float16 inference peak <= 0.55x of float32's.
"""

from __future__ import annotations

import sys

from _timing import ISA_ENV, force_isa, interleaved_best, isa_line, machine_line

ISA = force_isa()

import argparse
import json
import subprocess

import fastconv
import numpy as np
from fastconv import precision
from fastconv.models import DeepConvNet
from fastconv.optimizer import Adam

NAMES = ("float32", "float16", "bfloat16")


def make_step(name: str, batch: int):
    """A closure doing one training step of DeepConvNet in precision ``name`` (same weights, rounded)."""
    dtype = precision.dtype_of(name)
    rng = np.random.default_rng(0)
    net = DeepConvNet(dtype=dtype)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32).astype(dtype)
    t = rng.integers(0, 10, batch)
    opt = Adam(lr=1e-4)
    if name == "float32":
        def step():
            opt.update(net.params, net.gradient(x, t))
        return step
    mp = precision.MixedPrecision(net.params)

    def step():
        net.last_layer.loss_scale = mp.loss_scale
        mp.step(net.params, mp.unscale(net.gradient(x, t)), opt.update)
    return step


CHILD = """
import json, sys, tracemalloc
import numpy as np
import fastconv
from fastconv import precision
from fastconv.models import DeepConvNet
name, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if threads:
    fastconv.set_num_threads(threads)
dtype = precision.dtype_of(name)
net = DeepConvNet(dtype=dtype)
net.predict(np.zeros((2, 1, 28, 28), dtype), train_flg=False)  # first call: lazy set-up out of the count
cpu = fastconv._cpu
cpu.reset_workspace_peak()
tracemalloc.start()
x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32).astype(dtype)
y = net.predict(x, train_flg=False)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"numpy_peak": peak, "scratch_peak": cpu.workspace_bytes()["peak"], "out": str(y.dtype)}))
"""


def inference_memory(name: str, batch: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(batch), str(threads or 0)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    r["total"] = r["numpy_peak"] + r["scratch_peak"]
    return r


def book_agreement(path: str) -> dict:
    """Argmax agreement of the book's pretrained DeepConvNet in float16 / bfloat16 with float32."""
    from fastconv import datasets

    try:
        (_, _), (xt, _) = datasets.load_mnist(normalize=True, flatten=False, download=False)
        data = "MNIST test images"
    except (OSError, ValueError, RuntimeError):
        (_, _), (xt, _) = datasets.load_fashion_mnist(normalize=True, flatten=False)
        data = "Fashion-MNIST test images (MNIST is not installed)"
    ref = DeepConvNet(dtype=np.float32)
    ref.load_params(path)
    y32 = np.argmax(ref.predict(xt, train_flg=False), axis=1)
    out = {"data": data, "images": len(xt)}
    for name in ("float16", "bfloat16"):
        dtype = precision.dtype_of(name)
        net = DeepConvNet(dtype=dtype)
        net.load_params(path)
        y = np.argmax(net.predict(xt.astype(dtype), train_flg=False).astype(np.float32), axis=1)
        out[name] = float(np.mean(y == y32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per precision")
    parser.add_argument("--repeat", type=int, default=5, help="steps timed per block")
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all cores)")
    parser.add_argument("--isa", choices=sorted(ISA_ENV), help="cap fastconv at this instruction set")
    parser.add_argument("--mem-batch", type=int, default=1000, help="inference batch of the memory part")
    parser.add_argument("--book-params", metavar="PATH", help="the book's ch08 deep_convnet_params.pkl")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    steps = {name: make_step(name, args.batch) for name in NAMES}
    times = interleaved_best(steps, rounds=args.rounds, repeat=args.repeat)
    mem = {name: inference_memory(name, args.mem_batch, args.threads) for name in NAMES}
    info = fastconv.info()
    result = {
        "machine": machine_line(args.threads),
        "isa": isa_line(ISA),
        "native": {"cpu": info["reduced_precision_cpu"], "used": info["reduced_precision_native"]},
        "step_ms": {k: 1e3 * v for k, v in times.items()},
        "speedup": {k: times["float32"] / v for k, v in times.items()},
        "memory": mem,
        "memory_ratio": {k: mem[k]["total"] / mem["float32"]["total"] for k in mem},
        "book_agreement": book_agreement(args.book_params) if args.book_params else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(result["isa"], "| 16-bit arithmetic the CPU has:", ", ".join(result["native"]["cpu"]) or "none",
          "| used by fastconv:", ", ".join(result["native"]["used"]) or "none (converted to float32)")
    print(f"\nDeepConvNet training step, batch {args.batch} (best of {args.rounds} alternating blocks of "
          f"{args.repeat}):")
    for k in NAMES:
        print(f"  {k:9s} {result['step_ms'][k]:8.2f} ms   {result['speedup'][k]:5.2f}x float32")
    print(f"\nDeepConvNet inference, batch {args.mem_batch}: peak memory (NumPy buffers + kernel scratch)")
    for k in NAMES:
        m = mem[k]
        print(f"  {k:9s} {m['total'] / 1e6:8.2f} MB  (NumPy {m['numpy_peak'] / 1e6:.2f} + scratch "
              f"{m['scratch_peak'] / 1e6:.2f})  {result['memory_ratio'][k]:.2f}x float32")
    agree = result["book_agreement"]
    if agree is not None:
        print(f"\nThe book's pretrained DeepConvNet, {agree['images']:,} {agree['data']}: argmax equal to float32's")
        for k in ("float16", "bfloat16"):
            print(f"  {k:9s} {100 * agree[k]:6.2f}%")


if __name__ == "__main__":
    main()
