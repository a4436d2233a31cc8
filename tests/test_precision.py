"""fastconv.precision: the loss scaler's rule, float32 master weights, and the Trainer's mixed-precision runs.

The Trainer tests use a small softmax regression written in NumPy (float16 or bfloat16 parameters, float32
arithmetic, its loss layer honouring ``loss_scale``), so that what is checked here is the mixed-precision
bookkeeping alone: scaling, skipping, masters, history and checkpoints.
"""

import numpy as np
import pytest
from fastconv import precision
from fastconv.optimizer import SGD, Adam
from fastconv.trainer import Trainer

bf16 = pytest.importorskip("ml_dtypes").bfloat16


# ======================================================================================================
# the scaler


def test_loss_scaler_grows_and_backs_off_as_gradscaler():
    s = precision.LossScaler(init_scale=8.0, growth_interval=3)
    for _ in range(2):
        s.update(True)
    assert s.scale == 8.0
    s.update(True)
    assert (s.scale, s.good_steps) == (16.0, 0)
    s.update(True)
    s.update(False)
    assert (s.scale, s.good_steps, s.skipped) == (8.0, 0, 1)
    fresh = precision.LossScaler()
    assert (fresh.scale, fresh.growth_interval, fresh.growth_factor, fresh.backoff_factor) == (65536.0, 2000, 2, 0.5)
    other = precision.LossScaler()
    other.load_state(s.state())
    assert other.state() == s.state()


@pytest.mark.parametrize("kwargs", [{"init_scale": 0}, {"growth_factor": 1.0}, {"backoff_factor": 1.0},
                                    {"growth_interval": 0}])
def test_loss_scaler_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="LossScaler"):
        precision.LossScaler(**kwargs)


def test_dtype_of():
    assert precision.dtype_of("float16") == np.float16
    assert precision.dtype_of("bfloat16") == np.dtype(bf16)
    with pytest.raises(ValueError, match="precision: expected one of float32, float16, bfloat16, got 'half'"):
        precision.dtype_of("half")


# ======================================================================================================
# master weights


def test_masters_keep_the_updates_float16_cannot_hold():
    """lr * grad = 7.8e-5 per step on a weight of 1: float16's spacing there is 2**-10 (9.8e-4), so plain
    float16 SGD never moves; with float32 masters 100 steps move it by 100 * 0.01 * 2**-7, and the float16
    copy follows."""
    p = {"w": np.ones(4, np.float16)}
    plain = p["w"].copy()
    for _ in range(100):
        plain -= np.float16(0.01 * 2**-7)
    assert (plain == 1).all()
    mp = precision.MixedPrecision(p)
    sgd = SGD(lr=1e-2)
    view = p["w"]
    for _ in range(100):
        g = {"w": np.full(4, 2**-7 * mp.loss_scale, np.float16)}  # a gradient of 2**-7, scaled (exact)
        assert mp.step(p, mp.unscale(g), sgd.update)
    assert p["w"] is view  # in place: the layers keep their arrays
    np.testing.assert_allclose(mp.master["w"], 1 - 100 * 0.01 * 2**-7, rtol=1e-5)  # 100 float32 roundings
    assert p["w"].dtype == np.float16
    np.testing.assert_array_equal(p["w"], mp.master["w"].astype(np.float16))


def test_a_non_finite_gradient_skips_the_step_and_backs_off():
    p = {"w": np.ones(3, np.float16), "b": np.zeros(2, np.float16)}
    mp = precision.MixedPrecision(p)
    opt = Adam(lr=0.1)
    before = {k: v.copy() for k, v in mp.master.items()}
    grads = {"w": np.array([1, np.inf, 2], np.float16), "b": np.ones(2, np.float16)}
    assert not mp.step(p, mp.unscale(grads), opt.update)
    assert mp.loss_scale == 2.0**15 and mp.scaler.skipped == 1
    for k in p:
        np.testing.assert_array_equal(mp.master[k], before[k])
    assert opt.m is None  # the optimizer never saw the step
    assert mp.step(p, mp.unscale({"w": np.ones(3, np.float16), "b": np.ones(2, np.float16)}), opt.update)
    assert opt.m is not None and (p["w"] < 1).all()


