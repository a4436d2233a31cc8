"""fastconv.util.im2col / col2im against fastconv.reference.util (book column layout)."""

import numpy as np
import pytest
from conftest import CONV_CASES, CONV_IDS, TOL, f64, randn, to_device, to_host
from fastconv import util
from fastconv.reference import util as ref_util


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_matches_reference_exactly(rng, device, dtype, threads, case):
    N, C, H, W, _, FH, FW, stride, pad = case
    x = randn(rng, (N, C, H, W), dtype)
    col = to_host(util.im2col(to_device(x, device), FH, FW, stride, pad))
    ref = ref_util.im2col(x, FH, FW, stride, pad)
    assert col.dtype == dtype
    assert col.shape == ref.shape
    # im2col only copies: every element must be bit-identical, padding exactly 0
    np.testing.assert_array_equal(col, ref, err_msg=f"t{threads} {case}")


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_col2im_matches_reference(rng, device, dtype, threads, case):
    N, C, H, W, _, FH, FW, stride, pad = case
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (W + 2 * pad - FW) // stride + 1
    col = randn(rng, (N * OH * OW, C * FH * FW), dtype)
    x = to_host(util.col2im(to_device(col, device), (N, C, H, W), FH, FW, stride, pad))
    ref = ref_util.col2im(f64(col), (N, C, H, W), FH, FW, stride, pad)
    assert x.dtype == dtype
    assert x.shape == (N, C, H, W)
    np.testing.assert_allclose(x, ref, **TOL[dtype], err_msg=f"t{threads} {case}")


def test_col2im_is_adjoint_of_im2col(rng, device):
    """<im2col(x), c> == <x, col2im(c)> for the overlapping, padded, strided case."""
    x = rng.standard_normal((2, 3, 9, 8))
    col = to_host(util.im2col(to_device(x, device), 3, 2, 2, 1))
    c = rng.standard_normal(col.shape)
    lhs = np.sum(col * c)
    rhs = np.sum(x * to_host(util.col2im(to_device(c, device), x.shape, 3, 2, 2, 1)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_col2im_overwrites_output(rng, device):
    """col2im must start from zeros, not accumulate into whatever memory np.empty returned."""
    col = to_device(np.ones((1 * 3 * 3, 1 * 2 * 2)), device)
    for _ in range(3):
        x = to_host(util.col2im(col, (1, 1, 4, 4), 2, 2, 1, 0))
        np.testing.assert_array_equal(x[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_im2col_book_layout(device):
    """The book's example: x = arange, 2x2 filter, stride 1 -- rows are windows, columns (c, fh, fw)."""
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    col = to_host(util.im2col(to_device(x, device), 2, 2))
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2)
    np.testing.assert_array_equal(col[0], [0, 1, 3, 4, 9, 10, 12, 13])
    np.testing.assert_array_equal(col[3], [4, 5, 7, 8, 13, 14, 16, 17])
    np.testing.assert_array_equal(col[4], [18, 19, 21, 22, 27, 28, 30, 31])

