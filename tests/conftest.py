"""Shared pytest fixtures, tolerances and shape tables for fastconv tests.

Every kernel test follows the same shape (STYLE.md section 3): seeded ``rng`` -> inputs in ``dtype`` ->
reference (``fastconv.reference``, computed in float64 from the same rounded inputs, so only fastconv's own
rounding is measured) -> for each implementation (``isa``, ``threads``) ->
``np.testing.assert_allclose(out, ref, **TOL[dtype], err_msg=f"{impl} {case}")``.
"""

import os
import sys
import tempfile
from pathlib import Path

import fastconv
import fastconv._cpu
import numpy as np
import pytest

# Test modules share the tables below with `from conftest import TOL, ...`. CI (.ci/run) runs pytest with
# --import-mode=importlib, which does not put tests/ on sys.path, so put it there for every import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

# ======================================================================================================
# tolerances (the only place they live)

# Comparison tolerances per dtype. float16 (stored as such, accumulated in float32 by the kernels; 11-bit
# significand, eps 9.8e-4) is STYLE.md's rtol=1e-2 for the few generic comparisons; the 16-bit kernels are
# tested in tests/test_half.py against bounds derived per op (the dtype fixture is float32 / float64).
TOL = {
    np.float16: {"rtol": 1e-2, "atol": 1e-3},
    np.float32: {"rtol": 1e-4, "atol": 1e-5},
    np.float64: {"rtol": 1e-7, "atol": 1e-9},
}

# Long dot products (GEMM, convolution, affine): float32 sums of K products of O(1) terms carry absolute
# rounding error ~K * eps32 * |term|, independent of the size of the result. Measured max abs error against
# float64: GEMM K=256..1100 randn inputs 2.5e-5..4.8e-5 (np.matmul in float32: 2.6e-5..6.0e-5, the same);
# conv backward db/dW over N*OH*OW = 8*28*28 = 6272 terms 7.5e-5. Near-zero results of such sums then fail
# atol=1e-5, so float32 uses atol=1e-4 here; float64 errors are ~1e-13 and keep TOL's values.
TOL_DOT = {
    np.float16: {"rtol": 1e-2, "atol": 1e-2},
    np.float32: {"rtol": 1e-4, "atol": 1e-4},
    np.float64: {"rtol": 1e-7, "atol": 1e-9},
}

# Whole-network gradients, fastconv float64 against the float64 reference, to ~1e-10 relative. Each
# gradient is divided by its largest reference element first, so atol is relative to the gradient's scale.
# Summation order differs (blocked GEMM vs BLAS): measured max error ~1e-15 of the scale, and ~2e-10 relative
# on the smallest elements (DeepConvNet W6). float32 networks use TOL[np.float32] on the same normalised
# gradients (measured max ~3e-7 of the scale).
MODEL_TOL_F64 = {"rtol": 1e-10, "atol": 1e-12}

# The same for the deep batch-norm networks of test_models_graph (MobileNet: 14 batch norms over 3x3 maps). Each
# layer agrees with the reference to ~4e-16 (depthwise convolution, spatial batch norm; measured), but every batch
# norm's backward subtracts per-channel means of nearly equal terms, and the chain amplifies the last-bit
# differences: measured max error 2.6e-11 (batch 4) and 7.8e-11 (batch 16) of each gradient's scale on MobileNet,
# below 1e-13 on ResNet, VGG and InceptionNet.
MODEL_TOL_BN_F64 = {"rtol": 1e-8, "atol": 1e-9}
# float32 MobileNet against the float64 reference: the same amplification (~1e5, the float64 figures above over
# float64's 1e-16) applied to float32's ~1e-7 per layer (measured: depthwise convolution and spatial batch norm each
# within 4e-7 of float64) predicts ~1e-2 of the scale; measured 7.1e-3 (12x12, batch 4) to 1.0e-2 (28x28, batch 16).
# ResNet, VGG and InceptionNet stay within 5.3e-6 and use TOL[np.float32].
MODEL_TOL_BN_F32 = {"rtol": 3e-2, "atol": 3e-2}

