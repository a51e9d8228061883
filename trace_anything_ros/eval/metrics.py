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

"""Metrics of a predicted trajectory field against a simulated window's ground truth.

All positions are in the window's reference camera frame (frame 0). Predictions are evaluated at their own
(predicted) frame times; ground truth is the exact position of each pixel's scene point at each frame's stamp.
Errors are in metres; "aligned" rows first scale the prediction by the median ratio |gt| / |pred| over valid
points (the model is only defined up to scale).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import cv2
import numpy as np

from trace_anything_ros.field.basis import basis_matrix
from trace_anything_ros.field.types import TrajectoryField
from trace_anything_ros.field.camera import project
from trace_anything_ros.sim.ground_truth import GroundTruthWindow
from trace_anything_ros.sim.scene import inv_T


def samples_at_frame_times(field: TrajectoryField) -> np.ndarray:
    """[N, N, H, W, 3]: every frame's curves at every frame's (the field's own) time."""
    B = basis_matrix(field.frame_times, field.num_ctrl).astype(np.float32)
    return np.einsum("td,ndhwc->nthwc", B, field.ctrl_pts.astype(np.float32), optimize=True)


def median_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    a = np.linalg.norm(gt[mask], axis=-1)
    b = np.linalg.norm(pred[mask], axis=-1)
    ok = b > 1e-9
    return float(np.median(a[ok] / b[ok])) if ok.any() else 1.0


def _mean(x) -> float:
    x = np.asarray(x)
    return float(x.mean()) if x.size else float("nan")


def epe_metrics(S: np.ndarray, gt: GroundTruthWindow, scale: float) -> Dict[str, float]:
    n = S.shape[0]
    err = np.linalg.norm(S * scale - gt.positions, axis=-1)                 # [N, N, H, W]
    valid = np.broadcast_to(gt.valid[:, None], err.shape)
    dyn = np.broadcast_to(gt.dynamic_mask[:, None], err.shape)
    off = ~np.eye(n, dtype=bool)[:, :, None, None]                           # other frames only
    return dict(all=_mean(err[valid]), static=_mean(err[valid & ~dyn]), dynamic=_mean(err[valid & dyn]),
                dynamic_other_frames=_mean(err[valid & dyn & off]))


def static_spread(S: np.ndarray, gt: GroundTruthWindow, scale: float) -> float:
    """Mean distance of a static pixel's samples from their mean (static points should collapse to a point)."""
    m = gt.valid & ~gt.dynamic_mask                                          # [N, H, W]
    X = S.transpose(0, 2, 3, 1, 4)[m] * scale                               # [K, N, 3]
    return _mean(np.linalg.norm(X - X.mean(axis=1, keepdims=True), axis=-1))


def cross_frame_consistency(S: np.ndarray, gt: GroundTruthWindow, scale: float, max_pixels: int = 1500,
                            seed: int = 0) -> Dict[str, float]:
    """The same scene point seen in frames i and j (ground-truth correspondence, visible in j) must get the same
    trajectory: mean over times of |traj_i(p) - traj_j(q)|."""
    rng = np.random.default_rng(seed)
    n, _, h, w, _ = S.shape
    errs, dyn_errs = [], []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            m = gt.visibility[i, j] & gt.valid[i]
            idx = np.flatnonzero(m)
            if idx.size == 0:
                continue
            if idx.size > max_pixels:
                idx = rng.choice(idx, max_pixels, replace=False)
            vv, uu = np.unravel_index(idx, (h, w))
            T = inv_T(gt.cam_poses[j]) @ gt.cam_poses[0]
            P = gt.positions[i, j, vv, uu] @ T[:3, :3].T + T[:3, 3]
            uv, _ = project(P, gt.K)
            q_u = np.clip(np.rint(uv[:, 0]).astype(int), 0, w - 1)
            q_v = np.clip(np.rint(uv[:, 1]).astype(int), 0, h - 1)
            same = gt.body_ids[j, q_v, q_u] == gt.body_ids[i, vv, uu]      # skip pixel-rounding onto another body
            a = S[i][:, vv, uu][:, same] * scale                             # [N, K, 3]
            b = S[j][:, q_v, q_u][:, same] * scale
            e = np.linalg.norm(a - b, axis=-1).mean(axis=0)
            errs.append(e)
            dyn_errs.append(e[gt.dynamic_mask[i, vv, uu][same]])
    return dict(all=_mean(np.concatenate(errs)) if errs else float("nan"),
                dynamic=_mean(np.concatenate(dyn_errs)) if dyn_errs else float("nan"))


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def f_measure(pred: np.ndarray, gt: np.ndarray, tol: Optional[int] = None) -> float:
    """DAVIS-style boundary F-measure with a dilation tolerance (default 0.8% of the image diagonal, >= 1 px)."""
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    tol = tol or max(1, int(round(0.008 * np.hypot(*gt.shape))))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tol + 1, 2 * tol + 1))
    bp, bg = _boundary(pred), _boundary(gt)
    prec = (bp & cv2.dilate(bg.astype(np.uint8), k).astype(bool)).sum() / max(bp.sum(), 1)
    rec = (bg & cv2.dilate(bp.astype(np.uint8), k).astype(bool)).sum() / max(bg.sum(), 1)
    return float(2 * prec * rec / (prec + rec)) if prec + rec > 0 else 0.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def mask_metrics(pred_masks: np.ndarray, gt: GroundTruthWindow) -> Dict[str, float]:
    """pred_masks: [N, H, W] bool (dynamic) or int labels (0 static; >0 instances), or [H, W] for the newest frame
    only. Binary IoU over the frames given; per-object J&F: each GT moving object in each frame is matched to the
    predicted instance (or connected component of a binary mask) of highest IoU."""
    pm = np.asarray(pred_masks)
    frames = list(range(gt.valid.shape[0]))
    if pm.ndim == 2:
        pm, frames = pm[None], [frames[-1]]
    binary = pm.dtype == bool or pm.max() <= 1
    ious, js, fs = [], [], []
    for k, i in enumerate(frames):
        p = pm[k]
        valid = gt.valid[i]
        ious.append(iou((p > 0) & valid, gt.dynamic_mask[i] & valid))
        if binary:
            _, labels = cv2.connectedComponents((p > 0).astype(np.uint8))
        else:
            labels = p.astype(np.int32)
        cand = [lab for lab in np.unique(labels) if lab > 0]
        for b in np.unique(gt.instance_ids[i]):
            if b <= 0:
                continue
            g = gt.instance_ids[i] == b
            if g.sum() < 10:
                continue
            best = max(cand, key=lambda lab: iou(labels == lab, g), default=None)
            pmask = labels == best if best is not None else np.zeros_like(g)
            js.append(iou(pmask, g))
            fs.append(f_measure(pmask, g))
    J, F = _mean(js), _mean(fs)
    return dict(iou=_mean(ious), J=J, F=F, JF=(J + F) / 2 if js else float("nan"), objects=len(js))


