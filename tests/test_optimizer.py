"""fastconv.optimizer (fused C++ update kernels) against fastconv.reference.optimizer.

Every optimizer runs side by side with the NumPy reference for several steps on a dict of awkward shapes, in
float32 and float64, with and without weight decay, with the learning rate changed mid-run; then thread-count
determinism, state_dict round trips, the in-place contract (same array objects; strided parameters take the
NumPy path in place, float16 ones the 16-bit kernels), bad input, and convergence on a quadratic.
"""

import fastconv
import fastconv._cpu
import numpy as np
import pytest
from conftest import TOL_OPTIM, net_to_device, to_device, to_host
from fastconv import _optim, ops
from fastconv import optimizer as F
from fastconv.models import DeepConvNet
from fastconv.reference import optimizer as R

# ======================================================================================================
# cases

# name -> non-default constructor arguments (so that a constructor ignoring one would be caught)
OPTIMIZERS = {
    "SGD": {"lr": 0.05},
    "Momentum": {"lr": 0.02, "momentum": 0.8},
    "Nesterov": {"lr": 0.02, "momentum": 0.85},
    "AdaGrad": {"lr": 0.03},
    "RMSprop": {"lr": 0.004, "decay_rate": 0.9},
    "Adam": {"lr": 0.003, "beta1": 0.8, "beta2": 0.99},
    "Adadelta": {"lr": 0.9, "rho": 0.9, "eps": 1e-5},
}
NAMES = list(OPTIMIZERS)
STATE = {"SGD": (), "Momentum": ("v",), "Nesterov": ("v",), "AdaGrad": ("h",), "RMSprop": ("h",),
         "Adam": ("m", "v"), "Adadelta": ("h", "d")}

# 0-D and 1-element parameters, odd sizes, a 1-D bias, 4-D conv weights, and two arrays above the kernels'
# parallel threshold (2**15 elements) so that 2 threads really split them.
SHAPES = {
    "scalar": (),
    "one": (1,),
    "odd": (7, 13),
    "b1": (17,),
    "W1": (16, 1, 3, 3),
    "W6": (64, 64, 3, 3),
    "W7": (1024, 50),
    "odd4": (3, 5, 7, 11),
}
STEPS = 6


def make(rng, dtype, shapes=SHAPES, device="cpu"):
    return {k: to_device(rng.standard_normal(s).astype(dtype), device) for k, s in shapes.items()}


def grad_seq(rng, dtype, n=STEPS, shapes=SHAPES, device="cpu"):
    return [make(rng, dtype, shapes, device) for _ in range(n)]


def host(d):
    """A dict of arrays with each one on the host."""
    return {k: to_host(v) for k, v in d.items()}


def shares_memory(a, b):
    return fastconv.get_array_module(a).shares_memory(a, b)


def assert_params_close(got, ref, dtype, msg):
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype == dtype, f"{msg} {k}"
        np.testing.assert_allclose(to_host(got[k]), ref[k], **TOL_OPTIM[dtype], err_msg=f"{msg} {k}")


def run_pair(name, dtype, weight_decay, rng, lr_change=True, device="cpu"):
    """Run fastconv (on ``device``) and the reference (on the host) side by side; returns (params, opt,
    params_ref, opt_ref, initial)."""
    kw = dict(OPTIMIZERS[name], weight_decay=weight_decay)
    opt, opt_ref = getattr(F, name)(**kw), getattr(R, name)(**kw)
    params = make(rng, dtype, device=device)
    initial = {k: v.copy() for k, v in host(params).items()}
    params_ref = {k: v.copy() for k, v in host(params).items()}
    for step, g in enumerate(grad_seq(rng, dtype, device=device)):
        if lr_change and step == STEPS // 2:  # a schedule setting optimizer.lr between updates
            opt.lr = opt.lr * 0.5
            opt_ref.lr = opt_ref.lr * 0.5
        opt.update(params, g)
        opt_ref.update(params_ref, host(g))
    return params, opt, params_ref, opt_ref, initial


# ======================================================================================================
# against the reference


