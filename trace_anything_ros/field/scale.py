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

"""Metric scale of a field from depth images: robust, confidence-weighted median of depth / field z."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from .evaluate import evaluate_curves
from .types import TrajectoryField


@dataclass(frozen=True)
class ScaleEstimate:
    scale: float  # multiply the field's positions by this to get metres (nan when not estimable)
    num_pixels: int  # pixels that voted
    spread: float  # robust relative spread of the per-pixel ratios (MAD / median): consistency check
    per_frame: dict  # frame index -> per-frame weighted median ratio
    ok: bool


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if x.size == 0 or w.sum() <= 0:
        return float("nan")
    o = np.argsort(x)
    cw = np.cumsum(w[o])
    return float(x[o][np.searchsorted(cw, 0.5 * cw[-1])])


def metric_scale_from_depth(field: TrajectoryField, depth, frames: Optional[Sequence[int]] = None,
                            frame_times=None, cam_from_ref=None, min_confidence: float = 0.0,
                            min_pixels: int = 16, min_z: float = 1e-6) -> ScaleEstimate:
    """Scale factor s such that ``s * field`` is metric.

    depth: ``[N, H, W]`` (one image per frame; NaN/inf/<=0 ignored) or ``[H, W]`` for frame 0 only.
    For each used frame i, frame i's own pixels are evaluated at frame i's own time (``frame_times``, default
    ``field.frame_times``) and their z is compared with the depth. The field lives in frame 0's camera; for
    another frame the comparison needs that frame's camera pose: ``cam_from_ref [N, 4, 4]`` (maps reference-camera
    points into camera i). Without it only frame 0 is used unless ``frames`` is given explicitly (which
    then asserts a static camera). Votes are weighted by the confidence at the same time.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim == 2:
        depth = depth[None]
        if frames is None:
            frames = [0]
    if depth.shape[1:] != (field.height, field.width):
        raise ValueError(f"depth {depth.shape[1:]} does not match the field's grid {(field.height, field.width)}")
    if frames is None:
        frames = list(range(min(depth.shape[0], field.num_frames))) if cam_from_ref is not None else [0]
    times = np.asarray(field.frame_times if frame_times is None else frame_times, dtype=np.float64)
    ratios, weights, per_frame = [], [], {}
    for i in frames:  # loop over frames, vectorised over pixels
        d_img = depth[i if depth.shape[0] > 1 else 0]
        x = evaluate_curves(field.ctrl_pts[i], [times[i]], d_axis=0)[0].astype(np.float64)  # [H, W, 3]
        c = evaluate_curves(field.ctrl_conf[i], [times[i]], d_axis=0)[0].astype(np.float64)  # [H, W]
        if cam_from_ref is not None:
            T = np.asarray(cam_from_ref[i], dtype=np.float64)
            x = x @ T[:3, :3].T + T[:3, 3]
        z = x[..., 2]
        ok = np.isfinite(d_img) & (d_img > 0) & np.isfinite(z) & (z > min_z) & np.isfinite(c) & (c > min_confidence)
        if ok.sum() < min_pixels:
            continue
        r, w = d_img[ok] / z[ok], np.maximum(c[ok], 0.0)
        if w.sum() <= 0:
            w = np.ones_like(r)
        per_frame[int(i)] = weighted_median(r, w)
        ratios.append(r), weights.append(w)
    if not ratios:
        return ScaleEstimate(float("nan"), 0, float("nan"), per_frame, False)
    r, w = np.concatenate(ratios), np.concatenate(weights)
    s = weighted_median(r, w)
    spread = float(np.median(np.abs(r - s)) / s) if s > 0 else float("nan")
    return ScaleEstimate(s, int(r.size), spread, per_frame, bool(np.isfinite(s) and s > 0))


def apply_scale(field: TrajectoryField, scale: float, metric: bool = True) -> TrajectoryField:
    """A copy of ``field`` with positions multiplied by ``scale`` (confidences unchanged)."""
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    extras = dict(field.extras)
    extras["scale"] = float(scale) * float(extras.get("scale", 1.0))
    return replace(field, ctrl_pts=(field.ctrl_pts * np.float32(scale)).astype(field.ctrl_pts.dtype),
                   metric=metric, extras=extras)
