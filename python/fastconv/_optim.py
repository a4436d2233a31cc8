"""The optimizer-update engine behind ``fastconv.optimizer``: one fused in-place kernel per parameter.

A parameter is updated by the kernel when it is a writeable, aligned, C-contiguous float32 / float64 / float16 /
bfloat16 array (native byte order); its state arrays are kept so (created as zeros, or replaced by a contiguous
copy in its dtype: a 16-bit parameter's state is 16-bit too, as in PyTorch, and its kernels compute each update
in float32 and round p and the state once). Any other writeable float array (a strided view, byte-swapped) is
updated in place by the NumPy formulas of ``_numpy_step``, which follow the kernels' order of operations. The gradient is cast to the
parameter's dtype and made contiguous once. A whole parameter set goes to the kernels in one binding call per
dtype (Python's per-parameter work is a few identity and flag tests; the binding checks each array). Arguments
are checked by ``fastconv._checks``; ``fastconv.ops`` re-exports the public functions.
"""

from __future__ import annotations

import numpy as np

from . import _checks as chk
from ._backend import KERNEL_DTYPES, array_module, kernel
from ._checks import check_param_dicts, optimizer_hyperparameters

__all__ = [
    "check_param_dicts",
    "optimizer_hyperparameters",
    "optimizer_update",
    "sgd_update",
    "momentum_update",
    "nesterov_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "adadelta_update",
]

# method -> (state arrays, scalars), both in the kernel's argument order
_OPTIM_ARGS = {
    "sgd": ((), ("lr", "weight_decay")),
    "momentum": (("v",), ("lr", "momentum", "weight_decay")),
    "nesterov": (("v",), ("lr", "momentum", "weight_decay")),
    "adagrad": (("h",), ("lr", "eps", "weight_decay")),
    "rmsprop": (("h",), ("lr", "decay_rate", "eps", "weight_decay")),
    "adam": (("m", "v"), ("lr_t", "beta1", "beta2", "eps", "weight_decay")),
    "adadelta": (("h", "d"), ("lr", "rho", "eps", "weight_decay")),
    # Keras 3's forms (fastconv.keras.optimizers), where they differ from the book's
    "keras_nesterov": (("v",), ("lr", "momentum", "weight_decay")),
    "keras_adagrad": (("h",), ("lr", "eps", "weight_decay")),
    "keras_rmsprop": (("h",), ("lr", "rho", "eps", "weight_decay")),
}


def _opt_names(key) -> tuple[str, str]:
    return ("param", "grad") if key is None else (f"params[{key!r}]", f"grads[{key!r}]")


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _kernel_ready(a: np.ndarray) -> bool:
    """Whether the kernels can update ``a`` in place (the binding checks the same, and writeability)."""
    f = a.flags
    return f.c_contiguous and f.aligned and a.dtype in KERNEL_DTYPES


def _kernel_grad(g: np.ndarray, dtype) -> np.ndarray:
    """``g`` as a C-contiguous aligned array of ``dtype``: itself when it is one, else one copy."""
    f = g.flags
    if g.dtype == dtype and f.c_contiguous and f.aligned:
        return g
    return array_module(g).array(g, dtype=dtype, order="C")


