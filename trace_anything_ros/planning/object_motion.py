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

"""Object SE(3) motion from a trajectory field.

Goal as an image: the perception model runs on the pair (current frame, goal image); in that 2-frame field the
pixels of frame 0 (current) that move describe the motion the goal asks for. ``motion_from_goal_field`` selects
the object's pixels of frame 0 (mask / instance label / pixel prompt / box prompt), evaluates their curves at
``num_waypoints`` times between frame 0's and frame 1's normalised times, lifts them to metres, transforms them
into the caller's output frame (the robot base) and fits the rigid motion frame 0 -> each time.

Goal as a pose: ``object_pose_history`` turns an object's points over a window into its poses (position = the
centroid of its points at the reference time, orientation = a given initial orientation composed with the
fitted rotation history), so a target pose of a tracked object can be compared with its current pose.

Scale: a metric field (``field.metric``) is used as is; otherwise, with a depth image of frame 0, the scale is
the median ratio depth / field z over the selected pixels; otherwise ``assumed_scale`` is applied and the
result says so in ``scale_note`` (the plan is then only as metric as that assumption).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..field.basis import basis_matrix
from ..field.scale import metric_scale_from_depth
from ..field.types import TrajectoryField
from . import se3
from .kabsch import FitParams, RigidFit, finite_rows, fit_rigid_sequence


@dataclass
class ObjectSelection:
    """Which pixels of the current frame (frame 0) belong to the object. Exactly one way should be given; when
    several are, the first in this order wins: mask, (labels, object_id), pixel, box, largest_moving.

    Pixel coordinates (pixel, box) and masks/labels may be given at the source image's resolution
    ``source_size = (height, width)``; they are then mapped onto the field's H x W grid.
    """

    mask: Optional[np.ndarray] = None             # bool [h, w]
    labels: Optional[np.ndarray] = None           # int  [h, w] instance labels (e.g. ~/dynamic_mask 16UC1)
    object_id: Optional[int] = None               # label value in ``labels``
    pixel: Optional[Tuple[float, float]] = None   # (u, v) prompt: column, row
    box: Optional[Tuple[float, float, float, float]] = None  # (u_min, v_min, u_max, v_max) prompt
    source_size: Optional[Tuple[int, int]] = None  # (height, width) of the prompt's image; None: the field grid
    largest_moving: bool = False                  # no prompt: the largest connected region that moves


def _resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    rows = np.minimum((np.arange(h) + 0.5) * img.shape[0] / h, img.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(w) + 0.5) * img.shape[1] / w, img.shape[1] - 1).astype(np.int64)
    return img[rows][:, cols]


def evaluate_frame_curves(fld: TrajectoryField, mask: np.ndarray, times, frame: int = 0):
    """Positions ``[T, M, 3]`` of the curves of the masked pixels of ``frame`` at normalised ``times`` and their
    weights ``[T, M]`` (the basis-weighted control-point confidences)."""
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    ctrl = fld.ctrl_pts[frame][:, mask]  # [D, M, 3]
    conf = fld.ctrl_conf[frame][:, mask]  # [D, M]
    B = basis_matrix(times, fld.num_ctrl)  # [T, D]
    D, M = ctrl.shape[:2]
    pts = (B @ ctrl.reshape(D, M * 3).astype(np.float64)).reshape(len(times), M, 3)  # one GEMM
    w = B @ conf.astype(np.float64)
    return pts, w


def moving_mask(fld: TrajectoryField, threshold: float, scale: float = 1.0, frame: int = 0,
                t_from: Optional[float] = None, t_to: Optional[float] = None) -> np.ndarray:
    """Pixels of ``frame`` whose curve moves more than ``threshold`` (metres after ``scale``) between
    ``t_from`` and ``t_to`` (default: the first and last frame times)."""
    t0 = float(fld.frame_times[0]) if t_from is None else t_from
    t1 = float(fld.frame_times[-1]) if t_to is None else t_to
    B = basis_matrix([t0, t1], fld.num_ctrl)  # [2, D]
    dB = B[1] - B[0]
    disp = np.tensordot(dB, fld.ctrl_pts[frame].astype(np.float64), axes=(0, 0))  # [H, W, 3]
    return np.linalg.norm(disp, axis=-1) * scale > threshold


def select_pixels(fld: TrajectoryField, sel: ObjectSelection, motion_threshold: float = 0.01,
                  scale: float = 1.0, frame: int = 0) -> Tuple[np.ndarray, str]:
    """Boolean mask ``[H, W]`` of the object's pixels on the field grid, and a note on how it was chosen."""
    H, W = fld.height, fld.width
    sh, sw = sel.source_size if sel.source_size is not None else (H, W)
    fu, fv = W / float(sw), H / float(sh)
    if sel.mask is not None:
        return _resize_nearest(np.asarray(sel.mask).astype(bool), H, W), "mask"
    if sel.labels is not None and sel.object_id is not None:
        lab = _resize_nearest(np.asarray(sel.labels), H, W)
        return lab == sel.object_id, f"instance label {sel.object_id}"
    moving = moving_mask(fld, motion_threshold, scale, frame)
    if sel.pixel is not None:
        u = int(np.clip(np.floor(sel.pixel[0] * fu), 0, W - 1))
        v = int(np.clip(np.floor(sel.pixel[1] * fv), 0, H - 1))
        lab, _ = ndimage.label(moving)
        if lab[v, u] > 0:
            return lab == lab[v, u], f"moving region at pixel ({u}, {v})"
        # The clicked pixel does not move (or sits on an edge): take the nearest moving region within 5% of
        # the image diagonal.
        if moving.any():
            dist, (iv, iu) = ndimage.distance_transform_edt(~moving, return_indices=True)
            if dist[v, u] <= 0.05 * np.hypot(H, W):
                return lab == lab[iv[v, u], iu[v, u]], f"moving region near pixel ({u}, {v})"
        return np.zeros((H, W), bool), f"no moving region at or near pixel ({u}, {v})"
    if sel.box is not None:
        u0, v0, u1, v1 = sel.box
        c0, c1 = int(np.clip(np.floor(u0 * fu), 0, W)), int(np.clip(np.ceil(u1 * fu), 0, W))
        r0, r1 = int(np.clip(np.floor(v0 * fv), 0, H)), int(np.clip(np.ceil(v1 * fv), 0, H))
        box = np.zeros((H, W), bool)
        box[r0:r1, c0:c1] = True
        inside = box & moving
        if inside.any():
            return inside, "moving pixels in box"
        return box, "whole box (nothing moves in it)"
    if sel.largest_moving:
        lab, n = ndimage.label(moving)
        if n == 0:
            return np.zeros((H, W), bool), "largest moving region (nothing moves)"
        sizes = np.bincount(lab.ravel())[1:]
        return lab == (int(np.argmax(sizes)) + 1), f"largest moving region ({int(sizes.max())} pixels)"
    raise ValueError("ObjectSelection needs a mask, labels + object_id, a pixel, a box or largest_moving")