@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["wd0", "wd"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(name, device, dtype, weight_decay, threads, rng):
    params, opt, params_ref, opt_ref, initial = run_pair(name, dtype, weight_decay, rng, device=device)
    impl = f"{name} {np.dtype(dtype).name} wd={weight_decay} t{threads}"
    assert_params_close(params, params_ref, dtype, impl)
    for k in params:  # the updates did something
        assert not np.array_equal(to_host(params[k]), initial[k]), f"{impl} {k} unchanged"
    for s in STATE[name]:
        assert_params_close(getattr(opt, s), getattr(opt_ref, s), dtype, f"{impl} state {s}")
    if name == "Adam":
        assert opt.iter == opt_ref.iter == STEPS


@pytest.mark.parametrize("name", NAMES)
def test_every_kernel_variant_matches_reference(name, device, dtype, isa, rng):
    """The baseline (SSE2) and AVX2 builds of the kernels, chosen by the ISA in use, give the reference's results."""
    expected = {"scalar": "baseline", "avx2": "avx2", "avx512": "avx2"}[isa]
    assert fastconv._cpu.optim_variant() == expected
    params, opt, params_ref, opt_ref, _ = run_pair(name, dtype, 0.01, rng, device=device)
    assert_params_close(params, params_ref, dtype, f"{name} {isa}")
    for s in STATE[name]:
        assert_params_close(getattr(opt, s), getattr(opt_ref, s), dtype, f"{name} {isa} state {s}")


@pytest.mark.parametrize("name", NAMES)
def test_lr_change_takes_effect(name, device, dtype, rng):
    """lr = 0 between updates: the parameters stop moving (state still advances, as in the reference)."""
    params, opt, params_ref, opt_ref, _ = run_pair(name, dtype, 0.0, rng, lr_change=False, device=device)
    frozen = {k: v.copy() for k, v in host(params).items()}
    opt.lr = opt_ref.lr = 0.0
    g = make(rng, dtype, device=device)
    opt.update(params, g)
    opt_ref.update(params_ref, host(g))
    if name in ("Momentum", "Nesterov"):  # the velocity still moves them
        assert not np.array_equal(to_host(params["W7"]), frozen["W7"])
    else:
        for k in params:
            np.testing.assert_array_equal(to_host(params[k]), frozen[k], err_msg=f"{name} {k}")
    assert_params_close(params, params_ref, dtype, name)


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_is_l2(name, device, dtype, rng):
    """weight_decay=w equals weight_decay=0 with the gradient g + w * p (the parameter before the step)."""
    w = 0.1
    kw = OPTIMIZERS[name]
    a, b = getattr(F, name)(**kw, weight_decay=w), getattr(F, name)(**kw)
    pa = make(rng, dtype, device=device)
    pb = {k: v.copy() for k, v in pa.items()}
    for g in grad_seq(rng, dtype, 3, device=device):
        gb = {k: g[k] + dtype(w) * pb[k] for k in g}
        a.update(pa, g)
        b.update(pb, gb)
    assert_params_close(pa, host(pb), dtype, name)


@pytest.mark.parametrize("name", NAMES)
def test_one_and_two_threads_bit_identical(name, device, dtype, num_threads):
    out = []
    for n in (1, 2):
        num_threads(n)
        params, opt, *_ = run_pair(name, dtype, 0.01, np.random.default_rng(5), device=device)
        out.append((host(params), {s: host(getattr(opt, s)) for s in STATE[name]}))
    (p1, s1), (p2, s2) = out
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=f"{name} {k}")
        for s in s1:
            np.testing.assert_array_equal(s1[s][k], s2[s][k], err_msg=f"{name} {s}[{k}]")


def test_reference_adadelta_matches_paper_by_hand():
    """Two Adadelta steps on one number, computed by hand from Zeiler (2012) Algorithm 1 (lr = 1)."""
    rho, eps = 0.9, 1e-6
    x, eg2, edx2 = 0.5, 0.0, 0.0
    for g in (0.2, -0.1):
        eg2 = rho * eg2 + (1 - rho) * g * g
        dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx * dx
        x = x + dx
    for mod in (R, F):
        p = {"x": np.array([0.5])}
        opt = mod.Adadelta(rho=rho, eps=eps)
        for g in (0.2, -0.1):
            opt.update(p, {"x": np.array([g])})
        np.testing.assert_allclose(p["x"], [x], rtol=1e-15, err_msg=mod.__name__)
        np.testing.assert_allclose(opt.d["x"], [edx2], rtol=1e-14, err_msg=mod.__name__)


# ======================================================================================================
# state: lazy creation, state_dict round trip


