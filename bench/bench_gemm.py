"""GEMM: fastconv.ops.gemm vs NumPy's matmul (its BLAS) vs PyTorch's torch.mm, in GFLOP/s and % of the FMA peak.

Usage:  python bench/bench_gemm.py [--threads 1,2] [--repeat 10] [--rounds 2] [--sizes 256,512,1024,1536,2048]
                                   [--dtype float32|float64] [--quick] [--no-conv]

Shapes: square M = N = K for each of --sizes, then the 18 GEMMs of one DeepConvNet training step (book ch08,
batch --batch, 1x28x28) in the book's im2col formulation, with the book's operand layouts (transposes are
views, as in its code): col is (N*OH*OW, C*FH*FW), Wf = W.reshape(FN, -1) is (FN, C*FH*FW), dout (N*OH*OW, FN):
    fwd   col @ Wf.T      M = N*OH*OW, K = C*FH*FW, N = FN     (b transposed)
    dW    col.T @ dout    M = C*FH*FW, K = N*OH*OW, N = FN     (a transposed)
    dcol  dout @ Wf       M = N*OH*OW, K = FN,      N = C*FH*FW
Every implementation writes into a preallocated output (out=), so no one pays page faults for a fresh result.

Method: first every shape is checked against np.matmul ("All results match. Starting benchmarks."). Then,
per thread count, a fresh Python process is started with OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and
OMP_NUM_THREADS set to that count before NumPy is imported: the one way of limiting NumPy's BLAS threads
that works for every BLAS build (threadpoolctl is not a dependency; when it is installed, the child uses it
only to confirm the BLAS thread count it reports). fastconv.set_num_threads and torch.set_num_threads are
set to the same count. The child measures the FMA peak for that thread count (fastconv.measure_peak, best
ISA of the CPU, best of samples taken at the start, between shapes and at the end), then for each shape
alternates blocks of the three implementations (--rounds blocks each, min of --repeat runs after a warm-up,
a pause before each block so other libraries' spinning threads park; see _timing.py) and keeps each one's
best. GFLOP/s = 2*M*N*K / t; "% peak" divides by the measured peak of the same thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SQUARE = (256, 512, 1024, 1536, 2048)

# The book's DeepConvNet convolutions: (name, C, H, W, FN, pad) with 3x3 filters, stride 1, on 1x28x28 input.
DEEPCONV = (
    ("conv1", 1, 28, 28, 16, 1),
    ("conv2", 16, 28, 28, 16, 1),
    ("conv3", 16, 14, 14, 32, 1),
    ("conv4", 32, 14, 14, 32, 2),
    ("conv5", 32, 8, 8, 64, 1),
    ("conv6", 64, 8, 8, 64, 1),
)


def conv_cases(batch: int) -> list:
    """(label, M, N, K, trans_a, trans_b) of the 18 im2col GEMMs of one DeepConvNet step at `batch` images."""
    cases = []
    for name, C, H, W, FN, pad in DEEPCONV:
        OH, OW = H + 2 * pad - 3 + 1, W + 2 * pad - 3 + 1
        rows, cff = batch * OH * OW, C * 3 * 3
        cases.append((f"{name} fwd  col@Wf.T", rows, FN, cff, False, True))
        cases.append((f"{name} dW   col.T@dout", cff, FN, rows, True, False))
        cases.append((f"{name} dcol dout@Wf", rows, cff, FN, False, False))
    return cases


def square_cases(sizes) -> list:
    return [(f"square {s}", s, s, s, False, False) for s in sizes]


def operands(M, N, K, ta, tb, dtype, seed=0):
    """Stored a ((K, M) if ta else (M, K)) and b ((N, K) if tb else (K, N)), uniform in [-1, 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (K, M) if ta else (M, K)).astype(dtype)
    b = rng.uniform(-1, 1, (N, K) if tb else (K, N)).astype(dtype)
    return a, b


# ======================================================================================================
# verification (parent process)


def verify(cases, dtype) -> None:
    import numpy as np

    from fastconv import ops

    # the oracle is np.matmul in float64 on the same (rounded) inputs; float32 sums of up to 78400 products
    # carry ~1e-6 of the largest result (measured for np.matmul itself), float64 ones ~1e-15
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    torch = _import_torch()
    for label, M, N, K, ta, tb in cases:
        a, b = operands(M, N, K, ta, tb, dtype, seed=1)
        A, B = (a.T if ta else a), (b.T if tb else b)
        ref = np.matmul(A.astype(np.float64), B.astype(np.float64))
        scale = max(float(np.abs(ref).max()), 1e-30)
        got = {"fastconv": ops.gemm(a, b, trans_a=ta, trans_b=tb)}
        if torch is not None:
            ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
            got["torch"] = torch.mm(ta_.t() if ta else ta_, tb_.t() if tb else tb_).numpy()
        for impl, out in got.items():
            err = float(np.abs(out.astype(np.float64) - ref).max()) / scale
            if out.shape != ref.shape or out.dtype != dtype or not err <= tol:
                sys.exit(f"MISMATCH: {impl} {label} (M={M} N={N} K={K}) {out.dtype}{out.shape}: max error {err:.2e} "
                         f"of max |result| (tolerance {tol:.0e})")
    print("All results match. Starting benchmarks.", flush=True)


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ======================================================================================================
# one thread count (child process)


