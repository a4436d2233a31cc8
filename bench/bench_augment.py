"""ImageAugmenter on a training batch vs one DeepConvNet training step, and the Fashion-MNIST load time.

Usage:  python bench/bench_augment.py [--batch 100] [--repeat 20] [--threads N] [--no-load]

1. Checks apply_transform on exact cases first (identity, flip, whole-pixel shift, 90 degrees vs np.rot90).
2. Times ImageAugmenter(width_shift_range=0.1, height_shift_range=0.1, rotation_range=10,
   horizontal_flip=True) on a (batch, 1, 28, 28) float32 batch and fastconv's
   DeepConvNet(dtype=np.float32).gradient(x, t) on the same batch, side by side in one run (min of
   --repeat), and prints the ratio; the target is augmentation < 10% of a step.
3. Times load_fashion_mnist() (the 60,000 + 10,000 images from the IDX files, normalised) unless --no-load.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _timing import best_time, machine_line

import fastconv
from fastconv.augment import ImageAugmenter, apply_transform
from fastconv.models import DeepConvNet


def verify():
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28)).astype(np.float32)
    checks = {
        "identity": (apply_transform(x, 0, 0, 0, False), x),
        "flip": (apply_transform(x, 0, 0, 0, True), x[..., ::-1]),
        "rot90": (apply_transform(x, 0, 0, 90, False), np.rot90(x, 1, axes=(2, 3))),
    }
    moved = np.zeros_like(x)
    moved[:, :, 2:, :-3] = x[:, :, :-2, 3:]
    checks["shift(-3, +2)"] = (apply_transform(x, -3, 2, 0, False), moved)
    for name, (got, want) in checks.items():
        if not np.array_equal(got, want):
            sys.exit(f"MISMATCH: {name}")
    print("All results match. Starting benchmarks.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-load", action="store_true", help="skip timing load_fashion_mnist()")
    args = ap.parse_args()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    print(machine_line())
    verify()

    rng = np.random.default_rng(1)
    x = rng.random((args.batch, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, args.batch)
    aug = ImageAugmenter(
        width_shift_range=0.1, height_shift_range=0.1, rotation_range=10, horizontal_flip=True, seed=0
    )
    np.random.seed(0)
    net = DeepConvNet(dtype=np.float32)

    t_aug = best_time(lambda: aug(x), repeat=args.repeat, warmup=2)
    t_step = best_time(lambda: net.gradient(x, t), repeat=args.repeat, warmup=2)
    shape = f"{args.batch}x1x28x28 f32"
    print(f"{'shape':<18} | {'what':<44} | {'ms':>8}")
    print(f"{shape:<18} | {'ImageAugmenter (shift 0.1, rot 10, flip)':<44} | {t_aug * 1e3:8.2f}")
    print(f"{shape:<18} | {'DeepConvNet(float32).gradient (one step)':<44} | {t_step * 1e3:8.2f}")
    ratio = t_aug / t_step
    print(
        f"augmentation / training step = {ratio * 100:.1f}% (target < 10%): {'OK' if ratio < 0.10 else 'OVER'}"
    )

    if not args.no_load:
        from fastconv.datasets import load_fashion_mnist

        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            (x_train, _), _ = load_fashion_mnist()
            best = min(best, time.perf_counter() - t0)
        print(
            f"load_fashion_mnist() (normalize=True, flatten=True): {best:.2f} s for {len(x_train)} + 10000 images"
        )


if __name__ == "__main__":
    main()
