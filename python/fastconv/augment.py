"""Random shifts, rotations and horizontal flips of image batches (Keras ``ImageDataGenerator`` semantics).

``apply_transform`` is the deterministic core: one inverse affine map per image, evaluated for the whole
batch at once (bilinear sampling as four gathers over the batch, ``fill_value`` outside the image), in
NumPy. ``ImageAugmenter`` draws the per-image parameters from a seeded generator and calls it.

Conventions (x is (N, C, H, W); the pixel grid has its centre at ((H-1)/2, (W-1)/2)):
  * ``shift_x > 0`` moves the content right, ``shift_y > 0`` moves it down (pixels, may be fractional);
  * ``angle_deg > 0`` rotates the content counter-clockwise as displayed (row 0 at the top), so +90 equals
    ``np.rot90(x, 1, axes=(2, 3))`` on a square image;
  * ``flip`` mirrors left-right (``x[..., ::-1]``). The forward map is: flip, then rotate about the centre,
    then shift.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["ImageAugmenter", "apply_transform"]

# cos / sin this close to an integer are snapped to it, so that rotations by multiples of 90 degrees move
# pixels exactly (cos(pi/2) is 6e-17, not 0).
_SNAP = 1e-9


# ======================================================================================================
# argument checks


def _valid_shape(image_shape):
    return (
        isinstance(image_shape, (tuple, list))
        and len(image_shape) == 3
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in image_shape)
    )


def _as_images(x, image_shape):
    """x as (N, C, H, W) (a view when possible) plus the shape to give the result back in."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"x: expected a floating or integer array, got dtype {x.dtype}")
    if image_shape is not None:
        if not _valid_shape(image_shape):
            raise ValueError(f"image_shape: expected (C, H, W) with positive ints, got {image_shape!r}")
        c, h, w = (int(d) for d in image_shape)
        if x.ndim == 2:
            if x.shape[1] != c * h * w:
                raise ValueError(
                    f"x: shape {x.shape} does not hold images of image_shape {(c, h, w)}: "
                    f"expected (N, {c * h * w})"
                )
            return x.reshape(x.shape[0], c, h, w), x.shape
        if x.ndim == 4 and x.shape[1:] != (c, h, w):
            raise ValueError(f"x: shape {x.shape} disagrees with image_shape {(c, h, w)}")
    if x.ndim != 4:
        hint = " (for flattened images pass image_shape=(C, H, W), e.g. (1, 28, 28))" if x.ndim == 2 else ""
        raise ValueError(f"x: expected shape (N, C, H, W), got {x.shape}{hint}")
    return x, x.shape


def _per_image(value, n, name, dtype=np.float64):
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},) (one per image), got {arr.shape}")
    if dtype is np.bool_:
        if not np.issubdtype(arr.dtype, np.bool_):
            raise TypeError(f"{name}: expected booleans, got dtype {arr.dtype}")
        return arr.astype(np.bool_)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: values must be finite")
    return arr


def _check_fill(fill_value, dtype):
    if isinstance(fill_value, bool) or not isinstance(fill_value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"fill_value: expected a real number, got {type(fill_value).__name__}")
    fill = float(fill_value)
    if not np.isfinite(fill):
        raise ValueError(f"fill_value: must be finite, got {fill_value}")
    if dtype is not None and np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not info.min <= fill <= info.max:
            raise ValueError(f"fill_value: {fill_value} does not fit in x's dtype {np.dtype(dtype)}")
    return fill


# ======================================================================================================
# the transform


