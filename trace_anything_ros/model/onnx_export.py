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

"""ONNX export of the full network for a fixed window length N and input size, verified with onnxruntime.

Graph inputs: ``images`` float32 ``[1, N, 3, H, W]`` (network orientation, W >= H, in [-1, 1]) and ``times`` float32
``[1, N]``. Outputs: ``ctrl_pts [1, N, D, H, W, 3]``, ``ctrl_conf [1, N, D, H, W]``, ``times_pred [1, N]``.
Metadata: our config JSON and ``user_orientation`` (portrait input sizes are exported rotated; the engine rotates).
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Dict, Tuple

import numpy as np
import torch

from .network import TraceAnythingNet, default_times


def _err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def export_onnx(model: TraceAnythingNet, path: str, window: int, input_size: Tuple[int, int], opset: int = 17,
                verify: bool = True, tol: float = 1e-4, seed: int = 0) -> Dict:
    """Export; with ``verify`` run onnxruntime (CPU) on random input and compare with torch
    (``max|ort - torch| / max|torch|`` per output must be <= ``tol``). Returns a report dict; raises on mismatch."""
    if opset < 17:
        raise ValueError("opset must be >= 17")
    if getattr(model, "geometric", False):
        raise ValueError("ONNX export of the depth-aware model (geometry 'depth_flow') is not supported: its optical "
                         "flow and geometry inputs are computed per window in Python; use model.engine: torch "
                         "(cpu or cuda)")
    H, W = int(input_size[0]), int(input_size[1])
    portrait = H > W
    if portrait:
        H, W = W, H
    if H % 16 or W % 16:
        raise ValueError(f"input size must be multiples of 16, got {input_size}")
    model = model.float().eval().cpu()
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(1, window, 3, H, W, generator=g) * 2 - 1
    times = default_times(1, window)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (images, times), path, input_names=["images", "times"],
                          output_names=["ctrl_pts", "ctrl_conf", "times_pred"], opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    for k, v in (("trace_anything_ros.config", model.cfg.to_json()),
                 ("user_orientation", "portrait" if portrait else "landscape"),
                 ("window", str(window))):
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, path)
    report = {"path": path, "window": window, "input_size": [int(input_size[0]), int(input_size[1])],
              "opset": opset, "export_s": time.perf_counter() - t0, "bytes": os.path.getsize(path)}
    if verify:
        report["verify"] = verify_onnx(model, path, images, times, tol)
    return report


def verify_onnx(model: TraceAnythingNet, path: str, images: torch.Tensor, times: torch.Tensor,
                tol: float = 1e-4) -> Dict:
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = [t.numpy() for t in model(images, times)]
    got = sess.run(None, {"images": images.numpy(), "times": times.numpy()})
    errs = {name: _err(g, r) for name, g, r in zip(("ctrl_pts", "ctrl_conf", "times_pred"), got, ref)}
    shapes_ok = all(g.shape == r.shape for g, r in zip(got, ref))
    if not shapes_ok or max(errs.values()) > tol:
        raise RuntimeError(f"ONNX verification failed: shapes_ok={shapes_ok} errors={errs} (tol {tol})")
    return {"max_rel_err": errs, "tol": tol, "ok": True}
