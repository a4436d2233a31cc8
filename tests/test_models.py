"""Every network of fastconv.models on fastconv.layers against the same network on fastconv.reference.layers.

SimpleConvNet / DeepConvNet (book ch07/ch08), LeNet, KerasCNN, MultiLayerNet / MultiLayerNetExtend (ch06):
gradients fastconv vs reference (float64 tight, float32 with TOL), the reference vs central differences,
shapes, initialisation, the build() registry, save/load round trips (including the book's .pkl files).
"""

import pickle

import fastconv.layers as fc_layers
import fastconv.reference.functions as ref_functions
import fastconv.reference.layers as ref_layers
import numpy as np
import pytest
from conftest import GRAD_TOL, MODEL_TOL_F64, TOL, net_to_device, to_device, to_host
from fastconv import models
from fastconv.functions import numerical_gradient
from fastconv.io import save_params
from fastconv.models import (
    DeepConvNet,
    KerasCNN,
    LeNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    Sequential,
    SimpleConvNet,
    affine,
    avg_pool,
    batch_norm,
    conv,
    dropout,
    max_pool,
    relu,
    sigmoid,
)
from fastconv.optimizer import SGD, Adam

SEED = 1234


def build(cls, layers, dtype, seed=SEED, device="cpu", **kw):
    """A network of ``layers`` from ``seed``; a fastconv one with its parameters on ``device``."""
    np.random.seed(seed)
    net = cls(dtype=dtype, layers=layers, **kw)
    return net_to_device(net, device) if layers is fc_layers else net


def mnist_batch(rng, n=6, shape=(1, 28, 28)):
    return rng.random((n, *shape)), rng.integers(0, 10, size=n)


def layer_list(net):
    return list(net.layers.values() if isinstance(net.layers, dict) else net.layers)


def dropouts(net):
    return [layer for layer in layer_list(net) if hasattr(layer, "dropout_ratio")]


def share_dropout_masks(fc_net, ref_net, monkeypatch, expect=2):
    """Make each reference Dropout use the mask its fastconv counterpart drew (run fastconv first)."""
    pairs = list(zip(dropouts(fc_net), dropouts(ref_net)))
    assert len(pairs) == expect
    for fc_layer, ref_layer in pairs:

        def forward(x, train_flg=True, fc_layer=fc_layer, ref_layer=ref_layer):
            if not train_flg:
                return x * (1.0 - ref_layer.dropout_ratio)
            ref_layer.mask = to_host(fc_layer.mask)
            return x * ref_layer.mask

        monkeypatch.setattr(ref_layer, "forward", forward)


def assert_grads_close(got, want, tol, msg):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].shape == want[key].shape, key
        scale = np.abs(want[key]).max()
        assert scale > 0, f"{msg} {key}: reference gradient is all zero, the test would prove nothing"
        got_k = to_host(got[key])
        np.testing.assert_allclose(got_k / scale, want[key] / scale, **tol, err_msg=f"{msg} {key}")


# ======================================================================================================
# fastconv float64 == reference float64


def test_simple_convnet_f64(rng, device):
    x, t = mnist_batch(rng)
    xd, td = to_device(x, device), to_device(t, device)
    fc = build(SimpleConvNet, fc_layers, np.float64, device=device)
    ref = build(SimpleConvNet, ref_layers, np.float64)
    for key in ref.params:
        np.testing.assert_array_equal(to_host(fc.params[key]), ref.params[key])
    np.testing.assert_allclose(fc.loss(xd, td), ref.loss(x, t), rtol=1e-12)
    assert_grads_close(fc.gradient(xd, td), ref.gradient(x, t), MODEL_TOL_F64, "SimpleConvNet f64")


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_deep_convnet_f64(rng, device, monkeypatch, ratio):
    x, t = mnist_batch(rng, n=4)
    xd, td = to_device(x, device), to_device(t, device)
    fc = build(DeepConvNet, fc_layers, np.float64, device=device)
    ref = build(DeepConvNet, ref_layers, np.float64)
    for layer in dropouts(fc) + dropouts(ref):
        layer.dropout_ratio = ratio
    g = fc.gradient(xd, td)
    if ratio:
        assert not to_host(dropouts(fc)[0].mask).all()
        share_dropout_masks(fc, ref, monkeypatch)
    else:
        assert to_host(dropouts(fc)[0].mask).all()
    r = ref.gradient(x, t)
    np.testing.assert_allclose(fc.last_layer.loss, ref.last_layer.loss, rtol=1e-12)
    assert_grads_close(g, r, MODEL_TOL_F64, f"DeepConvNet f64 ratio={ratio}")
    np.testing.assert_allclose(to_host(fc.predict(xd)), ref.predict(x), rtol=1e-10, atol=1e-12)