def displacement_mask(field: TrajectoryField, rel_threshold: float = 0.02) -> np.ndarray:
    """A simple mask function: a pixel is dynamic when its curve moves more than ``rel_threshold`` x the median
    depth over the window (static points are constant in the reference camera frame). Returns [N, H, W] bool."""
    S = samples_at_frame_times(field)
    disp = np.linalg.norm(S - S[:, :1], axis=-1).max(axis=1)                 # [N, H, W]
    z = np.abs(field.ctrl_pts[..., 2]).reshape(-1)
    scale = float(np.median(z[z > 0])) if (z > 0).any() else 1.0
    return disp > rel_threshold * scale


def forecast_error(field: TrajectoryField, gt: GroundTruthWindow, future_poses: Dict[float, np.ndarray],
                   scale: float, forecaster: Optional[Callable] = None, tolerance: float = 0.05) -> Dict[str, float]:
    """Error of the newest frame's pixels forecast +h seconds vs their exact future positions (``future_poses[h]``
    = world_T_bodies at that time). ``forecaster(h) -> (positions [H, W, 3], sigma [H, W], confidence [H, W])`` in
    the field's units (the pipeline's forecasts, ``Products.forecast_pixels``); without one, the newest frame's
    curves are extrapolated (``field.forecast`` explicit constant-velocity extension past the window).

    With a forecaster, calibration on the moving pixels too: ``conf`` (mean published confidence), ``hit``
    (fraction within ``tolerance`` x depth, what ``conf`` predicts), ``cover90`` (fraction within the predicted
    sigma's 90 % radius, 1.443 sigma for an isotropic Gaussian: 0.9 when calibrated), ``sigma`` (mean, metres)."""
    from trace_anything_ros.field.forecast import forecast_field
    from trace_anything_ros.field.timemap import build_time_map

    out = {}
    tm = build_time_map(field.stamps, field.frame_times, "auto")
    last = gt.valid.shape[0] - 1
    m = gt.valid[-1]
    dyn = gt.dynamic_mask[-1] & m
    for h, poses in sorted(future_poses.items()):
        true = gt.positions_at(poses, frames=[last])[0]
        if forecaster is None:
            fc = forecast_field(field, tm, horizon_s=h, num_samples=1, max_horizon_s=h)
            pred = fc.positions[0, 0] * scale                                     # [H, W, 3]
            e = np.linalg.norm(pred - true, axis=-1)
            out[f"{h:g}s"] = dict(all=_mean(e[m]), dynamic=_mean(e[dyn]))
            continue
        pred, sigma, conf = forecaster(h)
        e = np.linalg.norm(np.asarray(pred, np.float64) * scale - true, axis=-1)
        sig = np.asarray(sigma, np.float64) * scale
        z = np.abs(gt.positions[last, last, ..., 2])
        ok_e = np.isfinite(e)
        d = dyn & ok_e
        out[f"{h:g}s"] = dict(all=_mean(e[m & ok_e]), dynamic=_mean(e[d]), conf=_mean(np.asarray(conf)[d]),
                              hit=_mean((e < tolerance * z)[d]), cover90=_mean((e <= 1.443 * sig)[d]),
                              sigma=_mean(sig[d]), cover90_all=_mean((e <= 1.443 * sig)[m & ok_e]))
    return out


