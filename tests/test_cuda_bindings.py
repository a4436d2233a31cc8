"""fastconv._cuda's argument checks, which run on the host: every binding checks a CUDA array's interface (typestr,
shape, C-contiguity, writeability, device memory) before any launch. These run wherever the module is built, GPU
or not (no kernel is launched); the kernels themselves are tested through the device fixture on a GPU."""

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fastconv._cuda") is None, reason="fastconv._cuda was not built (no nvcc)"
)


class FakeCudaArray:
    """An object with __cuda_array_interface__ whose pointer is host memory (a NumPy array's)."""

    def __init__(self, a, typestr=None, strides=None, readonly=False):
        self._a = a  # keeps the memory alive
        self.__cuda_array_interface__ = {
            "shape": a.shape,
            "typestr": typestr or a.dtype.str,
            "data": (a.ctypes.data, readonly),
            "strides": strides,
            "version": 3,
        }


@pytest.fixture(scope="module")
def cuda():
    from fastconv import _cuda

    return _cuda


def test_numpy_array_is_refused_naming_the_argument(cuda):
    with pytest.raises(TypeError, match=r"^x: expected a CUDA array .* got ndarray"):
        cuda.relu_forward_f32(np.zeros(4, np.float32), FakeCudaArray(np.zeros(4, np.float32)))


@pytest.mark.parametrize(
    "x, out, exc, match",
    [
        (FakeCudaArray(np.zeros(4)), FakeCudaArray(np.zeros(4, np.float32)), TypeError,
         r"^x: CUDA array of typestr <f8, expected <f4"),
        (FakeCudaArray(np.zeros((2, 2), np.float32)), FakeCudaArray(np.zeros(4, np.float32)), ValueError,
         r"^x: expected a 1-D array, got shape \(2, 2\)"),
        (FakeCudaArray(np.zeros(4, np.float32), strides=(8,)), FakeCudaArray(np.zeros(4, np.float32)), ValueError,
         r"^x: array must be C-contiguous"),
        (FakeCudaArray(np.zeros(4, np.float32)), FakeCudaArray(np.zeros(4, np.float32)), ValueError,
         r"^x: pointer is (not CUDA memory|host memory)"),
    ],
)
def test_bad_cuda_arrays_are_refused_before_any_launch(cuda, x, out, exc, match):
    # arguments are checked in order, each one completely (pointer included): without a GPU no pointer passes,
    # so the cases put the fault on the first argument (out's shape and writeability are checked on a GPU)
    with pytest.raises(exc, match=match):
        cuda.relu_forward_f32(x, out)


def test_contiguous_strides_spelled_out_are_accepted_up_to_the_pointer_check(cuda):
    x = FakeCudaArray(np.zeros((2, 3), np.float32), strides=(12, 4))
    out = FakeCudaArray(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match=r"^x: (expected a 1-D array|pointer is)"):
        cuda.relu_forward_f32(x, out)


def test_leaky_relu_alpha_checked_as_on_the_cpu(cuda):
    a = FakeCudaArray(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got -1"):
        cuda.leaky_relu_forward_f32(a, FakeCudaArray(np.zeros(4, np.float32)), -1.0)
