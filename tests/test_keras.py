"""fastconv.keras: Keras 3's API on fastconv's kernels.

Checked without Keras: the Keras spec's numbers (parameter counts, output shapes, defaults, summary totals,
error messages), layer outputs against NumPy written from the definitions (NHWC, Keras' 'same' padding),
whole-model gradients against central differences (float64), training, callbacks, and save / load bit for
bit. Where Keras 3 and PyTorch are installed (not in CI), the same models are also compared with Keras itself
(same weights: same predictions, same weights after training steps); those tests skip cleanly otherwise.
"""

import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from fastconv import keras
from fastconv.keras import backend
from fastconv.keras import layers as L

# ======================================================================================================
# helpers


@pytest.fixture(autouse=True)
def _session():
    """Fresh layer names and a seeded generator for every test; float32 restored."""
    backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
    backend.set_floatx("float32")
    backend.set_image_data_format("channels_last")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tutorial_model():
    """The Keras tutorial's MNIST convnet, written as the tutorial writes it."""
    model = keras.Sequential()
    model.add(L.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(L.Conv2D(64, (3, 3), activation="relu"))
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Dropout(0.25))
    model.add(L.Flatten())
    model.add(L.Dense(128, activation="relu"))
    model.add(L.Dropout(0.5))
    model.add(L.Dense(10, activation="softmax"))
    return model


def conv_nhwc(x, k, b, stride, pads):
    """Keras' Conv2D from the definition: x (N, H, W, C), kernel (kh, kw, C, F), pads (t, b, l, r)."""
    x = np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    kh, kw = k.shape[:2]
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += np.einsum("nhwc,cf->nhwf", patch, k[i, j])
    return out + b


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def resnet_model(classes=3):
    """A small ResNet-style functional model: Conv2D, BatchNormalization, ReLU, Add, GlobalAveragePooling2D,
    Dense (the issue's acceptance 2)."""
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(h)
    for _ in range(2):
        s = L.Conv2D(8, 3, padding="same", use_bias=False)(h)
        s = L.BatchNormalization()(s)
        s = L.ReLU()(s)
        s = L.Conv2D(8, 3, padding="same", use_bias=False)(s)
        s = L.BatchNormalization()(s)
        h = L.ReLU()(L.Add()([h, s]))
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(h))


def blobs(rng, n=96, classes=3):
    """Images whose class is the colour channel that is brightest (learnable in a few steps)."""
    y = rng.integers(0, classes, n)
    x = rng.normal(0.0, 0.5, (n, 8, 8, 3)).astype(np.float32)
    x[np.arange(n), :, :, y] += 1.0
    return x, y


# ======================================================================================================
# the tutorial: names, shapes, parameter counts, summary


def test_tutorial_summary_totals_keras_params(capsys):
    model = tutorial_model()
    assert [la.name for la in model.layers] == [
        "conv2d",
        "conv2d_1",
        "max_pooling2d",
        "dropout",
        "flatten",
        "dense",
        "dropout_1",
        "dense_1",
    ]
    assert [la.output.shape for la in model.layers] == [
        (None, 26, 26, 32),
        (None, 24, 24, 64),
        (None, 12, 12, 64),
        (None, 12, 12, 64),
        (None, 9216),
        (None, 128),
        (None, 128),
        (None, 10),
    ]
    assert [la.count_params() for la in model.layers] == [320, 18496, 0, 0, 0, 1179776, 0, 1290]
    assert model.count_params() == 1_199_882
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    assert "│ conv2d (Conv2D)" in out and "(None, 26, 26, 32)" in out and "1,179,776" in out
    assert " Total params: 1,199,882 (4.58 MB)" in out
    assert " Trainable params: 1,199,882 (4.58 MB)" in out
    assert " Non-trainable params: 0 (0.00 B)" in out


def test_summary_counts_optimizer_and_nontrainable(capsys):
    model = resnet_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = blobs(np.random.default_rng(0), 8)
    model.train_on_batch(x, y)
    model.summary()
    out = capsys.readouterr().out
    nontrain = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    train = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert nontrain == 2 * 8 * 5  # moving mean and variance of 5 BatchNormalization layers
    assert f" Non-trainable params: {nontrain:,}" in out
    assert f" Optimizer params: {2 * train + 2:,}" in out  # iterations, learning rate, m and v (as Keras)
    assert "Connected to" in out and "add (Add)" in out


def test_import_fastconv_as_tf():
    import fastconv as tf

    y = tf.keras.utils.to_categorical([0, 2, 1], 3)
    np.testing.assert_array_equal(y, np.eye(3)[[0, 2, 1]])
    assert y.dtype == np.float64  # as Keras' NumPy to_categorical
    assert tf.keras.utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)  # trailing 1 dropped
    with pytest.raises(ValueError, match="out of range"):
        tf.keras.utils.to_categorical([3], 3)


