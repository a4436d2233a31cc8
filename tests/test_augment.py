"""fastconv.augment: exact cases (identity, flips, whole-pixel shifts, multiples of 90 degrees) against NumPy,
fractional shifts and small rotations against a slow per-pixel reference written here, the random parameters'
Keras semantics, seeds, dtypes, and bad arguments."""

import math

import numpy as np
import pytest
from conftest import TOL
from fastconv.augment import ImageAugmenter, apply_transform

# ======================================================================================================
# reference: one output pixel at a time


def ref_transform(img, sx, sy, angle_deg, flip, fill):
    """(C, H, W) float64: flip left-right, rotate counter-clockwise (as displayed) about the centre, shift.

    Each output pixel (i, j) is pulled back through the inverse map and sampled bilinearly from its four
    neighbours, a neighbour outside the image counting as ``fill``.
    """
    c, h, w = img.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    th = math.radians(angle_deg)
    out = np.empty((c, h, w))

    def pixel(ch, y, x):
        return img[ch, y, x] if 0 <= y < h and 0 <= x < w else fill

    for i in range(h):
        for j in range(w):
            u, v = j - sx - cx, i - sy - cy  # undo the shift, centre the coordinates
            # Displayed counter-clockwise rotation by th with y pointing down sends (u, v) to
            # (u cos + v sin, -u sin + v cos); undo it with the transpose:
            ur = u * math.cos(th) - v * math.sin(th)
            vr = u * math.sin(th) + v * math.cos(th)
            if flip:
                ur = -ur
            xs, ys = ur + cx, vr + cy
            x0, y0 = math.floor(xs), math.floor(ys)
            ax, ay = xs - x0, ys - y0
            for ch in range(c):
                out[ch, i, j] = (1 - ay) * (
                    (1 - ax) * pixel(ch, y0, x0) + ax * pixel(ch, y0, x0 + 1)
                ) + ay * ((1 - ax) * pixel(ch, y0 + 1, x0) + ax * pixel(ch, y0 + 1, x0 + 1))
    return out


def shifted(x, dx, dy, fill):
    """x (N, C, H, W) moved dx pixels right and dy down, ``fill`` where nothing moved in."""
    out = np.full_like(x, fill)
    h, w = x.shape[2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y = slice(max(-dy, 0), h - max(dy, 0))
    dst_y = slice(max(dy, 0), h - max(-dy, 0))
    src_x = slice(max(-dx, 0), w - max(dx, 0))
    dst_x = slice(max(dx, 0), w - max(-dx, 0))
    out[:, :, dst_y, dst_x] = x[:, :, src_y, src_x]
    return out


@pytest.fixture
def images(rng):
    return rng.random((4, 2, 9, 9))


DTYPES = [np.float16, np.float32, np.float64, np.uint8, np.int16]


def as_dtype(x, dtype):
    return (x * 200).astype(dtype) if np.issubdtype(dtype, np.integer) else x.astype(dtype)


# ======================================================================================================
# exact cases


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_zero_ranges_identity(rng, dtype):
    x = as_dtype(rng.random((5, 3, 7, 6)), dtype)
    x.flags.writeable = False
    for aug in (ImageAugmenter(), ImageAugmenter(0.0, 0.0, 0.0, False, fill_value=3.0, seed=1)):
        out = aug(x)
        assert out.dtype == x.dtype and out.shape == x.shape
        np.testing.assert_array_equal(out, x)
        assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(apply_transform(x, 0, 0, 0, False), x)


def test_identity_keeps_non_finite(rng):
    x = rng.random((2, 1, 4, 4))
    x[0, 0, 1, 2], x[1, 0, 3, 3] = np.nan, np.inf
    np.testing.assert_array_equal(ImageAugmenter(seed=0)(x), x)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_flip(rng, dtype):
    x = as_dtype(rng.random((3, 2, 5, 8)), dtype)
    np.testing.assert_array_equal(apply_transform(x, 0, 0, 0, True), x[..., ::-1])
    mixed = apply_transform(x, 0, 0, 0, [True, False, True])
    np.testing.assert_array_equal(mixed[[0, 2]], x[[0, 2], :, :, ::-1])
    np.testing.assert_array_equal(mixed[1], x[1])


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-2, 3), (3, -1), (-4, -4), (8, 0), (0, -9), (20, 20)])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_shifts(rng, dx, dy, dtype):
    x = as_dtype(rng.random((3, 2, 7, 8)), dtype)
    out = apply_transform(x, dx, dy, 0, False, fill_value=5)
    np.testing.assert_array_equal(out, shifted(x, dx, dy, 5))