def apply_transform(x, shift_x, shift_y, angle_deg, flip, *, fill_value=0.0, image_shape=None):
    """Shift, rotate and flip each image of a batch by its own parameters (bilinear, constant fill).

    Parameters
    ----------
    x : numpy.ndarray
        Images (N, C, H, W), or (N, C*H*W) with ``image_shape=(C, H, W)``; floating or integer dtype.
        Not modified.
    shift_x, shift_y : float or array_like of shape (N,)
        Translation in pixels; positive moves the content right / down.
    angle_deg : float or array_like of shape (N,)
        Rotation about the image centre in degrees; positive is counter-clockwise as displayed
        (90 equals ``np.rot90(x, 1, axes=(2, 3))`` for square images).
    flip : bool or array_like of bool, shape (N,)
        Mirror left-right (applied first).
    fill_value : float, default 0.0
        Value of pixels that come from outside the image.
    image_shape : tuple (C, H, W), optional
        Needed when ``x`` is flattened.

    Returns
    -------
    numpy.ndarray
        A new array of the shape and dtype of ``x`` (integer results are rounded and clipped).
    """
    x4, out_shape = _as_images(x, image_shape)
    n, c, h, w = x4.shape
    sx = _per_image(shift_x, n, "shift_x")
    sy = _per_image(shift_y, n, "shift_y")
    ang = _per_image(angle_deg, n, "angle_deg")
    fl = _per_image(flip, n, "flip", dtype=np.bool_)
    fill = _check_fill(fill_value, x.dtype)
    if n == 0 or h == 0 or w == 0 or c == 0:
        return x.copy()
    if not (sx.any() or sy.any() or ang.any() or fl.any()):
        return x.copy()  # identity: exact, whatever the values (also inf / nan)

    # Arithmetic in float32 for float32 / float16 and 8- or 16-bit integers, in float64 otherwise (float64,
    # and integers float32 cannot hold exactly).
    work = np.dtype(np.float32) if x4.dtype.itemsize <= 2 or x4.dtype == np.float32 else np.dtype(np.float64)

    # Inverse map, per image: source = M @ (dest - shift - centre) + centre with M = F R(-angle), where F
    # negates x when flipping. Written as xs = a*X + b*Y + e, ys = p*X + q*Y + g over the output grid (X, Y).
    theta = np.deg2rad(ang)
    cos, sin = np.cos(theta), np.sin(theta)
    for v in (cos, sin):
        r = np.rint(v)
        near = np.abs(v - r) < _SNAP
        v[near] = r[near]
    f = np.where(fl, -1.0, 1.0)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a, b = f * cos, -f * sin
    p, q = sin, cos
    ux, uy = sx + cx, sy + cy
    e = cx - a * ux - b * uy
    g = cy - p * ux - q * uy

    # Source coordinates (N, H, W) in the working dtype. With the snapped coefficients a whole-pixel shift or
    # a multiple of 90 degrees gives integer coordinates exactly, so those transforms move pixels exactly.
    gx = np.arange(w, dtype=work)
    gy = np.arange(h, dtype=work)
    xs = (b[:, None] * gy + e[:, None]).astype(work)[:, :, None] + a.astype(work)[:, None, None] * gx
    ys = (q[:, None] * gy + g[:, None]).astype(work)[:, :, None] + p.astype(work)[:, None, None] * gx
    # Clamp to one pixel outside the image: every position there or beyond reads only the fill border.
    np.clip(xs, -1, w, out=xs)
    np.clip(ys, -1, h, out=ys)
    x0 = np.floor(xs)
    y0 = np.floor(ys)
    xs -= x0  # now the bilinear weight of the right neighbour
    ys -= y0  # ... and of the lower one

    # x padded with fill_value, one pixel above / left and two below / right, (N, C, H+3, W+3): a clamped
    # position's top-left neighbour (y0, x0) is in [-1, H] x [-1, W], so all four neighbours are inside.
    hp, wp = h + 3, w + 3
    padded = np.full((n, c, hp, wp), fill, dtype=work)
    padded[:, :, 1 : h + 1, 1 : w + 1] = x4
    flat = padded.reshape(-1)
    # Linear index of each top-left neighbour: image n, channel 0; channels add c * hp * wp.
    idx = (y0 + 1).astype(np.intp)
    idx *= wp
    idx += (x0 + 1).astype(np.intp)
    idx += (np.arange(n, dtype=np.intp) * (c * hp * wp))[:, None, None]
    idx = idx.reshape(n, 1, h * w)
    if c > 1:
        idx = idx + (np.arange(c, dtype=np.intp) * (hp * wp))[None, :, None]
    fx = xs.reshape(n, 1, h * w)
    fy = ys.reshape(n, 1, h * w)

    # Bilinear in lerp form: a zero weight returns the other value exactly. The neighbours are the same
    # gather on views of ``flat`` shifted by 1 (right), wp (down) and wp + 1.
    top = np.take(flat, idx)
    right = np.take(flat[1:], idx)
    right -= top
    right *= fx
    top += right
    bot = np.take(flat[wp:], idx)
    right = np.take(flat[wp + 1 :], idx)
    right -= bot
    right *= fx
    bot += right
    bot -= top
    bot *= fy
    top += bot
    out = top.reshape(n, c, h, w)

    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype, copy=False).reshape(out_shape)


# ======================================================================================================
# random augmenter


