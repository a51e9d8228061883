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

"""A STAND-IN model: a deterministic, analytic FieldEstimator for tests and benchmarks of the node and pipeline (no
network, nothing learned; its products are only meaningful for the scenes described here). Factory string:
``trace_anything_ros.model.analytic:create``.

Scene model: every pixel lies on a fronto-parallel plane at depth ``Z`` (camera static). Pixels that are "red"
(R > 150, G < 100, B < 100) in a frame belong to a moving object that translates with ``VELOCITY`` (units per unit
of normalised time) in the camera frame. Everything else is static, so its curves are constant. The output is
exact B-spline control points of these straight-line motions (a line is a B-spline with collinear, evenly spaced
control points), so tests can predict the products.

Environment knobs (read by ``create``; tests start node processes with them):
  TAR_ANALYTIC_DELAY  seconds each predict sleeps (a model slower than the stream)
  TAR_ANALYTIC_FAIL   "1": the factory raises (model failed to load)
"""
from __future__ import annotations

import os
import time
from typing import Optional, Sequence

import numpy as np

from trace_anything_ros.model.api import FieldPrediction

Z = 2.0
VELOCITY = np.array([0.5, 0.0, 0.0], np.float32)


def red_mask(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.int16)
    return (f[..., 0] > 150) & (f[..., 1] < 100) & (f[..., 2] < 100)


class AnalyticEstimator:

    def __init__(self, input_size=(64, 96), num_ctrl: int = 10, delay: float = 0.0):
        self.input_size = tuple(int(v) for v in input_size)
        self.num_ctrl = int(num_ctrl)
        self.delay = float(delay)
        self.calls = 0
        self.closed = False

    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None) -> FieldPrediction:
        if self.closed:
            raise RuntimeError("estimator closed")
        frames = np.asarray(frames)
        n, h, w, _ = frames.shape
        if (h, w) != self.input_size:
            raise ValueError(f"frames must be {self.input_size}, got {(h, w)}")
        t0 = time.perf_counter()
        f = float(w)
        v, u = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([(u - (w - 1) / 2) / f * Z, (v - (h - 1) / 2) / f * Z, np.full_like(u, Z)], axis=-1)
        times = np.linspace(0.0, 1.0, n, dtype=np.float32)
        s = np.linspace(0.0, 1.0, self.num_ctrl, dtype=np.float32)  # control points of a line, evenly spaced
        ctrl = np.empty((n, self.num_ctrl, h, w, 3), np.float32)
        ctrl[:] = base[None, None]
        moving = red_mask(frames)  # [N, H, W]
        for i in range(n):
            m = moving[i]
            if m.any():
                # the point seen at pixel (v,u) of frame i at time t_i moves with VELOCITY: x(t) = p + V (t - t_i)
                offs = (s - times[i])[:, None] * VELOCITY[None, :]  # [D, 3]
                ctrl[i][:, m, :] = base[m][None, :, :] + offs[:, None, :]
        conf = np.ones((n, self.num_ctrl, h, w), np.float32)
        self.calls += 1
        if self.delay > 0:
            time.sleep(max(0.0, self.delay - (time.perf_counter() - t0)))
        return FieldPrediction(ctrl_pts=ctrl, ctrl_conf=conf, frame_times=times)

    def close(self) -> None:
        self.closed = True


def create(params: Optional[dict] = None) -> AnalyticEstimator:
    """Factory with the model's signature (one dict): uses input_size [H, W] and num_ctrl when given."""
    p = dict(params or {})
    if os.environ.get("TAR_ANALYTIC_FAIL") == "1":
        raise RuntimeError("analytic estimator: load failure requested by TAR_ANALYTIC_FAIL=1")
    return AnalyticEstimator(input_size=tuple(p.get("input_size") or (64, 96)), num_ctrl=int(p.get("num_ctrl", 10)),
                             delay=float(p.get("delay", os.environ.get("TAR_ANALYTIC_DELAY", "0")) or 0))
