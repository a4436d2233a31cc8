"""fastconv.info(), the command line, thread-count validation, CUDA availability, FASTCONV_ISA."""

import os
import subprocess
import sys

import fastconv
import numpy as np
import pytest
from fastconv import _cpu, ops


def run_python(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("FASTCONV_ISA", "FASTCONV_GEMM_TILE")}
    e.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=60, check=False
    )


def test_info_keys():
    info = fastconv.info()
    for key in ("version", "compiler", "simd", "openmp", "num_threads", "cuda"):
        assert key in info, key
    assert info["version"] == fastconv.__version__
    assert info["simd"] in ("scalar", "avx2", "avx512")
    assert info["simd"] == _cpu.cpu_isa()
    assert info["simd"] in info["simd_compiled"]
    assert "scalar" in info["simd_compiled"]
    assert isinstance(info["openmp"], bool)
    assert info["num_threads"] == fastconv.get_num_threads() >= 1
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert info["cuda"].startswith("not available: " if not fastconv.cuda_available() else "available")


def test_info_follows_thread_count(num_threads):
    num_threads(1)
    assert fastconv.info()["num_threads"] == 1
    num_threads(2)
    assert fastconv.info()["num_threads"] == 2


def test_cli_info():
    r = subprocess.run(
        [sys.executable, "-m", "fastconv", "info"], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "simd" in r.stdout
    assert fastconv.__version__ in r.stdout


def test_cli_requires_command():
    r = subprocess.run(
        [sys.executable, "-m", "fastconv"], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode != 0


def test_set_num_threads_validation(num_threads):
    with pytest.raises(ValueError, match=r"^n: number of threads must be >= 1, got 0"):
        fastconv.set_num_threads(0)
    with pytest.raises(ValueError, match=r"^n: .* got -2"):
        fastconv.set_num_threads(-2)
    with pytest.raises(TypeError, match=r"^n: expected an int, got float"):
        fastconv.set_num_threads(1.5)
    with pytest.raises(TypeError, match=r"^n: expected an int, got bool"):
        fastconv.set_num_threads(True)
    with pytest.raises(TypeError, match=r"^n: expected an int"):
        fastconv.set_num_threads("2")
    num_threads(np.int64(2))
    assert fastconv.get_num_threads() == 2
    num_threads(1)
    assert fastconv.get_num_threads() == 1


def test_cuda_array_rejected_with_reason():
    class FakeCudaArray:
        @property
        def __cuda_array_interface__(self):
            return {"shape": (2,), "typestr": "<f4", "data": (0, False), "version": 3}

    with pytest.raises(TypeError, match=r"^x: CUDA arrays are not supported by this build"):
        ops.relu_forward(FakeCudaArray())


def test_cuda_module_built_and_loadable_where_nvcc_was():
    """Where the build found nvcc, fastconv._cuda exists, loads (without a GPU or driver too) and says why no device
    can be used; where it did not, info() says the module was not built."""
    import importlib.util

    from fastconv import _backend

    built = bool(fastconv._cpu.build_info()["cuda_built"])
    assert built == (importlib.util.find_spec("fastconv._cuda") is not None)
    if not built:
        assert "was not built" in _backend.CUDA_REASON
        return
    assert _backend._cuda is not None, _backend.CUDA_REASON
    info = _backend._cuda.build_info()
    assert info["version"] == fastconv.info()["version"]
    assert "90" in info["architectures"] and "80" in info["architectures"]
    if _backend._cuda.device_count() == 0:
        assert _backend._cuda.device_status() in _backend.CUDA_REASON
        assert _backend.CUDA_REASON.startswith("fastconv._cuda is built but ")


def test_get_array_module():
    assert fastconv.get_array_module(np.zeros(2)) is np


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_fastconv_isa_env(isa):
    if isa not in fastconv.info()["simd_compiled"]:
        pytest.skip(f"{isa} not compiled")
    code = (
        "import fastconv, numpy as np; from fastconv import ops; i = fastconv.info(); "
        "print(i['simd'], i['simd_forced']); a = np.ones((9, 7)); print(ops.gemm(a, a.T)[0, 0])"
    )
    r = run_python(code, FASTCONV_ISA=isa)
    if r.returncode != 0 and "not supported" in r.stderr:
        pytest.skip(f"{isa} not supported by this CPU")
    assert r.returncode == 0, r.stderr
    simd, forced, value = r.stdout.split()
    assert simd == isa and forced == isa
    assert float(value) == 7.0


def test_fastconv_isa_env_unknown():
    """An unknown FASTCONV_ISA must not break the import: the best ISA stays, info() shows what was asked."""
    r = run_python(
        "import fastconv; i = fastconv.info(); print(i['simd'], i['simd_forced'])", FASTCONV_ISA="sse9"
    )
    assert r.returncode == 0, r.stderr
    simd, forced = r.stdout.split()
    assert forced == "sse9"
    assert simd == _default_isa()


def _default_isa():
    r = run_python("import fastconv; print(fastconv.info()['simd'])", FASTCONV_ISA=None)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_set_cpu_isa_roundtrip():
    prev = _cpu.cpu_isa()
    try:
        _cpu.set_cpu_isa("scalar")
        assert _cpu.cpu_isa() == "scalar" and fastconv.info()["simd"] == "scalar"
    finally:
        _cpu.set_cpu_isa(prev)
    assert _cpu.cpu_isa() == prev


def test_reduced_precision_features_match_the_kernel_s_cpu_flags():
    """info() lists the 16-bit arithmetic the CPU reports, as Linux names it in /proc/cpuinfo."""
    info = fastconv.info()
    have = info["reduced_precision_cpu"]
    assert set(have) <= {"f16c", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16"}
    # the kernels use AMX-BF16 (the bfloat16 convolution's tiles) only where the CPU reports it
    mode = info["amx_mode"]
    used = {"amx": ["amx_bf16"], "avx512_bf16": ["avx512_bf16"]}.get(mode, [])
    used = used if info["simd"] == "avx512" else []
    assert info["reduced_precision_native"] == used
    assert set(used) <= set(have)
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags")
    if "avx2" not in flags:
        pytest.skip("not an x86-64 CPU with AVX2")
    for name in ("f16c", "avx512_bf16", "avx512_fp16", "amx_bf16"):
        assert (name in have) == (name in flags), name


@pytest.mark.parametrize("env", ["off", "emulated"])
def test_amx_mode_from_environment(env):
    r = run_python("import fastconv; print(fastconv.info()['amx_mode'])", FASTCONV_AMX=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == env


def _cpu_vendor():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def test_avx512_tile_default_follows_the_cpu_vendor():
    """AMD's AVX-512 cores (one 512-bit FMA a cycle) keep the 16x16 float32 tile, the others get 12x32
    (gemm/config.h has the measurements); FASTCONV_GEMM_TILE unset."""
    vendor = _cpu_vendor()
    if vendor is None:
        pytest.skip("no /proc/cpuinfo vendor_id")
    r = run_python("import fastconv; print(fastconv.info()['gemm_tile_avx512'])", FASTCONV_GEMM_TILE=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("16x16" if vendor == "AuthenticAMD" else "12x32")


@pytest.mark.parametrize("tile", ["16x16", "12x32"])
def test_fastconv_gemm_tile_env(tile):
    code = (
        "import fastconv, numpy as np; from fastconv import ops; "
        "print(fastconv.info()['gemm_tile_avx512']); a = np.ones((40, 70), np.float32); "
        "print(ops.gemm(a, a.T)[3, 5])"
    )
    r = run_python(code, FASTCONV_GEMM_TILE=tile)
    assert r.returncode == 0, r.stderr
    got, value = r.stdout.split()
    assert got == tile and float(value) == 70.0
    # an unknown value keeps the CPU's choice (the tile of a run without the variable), as an unknown
    # FASTCONV_ISA does
    show = "import fastconv; print(fastconv.info()['gemm_tile_avx512'])"
    r, default = run_python(show, FASTCONV_GEMM_TILE="9x9"), run_python(show, FASTCONV_GEMM_TILE=None)
    assert r.returncode == 0 and default.returncode == 0, r.stderr + default.stderr
    assert r.stdout.strip() == default.stdout.strip() != ""


def test_set_avx512_tile_roundtrip_and_rejects():
    prev = _cpu.avx512_tile()
    assert prev in _cpu.avx512_tiles() == ["16x16", "12x32"]
    try:
        for tile in _cpu.avx512_tiles():
            _cpu.set_avx512_tile(tile)
            assert _cpu.avx512_tile() == tile == fastconv.info()["gemm_tile_avx512"]
        with pytest.raises(ValueError,
                           match=r"tile: unknown AVX-512 GEMM tile '8x8', expected one of 16x16, 12x32"):
            _cpu.set_avx512_tile("8x8")
        assert _cpu.avx512_tile() == "12x32"
    finally:
        _cpu.set_avx512_tile(prev)


def test_omp_wait_is_a_short_spin_unless_the_environment_chose():
    """fastconv loads libgomp with GOMP_SPINCOUNT=3000 (on a shared host the default spin wastes the cores:
    _backend.py) and takes the variable out of the environment again; a user's OMP_WAIT_POLICY /
    GOMP_SPINCOUNT wins and stays."""
    code = (
        "import os, fastconv; print(fastconv.info()['omp_wait']); "
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    )
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "GOMP_SPINCOUNT=3000 (fastconv's, set while loading its OpenMP runtime)", "None None"
    ]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**e, "OMP_WAIT_POLICY": "active"}, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["OMP_WAIT_POLICY=active (the environment's)", "None active"]