def test_datasets_load_data_keras_shapes():
    try:
        (x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed here")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.uint8
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert y.max() == 9


# ======================================================================================================
# defaults and arguments (Keras 3's)


def test_keras_defaults():
    adam = keras.optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert keras.optimizers.SGD().learning_rate == 0.01
    rms = keras.optimizers.RMSprop()
    assert (rms.learning_rate, rms.rho, rms.epsilon) == (0.001, 0.9, 1e-7)
    ada = keras.optimizers.Adagrad()
    assert (ada.learning_rate, ada.initial_accumulator_value) == (0.001, 0.1)
    assert (keras.optimizers.Adadelta().learning_rate, keras.optimizers.Adadelta().rho) == (0.001, 0.95)
    bn = L.BatchNormalization()
    assert (bn.axis, bn.momentum, bn.epsilon) == (-1, 0.99, 1e-3)
    conv = L.Conv2D(4, 3)
    assert conv.kernel_size == (3, 3) and conv.strides == (1, 1) and conv.padding == "valid"
    assert type(conv.kernel_initializer).__name__ == "GlorotUniform" and conv.use_bias
    assert conv.data_format == "channels_last"
    assert L.MaxPooling2D().pool_size == (2, 2) and L.MaxPooling2D().strides == (2, 2)
    model = keras.Sequential([keras.Input((4,)), L.Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    assert type(model.optimizer).__name__ == "RMSprop"  # Keras' default optimizer


def test_batchnorm_starts_with_unit_moving_variance():
    bn = L.BatchNormalization()
    bn.build((None, 4, 4, 3))
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(gamma, 1)
    np.testing.assert_array_equal(beta, 0)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)
    assert [v.name for v in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_glorot_uniform_bound_uses_keras_fans():
    conv = L.Conv2D(64, (3, 3))
    conv.build((None, 26, 26, 32))
    k = conv.get_weights()[0]
    assert k.shape == (3, 3, 32, 64)  # Keras' kernel layout
    bound = np.sqrt(6.0 / (3 * 3 * 32 + 3 * 3 * 64))
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.95 * bound


# ======================================================================================================
# layers against their definitions


@pytest.mark.parametrize(
    "padding, stride, k, hw",
    [
        ("valid", 1, (3, 3), (9, 8)),
        ("same", 1, (3, 3), (7, 7)),
        ("same", 2, (3, 3), (8, 7)),  # odd total padding: the extra row / column after, as Keras
        ("same", 1, (2, 2), (5, 6)),  # even kernel: asymmetric
        ("valid", 2, (1, 3), (7, 9)),
    ],
)
def test_conv2d_matches_definition(rng, padding, stride, k, hw):
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    conv = L.Conv2D(5, k, strides=stride, padding=padding)
    out = conv(x)
    kernel, bias = conv.get_weights()
    bias = rng.standard_normal(5).astype(np.float32)
    conv.set_weights([kernel, bias])
    out = conv(x)
    pads = (
        (*same_pads(hw[0], k[0], stride), *same_pads(hw[1], k[1], stride))
        if padding == "same"
        else (0, 0, 0, 0)
    )
    ref = conv_nhwc(x.astype(np.float64), kernel, bias, stride, pads)
    assert out.shape == ref.shape == (2, *conv.compute_output_shape((None, *hw, 3))[1:3], 5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_conv2d_groups_and_channels_first(rng):
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    conv = L.Conv2D(6, 3, groups=2, activation="relu")
    out = conv(x)
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 3, 2, 6)
    ref = np.concatenate(
        [
            conv_nhwc(
                x[..., 2 * g : 2 * g + 2],
                kernel[..., 3 * g : 3 * g + 3],
                bias[3 * g : 3 * g + 3],
                1,
                (0, 0, 0, 0),
            )
            for g in range(2)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(out, np.maximum(ref, 0), rtol=1e-4, atol=1e-5)
    cf = L.Conv2D(6, 3, groups=2, activation="relu", data_format="channels_first")
    cf.build((None, 4, 6, 6))
    cf.set_weights([kernel, bias])
    np.testing.assert_allclose(cf(x.transpose(0, 3, 1, 2)), out.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)


def dilated(kernel, rate):
    """Keras' dilated kernel as the plain kernel it equals: taps spread apart by zeros."""
    kh, kw = kernel.shape[:2]
    out = np.zeros(((kh - 1) * rate[0] + 1, (kw - 1) * rate[1] + 1, *kernel.shape[2:]))
    out[:: rate[0], :: rate[1]] = kernel
    return out


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_dilated_depthwise_separable_match_definition(rng, padding):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    conv = L.Conv2D(4, 3, dilation_rate=(2, 1), padding=padding)
    out = conv(x)
    k, b = conv.get_weights()
    pads = (*same_pads(9, 5, 1), *same_pads(8, 3, 1)) if padding == "same" else (0, 0, 0, 0)
    np.testing.assert_allclose(out, conv_nhwc(x, dilated(k, (2, 1)), b, 1, pads), rtol=1e-4, atol=1e-5)
    dw = L.DepthwiseConv2D(3, depth_multiplier=2, padding=padding, use_bias=False)
    out = dw(x)
    (k,) = dw.get_weights()
    assert k.shape == (3, 3, 3, 2) and out.shape[-1] == 6
    pads = (*same_pads(9, 3, 1), *same_pads(8, 3, 1)) if padding == "same" else (0, 0, 0, 0)
    ref = np.concatenate(
        [conv_nhwc(x[..., c : c + 1], k[:, :, c : c + 1, :], 0.0, 1, pads) for c in range(3)], -1
    )
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)  # output channel c*m + j, as Keras
    sep = L.SeparableConv2D(5, 3, depth_multiplier=2, padding=padding, activation="relu")
    out = sep(x)
    kd, kp, b = sep.get_weights()
    assert (kd.shape, kp.shape, b.shape) == ((3, 3, 3, 2), (1, 1, 6, 5), (5,))
    mid = np.concatenate(
        [conv_nhwc(x[..., c : c + 1], kd[:, :, c : c + 1, :], 0.0, 1, pads) for c in range(3)], -1
    )
    np.testing.assert_allclose(out, np.maximum(mid @ kp[0, 0] + b, 0), rtol=1e-4, atol=1e-5)
    with pytest.raises(
        ValueError, match="`strides > 1` not supported in conjunction with `dilation_rate > 1`"
    ):
        L.Conv2D(2, 3, strides=2, dilation_rate=2)


def test_pooling_layers_match_definition(rng):
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    mp = L.MaxPooling2D((2, 2), padding="same")(x)  # 7 -> 4 rows: one -inf row after, which never wins
    xp = np.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0)), constant_values=-np.inf)
    np.testing.assert_array_equal(mp, xp.reshape(2, 4, 2, 3, 2, 3).max(axis=(2, 4)))
    ap = L.AveragePooling2D((2, 3), strides=(1, 1))(x)
    ref = np.stack(
        [
            np.stack([x[:, i : i + 2, j : j + 3].mean(axis=(1, 2)) for j in range(4)], axis=1)
            for i in range(6)
        ],
        axis=1,
    )
    np.testing.assert_allclose(ap, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(L.GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(L.GlobalMaxPooling2D()(x), x.max(axis=(1, 2)))
    assert L.GlobalAveragePooling2D(keepdims=True)(x).shape == (2, 1, 1, 3)
    with pytest.raises(NotImplementedError, match="valid pixels only"):
        L.AveragePooling2D(padding="same")(x)


def test_flatten_dense_reshape_padding_cropping(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(L.Flatten()(x), x.reshape(2, -1))  # Keras' (H, W, C) order
    np.testing.assert_array_equal(
        L.Flatten(data_format="channels_first")(x), x.transpose(0, 2, 3, 1).reshape(2, -1)
    )
    np.testing.assert_array_equal(L.Reshape((12, 5))(x), x.reshape(2, 12, 5))
    np.testing.assert_array_equal(L.Reshape((-1, 10))(x), x.reshape(2, 6, 10))
    z = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    np.testing.assert_array_equal(z, np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0))))
    np.testing.assert_array_equal(L.Cropping2D(((1, 0), (1, 2)))(x), x[:, 1:, 1:2])
    dense = L.Dense(4, activation="sigmoid")
    out = dense(x)  # Dense on the last axis of a 4-D input, as Keras
    k, b = dense.get_weights()
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(x @ k + b))), rtol=1e-5, atol=1e-6)
    sm = L.Softmax()(x)
    np.testing.assert_allclose(sm, np.exp(x) / np.exp(x).sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_batchnorm_per_channel(rng):
    x = rng.standard_normal((4, 3, 5, 6)).astype(np.float64) * 3 + 1
    backend.set_floatx("float64")
    bn = L.BatchNormalization(momentum=0.9)
    y = bn(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-10, atol=1e-12)
    _, _, mm, mv = bn.get_weights()
    np.testing.assert_allclose(
        mm, 0.1 * mean, rtol=1e-12
    )  # Keras: moving = momentum*moving + (1-momentum)*batch
    np.testing.assert_allclose(mv, 0.9 + 0.1 * var, rtol=1e-12)
    np.testing.assert_allclose(
        bn(x), (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-10
    )  # inference: moving statistics
    cf = L.BatchNormalization(axis=1)  # channels-first statistics over axis 1
    xc = x.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(cf(xc, training=True), y.transpose(0, 3, 1, 2), rtol=1e-10, atol=1e-12)


def test_dropout_is_keras_inverted_dropout(rng):
    x = np.ones((200, 50), np.float32)
    d = L.Dropout(0.25, seed=3)
    np.testing.assert_array_equal(d(x), x)  # inference: the identity
    y = d(x, training=True)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02


def test_add_concatenate(rng):
    a, b = (rng.standard_normal((2, 4, 4, 3)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(L.Add()([a, b]), a + b)
    np.testing.assert_array_equal(L.Concatenate()([a, b]), np.concatenate([a, b], axis=-1))
    np.testing.assert_array_equal(L.Concatenate(axis=2)([a, b]), np.concatenate([a, b], axis=2))
    i1, i2 = keras.Input((4, 4, 3)), keras.Input((4, 4, 3))
    m = keras.Model([i1, i2], L.Concatenate(axis=1)([L.Add()([i1, i2]), i2]))
    assert m.output_shape == (None, 8, 4, 3)
    np.testing.assert_allclose(m.predict([a, b], verbose=0), np.concatenate([a + b, b], axis=1), rtol=1e-6)
    np.testing.assert_allclose(
        m.predict({"input_layer": a, "input_layer_1": b}, verbose=0),
        np.concatenate([a + b, b], axis=1),
        rtol=1e-6,
    )


# ======================================================================================================
# gradients: the whole graph against central differences (float64)


def _train_loss(model, x, y):
    """The exact cross-entropy (no 1e-7 guard in the log) of a training-mode forward pass, from its scores."""
    model._setup_loss()
    outs, _ = model._run_forward(model._prepare_x(x), True, logits=model._fuse)
    _, z = model._scores(outs[0])
    kind = model._loss_obj.kind
    if kind == "binary":
        t = np.asarray(y, np.float64).reshape(z.shape)
        return float(np.mean(np.logaddexp(0, z) - t * z))
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    t = np.eye(z.shape[1])[np.asarray(y).reshape(-1)] if kind == "sparse" else np.asarray(y)
    return float(-(t * logp).sum() / z.shape[0])


@pytest.mark.parametrize(
    "loss", ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"]
)
def test_gradients_match_finite_differences(rng, loss):
    backend.set_floatx("float64")
    inp = keras.Input((7, 6, 2))
    a = L.Conv2D(3, 3, strides=2, padding="same", activation="relu")(inp)  # asymmetric 'same'
    b = L.Conv2D(3, (2, 1), padding="same", dilation_rate=(1, 2))(inp)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(b)
    b = L.SeparableConv2D(3, 2, padding="same", activation="relu")(b)
    b = L.MaxPooling2D(padding="same")(b)
    h = L.Add()([a, b])
    h = L.BatchNormalization()(h)
    h = L.ZeroPadding2D(1)(h)
    h = L.Cropping2D(((1, 0), (0, 1)))(h)
    c = L.GlobalAveragePooling2D()(h)
    d = L.Flatten()(L.Conv2D(2, 1, data_format="channels_first")(L.Reshape((3, 4, 5))(L.Flatten()(h))))
    h = L.Concatenate()([c, L.GlobalMaxPooling2D()(h), d])
    h = L.Dense(5, activation="sigmoid")(h)
    k = 1 if loss == "binary_crossentropy" else 4
    out = L.Dense(k, activation="sigmoid" if k == 1 else "softmax")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
    x = rng.standard_normal((5, 7, 6, 2))
    y = {
        "categorical_crossentropy": np.eye(4)[rng.integers(0, 4, 5)],
        "sparse_categorical_crossentropy": rng.integers(0, 4, 5),
        "binary_crossentropy": rng.integers(0, 2, (5, 1)).astype(np.float64),
    }[loss]
    trainable = model.trainable_weights
    before = [v.numpy() for v in trainable]
    snapshot = model.get_weights()
    model.train_on_batch(x, y)  # SGD with learning rate 1: the step is minus the gradient
    grads = [b - v.numpy() for b, v in zip(before, trainable)]
    model.set_weights(snapshot)
    h_ = 1e-6
    scale = max(np.abs(g).max() for g in grads)
    for v, g in zip(trainable, grads):
        flat = v.numpy().reshape(-1)
        for i in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            for sign in (1, -1):
                w = flat.copy()
                w[i] += sign * h_
                v.assign(w.reshape(v.shape))
                if sign == 1:
                    up = _train_loss(model, x, y)
                else:
                    num = (up - _train_loss(model, x, y)) / (2 * h_)
            model.set_weights(snapshot)
            # float64: central differences agree to ~1e-9 of the gradients' scale (a bias before batch norm
            # has a zero gradient: compared to the scale, not to itself)
            np.testing.assert_allclose(
                g.reshape(-1)[i], num, rtol=1e-6, atol=1e-8 * scale, err_msg=f"{v.path}[{i}]"
            )


# ======================================================================================================
# training, logs, callbacks


def test_fit_logs_history_and_progress(capsys, rng):
    x, y = blobs(rng)
    model = resnet_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    hist = model.fit(x, y, batch_size=16, epochs=3, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 3 and "Epoch 1/3" in out
    assert "5/5 - " in out and "ms/step - accuracy: " in out and " - loss: " in out and " - val_loss: " in out
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert hist.epoch == [0, 1, 2] and model.history is hist
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    model.fit(x, y, batch_size=32, epochs=1, verbose=1, validation_data=(x[:10], y[:10]))
    out = capsys.readouterr().out
    assert "3/3 ━━━━━━━━━━━━━━━━━━━━ " in out and "val_accuracy" in out
    res = model.evaluate(x, y, verbose=0)
    assert isinstance(res, list) and len(res) == 2 and 0 <= res[1] <= 1
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    p = model.predict(x, verbose=0)
    assert p.shape == (96, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.predict_on_batch(x[:7]), model.predict(x[:7], verbose=0))


def test_train_and_test_on_batch_report_their_own_batch(rng):
    """Keras 3.15 resets the metrics at each train_on_batch / test_on_batch call: each reports its batch."""
    x, y = blobs(rng, 32)
    model = resnet_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss1, _ = model.train_on_batch(x[:16], y[:16])
    assert np.isfinite(loss1)
    first = model.test_on_batch(x[:16], y[:16])
    second = model.test_on_batch(x[16:], y[16:])
    alone = model.evaluate(x[16:], y[16:], batch_size=16, verbose=0)
    assert second == pytest.approx(alone, rel=1e-6)
    assert first != pytest.approx(second)
    assert model.test_on_batch(x, y, return_dict=True) == pytest.approx(
        dict(zip(("loss", "accuracy"), model.evaluate(x, y, batch_size=32, verbose=0)))
    )


def test_tutorial_model_learns(rng):
    # a few steps of the tutorial's network on separable synthetic images: the loss must fall
    x = rng.random((128, 28, 28, 1), dtype=np.float32) * 0.1
    y = rng.integers(0, 10, 128)
    for c in range(10):
        x[y == c, 2 * c : 2 * c + 4, 2:10, 0] += 1.0
    model = tutorial_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    yc = keras.utils.to_categorical(y, 10)
    first = model.evaluate(x, yc, verbose=0)[0]
    model.fit(x, yc, batch_size=32, epochs=2, verbose=0)
    loss, acc = model.evaluate(x, yc, verbose=0)
    assert loss < 0.5 * first and acc > 0.8


def test_uint8_inputs_are_converted(rng):
    x = rng.integers(0, 256, (6, 28, 28, 1)).astype(np.uint8)
    model = tutorial_model()
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x.astype(np.float32), verbose=0))


def test_channels_first_model_equals_channels_last(rng):
    def build(fmt):
        shape = (9, 9, 2) if fmt == "channels_last" else (2, 9, 9)
        inp = keras.Input(shape)
        h = L.Conv2D(4, 3, padding="same", activation="relu", data_format=fmt)(inp)
        h = L.MaxPooling2D(data_format=fmt)(h)
        h = L.BatchNormalization(axis=-1 if fmt == "channels_last" else 1)(h)
        h = L.GlobalAveragePooling2D(data_format=fmt)(h)
        return keras.Model(inp, L.Dense(3, activation="softmax")(h))

    cl, cf = build("channels_last"), build("channels_first")
    cf.set_weights(cl.get_weights())
    x = rng.standard_normal((5, 9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(
        cf.predict(x.transpose(0, 3, 1, 2), verbose=0), cl.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    y = rng.integers(0, 3, 5)
    for m in (cl, cf):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cl.train_on_batch(x, y)
    cf.train_on_batch(x.transpose(0, 3, 1, 2), y)
    for a, b in zip(cl.get_weights(), cf.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_callbacks(tmp_path, rng):
    x, y = blobs(rng, 48)
    model = resnet_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    cbs = [
        keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=0),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1)),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.keras")),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.weights.npz"), monitor="loss", save_best_only=True, save_weights_only=True
        ),
    ]
    hist = model.fit(x, y, batch_size=16, epochs=10, verbose=0, callbacks=cbs)
    assert hist.epoch == [0, 1]  # no improvement by 100 after the first epoch: stopped after the second
    assert hist.history["learning_rate"] == [0.01, 0.02]
    assert model.optimizer.learning_rate == 0.02
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss" and len(rows) == 3
    assert (tmp_path / "m-01.keras").exists() and (tmp_path / "m-02.keras").exists()
    assert (tmp_path / "best.weights.npz").exists()
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[plateau])
    assert model.optimizer.learning_rate == pytest.approx(0.01)  # halved once, after the second epoch


# ======================================================================================================
# saving


def test_resnet_trains_and_round_trips_bit_exact(tmp_path, rng):
    x, y = blobs(rng)
    model = resnet_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    hist = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.6
    path = tmp_path / "resnet.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.npz"]
        cfg = json.loads(z.read("config.json"))
    assert cfg["class_name"] == "Functional" and cfg["compile_config"]["optimizer"]["class_name"] == "Adam"
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    # the optimizer's state came along: one more step gives the same weights
    model.train_on_batch(x[:16], y[:16])
    loaded.train_on_batch(x[:16], y[:16])
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequential_save_weights_and_json(tmp_path, rng):
    model = tutorial_model()
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    model.save_weights(tmp_path / "w.weights.npz")
    other = keras.models.model_from_json(model.to_json())
    assert [la.name for la in other.layers] == [la.name for la in model.layers]
    other.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    assert not loaded.compiled and loaded.count_params() == 1_199_882
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(tmp_path / "t.keras")
    with pytest.raises(ValueError, match=r"must end in `\.weights\.npz`"):
        model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        model.save(tmp_path / "m.zip")


