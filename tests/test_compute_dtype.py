"""The compute policy, ``fastconv.set_compute_dtype``: float64 arrays computed in float32 / float16 / bfloat16
inside the kernels of the ops of ``fastconv.precision.POLICY_OPS``, results and gradients in float64.

Bounds, derived rather than tuned (the same reasoning as tests/test_half.py):

* "float32": every input is rounded to float32 (relative error <= u32 = 2**-24 each), a product of two rounded
  inputs is rounded at most once more (none with FMA), and a sum of K such products is accumulated in float32 in
  some order, within gamma_K = K u32 / (1 - K u32) of the exact sum. So a result is within
  ``gamma(K + 3) * sum|a||b|`` of the exact float64 one (a bias counts as one more term); the float32 result is
  widened to float64 exactly, with no rounding of its own.
* "float16" / "bfloat16": the policy kernels are the 16-bit kernels on float64 storage: inputs rounded once to
  the 16-bit type (to nearest even, from the double itself), float32 arithmetic, results rounded to the 16-bit
  type. So they give, bit for bit, the float16 / bfloat16 kernels' results on the rounded inputs. The rounding
  is checked against NumPy's float64 -> float16 cast (correctly rounded) and, for bfloat16, against a rounding
  written here from the definition (ml_dtypes' own float64 cast rounds through float32, twice).
"""

import importlib.util

import fastconv
import numpy as np
import pytest
from fastconv import layers, ops, optimizer, precision
from fastconv.reference import layers as ref_layers

U32 = 2.0**-24
HAVE_BF16 = importlib.util.find_spec("ml_dtypes") is not None
POLICIES = ["float32", "float16", "bfloat16"]


@pytest.fixture(autouse=True)
def exact_afterwards():
    """Every test starts and ends with the default (exact float64) policy."""
    assert fastconv.get_compute_dtype() is None
    yield
    fastconv.set_compute_dtype(None)


@pytest.fixture(params=["float16", "bfloat16"])
def half_policy(request):
    """A 16-bit policy; bfloat16 needs ml_dtypes for the kernels it is compared with."""
    if request.param == "bfloat16":
        pytest.importorskip("ml_dtypes")
    return request.param


def gamma(k):
    """The standard bound on the relative error of k float32 roundings."""
    return k * U32 / (1 - k * U32)


def assert_within(got, ref, tol, msg=""):
    """float64 results, each |got - ref| <= tol."""
    assert got.dtype == np.float64, msg
    assert got.shape == ref.shape, msg
    err = np.abs(got - ref)
    tol = np.broadcast_to(tol, ref.shape)
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else 0
    assert np.all(err <= tol), f"{msg}: |err| {err[worst]:.3g} > bound {tol[worst]:.3g} (ref {ref[worst]:.6g})"


def round_bf16(d):
    """float64 -> bfloat16, rounded once to nearest even: 8 significant bits of d's own binary expansion."""
    import ml_dtypes

    m, e = np.frexp(d)  # d = m * 2**e, 0.5 <= |m| < 1 (normal range: enough for normally distributed values)
    r = np.ldexp(np.round(np.ldexp(m, 8)), e - 8)  # np.round: ties to even
    return r.astype(np.float32).astype(ml_dtypes.bfloat16)  # exact: r has 8 significant bits


