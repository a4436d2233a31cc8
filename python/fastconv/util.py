"""The book's utilities (``common/util.py``): im2col / col2im on fastconv's kernels, the rest shared with the
reference (they are not hot paths)."""

from __future__ import annotations

from .ops import col2im, im2col
from .reference.util import conv_output_size, shuffle_dataset, smooth_curve

__all__ = ["im2col", "col2im", "conv_output_size", "shuffle_dataset", "smooth_curve"]