def _numpy_step(method: str, p, g, states: list, scalars: tuple) -> None:
    """The update of ``method`` in NumPy, in place, for a parameter the kernels cannot take (strided,
    byte-swapped, ...): the formulas of csrc/cpu/optim.h with their order of operations, so float32 and float64
    results equal the kernels' (tests compare both with fastconv.reference.optimizer)."""
    g = g.astype(p.dtype, copy=False)
    if np.may_share_memory(g, p) or any(np.may_share_memory(g, s) for s in states):
        g = g.copy()
    *hyper, weight_decay = scalars
    if weight_decay:
        g = g + weight_decay * p  # L2: the parameter before the step
    if method == "sgd":
        (lr,) = hyper
        p -= lr * g
    elif method == "keras_nesterov":  # v = v*momentum - g*lr; p += v*momentum - g*lr
        (v,), (lr, mu) = states, hyper
        v *= mu
        v -= g * lr
        p += v * mu - g * lr
    elif method in ("keras_adagrad", "keras_rmsprop"):  # epsilon inside the square root
        (h,) = states
        if method == "keras_adagrad":
            lr, eps = hyper
            h += g * g
        else:
            lr, rho, eps = hyper
            h *= rho
            h += (1 - rho) * (g * g)
        p -= lr * g / np.sqrt(h + eps)
    elif method in ("momentum", "nesterov"):
        (v,), (lr, mu) = states, hyper
        v *= mu
        v -= lr * g
        if method == "momentum":
            p += v
        else:  # the book's reformulated Nesterov
            p += mu * mu * v
            p -= (1 + mu) * lr * g
    elif method in ("adagrad", "rmsprop"):
        (h,) = states
        if method == "adagrad":
            lr, eps = hyper
            h += g * g
        else:
            lr, rho, eps = hyper
            _decaying_mean_sq(h, rho, g)
        p -= lr * g / (np.sqrt(h) + eps)
    elif method == "adam":
        (m, v), (lr_t, beta1, beta2, eps) = states, hyper
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g ** 2 - v)
        p -= lr_t * m / (np.sqrt(v) + eps)
    else:  # adadelta: h and d are the running means of g**2 and of the squared steps
        (h, d), (lr, rho, eps) = states, hyper
        _decaying_mean_sq(h, rho, g)
        dx = np.sqrt(d + eps) / np.sqrt(h + eps) * g
        _decaying_mean_sq(d, rho, dx)
        p -= lr * dx


def _decaying_mean_sq(a, rho: float, v) -> None:
    """``a = rho*a + (1 - rho)*v*v`` in place, rounded as the kernels do: ``a *= rho``, then ``((1 - rho)*v)*v``
    added."""
    a *= rho
    a += (1 - rho) * v * v