def test_load_model_refuses_unknown_classes_and_misfit_weights(tmp_path):
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    cfg["config"]["layers"][1]["class_name"] = "Lambda"  # would run code in Keras; not buildable here
    bad = dict(members, **{"config.json": json.dumps(cfg)})
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in bad.items():
            z.writestr(n, data)
    with pytest.raises(TypeError, match="Could not locate class 'Lambda'"):
        keras.models.load_model(tmp_path / "bad.keras")
    cfg = json.loads(members["config.json"])
    cfg["config"]["layers"][1]["config"]["units"] = 5  # the weights no longer fit
    with zipfile.ZipFile(tmp_path / "misfit.keras", "w") as z:
        for n, data in dict(members, **{"config.json": json.dumps(cfg)}).items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="has shape"):
        keras.models.load_model(tmp_path / "misfit.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        keras.models.load_model(tmp_path / "junk.keras")


# ======================================================================================================
# Sequential mechanics and errors (Keras' messages)


def test_sequential_add_pop_and_deferred_build(rng):
    model = keras.Sequential()
    model.add(L.Dense(8, activation="relu"))
    model.add(L.Dense(3, activation="softmax"))
    assert not model.built
    with pytest.raises(ValueError, match="has not yet been built"):
        model.summary()
    p = model.predict(rng.standard_normal((4, 5)), verbose=0)  # built from the data
    assert model.built and p.shape == (4, 3) and model.input_shape == (None, 5)
    assert model.count_params() == 5 * 8 + 8 + 8 * 3 + 3
    last = model.pop()
    assert last.name == "dense_1" and len(model.layers) == 1 and model.output_shape == (None, 8)
    model.add(L.Dense(2))
    with pytest.raises(ValueError, match="unique names"):
        model.add(L.Dense(2, name="dense"))
    with pytest.raises(ValueError, match="Only instances of `keras.Layer`"):
        model.add(3)
    with pytest.raises(TypeError, match="There are no layers in the model"):
        keras.Sequential().pop()
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    assert [type(la).__name__ for la in model.layers] == ["Dense"]  # the Input is not a layer of the list


def test_errors_name_the_problem(rng):
    model = tutorial_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((8, 28, 28), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=r'Input 0 of layer "sequential" is incompatible with the layer: '
        r"expected shape=\(None, 28, 28, 1\), found shape=\(8, 28, 28\)",
    ):
        model.fit(x, np.zeros((8, 10)), verbose=0)
    with pytest.raises(ValueError, match=r"`target` and `output` must have the same shape"):
        model.fit(x[..., None], np.zeros(8), verbose=0)
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        model.fit(x[..., None], np.zeros((7, 10)), verbose=0)
    with pytest.raises(
        ValueError,
        match=r'layer "dense_2" is incompatible with the layer: expected axis -1 of '
        r"input shape to have value 4",
    ):
        d = L.Dense(2)
        d(keras.Input((4,)))
        d(keras.Input((5,)))
    with pytest.raises(ValueError, match="expected min_ndim=4|expected ndim=4, found ndim=2"):
        L.Conv2D(2, 3)(keras.Input((10,)))
    with pytest.raises(ValueError, match="Computed output size would be negative"):
        L.Conv2D(2, 5)(keras.Input((3, 3, 1)))
    for ident, exc, msg in [
        ("adamz", ValueError, "Could not interpret optimizer identifier: adamz"),
        ("nadam", NotImplementedError, "optimizer 'nadam' needs a kernel"),
    ]:
        with pytest.raises(exc, match=msg):
            model.compile(optimizer=ident, loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="Could not interpret loss identifier: cross"):
        model.compile(optimizer="adam", loss="cross")
    with pytest.raises(NotImplementedError, match="loss 'huber' needs a kernel"):
        model.compile(optimizer="adam", loss="huber")
    with pytest.raises(ValueError, match="Could not interpret metric identifier: acuracy"):
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["acuracy"])
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: rellu"):
        L.Dense(3, activation="rellu")
    with pytest.raises(ValueError, match="Could not interpret initializer identifier: glorot"):
        L.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match=r"Argument\(s\) not recognized: \{'lr': 0.1\}"):
        keras.optimizers.Adam(lr=0.1)
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense: {'unit': 3}"):
        L.Dense(4, unit=3)
    with pytest.raises(ValueError, match="Invalid value for argument `filters`"):
        L.Conv2D(0, 3)
    with pytest.raises(ValueError, match="invalid value for `units`"):
        L.Dense(-1)
    with pytest.raises(ValueError, match="Expected a float value between 0 and 1. Received: rate=1.5"):
        L.Dropout(1.5)
    with pytest.raises(
        ValueError, match='The `padding` argument must be one of "valid", "same". Received: full'
    ):
        L.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="data_format"):
        L.Conv2D(2, 3, data_format="nhwc")
    with pytest.raises(ValueError, match="You must call `compile\\(\\)`"):
        tutorial_model().fit(x[..., None], np.zeros((8, 10)), verbose=0)