def rounded(a, policy):
    """The 16-bit array a 16-bit policy computes with, for a float64 array (anything else as it is)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        return a
    return a.astype(np.float16) if policy == "float16" else round_bf16(a)


def as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def check_same_as_half_kernels(policy, fn, *args, **kw):
    """fn under the 16-bit policy on float64 args == fn on the args rounded to the 16-bit type, bit for bit."""
    with fastconv.compute_dtype(policy):
        got = fn(*args, **kw)
    want = fn(*(rounded(a, policy) for a in args), **kw)
    for g, w in zip(as_tuple(got), as_tuple(want)):
        if g is None:
            assert w is None
            continue
        assert g.dtype == np.float64 and w.dtype != np.float64
        np.testing.assert_array_equal(g, w.astype(np.float64), err_msg=f"{policy} {fn.__name__}")
    return got


# ======================================================================================================
# the policy itself


def test_default_is_exact_and_set_get():
    assert fastconv.get_compute_dtype() is None
    for p in POLICIES:
        fastconv.set_compute_dtype(p)
        assert fastconv.get_compute_dtype() == p
    fastconv.set_compute_dtype(np.float32)  # a NumPy dtype by its name
    assert fastconv.get_compute_dtype() == "float32"
    fastconv.set_compute_dtype(None)
    assert fastconv.get_compute_dtype() is None


def test_context_manager_restores(rng):
    fastconv.set_compute_dtype("bfloat16")
    with fastconv.compute_dtype("float32"):
        assert fastconv.get_compute_dtype() == "float32"
        with fastconv.compute_dtype(None):
            assert fastconv.get_compute_dtype() is None
        assert fastconv.get_compute_dtype() == "float32"
    assert fastconv.get_compute_dtype() == "bfloat16"
    with pytest.raises(ZeroDivisionError), fastconv.compute_dtype("float16"):
        raise ZeroDivisionError
    assert fastconv.get_compute_dtype() == "bfloat16"
    with pytest.raises(ValueError), fastconv.compute_dtype("float32"):
        ops.gemm(rng.standard_normal((2, 3)), rng.standard_normal((4, 5)))  # a bad shape inside the block
    assert fastconv.get_compute_dtype() == "bfloat16"


def test_context_manager_blocks_of_two_threads_interleaved():
    """Thread A enters a float32 block, B a float16 one, A leaves, then B: the policy is the latest open block's
    while any is open and the one from before both afterwards (restoring "the previous policy" left float32,
    the policy of A's block, which had ended)."""
    import threading

    fastconv.set_compute_dtype("bfloat16")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with fastconv.compute_dtype("float32"):
            a_in.set()
            b_in.wait(10)
        seen["after A left"] = fastconv.get_compute_dtype()
        a_out.set()

    def b():
        a_in.wait(10)
        with fastconv.compute_dtype("float16"):
            seen["both open"] = fastconv.get_compute_dtype()
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"both open": "float16", "after A left": "float16"}
    assert fastconv.get_compute_dtype() == "bfloat16"


@pytest.mark.parametrize("bad", ["int8", "float64", "fp32", "", 3, np.int16, [1]])
def test_bad_values(bad):
    fastconv.set_compute_dtype("float32")
    with pytest.raises(ValueError) as exc:
        fastconv.set_compute_dtype(bad)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("set_compute_dtype: dtype") and "expected" in msg
    assert repr(bad if isinstance(bad, (str, int, list)) else np.dtype(bad).name) in msg
    assert fastconv.get_compute_dtype() == "float32"  # unchanged
    with pytest.raises(ValueError, match="set_compute_dtype: dtype"), fastconv.compute_dtype(bad):
        pass
    assert fastconv.get_compute_dtype() == "float32"


def test_policy_ops_are_the_compiled_ones():
    """POLICY_OPS (documented) is exactly the set of ops with policy kernels, for every policy."""
    for suffix in ("f64_as_f32", "f64_as_f16", "f64_as_bf16"):
        have = {n[: -len(suffix) - 1] for n in dir(fastconv._cpu) if n.endswith("_" + suffix)}
        assert have == set(precision.POLICY_OPS), suffix


def test_other_ops_and_dtypes_unchanged(rng):
    """Ops outside POLICY_OPS stay exact float64 under a policy, and float32 arrays are not affected."""
    x = rng.standard_normal((3, 4, 8, 8))
    w32, x32 = rng.standard_normal((5, 4, 3, 3)).astype(np.float32), x.astype(np.float32)
    exact = (ops.relu_forward(x), ops.maxpool_forward(x, 2, 2)[0], ops.softmax(x.reshape(3, -1)),
             ops.conv_forward(x32, w32, None, 1, 1))
    for p in POLICIES:
        with fastconv.compute_dtype(p):
            got = (ops.relu_forward(x), ops.maxpool_forward(x, 2, 2)[0], ops.softmax(x.reshape(3, -1)),
                   ops.conv_forward(x32, w32, None, 1, 1))
        for g, e in zip(got, exact):
            assert g.dtype == e.dtype
            np.testing.assert_array_equal(g, e, err_msg=p)


@pytest.mark.parametrize("policy,d,want", [
    # just above a tie of the 16-bit type by less than float32 can hold: rounding through float32 would make
    # it a tie and round down to 1; rounded once from the double it rounds up
    ("float16", 1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-10),
    ("bfloat16", 1 + 2.0**-8 + 2.0**-40, 1 + 2.0**-7),
    ("float16", -(1 + 2.0**-11 + 2.0**-40), -(1 + 2.0**-10)),
    ("float16", 1 + 2.0**-11, 1.0),  # an exact tie: to even
    ("float16", 1 + 3 * 2.0**-11, 1 + 2.0**-9),
])
def test_16bit_policies_round_once(policy, d, want):
    with fastconv.compute_dtype(policy):
        out = ops.gemm(np.array([[d]]), np.array([[1.0]]))
    assert out.dtype == np.float64 and out[0, 0] == want