# Issue 16's layers (leaky ReLU, tanh, spatial batch norm, global pooling, upsampling, Add / Concat, the
# elementwise losses) in float64 against the float64 reference: ~1e-10 relative, as the issue asks. Their
# kernels sum in double and round once (measured max relative difference ~1e-15); float32 keeps TOL's entry.
TOL_F64_TIGHT = {"rtol": 1e-10, "atol": 1e-12}

# Central differences (h = 1e-4, float64) carry truncation error ~h**2 * f'''. On the tiny SimpleConvNet of
# test_models (weight_init_std 0.1) the measured max is 2.6e-7 absolute on gradients up to 0.24 and 4.5e-6
# relative; with weight_init_std 0.3 it grows to 1.5e-4 relative (curvature), so that test uses 0.1.
GRAD_TOL = {"rtol": 1e-5, "atol": 1e-7}

# Optimizer updates (test_optimizer): the fused kernels repeat the NumPy reference's operations in its order with
# its roundings, so they agree bit for bit here (measured max difference 0 over 6 steps, every optimizer, both
# dtypes). The tolerance allows a few ulps for a compiler or platform that rounds one step differently.
# float16 / bfloat16 parameters have their own bit-for-bit oracle (tests/test_half.py, test_optimizer.py).
TOL_OPTIM = {
    np.float32: {"rtol": 1e-6, "atol": 1e-7},
    np.float64: {"rtol": 1e-14, "atol": 1e-15},
}


# ======================================================================================================
# shape tables

# (N, C, H, W, FN, FH, FW, stride, pad): batch 1 and odd batches, odd and non-square images, 1x1 / 3x3 / 5x5 /
# 2x3 / 3x1 filters, stride 1/2/3, pad 0/1/2, channels 1/3/16/40, a filter larger than the unpadded image,
# filter counts off the gather tile's 16-filter slivers (1, 2, 3, 5, 17, 30), taps beyond one K block of the
# stride-1 forward and its dx (C*FH*FW = 1000 > KC = 768 f32 / 384 f64), a batch whose gradient slots hold
# several images each (N = 40 > CONV_GRAD_SLOTS = 16), single images large enough that the threads share
# one image's tiles (one of them past a K block too), and the book's MNIST shapes (DeepConvNet's first layer
# with batch 8 instead of 100, SimpleConvNet's 30@5x5), and 32 / 64 filters (and 32 channels for dx), which
# take the wider second gather tile where the ISA has one (gemm.h: gather_ukr), one past a K block, and 50
# filters and channels, which take it too with a last sliver of 18 valid filters (its padding).
CONV_CASES = [
    (1, 1, 5, 5, 1, 1, 1, 1, 0),
    (3, 3, 7, 9, 4, 3, 3, 1, 1),
    (2, 3, 8, 6, 5, 5, 5, 2, 2),
    (1, 16, 6, 7, 3, 2, 3, 1, 0),
    (5, 3, 9, 7, 2, 3, 1, 3, 1),
    (2, 1, 11, 10, 16, 3, 3, 2, 0),
    (3, 16, 5, 5, 16, 3, 3, 1, 1),
    (1, 3, 4, 4, 2, 5, 5, 1, 2),
    (2, 3, 8, 8, 3, 3, 3, 2, 0),
    (2, 16, 9, 9, 17, 5, 5, 1, 2),
    (1, 2, 1, 9, 3, 1, 3, 1, 0),
    (8, 1, 28, 28, 16, 3, 3, 1, 1),
    (2, 1, 28, 28, 30, 5, 5, 1, 0),
    (2, 40, 6, 6, 20, 5, 5, 1, 2),
    (40, 4, 6, 5, 8, 3, 3, 1, 1),
    (1, 24, 12, 12, 20, 3, 3, 1, 1),
    (1, 96, 6, 6, 20, 3, 3, 1, 1),
    (3, 8, 7, 6, 32, 3, 3, 1, 1),
    (2, 32, 5, 5, 64, 3, 3, 1, 1),
    (1, 96, 6, 6, 32, 3, 3, 1, 1),
    (2, 50, 6, 5, 50, 3, 3, 1, 1),
    (6, 8, 7, 7, 12, 1, 1, 2, 0),  # 1x1 filters: groups of several images in one GEMM (conv.cpp)
    (5, 4, 6, 6, 10, 1, 1, 1, 1),
    (4, 5, 13, 11, 6, 3, 3, 3, 2),  # stride 3 on the gather tiles, a row and a column of the padding unused
]


