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

"""Estimators for the benchmark: an adapter for any field estimator, the baselines and the ground-truth oracle.

Accepted estimators (``as_field``):
  * a ``trace_anything_ros.model.api.FieldEstimator`` (``predict(frames, frame_keys=None, depth=None) ->
    FieldPrediction``), or any object with such a ``predict``;
  * a plain callable ``f(frames, depth) -> FieldPrediction | TrajectoryField | (ctrl_pts, ctrl_conf, frame_times)``.
Objects with ``needs_context = True`` (the baselines and the oracle here) also receive ``context=`` (the
window's K, camera poses, stamps and ground truth): they are references, not competitors.
"""
from __future__ import annotations

import inspect
from typing import Optional

import cv2
import numpy as np

from trace_anything_ros.field.basis import basis_matrix
from trace_anything_ros.field.types import TrajectoryField
from trace_anything_ros.field.camera import backproject
from trace_anything_ros.sim.scene import inv_T


def _fit_linear(p0: np.ndarray, vel: np.ndarray, t_of_p0: np.ndarray, times: np.ndarray, num_ctrl: int):
    """Control points of x(t) = p0 + vel * (t - t_of_p0) (exact: a line is a cubic spline)."""
    B = basis_matrix(times, num_ctrl)
    pinv = np.linalg.pinv(B)                       # [D, T]
    # x(t_k) = p0 + vel * (t_k - t0): ctrl = pinv @ x  =>  ctrl_d = p0 * sum_k pinv + vel * sum_k pinv (t_k - t0)
    a = pinv.sum(axis=1)                           # [D] (== 1)
    b = pinv @ times                               # [D]
    out = (a[:, None, None, None] * p0[None] + (b[:, None, None, None] - t_of_p0) * vel[None])
    return out.astype(np.float32)


class StaticBaseline:
    """Everything static: each pixel stays at its depth back-projection (moved into the reference camera frame
    with the known camera poses, as odometry would give)."""

    name = "static"
    needs_context = True
    num_ctrl = 10

    def predict(self, frames, frame_keys=None, depth=None, context=None):
        n, h, w = depth.shape
        cam = context["cam_poses"]
        c0_T_w = inv_T(cam[0])
        out = np.zeros((n, self.num_ctrl, h, w, 3), np.float32)
        for i in range(n):
            X = backproject(np.nan_to_num(depth[i]), context["K"])
            T = c0_T_w @ cam[i]
            out[i] = (X @ T[:3, :3].T + T[:3, 3]).astype(np.float32)[None]
        conf = np.isfinite(depth)[:, None].repeat(self.num_ctrl, 1).astype(np.float32)
        return TrajectoryField(out, conf, context["frame_times"], context["stamps"], context["K"], True)


class ConstantVelocityBaseline:
    """Constant velocity from the last two frames, per pixel location (depth back-projection, no flow):
    v(p) = X_{N-1}(p) - X_{N-2}(p) per frame interval; every frame's pixel p moves with v(p) from its own point."""

    name = "const_velocity"
    needs_context = True
    num_ctrl = 10

    def predict(self, frames, frame_keys=None, depth=None, context=None):
        n, h, w = depth.shape
        cam, K = context["cam_poses"], context["K"]
        t = np.asarray(context["frame_times"], np.float64)
        c0_T_w = inv_T(cam[0])
        pts = []
        for i in range(n):
            X = backproject(np.nan_to_num(depth[i]), K)
            T = c0_T_w @ cam[i]
            pts.append(X @ T[:3, :3].T + T[:3, 3])
        pts = np.stack(pts)
        vel = (pts[-1] - pts[-2]) / max(t[-1] - t[-2], 1e-9)                 # per unit normalised time
        out = np.stack([_fit_linear(pts[i], vel, t[i], t, self.num_ctrl) for i in range(n)])
        conf = np.isfinite(depth)[:, None].repeat(self.num_ctrl, 1).astype(np.float32)
        return TrajectoryField(out, conf, t, context["stamps"], K, True)


