# Copyright 2026 The trace_anything_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

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


def tune_malloc(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20,
                force: bool = False) -> Dict[str, object]:
    """Keep large buffers (dense fields, serialized messages: ~21 MB each) in the malloc heap instead of fresh mmaps.
    Applied when ``force`` or ``TAR_MALLOC_TUNE=1``; never with ``TAR_MALLOC_TUNE=0``.

    glibc serves blocks above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with a new mapping and
    trims the heap top beyond twice that threshold, so the 21 MB buffers of a field publish / receive (the joined
    bytes, rclpy's copy, rmw's, the received bytes) land on fresh pages: measured 20449 page faults and 74 ms per
    in-process round trip of the serialized path, 0 faults and 20.5 ms with this call (2 cores shared with a
    training job; 17.5 ms with it paused). The cost:
    freed blocks stay mapped up to ``trim_threshold``, so RSS rises in steps of one buffer to a plateau (+19 MB in
    the node's 40 s stream benchmark). The perception node therefore calls it when it first publishes a field (a
    process that never publishes one keeps glibc's defaults), or at start with ``TAR_MALLOC_TUNE=1``.
    Returns what was done (``{"applied": False, "reason": ...}`` when not asked, disabled or not glibc)."""
    env = os.environ.get(LARGE_BUFFER_ENV, "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return {"applied": False, "reason": f"{LARGE_BUFFER_ENV}=0"}
    if not force and env not in ("1", "true", "yes", "on"):
        return {"applied": False, "reason": "not asked"}
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as e:
        return {"applied": False, "reason": f"no glibc mallopt ({e})"}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    return {"applied": ok, "mmap_threshold": int(mmap_threshold), "trim_threshold": int(trim_threshold)}