def metric_scale(fld: TrajectoryField, mask: np.ndarray, depth: Optional[np.ndarray] = None,
                 assumed_scale: float = 1.0) -> Tuple[float, str]:
    """Factor from field units to metres and a note on where it came from.

    Depth (of frame 0, any resolution: resampled to the field grid; 16UC1 millimetres or 32FC1 metres) goes
    through ``field.scale.metric_scale_from_depth`` (confidence-weighted median of depth / z over frame 0).
    """
    if fld.metric:
        return 1.0, "metric field"
    if depth is not None:
        raw = np.asarray(depth)
        d = _resize_nearest(raw, fld.height, fld.width).astype(np.float64)
        if raw.dtype.kind in "ui":  # 16UC1: millimetres, 0 = invalid
            d = d / 1000.0
        est = metric_scale_from_depth(fld, d)
        if est.ok:
            return float(est.scale), (f"scale {est.scale:.4g} from depth over {est.num_pixels} pixels "
                                      f"(relative spread {est.spread:.2f})")
        return float(assumed_scale), (f"non-metric field and no usable depth: assumed scale {assumed_scale:g} m "
                                      f"per field unit")
    return float(assumed_scale), f"non-metric field without depth: assumed scale {assumed_scale:g} m per field unit"


@dataclass
class ObjectMotion:
    """The object's rigid motion in the output frame."""

    ok: bool
    reason: str
    poses: np.ndarray                  # [K, 4, 4] object poses (pose 0 = current)
    times: np.ndarray                  # [K] normalised field times of the poses
    fits: List[RigidFit]               # pose k = fits[k].T @ pose 0
    points: np.ndarray                 # [M, 3] object points at the current time (metres, output frame)
    weights: np.ndarray                # [M]
    scale: float = 1.0
    scale_note: str = ""
    selection_note: str = ""
    confidence: float = 0.0
    mask: Optional[np.ndarray] = dc_field(default=None, repr=False)


