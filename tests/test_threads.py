"""1 and 2 threads give bit-identical results (np.array_equal) for every parallel kernel and a whole network;
a process forked after kernels ran keeps working (on one thread); the thread count is bounded.

Sizes are large enough to pass the kernels' serial thresholds, so the 2-thread run really splits the work.
The fork and limit tests run their own interpreter with a timeout, so a hang or a crash fails the test
instead of hanging or killing the suite.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import fastconv
import numpy as np
import pytest
from fastconv import _cpu, layers, ops
from fastconv.models import DeepConvNet


def run_both(num_threads, f):
    results = []
    for n in (1, 2):
        num_threads(n)
        results.append(f())
    return results


def flat(res):
    if isinstance(res, (tuple, list)):
        return [r for item in res for r in flat(item)]
    if isinstance(res, dict):
        return [r for key in sorted(res) for r in flat(res[key])]
    return [np.asarray(res)]


def assert_identical(num_threads, f, what):
    one, two = run_both(num_threads, f)
    one, two = flat(one), flat(two)
    assert len(one) == len(two)
    for i, (a, b) in enumerate(zip(one, two)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True), f"{what}: output {i} differs between 1 and 2 threads"


def test_conv(rng, isa, dtype, num_threads):
    x = rng.standard_normal((8, 16, 14, 14)).astype(dtype)
    W = rng.standard_normal((32, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    dout = rng.standard_normal((8, 32, 14, 14)).astype(dtype)
    assert_identical(num_threads, lambda: ops.conv_forward(x, W, b, 1, 1), f"{isa} conv_forward")
    assert_identical(num_threads, lambda: ops.conv_backward(x, W, dout, 1, 1), f"{isa} conv_backward")
    dout2 = rng.standard_normal((8, 32, 6, 6)).astype(dtype)
    assert_identical(num_threads, lambda: ops.conv_backward(x, W, dout2, 2, 0), f"{isa} conv_backward s2")
    assert_identical(num_threads, lambda: ops.conv_forward(x, W, b, 2, 0), f"{isa} conv_forward s2")
    # 1x1 filters: the forward multiplies groups of images side by side (as many per group as the threads
    # leave: 4 on two threads, 8 on one), stride 1 and 2
    W1 = rng.standard_normal((24, 16, 1, 1)).astype(dtype)
    for s in (1, 2):
        assert_identical(num_threads, lambda: ops.conv_forward(x, W1, None, s, 0, relu=True), f"{isa} 1x1 s{s}")
        dout1 = rng.standard_normal((8, 24, 14 // s, 14 // s)).astype(dtype)
        assert_identical(num_threads, lambda: ops.conv_backward(x, W1, dout1, s, 0), f"{isa} 1x1 s{s} backward")


@pytest.mark.parametrize(
    "shape",
    [(1, 16, 20, 20, 24), (1, 96, 10, 10, 20), (1, 32, 12, 12, 64)],
    ids=["one-image", "one-image-2-kblocks", "one-image-wide-gather"],
)
def test_conv_threads_inside_one_image(rng, isa, dtype, num_threads, shape):
    """A batch smaller than the thread count: the threads share the tiles of one image (forward, dW and the dx
    convolution), which must give the same bits as one thread. 64 filters and 32 channels take the wider
    gather tile where the ISA has one (gemm.h: gather_ukr)."""
    N, C, H, W_, FN = shape
    x = rng.standard_normal((N, C, H, W_)).astype(dtype)
    W = rng.standard_normal((FN, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    dout = rng.standard_normal((N, FN, H, W_)).astype(dtype)
    assert_identical(num_threads, lambda: ops.conv_forward(x, W, b, 1, 1), f"{isa} conv_forward N=1")
    assert_identical(num_threads, lambda: ops.conv_backward(x, W, dout, 1, 1), f"{isa} conv_backward N=1")
    # 1x1 filters: the grouped GEMM, its filters shared by the threads where the image is large enough
    # (one-image-wide-gather: 64 x 32 x 144 multiply-adds, over gemm_config::PARALLEL_MIN_MACS)
    W1 = rng.standard_normal((FN, C, 1, 1)).astype(dtype)
    assert_identical(num_threads, lambda: ops.conv_forward(x, W1, b, 1, 0, relu=True), f"{isa} 1x1 N=1")
    dout2 = rng.standard_normal((N, FN, (H + 1) // 2, (W_ + 1) // 2)).astype(dtype)  # stride 2: gather tiles too
    assert_identical(num_threads, lambda: ops.conv_forward(x, W, b, 2, 1), f"{isa} conv_forward N=1 s2")
    assert_identical(num_threads, lambda: ops.conv_backward(x, W, dout2, 2, 1), f"{isa} conv_backward N=1 s2")


def test_im2col(rng, dtype, num_threads):
    x = rng.standard_normal((8, 16, 14, 14)).astype(dtype)
    col = ops.im2col(x, 3, 3, 1, 1)
    assert_identical(num_threads, lambda: ops.im2col(x, 3, 3, 1, 1), "im2col")
    assert_identical(num_threads, lambda: ops.col2im(col, x.shape, 3, 3, 1, 1), "col2im")


def test_pool(rng, dtype, num_threads):
    x = rng.standard_normal((8, 16, 28, 28)).astype(dtype)
    out, argmax = ops.maxpool_forward(x, 3, 3, 2, 1)
    dout = rng.standard_normal(out.shape).astype(dtype)
    assert_identical(num_threads, lambda: ops.maxpool_forward(x, 3, 3, 2, 1), "maxpool_forward")
    assert_identical(
        num_threads, lambda: ops.maxpool_backward(dout, argmax, x.shape, 3, 3, 2, 1), "maxpool_backward"
    )
    assert_identical(num_threads, lambda: ops.avgpool_forward(x, 3, 3, 2, 1), "avgpool_forward")
    assert_identical(num_threads, lambda: ops.avgpool_backward(dout, x.shape, 3, 3, 2, 1), "avgpool_backward")


def test_affine(rng, isa, dtype, num_threads):
    x = rng.standard_normal((64, 1024)).astype(dtype)
    W = rng.standard_normal((1024, 100)).astype(dtype)
    b = rng.standard_normal(100).astype(dtype)
    dout = rng.standard_normal((64, 100)).astype(dtype)
    assert_identical(num_threads, lambda: ops.affine_forward(x, W, b), f"{isa} affine_forward")
    assert_identical(num_threads, lambda: ops.affine_backward(x, W, dout), f"{isa} affine_backward")


def test_activation(rng, dtype, num_threads):
    x = rng.standard_normal((64, 32, 28)).astype(dtype)
    assert_identical(num_threads, lambda: ops.relu_forward(x), "relu_forward")
    assert_identical(num_threads, lambda: ops.sigmoid_forward(x), "sigmoid_forward")
    assert_identical(num_threads, lambda: ops.relu_backward(x, ops.relu_forward(x)), "relu_backward")
    assert_identical(num_threads, lambda: ops.sigmoid_backward(x, ops.sigmoid_forward(x)), "sigmoid_backward")


def test_loss(rng, dtype, num_threads):
    x = (5 * rng.standard_normal((4096, 10))).astype(dtype)
    t = rng.integers(0, 10, size=4096)
    onehot = np.eye(10, dtype=dtype)[t]
    assert_identical(num_threads, lambda: ops.softmax(x), "softmax")
    assert_identical(num_threads, lambda: ops.softmax_cross_entropy(x, t), "softmax_cross_entropy labels")
    assert_identical(num_threads, lambda: ops.softmax_cross_entropy(x, onehot), "softmax_cross_entropy dense")
    y = ops.softmax(x)
    assert_identical(
        num_threads, lambda: ops.softmax_cross_entropy_backward(y, t), "softmax_ce_backward labels"
    )
    assert_identical(
        num_threads, lambda: ops.softmax_cross_entropy_backward(y, onehot), "softmax_ce_backward dense"
    )


def test_batchnorm(rng, dtype, num_threads):
    x = rng.standard_normal((256, 784)).astype(dtype)
    g = rng.standard_normal(784).astype(dtype)
    b = rng.standard_normal(784).astype(dtype)
    dout = rng.standard_normal((256, 784)).astype(dtype)

    def train():
        rm, rv = np.zeros(784, dtype), np.ones(784, dtype)
        return ops.batchnorm_forward_train(x, g, b, rm, rv, 0.9, 1e-6), rm, rv

    assert_identical(num_threads, train, "batchnorm_forward_train")
    _, xc, xn, std = ops.batchnorm_forward_train(x, g, b, np.zeros(784, dtype), np.ones(784, dtype))
    assert_identical(num_threads, lambda: ops.batchnorm_backward(dout, xc, xn, std, g), "batchnorm_backward")
    assert_identical(
        num_threads, lambda: ops.batchnorm_forward_infer(x, g, b, b, np.abs(g)), "batchnorm_infer"
    )


def test_dropout(rng, dtype, num_threads):
    x = rng.standard_normal((64, 10000)).astype(dtype)
    assert_identical(num_threads, lambda: ops.dropout_forward(x, 0.5, 123), "dropout_forward")
    mask = rng.random(x.shape) > 0.5
    assert_identical(num_threads, lambda: ops.dropout_backward(x, mask), "dropout_backward")


def test_deep_convnet_gradient(rng, num_threads):
    """A DeepConvNet gradient (float32, batch 8, fixed dropout seeds) is bit-identical on 1 and 2 threads."""
    x = rng.random((8, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, size=8)
    np.random.seed(0)
    net = DeepConvNet(dtype=np.float32)

    def grad():
        np.random.seed(5)  # the Dropout layers draw their keys from NumPy's generator
        return net.gradient(x, t)

    assert_identical(num_threads, grad, "DeepConvNet.gradient")


@pytest.mark.parametrize("cls", [layers.Convolution])
def test_layer_threads(rng, num_threads, cls):
    """The layer objects see a thread-count change between calls (no cached pool size)."""
    x = rng.standard_normal((8, 3, 20, 20))
    W = rng.standard_normal((8, 3, 5, 5))
    layer = cls(W, np.zeros(8), 1, 2)
    one, two = run_both(
        num_threads, lambda: (layer.forward(x), layer.backward(np.ones((8, 8, 20, 20))), layer.dW, layer.db)
    )
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


# ======================================================================================================
# fork: GNU libgomp's pool threads do not exist in a forked child; the child runs kernels on one thread

TIMEOUT = 120  # seconds per script: the kernels take well under one; a hang waits forever


def run_script(code, shell_prefix=None, env=None):
    """Run ``code`` in a fresh interpreter in its own session and return the CompletedProcess; on a timeout
    kill the whole group (a hung forked grandchild included) and fail."""
    cmd = [sys.executable, "-c", code]
    if shell_prefix is not None:  # e.g. "ulimit -v 4000000": run through bash, then exec the interpreter
        cmd = ["bash", "-c", f'{shell_prefix}; exec "$0" "$@"', *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {TIMEOUT} s (hang)\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def assert_ok(proc):
    tail = f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{tail}"


# Shared by the fork scripts: conv forward/backward and a GEMM, each large enough to run on 2 threads.
WORK = """
import os, sys, traceback, warnings
import numpy as np
import fastconv
from fastconv import _cpu, ops