# ======================================================================================================
# fastconv float32 ~ reference float64 (given the same float32-rounded parameters)


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_convnet_f32_vs_reference_f64(rng, device, monkeypatch, cls):
    x, t = mnist_batch(rng, n=4)
    x = x.astype(np.float32)
    fc = build(cls, fc_layers, np.float32, device=device)
    ref = build(cls, ref_layers, np.float64)
    for key in ref.params:  # in place: the reference layers hold these arrays
        ref.params[key][...] = to_host(fc.params[key])
    g = fc.gradient(to_device(x, device), to_device(t, device))
    for key in g:
        assert g[key].dtype == np.float32, key
    if cls is DeepConvNet:
        share_dropout_masks(fc, ref, monkeypatch)
    r = ref.gradient(x.astype(np.float64), t)
    assert_grads_close(g, r, TOL[np.float32], f"{cls.__name__} f32")
    y = to_host(fc.predict(to_device(x, device)))
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
def test_save_load_params(rng, device, tmp_path, cls):
    x, _ = mnist_batch(rng, n=3)
    x = to_device(x.astype(np.float32), device)
    a = build(cls, fc_layers, np.float32, seed=1, device=device)
    path = tmp_path / "params.npz"
    a.save_params(str(path))
    b = build(cls, fc_layers, np.float32, seed=2, device=device)
    assert not np.array_equal(to_host(a.predict(x)), to_host(b.predict(x)))
    b.load_params(str(path))  # host arrays, bound in the layers: moved to the device again
    net_to_device(b, device)
    for key in a.params:
        np.testing.assert_array_equal(to_host(b.params[key]), to_host(a.params[key]))
        assert b.params[key].dtype == np.float32
    np.testing.assert_array_equal(to_host(b.predict(x)), to_host(a.predict(x)))


def test_optimizer_updates_in_place(rng, device):
    """Adam updates params in place; the layers read them at every call, so predictions change."""
    x, t = mnist_batch(rng, n=4)
    x = x.astype(np.float32)
    xd, td = to_device(x, device), to_device(t, device)
    net = build(SimpleConvNet, fc_layers, np.float32, device=device)
    before = to_host(net.predict(xd))
    held = dict(net.params)
    opt = Adam(lr=0.01)
    opt.update(net.params, net.gradient(xd, td))
    for key, arr in held.items():
        assert net.params[key] is arr  # same arrays, new values
    after = to_host(net.predict(xd))
    assert not np.allclose(after, before)
    # the updated net equals a reference net holding the updated parameters
    ref = build(SimpleConvNet, ref_layers, np.float64)
    for key in ref.params:
        ref.params[key][...] = to_host(net.params[key])
    np.testing.assert_allclose(after, ref.predict(x.astype(np.float64)), **TOL[np.float32])
    # and training decreases the loss on this batch
    loss0 = net.loss(xd, td)
    for _ in range(5):
        opt.update(net.params, net.gradient(xd, td))
    assert net.loss(xd, td) < loss0


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet])
def test_accuracy(rng, device, cls):
    x, t = mnist_batch(rng, n=7)
    x = x.astype(np.float32)
    xd, td = to_device(x, device), to_device(t, device)
    net = build(cls, fc_layers, np.float32, device=device)
    want = np.mean(np.argmax(to_host(net.predict(xd)), axis=1) == t)
    assert float(net.accuracy(xd, td, batch_size=3)) == pytest.approx(want)
    assert float(net.accuracy(xd, to_device(np.eye(10)[t], device))) == pytest.approx(want)
    assert 0.0 <= want <= 1.0


# ======================================================================================================
# LeNet, KerasCNN (Sequential with Xavier init)


NEW_CONVNETS = [LeNet, KerasCNN]
ALL_IMAGE_NETS = [SimpleConvNet, DeepConvNet, LeNet, KerasCNN]


def same_params(a, b):
    assert a.params.keys() == b.params.keys()
    for key in a.params:
        np.testing.assert_array_equal(to_host(a.params[key]), to_host(b.params[key]), err_msg=key)


