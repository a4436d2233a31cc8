"""fastconv's plain-NumPy helpers (fastconv._checks.conv_output_size, fastconv._helpers) on known values.

They have no oracle: ``fastconv.reference`` imports them (never the reverse), so comparing the two would compare a
function with itself. Each test states its expected values independently.
"""

import math

import numpy as np
import pytest
from fastconv import _helpers, util
from fastconv.optimizer import Adam
from fastconv.reference import optimizer as ref_optimizer
from fastconv.reference import util as ref_util


@pytest.mark.parametrize(
    "args, expected",
    [((28, 5, 1, 0), 24), ((7, 3, 2, 1), 4), ((28, 3, 1, 1), 28), ((28, 2, 2, 0), 14), ((5, 5, 1, 0), 1),
     ((6, 3, 3, 0), 2), ((4, 5, 1, 2), 4)],
)
def test_conv_output_size(args, expected):
    assert util.conv_output_size(*args) == expected


def test_helpers_are_shared_not_copied():
    """The reference takes the helpers from fastconv (one copy of each), never the other way round."""
    assert ref_util.conv_output_size is util.conv_output_size
    assert ref_util.smooth_curve is util.smooth_curve is _helpers.smooth_curve
    assert ref_util.shuffle_dataset is util.shuffle_dataset is _helpers.shuffle_dataset
    assert ref_optimizer.adam_lr_t is _helpers.adam_lr_t


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_smooth_curve_known_values(dt):
    # a constant curve stays constant, in its dtype
    y = util.smooth_curve(np.full(20, 3.0, dtype=dt))
    assert y.dtype == dt and y.shape == (20,)
    np.testing.assert_allclose(y, 3.0, rtol=1e-6)
    # a straight line is unchanged away from the mirrored ends (the window is symmetric and sums to 1)
    x = np.arange(40, dtype=dt)
    np.testing.assert_allclose(util.smooth_curve(x)[5:-5], x[5:-5], rtol=1e-5)
    # one spike in the middle spreads as the normalised Kaiser(11, beta=2) window, written out by hand here
    n = np.arange(11)
    w = np.i0(2 * np.sqrt(1 - ((n - 5) / 5.0) ** 2)) / np.i0(2)
    spike = np.zeros(31, dtype=dt)
    spike[15] = 1.0
    np.testing.assert_allclose(util.smooth_curve(spike)[10:21], w / w.sum(), rtol=1e-5)


def test_smooth_curve_rejects_short_and_2d():
    with pytest.raises(ValueError, match="at least 11 samples"):
        util.smooth_curve(np.ones(10))
    with pytest.raises(ValueError, match="1-D"):
        util.smooth_curve(np.ones((11, 2)))


def test_shuffle_dataset_one_permutation():
    np.random.seed(0)
    x = np.arange(50).reshape(10, 5)
    t = np.arange(10)
    xs, ts = util.shuffle_dataset(x, t)
    assert sorted(ts.tolist()) == list(range(10)) and ts.tolist() != list(range(10))
    np.testing.assert_array_equal(xs, x[ts])  # rows moved with their labels
    with pytest.raises(ValueError, match="same length"):
        util.shuffle_dataset(x, t[:9])


def test_adam_lr_t_known_values():
    assert _helpers.adam_lr_t(0.001, 0.9, 0.999, 1) == pytest.approx(0.001 * math.sqrt(0.001) / 0.1, rel=1e-15)
    assert _helpers.adam_lr_t(0.01, 0.5, 0.75, 2) == pytest.approx(0.01 * math.sqrt(1 - 0.5625) / 0.75, rel=1e-15)
    assert type(_helpers.adam_lr_t(0.001, 0.9, 0.999, 3)) is float  # a NumPy scalar would promote float32 steps
    # fastconv's Adam takes its first step with it: m = 0.1 g, v = 0.001 g**2, p -= lr_t * m / (sqrt(v) + eps)
    p, g = np.array([1.0]), np.array([0.5])
    Adam(lr=0.001).update({"p": p}, {"p": g})
    lr_t = 0.001 * math.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(p, 1.0 - lr_t * 0.05 / (math.sqrt(0.001 * 0.25) + 1e-7), rtol=1e-14)


def test_parse_targets():
    y = np.full((3, 4), 0.25, dtype=np.float32)
    y2, t2, dense = _helpers.parse_targets(y, np.array([0, 3, 1]))
    assert not dense and t2.dtype == np.intp and t2.tolist() == [0, 3, 1] and y2 is y
    y2, t2, dense = _helpers.parse_targets(y, np.eye(4)[[0, 3, 1]])
    assert dense and t2.dtype == np.float32 and t2.shape == (3, 4)
    y2, t2, dense = _helpers.parse_targets(np.full(4, 0.25), 2)  # one sample, a scalar label
    assert y2.shape == (1, 4) and not dense and t2.tolist() == [2]
    with pytest.raises(ValueError, match="integer labels of shape"):
        _helpers.parse_targets(y, np.array([0.0, 1.0, 2.0]))