def test_missing_kernels_raise_not_implemented():
    for make, msg in [
        (lambda: L.Conv2DTranspose(2, 3, dilation_rate=2), "dilated transposed"),
        (lambda: L.ReLU(max_value=6.0), "clipped"),
        (lambda: L.Dense(2, activation="gelu"), "gelu"),
        (lambda: keras.optimizers.Adam(weight_decay=0.01), "weight_decay"),
    ]:
        with pytest.raises(NotImplementedError, match=msg):
            make()
    model = keras.Sequential([keras.Input((4,)), L.Dense(3)])  # no softmax: probabilities are needed
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(NotImplementedError, match="from_logits=True"):
        model.fit(np.zeros((2, 4)), np.eye(3)[[0, 1]], verbose=0)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(np.zeros((2, 4)), np.eye(3)[[0, 1]], verbose=0)  # logits: fine


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        pass

    with pytest.raises(NotImplementedError, match="subclassed"):
        Net()


def test_shared_layer_two_inputs_trains_and_round_trips(tmp_path, rng):
    a, b = keras.Input((6,)), keras.Input((6,))
    shared = L.Dense(4, activation="relu")
    model = keras.Model([a, b], L.Dense(2, activation="softmax")(L.Concatenate()([shared(a), shared(b)])))
    assert len(model.weights) == 4 and model.count_params() == 6 * 4 + 4 + 8 * 2 + 2
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x1, x2, y = rng.standard_normal((8, 6)), rng.standard_normal((8, 6)), rng.integers(0, 2, 8)
    before = shared.get_weights()[0].copy()
    model.fit([x1, x2], y, epochs=2, verbose=0)
    assert not np.array_equal(before, shared.get_weights()[0])  # the gradients of both calls, summed
    model.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "s.keras")
    np.testing.assert_array_equal(loaded.predict([x1, x2], verbose=0), model.predict([x1, x2], verbose=0))