@pytest.mark.parametrize("name", NAMES)
def test_state_is_lazy_and_keyed_like_params(name, device, dtype, rng):
    opt = getattr(F, name)()
    for s in STATE[name]:
        assert getattr(opt, s) is None
    params = make(rng, dtype, device=device)
    opt.update(params, make(rng, dtype, device=device))
    for s in STATE[name]:
        st = getattr(opt, s)
        assert set(st) == set(params)
        for k in params:
            assert st[k].shape == params[k].shape and st[k].dtype == dtype
            assert not shares_memory(st[k], params[k])
    # a key added later gets its own state on its first update
    params["new"] = to_device(np.ones(3, dtype=dtype), device)
    grads = make(rng, dtype, device=device)
    grads["new"] = to_device(np.ones(3, dtype=dtype), device)
    opt.update(params, grads)
    for s in STATE[name]:
        assert getattr(opt, s)["new"].shape == (3,)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name, device, dtype, rng):
    kw = dict(OPTIMIZERS[name], weight_decay=0.01)
    a = getattr(F, name)(**kw)
    params = make(rng, dtype, device=device)
    grads = grad_seq(rng, dtype, 6, device=device)
    for g in grads[:3]:
        a.update(params, g)
    a.lr = a.lr * 0.7  # a scheduled lr is part of the state
    sd = a.state_dict()
    assert sd["type"] == name and sd["lr"] == a.lr and sd["weight_decay"] == 0.01
    saved_params = {k: v.copy() for k, v in params.items()}
    b = getattr(F, name)()  # default hyperparameters: all of them must come from the state dict
    b.load_state_dict(sd)
    for s in STATE[name]:  # loaded arrays are copies: later updates of b leave sd alone
        for k, arr in sd[s].items():
            assert not shares_memory(arr, getattr(b, s)[k])
    before = {s: {k: v.copy() for k, v in host(sd[s]).items()} for s in STATE[name]}
    for g in grads[3:]:
        a.update(params, g)
        b.update(saved_params, g)
    for k in params:
        np.testing.assert_array_equal(to_host(saved_params[k]), to_host(params[k]), err_msg=f"{name} {k}")
    for s in STATE[name]:  # the snapshot did not move with a either
        for k in before[s]:
            np.testing.assert_array_equal(to_host(sd[s][k]), before[s][k])
    if name == "Adam":
        assert sd["iter"] == 3 and a.iter == b.iter == 6


def test_state_dict_before_first_update_and_float64_state_into_float32(rng):
    a = F.Adam(lr=0.01)
    sd = a.state_dict()
    assert sd["m"] is None and sd["v"] is None and sd["iter"] == 0
    b = F.Adam()
    b.load_state_dict(sd)
    assert b.m is None and b.lr == 0.01
    # state saved in float64 continues float32 parameters in float32 (cast once, like the first update would)
    p = {"W": rng.standard_normal((5, 3)).astype(np.float32)}
    g = {"W": rng.standard_normal((5, 3)).astype(np.float32)}
    a.update(p, g)
    sd = a.state_dict()
    sd["m"] = {k: v.astype(np.float64) for k, v in sd["m"].items()}
    b.load_state_dict(sd)
    p2 = {"W": p["W"].copy()}
    a.update(p, g)
    b.update(p2, g)
    assert b.m["W"].dtype == np.float32
    np.testing.assert_array_equal(p2["W"], p["W"])


# ======================================================================================================
# in place


