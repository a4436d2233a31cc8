"""Tests of the pure-NumPy reference (``fastconv.reference``), the oracle of every other test.

Forward passes are checked against naive loops written from the definitions,
backward passes against central differences (``numerical_gradient``) in float64,
optimizers against hand-computed two-step updates.
"""
import math

import numpy as np
import pytest
from conftest import TOL

from fastconv.reference import functions as F
from fastconv.reference import layers as R
from fastconv.reference import optimizer as O
from fastconv.reference import util as U

# Finite differences (h = 1e-4, float64) carry their own truncation error of
# about h**2 * f''' ~ 1e-8 relative, so gradient checks use a looser tolerance
# than the TOL used for comparing exact computations.
GRAD_TOL = dict(rtol=1e-5, atol=1e-6)

# (N, C, H, W, FH, FW, stride, pad): batch 1, odd sizes, non-square filters and
# images, stride 2, pad 1 and 2.
CONV_CASES = [
    (2, 3, 7, 7, 3, 3, 1, 0),
    (1, 2, 6, 5, 3, 2, 2, 1),
    (3, 1, 5, 8, 1, 3, 1, 1),
    (1, 3, 9, 7, 4, 3, 2, 2),
    (2, 2, 5, 5, 5, 5, 1, 0),
]
CONV_IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}F{c[4]}x{c[5]}s{c[6]}p{c[7]}" for c in CONV_CASES]

# (N, C, H, W, PH, PW, stride, pad): non-overlapping, overlapping (stride < pool),
# padded, non-square windows, odd sizes.
POOL_CASES = [
    (2, 3, 6, 6, 2, 2, 2, 0),
    (1, 2, 7, 7, 3, 3, 2, 1),
    (2, 1, 5, 6, 2, 3, 1, 1),
    (1, 2, 5, 5, 2, 2, 2, 1),
    (3, 2, 7, 5, 3, 2, 3, 0),
]
POOL_IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}P{c[4]}x{c[5]}s{c[6]}p{c[7]}" for c in POOL_CASES]


# ============================================================================
# naive references written from the definitions
# ============================================================================

