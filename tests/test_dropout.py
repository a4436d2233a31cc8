"""Dropout: mask statistics, exact forward/backward, inference scaling, repeatability."""

import numpy as np
import pytest
from conftest import randn, to_device, to_host
from fastconv import layers, ops
from fastconv.reference import layers as ref_layers


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.9])
def test_mask_fraction(device, ratio):
    """100k Bernoulli draws: sd of the kept fraction <= 0.0016, so 0.01 is > 6 sd (and seeds are fixed)."""
    x = to_device(np.ones(100_000, dtype=np.float32), device)
    for seed in (0, 1, 12345, 2**63 + 7):
        mask = to_host(ops.dropout_forward(x, ratio, seed)[1])
        assert mask.dtype == np.bool_ and mask.shape == x.shape
        assert abs(mask.mean() - (1 - ratio)) < 0.01, (ratio, seed, mask.mean())
        # both halves and every tenth: a generator that repeats or only covers part of the array fails here
        for part in (mask[:50_000], mask[50_000:], mask[::10], mask[1::10]):
            assert abs(part.mean() - (1 - ratio)) < 0.02, (ratio, seed)


def test_mask_not_trivially_correlated(device):
    """Neighbouring elements are independent: P(both kept) ~ 0.25 at ratio 0.5."""
    mask = to_host(ops.dropout_forward(to_device(np.ones(200_000), device), 0.5, 99)[1])
    both = np.mean(mask[:-1] & mask[1:])
    assert abs(both - 0.25) < 0.01
    assert not np.array_equal(mask[:1000], mask[1000:2000])


def test_ratio_zero_keeps_everything(device, dtype):
    x = np.arange(1, 1001, dtype=dtype)
    out, mask = map(to_host, ops.dropout_forward(to_device(x, device), 0.0, 5))
    assert mask.all()
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("shape", [(7,), (8, 50), (4, 3, 5, 5), (1, 1)])
def test_forward_backward_exact(rng, device, dtype, shape):
    x = randn(rng, shape, dtype)
    layer = layers.Dropout(0.4, seed=3)
    out = to_host(layer.forward(to_device(x, device), train_flg=True))
    mask = to_host(layer.mask)
    assert out.dtype == dtype and mask.dtype == np.bool_ and mask.shape == shape
    np.testing.assert_array_equal(out, x * mask)
    dout = randn(rng, shape, dtype)
    dx = to_host(layer.backward(to_device(dout, device)))
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, dout * mask)
    # the reference layer given this mask agrees bit for bit
    ref = ref_layers.Dropout(0.4)
    ref.mask = mask
    np.testing.assert_array_equal(dx, ref.backward(dout))


def test_forward_non_contiguous(rng, device, dtype):
    x = randn(rng, (6, 8, 10), dtype).transpose(2, 0, 1)[:, ::2]
    out, mask = map(to_host, ops.dropout_forward(to_device(x, device), 0.5, 11))
    assert mask.shape == x.shape
    np.testing.assert_array_equal(out, x * mask)
    mask_c = to_host(ops.dropout_forward(to_device(np.ascontiguousarray(x), device), 0.5, 11)[1])
    np.testing.assert_array_equal(mask, mask_c)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5])
def test_inference_scales(rng, device, dtype, ratio):
    x = randn(rng, (5, 6), dtype)
    layer = layers.Dropout(ratio)
    out = to_host(layer.forward(to_device(x, device), train_flg=False))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, x * dtype(1 - ratio))
    np.testing.assert_array_equal(out, ref_layers.Dropout(ratio).forward(x, train_flg=False))


def test_same_seed_same_mask(device):
    x = np.ones((64, 100))
    m1, m2, m3 = (to_host(ops.dropout_forward(to_device(x, device), 0.5, seed)[1]) for seed in (42, 42, 43))
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)
    # same seed, same mask whatever the dtype of x
    m32 = to_host(ops.dropout_forward(to_device(x.astype(np.float32), device), 0.5, 42)[1])
    np.testing.assert_array_equal(m1, m32)


def test_threads_same_mask(device, num_threads):
    x = to_device(np.ones(300_001, dtype=np.float32), device)
    masks = []
    for n in (1, 2):
        num_threads(n)
        masks.append(to_host(ops.dropout_forward(x, 0.5, 7)[1]))
    np.testing.assert_array_equal(masks[0], masks[1])


def test_layer_seed_repeatable(device):
    x = to_device(np.ones((10, 20)), device)
    a, b = layers.Dropout(0.5, seed=1), layers.Dropout(0.5, seed=1)
    ma = [to_host(a.forward(x)).copy() for _ in range(3)]
    mb = [to_host(b.forward(x)).copy() for _ in range(3)]
    for u, v in zip(ma, mb):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(ma[0], ma[1])  # a new mask every call


def test_np_random_seed_makes_layer_repeatable(device):
    """Without a seed the layer draws its key from NumPy's global generator, as the book's Dropout does."""
    x = to_device(np.ones((10, 20)), device)
    np.random.seed(2024)
    m1 = to_host(layers.Dropout(0.5).forward(x)).copy()
    m1b = to_host(layers.Dropout(0.5).forward(x)).copy()
    np.random.seed(2024)
    m2 = to_host(layers.Dropout(0.5).forward(x)).copy()
    np.random.seed(2025)
    m3 = to_host(layers.Dropout(0.5).forward(x)).copy()
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m1b)
    assert not np.array_equal(m1, m3)