# ======================================================================================================
# gemm and affine


GEMM_SIZES = [(1, 1, 1), (17, 19, 33), (97, 257, 9), (100, 300, 800)]


@pytest.mark.parametrize("size", GEMM_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in GEMM_SIZES])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)], ids=["nn", "tt"])
def test_gemm_float32(rng, isa, size, ta, tb):
    M, N, K = size
    a = rng.standard_normal((K, M) if ta else (M, K))
    b = rng.standard_normal((N, K) if tb else (K, N))
    A, B = (a.T if ta else a), (b.T if tb else b)
    with fastconv.compute_dtype("float32"):
        out = ops.gemm(a, b, trans_a=ta, trans_b=tb)
    assert_within(out, A @ B, gamma(K + 3) * (np.abs(A) @ np.abs(B)), f"{isa} {size}")
    assert not np.array_equal(out, A @ B) or K == 1  # it did compute in float32


def test_gemm_float32_beta(rng, isa):
    M, N, K = 37, 290, 130
    a, b, c = rng.standard_normal((M, K)), rng.standard_normal((K, N)), rng.standard_normal((M, N))
    out = c.copy()
    with fastconv.compute_dtype("float32"):
        assert ops.gemm(a, b, beta=1.0, out=out) is out
    # K products and c (rounded to float32 too), one more rounding of the sum acc + c
    assert_within(out, a @ b + c, gamma(K + 5) * (np.abs(a) @ np.abs(b) + np.abs(c)), isa)


@pytest.mark.parametrize("size", GEMM_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in GEMM_SIZES])
def test_gemm_16bit(rng, isa, half_policy, size):
    M, N, K = size
    check_same_as_half_kernels(half_policy, ops.gemm, rng.standard_normal((K, M)), rng.standard_normal((N, K)),
                               trans_a=True, trans_b=True)


@pytest.mark.parametrize("N,D,H", [(1, 1, 1), (7, 13, 5), (100, 300, 10), (33, 1000, 300)])
def test_affine_float32(rng, isa, N, D, H):
    x, W, b, dout = rng.standard_normal((N, D)), 0.1 * rng.standard_normal((D, H)), rng.standard_normal(H), \
        rng.standard_normal((N, H))
    ref = ref_layers.Affine(W, b)
    want, rdx = ref.forward(x), ref.backward(dout)
    with fastconv.compute_dtype("float32"):
        out = ops.affine_forward(x, W, b)
        dx, dW, db = ops.affine_backward(x, W, dout)
    ad = np.abs(dout)
    assert_within(out, want, gamma(D + 4) * (np.abs(x) @ np.abs(W) + np.abs(b)), f"{isa} forward")
    assert_within(dx, rdx, gamma(H + 3) * (ad @ np.abs(W).T), f"{isa} dx")
    assert_within(dW, ref.dW, gamma(N + 3) * (np.abs(x).T @ ad), f"{isa} dW")
    assert_within(db, ref.db, gamma(N + 1) * ad.sum(0), f"{isa} db")


@pytest.mark.parametrize("N,D,H", [(7, 13, 5), (33, 1000, 300)])
def test_affine_16bit(rng, isa, half_policy, N, D, H):
    x, W, b, dout = rng.standard_normal((N, D)), 0.1 * rng.standard_normal((D, H)), rng.standard_normal(H), \
        rng.standard_normal((N, H))
    check_same_as_half_kernels(half_policy, ops.affine_forward, x, W, b)
    check_same_as_half_kernels(half_policy, ops.affine_backward, x, W, dout)


# ======================================================================================================
# convolution and transposed convolution


# N, C, H, W, FN, FH, FW, stride, pad, dilation, groups
CONV_CASES = [
    (3, 3, 8, 7, 5, 3, 3, 1, 1, 1, 1),
    (2, 6, 9, 9, 4, 3, 3, 2, 1, 1, 2),
    (2, 3, 7, 7, 6, 3, 3, 1, "same", 1, 3),
    (5, 2, 9, 9, 3, 3, 3, 1, 2, 2, 1),
    (24, 8, 10, 10, 12, 3, 3, 1, 1, 1, 1),
]
CONV_IDS = ["plain", "stride2_groups2", "depthwise_same", "dilated_pad2", "batch24"]