def fit_confidence(fits: Sequence[RigidFit], params: FitParams) -> float:
    """A [0, 1] summary of a fit sequence: the worst inlier ratio times the worst rms margin."""
    if not fits:
        return 0.0
    ratio = min(f.inlier_ratio for f in fits)
    rms = max(f.rms for f in fits)
    margin = float(np.clip(1.0 - rms / (2.0 * params.max_rms), 0.0, 1.0)) if np.isfinite(rms) else 0.0
    return float(np.clip(ratio * margin, 0.0, 1.0))


def object_pose_history(points, weights=None, initial_orientation=None, params: FitParams = FitParams(),
                        reference: int = 0):
    """Poses ``[T, 4, 4]`` of an object from its points ``[T, M, 3]`` (the same points at T times):
    pose(ref) = (initial_orientation, weighted centroid at ref), pose(k) = fit(ref -> k) @ pose(ref).
    Returns (poses, fits)."""
    pts = np.asarray(points, dtype=np.float64)
    fits = fit_rigid_sequence(pts, weights, params, reference)
    w = np.ones(pts.shape[:2]) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    wr = w[reference] * finite_rows(pts[reference])
    pr = np.where(np.isfinite(pts[reference]), pts[reference], 0.0)
    c = (wr @ pr) / max(wr.sum(), 1e-12)
    R0 = np.eye(3) if initial_orientation is None else np.asarray(initial_orientation, dtype=np.float64)[:3, :3]
    P0 = se3.make_pose(R0, c)
    poses = np.stack([f.T @ P0 for f in fits])
    return poses, fits


def motion_from_goal_field(fld: TrajectoryField, sel: ObjectSelection, base_T_camera=None,
                           depth: Optional[np.ndarray] = None, num_waypoints: int = 8,
                           params: FitParams = FitParams(), motion_threshold: float = 0.01,
                           assumed_scale: float = 1.0, min_confidence: float = 0.0,
                           min_points: int = 10, initial_orientation=None) -> ObjectMotion:
    """Object motion current (frame 0) -> goal (frame 1) of a 2-frame goal-conditioned field.

    ``base_T_camera`` (4x4, default identity) maps the field's camera frame into the output frame. Waypoint k
    evaluates the curves at ``t_k = lerp(frame_times[0], frame_times[1], k / (num_waypoints - 1))``.
    ``min_confidence``: pixels whose mean control-point confidence is below it are ignored.
    """
    if fld.num_frames < 2:
        raise ValueError("a goal field needs 2 frames (current, goal)")
    base_T_camera = np.eye(4) if base_T_camera is None else np.asarray(base_T_camera, dtype=np.float64)
    empty = ObjectMotion(False, "", np.zeros((0, 4, 4)), np.zeros(0), [], np.zeros((0, 3)), np.zeros(0))
    # Selection by motion needs a scale guess first; metric or assumed scale, refined by depth afterwards.
    scale0 = 1.0 if fld.metric else float(assumed_scale)
    mask, sel_note = select_pixels(fld, sel, motion_threshold, scale0)
    conf = fld.ctrl_conf[0].mean(0)
    # usable: confident enough and a finite curve (an estimator marks curves it could not estimate with NaN)
    finite = np.isfinite(fld.ctrl_pts[0]).all(axis=(0, -1))
    n_sel = int(mask.sum())
    mask = mask & (conf >= min_confidence) & finite
    empty.selection_note = sel_note
    empty.mask = mask
    if mask.sum() < min_points:
        empty.reason = f"object selection ({sel_note}) has {int(mask.sum())} usable pixels < {min_points}"
        if n_sel > int(mask.sum()):
            empty.reason += (f" ({n_sel - int(mask.sum())} of its {n_sel} pixels without a usable curve: "
                             f"non-finite or confidence < {min_confidence:g})")
        return empty
    scale, scale_note = metric_scale(fld, mask, depth, assumed_scale)
    t0, t1 = float(fld.frame_times[0]), float(fld.frame_times[1])
    times = np.linspace(t0, t1, max(2, int(num_waypoints)))
    pts, w = evaluate_frame_curves(fld, mask, times)
    pts = se3.transform_points(base_T_camera, pts * scale)
    poses, fits = object_pose_history(pts, w, initial_orientation, params)
    bad = [k for k, f in enumerate(fits) if not f.ok]
    reason = ""
    if bad:
        reason = f"rigid fit failed at waypoint {bad[0]} of {len(fits)}: {fits[bad[0]].reason}"
    return ObjectMotion(not bad, reason, poses, times, fits, pts[0], w[0], scale, scale_note, sel_note,
                        fit_confidence(fits[1:], params), mask)
