"""fastconv.keras against Keras 3 itself: the Keras tutorial's CNN, one epoch of Fashion-MNIST.

The same model code (the tutorial's Sequential convnet, Adam, categorical cross-entropy, batch 64) runs on
``fastconv.keras`` and on Keras 3 with its PyTorch backend (``KERAS_BACKEND=torch``, the local torch), each in
its own process with the same thread count (fastconv's OpenMP threads / torch's intra-op threads). Each trains
one epoch on the 60,000 real training images and is then evaluated on the 10,000 test images. One run of
each; the epoch time includes everything ``fit`` does (batching, progress bookkeeping). To compare
accuracies rather than random draws, both sides start from the same weights (Glorot uniform, drawn once here)
and see the images in the same shuffled order (shuffled once here, ``fit(shuffle=False)`` for one epoch); only
their dropout masks differ. The table also gives each epoch's CPU time and the 1-minute load average before
and after it: on a shared machine the ratio of two runs moves with what the other tenants run.

    python bench/bench_keras.py                    # both, 2 threads, full epoch
    python bench/bench_keras.py --only fastconv    # one side
    python bench/bench_keras.py --train 6400       # a quick check on fewer images

Keras is a peer for this benchmark only (``pip install torch keras``); fastconv never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tutorial_model(K):
    """The Keras tutorial's MNIST convnet, in the tutorial's words, on the Keras module ``K``."""
    model = K.models.Sequential()
    model.add(K.layers.Input((28, 28, 1)))
    model.add(K.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"))
    model.add(K.layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(K.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(K.layers.Dropout(0.25))
    model.add(K.layers.Flatten())
    model.add(K.layers.Dense(128, activation="relu"))
    model.add(K.layers.Dropout(0.5))
    model.add(K.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def worker(side: str, threads: int, train: int, epochs: int, batch: int, start: str) -> dict:
    """Train and evaluate on one side from the shared start (weights, order); returns the measurements."""
    import numpy as np

    if side == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
        import torch

        torch.set_num_threads(threads)
        import keras as K

        version = f"Keras {K.__version__} (torch {torch.__version__}, {torch.get_num_threads()} threads)"
    else:
        import fastconv
        from fastconv import keras as K

        fastconv.set_num_threads(threads)
        simd = fastconv.info()["simd"]
        version = f"fastconv {fastconv.__version__} ({fastconv.get_num_threads()} threads, {simd})"
    from fastconv.keras.datasets import fashion_mnist  # the same arrays for both sides

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    with np.load(start) as f:
        order = f["order"]
        weights = [f[f"w{i}"] for i in range(len(f.files) - 1)]
    x_train = x_train[order].reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    y_train = np.eye(10, dtype="float32")[y_train[order]]
    y_test = np.eye(10, dtype="float32")[y_test]
    K.utils.set_random_seed(0)
    model = tutorial_model(K)
    model.set_weights(weights)
    load0, cpu0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=2, shuffle=epochs > 1)
    fit_s, fit_cpu, load1 = time.perf_counter() - t0, time.process_time() - cpu0, os.getloadavg()[0]
    t0 = time.perf_counter()
    loss, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    eval_s = time.perf_counter() - t0
    return {
        "side": side,
        "version": version,
        "epoch_s": fit_s / epochs,
        "examples_per_s": train * epochs / fit_s,
        "test_accuracy": float(acc),
        "test_loss": float(loss),
        "eval_s": eval_s,
        "cpu_s": fit_cpu / epochs,
        "load": f"{load0:.1f} -> {load1:.1f}",
        "params": model.count_params(),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", type=int, default=60000, help="training images (default: all 60,000)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--only", choices=["fastconv", "keras"])
    p.add_argument("--worker", choices=["fastconv", "keras"], help=argparse.SUPPRESS)
    p.add_argument("--start", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        res = worker(a.worker, a.threads, a.train, a.epochs, a.batch_size, a.start)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    # the shared start: initial weights (fastconv.keras's Glorot uniform, Keras' layouts), the batch order
    import tempfile

    import numpy as np
    from fastconv import keras as fk

    fk.utils.set_random_seed(0)
    start = os.path.join(tempfile.mkdtemp(prefix="bench_keras."), "start.npz")
    order = np.random.default_rng(0).permutation(60000)[: a.train]
    np.savez(start, order=order, **{f"w{i}": w for i, w in enumerate(tutorial_model(fk).get_weights())})
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; {a.threads} threads per side; {a.train} training "
        "images, "
        f"{a.epochs} epoch(s), batch {a.batch_size}",
        flush=True,
    )
    results = {}
    for side in [a.only] if a.only else ["fastconv", "keras"]:
        print(f"=== {side}", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            side,
            "--threads",
            str(a.threads),
            "--train",
            str(a.train),
            "--epochs",
            str(a.epochs),
            "--batch-size",
            str(a.batch_size),
            "--start",
            start,
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            print(f"{side}: failed (exit code {proc.returncode})")
            continue
        for ln in proc.stdout.splitlines():
            if not ln.startswith("RESULT "):
                print("  " + ln)
        results[side] = json.loads(lines[-1][len("RESULT ") :])
    print()
    print("| side | epoch s | examples/s | test accuracy | CPU s | load average | version |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in results.values():
        print(
            f"| {r['side']} | {r['epoch_s']:.1f} | {r['examples_per_s']:,.0f} | "
            f"{100 * r['test_accuracy']:.2f}% | {r['cpu_s']:.0f} | {r['load']} | {r['version']} |"
        )
    if len(results) == 2:
        f, k = results["fastconv"], results["keras"]
        print(
            f"\nfastconv.keras epoch: {k['epoch_s'] / f['epoch_s']:.2f}x faster than Keras; test accuracy "
            f"{100 * (f['test_accuracy'] - k['test_accuracy']):+.2f} points"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