def child(args) -> None:
    import numpy as np

    import fastconv
    from fastconv import ops

    from _timing import interleaved_best

    t = args.child
    fastconv.set_num_threads(t)
    torch = _import_torch()
    if torch is not None:
        torch.set_num_threads(t)
    blas_threads = "set by env"
    try:
        from threadpoolctl import threadpool_info

        blas_threads = ",".join(str(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas")
    except ImportError:
        pass
    dtype = np.dtype(args.dtype)
    best_isa = fastconv.info()["simd_supported"][-1]
    peak = fastconv.measure_peak(dtype, threads=t, isa=best_isa, seconds=1.0)

    rows = []
    for label, M, N, K, ta, tb in json.loads(args.cases):
        a, b = operands(M, N, K, ta, tb, dtype)
        A, B = (a.T if ta else a), (b.T if tb else b)
        c = np.empty((M, N), dtype)
        fns = {
            "fastconv": lambda: ops.gemm(a, b, trans_a=ta, trans_b=tb, out=c),
            "numpy": lambda: np.matmul(A, B, out=c),
        }
        if torch is not None:
            ta_, tb_, tc_ = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            TA, TB = (ta_.t() if ta else ta_), (tb_.t() if tb else tb_)
            fns["torch"] = lambda: torch.mm(TA, TB, out=tc_)
        best = interleaved_best(fns, rounds=args.rounds, repeat=args.repeat)
        # the peak is sampled between shapes too and the best sample kept, as each implementation keeps its
        # best block: on a shared host a peak taken in one busy moment would make every other figure look high
        peak = max(peak, fastconv.measure_peak(dtype, threads=t, isa=best_isa, seconds=0.1))
        rows.append({"label": label, "M": M, "N": N, "K": K, "best": best})
    peak = max(peak, fastconv.measure_peak(dtype, threads=t, isa=best_isa, seconds=1.0))
    json.dump({"threads": t, "peak": peak, "peak_isa": best_isa, "blas_threads": blas_threads,
               "torch_threads": torch.get_num_threads() if torch is not None else None,
               "fastconv_threads": fastconv.get_num_threads(), "rows": rows}, sys.stdout)


# ======================================================================================================
# driver


def run_child(args, threads, cases) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "BLIS_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--dtype", args.dtype,
           "--repeat", str(args.repeat), "--rounds", str(args.rounds), "--cases", json.dumps(cases)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                       cwd=os.path.dirname(os.path.abspath(__file__)))
    if r.returncode != 0:
        sys.exit(f"benchmark process for {threads} thread(s) failed:\n{r.stderr}")
    return json.loads(r.stdout)


def print_table(res: dict) -> None:
    t, peak = res["threads"], res["peak"]
    print(f"\n{t} thread(s): peak {peak:.1f} GFLOP/s ({res['peak_isa']} FMA, measured) | fastconv threads "
          f"{res['fastconv_threads']}, NumPy BLAS threads {res['blas_threads']}, torch threads {res['torch_threads']}")
    print(f"{'shape':24s} | {'M x N x K':>18s} | {'threads':>7s} | {'impl':8s} | {'ms':>8s} | {'GFLOP/s':>7s} | "
          f"{'% peak':>6s} | {'x vs numpy':>10s}")
    for row in res["rows"]:
        flop = 2.0 * row["M"] * row["N"] * row["K"]
        mnk = f"{row['M']}x{row['N']}x{row['K']}"
        base = row["best"]["numpy"]
        for impl, sec in row["best"].items():
            gf = flop / sec * 1e-9
            print(f"{row['label']:24s} | {mnk:>18s} | {t:7d} | {impl:8s} | {sec * 1e3:8.3f} | {gf:7.1f} | "
                  f"{100 * gf / peak:5.1f}% | {base / sec:9.2f}x")
    # the step totals: the 18 conv GEMMs together, per implementation
    conv = [r for r in res["rows"] if r["label"].startswith("conv")]
    if len(conv) == 3 * len(DEEPCONV):
        flop = sum(2.0 * r["M"] * r["N"] * r["K"] for r in conv)
        base = sum(r["best"]["numpy"] for r in conv)
        for impl in conv[0]["best"]:
            sec = sum(r["best"][impl] for r in conv)
            gf = flop / sec * 1e-9
            print(f"{'all 18 conv GEMMs':24s} | {f'{flop * 1e-9:.2f} GFLOP':>18s} | {t:7d} | {impl:8s} | "
                  f"{sec * 1e3:8.3f} | {gf:7.1f} | {100 * gf / peak:5.1f}% | {base / sec:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per block (min is kept)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating blocks per implementation")
    parser.add_argument("--sizes", default=",".join(map(str, SQUARE)), help="square sizes (empty: none)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--batch", type=int, default=100, help="DeepConvNet batch for the conv shapes")
    parser.add_argument("--no-conv", action="store_true", help="skip the 18 DeepConvNet shapes")
    parser.add_argument("--quick", action="store_true", help="sizes 256,1024, 3 repeats, 1 round (smoke run)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cases", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    if args.quick:
        args.sizes, args.repeat, args.rounds = "256,1024", 3, 1
    try:
        threads = [int(s) for s in args.threads.split(",") if s.strip()]
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--threads and --sizes take comma-separated integers")
    if not threads or min(threads) < 1 or (sizes and min(sizes) < 1) or args.repeat < 1 or args.rounds < 1:
        parser.error("--threads, --sizes, --repeat and --rounds must be >= 1")
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    cases = square_cases(sizes) + ([] if args.no_conv else conv_cases(args.batch))

    from _timing import machine_line

    print(machine_line(threads=args.threads), flush=True)
    print(f"dtype {args.dtype}; min of {args.repeat} runs x {args.rounds} alternating blocks per implementation; "
          f"NumPy's BLAS threads set by environment variables in one process per thread count", flush=True)
    import numpy as np

    verify(cases, np.dtype(args.dtype))
    for t in threads:
        print_table(run_child(args, t, cases))


if __name__ == "__main__":
    main()
