"""Reference im2col / col2im and data helpers (book: ``common/util.py``).

Shape letters: x is (N, C, H, W), a filter is (FH, FW), the output is (OH, OW).
The column matrix has the book's layout: ``col`` is (N*OH*OW, C*FH*FW), row
``(n*OH + oh)*OW + ow``, column ``(c*FH + fh)*FW + fw``. Unlike the book's
``im2col`` (always float64), these follow the dtype of their input.
"""
import numpy as np

# shared with fastconv.util: the reference imports them, never the reverse
from .._checks import conv_output_size
from .._helpers import shuffle_dataset, smooth_curve

__all__ = ["conv_output_size", "im2col", "col2im", "shuffle_dataset", "smooth_curve"]


# ============================================================================
# sizes
# ============================================================================

def _out_hw(H, W, FH, FW, stride, pad):
    """(OH, OW) for the given geometry; ValueError when no window fits."""
    if stride < 1 or pad < 0 or FH < 1 or FW < 1:
        raise ValueError(
            f"need stride >= 1, pad >= 0, filter >= 1; got stride={stride}, pad={pad}, filter=({FH}, {FW})"
        )
    OH = conv_output_size(H, FH, stride, pad)
    OW = conv_output_size(W, FW, stride, pad)
    if OH < 1 or OW < 1:
        raise ValueError(
            f"filter ({FH}, {FW}) with pad={pad} does not fit the input ({H}, {W}): output ({OH}, {OW})"
        )
    return OH, OW


# ============================================================================
# im2col / col2im
# ============================================================================

def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Unfold image patches into the rows of a matrix (the book's column layout).

    Parameters
    ----------
    input_data : ndarray
        Images, shape (N, C, H, W).
    filter_h, filter_w : int
        Filter height FH and width FW.
    stride : int, optional
        Step between windows.
    pad : int, optional
        Zero padding added on every side of H and W.

    Returns
    -------
    ndarray
        ``col`` of shape (N*OH*OW, C*FH*FW) and the dtype of ``input_data``.
    """
    x = np.asarray(input_data)
    if x.ndim != 4:
        raise ValueError(f"input_data must be 4-D (N, C, H, W), got shape {x.shape}")
    N, C, H, W = x.shape
    FH, FW = filter_h, filter_w
    OH, OW = _out_hw(H, W, FH, FW, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    # One strided copy per filter offset (fh, fw): a window's element (fh, fw)
    # at output (oh, ow) sits at padded pixel (oh*stride + fh, ow*stride + fw).
    patches = np.empty((N, OH, OW, C, FH, FW), dtype=x.dtype)
    for fh in range(FH):
        h_end = fh + stride * OH
        for fw in range(FW):
            w_end = fw + stride * OW
            # xp[..., fh:h_end:stride, fw:w_end:stride] is (N, C, OH, OW)
            patches[:, :, :, :, fh, fw] = xp[:, :, fh:h_end:stride, fw:w_end:stride].transpose(0, 2, 3, 1)
    return patches.reshape(N * OH * OW, C * FH * FW)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """Fold a column matrix back into images, summing overlaps (the adjoint of ``im2col``).

    Parameters
    ----------
    col : ndarray
        Columns, shape (N*OH*OW, C*FH*FW).
    input_shape : tuple of int
        Image shape (N, C, H, W).
    filter_h, filter_w : int
        Filter height FH and width FW.
    stride : int, optional
        Step between windows.
    pad : int, optional
        Padding used by the matching ``im2col``; the padded border is dropped.

    Returns
    -------
    ndarray
        Images of shape ``input_shape`` and the dtype of ``col``.
    """
    col = np.asarray(col)
    N, C, H, W = input_shape
    FH, FW = filter_h, filter_w
    OH, OW = _out_hw(H, W, FH, FW, stride, pad)
    if col.shape != (N * OH * OW, C * FH * FW):
        raise ValueError(f"col must have shape {(N * OH * OW, C * FH * FW)} for input_shape "
                         f"{tuple(input_shape)}, got {col.shape}")
    patches = col.reshape(N, OH, OW, C, FH, FW).transpose(0, 3, 4, 5, 1, 2)  # (N, C, FH, FW, OH, OW)
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=col.dtype)
    for fh in range(FH):
        h_end = fh + stride * OH
        for fw in range(FW):
            w_end = fw + stride * OW
            img[:, :, fh:h_end:stride, fw:w_end:stride] += patches[:, :, fh, fw]
    if pad:
        img = np.ascontiguousarray(img[:, :, pad:pad + H, pad:pad + W])
    return img
