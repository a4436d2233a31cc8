"""The book's utilities (``common/util.py``): im2col / col2im on fastconv's kernels; the output-size formula
(``fastconv._checks``) and the data helpers (``fastconv._helpers``) are plain NumPy, shared with the reference."""

from __future__ import annotations

from ._checks import conv_output_size
from ._helpers import shuffle_dataset, smooth_curve
from .ops import col2im, im2col

__all__ = ["im2col", "col2im", "conv_output_size", "shuffle_dataset", "smooth_curve"]