def naive_im2col(x, FH, FW, stride, pad):
    """Element-by-element im2col in the book's column layout."""
    N, C, H, W = x.shape
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (W + 2 * pad - FW) // stride + 1
    col = np.zeros((N * OH * OW, C * FH * FW), dtype=x.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for fh in range(FH):
                        for fw in range(FW):
                            h = oh * stride + fh - pad
                            w = ow * stride + fw - pad
                            if 0 <= h < H and 0 <= w < W:
                                col[(n * OH + oh) * OW + ow, (c * FH + fh) * FW + fw] = x[n, c, h, w]
    return col


def naive_col2im(col, shape, FH, FW, stride, pad):
    """Element-by-element scatter-add of columns back to images."""
    N, C, H, W = shape
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (W + 2 * pad - FW) // stride + 1
    x = np.zeros(shape, dtype=col.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for fh in range(FH):
                        for fw in range(FW):
                            h = oh * stride + fh - pad
                            w = ow * stride + fw - pad
                            if 0 <= h < H and 0 <= w < W:
                                x[n, c, h, w] += col[(n * OH + oh) * OW + ow, (c * FH + fh) * FW + fw]
    return x


def naive_conv(x, W, b, stride, pad):
    """Direct cross-correlation with zero padding."""
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (Wd + 2 * pad - FW) // stride + 1
    out = np.zeros((N, FN, OH, OW), dtype=np.result_type(x, W, b))
    for n in range(N):
        for f in range(FN):
            for oh in range(OH):
                for ow in range(OW):
                    win = xp[n, :, oh * stride:oh * stride + FH, ow * stride:ow * stride + FW]
                    out[n, f, oh, ow] = np.sum(win * W[f]) + b[f]
    return out


def naive_pool(x, PH, PW, stride, pad, kind):
    """Max pooling over -inf padding, or average pooling over zero padding divided by PH*PW."""
    N, C, H, W = x.shape
    fill = -np.inf if kind == "max" else 0
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    OH = (H + 2 * pad - PH) // stride + 1
    OW = (W + 2 * pad - PW) // stride + 1
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    win = xp[n, c, oh * stride:oh * stride + PH, ow * stride:ow * stride + PW]
                    out[n, c, oh, ow] = win.max() if kind == "max" else win.sum() / (PH * PW)
    return out


def distinct_values(rng, shape, low=-2.0, high=2.0):
    """Values at least (high-low)/size apart, so no max-pool window has a near tie."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(low, high, n)).reshape(shape)


def check_grads(rng, forward, backward, x, params):
    """Compare backward's dx and parameter grads with central differences of sum(forward(x) * w).

    ``params`` maps a name to ``(array read by forward, callable returning its analytic grad)``.
    """
    w = rng.standard_normal(forward(x).shape)
    dx = backward(w.copy())
    analytic = {name: np.array(get()) for name, (_, get) in params.items()}

    def loss(_):
        return float(np.sum(forward(x) * w))

    np.testing.assert_allclose(dx, F.numerical_gradient(loss, x), **GRAD_TOL, err_msg="dx")
    for name, (arr, _) in params.items():
        np.testing.assert_allclose(analytic[name], F.numerical_gradient(loss, arr), **GRAD_TOL,
                                   err_msg=name)


# ============================================================================
# functions: activations
# ============================================================================

def test_sigmoid_values_and_dtype(rng, dtype):
    x = rng.uniform(-8, 8, size=(4, 5)).astype(dtype)
    out = F.sigmoid(x)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-x.astype(np.float64))), **TOL[dtype])
    np.testing.assert_allclose(F.sigmoid(-x), 1 - out, **TOL[dtype])


def test_sigmoid_piecewise_formula(rng):
    x = rng.uniform(-30, 30, size=101)
    expected = np.array([1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in x])
    np.testing.assert_allclose(F.sigmoid(x), expected, **TOL[np.float64])


def test_sigmoid_extreme_inputs_do_not_overflow(dtype):
    x = np.array([-1e4, -1000.0, -100.0, 0.0, 100.0, 1000.0, 1e4], dtype=dtype)
    out = F.sigmoid(x)  # filterwarnings=error turns an exp overflow into a failure
    assert out.dtype == dtype
    assert np.all(np.isfinite(out))
    assert out[0] == 0 and out[-1] == 1 and out[3] == 0.5


def test_relu(rng, dtype):
    x = rng.standard_normal((3, 4)).astype(dtype)
    out = F.relu(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))


# ============================================================================
# functions: softmax and cross-entropy
# ============================================================================

def test_softmax_rows_sum_to_one(rng, dtype):
    x = rng.standard_normal((5, 7)).astype(dtype)
    y = F.softmax(x)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y.sum(axis=1), np.ones(5), **TOL[dtype])
    e = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), **TOL[dtype])


def test_softmax_1d_matches_row(rng, dtype):
    x = rng.standard_normal(6).astype(dtype)
    y = F.softmax(x)
    assert y.shape == (6,) and y.dtype == dtype
    np.testing.assert_allclose(y, F.softmax(x[None])[0], **TOL[dtype])


def test_softmax_large_inputs_are_stable(dtype):
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]], dtype=dtype)
    y = F.softmax(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], F.softmax(np.array([0.0, 1.0, 2.0], dtype=dtype)), **TOL[dtype])
    np.testing.assert_allclose(y[1], F.softmax(np.array([0.0, -1.0, -2.0], dtype=dtype)), **TOL[dtype])


def test_cross_entropy_hand_value(dtype):
    y = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=dtype)
    t = np.array([1, 0])
    expected = -(math.log(0.7 + 1e-7) + math.log(0.5 + 1e-7)) / 2
    loss = F.cross_entropy_error(y, t)
    assert np.asarray(loss).dtype == dtype
    np.testing.assert_allclose(loss, expected, **TOL[dtype])


def test_cross_entropy_labels_match_one_hot(rng, dtype):
    y = F.softmax(rng.standard_normal((6, 4)).astype(dtype))
    t = rng.integers(0, 4, size=6)
    one_hot = np.eye(4, dtype=dtype)[t]
    a = F.cross_entropy_error(y, t)
    b = F.cross_entropy_error(y, one_hot)
    assert np.asarray(a).dtype == dtype and np.asarray(b).dtype == dtype
    np.testing.assert_allclose(a, b, **TOL[dtype])


def test_cross_entropy_one_hot_float64_targets_keep_y_dtype(rng):
    y = F.softmax(rng.standard_normal((3, 4)).astype(np.float32))
    one_hot = np.eye(4)[[0, 3, 1]]  # float64, as the book's one-hot labels are
    assert np.asarray(F.cross_entropy_error(y, one_hot)).dtype == np.float32


def test_cross_entropy_dense_probability_targets(rng):
    y = F.softmax(rng.standard_normal((4, 3)))
    t = F.softmax(rng.standard_normal((4, 3)))
    np.testing.assert_allclose(F.cross_entropy_error(y, t), -np.sum(t * np.log(y + 1e-7)) / 4, **TOL[np.float64])


def test_cross_entropy_1d_is_batch_of_one(rng, dtype):
    y = F.softmax(rng.standard_normal(5).astype(dtype))
    ref = F.cross_entropy_error(y[None], np.array([2]))
    np.testing.assert_allclose(F.cross_entropy_error(y, 2), ref, **TOL[dtype])
    np.testing.assert_allclose(F.cross_entropy_error(y, np.array([2])), ref, **TOL[dtype])
    np.testing.assert_allclose(F.cross_entropy_error(y, np.eye(5)[2]), ref, **TOL[dtype])


def test_cross_entropy_bad_targets():
    y = np.full((3, 4), 0.25)
    with pytest.raises(ValueError):
        F.cross_entropy_error(y, np.array([0, 1]))
    with pytest.raises(ValueError):
        F.cross_entropy_error(y, np.array([0.0, 1.0, 2.0]))


# ============================================================================
# functions: numerical gradient
# ============================================================================

def test_numerical_gradient_cubic(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    g = F.numerical_gradient(lambda v: np.sum(v ** 3), x)
    np.testing.assert_allclose(g, 3 * x0 ** 2, **GRAD_TOL)
    np.testing.assert_array_equal(x, x0)  # every element restored
    assert g.shape == x.shape and g.dtype == x.dtype


def test_numerical_gradient_closure_ignoring_argument(rng):
    W = rng.standard_normal((2, 3))
    v = rng.standard_normal(3)
    g = F.numerical_gradient(lambda _: float(np.sum(W @ v)), W)
    np.testing.assert_allclose(g, np.broadcast_to(v, (2, 3)), **GRAD_TOL)


def test_numerical_gradient_float32_dtype(rng):
    x = rng.standard_normal(4).astype(np.float32)
    assert F.numerical_gradient(lambda v: np.sum(v * v), x).dtype == np.float32


# ============================================================================
# util: sizes, im2col, col2im
# ============================================================================

@pytest.mark.parametrize("args, expected", [
    ((28, 5), 24), ((28, 3, 1, 1), 28), ((7, 3, 2, 1), 4), ((5, 2, 2, 0), 2), ((6, 3, 2, 0), 2),
    ((1, 1), 1), ((24, 2, 2), 12),
])
def test_conv_output_size(args, expected):
    assert U.conv_output_size(*args) == expected


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_matches_naive(rng, dtype, case):
    N, C, H, W, FH, FW, stride, pad = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    col = U.im2col(x, FH, FW, stride, pad)
    OH = U.conv_output_size(H, FH, stride, pad)
    OW = U.conv_output_size(W, FW, stride, pad)
    assert col.shape == (N * OH * OW, C * FH * FW) and col.dtype == dtype
    np.testing.assert_array_equal(col, naive_im2col(x, FH, FW, stride, pad))


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_col2im_matches_naive(rng, dtype, case):
    N, C, H, W, FH, FW, stride, pad = case
    OH = U.conv_output_size(H, FH, stride, pad)
    OW = U.conv_output_size(W, FW, stride, pad)
    col = rng.standard_normal((N * OH * OW, C * FH * FW)).astype(dtype)
    img = U.col2im(col, (N, C, H, W), FH, FW, stride, pad)
    assert img.shape == (N, C, H, W) and img.dtype == dtype
    np.testing.assert_allclose(img, naive_col2im(col, (N, C, H, W), FH, FW, stride, pad), **TOL[dtype])


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_col2im_adjoint(rng, case):
    N, C, H, W, FH, FW, stride, pad = case
    x = rng.standard_normal((N, C, H, W))
    col = U.im2col(x, FH, FW, stride, pad)
    c = rng.standard_normal(col.shape)
    lhs = np.sum(col * c)
    rhs = np.sum(x * U.col2im(c, x.shape, FH, FW, stride, pad))
    np.testing.assert_allclose(lhs, rhs, **TOL[np.float64])


def test_im2col_rejects_bad_shapes():
    with pytest.raises(ValueError):
        U.im2col(np.zeros((3, 4, 4)), 2, 2)
    with pytest.raises(ValueError):
        U.im2col(np.zeros((1, 1, 2, 2)), 3, 3)
    with pytest.raises(ValueError):
        U.col2im(np.zeros((5, 4)), (1, 1, 3, 3), 2, 2)


# ============================================================================
# util: data helpers
# ============================================================================

@pytest.mark.parametrize("t_kind", ["labels", "one_hot"])
def test_shuffle_dataset_keeps_pairs(t_kind):
    N = 20
    x = np.arange(N, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 3), dtype=np.float32)
    labels = np.arange(N)
    t = labels if t_kind == "labels" else np.eye(N)[labels]
    np.random.seed(7)
    xs, ts = U.shuffle_dataset(x, t)
    assert xs.shape == x.shape and ts.shape == t.shape and xs.dtype == x.dtype
    ts_labels = ts if t_kind == "labels" else ts.argmax(axis=1)
    np.testing.assert_array_equal(xs[:, 0, 0, 0], ts_labels)
    np.testing.assert_array_equal(np.sort(ts_labels), labels)
    assert not np.array_equal(ts_labels, labels)


@pytest.mark.parametrize("n", [11, 12, 50])
def test_smooth_curve_length_and_dtype(rng, dtype, n):
    x = rng.standard_normal(n).astype(dtype)
    y = U.smooth_curve(x)
    assert y.shape == (n,) and y.dtype == dtype


def test_smooth_curve_constant_and_list_input():
    y = U.smooth_curve([2.5] * 30)
    assert y.shape == (30,) and y.dtype == np.float64
    np.testing.assert_allclose(y, 2.5, **TOL[np.float64])


def test_smooth_curve_is_normalised_kaiser_average(rng):
    x = rng.standard_normal(40)
    w = np.kaiser(11, 2)
    w /= w.sum()
    y = U.smooth_curve(x)
    # an interior point is the window-weighted average of its 11 neighbours
    np.testing.assert_allclose(y[20], np.dot(w, x[15:26]), **TOL[np.float64])


# ============================================================================
# layers: activations, affine, loss
# ============================================================================

def test_relu_layer(rng):
    x = rng.uniform(0.1, 1.0, size=(3, 5)) * rng.choice([-1.0, 1.0], size=(3, 5))
    layer = R.Relu()
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x, 0))
    np.testing.assert_array_equal(layer.mask, x <= 0)
    dout = rng.standard_normal(x.shape)
    dout0 = dout.copy()
    np.testing.assert_array_equal(layer.backward(dout), np.where(x > 0, dout0, 0))
    np.testing.assert_array_equal(dout, dout0)
    check_grads(rng, layer.forward, layer.backward, x, {})


def test_sigmoid_layer_grad(rng):
    layer = R.Sigmoid()
    x = rng.standard_normal((4, 3))
    check_grads(rng, layer.forward, layer.backward, x, {})
    layer.forward(x)
    np.testing.assert_allclose(layer.out, F.sigmoid(x), **TOL[np.float64])


@pytest.mark.parametrize("x_shape", [(4, 6), (1, 6), (3, 2, 1, 3), (2, 3, 2)])
def test_affine_grad(rng, x_shape):
    D = int(np.prod(x_shape[1:]))
    layer = R.Affine(rng.standard_normal((D, 5)), rng.standard_normal(5))
    x = rng.standard_normal(x_shape)
    out = layer.forward(x)
    np.testing.assert_allclose(out, x.reshape(x_shape[0], -1) @ layer.W + layer.b, **TOL[np.float64])
    assert layer.backward(np.ones_like(out)).shape == x_shape
    assert layer.original_x_shape == x_shape
    check_grads(rng, layer.forward, layer.backward, x,
                {"W": (layer.W, lambda: layer.dW), "b": (layer.b, lambda: layer.db)})


def test_affine_reads_rebound_params(rng):
    layer = R.Affine(rng.standard_normal((3, 2)), np.zeros(2))
    x = rng.standard_normal((2, 3))
    layer.W = np.zeros((3, 2))
    layer.b = np.ones(2)
    np.testing.assert_array_equal(layer.forward(x), np.ones((2, 2)))


@pytest.mark.parametrize("target", ["labels", "one_hot", "dense"])
@pytest.mark.parametrize("N", [1, 5])
def test_softmax_with_loss_grad(rng, target, N):
    C = 4
    x = rng.standard_normal((N, C))
    labels = rng.integers(0, C, size=N)
    t = {"labels": labels, "one_hot": np.eye(C)[labels],
         "dense": F.softmax(rng.standard_normal((N, C)))}[target]
    layer = R.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    np.testing.assert_allclose(loss, F.cross_entropy_error(F.softmax(x), t), **TOL[np.float64])
    np.testing.assert_allclose(layer.y, F.softmax(x), **TOL[np.float64])
    assert layer.loss == loss
    dx = layer.backward()
    num = F.numerical_gradient(lambda _: float(layer.forward(x, t)), x)
    np.testing.assert_allclose(dx, num, **GRAD_TOL)
    layer.forward(x, t)
    np.testing.assert_allclose(layer.backward(2.5), 2.5 * dx, **TOL[np.float64])


def test_softmax_with_loss_label_and_one_hot_agree(rng, dtype):
    x = rng.standard_normal((6, 3)).astype(dtype)
    labels = rng.integers(0, 3, size=6)
    a, b = R.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    np.testing.assert_allclose(a.forward(x, labels), b.forward(x, np.eye(3, dtype=dtype)[labels]), **TOL[dtype])
    np.testing.assert_allclose(a.backward(), b.backward(), **TOL[dtype])


def test_softmax_with_loss_1d_input(rng):
    x = rng.standard_normal(4)
    layer = R.SoftmaxWithLoss()
    layer.forward(x, np.array([2]))
    dx = layer.backward()
    assert dx.shape == (4,)
    expected = F.softmax(x)
    expected[2] -= 1
    np.testing.assert_allclose(dx, expected, **TOL[np.float64])


# ============================================================================
# layers: dropout and batch normalisation
# ============================================================================

def test_dropout_train_and_test(rng, dtype):
    x = rng.standard_normal((50, 40)).astype(dtype)
    layer = R.Dropout(0.3)
    np.random.seed(3)
    out = layer.forward(x, train_flg=True)
    assert out.dtype == dtype and layer.mask.dtype == bool
    np.testing.assert_array_equal(out, np.where(layer.mask, x, 0))
    assert abs(layer.mask.mean() - 0.7) < 0.05
    dout = rng.standard_normal(x.shape).astype(dtype)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(layer.mask, dout, 0))
    out_test = layer.forward(x, train_flg=False)
    assert out_test.dtype == dtype
    np.testing.assert_allclose(out_test, x * 0.7, **TOL[dtype])


def test_dropout_grad(rng):
    layer = R.Dropout(0.5)
    x = rng.standard_normal((3, 4))

    def forward(v):
        np.random.seed(11)  # the same mask at every call
        return layer.forward(v, train_flg=True)

    check_grads(rng, forward, layer.backward, x, {})


def make_bn(rng, x_shape, dtype=np.float64):
    D = int(np.prod(x_shape[1:]))
    gamma = (1 + 0.1 * rng.standard_normal(D)).astype(dtype)
    beta = (0.1 * rng.standard_normal(D)).astype(dtype)
    return R.BatchNormalization(gamma, beta)


@pytest.mark.parametrize("x_shape", [(5, 4), (4, 2, 3, 3), (3, 7)])
def test_batchnorm_grad(rng, x_shape):
    layer = make_bn(rng, x_shape)
    x = rng.standard_normal(x_shape) * 2 + 0.5
    check_grads(rng, layer.forward, layer.backward, x,
                {"gamma": (layer.gamma, lambda: layer.dgamma), "beta": (layer.beta, lambda: layer.dbeta)})


def test_batchnorm_forward_and_running_stats(rng, dtype):
    x = (rng.standard_normal((6, 2, 2, 2)) * 3 + 1).astype(dtype)
    layer = make_bn(rng, x.shape, dtype)
    out = layer.forward(x, train_flg=True)
    assert out.shape == x.shape and out.dtype == dtype
    assert layer.running_mean.dtype == dtype and layer.running_var.dtype == dtype
    x2 = x.reshape(6, -1).astype(np.float64)
    mu, var = x2.mean(axis=0), x2.var(axis=0)
    xn = (x2 - mu) / np.sqrt(var + 10e-7)
    np.testing.assert_allclose(out.reshape(6, -1), layer.gamma * xn + layer.beta, **TOL[dtype])
    np.testing.assert_allclose(layer.running_mean, 0.1 * mu, **TOL[dtype])
    np.testing.assert_allclose(layer.running_var, 0.1 * var, **TOL[dtype])
    assert layer.batch_size == 6 and layer.input_shape == x.shape
    # inference uses the running statistics
    out_test = layer.forward(x, train_flg=False)
    assert out_test.dtype == dtype
    expected = layer.gamma * (x2 - 0.1 * mu) / np.sqrt(0.1 * var + 10e-7) + layer.beta
    np.testing.assert_allclose(out_test.reshape(6, -1), expected, **TOL[dtype])
    layer.forward(x, train_flg=True)
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert layer.dgamma.dtype == dtype and layer.dbeta.dtype == dtype


def test_batchnorm_given_running_stats(rng):
    rm, rv = np.full(3, 0.5), np.full(3, 4.0)
    layer = R.BatchNormalization(np.ones(3), np.zeros(3), momentum=0.5, running_mean=rm, running_var=rv)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x, train_flg=False), (x - 0.5) / np.sqrt(4.0 + 10e-7),
                               **TOL[np.float64])
    layer.forward(x, train_flg=True)
    np.testing.assert_allclose(layer.running_mean, 0.5 * 0.5 + 0.5 * x.mean(axis=0), **TOL[np.float64])


# ============================================================================
# layers: convolution and pooling
# ============================================================================

@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_convolution_forward_matches_naive(rng, dtype, case):
    N, C, H, W, FH, FW, stride, pad = case
    FN = 3
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    layer = R.Convolution(rng.standard_normal((FN, C, FH, FW)).astype(dtype),
                          rng.standard_normal(FN).astype(dtype), stride, pad)
    out = layer.forward(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, naive_conv(x, layer.W, layer.b, stride, pad), **TOL[dtype])


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_convolution_grad(rng, case):
    N, C, H, W, FH, FW, stride, pad = case
    FN = 2
    layer = R.Convolution(rng.standard_normal((FN, C, FH, FW)), rng.standard_normal(FN), stride, pad)
    x = rng.standard_normal((N, C, H, W))
    check_grads(rng, layer.forward, layer.backward, x,
                {"W": (layer.W, lambda: layer.dW), "b": (layer.b, lambda: layer.db)})


def test_convolution_rejects_channel_mismatch(rng):
    layer = R.Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError):
        layer.forward(np.zeros((1, 2, 5, 5)))


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pooling_forward_matches_naive(rng, dtype, case):
    N, C, H, W, PH, PW, stride, pad = case
    # all inputs negative: zero padding would win the max, -inf padding must not
    x = -rng.uniform(1, 2, size=(N, C, H, W)).astype(dtype)
    out = R.Pooling(PH, PW, stride, pad).forward(x)
    assert out.dtype == dtype
    assert out.shape[2:] == (U.conv_output_size(H, PH, stride, pad), U.conv_output_size(W, PW, stride, pad))
    np.testing.assert_array_equal(out, naive_pool(x, PH, PW, stride, pad, "max"))
    assert np.all(out < 0)


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pooling_grad(rng, case):
    N, C, H, W, PH, PW, stride, pad = case
    layer = R.Pooling(PH, PW, stride, pad)
    x = distinct_values(rng, (N, C, H, W))
    check_grads(rng, layer.forward, layer.backward, x, {})


def test_pooling_ties_go_to_first_and_overlaps_accumulate():
    layer = R.Pooling(2, 2, stride=2)
    layer.forward(np.zeros((1, 1, 2, 2)))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))), [[[[1, 0], [0, 0]]]])
    layer = R.Pooling(1, 2, stride=1)
    x = np.array([[[[0.0, 5.0, 0.0]]]])
    np.testing.assert_array_equal(layer.forward(x), [[[[5.0, 5.0]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[1.0, 2.0]]]])), [[[[0.0, 3.0, 0.0]]]])


@pytest.mark.parametrize("cls", [R.Pooling, R.AvgPooling])
def test_pooling_rejects_pad_not_smaller_than_pool(cls):
    with pytest.raises(ValueError):
        cls(2, 2, stride=2, pad=2)
    with pytest.raises(ValueError):
        cls(3, 1, stride=1, pad=1)


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avg_pooling_forward_matches_naive(rng, dtype, case):
    N, C, H, W, PH, PW, stride, pad = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    out = R.AvgPooling(PH, PW, stride, pad).forward(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, naive_pool(x, PH, PW, stride, pad, "avg"), **TOL[dtype])


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avg_pooling_grad(rng, case):
    N, C, H, W, PH, PW, stride, pad = case
    layer = R.AvgPooling(PH, PW, stride, pad)
    x = rng.standard_normal((N, C, H, W))
    check_grads(rng, layer.forward, layer.backward, x, {})


# ============================================================================
# dtype preservation of every layer
# ============================================================================

def _layer_cases(rng, dtype):
    """(name, layer, x, names of param grads) for every layer, params in ``dtype``."""
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    x4 = r(2, 3, 5, 5)
    return [
        ("Relu", R.Relu(), r(3, 4), []),
        ("Sigmoid", R.Sigmoid(), r(3, 4), []),
        ("Affine", R.Affine(r(75, 4), r(4)), x4, ["dW", "db"]),
        ("Dropout", R.Dropout(0.5), r(3, 4), []),
        ("BatchNormalization", R.BatchNormalization(r(75), r(75)), x4, ["dgamma", "dbeta"]),
        ("Convolution", R.Convolution(r(4, 3, 3, 3), r(4), 2, 1), x4, ["dW", "db"]),
        ("Pooling", R.Pooling(2, 2, 2, 1), x4, []),
        ("AvgPooling", R.AvgPooling(3, 3, 2, 1), x4, []),
    ]


def test_layers_preserve_dtype(rng, dtype):
    for name, layer, x, grads in _layer_cases(rng, dtype):
        out = layer.forward(x)
        assert out.dtype == dtype, name
        dx = layer.backward(np.ones_like(out))
        assert dx.dtype == dtype and dx.shape == x.shape, name
        for g in grads:
            assert getattr(layer, g).dtype == dtype, f"{name}.{g}"
    sm = R.SoftmaxWithLoss()
    x = rng.standard_normal((3, 5)).astype(dtype)
    assert np.asarray(sm.forward(x, np.array([0, 4, 2]))).dtype == dtype
    assert sm.backward().dtype == dtype
    assert np.asarray(sm.forward(x, np.eye(5)[[1, 2, 3]])).dtype == dtype  # float64 one-hot targets
    assert sm.backward().dtype == dtype


# ============================================================================
# optimizers
# ============================================================================

P0 = [1.0, -2.0]
G1 = [0.5, 0.1]
G2 = [-0.3, 0.2]


def _two_steps(opt, dtype):
    """Apply ``opt`` twice to params W (and a second key b) with gradients G1 then G2."""
    W = np.array(P0, dtype=dtype)
    b = np.array(P0[::-1], dtype=dtype)
    params = {"W": W, "b": b}
    for g in (G1, G2):
        opt.update(params, {"W": np.array(g, dtype=dtype), "b": np.array(g[::-1], dtype=dtype)})
    assert params["W"] is W and params["b"] is b  # updated in place
    assert W.dtype == dtype and b.dtype == dtype
    return W, b


def _check_opt(opt, expected, dtype):
    W, b = _two_steps(opt, dtype)
    np.testing.assert_allclose(W, expected, **TOL[dtype])
    np.testing.assert_allclose(b, expected[::-1], **TOL[dtype])


def test_sgd(dtype):
    # p - 0.1*g1 - 0.1*g2
    _check_opt(O.SGD(lr=0.1), [0.98, -2.03], dtype)


def test_momentum(dtype):
    # v1 = -0.1*g1 = [-0.05, -0.01]; p1 = [0.95, -2.01]
    # v2 = 0.9*v1 - 0.1*g2 = [-0.015, -0.029]; p2 = [0.935, -2.039]
    _check_opt(O.Momentum(lr=0.1, momentum=0.9), [0.935, -2.039], dtype)


def test_nesterov(dtype):
    lr, mu = 0.1, 0.9
    expected = []
    for p, g1, g2 in zip(P0, G1, G2):
        v = 0.0
        for g in (g1, g2):
            v = mu * v - lr * g
            p = p + mu * mu * v - (1 + mu) * lr * g
        expected.append(p)
    # first step by hand: v = -0.05, p = 1 + 0.81*(-0.05) - 1.9*0.05 = 0.8645
    assert math.isclose(1 + 0.81 * -0.05 - 1.9 * 0.05, 0.8645)
    _check_opt(O.Nesterov(lr=lr, momentum=mu), expected, dtype)


def test_adagrad(dtype):
    # h1 = g1^2, p1 = p0 - 0.1*g1/(|g1|+eps); h2 = g1^2 + g2^2, p2 = p1 - 0.1*g2/(sqrt(h2)+eps)
    expected = [p - 0.1 * g1 / (abs(g1) + 1e-7) - 0.1 * g2 / (math.sqrt(g1 * g1 + g2 * g2) + 1e-7)
                for p, g1, g2 in zip(P0, G1, G2)]
    _check_opt(O.AdaGrad(lr=0.1), expected, dtype)


def test_rmsprop(dtype):
    lr, rho = 0.1, 0.9
    expected = []
    for p, g1, g2 in zip(P0, G1, G2):
        h1 = (1 - rho) * g1 * g1
        h2 = rho * h1 + (1 - rho) * g2 * g2
        expected.append(p - lr * g1 / (math.sqrt(h1) + 1e-7) - lr * g2 / (math.sqrt(h2) + 1e-7))
    _check_opt(O.RMSprop(lr=lr, decay_rate=rho), expected, dtype)


def test_adam(dtype):
    lr, b1, b2 = 0.01, 0.9, 0.999
    expected = []
    for p, g1, g2 in zip(P0, G1, G2):
        m = v = 0.0
        for it, g in enumerate((g1, g2), start=1):
            lr_t = lr * math.sqrt(1 - b2 ** it) / (1 - b1 ** it)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr_t * m / (math.sqrt(v) + 1e-7)
        expected.append(p)
    opt = O.Adam(lr=lr, beta1=b1, beta2=b2)
    _check_opt(opt, expected, dtype)
    assert opt.iter == 2


def test_optimizer_state_is_per_key_and_lazy():
    opt = O.Momentum(lr=1.0, momentum=0.5)
    assert opt.v is None
    params = {"a": np.zeros(2), "b": np.zeros((2, 2), dtype=np.float32)}
    opt.update(params, {"a": np.ones(2), "b": np.ones((2, 2), dtype=np.float32)})
    assert set(opt.v) == {"a", "b"} and opt.v["b"].dtype == np.float32
    np.testing.assert_array_equal(params["a"], [-1.0, -1.0])


def test_shipped_code_never_imports_the_oracle():
    """The oracle stays independent: no module of fastconv outside reference/ imports fastconv.reference
    (otherwise a test of that module would compare the reference with itself)."""
    import ast
    from pathlib import Path

    import fastconv

    root = Path(fastconv.__file__).resolve().parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "reference" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "reference" or n.startswith("reference.") or ".reference" in n for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == [], offenders