def work(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 16, 14, 14)).astype(np.float32)
    W = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dout = rng.standard_normal((8, 32, 14, 14)).astype(np.float32)
    A = rng.standard_normal((200, 300))
    B = rng.standard_normal((300, 150))
    return [ops.conv_forward(x, W, b, 1, 1), *ops.conv_backward(x, W, dout, 1, 1), ops.gemm(A, B)]

def same(r1, r2):
    return len(r1) == len(r2) and all(np.array_equal(a, b) for a, b in zip(r1, r2))

def in_child(body):
    # Fork, run body() in the child; the child's exit status is 0 if body returned True, 3 if False, 4 if it
    # raised. Returns the child's exit code.
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            code = 0 if body() else 3
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
"""


def test_fork_child_runs_kernels():
    """Parent runs 2-thread kernels, then a forked child (and the child's own child) runs the same kernels
    and gets the parent's bits; the parent still runs on 2 threads afterwards."""
    proc = run_script(WORK + textwrap.dedent("""
        fastconv.set_num_threads(2)
        parent = work()

        def child():
            ok = same(work(), parent)                       # used to hang here
            info = fastconv.info()
            ok = ok and fastconv.get_num_threads() == 1 and info["forked_child"] is True
            ok = ok and info["num_threads"] == 1
            return ok and in_child(lambda: same(work(), parent)) == 0   # a grandchild too

        assert in_child(child) == 0, "child failed"
        assert fastconv.get_num_threads() == 2 and fastconv.info()["forked_child"] is False
        assert same(work(), parent), "parent after fork"
        print("ok")
    """))
    assert_ok(proc)
    assert proc.stdout.strip().endswith("ok")


def test_fork_pool_maps_kernels():
    """multiprocessing.Pool with the 'fork' start method, after the parent ran 2-thread kernels."""
    proc = run_script(WORK + textwrap.dedent("""
        import multiprocessing as mp
        fastconv.set_num_threads(2)
        expected = [work(s) for s in range(4)]
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(work, range(4))
        assert all(same(e, g) for e, g in zip(expected, got)), "pool results differ"
        print("ok")
    """))
    assert_ok(proc)
    assert proc.stdout.strip().endswith("ok")


def test_fork_child_set_num_threads():
    """In a forked child set_num_threads(n > 1) sets 1 with a RuntimeWarning (the documented behaviour),
    validates as usual, and measure_peak refuses threads > 1 with a ValueError instead of hanging."""
    proc = run_script(WORK + textwrap.dedent("""
        fastconv.set_num_threads(2)
        parent = work()
        fastconv.measure_peak(threads=2, seconds=0.01)

        def child():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fastconv.set_num_threads(2)
                assert [w.category for w in caught] == [RuntimeWarning], caught
                assert "fork" in str(caught[0].message) and "1 thread" in str(caught[0].message), caught[0]
                assert fastconv.get_num_threads() == 1
                fastconv.set_num_threads(1)                  # no warning for 1
                assert len(caught) == 1, caught
            for bad, exc in ((0, ValueError), (10**6, ValueError), (1.5, TypeError), (True, TypeError)):
                try:
                    fastconv.set_num_threads(bad)
                except exc as e:
                    assert str(e).startswith("n: "), e
                else:
                    raise AssertionError(f"set_num_threads({bad!r}) did not raise")
            _cpu.set_num_threads(2)                          # the raw binding cannot bring the hang back
            assert fastconv.get_num_threads() == 1
            try:
                fastconv.measure_peak(threads=2, seconds=0.01)
            except ValueError as e:
                assert str(e).startswith("threads: ") and "fork" in str(e), e
            else:
                raise AssertionError("measure_peak(threads=2) did not raise in a forked child")
            assert fastconv.measure_peak(threads=1, seconds=0.01) > 0
            return same(work(), parent)

        assert in_child(child) == 0, "child failed"
        print("ok")
    """))
    assert_ok(proc)
    assert proc.stdout.strip().endswith("ok")


# ======================================================================================================
# thread limit: 4 per CPU this process may run on, at least 16


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def test_thread_limit_value():
    limit = fastconv.info()["num_threads_limit"]
    assert limit == _cpu.thread_limit() == max(16, 4 * usable_cpus())
    assert 1 <= fastconv.get_num_threads() <= limit


@pytest.mark.parametrize("n", ["limit+1", 10**6, np.int64(10**6), 10**30])
def test_set_num_threads_above_limit(num_threads, n):
    limit = fastconv.info()["num_threads_limit"]
    if n == "limit+1":
        n = limit + 1
    num_threads(1)
    with pytest.raises(ValueError, match=rf"^n: number of threads must be at most {limit} \(.*\), got {n}$"):
        fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == 1  # unchanged
    num_threads(limit)
    assert fastconv.get_num_threads() == limit


def test_raw_binding_clamps(num_threads):
    """fastconv._cpu.set_num_threads (no validation in the binding) clamps to [1, limit] instead."""
    limit = _cpu.thread_limit()
    _cpu.set_num_threads(10**6)
    assert fastconv.get_num_threads() == limit
    _cpu.set_num_threads(0)
    assert fastconv.get_num_threads() == 1


needs_ulimit = pytest.mark.skipif(
    shutil.which("bash") is None or bool(fastconv.info()["sanitizers"]),
    reason="needs bash for ulimit -v; sanitizer runtimes reserve more address space than the limit",
)

BIG = """
import sys
import numpy as np
import fastconv
from fastconv import ops
try:
    fastconv.set_num_threads(10**6)
except ValueError as e:
    print("ValueError:", e)
print("threads", fastconv.get_num_threads())
x = np.ones((8, 16, 14, 14), np.float32)
out = ops.conv_forward(x, np.ones((32, 16, 3, 3), np.float32), np.zeros(32, np.float32), 1, 1)
print("ok", float(out.sum()))
"""


@needs_ulimit
def test_huge_thread_count_under_memory_limit():
    """set_num_threads(10**6), then a conv, under `ulimit -v 4000000`: used to segfault, now a ValueError."""
    proc = run_script(BIG, shell_prefix="ulimit -v 4000000")
    assert_ok(proc)
    limit = fastconv.info()["num_threads_limit"]
    assert f"ValueError: n: number of threads must be at most {limit}" in proc.stdout
    assert "\nok " in proc.stdout


@needs_ulimit
def test_omp_num_threads_env_is_bounded():
    """OMP_NUM_THREADS=1000000 at import: the default thread count is clamped to the limit, no warning."""
    env = {**os.environ, "OMP_NUM_THREADS": "1000000"}
    code = BIG.replace("fastconv.set_num_threads(10**6)", "pass")
    code = "import warnings; warnings.simplefilter('error')\n" + code
    proc = run_script(code, shell_prefix="ulimit -v 4000000", env=env)
    assert_ok(proc)
    assert f"threads {fastconv.info()['num_threads_limit']}\n" in proc.stdout
    assert "\nok " in proc.stdout
