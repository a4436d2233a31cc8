"""fastconv.ops.gemm against np.matmul in float64, for every micro-kernel ISA.

Sizes cross every register tile (MR 4/6/8/12/16, NR 8/16/32), the cache blocks of gemm/config.h (MC 96, KC 768
for float32 and 384 for float64, NC 2048) and include 1 and primes.
"""

import itertools

import fastconv
import numpy as np
import pytest
from conftest import TOL_DOT, f64, randn, to_device, to_host
from fastconv import ops

TRANS = [(False, False), (True, False), (False, True), (True, True)]
TRANS_IDS = ["NN", "TN", "NT", "TT"]

# (M, N, K) beyond the small exhaustive sweep: tile +-1, MC/KC boundaries, a column count past NC.
SIZES = [
    (13, 17, 31),
    (33, 65, 97),
    (31, 33, 129),
    (95, 31, 255),
    (96, 32, 256),
    (97, 33, 257),
    (129, 97, 127),
    (193, 9, 128),
    (65, 129, 13),
    (257, 17, 65),
    (7, 257, 513),
    (3, 2049, 5),
    (25, 70, 800),  # float32 past KC = 768: two K blocks with edge tiles of 12 x 32 and 16 x 16
]
SIZE_IDS = [f"{m}x{n}x{k}" for m, n, k in SIZES]


def operands(rng, M, N, K, ta, tb, dtype):
    """a, b stored so that op(a) is (M, K) and op(b) is (K, N)."""
    a = randn(rng, (K, M) if ta else (M, K), dtype)
    b = randn(rng, (N, K) if tb else (K, N), dtype)
    return a, b


def oracle(a, b, ta, tb):
    a, b = f64(a, b)
    return (a.T if ta else a) @ (b.T if tb else b)


def gemm(device, a, b, out=None, **kw):
    """ops.gemm with a, b (and out) on ``device``; the result on the host (``out`` itself when given)."""
    out_d = to_device(out, device)
    res = ops.gemm(to_device(a, device), to_device(b, device), out=out_d, **kw)
    if out is None:
        return to_host(res)
    if out_d is not out:
        out[...] = to_host(out_d)
        return out
    return res


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_small_sweep(rng, device, isa, dtype, ta, tb):
    """Every M, N in 1..9 and K in {1, 2, 5, 9}: all edge-tile shapes of every micro-kernel."""
    for M, N, K in itertools.product(range(1, 10), range(1, 10), (1, 2, 5, 9)):
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        out = gemm(device, a, b, trans_a=ta, trans_b=tb)
        assert out.dtype == dtype and out.shape == (M, N)
        np.testing.assert_allclose(
            out, oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} {M}x{N}x{K} {ta} {tb}"
        )


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_sizes(rng, device, isa, dtype, ta, tb, size):
    M, N, K = size
    a, b = operands(rng, M, N, K, ta, tb, dtype)
    out = gemm(device, a, b, trans_a=ta, trans_b=tb)
    assert out.dtype == dtype and out.shape == (M, N)
    np.testing.assert_allclose(out, oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} {size} {ta} {tb}")


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -1.5), (-2.0, 0.25), (0.0, 2.0), (3.0, 0.0)])
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_alpha_beta(rng, device, isa, dtype, ta, tb, alpha, beta):
    for M, N, K in [(5, 7, 3), (37, 41, 300), (97, 33, 129)]:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        c0 = randn(rng, (M, N), dtype)
        out = c0.copy()
        got = gemm(device, a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out)
        assert got is out
        ref = alpha * oracle(a, b, ta, tb) + beta * f64(c0)
        np.testing.assert_allclose(
            out, ref, **TOL_DOT[dtype], err_msg=f"{isa} {M}x{N}x{K} a={alpha} b={beta}"
        )


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_beta_zero_ignores_nan_out(rng, device, isa, dtype, ta, tb):
    """beta == 0 means out is write-only (BLAS semantics): NaN/inf already there must not leak."""
    for M, N, K in [(1, 1, 1), (9, 33, 17), (97, 65, 257)]:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        for fill in (np.nan, np.inf):
            out = np.full((M, N), fill, dtype=dtype)
            gemm(device, a, b, trans_a=ta, trans_b=tb, alpha=1.5, beta=0.0, out=out)
            assert np.isfinite(out).all(), f"{isa} {M}x{N}x{K} {fill} leaked"
            np.testing.assert_allclose(
                out, 1.5 * oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} {M}x{N}x{K}"
            )