def optimizer_update(method: str, params, grads, state: dict, **hyper) -> None:
    """One optimizer step on every parameter, in place: the fused kernel of ``method`` per array.

    Every argument is checked before any array changes. Kernel-ready parameters (writeable, aligned,
    C-contiguous float32 / float64 / float16 / bfloat16) go to the kernels in one call per dtype; any other
    writeable float array is updated in place by the reference formula (the same results).

    Parameters
    ----------
    method : {'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adadelta', 'keras_nesterov', \
'keras_adagrad', 'keras_rmsprop'}
    params : dict of str to ndarray
        Parameters, writeable float arrays, updated in place.
    grads : dict of str to array_like
        Gradients with the keys of ``params``, each of its parameter's shape (cast to its dtype).
    state : dict of str to dict
        The method's state dicts by name (``{'v': ...}``, Adam ``{'m': ..., 'v': ...}``, Adadelta
        ``{'h': ..., 'd': ...}``), keyed like ``params``. Missing entries are created as zeros; entries of
        another dtype or layout are replaced by C-contiguous copies in the parameter's dtype.
    **hyper : float
        The method's scalars (see the ``*_update`` functions), checked by :func:`optimizer_hyperparameters`.

    Returns
    -------
    None
    """
    if method not in _OPTIM_ARGS:
        raise ValueError(f"method: unknown optimizer {method!r}, expected one of {list(_OPTIM_ARGS)}")
    state_names, scalar_names = _OPTIM_ARGS[method]
    if set(hyper) != set(scalar_names):
        raise TypeError(f"{method}: expected hyperparameters {list(scalar_names)}, got {sorted(hyper)}")
    checked = chk.optimizer_hyperparameters(**hyper)
    scalars = tuple(checked[n] for n in scalar_names)
    chk.check_param_dicts(params, grads)
    if set(state) != set(state_names):
        raise TypeError(f"state: expected the dicts {list(state_names)}, got {sorted(state)}")
    sdicts = [state[n] for n in state_names]
    for name, d in zip(state_names, sdicts):
        if not isinstance(d, dict):
            raise TypeError(f"state {name}: expected a dict of arrays, got {type(d).__name__}")
    # One pass checks every entry and gathers the kernel-ready parameters per dtype; nothing is written before
    # it has finished, so a bad entry leaves every parameter as it was. (Missing state is created as zeros on the
    # way, and state of another dtype or layout is converted: both equal what they replace.) The common case
    # costs a few identity and flag tests per parameter: the binding checks the shapes, dtypes and layouts of
    # the gradient and state arrays of kernel-ready parameters (raising the same messages); everything else
    # goes through the helpers below, which convert or raise the detailed errors.
    batches: dict = {}
    slow = []
    for key, p in params.items():
        g = grads[key]
        dt = p.dtype if type(p) is np.ndarray else None
        if (dt is _F32 or dt is _F64) and (f := p.flags).c_contiguous and f.aligned and f.writeable:
            if not (type(g) is np.ndarray and g.dtype is dt and (f := g.flags).c_contiguous and f.aligned):
                g = _kernel_grad(chk.opt_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]"), dt)
            b = batches.get(dt)
            if b is None:
                b = batches[dt] = [[] for _ in range(3 + len(sdicts))]
            b[0].append(key)
            b[1].append(p)
            b[2].append(g)
            for j, d in enumerate(sdicts):
                st = d.get(key)
                if st is None:
                    st = d[key] = array_module(p).zeros(p.shape, dtype=dt)
                elif not (type(st) is np.ndarray and st.dtype is dt and (f := st.flags).c_contiguous and f.aligned
                          and f.writeable):  # another dtype or layout (loaded or assigned): a private copy
                    chk.opt_state(st, p, f"{state_names[j]}[{key!r}]", f"params[{key!r}]", False)
                    st = d[key] = array_module(p).array(st, dtype=dt, order="C")
                b[3 + j].append(st)
            continue
        p = chk.opt_param(p, f"params[{key!r}]")
        g = chk.opt_grad(g, p, f"grads[{key!r}]", f"params[{key!r}]")
        sts = []
        for name, d in zip(state_names, sdicts):
            st = d.get(key)
            if st is None:
                st = d[key] = array_module(p).zeros(p.shape, dtype=p.dtype)
            else:
                chk.opt_state(st, p, f"{name}[{key!r}]", f"params[{key!r}]", False)
                if st.dtype != p.dtype or not st.flags.writeable:
                    st = d[key] = array_module(p).array(st, dtype=p.dtype)
            sts.append(st)
        if _kernel_ready(p):  # float32 / float64 with a non-builtin descriptor (e.g. with metadata)
            b = batches.setdefault(p.dtype, [[] for _ in range(3 + len(sdicts))])
            for lst, a in zip(b, (key, p, _kernel_grad(g, p.dtype), *sts)):
                lst.append(a)
        else:
            slow.append((p, g, sts))
    if len(batches) + bool(slow) > 1:
        # the binding checks its own batch before it writes anything; with several batches, check all of them
        # here, so that a later one cannot fail after an earlier one has run
        for keys, ps, gs, *sl in batches.values():
            for i, key in enumerate(keys):
                chk.opt_grad(gs[i], ps[i], f"grads[{key!r}]", f"params[{key!r}]")
                for name, lst in zip(state_names, sl):
                    chk.opt_state(lst[i], ps[i], f"{name}[{key!r}]", f"params[{key!r}]", False)
    for dtype, (keys, ps, gs, *sl) in batches.items():
        kernel(f"{method}_update", dtype, ps[0])(ps, gs, *sl, *scalars, keys)
    for p, g, sts in slow:
        _numpy_step(method, p, g, sts, scalars)