def forecast_references(gt: GroundTruthWindow, now_poses: np.ndarray, past_poses: np.ndarray, delta: float,
                        future_poses: Dict[float, np.ndarray]) -> Dict[str, Dict]:
    """Reference forecasts of the newest frame's pixels from the ground truth: ``hold_still`` (every point stays
    where it is) and ``oracle_const_velocity`` (every point's exact trajectory extrapolated at its exact velocity
    at the newest frame, from the body poses ``delta`` s before: ``past_poses``). Same keys as
    :func:`forecast_error` (``{"forecast": {"0.5s": {"all", "dynamic"}}}``)."""
    last = gt.valid.shape[0] - 1
    now = gt.positions_at(now_poses, frames=[last])[0].astype(np.float64)
    vel = (now - gt.positions_at(past_poses, frames=[last])[0]) / delta
    m = gt.valid[-1]
    dyn = gt.dynamic_mask[-1] & m
    out = {"hold_still": {}, "oracle_const_velocity": {}}
    for h, poses in sorted(future_poses.items()):
        true = gt.positions_at(poses, frames=[last])[0]
        for name, pred in (("hold_still", now), ("oracle_const_velocity", now + vel * h)):
            e = np.linalg.norm(pred - true, axis=-1)
            out[name][f"{h:g}s"] = dict(all=_mean(e[m]), dynamic=_mean(e[dyn]))
    return {k: {"forecast": v} for k, v in out.items()}


def evaluate(field: TrajectoryField, gt: GroundTruthWindow, mask_fn: Optional[Callable] = None,
             future_poses: Optional[Dict[float, np.ndarray]] = None, forecaster: Optional[Callable] = None,
             tolerance: float = 0.05) -> Dict:
    """Every metric of one window. ``mask_fn(field) -> [N,H,W] (or [H,W]) mask/labels`` (default
    :func:`displacement_mask`); ``future_poses``: {seconds after the newest frame: world_T_bodies};
    ``forecaster``: see :func:`forecast_error`."""
    S = samples_at_frame_times(field)
    m = np.broadcast_to(gt.valid[:, None], S.shape[:4])
    s = median_scale(S, gt.positions, m)
    res = dict(scale=s, metric=bool(field.metric))
    res["epe_raw"] = epe_metrics(S, gt, 1.0)
    res["epe_aligned"] = epe_metrics(S, gt, s)
    res["static_spread"] = static_spread(S, gt, s)
    res["consistency"] = cross_frame_consistency(S, gt, s)
    masks = (mask_fn or displacement_mask)(field)
    if hasattr(masks, "mask"):                        # a motion.analyze() result
        masks = masks.labels if getattr(masks, "labels", None) is not None else masks.mask
    res["mask"] = mask_metrics(masks, gt)
    if future_poses:
        res["forecast"] = forecast_error(field, gt, future_poses, s, forecaster, tolerance)
    return res