def test_nested_sequential_in_functional(rng):
    block = keras.Sequential(
        [keras.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", activation="relu")], name="block"
    )
    inp = keras.Input((6, 6, 2))
    out = L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(block(inp)))
    model = keras.Model(inp, out)
    assert model.count_params() == 3 * 3 * 2 * 3 + 3 + 3 * 2 + 2
    x, y = rng.standard_normal((8, 6, 6, 2)).astype(np.float32), rng.integers(0, 2, 8)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = block.get_weights()[0].copy()
    model.fit(x, y, verbose=0, epochs=2)
    assert not np.array_equal(before, block.get_weights()[0])  # the nested model's weights trained


# ======================================================================================================
# against Keras itself (optional: Keras 3 + PyTorch; skipped where absent, as in CI)


@pytest.fixture(scope="module")
def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import keras as real
        except Exception as exc:  # noqa: BLE001 (not installed, or its backend is missing)
            pytest.skip(f"Keras is not usable here ({type(exc).__name__}: {exc})")
    if real.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {real.backend.backend()}, these comparisons use its torch backend")
    return real


def _both(real, build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = build(real)
    fm = build(keras)
    fm.set_weights(km.get_weights())
    return km, fm


@pytest.mark.filterwarnings("ignore")  # Keras' own deprecation warnings under NumPy 2
def test_against_keras_predictions_and_training(real_keras, rng):
    def build(K):
        Lk = K.layers
        inp = K.Input((13, 11, 3))
        x = Lk.Conv2D(8, (3, 3), padding="same", activation="relu")(inp)
        x = Lk.Conv2D(6, (2, 2), strides=2, padding="same", use_bias=False)(x)  # (a bias before batch norm
        x = Lk.BatchNormalization()(x)  # has a zero gradient: noise)
        x = Lk.ReLU()(x)
        x = Lk.Add()([x, Lk.Conv2D(6, (1, 1))(x)])
        x = Lk.MaxPooling2D((2, 2), padding="same")(x)
        x = Lk.Concatenate()([Lk.Flatten()(x), Lk.GlobalAveragePooling2D()(x)])
        x = Lk.Dense(16, activation="relu")(x)
        return K.Model(inp, Lk.Dense(5, activation="softmax")(x))

    x = rng.standard_normal((7, 13, 11, 3)).astype(np.float32)
    km, fm = _both(real_keras, build)
    assert km.count_params() == fm.count_params()
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    y = rng.integers(0, 5, 7)
    for opt in ("adam", "sgd", "adagrad", "adadelta", "rmsprop", "nesterov"):
        km, fm = _both(real_keras, build)
        if opt == "nesterov":
            km_opt = real_keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
            opt = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
        else:
            km_opt = opt
        km.compile(optimizer=km_opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fm.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        for _ in range(3):
            km.train_on_batch(x, y)
            fm.train_on_batch(x, y)
        for a, b in zip(km.get_weights(), fm.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=opt)


@pytest.mark.filterwarnings("ignore")
def test_against_keras_tutorial_shapes(real_keras):
    mine = tutorial_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = real_keras.Sequential()
        theirs.add(
            real_keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1))
        )
        theirs.add(real_keras.layers.Conv2D(64, (3, 3), activation="relu"))
        theirs.add(real_keras.layers.MaxPooling2D(pool_size=(2, 2)))
        theirs.add(real_keras.layers.Dropout(0.25))
        theirs.add(real_keras.layers.Flatten())
        theirs.add(real_keras.layers.Dense(128, activation="relu"))
        theirs.add(real_keras.layers.Dropout(0.5))
        theirs.add(real_keras.layers.Dense(10, activation="softmax"))
    assert theirs.count_params() == mine.count_params() == 1_199_882
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in mine.get_weights()]
    assert [la.output.shape for la in theirs.layers] == [la.output.shape for la in mine.layers]