def conv_inputs(rng, case):
    N, C, H, W, FN, FH, FW, stride, pad, dilation, groups = case
    x, Wt, b = rng.standard_normal((N, C, H, W)), 0.3 * rng.standard_normal((FN, C // groups, FH, FW)), \
        rng.standard_normal(FN)
    kw = {"dilation": dilation, "groups": groups}
    dout = rng.standard_normal(ops.conv_forward(x, Wt, b, stride, pad, **kw).shape)
    return x, Wt, b, dout, stride, pad, kw


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_float32(rng, isa, case):
    N, C, _, _, FN, FH, FW, _, _, dilation, groups = case
    x, Wt, b, dout, stride, pad, kw = conv_inputs(rng, case)
    res = []
    for xa, Wa, ba, da in ((x, Wt, b, dout), (np.abs(x), np.abs(Wt), np.abs(b), np.abs(dout))):
        ref = ref_layers.Convolution(Wa, ba, stride, pad, dilation, groups)
        res.append((ref.forward(xa), ref.backward(da), ref.dW, ref.db))
    (r_out, r_dx, r_dW, r_db), (m_out, m_dx, m_dW, m_db) = res
    with fastconv.compute_dtype("float32"):
        out = ops.conv_forward(x, Wt, b, stride, pad, **kw)
        dx, dW, db = ops.conv_backward(x, Wt, dout, stride, pad, **kw)
        fused = ops.conv_forward(x, Wt, b, stride, pad, relu=True, **kw)
    OH, OW = out.shape[2:]
    k_fwd, k_dx, k_dW = C // groups * FH * FW + 1, FN // groups * FH * FW, N * OH * OW
    assert_within(out, r_out, gamma(k_fwd + 3) * m_out, f"{isa} out")
    assert_within(dx, r_dx, gamma(k_dx + 3) * m_dx, f"{isa} dx")
    assert_within(dW, r_dW, gamma(k_dW + 3) * m_dW, f"{isa} dW")
    assert_within(db, r_db, gamma(k_dW + 1) * m_db, f"{isa} db")
    np.testing.assert_array_equal(fused, np.maximum(out, 0.0))


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_16bit(rng, isa, half_policy, case):
    x, Wt, b, dout, stride, pad, kw = conv_inputs(rng, case)
    check_same_as_half_kernels(half_policy, ops.conv_forward, x, Wt, b, stride, pad, **kw)
    check_same_as_half_kernels(half_policy, ops.conv_forward, x, Wt, None, stride, pad, relu=True, **kw)
    check_same_as_half_kernels(half_policy, ops.conv_backward, x, Wt, dout, stride, pad, **kw)
    _, dW, db = check_same_as_half_kernels(half_policy, ops.conv_backward, x, Wt, dout, stride, pad,
                                           need_dx=False, **kw)
    assert dW.dtype == db.dtype == np.float64


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1)])
def test_deconv(rng, isa, stride, pad):
    x, Wt, b = rng.standard_normal((3, 4, 5, 5)), 0.3 * rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3)
    dy = rng.standard_normal(ops.deconv_forward(x, Wt, b, stride, pad).shape)
    res = []
    for xa, Wa, ba, da in ((x, Wt, b, dy), (np.abs(x), np.abs(Wt), np.abs(b), np.abs(dy))):
        ref = ref_layers.Deconvolution(Wa, ba, stride, pad)
        res.append((ref.forward(xa), ref.backward(da), ref.dW, ref.db))
    (r_y, r_dx, r_dW, r_db), (m_y, m_dx, m_dW, m_db) = res
    with fastconv.compute_dtype("float32"):
        y = ops.deconv_forward(x, Wt, b, stride, pad)
        dx, dW, db = ops.deconv_backward(x, Wt, dy, stride, pad)
    k = 3 * y.shape[2] * y.shape[3]
    assert_within(y, r_y, gamma(4 * 9 + 4) * m_y, f"{isa} y")
    assert_within(dx, r_dx, gamma(3 * 9 + 3) * m_dx, f"{isa} dx")
    assert_within(dW, r_dW, gamma(k + 3) * m_dW, f"{isa} dW")
    assert_within(db, r_db, gamma(k + 1) * m_db, f"{isa} db")
    for policy in ("float16", "bfloat16") if HAVE_BF16 else ("float16",):
        check_same_as_half_kernels(policy, ops.deconv_forward, x, Wt, b, stride, pad)
        check_same_as_half_kernels(policy, ops.deconv_backward, x, Wt, dy, stride, pad)


