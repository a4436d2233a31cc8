"""The book's own ch08 DeepConvNet, ``gradient()``: its code vs the same file with only its import changed to
fastconv's layers, exactly (float64) and under ``fastconv.set_compute_dtype("float32")``, and with float32 weights.

Usage:  python bench/bench_book.py [--book PATH] [--batch 100] [--repeat 5] [--book-repeat 2] [--rounds 3]
                                   [--threads N] [--isa avx2|avx512]

--book is the book's repository (oreilly-japan/deep-learning-from-scratch): a checkout or a bare git directory
(default: $FASTCONV_BOOK, else /work/.mirror/oreilly-japan+deep-learning-from-scratch/repo). Its ``common/`` and
``ch08/deep_convnet.py`` are copied into a temporary directory outside this repository (nothing of the book is
kept), and ``from common.layers import *`` is replaced by ``from fastconv.layers import *`` in a second copy of
deep_convnet.py; nothing else changes. The networks are the file's ``DeepConvNet()`` with the same
``np.random.seed``, so the same float64 weights; "float32 weights" loads them as float32 through the book's own
``load_params``.
Before timing, with dropout off, every side's gradients are checked against the book's: exact float64 to 1e-9 of
each gradient's scale, the float32 policy and float32 weights to 1e-3 (float32 rounding through 9 layers). Then
"All results match." Times: the minimum of --repeat calls (--book-repeat for the book's slow code) per block,
blocks alternating (A B C D, then D C B A, ...) so a load change on a shared host hits every side; each keeps
its best. The load average is printed before and after: the ratios are what to read on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
from _timing import ISA_ENV, best_time, force_isa, isa_line, machine_line

ISA = force_isa()

import fastconv

DEFAULT_BOOK = "/work/.mirror/oreilly-japan+deep-learning-from-scratch/repo"
BOOK_FILES = ("common/__init__.py", "common/functions.py", "common/util.py", "common/layers.py",
              "ch08/deep_convnet.py")
BOOK_IMPORT = "from common.layers import *"
PARAM_LAYERS = (0, 2, 5, 7, 10, 12, 15, 18)  # the layer indices of W1..W8 in the book's DeepConvNet


# ======================================================================================================
# the book's files


def read_book_file(book: str, path: str) -> str:
    """A file of the book's repository: from a checkout, or from HEAD of a bare git directory."""
    plain = os.path.join(book, path)
    if os.path.isfile(plain):
        with open(plain, encoding="utf-8") as f:
            return f.read()
    return subprocess.run(["git", "-C", book, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def load_networks(book: str, tmp: str):
    """(book's DeepConvNet class, the same file on fastconv's layers): the book's files copied under tmp."""
    import importlib.util

    for path in BOOK_FILES:
        os.makedirs(os.path.join(tmp, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(tmp, path), "w", encoding="utf-8") as f:
            f.write(read_book_file(book, path))
    src = read_book_file(book, "ch08/deep_convnet.py")
    if src.count(BOOK_IMPORT) != 1:
        sys.exit(f"ch08/deep_convnet.py: expected the line {BOOK_IMPORT!r} once")
    with open(os.path.join(tmp, "ch08", "deep_convnet_fastconv.py"), "w", encoding="utf-8") as f:
        f.write(src.replace(BOOK_IMPORT, "from fastconv.layers import *"))
    sys.path.insert(0, tmp)  # the book's `common` package (its files append os.pardir, relative to the cwd)
    classes = []
    for name in ("deep_convnet", "deep_convnet_fastconv"):
        spec = importlib.util.spec_from_file_location(f"book_{name}", os.path.join(tmp, "ch08", f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        classes.append(mod.DeepConvNet)
    return classes


def make(cls, seed=0):
    np.random.seed(seed)
    return cls()


def set_dropout(net, ratio):
    for layer in net.layers:
        if hasattr(layer, "dropout_ratio"):
            layer.dropout_ratio = ratio


# ======================================================================================================
# check, then time


def check(sides, book_net, x, t):
    """Every side's gradients against the book's, dropout off."""
    for net in [book_net] + [s[1] for s in sides.values()]:
        set_dropout(net, 0.0)
    want = book_net.gradient(x, t)
    for name, (fn, net, tol) in sides.items():
        got = fn(net)
        for k, w in want.items():
            g = got[k]
            err = np.abs(g.astype(np.float64) - w).max() / max(np.abs(w).max(), 1e-300)
            if not err <= tol:
                sys.exit(f"MISMATCH {name} {k}: max error {err:.3g} of the gradient's scale > {tol}")
            if name != "float32 weights" and g.dtype != np.float64:
                sys.exit(f"MISMATCH {name} {k}: dtype {g.dtype}, expected float64")
    for net in [book_net] + [s[1] for s in sides.values()]:
        set_dropout(net, 0.5)
    print("All results match. Starting benchmarks.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", default=os.environ.get("FASTCONV_BOOK", DEFAULT_BOOK))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--book-repeat", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--isa", choices=list(ISA_ENV), default=None)
    args = parser.parse_args()
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28))
    t = rng.integers(0, 10, args.batch)
    x32 = x.astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="fastconv-book-") as tmp:
        Book, Fast = load_networks(args.book, tmp)
        book_net, exact, policy, f32 = make(Book), make(Fast), make(Fast), make(Fast)
        params = os.path.join(tmp, "params32.pkl")
        with open(params, "wb") as f:
            pickle.dump({k: v.astype(np.float32) for k, v in f32.params.items()}, f)
        f32.load_params(params)  # the book's own load_params rebinds every layer's W and b

        def under_policy(net):
            with fastconv.compute_dtype("float32"):
                return net.gradient(x, t)

        sides = {
            "fastconv float64 (import changed)": (lambda n: n.gradient(x, t), exact, 1e-9),
            'fastconv float64 + set_compute_dtype("float32")': (under_policy, policy, 1e-3),
            "float32 weights": (lambda n: n.gradient(x32, t), f32, 1e-3),
        }
        check(sides, book_net, x, t)

        print(machine_line(fastconv.get_num_threads()))
        print(isa_line(ISA))
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        fns = {"book's code (NumPy)": (lambda: book_net.gradient(x, t), args.book_repeat)}
        for name, (fn, net, _) in sides.items():
            fns[name] = ((lambda fn=fn, net=net: fn(net)), args.repeat)
        names = list(fns)
        best = dict.fromkeys(names, float("inf"))
        t0 = time.time()
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                fn, rep = fns[name]
                best[name] = min(best[name], best_time(fn, rep))
        print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
              f"({time.time() - t0:.0f} s of timing)")
    print(f"\nch08 DeepConvNet gradient(), batch {args.batch}, {args.rounds} alternating blocks")
    print(f"{'side':<50} | {'ms':>9} | x vs book")
    for name in names:
        print(f"{name:<50} | {best[name] * 1e3:9.1f} | {best[names[0]] / best[name]:8.1f}x")


if __name__ == "__main__":
    main()