def test_unscale_is_exact_and_float32():
    mp = precision.MixedPrecision({"w": np.zeros(5, np.float16)})
    g = np.array([65504, 1, 2**-24, -3, 0.5], np.float16)
    out = mp.unscale({"w": g})["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, g.astype(np.float32) / np.float32(65536))


@pytest.mark.parametrize("dtype", [np.float16, bf16], ids=["f16", "bf16"])
def test_masters_round_and_widen_as_numpy_casts(rng, dtype):
    """unscale and step convert with fastconv's kernels (contiguous float32 masters) and NumPy's casts (the rest):
    the same bits as NumPy's over the whole range (overflow to inf, subnormals, signed zeros, ties; NaN: the
    default quiet one, whose bits both keep), and a master an optimizer made float64 still rounds."""
    v = rng.standard_normal(4000).astype(np.float32) * np.float32(10.0) ** rng.integers(-12, 8, 4000)
    v = np.concatenate([v, np.array([np.inf, -np.inf, np.nan, 65504, 65519.99, 65520, 2**-25, 3 * 2**-26, 2**-24,
                                     -0.0, 0.0, 1 + 2**-11, 1 + 3 * 2**-11, 3.4e38], np.float32)])
    with np.errstate(over="ignore"):
        want = v.astype(dtype)
    for p in (np.zeros(v.size, dtype).reshape(2, -1), np.zeros((v.size, 2), dtype)[:, 0]):  # contiguous, strided
        mp = precision.MixedPrecision({"w": p})
        mp.master["w"][...] = v.reshape(p.shape)
        assert mp.step({"w": p}, {"w": np.zeros(p.shape, np.float32)}, SGD(lr=0.0).update)
        np.testing.assert_array_equal(p.reshape(-1).view(np.uint16), want.view(np.uint16))
        if mp.scaler is not None:
            mp.scaler.scale = 1.0
        np.testing.assert_array_equal(mp.unscale({"w": p})["w"].reshape(-1), want.astype(np.float32))

        def to_float64(master, grads):  # an update that leaves a float64 master behind
            for k in master:
                master[k] = master[k].astype(np.float64)

        assert mp.step({"w": p}, {"w": np.zeros(p.shape, np.float32)}, to_float64)
        np.testing.assert_array_equal(p.reshape(-1).view(np.uint16), want.view(np.uint16))


def test_bfloat16_has_no_scaler():
    mp = precision.MixedPrecision({"w": np.ones(2, bf16)})
    assert mp.scaler is None and mp.loss_scale == 1.0
    g = {"w": np.array([np.nan, 1], np.float32)}
    assert mp.step({"w": np.ones(2, bf16)}, g, SGD(lr=0.1).update)  # no skipping: the Trainer diverges instead


@pytest.mark.parametrize("params, match", [
    ({"w": np.ones(2, np.float32)}, "expected float16 or bfloat16"),
    ({"w": np.ones(2, np.float16), "b": np.ones(2, np.float32)}, "one dtype"),
])
def test_mixed_precision_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        precision.MixedPrecision(params)


# ======================================================================================================
# the Trainer


class _Loss:
    """Softmax cross-entropy in float32 on reduced-precision scores; backward honours ``loss_scale``."""

    def __init__(self):
        self.loss_scale = 1.0
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        s = x.astype(np.float32)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        self.y, self.t = e / e.sum(axis=1, keepdims=True), t
        self.loss = float(-np.mean(np.log(self.y[np.arange(len(t)), t] + 1e-7)))
        return self.loss

    def backward(self, dout=1):
        d = self.y.copy()
        d[np.arange(len(self.t)), self.t] -= 1
        return d * np.float32(dout * self.loss_scale / len(self.t))


class _SoftmaxRegression:
    """The book's network conventions (params, predict, loss, accuracy, gradient) in NumPy, any dtype."""

    def __init__(self, dtype, d=20, k=3, seed=0):
        rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.params = {"W": (0.1 * rng.standard_normal((d, k))).astype(dtype), "b": np.zeros(k, dtype)}
        self.last_layer = _Loss()
        self.grad_hook = None

    def predict(self, x, train_flg=False):
        return (x.astype(np.float32) @ self.params["W"].astype(np.float32)
                + self.params["b"].astype(np.float32)).astype(self.dtype)

    def loss(self, x, t):
        self._x = x
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x, t, batch_size=100):
        return float(np.mean(np.argmax(self.predict(x).astype(np.float32), axis=1) == t))

    def gradient(self, x, t):
        self.loss(x, t)
        d = self.last_layer.backward(1)
        with np.errstate(over="ignore"):  # a scaled gradient beyond float16's range becomes inf, as in a kernel
            gw = (x.astype(np.float32).T @ d).astype(self.dtype)
            gb = d.sum(axis=0).astype(self.dtype)
        grads = {"W": gw, "b": gb}
        if self.grad_hook is not None:
            self.grad_hook(grads)
        return grads


def _data(seed=1, n=240, d=20, k=3):
    rng = np.random.default_rng(seed)
    centers = 2 * rng.standard_normal((k, d))
    t = rng.integers(0, k, n)
    x = (centers[t] + rng.standard_normal((n, d))).astype(np.float32)
    return x[:200], t[:200], x[200:], t[200:]


def _trainer(net, precision_, **kw):
    x, t, xt, tt = _data()
    return Trainer(net, x, t, xt, tt, epochs=kw.pop("epochs", 3), mini_batch_size=20, optimizer="Adam",
                   optimizer_param={"lr": 0.05}, verbose=False, progress=False, seed=0, precision=precision_, **kw)