def test_gemm_mixed_dtype_promotes(rng, device):
    a = randn(rng, (5, 4), np.float32)
    b = randn(rng, (4, 3), np.float64)
    out = gemm(device, a, b)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, oracle(a, b, False, False), **TOL_DOT[np.float64])


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_threads_bit_identical(rng, device, isa, dtype, num_threads, ta, tb):
    """Large enough to run in parallel (> PARALLEL_MIN_MACS); 1 and 2 threads must agree bit for bit."""
    for M, N, K in [(200, 150, 300), (97, 2100, 3), (31, 33, 1100)]:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        c0 = randn(rng, (M, N), dtype)
        res = []
        for n in (1, 2):
            num_threads(n)
            out = c0.copy()
            gemm(device, a, b, trans_a=ta, trans_b=tb, alpha=0.75, beta=0.5, out=out)
            res.append(out)
        assert np.array_equal(res[0], res[1]), f"{isa} {M}x{N}x{K}"
        np.testing.assert_allclose(res[1], 0.75 * oracle(a, b, ta, tb) + 0.5 * f64(c0), **TOL_DOT[dtype])


def test_gemm_isas_agree(rng, device, dtype):
    """Every available ISA gives results within TOL of each other (and the scalar one is always there)."""
    prev = fastconv._cpu.cpu_isa()
    a, b = operands(rng, 45, 70, 300, False, False, dtype)
    outs = {}
    try:
        for name in ("scalar", "avx2", "avx512"):
            try:
                fastconv._cpu.set_cpu_isa(name)
            except ValueError:
                continue
            outs[name] = gemm(device, a, b)
    finally:
        fastconv._cpu.set_cpu_isa(prev)
    assert "scalar" in outs
    for name, out in outs.items():
        np.testing.assert_allclose(out, outs["scalar"], **TOL_DOT[dtype], err_msg=name)


@pytest.mark.parametrize("n", [5, 300])
def test_gemm_out_aliasing_input(rng, device, n):
    """out that shares memory with a or b: either the right answer (np.matmul buffers overlapping operands)
    or a ValueError naming out -- never silently wrong numbers. Small sizes are packed whole before C is
    written, so only sizes past the cache blocks (KC/MC) expose it."""
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    for beta, out_is in ((0.0, "a"), (1.0, "a"), (0.0, "b")):
        want = a @ b + beta * (a if out_is == "a" else b)
        A, B = to_device(a.copy(), device), to_device(b.copy(), device)  # out is one of them, on the device
        out = A if out_is == "a" else B
        try:
            ops.gemm(A, B, beta=beta, out=out)
        except ValueError as exc:
            assert str(exc).startswith("out"), exc
            continue
        np.testing.assert_allclose(
            to_host(out), want, **TOL_DOT[np.float64], err_msg=f"n={n} beta={beta} out is {out_is}"
        )


# ======================================================================================================
# the size sweep: 1..70 step 1 (square and three rectangular sweeps), 127-129, 255-257, 1000+,
# every transpose, 1 and 2 threads, sliced (non-contiguous) operands


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_sweep_1_to_70(rng, device, isa, dtype, threads, ta, tb):
    """M = N = K = 1..70, then M, N and K alone over 1..70 with the other two fixed at odd sizes."""
    cases = [(n, n, n) for n in range(1, 71)]
    cases += [(m, 37, 29) for m in range(1, 71)]
    cases += [(13, n, 41) for n in range(1, 71)]
    cases += [(23, 19, k) for k in range(1, 71)]
    for M, N, K in cases:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        out = gemm(device, a, b, trans_a=ta, trans_b=tb)
        np.testing.assert_allclose(
            out, oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} t{threads} {M}x{N}x{K} {ta} {tb}"
        )


BLOCK_SIZES = [(127, 128, 129), (129, 127, 128), (255, 256, 257), (257, 255, 256)]