@pytest.mark.parametrize("cls", NEW_CONVNETS)
def test_new_convnet_f64(rng, device, cls):
    x, t = mnist_batch(rng, n=5)
    xd, td = to_device(x, device), to_device(t, device)
    fc = build(cls, fc_layers, np.float64, device=device)
    ref = build(cls, ref_layers, np.float64)
    same_params(fc, ref)
    np.testing.assert_allclose(fc.loss(xd, td), ref.loss(x, t), rtol=1e-12)
    assert_grads_close(fc.gradient(xd, td), ref.gradient(x, t), MODEL_TOL_F64, f"{cls.__name__} f64")
    np.testing.assert_allclose(to_host(fc.predict(xd)), ref.predict(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", NEW_CONVNETS)
def test_new_convnet_f32_vs_reference_f64(rng, device, cls):
    x, t = mnist_batch(rng, n=4)
    x = x.astype(np.float32)
    fc = build(cls, fc_layers, np.float32, device=device)
    ref = build(cls, ref_layers, np.float64)
    for key in ref.params:
        ref.params[key][...] = to_host(fc.params[key])
    g = fc.gradient(to_device(x, device), to_device(t, device))
    for key in g:
        assert g[key].dtype == np.float32, key
    r = ref.gradient(x.astype(np.float64), t)
    assert_grads_close(g, r, TOL[np.float32], f"{cls.__name__} f32")
    y = to_host(fc.predict(to_device(x, device)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref.predict(x.astype(np.float64)), **TOL[np.float32])


def exact_cross_entropy(monkeypatch):
    """Drop the book's 1e-7 inside log(y + 1e-7) for a numerical check.

    Backprop's ``y - t`` is the exact gradient of ``-log(y)``; with the epsilon the loss differs by a term
    whose gradient (measured ~1.5e-7 on LeNet's b4, independent of h) exceeds GRAD_TOL and would hide real
    errors behind a looser tolerance.
    """
    monkeypatch.setattr(ref_functions, "_LOG_EPS", 0.0)


# numerical_gradient's h = 1e-4 crosses ReLU / max-pool kinks of KerasCNN (the error then jumps to ~7e-5 and
# vanishes at h = 1e-5), so the check differentiates u -> loss(p = STEP_SCALE * u): the same central
# differences with step h * STEP_SCALE in p. A power of two keeps p = STEP_SCALE * (p / STEP_SCALE) exact.
STEP_SCALE = 2.0**-7


def sampled_gradient_check(net, loss, grads, max_entries=40, scale=STEP_SCALE, skip=()):
    """The book's numerical_gradient on an evenly strided subset of every parameter, step ``1e-4 * scale``.

    ``p.reshape(-1)[::step]`` is a view, so writes through it reach the network's parameters. Keys in ``skip``
    (biases whose gradient is exactly zero) are left to the caller.
    """
    for key, p in net.params.items():
        if key in skip:
            continue
        assert p.flags.c_contiguous, key
        step = max(1, p.size // max_entries)
        view = p.reshape(-1)[::step]
        assert np.shares_memory(view, p), key
        before = view.copy()
        u = view / scale

        def f(u_, view=view):
            view[...] = u_ * scale
            return loss()

        num = numerical_gradient(f, u) / scale
        view[...] = u * scale
        np.testing.assert_array_equal(view, before, err_msg=f"{key} not restored")
        got = grads[key].reshape(-1)[::step]
        assert np.abs(num).max() > 1e-7, f"{key}: numerical gradient vanishes, the check would prove nothing"
        np.testing.assert_allclose(got, num, **GRAD_TOL, err_msg=key)


@pytest.mark.parametrize(
    "cls, input_dim", [(LeNet, (1, 12, 12)), (KerasCNN, (1, 10, 10))], ids=["LeNet", "KerasCNN"]
)
def test_reference_convnet_vs_numerical_gradient(monkeypatch, cls, input_dim):
    """Sanity of the oracle: the reference network's backprop == central differences (float64, tiny batch)."""
    exact_cross_entropy(monkeypatch)
    rng = np.random.default_rng(11)
    net = build(cls, ref_layers, np.float64, input_dim=input_dim)
    x = rng.random((2, *input_dim))
    t = np.array([3, 7])
    grads = net.gradient(x, t)
    sampled_gradient_check(net, lambda: net.loss(x, t), grads)


@pytest.mark.parametrize("cls", ALL_IMAGE_NETS)
@pytest.mark.parametrize("n", [1, 3])
def test_output_shapes(rng, device, cls, n):
    x, t = mnist_batch(rng, n=n)
    xd, td = to_device(x.astype(np.float32), device), to_device(t, device)
    net = build(cls, fc_layers, np.float32, device=device)
    y = net.predict(xd)
    assert y.shape == (n, 10)
    assert y.dtype == np.float32
    g = net.gradient(xd, td)
    assert g.keys() == net.params.keys()
    for key in g:
        assert g[key].shape == net.params[key].shape, key
        assert g[key].dtype == np.float32, key


def test_lenet_architecture():
    net = build(LeNet, fc_layers, np.float32)
    assert list(net.shapes.items()) == [
        ("Conv1", (6, 28, 28)), ("Sigmoid1", (6, 28, 28)), ("AvgPool1", (6, 14, 14)),
        ("Conv2", (16, 10, 10)), ("Sigmoid2", (16, 10, 10)), ("AvgPool2", (16, 5, 5)),
        ("Affine1", (120,)), ("Sigmoid3", (120,)), ("Affine2", (84,)), ("Sigmoid4", (84,)),
        ("Affine3", (10,)),
    ]
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (6, 1, 5, 5), "b1": (6,), "W2": (16, 6, 5, 5), "b2": (16,), "W3": (400, 120),
                      "b3": (120,), "W4": (120, 84), "b4": (84,), "W5": (84, 10), "b5": (10,)}
    assert net.layers["Conv1"].pad == 2 and net.layers["Conv2"].pad == 0
    assert isinstance(net.layers["AvgPool1"], fc_layers.AvgPooling)
    assert net.layers["AvgPool1"].stride == 2


def test_kerascnn_architecture():
    net = build(KerasCNN, fc_layers, np.float32)
    assert list(net.layers) == ["Conv1", "Relu1", "Conv2", "Relu2", "Pool1", "Affine1", "Relu3", "Affine2"]
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (32, 1, 3, 3), "b1": (32,), "W2": (64, 32, 3, 3), "b2": (64,),
                      "W3": (64 * 12 * 12, 128), "b3": (128,), "W4": (128, 10), "b4": (10,)}
    assert isinstance(net.layers["Pool1"], fc_layers.Pooling)
    assert isinstance(net.last_layer, fc_layers.SoftmaxWithLoss)


@pytest.mark.parametrize("cls", NEW_CONVNETS)
def test_xavier_uniform_init(cls):
    """Every weight lies in +-sqrt(6/(fan_in+fan_out)) and fills it uniformly; biases are zero."""
    net = build(cls, fc_layers, np.float64)
    for key, p in net.params.items():
        if key.startswith("b"):
            assert not p.any(), key
            continue
        if p.ndim == 4:
            FN, C, FH, FW = p.shape
            fan_in, fan_out = C * FH * FW, FN * FH * FW
        else:
            fan_in, fan_out = p.shape
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(p).max() <= bound, key
        # a uniform sample of n values reaches within a few bound/n of the edge and has std bound/sqrt(3)
        assert np.abs(p).max() >= bound * (1 - 20.0 / p.size), key
        if p.size >= 1000:
            assert abs(p.std() / (bound / np.sqrt(3)) - 1) < 0.05, key
            assert abs(p.mean()) < 0.05 * bound, key


def small_sequential(layers, dtype, init="xavier"):
    return Sequential((2, 8, 8), [conv(4, 3, pad=1), relu(), batch_norm(), max_pool(2), conv(3, 2, stride=2),
                                  sigmoid(), avg_pool(2, stride=1), dropout(0.25), affine(7), relu(),
                                  affine(5)], init=init, dtype=dtype, layers=layers)


@pytest.mark.parametrize("init", ["xavier", "he"])
def test_sequential_f64_vs_reference(rng, device, monkeypatch, init):
    """Every spec kind, fastconv vs reference, dropout masks shared, batch-norm running stats compared."""
    np.random.seed(3)
    fc = net_to_device(small_sequential(fc_layers, np.float64, init), device)
    np.random.seed(3)
    ref = small_sequential(ref_layers, np.float64, init)
    same_params(fc, ref)
    assert list(fc.shapes.values()) == [(4, 8, 8), (4, 8, 8), (4, 8, 8), (4, 4, 4), (3, 2, 2), (3, 2, 2),
                                        (3, 1, 1), (3, 1, 1), (7,), (7,), (5,)]
    assert set(fc.params) == {"W1", "b1", "gamma1", "beta1", "W2", "b2", "W3", "b3", "W4", "b4"}
    x = rng.standard_normal((6, 2, 8, 8))
    t = rng.integers(0, 5, size=6)
    xd = to_device(x, device)
    g = fc.gradient(xd, to_device(t, device))
    share_dropout_masks(fc, ref, monkeypatch, expect=1)
    r = ref.gradient(x, t)
    assert_grads_close(g, r, MODEL_TOL_F64, f"Sequential {init}")
    for attr in ("running_mean", "running_var"):
        np.testing.assert_allclose(to_host(getattr(fc.layers["BatchNorm1"], attr)),
                                   getattr(ref.layers["BatchNorm1"], attr), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_host(fc.predict(xd)), ref.predict(x), rtol=1e-10, atol=1e-12)


def test_he_init_scale():
    np.random.seed(0)
    net = Sequential(400, [affine(300), relu(), affine(10)], init="he", dtype=np.float64)
    assert abs(net.params["W1"].std() / np.sqrt(2.0 / 400) - 1) < 0.02
    assert abs(net.params["W2"].std() / np.sqrt(2.0 / 300) - 1) < 0.05


@pytest.mark.parametrize(
    "input_dim, specs, init, match",
    [
        ((1, 8, 8), [conv(2, 3), affine(3)], "glorot", "init"),
        ((1, 8), [affine(3)], "xavier", "input_dim"),
        ((1, 0, 8), [affine(3)], "xavier", "input_dim"),
        (10, [conv(2, 3)], "xavier", "needs \\(C, H, W\\)"),
        (10, [max_pool(2), affine(2)], "xavier", "pooling needs"),
        ((1, 4, 4), [conv(2, 5), affine(2)], "xavier", "larger than the padded input"),
        ((1, 3, 3), [max_pool(4), affine(2)], "xavier", "larger than the input"),
        ((1, 3, 3), [relu()], "xavier", "at least one conv or affine"),
        ((1, 3, 3), [("softmax", {})], "xavier", "unknown layer kind"),
    ],
)
def test_sequential_errors(input_dim, specs, init, match):
    with pytest.raises(ValueError, match=match):
        Sequential(input_dim, specs, init=init)


def test_sequential_spec_errors():
    with pytest.raises(TypeError, match=r"specs\[0\]"):
        Sequential((1, 4, 4), ["conv"])
    for bad in (lambda: conv(0, 3), lambda: conv(2, 3, stride=0), lambda: conv(2, 3, pad=-1),
                lambda: affine(1.5), lambda: max_pool(True), lambda: dropout(1.0)):
        with pytest.raises(ValueError):
            bad()


# ======================================================================================================
# build() and MODELS


def test_models_registry():
    assert models.MODELS == {"deepconvnet": DeepConvNet, "simpleconvnet": SimpleConvNet, "lenet": LeNet,
                             "kerascnn": KerasCNN, "vgg": models.VGG, "resnet": models.ResNet,
                             "mobilenet": models.MobileNet, "inception": models.InceptionNet}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_build_deterministic(name):
    np.random.seed(99)
    state = np.random.get_state()[1].copy()
    a = models.build(name, seed=5)
    b = models.build(name.upper(), seed=5)
    c = models.build(name, seed=6)
    assert type(a) is models.MODELS[name]
    same_params(a, b)
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)
    for p in a.params.values():
        assert p.dtype == np.float32
    # the caller's global stream is untouched
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    d = models.build(name, dtype=np.float64, seed=5)
    for key in a.params:
        assert d.params[key].dtype == np.float64
        np.testing.assert_array_equal(d.params[key].astype(np.float32), a.params[key])


def layers_of(obj, cls, seen=None):
    """Every fastconv layer of class ``cls`` reachable from a network's attributes (layer dicts, chains...)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, cls):
        return [obj]
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("fastconv."):
        children = list(vars(obj).values())
    else:
        return []
    return [p for c in children for p in layers_of(c, cls, seen)]


@pytest.mark.parametrize("name", ["deepconvnet", "simpleconvnet", "kerascnn", "vgg", "inception"])
def test_inference_keeps_no_pooling_argmax(rng, name):
    """predict(train_flg=False) runs max pooling without its int32 argmax (inference memory); a gradient
    after it runs the training forward again and gives what it gave before."""
    net = models.build(name, seed=3, dtype=np.float64)
    for layer in layers_of(net, fc_layers.Dropout):
        layer.dropout_ratio = 0.0  # the same gradient twice
    x, t = mnist_batch(rng, n=2)
    before = {k: v.copy() for k, v in net.gradient(x, t).items()}
    pools = layers_of(net, fc_layers.Pooling)
    assert pools and all(p.arg_max is not None for p in pools)
    net.predict(x, train_flg=False)
    assert all(p.arg_max is None for p in pools)
    after = net.gradient(x, t)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=f"{name} {k}")


def test_build_kwargs_and_layers(rng):
    net = models.build("lenet", seed=1, layers=ref_layers, dtype=np.float64)
    assert isinstance(net.layers["Conv1"], ref_layers.Convolution)
    x, _ = mnist_batch(rng, n=2)
    assert net.predict(x).shape == (2, 10)


def test_build_errors():
    with pytest.raises(ValueError, match="deepconvnet, simpleconvnet, lenet, kerascnn, vgg, resnet, mobilenet"):
        models.build("resnet50")
    with pytest.raises(TypeError, match="name"):
        models.build(LeNet)
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            models.build("lenet", seed=seed)


# ======================================================================================================
# MultiLayerNet, MultiLayerNetExtend (book ch06)


def mlp_batch(rng, n=8, d=20, classes=6):
    return rng.standard_normal((n, d)), rng.integers(0, classes, size=n)


def build_mlp(cls, layers, dtype, seed=SEED, device="cpu", **kw):
    np.random.seed(seed)
    net = cls(20, [12, 9, 7], 6, dtype=dtype, layers=layers, **kw)
    return net_to_device(net, device) if layers is fc_layers else net


EXTEND_ALL = {"use_batchnorm": True, "use_dropout": True, "dropout_ration": 0.3, "weight_decay_lambda": 0.05}
# A hidden Affine's bias feeds a BatchNormalization, which subtracts the batch mean: its gradient is exactly
# zero and what backprop returns is rounding noise (measured <= 1.6e-16 float64, 2.3e-8 float32 here, on
# gradients ~0.3).
BN_BIASES = ("b1", "b2", "b3")
BN_BIAS_ZERO = {np.float64: 1e-14, np.float32: 1e-6}


def split_bn_biases(g, r, dtype):
    """Check the BN-fed biases vanish in both gradients and return the rest for a normalised comparison."""
    for key in BN_BIASES:
        assert np.abs(to_host(g[key])).max() <= BN_BIAS_ZERO[dtype], key
        assert np.abs(r[key]).max() <= BN_BIAS_ZERO[np.float64], key
    keep = [k for k in r if k not in BN_BIASES]
    return {k: g[k] for k in keep}, {k: r[k] for k in keep}


def test_multilayernet_layout():
    net = build_mlp(MultiLayerNet, fc_layers, np.float32, activation="sigmoid")
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2", "Activation_function2",
                                "Affine3", "Activation_function3", "Affine4"]
    assert isinstance(net.layers["Activation_function1"], fc_layers.Sigmoid)
    assert {k: v.shape for k, v in net.params.items()} == {
        "W1": (20, 12), "b1": (12,), "W2": (12, 9), "b2": (9,), "W3": (9, 7), "b3": (7,), "W4": (7, 6),
        "b4": (6,)}
    ext = build_mlp(MultiLayerNetExtend, fc_layers, np.float32, **EXTEND_ALL)
    assert list(ext.layers)[:5] == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1", "Affine2"]
    assert list(ext.layers)[-1] == "Affine4"
    assert ext.params["gamma2"].shape == (9,) and "gamma4" not in ext.params
    assert ext.dropout_ration == 0.3 and ext.layers["Dropout1"].dropout_ratio == 0.3


@pytest.mark.parametrize("weight_init_std, expect", [("relu", 2.0), ("He", 2.0), ("sigmoid", 1.0),
                                                     ("xavier", 1.0), (0.01, None)])
def test_multilayernet_init_scale(weight_init_std, expect):
    np.random.seed(0)
    net = MultiLayerNet(500, [400], 10, weight_init_std=weight_init_std, dtype=np.float64)
    std = np.sqrt(expect / 500) if expect else 0.01
    assert abs(net.params["W1"].std() / std - 1) < 0.02
    assert not net.params["b1"].any()


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multilayernet_f64_vs_reference(rng, device, activation):
    x, t = mlp_batch(rng)
    xd, td = to_device(x, device), to_device(t, device)
    fc = build_mlp(MultiLayerNet, fc_layers, np.float64, activation=activation, weight_decay_lambda=0.1,
                   device=device)
    ref = build_mlp(MultiLayerNet, ref_layers, np.float64, activation=activation, weight_decay_lambda=0.1)
    same_params(fc, ref)
    np.testing.assert_allclose(to_host(fc.loss(xd, td)), ref.loss(x, t), rtol=1e-12)
    msg = f"MultiLayerNet {activation}"
    assert_grads_close(fc.gradient(xd, td), ref.gradient(x, t), MODEL_TOL_F64, msg)


def test_weight_decay_semantics(rng, device):
    """lambda adds 0.5*lambda*sum(W**2) over every W to the loss and lambda*W to every dW, nothing to db."""
    x, t = (to_device(a, device) for a in mlp_batch(rng))
    lam = 0.3
    plain = build_mlp(MultiLayerNet, fc_layers, np.float64, device=device)
    decay = build_mlp(MultiLayerNet, fc_layers, np.float64, weight_decay_lambda=lam, device=device)
    ws = [to_host(decay.params[f"W{i}"]) for i in range(1, 5)]
    np.testing.assert_allclose(to_host(decay.loss(x, t) - plain.loss(x, t)),
                               0.5 * lam * sum(np.sum(w**2) for w in ws), rtol=1e-12)
    g0, g1 = plain.gradient(x, t), decay.gradient(x, t)
    for i in range(1, 5):
        np.testing.assert_allclose(to_host(g1[f"W{i}"] - g0[f"W{i}"]), lam * ws[i - 1], rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_array_equal(to_host(g1[f"b{i}"]), to_host(g0[f"b{i}"]))


def test_multilayernet_extend_f64_vs_reference(rng, device, monkeypatch):
    """Batch norm + dropout + weight decay: gradients, running statistics, inference match the reference."""
    x, t = mlp_batch(rng)
    xd, td = to_device(x, device), to_device(t, device)
    fc = build_mlp(MultiLayerNetExtend, fc_layers, np.float64, device=device, **EXTEND_ALL)
    ref = build_mlp(MultiLayerNetExtend, ref_layers, np.float64, **EXTEND_ALL)
    same_params(fc, ref)
    g = fc.gradient(xd, td)
    assert not to_host(dropouts(fc)[0].mask).all()
    share_dropout_masks(fc, ref, monkeypatch, expect=3)
    r = ref.gradient(x, t)
    assert {"gamma1", "beta1", "gamma3", "beta3"} <= g.keys()
    np.testing.assert_allclose(fc.last_layer.loss, ref.last_layer.loss, rtol=1e-12)
    assert_grads_close(*split_bn_biases(g, r, np.float64), MODEL_TOL_F64, "MultiLayerNetExtend f64")
    for i in range(1, 4):
        for attr in ("running_mean", "running_var"):
            np.testing.assert_allclose(to_host(getattr(fc.layers[f"BatchNorm{i}"], attr)),
                                       getattr(ref.layers[f"BatchNorm{i}"], attr), rtol=1e-12, atol=1e-15)
    # inference: running statistics, dropout scaling; the book's loss default is train_flg=False
    np.testing.assert_allclose(to_host(fc.predict(xd, train_flg=False)), ref.predict(x, train_flg=False),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(fc.loss(xd, td)), ref.loss(x, t), rtol=1e-12)


def test_multilayernet_extend_f32_vs_reference_f64(rng, device, monkeypatch):
    x, t = mlp_batch(rng)
    x32 = to_device(x.astype(np.float32), device)
    fc = build_mlp(MultiLayerNetExtend, fc_layers, np.float32, device=device, **EXTEND_ALL)
    ref = build_mlp(MultiLayerNetExtend, ref_layers, np.float64, **EXTEND_ALL)
    for key in ref.params:
        ref.params[key][...] = to_host(fc.params[key])
    g = fc.gradient(x32, to_device(t, device))
    for key in g:
        assert g[key].dtype == np.float32, key
    share_dropout_masks(fc, ref, monkeypatch, expect=3)
    r = ref.gradient(x, t)
    assert_grads_close(*split_bn_biases(g, r, np.float32), TOL[np.float32], "MultiLayerNetExtend f32")
    y = to_host(fc.predict(x32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref.predict(x), **TOL[np.float32])


@pytest.mark.parametrize(
    "cls, kw",
    [(MultiLayerNet, {"activation": "sigmoid", "weight_decay_lambda": 0.2}),
     (MultiLayerNetExtend, {"use_batchnorm": True, "weight_decay_lambda": 0.2})],
    ids=["MultiLayerNet", "MultiLayerNetExtend-bn"],
)
def test_reference_mlp_vs_numerical_gradient(monkeypatch, cls, kw):
    exact_cross_entropy(monkeypatch)
    rng = np.random.default_rng(5)
    x, t = mlp_batch(rng, n=4)
    net = build_mlp(cls, ref_layers, np.float64, **kw)
    grads = net.gradient(x, t)
    if cls is MultiLayerNetExtend:
        skip = BN_BIASES
        for key in skip:  # see BN_BIASES
            assert np.abs(grads[key]).max() <= BN_BIAS_ZERO[np.float64], key
        def loss():
            return net.loss(x, t, train_flg=True)
    else:
        skip = ()

        def loss():
            return net.loss(x, t)
    sampled_gradient_check(net, loss, grads, skip=skip)


def test_multilayernet_errors():
    with pytest.raises(ValueError, match="activation"):
        MultiLayerNet(4, [3], 2, activation="tanh")
    with pytest.raises(ValueError, match="weight_init_std"):
        MultiLayerNet(4, [3], 2, weight_init_std="lecun")
    with pytest.raises(TypeError, match="weight_init_std"):
        MultiLayerNet(4, [3], 2, weight_init_std=None)
    with pytest.raises(ValueError, match=r"hidden_size_list\[1\]"):
        MultiLayerNet(4, [3, 0], 2)
    with pytest.raises(ValueError, match="input_size"):
        MultiLayerNet(2.5, [3], 2)
    with pytest.raises(ValueError, match="weight_decay_lambda"):
        MultiLayerNet(4, [3], 2, weight_decay_lambda=-1)
    with pytest.raises(ValueError, match="dropout_ration"):
        MultiLayerNetExtend(4, [3], 2, use_dropout=True, dropout_ration=1.0)


def test_multilayernet_trains(rng, device):
    """A few SGD steps on a learnable problem reduce the loss (fastconv float32, batch norm + dropout)."""
    x = rng.standard_normal((64, 20)).astype(np.float32)
    t = np.argmax(x[:, :6], axis=1)
    x, t = to_device(x, device), to_device(t, device)
    net = build_mlp(MultiLayerNetExtend, fc_layers, np.float32, use_batchnorm=True, use_dropout=True,
                    dropout_ration=0.1, device=device)
    loss0 = net.loss(x, t)
    opt = SGD(lr=0.1)
    for _ in range(30):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < 0.7 * loss0
    assert net.accuracy(x, t) > 0.4  # chance is 1/6


# ======================================================================================================
# save / load for every model, the book's .pkl files


def all_models():
    return [
        ("SimpleConvNet", lambda: SimpleConvNet(), (1, 28, 28)),
        ("DeepConvNet", lambda: DeepConvNet(), (1, 28, 28)),
        ("LeNet", lambda: LeNet(), (1, 28, 28)),
        ("KerasCNN", lambda: KerasCNN(), (1, 28, 28)),
        ("MultiLayerNet", lambda: MultiLayerNet(784, [30, 20], 10), (784,)),
        ("MultiLayerNetExtend", lambda: MultiLayerNetExtend(784, [30, 20], 10, use_batchnorm=True,
                                                            use_dropout=True), (784,)),
        ("Sequential", lambda: Sequential((1, 28, 28), [conv(3, 3), relu(), batch_norm(), max_pool(2),
                                                        affine(10)]), (1, 28, 28)),
    ]


@pytest.mark.parametrize("name, make, in_shape", all_models(), ids=[m[0] for m in all_models()])
def test_save_load_round_trip(rng, device, tmp_path, name, make, in_shape):
    x = rng.random((5, *in_shape)).astype(np.float32)
    t = rng.integers(0, 10, size=5)
    xd, td = to_device(x, device), to_device(t, device)
    np.random.seed(1)
    a = net_to_device(make(), device)
    a.gradient(xd, td)  # one training-mode pass: batch-norm running statistics exist
    path = tmp_path / "net.npz"
    a.save_params(path)
    np.random.seed(2)
    b = net_to_device(make(), device)
    b.gradient(to_device(x[::-1].copy(), device), td)
    assert not np.array_equal(to_host(a.predict(xd)), to_host(b.predict(xd)))
    b.load_params(path)  # host arrays, bound in the layers: moved to the device again
    net_to_device(b, device)
    for key in a.params:
        np.testing.assert_array_equal(to_host(b.params[key]), to_host(a.params[key]), err_msg=key)
        assert b.params[key].dtype == np.float32
    for key, (layer, attr, _) in a._buffers().items():
        loaded = to_host(getattr(b._buffers()[key][0], attr))
        np.testing.assert_array_equal(loaded, to_host(getattr(layer, attr)), err_msg=key)
    np.testing.assert_array_equal(to_host(b.predict(xd)), to_host(a.predict(xd)))
    # the layers hold the loaded arrays, so in-place optimizer updates keep reaching them
    before = to_host(b.predict(xd))
    for p in b.params.values():
        p *= 0.5
    assert not np.array_equal(to_host(b.predict(xd)), before)


def test_load_book_pickle(rng, tmp_path):
    """A DeepConvNet .pkl written the book's way (pickle.dump of a float64 params dict) loads and is cast."""
    np.random.seed(3)
    book = DeepConvNet(dtype=np.float64, layers=ref_layers)
    params = {key: val for key, val in book.params.items()}
    path = tmp_path / "deep_convnet_params.pkl"
    with open(path, "wb") as f:
        pickle.dump(params, f)
    net = DeepConvNet()
    net.load_params(str(path))
    x, _ = mnist_batch(rng, n=3)
    for key, value in params.items():
        assert net.params[key].dtype == np.float32
        np.testing.assert_array_equal(net.params[key], value.astype(np.float32))
    np.testing.assert_allclose(net.predict(x.astype(np.float32)), book.predict(x), **TOL[np.float32])


def test_load_params_checks(tmp_path):
    net = LeNet()
    good = dict(net.params)
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "W3"}, r"missing parameters \['W3'\]"),
        "shape": ({**good, "W3": np.zeros((401, 120), np.float32)}, r"W3 has shape \(401, 120\), expected"),
        "extra": ({**good, "W9": np.zeros(3, np.float32)}, r"unexpected entries \['W9'\]"),
        "dtype": ({**good, "b1": np.zeros(6, np.complex64)}, "b1 has dtype complex64"),
    }
    for what, (params, match) in cases.items():
        path = tmp_path / f"{what}.npz"
        save_params(params, path)
        before = {k: v.copy() for k, v in net.params.items()}
        with pytest.raises(ValueError, match=match):
            net.load_params(path)
        for key, value in before.items():  # a refused file changes nothing
            np.testing.assert_array_equal(net.params[key], value)
    with pytest.raises(ValueError, match="unknown parameter file type"):
        net.load_params(tmp_path / "params.h5")