@pytest.mark.parametrize("name, dtype", [("float16", np.float16), ("bfloat16", bf16)])
def test_trainer_mixed_precision_learns_and_records_the_scale(name, dtype):
    net = _SoftmaxRegression(dtype)
    seen = []
    net.grad_hook = lambda g: seen.append(float(np.abs(g["W"].astype(np.float32)).max()))
    tr = _trainer(net, name)
    tr.train()
    assert tr.final_test_acc > 0.9
    assert net.params["W"].dtype == np.dtype(dtype) and tr.x_train.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(net.params["W"], tr.mixed.master["W"].astype(dtype))
    h = tr.history
    assert h["precision"] == name and len(h["loss_scale"]) == len(h["skipped_steps"]) == 3
    if name == "float16":
        # 2**16 times this network's gradients exceeds float16's 65504: the first steps overflow, are
        # skipped, and the scale backs off to a power of two that fits, where it stays (2000 steps to grow)
        scales = h["loss_scale"]
        assert h["skipped_steps"][0] >= 1 and h["skipped_steps"][1:] == [0, 0]
        assert scales[0] == scales[1] == scales[2] == 2.0 ** (16 - h["skipped_steps"][0])
        assert max(seen) > 100  # the network saw scaled gradients
    else:
        assert h["loss_scale"] == [1.0] * 3 and max(seen) < 10


def test_trainer_float16_skips_a_step_with_an_inf_gradient():
    net = _SoftmaxRegression(np.float16)
    calls = []

    def hook(g):
        calls.append(1)
        if len(calls) == 4:
            g["W"][0, 0] = np.inf

    net.grad_hook = hook
    tr = _trainer(net, "float16", epochs=1)
    tr.mixed.scaler.scale = 2.0**10  # small enough that this network's gradients fit in float16
    tr.train()
    assert tr.history["skipped_steps"] == [1] and tr.history["loss_scale"] == [2.0**9]
    assert np.isfinite(tr.mixed.master["W"]).all()


def test_trainer_bfloat16_diverges_on_an_inf_gradient():
    from fastconv.trainer import TrainingDiverged

    net = _SoftmaxRegression(bf16)
    net.grad_hook = lambda g: g["W"].__setitem__((0, 0), np.inf)
    with pytest.raises(TrainingDiverged, match="gradient 'W' is not finite"):
        _trainer(net, "bfloat16").train()


@pytest.mark.parametrize("name, dtype", [("float16", np.float16), ("bfloat16", bf16)])
def test_trainer_mixed_precision_resume_is_exact(tmp_path, name, dtype):
    """A checkpoint keeps master weights and scaler state: stop after epoch 1, resume, and the run ends with
    the parameters, masters, scale and history of an uninterrupted run."""
    whole = _trainer(_SoftmaxRegression(dtype), name)
    whole.train()
    first = _trainer(_SoftmaxRegression(dtype), name, epochs=1, checkpoint_dir=tmp_path)
    first.train()
    again = _trainer(_SoftmaxRegression(dtype, seed=5), name, checkpoint_dir=tmp_path, resume=True)
    assert again.current_epoch == 1
    again.train()
    for k in whole.network.params:
        np.testing.assert_array_equal(again.mixed.master[k], whole.mixed.master[k])
        np.testing.assert_array_equal(again.network.params[k].astype(np.float32),
                                      whole.network.params[k].astype(np.float32))
    assert again.history["loss_scale"] == whole.history["loss_scale"]
    assert again.history["test_acc"] == whole.history["test_acc"]


def test_trainer_precision_checks():
    with pytest.raises(ValueError, match="precision: 'float16' needs a network built in float16, this one's "
                                         "parameters are float32"):
        _trainer(_SoftmaxRegression(np.float32), "float16")
    with pytest.raises(ValueError, match="precision: expected one of"):
        _trainer(_SoftmaxRegression(np.float16), "fp16")
    plain = _trainer(_SoftmaxRegression(np.float32), "float32")
    assert plain.mixed is None
    net = _SoftmaxRegression(np.float16)
    net.last_layer = object()
    with pytest.raises(TypeError, match="loss_scale"):
        _trainer(net, "float16").train_step()


def test_checkpoint_written_without_mixed_precision_is_refused(tmp_path):
    _trainer(_SoftmaxRegression(np.float32), None, epochs=1, checkpoint_dir=tmp_path).train()
    with pytest.raises(ValueError, match="without mixed precision"):
        _trainer(_SoftmaxRegression(np.float16), "float16", checkpoint_dir=tmp_path, resume=True)


def test_bfloat16_params_round_trip_through_npz(tmp_path):
    """.npz cannot name bfloat16: save_params writes it as float32 (exact), and loading casts back."""
    from fastconv import io

    a = (np.arange(12, dtype=np.float32) / 7).astype(bf16)
    io.save_params({"w": a, "h": np.ones(2, np.float16)}, tmp_path / "p.npz")
    back = io.load_params(tmp_path / "p.npz")
    assert back["w"].dtype == np.float32 and back["h"].dtype == np.float16
    np.testing.assert_array_equal(back["w"].astype(bf16), a)
