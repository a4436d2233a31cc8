"""Zero padding and cropping (one kernel, fastconv.ops.zeropad / crop; layers.ZeroPadding and Cropping)
against fastconv.reference.layers, with every padding form, central differences and bad input naming the argument."""

import numpy as np
import pytest
from conftest import randn, to_device, to_host
from fastconv import layers, ops
from fastconv.functions import numerical_gradient
from fastconv.reference import layers as ref_layers

PADS = [0, 1, 3, (1, 2), (0, 2, 1, 0), ((2, 1), (0, 3)), (4, 0, 0, 4)]


@pytest.mark.parametrize("pad", PADS, ids=[str(p) for p in PADS])
@pytest.mark.parametrize("kind", ["ZeroPadding", "Cropping"])
def test_zeropad_and_crop_layers(rng, device, dtype, kind, pad):
    x = randn(rng, (2, 3, 9, 10), dtype)
    layer, ref = getattr(layers, kind)(pad), getattr(ref_layers, kind)(pad)
    out = to_host(layer.forward(to_device(x, device)))
    want = ref.forward(x)
    assert out.dtype == dtype and out.shape == want.shape
    np.testing.assert_array_equal(out, want)  # a copy: exact
    dout = randn(rng, out.shape, dtype)
    np.testing.assert_array_equal(to_host(layer.backward(to_device(dout, device))), ref.backward(dout))


def test_zeropad_is_np_pad_and_crop_inverts_it(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    p = ops.zeropad(x, (1, 2, 3, 0))
    np.testing.assert_array_equal(p, np.pad(x, ((0, 0), (0, 0), (1, 2), (3, 0))))
    np.testing.assert_array_equal(ops.crop(p, (1, 2, 3, 0)), x)


def test_zeropad_large_planes_threads(rng, num_threads):
    """Planes large enough to be split over threads: the same result on 1 and 2 threads."""
    x = rng.standard_normal((4, 8, 64, 64)).astype(np.float32)
    num_threads(1)
    a = ops.zeropad(x, (1, 2, 3, 4))
    num_threads(2)
    np.testing.assert_array_equal(ops.zeropad(x, (1, 2, 3, 4)), a)


@pytest.mark.parametrize("kind", ["ZeroPadding", "Cropping"])
def test_zeropad_numerical_gradient(rng, kind):
    x = rng.standard_normal((1, 2, 5, 6))
    layer = getattr(layers, kind)((1, 0, 2, 1))
    dout = rng.standard_normal(layer.forward(x).shape)
    num = numerical_gradient(lambda _: float(np.sum(layer.forward(x) * dout)), x)
    np.testing.assert_allclose(layer.backward(dout), num, rtol=1e-6, atol=1e-8)


X = np.zeros((2, 3, 5, 6))

BAD = [
    ("pad negative", lambda: ops.zeropad(X, -1), ValueError, r"^pad must be >= 0, got -1"),
    ("pad triple", lambda: ops.zeropad(X, (1, 2, 3)), TypeError, r"^pad: expected an int, a pair"),
    ("pad same", lambda: ops.zeropad(X, "same"), ValueError, r"^pad: expected an int, a pair .*got 'same'"),
    ("pad float", lambda: ops.zeropad(X, 1.5), TypeError, r"^pad: expected an int, got float"),
    (
        "crop all rows",
        lambda: ops.crop(X, (3, 2, 0, 0)),
        ValueError,
        r"^crop: \(3, 2, 0, 0\) removes every row or column of x \(shape \(2, 3, 5, 6\)\); "
        r"top \+ bottom must be < 5",
    ),
    ("crop all columns", lambda: layers.Cropping(3).forward(X), ValueError, r"^crop: 3 removes every row"),
    ("crop negative", lambda: ops.crop(X, (0, -1)), ValueError, r"^crop must be >= 0, got -1"),
    ("x 3-D", lambda: ops.zeropad(X[0], 1), ValueError, r"^x: expected a 4-D"),
    ("x int", lambda: ops.zeropad(X.astype(int), 1), TypeError, r"^x: dtype int64 is not supported"),
    ("pad huge", lambda: ops.zeropad(X, 2**41), ValueError, r"^pad is too large"),
]


@pytest.mark.parametrize("name, call, exc, pattern", BAD, ids=[b[0] for b in BAD])
def test_zeropad_bad_input(name, call, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)