def _check_range(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return v


class ImageAugmenter:
    """Random shifts, rotations and horizontal flips per image, as Keras' ``ImageDataGenerator``.

    Parameters
    ----------
    width_shift_range, height_shift_range : float, default 0.0
        Maximum shift: a fraction of the width / height when < 1, pixels when >= 1; each image's shift
        is uniform in [-range, +range].
    rotation_range : float, default 0.0
        Each image is rotated by an angle uniform in [-rotation_range, +rotation_range] degrees.
    horizontal_flip : bool, default False
        Mirror each image left-right with probability 0.5.
    fill_value : float, default 0.0
        Value of pixels that come from outside the image.
    seed : int, numpy.random.Generator or None
        The same seed gives the same sequence of outputs.
    image_shape : tuple (C, H, W), optional
        Accept flattened batches (N, C*H*W) and return them flattened.

    Examples
    --------
    >>> aug = ImageAugmenter(width_shift_range=0.1, height_shift_range=0.1, rotation_range=10,
    ...                      horizontal_flip=True, seed=0)
    >>> x_batch = np.random.default_rng(0).random((100, 1, 28, 28), dtype=np.float32)
    >>> x_aug = aug(x_batch)            # a new array, same shape and dtype; x_batch is unchanged
    >>> x_aug.shape, x_aug.dtype
    ((100, 1, 28, 28), dtype('float32'))
    """

    def __init__(
        self,
        width_shift_range=0.0,
        height_shift_range=0.0,
        rotation_range=0.0,
        horizontal_flip=False,
        fill_value=0.0,
        seed=None,
        *,
        image_shape=None,
    ):
        self.width_shift_range = _check_range(width_shift_range, "width_shift_range")
        self.height_shift_range = _check_range(height_shift_range, "height_shift_range")
        self.rotation_range = _check_range(rotation_range, "rotation_range")
        if not isinstance(horizontal_flip, (bool, np.bool_)):
            raise TypeError(f"horizontal_flip: expected a bool, got {type(horizontal_flip).__name__}")
        self.horizontal_flip = bool(horizontal_flip)
        self.fill_value = _check_fill(fill_value, None)
        if image_shape is not None and not _valid_shape(image_shape):
            raise ValueError(f"image_shape: expected (C, H, W) with positive ints, got {image_shape!r}")
        self.image_shape = None if image_shape is None else tuple(int(d) for d in image_shape)
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
            if seed is not None and seed < 0:
                raise ValueError(f"seed: must be >= 0, got {seed}")
            self.rng = np.random.default_rng(seed)
        else:
            raise TypeError(
                f"seed: expected an int, a numpy.random.Generator or None, got {type(seed).__name__}"
            )

    def random_params(self, n, h, w):
        """Draw the parameters of ``n`` images of size ``h`` x ``w``.

        Returns
        -------
        dict
            ``shift_x``, ``shift_y``, ``angle_deg`` (float64 arrays) and ``flip`` (bool array), each (n,):
            the keyword arguments of :func:`apply_transform`.
        """
        rx = self.width_shift_range * w if self.width_shift_range < 1 else self.width_shift_range
        ry = self.height_shift_range * h if self.height_shift_range < 1 else self.height_shift_range
        rng = self.rng
        # Always draw all four, so a range of 0 does not shift the random stream of the others.
        shift_x = rng.uniform(-rx, rx, n)
        shift_y = rng.uniform(-ry, ry, n)
        angle = rng.uniform(-self.rotation_range, self.rotation_range, n)
        flip = rng.random(n) < 0.5
        if not self.horizontal_flip:
            flip[:] = False
        return {"shift_x": shift_x, "shift_y": shift_y, "angle_deg": angle, "flip": flip}

    def __call__(self, x, image_shape=None):
        """Augment a batch: a new array of the shape and dtype of ``x`` (see :func:`apply_transform`)."""
        shape = self.image_shape if image_shape is None else image_shape
        x4, _ = _as_images(x, shape)
        params = self.random_params(x4.shape[0], x4.shape[2], x4.shape[3])
        return apply_transform(x, fill_value=self.fill_value, image_shape=shape, **params)

    def __repr__(self):
        return (
            f"ImageAugmenter(width_shift_range={self.width_shift_range}, height_shift_range="
            f"{self.height_shift_range}, rotation_range={self.rotation_range}, horizontal_flip="
            f"{self.horizontal_flip}, fill_value={self.fill_value})"
        )