@pytest.mark.parametrize("name", NAMES)
def test_updates_network_params_in_place(name, device):
    """The same array objects are updated; the layers still hold them (layer.W is params['W1'])."""
    np.random.seed(0)
    net = net_to_device(DeepConvNet(), device)
    held = dict(net.params)
    before = {k: v.copy() for k, v in host(held).items()}
    rng = np.random.default_rng(1)
    grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in net.params.items()}
    opt = getattr(F, name)()
    opt.update(net.params, {k: to_device(g, device) for k, g in grads.items()})
    ref = {k: v.copy() for k, v in before.items()}
    getattr(R, name)().update(ref, grads)
    for k, arr in held.items():
        assert net.params[k] is arr
        assert not np.array_equal(to_host(arr), before[k]), k
        np.testing.assert_allclose(to_host(arr), ref[k], **TOL_OPTIM[np.float32], err_msg=k)
    for i, layer_idx in enumerate(net._PARAM_LAYERS):
        assert net.layers[layer_idx].W is net.params[f"W{i + 1}"]
        assert net.layers[layer_idx].b is net.params[f"b{i + 1}"]


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_and_float16_params_updated_in_place(name, rng):
    """Arrays the kernel cannot take (strided view, Fortran order, byte-swapped) get the NumPy formula, and float16
    parameters the 16-bit kernels, in place on the caller's array. The 16-bit kernels compute each step in
    float32 on the widened parameter and state and round both once (tests/test_half.py), so their oracle is the
    float32 reference with the parameter and its state rounded to float16 after every step: the same bits."""
    base = rng.standard_normal((6, 10))
    base0 = base.copy()
    params = {
        "view": base[:, ::3],
        "fortran": np.asfortranarray(rng.standard_normal((4, 5))),
        "half": rng.standard_normal(9).astype(np.float16),
        "swapped": rng.standard_normal(8).astype(">f8"),
        "plain": rng.standard_normal(8).astype(np.float32),
    }
    held = dict(params)
    ref = {k: np.array(v, copy=True) for k, v in params.items() if k != "half"}
    half32 = {"half": params["half"].astype(np.float32)}
    opt, opt_ref = getattr(F, name)(**OPTIMIZERS[name]), getattr(R, name)(**OPTIMIZERS[name])
    opt_half = getattr(R, name)(**OPTIMIZERS[name])
    for _ in range(3):
        grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
        opt.update(params, grads)
        opt_ref.update(ref, {k: g for k, g in grads.items() if k != "half"})
        opt_half.update(half32, {"half": grads["half"].astype(np.float32)})
        for a in (half32["half"], *(getattr(opt_half, n)["half"] for n in STATE[name])):
            a[...] = a.astype(np.float16)  # the 16-bit kernels store the parameter and its state in float16
    for k, arr in held.items():
        assert params[k] is arr
        if k == "half":
            assert arr.dtype == np.float16
            np.testing.assert_array_equal(arr, half32["half"].astype(np.float16), err_msg=f"{name} {k}")
            continue
        assert arr.dtype == ref[k].dtype
        tol = TOL_OPTIM[np.float32] if arr.dtype == np.float32 else TOL_OPTIM[np.float64]
        np.testing.assert_allclose(arr, ref[k], **tol, err_msg=f"{name} {k}")
    assert np.shares_memory(params["view"], base)
    np.testing.assert_allclose(base[:, ::3], ref["view"], **TOL_OPTIM[np.float64])
    untouched = np.ones(10, dtype=bool)
    untouched[::3] = False
    np.testing.assert_array_equal(base[:, untouched], base0[:, untouched])  # the view's neighbours are left alone


@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["wd0", "wd"])
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64, np.longdouble],
                         ids=["f16", "f32", "f64", "longdouble"])
def test_numpy_fallback_matches_reference_bit_for_bit(dt, weight_decay, rng):
    """The NumPy path for parameters the kernels cannot take (fastconv._optim._numpy_step, its own code)
    repeats the reference steps' operations in their order: the same bits in every float dtype."""
    cases = {
        "sgd": (R.sgd_step, 0, (0.1,)),
        "momentum": (R.momentum_step, 1, (0.1, 0.9)),
        "nesterov": (R.nesterov_step, 1, (0.1, 0.9)),
        "adagrad": (R.adagrad_step, 1, (0.1, 1e-7)),
        "rmsprop": (R.rmsprop_step, 1, (0.1, 0.9, 1e-7)),
        "adam": (R.adam_step, 2, (0.01, 0.9, 0.999, 1e-7)),
        "adadelta": (R.adadelta_step, 2, (1.0, 0.9, 1e-6)),
        "keras_nesterov": (R.keras_nesterov_step, 1, (0.1, 0.9)),
        "keras_adagrad": (R.keras_adagrad_step, 1, (0.1, 1e-7)),
        "keras_rmsprop": (R.keras_rmsprop_step, 1, (0.1, 0.9, 1e-7)),
    }
    for method, (step, ns, hyper) in cases.items():
        p = rng.standard_normal(37).astype(dt)
        st = [np.abs(rng.standard_normal(37)).astype(dt) for _ in range(ns)]
        p0, p_ref, st_ref = p.copy(), p.copy(), [s.copy() for s in st]
        for _ in range(3):
            g = rng.standard_normal(37).astype(dt)
            _optim._numpy_step(method, p, g, st, (*hyper, weight_decay))
            step(p_ref, g, *st_ref, *hyper, weight_decay)
        assert not np.array_equal(p, p0), method
        np.testing.assert_array_equal(p, p_ref, err_msg=method)
        for s, s_ref in zip(st, st_ref):
            np.testing.assert_array_equal(s, s_ref, err_msg=method)