@pytest.mark.filterwarnings("ignore")
def test_against_keras_dilated_depthwise_separable(real_keras, rng):
    def build(K):
        Lk = K.layers
        inp = K.Input((9, 8, 3))
        a = Lk.Conv2D(4, 3, dilation_rate=(2, 1), padding="same")(inp)
        b = Lk.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(inp)
        c = Lk.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", activation="relu")(inp)
        h = Lk.GlobalMaxPooling2D()(Lk.Concatenate()([a, b, c]))
        return K.Model(inp, Lk.Dense(3, activation="softmax")(h))

    km, fm = _both(real_keras, build)
    assert [v.name for v in km.weights] == [v.name for v in fm.weights]
    x, y = rng.standard_normal((4, 9, 8, 3)).astype(np.float32), rng.integers(0, 3, 4)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    for m in (km, fm):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for _ in range(3):
        km.train_on_batch(x, y)
        fm.train_on_batch(x, y)
    for a, b in zip(km.get_weights(), fm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_against_keras_transposed_upsampling_leaky_tanh(real_keras, rng, padding):
    """The DCGAN tutorial's layers: Conv2DTranspose (strides 1 and 2, with and without output_padding), UpSampling2D
    (nearest, bilinear), LeakyReLU, ReLU(negative_slope), tanh, unequal strides: predictions and three SGD steps."""

    def build(K):
        Lk = K.layers
        inp = K.Input((5, 6, 3))
        a = Lk.Conv2DTranspose(4, (3, 3), strides=2, padding=padding, use_bias=False)(inp)
        a = Lk.LeakyReLU()(a)
        a = Lk.Conv2DTranspose(3, (5, 4), strides=(1, 2), padding=padding, activation="tanh")(a)
        b = Lk.UpSampling2D((2, 3), interpolation="bilinear")(inp)
        b = Lk.Conv2D(4, 3, strides=(2, 1), padding="same")(b)
        b = Lk.ReLU(negative_slope=0.1)(b)
        c = Lk.UpSampling2D(2)(inp)
        c = Lk.Conv2DTranspose(2, 3, strides=2, padding=padding, output_padding=1, activation="leaky_relu")(c)
        h = Lk.Concatenate()([Lk.GlobalAveragePooling2D()(t) for t in (a, b, c)])
        return K.Model(inp, Lk.Dense(3, activation="softmax")(h))

    km, fm = _both(real_keras, build)
    assert [v.shape for v in km.weights] == [v.shape for v in fm.weights]
    assert [tuple(la.output.shape) for la in km.layers] == [tuple(la.output.shape) for la in fm.layers]
    x, y = rng.standard_normal((4, 5, 6, 3)).astype(np.float32), rng.integers(0, 3, 4)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    for m in (km, fm):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for _ in range(3):
        km.train_on_batch(x, y)
        fm.train_on_batch(x, y)
    for a, b in zip(km.get_weights(), fm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_transposed_upsampling_leaky_round_trip(tmp_path, rng):
    """The new layers save and load (config and weights) and keep their outputs bit for bit."""
    inp = keras.Input((4, 4, 2))
    h = L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)(inp)
    h = L.LeakyReLU(0.1)(h)
    h = L.UpSampling2D((1, 2), interpolation="bilinear")(h)
    h = L.Activation("tanh")(h)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(h)))
    x = rng.standard_normal((3, 4, 4, 2)).astype(np.float32)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), before)
    assert again.layers[2].negative_slope == 0.1 and again.layers[3].interpolation == "bilinear"


