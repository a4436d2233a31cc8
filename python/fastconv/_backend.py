"""The only importer of the compiled modules.

``_cpu`` is always built. ``CUDA_REASON`` is ``None`` when CUDA can be used, otherwise it says why not,
telling apart the three cases: not built, built but its libraries do not load, built but no device.
"""

from __future__ import annotations

import importlib.util

from . import _cpu

_cuda = None
CUDA_REASON: str | None
if importlib.util.find_spec(f"{__package__}._cuda") is None:
    CUDA_REASON = "fastconv._cuda was not built (CMake: " + str(_cpu.build_info()["cuda_status"]) + ")"
else:  # pragma: no cover - no CUDA kernels exist in this version
    try:
        from . import _cuda  # type: ignore[attr-defined,no-redef]
    except ImportError as exc:
        CUDA_REASON = f"fastconv._cuda is built but cannot be loaded: {exc}"
    else:
        CUDA_REASON = None if _cuda.device_count() > 0 else "fastconv._cuda is built but no CUDA device is visible"

__all__ = ["_cpu", "_cuda", "CUDA_REASON"]