class GroundTruthEstimator:
    """The oracle: returns the ground-truth field (sanity row: its errors are the spline fit's residual)."""

    name = "ground_truth"
    needs_context = True

    def predict(self, frames, frame_keys=None, depth=None, context=None):
        return context["gt"].field


BASELINES = {"static": StaticBaseline, "const_velocity": ConstantVelocityBaseline, "ground_truth": GroundTruthEstimator}


def as_field(estimator, frames: np.ndarray, depth: Optional[np.ndarray], context: dict) -> TrajectoryField:
    """Run ``estimator`` on one window and return its output as a TrajectoryField at the window's H x W
    (nearest-neighbour resampling when the estimator works at another size; stamps from the window)."""
    n, h, w = frames.shape[:3]
    size = getattr(estimator, "input_size", None)
    inp = frames
    if size and tuple(size) != (h, w):
        inp = np.stack([cv2.resize(f, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA) for f in frames])
    fn = estimator.predict if hasattr(estimator, "predict") else estimator
    kwargs = {}
    if getattr(estimator, "needs_context", False):
        kwargs["context"] = context
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "depth" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs["depth"] = depth if inp is frames else None
        if kwargs["depth"] is None and depth is not None:
            kwargs["depth"] = np.stack([cv2.resize(d, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
                                        for d in depth])
    if getattr(estimator, "needs_intrinsics", False):
        # a depth-aware model gets what the baselines get: K (on its input grid), the camera motion (odometry), stamps
        K = np.asarray(context["K"], np.float64).copy()
        if inp is not frames:
            sx, sy = size[1] / w, size[0] / h
            K[0, 0], K[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
            K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
        kwargs["intrinsics"] = K
        cam = np.asarray(context["cam_poses"], np.float64)
        kwargs["cam_poses"] = inv_T(cam[0])[None] @ cam
        kwargs["times"] = np.asarray(context["frame_times"], np.float32)
    pred = fn(inp, **kwargs)
    extras = dict(getattr(pred, "extras", None) or {})  # what the estimator measured (regime, noise floor)
    if isinstance(pred, TrajectoryField):
        ctrl, conf, times, metric = pred.ctrl_pts, pred.ctrl_conf, pred.frame_times, pred.metric
    elif isinstance(pred, tuple):
        ctrl, conf, times = pred
        metric = False
    else:  # FieldPrediction or anything with those attributes
        ctrl, conf, times = pred.ctrl_pts, pred.ctrl_conf, pred.frame_times
        metric = bool(getattr(pred, "metric", False))
    ctrl = np.asarray(ctrl, np.float32)
    conf = np.asarray(conf, np.float32)
    if ctrl.shape[2:4] != (h, w):
        ys = np.minimum((np.arange(h) + 0.5) * ctrl.shape[2] / h, ctrl.shape[2] - 1).astype(int)
        xs = np.minimum((np.arange(w) + 0.5) * ctrl.shape[3] / w, ctrl.shape[3] - 1).astype(int)
        ctrl = ctrl[:, :, ys][:, :, :, xs]
        conf = conf[:, :, ys][:, :, :, xs]
    return TrajectoryField(ctrl, conf, np.asarray(times, np.float32), context["stamps"], context["K"], metric,
                           extras=extras)


class ContextEstimator:
    """A benchmark estimator behind the ``FieldEstimator`` face, so that ``pipeline.PerceptionPipeline`` (the node's
    code path: depth scale, motion analysis, object tracking across windows, forecasts) can run it on a stream.
    ``contexts(frame_keys) -> context`` gives each window's context (K, camera poses, stamps, ground truth), which
    ``as_field`` hands to the wrapped estimator exactly as in a single-window evaluation. ``last_predict_s``: the
    duration of the last call."""

    def __init__(self, estimator, input_size, contexts):
        self.estimator = estimator
        self.input_size = tuple(int(x) for x in input_size)
        self.contexts = contexts
        self.last_predict_s = float("nan")

    def predict(self, frames, frame_keys=None, depth=None, **_):
        import time

        ctx = self.contexts(list(frame_keys))
        tic = time.perf_counter()
        field = as_field(self.estimator, np.asarray(frames), depth, ctx)
        self.last_predict_s = time.perf_counter() - tic
        return field
