"""The block networks of fastconv.models (ResNet, VGG, MobileNet, InceptionNet, the DCGAN's two networks) on
fastconv.layers against the same networks on fastconv.reference.layers: loss and gradients (float64 tight, float32
with TOL), the reference against central differences, output shapes, save/load with batch-norm statistics, and
the DCGAN's training step.
"""

import fastconv.layers as fc_layers
import fastconv.reference.layers as ref_layers
import numpy as np
import pytest
from conftest import MODEL_TOL_BN_F32, MODEL_TOL_BN_F64, MODEL_TOL_F64, TOL, net_to_device, to_device, to_host
from fastconv import ops
from fastconv.models import InceptionNet, MobileNet, ResNet, VGG
from fastconv.models.dcgan import DCGAN, Discriminator, Generator, sample_grid
from test_models import assert_grads_close, exact_cross_entropy, sampled_gradient_check

SEED = 77

# Small versions of each network (the same code paths: strides, projections, depthwise, branches), so that the
# float64 reference runs them in well under a second.
SMALL = {
    "ResNet": (ResNet, {"n": 1, "widths": (4, 6, 8)}, (1, 12, 12)),
    "VGG": (VGG, {"blocks": ((4,), (6, 6)), "hidden_size": 12, "dropout": 0.0}, (1, 12, 12)),
    "MobileNet": (MobileNet, {"width": 0.25, "dropout": 0.0}, (1, 12, 12)),
    "InceptionNet": (InceptionNet, {"width": 0.25, "dropout": 0.0}, (1, 8, 8)),
}


def build(name, layers, dtype, device="cpu", seed=SEED):
    cls, kw, input_dim = SMALL[name]
    np.random.seed(seed)
    net = cls(input_dim=input_dim, dtype=dtype, layers=layers, **kw)
    return net_to_device(net, device) if layers is fc_layers else net