def test_per_image_shifts(images):
    sx, sy = np.array([1, -1, 0, 2]), np.array([0, 2, -3, 1])
    out = apply_transform(images, sx, sy, 0.0, False)
    for k in range(4):
        np.testing.assert_array_equal(out[k : k + 1], shifted(images[k : k + 1], sx[k], sy[k], 0.0))


@pytest.mark.parametrize("size", [6, 7, 28])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rot90(rng, size, dtype):
    """+90 degrees is counter-clockwise as displayed: np.rot90(x, 1, axes=(2, 3))."""
    x = as_dtype(rng.random((3, 2, size, size)), dtype)
    for angle, k in ((90, 1), (-90, -1), (180, 2), (270, 3), (-270, 1), (450, 1)):
        np.testing.assert_array_equal(
            apply_transform(x, 0, 0, angle, False), np.rot90(x, k, axes=(2, 3)), f"{angle}"
        )
    # flip first, then rotate
    np.testing.assert_array_equal(apply_transform(x, 0, 0, 90, True), np.rot90(x[..., ::-1], 1, axes=(2, 3)))


def test_directions():
    """Pin the conventions on one bright pixel: +x shift moves right, +y down, +90 degrees turns right into up."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 4] = 1.0  # right of the centre (2, 2)
    pos = lambda out: tuple(int(v) for v in np.argwhere(out[0, 0] == 1.0)[0])
    assert pos(apply_transform(x, 0, 0, 90, False)) == (0, 2)  # now above the centre
    assert pos(apply_transform(x, 0, 0, -90, False)) == (4, 2)  # below
    assert pos(apply_transform(x, -1, 0, 0, False)) == (2, 3)
    assert pos(apply_transform(x, -1, 1, 0, False)) == (3, 3)
    assert pos(apply_transform(x, 0, 0, 0, True)) == (2, 0)


def test_half_pixel_shift_averages():
    x = np.arange(1.0, 6.0).reshape(1, 1, 1, 5)
    out = apply_transform(x, 0.5, 0, 0, False, fill_value=-1.0)
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 1.5, 2.5, 3.5, 4.5], rtol=0, atol=1e-15)


# ======================================================================================================
# against the per-pixel reference


CASES = [
    # (shift_x, shift_y, angle_deg, flip)
    (0.0, 0.0, 10.0, False),
    (0.0, 0.0, -7.3, False),
    (0.0, 0.0, 3.0, True),
    (0.4, -1.7, 0.0, False),
    (-2.25, 0.6, 12.5, True),
    (2.8, 2.8, -10.0, False),
    (0.0, 0.0, 45.0, False),
    (1.0, 0.0, 30.0, True),
]


@pytest.mark.parametrize("shape", [(2, 9, 9), (1, 8, 11), (3, 5, 4)], ids=lambda s: "x".join(map(str, s)))
def test_against_reference(rng, shape):
    n = len(CASES)
    x = rng.random((n, *shape))
    sx, sy, ang, fl = (np.array(v) for v in zip(*CASES))
    out = apply_transform(x, sx, sy, ang, fl, fill_value=0.25)
    for k, case in enumerate(CASES):
        ref = ref_transform(x[k], *case, 0.25)
        np.testing.assert_allclose(out[k], ref, rtol=1e-12, atol=1e-12, err_msg=f"{case} {shape}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_mnist_sized_against_reference(rng, dtype):
    x = rng.random((6, 1, 28, 28)).astype(dtype)
    aug = ImageAugmenter(0.1, 0.1, 10, True, seed=3)
    params = aug.random_params(6, 28, 28)
    out = apply_transform(x, **params)
    assert out.dtype == dtype
    for k in range(6):
        ref = ref_transform(
            x[k].astype(np.float64), *(params[p][k] for p in ("shift_x", "shift_y", "angle_deg", "flip")), 0.0
        )
        np.testing.assert_allclose(out[k], ref, **TOL[dtype], err_msg=f"image {k}")


def test_channels_share_the_transform(rng):
    x = rng.random((3, 4, 7, 7))
    out = apply_transform(x, [0.3, -1, 2], [1.5, 0, -0.5], [5, -20, 90], [False, True, False])
    for ch in range(4):
        one = apply_transform(
            x[:, ch : ch + 1], [0.3, -1, 2], [1.5, 0, -0.5], [5, -20, 90], [False, True, False]
        )
        np.testing.assert_array_equal(out[:, ch : ch + 1], one)


def test_integer_dtypes_round_and_clip(rng):
    x = rng.integers(0, 256, (4, 1, 6, 6)).astype(np.uint8)
    out = apply_transform(x, 0.5, 0.3, 7, False, fill_value=255)
    ref = np.stack([ref_transform(x[k].astype(np.float64), 0.5, 0.3, 7, False, 255.0) for k in range(4)])
    assert out.dtype == np.uint8
    assert (
        np.abs(out.astype(int) - np.rint(ref)).max() <= 1
    )  # float32 arithmetic may round a .5 the other way
    big = np.full((1, 1, 3, 3), 30000, dtype=np.int16)
    np.testing.assert_array_equal(
        apply_transform(big, 0.5, 0, 0, False, fill_value=32767)[0, 0, :, 1:], 30000
    )


# ======================================================================================================
# shapes, dtypes, input untouched


def test_flattened_input(rng):
    x = rng.random((5, 784)).astype(np.float32)
    a = ImageAugmenter(0.1, 0.1, 10, True, seed=9, image_shape=(1, 28, 28))
    b = ImageAugmenter(0.1, 0.1, 10, True, seed=9)
    out = a(x)
    assert out.shape == (5, 784) and out.dtype == np.float32
    np.testing.assert_array_equal(out, b(x.reshape(5, 1, 28, 28)).reshape(5, 784))
    c = ImageAugmenter(0.1, 0.1, 10, True, seed=9)
    np.testing.assert_array_equal(c(x, image_shape=(1, 28, 28)), out)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtype_preserved_and_input_untouched(rng, dtype):
    x = as_dtype(rng.random((8, 1, 28, 28)), dtype)
    before = x.copy()
    x.flags.writeable = False
    out = ImageAugmenter(0.1, 0.1, 10, True, seed=0)(x)
    assert out.dtype == x.dtype and out.shape == x.shape and out.flags.writeable
    np.testing.assert_array_equal(x, before)


def test_non_contiguous_input(rng):
    base = rng.random((4, 1, 10, 12))
    x = base[:, :, ::-1, 1:-1]
    np.testing.assert_array_equal(
        apply_transform(x, 1.3, -0.4, 8, True), apply_transform(x.copy(), 1.3, -0.4, 8, True)
    )


def test_empty_batch():
    x = np.zeros((0, 1, 28, 28), np.float32)
    assert ImageAugmenter(0.1, 0.1, 10, True, seed=0)(x).shape == (0, 1, 28, 28)


# ======================================================================================================
# random parameters (Keras ImageDataGenerator semantics) and seeds


def test_random_params_ranges():
    n = 4000
    frac = ImageAugmenter(width_shift_range=0.1, height_shift_range=0.25, rotation_range=10, seed=0)
    p = frac.random_params(n, 28, 20)  # h = 28, w = 20
    assert np.abs(p["shift_x"]).max() <= 2.0 and np.abs(p["shift_x"]).max() > 1.95  # 0.1 of the width
    assert np.abs(p["shift_y"]).max() <= 7.0 and np.abs(p["shift_y"]).max() > 6.9  # 0.25 of the height
    assert np.abs(p["angle_deg"]).max() <= 10 and np.abs(p["angle_deg"]).max() > 9.9
    assert abs(p["angle_deg"].mean()) < 0.5 and p["shift_x"].min() < -1.9  # both signs
    assert not p["flip"].any()
    pix = ImageAugmenter(width_shift_range=3, height_shift_range=1.0, horizontal_flip=True, seed=0)
    p = pix.random_params(n, 28, 28)
    assert np.abs(p["shift_x"]).max() <= 3.0 and np.abs(p["shift_x"]).max() > 2.95  # pixels when >= 1
    assert np.abs(p["shift_y"]).max() <= 1.0 and np.abs(p["shift_y"]).max() > 0.95
    np.testing.assert_array_equal(p["angle_deg"], 0.0)
    assert 0.45 < p["flip"].mean() < 0.55
    assert p["shift_x"].dtype == np.float64 and p["flip"].dtype == np.bool_


def test_call_uses_apply_transform(rng):
    x = rng.random((10, 1, 12, 12)).astype(np.float32)
    a = ImageAugmenter(0.2, 0.1, 15, True, fill_value=0.5, seed=4)
    b = ImageAugmenter(0.2, 0.1, 15, True, fill_value=0.5, seed=4)
    np.testing.assert_array_equal(a(x), apply_transform(x, fill_value=0.5, **b.random_params(10, 12, 12)))


def test_seeds(rng):
    x = rng.random((16, 1, 28, 28)).astype(np.float32)

    def make(seed):
        return ImageAugmenter(0.1, 0.1, 10, True, seed=seed)

    a, b = make(123), make(123)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    np.testing.assert_array_equal(a(x), b(x))  # the streams stay in step
    assert not np.array_equal(a(x), first)  # each call draws new parameters
    assert not np.array_equal(make(124)(x), first)
    np.testing.assert_array_equal(make(np.random.default_rng(123))(x), first)
    assert not np.array_equal(first, x)


# ======================================================================================================
# bad arguments


def test_bad_constructor_arguments():
    for name in ("width_shift_range", "height_shift_range", "rotation_range"):
        with pytest.raises(ValueError, match=name):
            ImageAugmenter(**{name: -0.1})
        with pytest.raises(ValueError, match=name):
            ImageAugmenter(**{name: float("nan")})
        with pytest.raises(TypeError, match=name):
            ImageAugmenter(**{name: "0.1"})
        with pytest.raises(TypeError, match=name):
            ImageAugmenter(**{name: True})
    with pytest.raises(TypeError, match="horizontal_flip"):
        ImageAugmenter(horizontal_flip=1)
    with pytest.raises(ValueError, match="fill_value"):
        ImageAugmenter(fill_value=float("inf"))
    with pytest.raises(TypeError, match="fill_value"):
        ImageAugmenter(fill_value=None)
    with pytest.raises(TypeError, match="seed"):
        ImageAugmenter(seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        ImageAugmenter(seed=-1)
    with pytest.raises(ValueError, match="image_shape"):
        ImageAugmenter(image_shape=(28, 28))


def test_bad_inputs(rng):
    aug = ImageAugmenter(0.1, seed=0)
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray"):
        aug([[0.0] * 4])
    with pytest.raises(ValueError, match=r"image_shape=\(C, H, W\)"):
        aug(np.zeros((3, 784), np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(N, C, H, W\)"):
        aug(np.zeros((3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected \(N, 784\)"):
        aug(np.zeros((3, 780), np.float32), image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="disagrees with image_shape"):
        aug(np.zeros((3, 1, 28, 28), np.float32), image_shape=(1, 27, 28))
    with pytest.raises(TypeError, match="dtype"):
        aug(np.zeros((1, 1, 4, 4), np.complex64))
    with pytest.raises(TypeError, match="dtype"):
        aug(np.zeros((1, 1, 4, 4), bool))


def test_bad_transform_parameters(images):
    with pytest.raises(ValueError, match=r"shift_x: expected a scalar or shape \(4,\)"):
        apply_transform(images, [1.0, 2.0], 0, 0, False)
    with pytest.raises(ValueError, match="angle_deg: values must be finite"):
        apply_transform(images, 0, 0, [0, np.nan, 0, 0], False)
    with pytest.raises(TypeError, match="flip: expected booleans"):
        apply_transform(images, 0, 0, 0, [0, 1, 0, 1])
    with pytest.raises(TypeError, match="shift_y"):
        apply_transform(images, 0, "1", 0, False)
    with pytest.raises(ValueError, match="fill_value.*does not fit"):
        apply_transform(images.astype(np.uint8), 1, 0, 0, False, fill_value=300)