# ======================================================================================================
# Convolution + Relu fused by the networks


def conv_relu_pairs(net):
    layers = layer_list(net)
    conv, relu = fc_layers.Convolution, fc_layers.Relu
    return sum(type(a) is conv and type(b) is relu for a, b in zip(layers, layers[1:]))


@pytest.mark.parametrize("cls", [SimpleConvNet, DeepConvNet, KerasCNN])  # (LeNet: sigmoid, nothing to fuse)
def test_conv_relu_fusion_same_bits_as_layer_by_layer(rng, device, monkeypatch, cls):
    """Each Convolution followed by a Relu runs fused (forward_relu); loss, gradients, predictions and the
    layers' state must be bit for bit those of running the layers one by one."""
    x, t = mnist_batch(rng, n=4)
    x, t = to_device(x.astype(np.float32), device), to_device(t, device)
    calls = []
    fused_fn = fc_layers.Convolution.forward_relu

    def counting(self, x, relu):
        calls.append(self)
        return fused_fn(self, x, relu)

    runs = []
    for fuse in (True, False):
        monkeypatch.setattr(fc_layers.Convolution, "forward_relu",
                            counting if fuse else (lambda self, x, relu: relu.forward(self.forward(x))))
        net = build(cls, fc_layers, np.float32, device=device)
        np.random.seed(7)  # the same dropout masks in both runs
        loss, grads = net.loss(x, t), {k: to_host(g) for k, g in net.gradient(x, t).items()}
        masks = [to_host(layer.mask) for layer in layer_list(net) if type(layer) is fc_layers.Relu]
        runs.append((loss, grads, to_host(net.predict(x)), masks))
    pairs = conv_relu_pairs(build(cls, fc_layers, np.float32))
    assert pairs > 0 and len(calls) == 3 * pairs  # loss, gradient, predict
    (l1, g1, y1, m1), (l2, g2, y2, m2) = runs
    assert l1 == l2
    np.testing.assert_array_equal(y1, y2)
    for key in g2:
        np.testing.assert_array_equal(g1[key], g2[key], err_msg=key)
    assert len(m1) == len(m2)
    for a, b in zip(m1, m2):
        np.testing.assert_array_equal(a, b)


