"""Thread pools of the native libraries in a perception process (BLAS, OpenCV, torch). ROS-free.

On a small CPU every pool defaults to one thread per core; a worker thread running numpy/cv2/torch then keeps every
core busy (BLAS threads also busy-wait after each call) and the executor thread that receives the camera stream
waits for a core and for the GIL. The node sets them deliberately on start-up (``limit_threads``): BLAS and OpenCV
to one thread (the post-processing matrices are small: measured 2-2.5x faster single-threaded on this 2-core machine
under load), torch to ``cores - 1`` unless ``model.threads`` says otherwise.
"""
from __future__ import annotations

import ctypes
import os
from typing import Dict, List, Optional

_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")


def _loaded_blas() -> List[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln}
    except OSError:
        return []
    return sorted(paths)


def set_blas_threads(n: int) -> List[str]:
    """Set the thread count of every OpenBLAS already loaded in this process (numpy's, scipy's) and, through the
    environment, of those loaded later / in child processes. Returns the libraries changed."""
    for k in _ENV:
        os.environ[k] = str(int(n))
    done = []
    for path in _loaded_blas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(int(n))
                done.append(os.path.basename(path))
                break
    return done


def default_model_threads() -> int:
    """Threads for the inference engine when ``model.threads`` is 0: every core but one (at least 1), so the
    receiving thread always finds a core."""
    return max(1, (os.cpu_count() or 1) - 1)


def limit_threads(blas: int = 1, cv: int = 1, torch_threads: Optional[int] = None) -> Dict[str, object]:
    """Set BLAS / OpenCV (/ torch, when given and torch is imported) thread counts. Returns what was set."""
    out: Dict[str, object] = {"blas": blas, "blas_libs": set_blas_threads(blas)}
    try:
        import cv2
        cv2.setNumThreads(int(cv))
        out["cv"] = cv
    except ImportError:
        pass
    if torch_threads:
        import sys
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(torch_threads))
            out["torch"] = int(torch_threads)
    return out


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
LARGE_BUFFER_ENV = "TAR_MALLOC_TUNE"


def tune_malloc(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20, force: bool = False) -> Dict[str, object]:
    """Opt-in (``TAR_MALLOC_TUNE=1`` in the environment, or ``force``): keep large buffers (dense fields, serialized
    messages: ~21 MB each) in the malloc heap instead of fresh mmaps.

    glibc serves blocks above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with a new mapping and
    unmaps it on free, and trims the heap top beyond twice that, so a 21 MB copy can land on fresh pages: ~5000
    page faults per copy. In a process that builds, publishes and receives fields back to back this turned a 16 ms
    round trip into 38-90 ms (5100-21700 faults per round trip measured; 0 with this call). The cost: freed blocks
    stay mapped up to ``trim_threshold``, so RSS rises in steps to a plateau; in the node's 40 s stream benchmark it
    stepped by one 20 MB field buffer (+8 % RSS, failing the flat-RSS check) while the field throughput did not
    measurably change there, hence opt-in. Called by the perception node's ``main`` and by ``bench_field``.
    Returns what was done (``{"applied": False, "reason": ...}`` when not asked or not glibc)."""
    if not force and os.environ.get(LARGE_BUFFER_ENV, "0").strip().lower() not in ("1", "true", "yes", "on"):
        return {"applied": False, "reason": f"{LARGE_BUFFER_ENV} not set"}
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as e:
        return {"applied": False, "reason": f"no glibc mallopt ({e})"}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    return {"applied": ok, "mmap_threshold": int(mmap_threshold), "trim_threshold": int(trim_threshold)}