def batch(rng, name, n=4):
    _, _, input_dim = SMALL[name]
    return rng.random((n, *input_dim)), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_graph_net_f64_vs_reference(rng, device, name):
    x, t = batch(rng, name)
    xd, td = to_device(x, device), to_device(t, device)
    fc, ref = build(name, fc_layers, np.float64, device), build(name, ref_layers, np.float64)
    assert fc.params.keys() == ref.params.keys()
    np.testing.assert_allclose(fc.loss(xd, td), ref.loss(x, t), rtol=1e-12)
    tol = MODEL_TOL_BN_F64 if name == "MobileNet" else MODEL_TOL_F64
    assert_grads_close(fc.gradient(xd, td), ref.gradient(x, t), tol, f"{name} f64")
    # inference mode: the running statistics the training forward left behind
    np.testing.assert_allclose(to_host(fc.predict(xd)), ref.predict(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_graph_net_f32_vs_reference_f64(rng, device, name):
    x, t = batch(rng, name)
    x = x.astype(np.float32)
    fc, ref = build(name, fc_layers, np.float32, device), build(name, ref_layers, np.float64)
    for key in ref.params:
        ref.params[key][...] = to_host(fc.params[key])
    g = fc.gradient(to_device(x, device), to_device(t, device))
    assert all(v.dtype == np.float32 for v in g.values())
    tol = MODEL_TOL_BN_F32 if name == "MobileNet" else TOL[np.float32]
    assert_grads_close(g, ref.gradient(x.astype(np.float64), t), tol, f"{name} f32")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_reference_graph_net_vs_numerical_gradient(monkeypatch, name):
    """The oracle's backprop through residual adds, branches and batch norm == central differences."""
    exact_cross_entropy(monkeypatch)
    rng = np.random.default_rng(5)
    net = build(name, ref_layers, np.float64)
    x, t = batch(rng, name, n=3)
    grads = net.gradient(x, t)
    # every third parameter (and the last), 17 entries each: the first convolution, batch norms, projections,
    # branches and the classifier are all among them, at a third of the central differences
    keys = list(net.params)
    skip = [k for i, k in enumerate(keys) if i % 3 and i != len(keys) - 1]
    sampled_gradient_check(net, lambda: net.loss(x, t), grads, max_entries=17, skip=skip)


@pytest.mark.parametrize("cls", [ResNet, VGG, MobileNet, InceptionNet])
@pytest.mark.parametrize("n", [1, 3])
def test_full_size_output_shapes(rng, cls, n):
    np.random.seed(0)
    net = cls()
    y = net.predict(rng.random((n, 1, 28, 28)).astype(np.float32))
    assert y.shape == (n, 10) and y.dtype == np.float32
    assert np.isfinite(y).all()


def test_resnet20_layout():
    net = ResNet()
    convs = [k for k, v in net.params.items() if k.startswith("W") and v.ndim == 4]
    # 19 3x3 convolutions of ResNet-20 plus the two 1x1 projections, one affine layer
    assert sum(net.params[k].shape[2] == 3 for k in convs) == 19
    assert sum(net.params[k].shape[2] == 1 for k in convs) == 2
    assert [v.shape for k, v in net.params.items() if k.startswith("W") and v.ndim == 2] == [(64, 10)]
    assert not any(k.startswith("b") and not k.startswith("beta") for k in list(net.params)[:-1])


def test_save_load_keeps_batchnorm_statistics(rng, tmp_path):
    x, t = batch(rng, "ResNet")
    net = build("ResNet", fc_layers, np.float64)
    net.gradient(x, t)  # a training forward moves the running statistics
    before = net.predict(x)
    path = tmp_path / "resnet.npz"
    net.save_params(str(path))
    other = build("ResNet", fc_layers, np.float64, seed=SEED + 1)
    assert not np.allclose(other.predict(x), before)
    other.load_params(str(path))
    np.testing.assert_array_equal(other.predict(x), before)


def test_dcgan_shapes_and_step(rng):
    gan = DCGAN(seed=3)
    z = gan.noise(5)
    images = gan.generator.predict(z, train_flg=False)
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.float32
    assert np.abs(images).max() <= 1.0
    assert gan.discriminator.predict(images).shape == (5, 1)
    g_before = {k: v.copy() for k, v in gan.generator.params.items()}
    d_before = {k: v.copy() for k, v in gan.discriminator.params.items()}
    losses = [gan.train_step(rng.random((8, 1, 28, 28)).astype(np.float32) * 2 - 1) for _ in range(2)]
    assert all(np.isfinite(v) and v > 0 for pair in losses for v in pair)
    for before, net in ((g_before, gan.generator), (d_before, gan.discriminator)):
        for key, value in before.items():
            assert not np.array_equal(value, net.params[key]), f"{type(net).__name__} {key} did not move"


def test_dcgan_generator_crops_as_keras_same(rng):
    """The generator's transposed convolutions place their output as Keras' Conv2DTranspose(padding='same') does
    (TensorFlow's rule): cropped by (K - s)//2 rows and columns at the top/left and the rest at the bottom/right,
    so 1 and 2 for a 5x5 filter at stride 2 (torch-style padding=2, output_padding=1 would crop 2 and 1)."""
    g = Generator(noise_dim=4, dtype=np.float64)
    deconvs = [layer for layer in g.layers if type(layer).__name__ == "Deconvolution"]
    assert [d.stride for d in deconvs] == [1, 2, 2]
    for layer, size in zip(deconvs, (7, 7, 14)):
        x = rng.standard_normal((2, layer.W.shape[0], size, size))
        s = layer.stride
        first, last = (5 - s) // 2, 5 - s - (5 - s) // 2
        want = ops.deconv_forward(x, layer.W, None, s, (first, last, first, last))
        got = layer.forward(x)
        assert got.shape == (2, layer.W.shape[1], size * s, size * s)
        np.testing.assert_array_equal(got, want)


def test_dcgan_generator_gradient_through_discriminator(rng):
    """The generator's gradient, taken through the discriminator as train_step does, matches the same composite
    on the reference layers (float64, dropout off, batch norm in training mode)."""
    def pair(layers):
        np.random.seed(9)
        g, d = Generator(noise_dim=6, dtype=np.float64, layers=layers), Discriminator(dtype=np.float64, layers=layers)
        for layer in d.body.items:
            if hasattr(layer, "dropout_ratio"):
                layer.dropout_ratio = 0.0
        return g, d

    z = rng.standard_normal((3, 6))
    grads = []
    for layers in (fc_layers, ref_layers):
        g, d = pair(layers)
        fake = g.predict(z, train_flg=True)
        d.loss(fake, np.ones((3, 1)))
        g.backward(d.body.backward(d.last_layer.backward()))
        grads.append({k: getattr(layer, "d" + attr) for k, (layer, attr) in g._slots.items()})
    assert_grads_close(grads[0], grads[1], MODEL_TOL_F64, "DCGAN generator")


def test_sample_grid():
    images = np.linspace(-1, 1, 6 * 4).reshape(6, 1, 2, 2)
    grid = sample_grid(images, rows=2)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_allclose(grid[0:2, 0:2], (images[0, 0] + 1) / 2)
    np.testing.assert_allclose(grid[3:5, 6:8], (images[5, 0] + 1) / 2)
    assert grid[2].min() == 1.0  # the separating row is white
