"""Two-input layers Add and Concat: forward(a, b) and backward(dout) -> (da, db) against fastconv.reference,
numerical gradients, mixed dtypes and bad input."""

import numpy as np
import pytest
from conftest import GRAD_TOL, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import functions as ref_functions
from fastconv.reference import layers as ref_layers

SHAPES = [(1, 1), (2, 3, 4, 5), (5, 7), (3, 16, 7, 7), (4,)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_add(rng, device, dtype, shape):
    a, b, dout = (randn(rng, shape, dtype) for _ in range(3))
    ref, layer = ref_layers.Add(), layers.Add()
    out = to_host(layer.forward(to_device(a, device), to_device(b, device)))
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, ref.forward(a, b))  # one rounding, the same as NumPy's
    da, db = (to_host(g) for g in layer.backward(to_device(dout, device)))
    r_da, r_db = ref.backward(dout)
    np.testing.assert_array_equal(da, r_da)
    np.testing.assert_array_equal(db, r_db)
    assert da.dtype == db.dtype == dtype


def test_add_mixed_dtypes_and_gradient_copies(rng):
    a = randn(rng, (2, 3), np.float32)
    b = rng.standard_normal((2, 3))
    layer = layers.Add()
    out = layer.forward(a, b)
    assert out.dtype == np.float64  # NumPy's result_type
    np.testing.assert_array_equal(out, a + b)
    dout = rng.standard_normal((2, 3))
    da, db = layer.backward(dout)
    assert da.dtype == np.float32 and db.dtype == np.float64  # each input's own dtype
    assert not np.shares_memory(da, dout) and not np.shares_memory(db, dout)
    da[...] = 0  # writing one gradient leaves the other and dout alone
    np.testing.assert_array_equal(db, dout)


@pytest.mark.parametrize("axis", [1, 0, -1, 3])
def test_concat(rng, device, dtype, axis):
    base = (2, 3, 4, 5)
    ax = axis % 4
    shape_a = tuple(3 if i == ax else s for i, s in enumerate(base))
    a, b = randn(rng, shape_a, dtype), randn(rng, base, dtype)
    ref, layer = ref_layers.Concat(axis), layers.Concat(axis)
    out = to_host(layer.forward(to_device(a, device), to_device(b, device)))
    r_out = ref.forward(a, b)
    assert out.dtype == dtype and out.shape == r_out.shape
    np.testing.assert_array_equal(out, r_out)
    dout = randn(rng, out.shape, dtype)
    da, db = (to_host(g) for g in layer.backward(to_device(dout, device)))
    r_da, r_db = ref.backward(dout)
    assert da.shape == a.shape and db.shape == b.shape
    np.testing.assert_array_equal(da, r_da)
    np.testing.assert_array_equal(db, r_db)
    assert da.flags.c_contiguous and db.flags.c_contiguous
    assert not np.shares_memory(da, dout) and not np.shares_memory(db, dout)


def test_concat_of_four_inputs(rng, device, dtype):
    """Inception joins four branches: four inputs of different channel counts, forward and backward as the
    reference, each gradient the slice of dout its input produced."""
    xs = [randn(rng, (2, c, 3, 4), dtype) for c in (1, 3, 2, 5)]
    ref, layer = ref_layers.Concat(1), layers.Concat(1)
    out = to_host(layer.forward(*(to_device(x, device) for x in xs)))
    np.testing.assert_array_equal(out, ref.forward(*xs))
    dout = randn(rng, out.shape, dtype)
    grads = [to_host(g) for g in layer.backward(to_device(dout, device))]
    assert len(grads) == 4
    start = 0
    for x, g, r in zip(xs, grads, ref.backward(dout)):
        assert g.shape == x.shape
        np.testing.assert_array_equal(g, r)
        np.testing.assert_array_equal(g, dout[:, start:start + x.shape[1]])
        start += x.shape[1]


def test_concat_default_axis_is_channels(rng):
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    layer = layers.Concat()
    out = layer.forward(a, b)
    assert out.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(out[:, :3], a)
    np.testing.assert_array_equal(out[:, 3:], b)


@pytest.mark.parametrize("mod", ["fastconv", "reference"])
def test_add_concat_numerical_gradient(rng, mod):
    m = layers if mod == "fastconv" else ref_layers
    a, b = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2))
    for layer in (m.Add(), m.Concat(1), m.Concat(2)):
        w = rng.standard_normal(layer.forward(a, b).shape)

        def loss(_, layer=layer, w=w):
            return float(np.sum(w * layer.forward(a, b)))

        loss(None)
        da, db = layer.backward(w)
        name = type(layer).__name__
        np.testing.assert_allclose(da, ref_functions.numerical_gradient(loss, a), **GRAD_TOL, err_msg=name)
        np.testing.assert_allclose(db, ref_functions.numerical_gradient(loss, b), **GRAD_TOL, err_msg=name)


def test_concat_non_contiguous_inputs(rng, dtype):
    a = randn(rng, (2, 4, 6, 3), dtype).transpose(0, 3, 1, 2)  # (2, 3, 4, 6), channels-last memory
    b = randn(rng, (2, 5, 4, 12), dtype)[..., ::2]
    out = layers.Concat(1).forward(a, b)
    np.testing.assert_array_equal(out, np.concatenate((f64(a), f64(b)), axis=1))


@pytest.mark.parametrize(
    "f, exc, match",
    [
        (lambda: layers.Add().forward(np.zeros((2, 3)), np.zeros((3, 2))), ValueError,
         r"^b: shape \(3, 2\), expected \(2, 3\) \(the shape of a\)"),
        (lambda: layers.Add().forward(np.zeros((2, 3)), np.zeros(3)), ValueError, r"^b: shape \(3,\)"),
        (lambda: layers.Add().forward(np.zeros(3, int), np.zeros(3)), TypeError, r"^a: dtype int64"),
        (lambda: layers.Add().forward(np.zeros(3), None), TypeError, r"^b: expected an array, got None"),
        (lambda: layers.Concat().forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 5, 4))), ValueError,
         r"^b: shape \(2, 3, 5, 4\) differs from a: shape \(2, 3, 4, 4\) on axis 2"),
        (lambda: layers.Concat().forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4))), ValueError,
         r"^b: shape \(2, 3, 4\) has 3 dimensions, expected 4"),
        (lambda: layers.Concat(4).forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4))), ValueError,
         r"^axis is too large: 4"),
        (lambda: layers.Concat(-5).forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4))), ValueError,
         r"^axis must be >= -4, got -5"),
        (lambda: layers.Concat(1.0).forward(np.zeros((2, 3)), np.zeros((2, 3))), TypeError,
         r"^axis: expected an int, got float"),
        (lambda: layers.Concat().forward(np.zeros((2, 3), np.complex64), np.zeros((2, 3))), TypeError,
         r"^a: dtype complex64"),
        (lambda: ops.concat_backward(np.zeros((2, 5)), 6, 1), ValueError, r"^a_len is too large: 6"),
        (lambda: ops.concat_backward(np.zeros((2, 5)), [2, 2], 1), ValueError,
         r"^lengths: \[2, 2\] add up to 4, but dout has 5"),
        (lambda: layers.Concat().forward(np.zeros((2, 3))), ValueError, r"^xs: expected two or more arrays"),
        (lambda: layers.Concat().forward(np.zeros((2, 3, 4)), np.zeros((2, 1, 4)), np.zeros((2, 1, 5))),
         ValueError, r"^c: shape \(2, 1, 5\) differs from a"),
    ],
)
def test_add_concat_bad_input(f, exc, match):
    with pytest.raises(exc, match=match):
        f()
