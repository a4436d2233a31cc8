"""fastconv.util.im2col / col2im against fastconv.reference.util (book column layout)."""

import numpy as np
import pytest
from conftest import CONV_CASES, CONV_IDS, TOL, f64, randn
from fastconv import util
from fastconv.reference import util as ref_util


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_matches_reference_exactly(rng, dtype, threads, case):
    N, C, H, W, _, FH, FW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    col = util.im2col(x, FH, FW, stride, pad)
    ref = ref_util.im2col(x, FH, FW, stride, pad)
    assert col.dtype == dtype
    assert col.shape == ref.shape
    # im2col only copies: every element must be bit-identical, padding exactly 0
    np.testing.assert_array_equal(col, ref, err_msg=f"t{threads} {case}")


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_col2im_matches_reference(rng, dtype, threads, case):
    N, C, H, W, _, FH, FW, stride, pad = case
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (W + 2 * pad - FW) // stride + 1
    col = randn(rng, (N * OH * OW, C * FH * FW), dtype)
    x = util.col2im(col, (N, C, H, W), FH, FW, stride, pad)
    ref = ref_util.col2im(f64(col), (N, C, H, W), FH, FW, stride, pad)
    assert x.dtype == dtype
    assert x.shape == (N, C, H, W)
    np.testing.assert_allclose(x, ref, **TOL[dtype], err_msg=f"t{threads} {case}")


def test_col2im_is_adjoint_of_im2col(rng):
    """<im2col(x), c> == <x, col2im(c)> for the overlapping, padded, strided case."""
    x = rng.standard_normal((2, 3, 9, 8))
    col = util.im2col(x, 3, 2, 2, 1)
    c = rng.standard_normal(col.shape)
    lhs = np.sum(col * c)
    rhs = np.sum(x * util.col2im(c, x.shape, 3, 2, 2, 1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_col2im_overwrites_output(rng):
    """col2im must start from zeros, not accumulate into whatever memory np.empty returned."""
    col = np.ones((1 * 3 * 3, 1 * 2 * 2))
    for _ in range(3):
        x = util.col2im(col, (1, 1, 4, 4), 2, 2, 1, 0)
        np.testing.assert_array_equal(x[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_im2col_book_layout():
    """The book's example: x = arange, 2x2 filter, stride 1 -- rows are windows, columns (c, fh, fw)."""
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    col = util.im2col(x, 2, 2)
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2)
    np.testing.assert_array_equal(col[0], [0, 1, 3, 4, 9, 10, 12, 13])
    np.testing.assert_array_equal(col[3], [4, 5, 7, 8, 13, 14, 16, 17])
    np.testing.assert_array_equal(col[4], [18, 19, 21, 22, 27, 28, 30, 31])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_helpers_reexported(dt):
    assert util.conv_output_size(28, 5, 1, 0) == 24
    assert util.conv_output_size(7, 3, 2, 1) == 4
    x = np.arange(20, dtype=dt)
    np.testing.assert_array_equal(util.smooth_curve(x), ref_util.smooth_curve(x))