def conv_id(c):
    N, C, H, W, FN, FH, FW, s, p = c
    return f"x{N}x{C}x{H}x{W}-W{FN}x{FH}x{FW}-s{s}p{p}"


CONV_IDS = [conv_id(c) for c in CONV_CASES]

# (N, C, H, W, PH, PW, stride, pad): non-overlapping, overlapping (stride < pool), padded, non-square
# windows, odd sizes, windows that leave a ragged border, stride larger than the window.
POOL_CASES = [
    (2, 3, 6, 6, 2, 2, 2, 0),
    (1, 2, 7, 7, 3, 3, 2, 1),
    (2, 1, 5, 6, 2, 3, 1, 1),
    (1, 2, 5, 5, 2, 2, 2, 1),
    (3, 2, 7, 5, 3, 2, 3, 0),
    (1, 1, 9, 9, 3, 3, 1, 2),
    (2, 3, 8, 7, 3, 1, 2, 0),
    (1, 2, 6, 6, 2, 2, 3, 0),
    (8, 16, 28, 28, 2, 2, 2, 0),
]


def pool_id(c):
    N, C, H, W, PH, PW, s, p = c
    return f"x{N}x{C}x{H}x{W}-P{PH}x{PW}-s{s}p{p}"


POOL_IDS = [pool_id(c) for c in POOL_CASES]


# ======================================================================================================
# fixtures

# AVX-512 twice: its float32 GEMM has one micro-kernel tile per kind of CPU (16x16, 12x32; isa.h), and both
# run on every AVX-512 machine (emulated ones included), whichever this CPU would pick.
ISAS = ["scalar", "avx2", "avx512-16x16", "avx512-12x32"]


# Devices: every kernel, layer and model test takes the ``device`` fixture, puts its inputs there with
# ``to_device`` and brings results back with ``to_host`` before comparing them with the reference (which
# runs on the host). "cuda" is marked and skipped, with fastconv's reason, where cuda_available() is False.
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device the test's arrays live on: "cpu" (NumPy arrays) or "cuda" (CuPy arrays)."""
    return request.param


def to_device(x, device):
    """``x`` on ``device``: itself on the CPU (no copy: tests check identity and in-place updates), a CuPy
    copy on CUDA. Non-arrays (None, scalars, lists) pass through unchanged."""
    if device == "cpu" or not isinstance(x, np.ndarray):
        return x
    import cupy  # only where CUDA runs

    return cupy.asarray(x)


def to_host(x):
    """``x`` as a NumPy array, for assertions: a CUDA array is copied back; anything else is returned as is.
    """
    if hasattr(x, "__cuda_array_interface__"):
        import cupy  # only where CUDA runs

        return cupy.asnumpy(x)
    return x


def net_to_device(net, device):
    """A network of fastconv.models with its parameters on ``device``, rebound in its layers (CPU: as is)."""
    if device != "cpu":
        net.params.update({k: to_device(v, device) for k, v in net.params.items()})
        net._bind_params()
    return net


@pytest.fixture
def rng():
    """Seeded random generator, fresh for every test."""
    return np.random.default_rng(20261123)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    """Floating dtype under test."""
    return request.param