def test_same_bits_for_any_thread_count(rng, num_threads):
    x, Wt, dout = rng.standard_normal((37, 3, 10, 10)), rng.standard_normal((5, 3, 3, 3)), \
        rng.standard_normal((37, 5, 8, 8))
    a, b = rng.standard_normal((300, 500)), rng.standard_normal((500, 70))
    for policy in POLICIES:
        got = []
        with fastconv.compute_dtype(policy):
            for t in (1, 2):
                num_threads(t)
                got.append((ops.conv_forward(x, Wt, None), *ops.conv_backward(x, Wt, dout), ops.gemm(a, b)))
        for u, v in zip(*got):
            np.testing.assert_array_equal(u, v, err_msg=policy)


# ======================================================================================================
# the book's layers and a book-style network


def test_layers_keep_float64_parameters(rng):
    """Convolution and Affine under the policy: float64 outputs and gradients, the parameter arrays untouched
    and still the layer's own (the book's optimizers update them in place)."""
    W1, b1, W2, b2 = 0.3 * rng.standard_normal((4, 3, 3, 3)), np.zeros(4), 0.1 * rng.standard_normal((64, 5)), \
        np.zeros(5)
    conv, aff = layers.Convolution(W1, b1, 1, 1), layers.Affine(W2, b2)
    x = rng.standard_normal((2, 3, 4, 4))
    exact = aff.forward(conv.forward(x))
    W1c = W1.copy()
    with fastconv.compute_dtype("float32"):
        out = aff.forward(conv.forward(x))
        dx = conv.backward(aff.backward(np.ones_like(out)))
    assert out.dtype == dx.dtype == conv.dW.dtype == aff.dW.dtype == np.float64
    assert conv.W is W1 and aff.W is W2 and np.array_equal(W1, W1c)
    np.testing.assert_allclose(out, exact, rtol=0, atol=1e-5 * np.abs(exact).max())


def make_net(rng):
    """conv - relu - pool - affine - softmax on 1 x 8 x 8 images, float64 parameters from np.random as the
    book makes them."""
    params = {"W1": np.sqrt(2.0 / 9) * rng.standard_normal((6, 1, 3, 3)), "b1": np.zeros(6),
              "W2": np.sqrt(2.0 / 96) * rng.standard_normal((96, 10)), "b2": np.zeros(10)}
    net = [layers.Convolution(params["W1"], params["b1"], 1, 1), layers.Relu(), layers.Pooling(2, 2, 2),
           layers.Affine(params["W2"], params["b2"])]
    return params, net, layers.SoftmaxWithLoss()


def loss_and_grads(net, last, x, t):
    h = x
    for layer in net:
        h = layer.forward(h)
    loss = last.forward(h, t)
    d = last.backward(1)
    for layer in reversed(net):
        d = layer.backward(d)
    return loss, {"W1": net[0].dW, "b1": net[0].db, "W2": net[3].dW, "b2": net[3].db}


@pytest.mark.parametrize("policy", POLICIES)
def test_book_network_trains_under_policy(rng, policy):
    if policy == "bfloat16":
        pytest.importorskip("ml_dtypes")
    params, net, last = make_net(rng)
    x, t = rng.standard_normal((32, 1, 8, 8)), rng.integers(0, 10, 32)
    ids = {k: id(v) for k, v in params.items()}
    _, exact = loss_and_grads(net, last, x, t)
    opt = optimizer.Momentum(lr=0.1)
    fastconv.set_compute_dtype(policy)
    losses = []
    for step in range(30):
        loss, grads = loss_and_grads(net, last, x, t)
        if step == 0:  # the first gradients agree with the exact ones to the policy's precision
            u = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}[policy]
            for k in grads:
                assert grads[k].dtype == np.float64
                np.testing.assert_allclose(grads[k], exact[k], rtol=0, atol=200 * u * np.abs(exact[k]).max(),
                                           err_msg=f"{policy} {k}")
        opt.update(params, grads)
        losses.append(loss)
    assert {k: id(v) for k, v in params.items()} == ids  # updated in place, as the book's optimizers do
    assert all(v.dtype == np.float64 for v in params.values())
    assert net[0].W is params["W1"] and net[3].W is params["W2"]
    assert losses[-1] < 0.5 * losses[0], losses