@pytest.mark.parametrize("size", BLOCK_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in BLOCK_SIZES])
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_block_boundaries(rng, device, isa, dtype, threads, ta, tb, size):
    M, N, K = size
    a, b = operands(rng, M, N, K, ta, tb, dtype)
    c0 = randn(rng, (M, N), dtype)
    out = c0.copy()
    gemm(device, a, b, trans_a=ta, trans_b=tb, alpha=-0.5, beta=1.25, out=out)
    np.testing.assert_allclose(
        out, -0.5 * oracle(a, b, ta, tb) + 1.25 * f64(c0), **TOL_DOT[dtype], err_msg=f"{isa} t{threads} {size}"
    )


@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)], ids=["NN", "TT"])
def test_gemm_large(rng, device, isa, dtype, ta, tb):
    """Past every block size at once (KC, MC, NC 2048 with N = 2050), 2 threads."""
    for M, N, K in [(1031, 1029, 1027), (37, 2050, 300)]:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        out = gemm(device, a, b, trans_a=ta, trans_b=tb)
        np.testing.assert_allclose(
            out, oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} {M}x{N}x{K} {ta} {tb}"
        )


def test_gemm_tall_skinny_conv_shapes(rng, device, isa, dtype, num_threads):
    """The im2col GEMM shapes of a convolution (col (N*OH*OW, 144) @ W^T (144, 16), the weight gradient
    dout^T @ col over one image's 784 pixels, the column gradient), 1 and 2 threads bit-identical."""
    for M, N, K, ta, tb in [(7840, 16, 144, False, False), (16, 144, 784, True, False), (144, 784, 16, False, True)]:
        a, b = operands(rng, M, N, K, ta, tb, dtype)
        res = []
        for n in (1, 2):
            num_threads(n)
            res.append(gemm(device, a, b, trans_a=ta, trans_b=tb))
        assert np.array_equal(res[0], res[1]), f"{isa} {M}x{N}x{K}"
        np.testing.assert_allclose(res[0], oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} {M}x{N}x{K}")


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_sliced_operands(rng, device, isa, dtype, ta, tb):
    """Operands that are views with odd leading dimensions (row stride > row length), reversed and
    column-sliced: the result equals the matmul of the same views."""
    M, N, K = 45, 38, 70
    for step in (1, 2, -1):
        big_a = randn(rng, ((K, M) if ta else (M, K)), dtype)
        big_a = np.pad(big_a, ((2, 3), (5, 7)))[2:-3, 5:-7]  # leading dimension M+12 or K+12
        big_b = randn(rng, (2 * (N if tb else K), 3 + (K if tb else N) + 4), dtype)
        b = big_b[::2, 3:-4] if step == 2 else big_b[: big_b.shape[0] // 2, 3:-4]
        a = big_a[::-1] if step == -1 else big_a
        assert not a.flags.c_contiguous or not b.flags.c_contiguous
        out = gemm(device, a, b, trans_a=ta, trans_b=tb)
        np.testing.assert_allclose(out, oracle(a, b, ta, tb), **TOL_DOT[dtype], err_msg=f"{isa} step={step}")


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_gemm_fortran_operands_read_transposed(rng, isa, dtype, ta, tb):
    """A Fortran-ordered operand (a transposed view, as a tied W.T) goes to the kernel as its C-ordered .T with the
    transpose flag flipped: the bits of the C-ordered copy's product, and no copy of it is made (traced: the
    largest NumPy allocation during the call is the result)."""
    import tracemalloc

    M, N, K = 40, 300, 200
    a, b = operands(rng, M, N, K, ta, tb, dtype)
    fa, fb = np.asfortranarray(a), np.asfortranarray(b)
    assert fa.flags.f_contiguous and not fa.flags.c_contiguous and not fb.flags.c_contiguous
    want = ops.gemm(a, b, trans_a=ta, trans_b=tb)
    tracemalloc.start()
    try:
        got = ops.gemm(fa, fb, trans_a=ta, trans_b=tb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, want)
    assert peak < got.nbytes + min(a.nbytes, b.nbytes) // 2, (peak, got.nbytes)
