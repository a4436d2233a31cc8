"""SimpleConvNet / DeepConvNet on fastconv.layers against the same networks on fastconv.reference.layers."""

import fastconv.layers as fc_layers
import fastconv.reference.layers as ref_layers
import numpy as np
import pytest
from conftest import GRAD_TOL, MODEL_TOL_F64, TOL
from fastconv.functions import numerical_gradient
from fastconv.models import DeepConvNet, SimpleConvNet
from fastconv.optimizer import Adam

SEED = 1234


def build(cls, layers, dtype, seed=SEED, **kw):
    np.random.seed(seed)
    return cls(dtype=dtype, layers=layers, **kw)


def mnist_batch(rng, n=6, shape=(1, 28, 28)):
    return rng.random((n, *shape)), rng.integers(0, 10, size=n)


def dropouts(net):
    return (
        [layer for layer in net.layers if hasattr(layer, "dropout_ratio")]
        if isinstance(net.layers, list)
        else []
    )


def share_dropout_masks(fc_net, ref_net, monkeypatch):
    """Make each reference Dropout use the mask its fastconv counterpart drew (run fastconv first)."""
    pairs = list(zip(dropouts(fc_net), dropouts(ref_net)))
    assert len(pairs) == 2
    for fc_layer, ref_layer in pairs:

        def forward(x, train_flg=True, fc_layer=fc_layer, ref_layer=ref_layer):
            if not train_flg:
                return x * (1.0 - ref_layer.dropout_ratio)
            ref_layer.mask = fc_layer.mask
            return x * ref_layer.mask

        monkeypatch.setattr(ref_layer, "forward", forward)


def assert_grads_close(got, want, tol, msg):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].shape == want[key].shape, key
        scale = np.abs(want[key]).max()
        assert scale > 0, f"{msg} {key}: reference gradient is all zero, the test would prove nothing"
        np.testing.assert_allclose(got[key] / scale, want[key] / scale, **tol, err_msg=f"{msg} {key}")


# ======================================================================================================
# fastconv float64 == reference float64


def test_simple_convnet_f64(rng):
    x, t = mnist_batch(rng)
    fc = build(SimpleConvNet, fc_layers, np.float64)
    ref = build(SimpleConvNet, ref_layers, np.float64)
    for key in ref.params:
        np.testing.assert_array_equal(fc.params[key], ref.params[key])
    np.testing.assert_allclose(fc.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert_grads_close(fc.gradient(x, t), ref.gradient(x, t), MODEL_TOL_F64, "SimpleConvNet f64")


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_deep_convnet_f64(rng, monkeypatch, ratio):
    x, t = mnist_batch(rng, n=4)
    fc = build(DeepConvNet, fc_layers, np.float64)
    ref = build(DeepConvNet, ref_layers, np.float64)
    for layer in dropouts(fc) + dropouts(ref):
        layer.dropout_ratio = ratio
    g = fc.gradient(x, t)
    if ratio:
        assert not dropouts(fc)[0].mask.all()
        share_dropout_masks(fc, ref, monkeypatch)
    else:
        assert dropouts(fc)[0].mask.all()
    r = ref.gradient(x, t)
    np.testing.assert_allclose(fc.last_layer.loss, ref.last_layer.loss, rtol=1e-12)
    assert_grads_close(g, r, MODEL_TOL_F64, f"DeepConvNet f64 ratio={ratio}")
    np.testing.assert_allclose(fc.predict(x), ref.predict(x), rtol=1e-10, atol=1e-12)


# ======================================================================================================
# fastconv float32 ~ reference float64 (given the same float32-rounded parameters)


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_convnet_f32_vs_reference_f64(rng, monkeypatch, cls):
    x, t = mnist_batch(rng, n=4)
    x = x.astype(np.float32)
    fc = build(cls, fc_layers, np.float32)
    ref = build(cls, ref_layers, np.float64)
    for key in ref.params:  # in place: the reference layers hold these arrays
        ref.params[key][...] = fc.params[key]
    g = fc.gradient(x, t)
    for key in g:
        assert g[key].dtype == np.float32, key
    if cls is DeepConvNet:
        share_dropout_masks(fc, ref, monkeypatch)
    r = ref.gradient(x.astype(np.float64), t)
    assert_grads_close(g, r, TOL[np.float32], f"{cls.__name__} f32")
    y = fc.predict(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref.predict(x.astype(np.float64)), **TOL[np.float32])


# ======================================================================================================
# the book's checks


def test_gradient_check_numerical():
    """The book's gradient_check on a tiny SimpleConvNet: backprop == central differences (float64)."""
    rng = np.random.default_rng(7)
    net = build(
        SimpleConvNet,
        fc_layers,
        np.float64,
        input_dim=(1, 8, 8),
        conv_param={"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
        hidden_size=5,
        weight_init_std=0.1,
    )
    x = rng.standard_normal((3, 1, 8, 8))
    t = rng.integers(0, 10, size=3)
    grads = net.gradient(x, t)
    for key in ("W1", "b1", "W2", "b2", "W3", "b3"):
        p = net.params[key]
        num = numerical_gradient(lambda _: net.loss(x, t), p)
        assert np.abs(num).max() > 1e-6, key
        np.testing.assert_allclose(grads[key], num, **GRAD_TOL, err_msg=key)


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_save_load_params(rng, tmp_path, cls):
    x, _ = mnist_batch(rng, n=3)
    x = x.astype(np.float32)
    a = build(cls, fc_layers, np.float32, seed=1)
    path = tmp_path / "params.npz"
    a.save_params(str(path))
    b = build(cls, fc_layers, np.float32, seed=2)
    assert not np.array_equal(a.predict(x), b.predict(x))
    b.load_params(str(path))
    for key in a.params:
        np.testing.assert_array_equal(b.params[key], a.params[key])
        assert b.params[key].dtype == np.float32
    np.testing.assert_array_equal(b.predict(x), a.predict(x))


def test_optimizer_updates_in_place(rng):
    """Adam updates params in place; the layers read them at every call, so predictions change."""
    x, t = mnist_batch(rng, n=4)
    x = x.astype(np.float32)
    net = build(SimpleConvNet, fc_layers, np.float32)
    before = net.predict(x)
    held = dict(net.params)
    opt = Adam(lr=0.01)
    opt.update(net.params, net.gradient(x, t))
    for key, arr in held.items():
        assert net.params[key] is arr  # same arrays, new values
    after = net.predict(x)
    assert not np.allclose(after, before)
    # the updated net equals a reference net holding the updated parameters
    ref = build(SimpleConvNet, ref_layers, np.float64)
    for key in ref.params:
        ref.params[key][...] = net.params[key]
    np.testing.assert_allclose(after, ref.predict(x.astype(np.float64)), **TOL[np.float32])
    # and training decreases the loss on this batch
    loss0 = net.loss(x, t)
    for _ in range(5):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < loss0


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_accuracy(rng, cls):
    x, t = mnist_batch(rng, n=7)
    x = x.astype(np.float32)
    net = build(cls, fc_layers, np.float32)
    want = np.mean(np.argmax(net.predict(x), axis=1) == t)
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(want)
    assert net.accuracy(x, np.eye(10)[t]) == pytest.approx(want)
    assert 0.0 <= want <= 1.0