def test_no_fusion_for_other_layer_modules(rng, monkeypatch):  # the reference runs on the host only
    """A network built on another layers module (here the reference) runs its layers one by one."""
    monkeypatch.setattr(fc_layers.Convolution, "forward_relu", lambda *a: pytest.fail("fused a foreign one"))
    net = build(DeepConvNet, ref_layers, np.float64)
    x, t = mnist_batch(rng, n=2)
    assert np.isfinite(net.loss(x, t))


def test_fast_paths_are_offered_by_the_layers(rng, device):
    """Networks reach the fused forward and the first layer's dW-only backward through methods of the layers
    (fused_forward, first_layer_backward); a layer offers them only for pairs it can fuse exactly, never for a
    subclass (whose forward or backward may differ), and other layer modules have no such methods."""
    W, b = to_device(rng.standard_normal((2, 1, 3, 3)), device), to_device(np.zeros(2), device)
    conv, relu = fc_layers.Convolution(W, b), fc_layers.Relu()
    assert conv.fused_forward(relu) is not None and conv.first_layer_backward() is not None
    for other in (fc_layers.Sigmoid(), ref_layers.Relu(), fc_layers.Pooling(2, 2)):
        assert conv.fused_forward(other) is None

    class LoggingConvolution(fc_layers.Convolution):
        def forward(self, x):
            calls.append("forward")
            return super().forward(x)

    calls = []
    sub = LoggingConvolution(W, b)
    assert sub.fused_forward(relu) is None and sub.first_layer_backward() is None
    x = to_device(rng.standard_normal((2, 1, 5, 5)), device)
    net = build(SimpleConvNet, fc_layers, np.float64, device=device)
    net.layers["Conv1"] = LoggingConvolution(net.params["W1"], net.params["b1"])
    net.predict(to_device(mnist_batch(rng, n=2)[0], device))
    assert calls == ["forward"]  # the subclass's own forward ran, not the fused pass
    assert not hasattr(ref_layers.Convolution(to_host(W), to_host(b)), "fused_forward")
    fused, plain = conv.fused_forward(relu)(x), relu.forward(fc_layers.Convolution(W, b).forward(x))
    np.testing.assert_array_equal(to_host(fused), to_host(plain))


@pytest.mark.parametrize("cls", ALL_IMAGE_NETS)
def test_first_convolution_skips_input_gradient(rng, device, monkeypatch, cls):
    """gradient() runs the first Convolution's backward without dx (backward_params) and its gradients are
    bit for bit those of the full backward."""
    x, t = mnist_batch(rng, n=3)
    x, t = to_device(x.astype(np.float32), device), to_device(t, device)
    calls = []
    params_only = fc_layers.Convolution.backward_params

    def counting(self, dout):
        calls.append(self)
        return params_only(self, dout)

    def full(self, dout):
        self.backward(dout)

    grads = []
    for skip in (True, False):
        monkeypatch.setattr(fc_layers.Convolution, "backward_params", counting if skip else full)
        net = build(cls, fc_layers, np.float32, device=device)
        np.random.seed(3)
        grads.append({k: to_host(g) for k, g in net.gradient(x, t).items()})
        first = layer_list(net)[0]
        if skip:
            assert calls == [first]
    for key in grads[1]:
        np.testing.assert_array_equal(grads[0][key], grads[1][key], err_msg=key)