def test_mse_loss_is_the_mean_of_squares_and_trains_through_the_output_activation(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="tanh")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    pred = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean((pred - y) ** 2), rtol=1e-6)
    kernel = model.get_weights()[0].astype(np.float64)
    model.train_on_batch(x, y)
    # one SGD step by hand: d mean((tanh(xW + b) - y)^2) / dW = x^T (2 (p - y) / size * (1 - p^2))
    p = np.tanh(x.astype(np.float64) @ kernel)
    grad = x.T @ (2 * (p - y) / y.size * (1 - p**2))
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.1 * grad, rtol=1e-5, atol=1e-6)
    assert keras.losses.get("mean_squared_error").name == "mean_squared_error"


@pytest.mark.filterwarnings("ignore")
def test_against_keras_mse_regression(real_keras, rng):
    def build(K):
        inp = K.Input((5, 5, 2))
        h = K.layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
        return K.Model(inp, K.layers.Dense(2, activation="sigmoid")(K.layers.Flatten()(h)))

    km, fm = _both(real_keras, build)
    x, y = rng.standard_normal((4, 5, 5, 2)).astype(np.float32), rng.random((4, 2)).astype(np.float32)
    for m in (km, fm):
        m.compile(optimizer="adam", loss="mse")
    for _ in range(3):
        np.testing.assert_allclose(fm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(km.get_weights(), fm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