def _opt_one(method: str, param, grad, states: dict, key, **hyper) -> None:
    """One parameter's update with caller-owned state arrays (same shape and dtype as the parameter)."""
    pname, gname = _opt_names(key)
    checked = chk.optimizer_hyperparameters(**hyper)
    scalars = tuple(checked[n] for n in _OPTIM_ARGS[method][1])
    p = chk.opt_param(param, pname)
    g = chk.opt_grad(grad, p, gname, pname)
    arrays = [chk.opt_state(s, p, name if key is None else f"{name}[{key!r}]", pname, True)
              for name, s in states.items()]
    if len(arrays) == 2 and np.may_share_memory(arrays[0], arrays[1]):
        raise ValueError(f"{' and '.join(states)}: the two state arrays share memory")
    if _kernel_ready(p) and all(_kernel_ready(s) for s in arrays):
        kernel(f"{method}_update", p.dtype, p)([p], [_kernel_grad(g, p.dtype)], *([s] for s in arrays), *scalars,
                                             [pname])
    else:
        _numpy_step(method, p, g, arrays, scalars)


def sgd_update(param, grad, lr: float, weight_decay: float = 0.0, *, key=None) -> None:
    """SGD step in place: ``param -= lr * g`` with ``g = grad + weight_decay * param``.

    Parameters
    ----------
    param : ndarray
        Writeable float array, updated in place.
    grad : array_like
        Gradient of ``param``'s shape (cast to its dtype).
    lr, weight_decay : float
        Learning rate and L2 coefficient (both >= 0).
    key : str, optional
        Name used in error messages (``params[key]``).

    Returns
    -------
    None
    """
    _opt_one("sgd", param, grad, {}, key, lr=lr, weight_decay=weight_decay)


def momentum_update(param, grad, v, lr: float, momentum: float, weight_decay: float = 0.0, *, key=None) -> None:
    """Momentum step in place: ``v = momentum*v - lr*g; param += v`` (``v`` of param's shape and dtype)."""
    _opt_one("momentum", param, grad, {"v": v}, key, lr=lr, momentum=momentum, weight_decay=weight_decay)


def nesterov_update(param, grad, v, lr: float, momentum: float, weight_decay: float = 0.0, *, key=None) -> None:
    """The book's Nesterov step in place: ``v = momentum*v - lr*g; param += momentum**2*v - (1+momentum)*lr*g``."""
    _opt_one("nesterov", param, grad, {"v": v}, key, lr=lr, momentum=momentum, weight_decay=weight_decay)


def adagrad_update(param, grad, h, lr: float, eps: float = 1e-7, weight_decay: float = 0.0, *, key=None) -> None:
    """AdaGrad step in place: ``h += g*g; param -= lr*g / (sqrt(h) + eps)``."""
    _opt_one("adagrad", param, grad, {"h": h}, key, lr=lr, eps=eps, weight_decay=weight_decay)


def rmsprop_update(param, grad, h, lr: float, decay_rate: float, eps: float = 1e-7, weight_decay: float = 0.0, *,
                   key=None) -> None:
    """RMSprop step in place: ``h = decay_rate*h + (1-decay_rate)*g*g; param -= lr*g / (sqrt(h) + eps)``."""
    _opt_one("rmsprop", param, grad, {"h": h}, key, lr=lr, decay_rate=decay_rate, eps=eps,
             weight_decay=weight_decay)


def adam_update(param, grad, m, v, lr_t: float, beta1: float, beta2: float, eps: float = 1e-7,
                weight_decay: float = 0.0, *, key=None) -> None:
    """The book's Adam step in place, with the bias-corrected step size ``lr_t`` given:
    ``m += (1-beta1)*(g-m); v += (1-beta2)*(g*g-v); param -= lr_t*m / (sqrt(v) + eps)``."""
    _opt_one("adam", param, grad, {"m": m, "v": v}, key, lr_t=lr_t, beta1=beta1, beta2=beta2, eps=eps,
             weight_decay=weight_decay)


def adadelta_update(param, grad, h, d, lr: float, rho: float, eps: float, weight_decay: float = 0.0, *,
                    key=None) -> None:
    """Adadelta step in place: ``h = rho*h + (1-rho)*g*g; dx = sqrt(d+eps)/sqrt(h+eps)*g;
    d = rho*d + (1-rho)*dx*dx; param -= lr*dx``."""
    _opt_one("adadelta", param, grad, {"h": h, "d": d}, key, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)
