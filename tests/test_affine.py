"""Affine layer (and ops.affine_*) against fastconv.reference.layers.Affine, for every GEMM ISA."""

import numpy as np
import pytest
from conftest import TOL_DOT, f64, randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import layers as ref_layers

# (x shape, H): 2-D inputs, the book's 4-D inputs flattened to (N, C*H*W), sizes crossing the GEMM tiles
CASES = [
    ((1, 1), 1),
    ((3, 7), 5),
    ((8, 100), 10),
    ((5, 257), 33),
    ((2, 3, 4, 5), 7),
    ((8, 16, 7, 7), 50),
    ((97, 64, 2, 2), 100),
]
IDS = ["x".join(map(str, s)) + f"-H{h}" for s, h in CASES]


def reference(x, W, b, dout):
    ref = ref_layers.Affine(*f64(W, b))
    out = ref.forward(f64(x))
    dx = ref.backward(f64(dout))
    return out, dx, ref.dW, ref.db


@pytest.mark.parametrize("shape,H", CASES, ids=IDS)
def test_affine_layer(rng, device, isa, dtype, shape, H):
    x = randn(rng, shape, dtype)
    D = int(np.prod(shape[1:]))
    W, b = randn(rng, (D, H), dtype), randn(rng, (H,), dtype)
    dout = randn(rng, (shape[0], H), dtype)
    r_out, r_dx, r_dW, r_db = reference(x, W, b, dout)
    layer = layers.Affine(to_device(W, device), to_device(b, device))
    out = to_host(layer.forward(to_device(x, device)))
    assert out.dtype == dtype and out.shape == (shape[0], H)
    np.testing.assert_allclose(out, r_out, **TOL_DOT[dtype], err_msg=f"{isa} {shape} out")
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.shape == shape and dx.dtype == dtype  # reshaped back to the original input shape
    np.testing.assert_allclose(dx, r_dx, **TOL_DOT[dtype], err_msg=f"{isa} {shape} dx")
    np.testing.assert_allclose(to_host(layer.dW), r_dW, **TOL_DOT[dtype], err_msg=f"{isa} {shape} dW")
    np.testing.assert_allclose(to_host(layer.db), r_db, **TOL_DOT[dtype], err_msg=f"{isa} {shape} db")
    assert layer.dW.shape == W.shape and layer.db.shape == b.shape


def test_affine_ops(rng, device, dtype):
    x, W, b = randn(rng, (6, 9), dtype), randn(rng, (9, 4), dtype), randn(rng, (4,), dtype)
    dout = randn(rng, (6, 4), dtype)
    r_out, r_dx, r_dW, r_db = reference(x, W, b, dout)
    xd, Wd, bd, doutd = (to_device(a, device) for a in (x, W, b, dout))
    np.testing.assert_allclose(to_host(ops.affine_forward(xd, Wd, bd)), r_out, **TOL_DOT[dtype])
    for got, want in zip(ops.affine_backward(xd, Wd, doutd), (r_dx, r_dW, r_db)):
        np.testing.assert_allclose(to_host(got), want, **TOL_DOT[dtype])


def test_affine_non_contiguous_4d(rng, device, dtype):
    """A transposed 4-D input is flattened in its logical (C order) layout, as x.reshape(N, -1) does."""
    base = randn(rng, (4, 5, 3, 6), dtype)
    x = base.transpose(0, 3, 1, 2)  # (4, 6, 5, 3), non-contiguous
    W, b = randn(rng, (90, 8), dtype), randn(rng, (8,), dtype)
    dout = randn(rng, (4, 8), dtype)
    r_out, r_dx, r_dW, _ = reference(x, W, b, dout)
    layer = layers.Affine(to_device(W, device), to_device(b, device))
    np.testing.assert_allclose(to_host(layer.forward(to_device(x, device))), r_out, **TOL_DOT[dtype])
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, r_dx, **TOL_DOT[dtype])
    np.testing.assert_allclose(to_host(layer.dW), r_dW, **TOL_DOT[dtype])


def test_affine_reads_params_every_call(rng, device):
    x, W, b = (to_device(a, device) for a in (rng.standard_normal((3, 4)), rng.standard_normal((4, 2)),
                                               rng.standard_normal(2)))
    layer = layers.Affine(W, b)
    layer.forward(x)
    W -= 1.0
    b[...] = 7.0
    np.testing.assert_allclose(to_host(layer.forward(x)), to_host(x @ W + b), rtol=1e-12)


@pytest.mark.parametrize("shape,H", CASES, ids=IDS)
def test_affine_transposed_weight_view(rng, isa, dtype, threads, shape, H):
    """W a transposed view (the sequel's tied TimeAffine(embed_W.T)): read through strides, the results are
    bit-identical to those of its C-contiguous copy, forward and backward, and W's memory is untouched."""
    x = randn(rng, shape, dtype).reshape(shape[0], -1)
    D = x.shape[1]
    E = randn(rng, (H, D), dtype)  # the embedding-like base, (H, D) C-contiguous
    W = E.T
    assert not W.flags.c_contiguous or H == 1 or D == 1
    b, dout = randn(rng, (H,), dtype), randn(rng, (shape[0], H), dtype)
    Wc = np.ascontiguousarray(W)
    assert ops._c_or_transposed(W, dtype)[1] == (not W.flags.c_contiguous)  # the strided path is the one tested
    np.testing.assert_array_equal(ops.affine_forward(x, W, b), ops.affine_forward(x, Wc, b), err_msg=isa)
    for got, want in zip(ops.affine_backward(x, W, dout), ops.affine_backward(x, Wc, dout)):
        assert got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want, err_msg=isa)
    np.testing.assert_allclose(ops.affine_forward(x, W, b), f64(x) @ f64(W) + f64(b), **TOL_DOT[dtype])
    np.testing.assert_array_equal(E, Wc.T)


def test_affine_transposed_weight_view_half(rng):
    """The same for float16 (the 16-bit GEMM packs through the same strides)."""
    x = rng.standard_normal((9, 33)).astype(np.float16)
    E = rng.standard_normal((17, 33)).astype(np.float16)
    b, dout = rng.standard_normal(17).astype(np.float16), rng.standard_normal((9, 17)).astype(np.float16)
    np.testing.assert_array_equal(ops.affine_forward(x, E.T, b), ops.affine_forward(x, E.T.copy(), b))
    for got, want in zip(ops.affine_backward(x, E.T, dout), ops.affine_backward(x, E.T.copy(), dout)):
        np.testing.assert_array_equal(got, want)