def test_grads_cast_strided_and_aliased(rng):
    """float64 or strided gradients are cast / made contiguous once; a gradient that is the parameter itself."""
    p = rng.standard_normal((6, 4)).astype(np.float32)
    g64 = rng.standard_normal((4, 6)).T  # float64, not contiguous
    expect = p.copy()
    R.sgd_step(expect, np.ascontiguousarray(g64, dtype=np.float32), 0.1)
    F.SGD(lr=0.1).update({"W": p}, {"W": g64})
    np.testing.assert_array_equal(p, expect)
    q = rng.standard_normal(50).astype(np.float64)
    expect = q - 0.1 * q
    F.SGD(lr=0.1).update({"W": q}, {"W": q})
    np.testing.assert_array_equal(q, expect)


def test_empty_parameter(rng):
    p = {"e": np.zeros((0, 3)), "x": np.ones(2)}
    opt = F.Adam()
    opt.update(p, {"e": np.zeros((0, 3)), "x": np.ones(2)})
    assert p["e"].shape == (0, 3) and opt.m["e"].shape == (0, 3)
    assert p["x"][0] < 1.0


# ======================================================================================================
# per-array ops functions


def test_ops_functions_match_reference_steps(device, dtype, rng):
    n = 40000  # above the parallel threshold
    cases = [
        ("sgd", ops.sgd_update, R.sgd_step, 0, (0.1, 0.01)),
        ("momentum", ops.momentum_update, R.momentum_step, 1, (0.1, 0.9, 0.01)),
        ("nesterov", ops.nesterov_update, R.nesterov_step, 1, (0.1, 0.9, 0.01)),
        ("adagrad", ops.adagrad_update, R.adagrad_step, 1, (0.1, 1e-7, 0.01)),
        ("rmsprop", ops.rmsprop_update, R.rmsprop_step, 1, (0.1, 0.9, 1e-7, 0.01)),
        ("adam", ops.adam_update, R.adam_step, 2, (0.01, 0.9, 0.999, 1e-7, 0.01)),
        ("adadelta", ops.adadelta_update, R.adadelta_step, 2, (1.0, 0.9, 1e-6, 0.01)),
    ]
    keras_cases = [  # through optimizer_update: the Keras forms have no per-array function of their own
        ("keras_nesterov", R.keras_nesterov_step, ("v",), {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
        ("keras_adagrad", R.keras_adagrad_step, ("h",), {"lr": 0.1, "eps": 1e-7, "weight_decay": 0.01}),
        ("keras_rmsprop", R.keras_rmsprop_step, ("h",), {"lr": 0.1, "rho": 0.9, "eps": 1e-7, "weight_decay": 0.01}),
    ]
    for method, step, names, hyper in keras_cases:
        p_ref = rng.standard_normal(n).astype(dtype)
        st_ref = [np.abs(rng.standard_normal(n)).astype(dtype) for _ in names]
        params = {"w": to_device(p_ref.copy(), device)}
        state = {name: {"w": to_device(s.copy(), device)} for name, s in zip(names, st_ref)}
        for _ in range(3):
            g = rng.standard_normal(n).astype(dtype)
            ops.optimizer_update(method, params, {"w": to_device(g, device)}, state, **hyper)
            step(p_ref, g, *st_ref, *hyper.values())
        # the same operations in the same order: the reference's bits
        np.testing.assert_array_equal(to_host(params["w"]), p_ref, err_msg=method)
        for name, s_ref in zip(names, st_ref):
            np.testing.assert_array_equal(to_host(state[name]["w"]), s_ref, err_msg=method)
    for name, fn, step, ns, scalars in cases:
        p_ref = rng.standard_normal(n).astype(dtype)
        st_ref = [np.abs(rng.standard_normal(n)).astype(dtype) for _ in range(ns)]
        p, st = to_device(p_ref.copy(), device), [to_device(s.copy(), device) for s in st_ref]
        for _ in range(3):
            g = rng.standard_normal(n).astype(dtype)
            fn(p, to_device(g, device), *st, *scalars)
            step(p_ref, g, *st_ref, *scalars)
        np.testing.assert_allclose(to_host(p), p_ref, **TOL_OPTIM[dtype], err_msg=name)
        for s, s_ref in zip(st, st_ref):
            np.testing.assert_allclose(to_host(s), s_ref, **TOL_OPTIM[dtype], err_msg=name)


# ======================================================================================================
# bad input


def test_bad_dicts(rng):
    opt = F.Momentum()
    p = {"W": np.ones((2, 3)), "b": np.ones(3)}
    with pytest.raises(ValueError, match=r"grads: no gradient for parameter\(s\) \['b'\]"):
        opt.update(p, {"W": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"grads: key\(s\) \['extra'\] are not in params"):
        opt.update(p, {"W": np.ones((2, 3)), "b": np.ones(3), "extra": np.ones(1)})
    with pytest.raises(TypeError, match="params: expected a dict"):
        opt.update([np.ones(3)], {"W": np.ones(3)})
    with pytest.raises(TypeError, match="grads: expected a dict"):
        opt.update(p, None)
    assert opt.v is None  # nothing created by a failed update


def test_bad_arrays_leave_everything_unchanged(rng):
    W, b = np.ones((2, 3)), np.ones(3)
    opt = F.Adam()
    msg = r"grads\['b'\]: shape \(3, 1\), expected \(3,\) \(the shape of params\['b'\]\)"
    with pytest.raises(ValueError, match=msg):
        opt.update({"W": W, "b": b}, {"W": np.ones((2, 3)), "b": np.ones((3, 1))})
    np.testing.assert_array_equal(W, 1.0)  # W came first and was not updated
    assert opt.iter == 0 and opt.m is None
    with pytest.raises(TypeError, match=r"grads\['W'\]: dtype int64 is not supported.*astype"):
        opt.update({"W": W}, {"W": np.ones((2, 3), dtype=np.int64)})
    with pytest.raises(TypeError, match=r"params\['W'\]: dtype int32 is not supported"):
        opt.update({"W": np.ones(3, dtype=np.int32)}, {"W": np.ones(3)})
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['W'\]: array is read-only"):
        opt.update({"W": ro}, {"W": np.ones(3)})
    with pytest.raises(TypeError, match=r"params\['W'\]: expected a NumPy array .*got list"):
        opt.update({"W": [1.0, 2.0]}, {"W": np.ones(2)})
    with pytest.raises(TypeError, match=r"grads\['W'\]: cannot convert"):
        opt.update({"W": np.ones(2)}, {"W": [[1.0], [1.0, 2.0]]})
    with pytest.raises(ValueError, match=r"grads\['W'\]: shape"):
        opt.update({"W": np.ones(2)}, {"W": 1.0})  # no broadcasting


def test_bad_state(rng):
    opt = F.Momentum()
    W = np.ones((2, 3))
    opt.v = {"W": np.ones(4)}
    with pytest.raises(ValueError, match=r"v\['W'\]: shape \(4,\), expected \(2, 3\)"):
        opt.update({"W": W}, {"W": np.ones((2, 3))})
    opt.v = {"W": W}
    with pytest.raises(ValueError, match=r"v\['W'\]: shares memory with params\['W'\]"):
        opt.update({"W": W}, {"W": np.ones((2, 3))})
    np.testing.assert_array_equal(W, 1.0)


def test_mixed_dtypes_checked_before_any_update(rng):
    """float32 and float64 parameters go to two kernel calls; a bad float64 entry stops both before either runs."""
    W32, W64 = np.ones(4, dtype=np.float32), np.ones(4)
    opt = F.Momentum()
    opt.v = {"b64": np.zeros(3)}  # wrong shape, for the float64 parameter
    with pytest.raises(ValueError, match=r"v\['b64'\]: shape \(3,\), expected \(4,\)"):
        opt.update({"a32": W32, "b64": W64}, {"a32": np.ones(4, dtype=np.float32), "b64": np.ones(4)})
    np.testing.assert_array_equal(W32, 1.0)
    np.testing.assert_array_equal(W64, 1.0)


def test_assigned_strided_state_is_replaced_by_a_contiguous_copy(rng):
    p = {"W": rng.standard_normal((4, 6))}
    ref = {"W": p["W"].copy()}
    opt, opt_ref = F.Momentum(), R.Momentum()
    v0 = rng.standard_normal((6, 4)).T  # the state a user (or a loader) put there: not C-contiguous
    opt.v, opt_ref.v = {"W": v0}, {"W": v0.copy()}
    g = {"W": rng.standard_normal((4, 6))}
    opt.update(p, g)
    opt_ref.update(ref, g)
    assert opt.v["W"].flags.c_contiguous and opt.v["W"] is not v0
    np.testing.assert_array_equal(p["W"], ref["W"])
    np.testing.assert_array_equal(opt.v["W"], opt_ref.v["W"])


@pytest.mark.parametrize(
    "name, kw, exc, match",
    [
        ("SGD", {"lr": -0.1}, ValueError, r"lr must be in \[0, inf\)"),
        ("SGD", {"lr": float("nan")}, ValueError, "lr must be"),
        ("SGD", {"lr": "0.1"}, TypeError, "lr: expected a real number"),
        ("SGD", {"weight_decay": -1.0}, ValueError, "weight_decay must be"),
        ("Momentum", {"momentum": 1.5}, ValueError, r"momentum must be in \[0, 1\]"),
        ("RMSprop", {"decay_rate": -0.1}, ValueError, "decay_rate must be"),
        ("Adam", {"beta1": 1.0}, ValueError, r"beta1 must be in \[0, 1\)"),
        ("Adam", {"beta2": True}, TypeError, "beta2: expected a real number, got bool"),
        ("Adadelta", {"eps": 0.0}, ValueError, r"eps must be in \(0, inf\)"),
        ("Adadelta", {"rho": 2.0}, ValueError, "rho must be"),
    ],
)
def test_bad_hyperparameters(name, kw, exc, match):
    with pytest.raises(exc, match=match):
        getattr(F, name)(**kw)
    opt = getattr(F, name)()  # the same check when an attribute is changed between updates
    for k, v in kw.items():
        setattr(opt, k, v)
    W = np.ones(3)
    with pytest.raises(exc, match=match):
        opt.update({"W": W}, {"W": np.ones(3)})
    np.testing.assert_array_equal(W, 1.0)


def test_bad_state_dict():
    opt = F.Adam()
    with pytest.raises(ValueError, match="saved from 'SGD', cannot load into Adam"):
        opt.load_state_dict(F.SGD().state_dict())
    sd = F.Adam().state_dict()
    del sd["iter"]
    with pytest.raises(ValueError, match=r"missing entries \['iter'\]"):
        opt.load_state_dict(sd)
    sd = F.Adam().state_dict()
    sd["iter"] = -1
    with pytest.raises(ValueError, match="iter"):
        opt.load_state_dict(sd)
    sd = F.Adam().state_dict()
    sd["m"] = {"W": np.ones(2, dtype=np.int64)}
    with pytest.raises(TypeError, match=r"state_dict\['m'\]\['W'\]: dtype int64"):
        opt.load_state_dict(sd)
    sd = F.Adam().state_dict()
    sd["lr"] = -1.0
    with pytest.raises(ValueError, match="lr must be"):
        opt.load_state_dict(sd)
    with pytest.raises(TypeError, match="state_dict: expected a dict"):
        opt.load_state_dict([1, 2])
    assert opt.lr == 0.001 and opt.iter == 0  # nothing loaded from the failed calls


def test_ops_bad_input():
    p = np.ones(4)
    with pytest.raises(ValueError, match=r"grad: shape \(3,\), expected \(4,\) \(the shape of param\)"):
        ops.sgd_update(p, np.ones(3), 0.1)
    with pytest.raises(TypeError, match=r"v: dtype float32, expected float64"):
        ops.momentum_update(p, np.ones(4), np.zeros(4, dtype=np.float32), 0.1, 0.9)
    with pytest.raises(ValueError, match="m and v: the two state arrays share memory"):
        s = np.zeros(4)
        ops.adam_update(p, np.ones(4), s, s, 0.1, 0.9, 0.999)
    with pytest.raises(ValueError, match="method: unknown optimizer 'lion'"):
        ops.optimizer_update("lion", {}, {}, {})


def test_bindings_check_every_array():
    """The binding (lists of parameters, gradients and states) checks what ops.py already ensures."""
    C = fastconv._cpu
    p, g = np.ones(8), np.ones(8)
    msg = r"grads\['W'\]: shape \(7,\), expected \(8,\) \(the shape of params\['W'\]\)"
    with pytest.raises(ValueError, match=msg):
        C.sgd_update_f64([p], [np.ones(7)], 0.1, 0.0, ["W"])
    with pytest.raises(ValueError, match=r"grads: 2 arrays for 1 parameters"):
        C.sgd_update_f64([p], [g, g], 0.1, 0.0)
    with pytest.raises(TypeError, match=r"params\[0\]: dtype float64, expected float32"):
        C.sgd_update_f32([p], [g], 0.1, 0.0)
    with pytest.raises(TypeError, match=r"params\[0\]: expected a NumPy array"):
        C.sgd_update_f64([[1.0] * 8], [g], 0.1, 0.0)
    buf = np.zeros(16)
    with pytest.raises(ValueError, match=r"v\[0\]: shares memory with m\[0\]"):
        C.adam_update_f64([p], [g], [buf[:8]], [buf[4:12]], 0.1, 0.9, 0.999, 1e-7, 0.0)
    with pytest.raises(ValueError, match=r"v\['b'\]: shares memory with params\['b'\]"):
        C.momentum_update_f64([np.ones(2), p], [np.ones(2), g], [np.zeros(2), p], 0.1, 0.9, 0.0, ["W", "b"])
    with pytest.raises(ValueError, match=r"v\[0\]: array must be C-contiguous"):
        C.momentum_update_f64([p], [g], [np.zeros(16)[::2]], 0.1, 0.9, 0.0)
    ro = np.ones(8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\]: array is read-only"):
        C.sgd_update_f64([ro], [g], 0.1, 0.0)
    unaligned = np.frombuffer(bytearray(8 * 9), dtype=np.float64, count=8, offset=1)
    with pytest.raises(ValueError, match="not aligned"):
        C.sgd_update_f64([p], [unaligned], 0.1, 0.0)
    first = np.ones(3)  # a failing entry leaves the earlier ones unchanged
    with pytest.raises(ValueError):
        C.sgd_update_f64([first, p], [np.ones(3), np.ones(7)], 0.1, 0.0)
    np.testing.assert_array_equal(first, 1.0)
    # a gradient that is its own parameter (or overlaps its state) is copied first: p -= 0.5 * p
    q = np.full(40000, 2.0)
    C.sgd_update_f64([q], [q], 0.5, 0.0)
    np.testing.assert_array_equal(q, 1.0)
    v = np.zeros(5)
    C.momentum_update_f64([np.ones(5)], [v], [v], 1.0, 0.5, 0.0)  # g read as zeros, v stays 0
    np.testing.assert_array_equal(v, 0.0)


# ======================================================================================================
# gradient descent sanity: every optimizer minimises a quadratic

# lr per optimizer for f(x) = 0.5 * sum(a * (x - c)**2), a in [0.5, 2], halved every 400 updates through
# optimizer.lr (a schedule). a and c are in the parameter dtype, so that x = c is representable: otherwise the
# sign-like steps of RMSprop / Adam near the minimum cycle at about lr in float32. Measured max |x - c| after
# 1200 updates: float32 <= 2.4e-7, float64 <= 2e-10 (Adadelta, slowest: 0.24 after 400).
QUAD_LR = {"SGD": 0.3, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 0.5, "RMSprop": 0.01, "Adam": 0.05,
           "Adadelta": 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_minimises_quadratic(name, device, dtype):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 2.0, 11).astype(dtype)
    c = rng.standard_normal(11).astype(dtype)
    assert np.abs(c).max() > 0.5  # x starts at 0
    a, c, x = (to_device(v, device) for v in (a, c, np.zeros(11, dtype=dtype)))
    opt = getattr(F, name)(lr=QUAD_LR[name])
    for i in range(1200):
        if i and i % 400 == 0:
            opt.lr = opt.lr * 0.5
        opt.update({"x": x}, {"x": a * (x - c)})
    assert x.dtype == dtype
    np.testing.assert_allclose(to_host(x), to_host(c), rtol=0, atol=1e-5, err_msg=name)


def test_weight_decay_shifts_the_minimum(device):
    """With L2 the minimiser of 0.5*a*(x-c)**2 + 0.5*w*x**2 is a*c / (a + w)."""
    a, c, w = np.array([1.0, 2.0]), np.array([1.0, -1.0]), 0.5
    ad, cd, x = to_device(a, device), to_device(c, device), to_device(np.zeros(2), device)
    opt = F.SGD(lr=0.3, weight_decay=w)
    for _ in range(500):
        opt.update({"x": x}, {"x": ad * (x - cd)})
    np.testing.assert_allclose(to_host(x), a * c / (a + w), rtol=1e-10)