@pytest.fixture(params=ISAS)
def isa(request):
    """Each GEMM micro-kernel ISA (and AVX-512 tile) this CPU supports (skipped otherwise): yields the ISA's name
    (the tile shows in the test id); the previous ISA and tile are restored."""
    name, _, tile = request.param.partition("-")
    prev, prev_tile = fastconv._cpu.cpu_isa(), fastconv._cpu.avx512_tile()
    try:
        fastconv._cpu.set_cpu_isa(name)
    except ValueError as exc:
        pytest.skip(f"ISA {name} not available here: {exc}")
    assert fastconv._cpu.cpu_isa() == name
    if tile:
        fastconv._cpu.set_avx512_tile(tile)
    try:
        yield name
    finally:
        fastconv._cpu.set_cpu_isa(prev)
        fastconv._cpu.set_avx512_tile(prev_tile)


@pytest.fixture(params=[1, 2], ids=["t1", "t2"])
def threads(request):
    """Kernel thread count 1 or 2; the previous count is restored."""
    prev = fastconv.get_num_threads()
    fastconv.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fastconv.set_num_threads(prev)


@pytest.fixture
def num_threads():
    """Call ``num_threads(n)`` to set the kernel thread count inside a test; restored afterwards."""
    prev = fastconv.get_num_threads()
    yield fastconv.set_num_threads
    fastconv.set_num_threads(prev)


# ======================================================================================================
# markers


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None and not fastconv.cuda_available():
        pytest.skip(f"CUDA not available: {fastconv._backend.CUDA_REASON}")


# ======================================================================================================
# helpers shared by test files


def f64(*arrays):
    """The arrays as float64 copies (the reference runs in float64)."""
    out = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    return out[0] if len(out) == 1 else out


def randn(rng, shape, dtype):
    """Standard normal array of ``dtype``."""
    return rng.standard_normal(shape).astype(dtype)


# ======================================================================================================
# hypothesis profiles (tests/test_properties.py)

# FASTCONV_HYPOTHESIS picks the profile: "ci" (default) runs the full example counts, repeatably; "quick" runs
# a tenth of them (the sanitizer build, where everything is 3-10x slower). Properties set max_examples with
# n_examples(full), so both profiles keep their relative weights and "ci" keeps the counts the issue asks for.
HYPOTHESIS_SCALES = {"ci": 1.0, "quick": 0.1}
HYPOTHESIS_PROFILE = os.environ.get("FASTCONV_HYPOTHESIS", "ci")
if HYPOTHESIS_PROFILE not in HYPOTHESIS_SCALES:
    raise pytest.UsageError(
        f"FASTCONV_HYPOTHESIS={HYPOTHESIS_PROFILE!r}: expected one of {', '.join(HYPOTHESIS_SCALES)}"
    )


def n_examples(full: int) -> int:
    """max_examples for a property that runs ``full`` examples under the "ci" profile."""
    return max(10, round(full * HYPOTHESIS_SCALES[HYPOTHESIS_PROFILE]))


# Hypothesis keeps more than its example database under ./.hypothesis (a cache of constants found in the source,
# patches for failing examples): keep all of it out of the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "fastconv-hypothesis")
)

try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is only in the test extra; test_properties.py skips itself without it
    pass
else:
    # database=None: no example database (nothing written into the repository); derandomize: CI runs the same
    # examples every time (a failure prints its reproduction blob); deadline=None: timing is not a property.
    # max_examples here is only the default of properties that do not set their own through n_examples().
    for _name, _scale in HYPOTHESIS_SCALES.items():
        _hypothesis_settings.register_profile(
            _name,
            max_examples=max(10, round(100 * _scale)),
            deadline=None,
            derandomize=True,
            print_blob=True,
            database=None,
        )
    _hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


# ======================================================================================================
# real data


def no_real_data(exc) -> None:
    """Called when the real Fashion-MNIST files are missing: fail (CI installs Debian's dataset-fashion-mnist),
    or skip where FASTCONV_ALLOW_NO_DATA=1 says a machine without them is expected."""
    msg = (
        f"Fashion-MNIST not installed ({exc}); `apt-get install dataset-fashion-mnist`, "
        "or set FASTCONV_ALLOW_NO_DATA=1 to skip"
    )
    if os.environ.get("FASTCONV_ALLOW_NO_DATA") == "1":
        pytest.skip(msg)
    pytest.fail(msg)
