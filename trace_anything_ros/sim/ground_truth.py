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

"""Ground-truth trajectory fields of rendered windows.

For every pixel of every frame of a window: which body it sees (segmentation), which body-local point
(back-projection of the metric depth, moved into the body frame at that frame's time), and where that point is at
any time (carried by the body's poses), expressed in the window's reference camera frame (frame 0's camera, ROS
optical convention). Control points come from a least-squares fit with the shared B-spline basis
(``field.basis.basis_matrix``) at normalised times ``t = (stamp - stamp_0) / (stamp_N-1 - stamp_0)``.

Everything is linear in the camera-frame point, so per (frame, body) the fit collapses into D affine maps
``A_d = sum_k pinv(B)[d, k] * cam0_T_w @ W_b(tau_k) @ inv(W_b(t_i)) @ w_T_cam_i``; dense time samples between
frames (when a ``pose_fn`` gives exact poses at any time) therefore cost nothing per pixel.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from trace_anything_ros.field.basis import basis_matrix
from trace_anything_ros.field.camera import backproject
from trace_anything_ros.field.types import TrajectoryField

from .scene import _moving_from_poses, inv_T

DEFAULT_FRAME_ID = "sim_camera_optical_frame"


@dataclass
class GroundTruthWindow:
    """Ground truth of one window of N frames at H x W.

    field          TrajectoryField (metric=True) fitted control points; ctrl_conf 1 on valid pixels, 0 elsewhere
    positions      [N, N, H, W, 3] float32 exact position of frame i's pixel at frame j's time (ref camera frame)
    visibility     [N, N, H, W] bool: frame i's pixel point is visible in frame j (in image + depth test)
    valid          [N, H, W] bool: pixel sees geometry (finite depth)
    body_ids       [N, H, W] int32 MuJoCo body id seen by the pixel (-1 invalid, 0 static world)
    dynamic_mask   [N, H, W] bool: the pixel's body moves within the window
    instance_ids   [N, H, W] int32: body id where dynamic, else 0
    cam_poses      [N, 4, 4] world_T_cam (optical); body_poses [N, nbody, 4, 4] world_T_body at the frames
    local_points   [N, H, W, 3] float32 body-local coordinates of each pixel's point (for forecasts)
    """

    field: TrajectoryField
    positions: np.ndarray
    visibility: np.ndarray
    valid: np.ndarray
    body_ids: np.ndarray
    dynamic_mask: np.ndarray
    instance_ids: np.ndarray
    cam_poses: np.ndarray
    body_poses: np.ndarray
    local_points: np.ndarray
    dynamic_bodies: List[int] = dc_field(default_factory=list)

    @property
    def K(self) -> np.ndarray:
        return self.field.intrinsics

    def positions_at(self, world_T_bodies: np.ndarray, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """Exact positions [len(frames), H, W, 3] (ref camera frame) of the pixels of ``frames`` when the bodies are
        at ``world_T_bodies`` [nbody, 4, 4] (e.g. ``scene.poses_at(t)`` for a time past the window)."""
        frames = range(self.valid.shape[0]) if frames is None else frames
        c0_T_w = inv_T(self.cam_poses[0])
        out = []
        for i in frames:
            res = np.zeros(self.local_points.shape[1:], np.float32)
            ids = self.body_ids[i]
            for b in np.unique(ids[ids >= 0]):
                m = ids == b
                M = c0_T_w @ world_T_bodies[b]
                res[m] = self.local_points[i][m] @ M[:3, :3].T + M[:3, 3]
            out.append(res)
        return np.stack(out)


def normalised_times(stamps) -> np.ndarray:
    s = np.asarray(stamps, dtype=np.float64)
    span = s[-1] - s[0]
    return (s - s[0]) / span if span > 0 else np.zeros_like(s)


def compute_window(frames: Sequence[dict], num_ctrl: int = 10,
                   pose_fn: Optional[Callable[[float], np.ndarray]] = None, dense_samples: int = 31,
                   move_tol: float = 1e-4, depth_tol: float = 0.01, depth_rel_tol: float = 0.01,
                   frame_id: str = DEFAULT_FRAME_ID, with_visibility: bool = True) -> GroundTruthWindow:
    """Ground truth of a window of rendered frames (``Scene.render()`` dicts, oldest first).

    ``pose_fn(t) -> world_T_body [nbody, 4, 4]`` (``scene.poses_at``) adds ``dense_samples`` evenly spaced times to
    the fit so the spline follows the true motion between frames; without it the fit uses the frame times only.
    """
    n = len(frames)
    h, w = frames[0]["depth"].shape
    K = np.asarray(frames[0]["K"], dtype=np.float64)
    stamps = np.array([f["stamp"] for f in frames], dtype=np.float64)
    t_norm = normalised_times(stamps)
    cam = np.stack([np.asarray(f["world_T_cam"], dtype=np.float64) for f in frames])
    bp = np.stack([np.asarray(f["body_poses"], dtype=np.float64) for f in frames])  # [N, nb, 4, 4]
    c0_T_w = inv_T(cam[0])

    # fit samples: the frames plus (optionally) dense times between first and last stamp
    if pose_fn is not None and dense_samples > 0 and stamps[-1] > stamps[0]:
        extra = np.linspace(stamps[0], stamps[-1], dense_samples)
        s_stamps = np.concatenate([stamps, extra])
        s_poses = np.concatenate([bp, np.stack([pose_fn(float(t)) for t in extra])])
    else:
        s_stamps, s_poses = stamps, bp
    B = basis_matrix(normalised_times_like(s_stamps, stamps), num_ctrl)      # [T, D]
    # least squares with a tiny second-difference penalty on the control points: it picks the smoothest curve
    # when the frames alone under-determine the fit (N < D) and keeps constant (static) curves exactly constant
    L = np.diff(np.eye(num_ctrl), n=2, axis=0)
    pinvB = np.linalg.solve(B.T @ B + 1e-4 * L.T @ L, B.T)                    # [D, T]

    ctrl = np.zeros((n, num_ctrl, h, w, 3), np.float32)
    pos = np.zeros((n, n, h, w, 3), np.float32)
    vis = np.zeros((n, n, h, w), bool)
    local = np.zeros((n, h, w, 3), np.float32)
    valid = np.zeros((n, h, w), bool)
    body_ids = np.full((n, h, w), -1, np.int32)
    # per-target-frame depth for the visibility test
    depths = np.stack([np.nan_to_num(f["depth"].astype(np.float32), nan=np.inf) for f in frames])
    cam_T_w = inv_T(cam)

    hw = h * w
    for i, f in enumerate(frames):
        d = f["depth"]
        seg = f.get("seg_body")
        ok = np.isfinite(d) & (d > 0)
        if seg is not None:
            ok &= seg >= 0
            ids = np.where(ok, seg, -1).astype(np.int32)
        else:
            ids = np.where(ok, 0, -1).astype(np.int32)
        valid[i], body_ids[i] = ok, ids
        # per body: one GEMM of its pixels against all D (or N) stacked affine maps, rows scattered back by mask
        flat = ids.reshape(-1)
        X = backproject(np.where(ok, d, 0.0), K).reshape(-1, 3).astype(np.float32)
        present, counts = np.unique(flat[flat >= 0], return_counts=True)
        c_i = ctrl[i].reshape(num_ctrl, hw, 3)
        p_i = pos[i].reshape(n, hw, 3)
        l_i = local[i].reshape(hw, 3)
        q_i = np.zeros((n, 3, hw), np.float32)
        # the largest body (usually the static world) is computed for all pixels at once, without masking;
        # the others overwrite their pixels. Invalid pixels stay 0 in ctrl/pos/local (conf 0).
        big = int(np.argmax(counts)) if counts.size else -1
        for k in np.argsort(-counts):
            bid = int(present[k])
            m = None if k == big else flat == bid
            P = X if m is None else X[m]                                     # [K, 3]
            b_T_c = inv_T(bp[i, bid]) @ cam[i]                               # body <- cam_i
            _put(l_i[None], m, P, b_T_c[None])
            # maps cam_i point -> ref camera at every sample time
            M = c0_T_w[None] @ s_poses[:, bid] @ b_T_c[None]                 # [T, 4, 4]
            _put(c_i, m, P, np.einsum("dt,tij->dij", pinvB, M))               # fitted control points
            _put(p_i, m, P, M[:n])                                           # exact, at the frame times
            if with_visibility:                                              # pixel_j <- cam_i via the body
                KW = np.einsum("ij,njk->nik", K, (cam_T_w @ bp[:, bid] @ b_T_c[None])[:, :3]).astype(np.float32)
                if m is None:                                                # planar [n, 3, HW] GEMMs
                    XT = np.ascontiguousarray(X.T)
                    for j in range(n):
                        np.matmul(KW[j, :, :3], XT, out=q_i[j])
                        q_i[j] += KW[j, :, 3:4]
                else:
                    q_i[:, :, m] = np.einsum("njk,pk->njp", KW[:, :, :3], P) + KW[:, :, 3:4]
        bad = flat < 0
        if bad.any():
            c_i[:, bad] = 0.0
            p_i[:, bad] = 0.0
            l_i[bad] = 0.0
        if with_visibility:
            z = q_i[:, 2]                                                    # q_i: (u z, v z, z) in frame j
            with np.errstate(divide="ignore", invalid="ignore"):
                u = q_i[:, 0] / z
                v = q_i[:, 1] / z
            inside = (z > 0) & (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5) & ~bad[None]
            lin = np.where(inside, (v + 0.5).astype(np.int32) * w + (u + 0.5).astype(np.int32), 0)
            lin += (np.arange(n, dtype=np.int32) * hw)[:, None]
            dz = depths.reshape(-1)[lin]
            vis[i] = (inside & (np.abs(dz - z) <= depth_tol + depth_rel_tol * z)).reshape(n, h, w)

    seen_bodies = set(np.unique(body_ids).tolist())
    dyn_bodies = [b for b in _moving_from_poses(s_poses, move_tol) if b in seen_bodies]
    dyn = np.isin(body_ids, dyn_bodies) if dyn_bodies else np.zeros_like(valid)
    inst = np.where(dyn, body_ids, 0).astype(np.int32)
    conf = np.broadcast_to(valid[:, None], (n, num_ctrl, h, w)).astype(np.float32)
    fld = TrajectoryField(ctrl_pts=ctrl, ctrl_conf=np.ascontiguousarray(conf), frame_times=t_norm.astype(np.float32),
                          stamps=stamps, intrinsics=K.copy(), metric=True, frame_id=frame_id,
                          extras={"source": "sim_ground_truth"})
    return GroundTruthWindow(field=fld, positions=pos, visibility=vis, valid=valid, body_ids=body_ids,
                             dynamic_mask=dyn, instance_ids=inst, cam_poses=cam, body_poses=bp, local_points=local,
                             dynamic_bodies=list(dyn_bodies))


def _affine(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Points [K, 3] through a stack of affine maps T [S, 4, 4] (or [S, 3, 4]) -> [K, S*3] with one GEMM."""
    S = T.shape[0]
    R = np.ascontiguousarray(T[:, :3, :3].transpose(2, 0, 1).reshape(3, S * 3), dtype=np.float32)
    out = P @ R
    out += T[:, :3, 3].reshape(-1).astype(np.float32)
    return out


def _put(dst: np.ndarray, m, P: np.ndarray, T: np.ndarray):
    """dst[s, m] = T[s] applied to P for every map s (dst [S, HW, 3]; m a pixel mask or None for all).
    Identical maps (a static body, a static camera) are applied once and broadcast."""
    if np.abs(T - T[:1]).max() <= 1e-9:
        r = _affine(P, T[:1])[None]                                          # [1, K, 3]
    else:
        r = _affine(P, T).reshape(P.shape[0], T.shape[0], 3).transpose(1, 0, 2)
    if m is None:
        dst[:] = r
    else:
        dst[:, m] = r


def normalised_times_like(stamps: np.ndarray, window_stamps: np.ndarray) -> np.ndarray:
    """Normalise ``stamps`` with the window's first/last stamp."""
    span = window_stamps[-1] - window_stamps[0]
    return (stamps - window_stamps[0]) / span if span > 0 else np.zeros_like(stamps)


def evaluate_field(field: TrajectoryField, times: Optional[np.ndarray] = None) -> np.ndarray:
    """Samples [N, T, H, W, 3] of a field's curves at normalised ``times`` (default: its frame times)."""
    times = field.frame_times if times is None else np.asarray(times)
    B = basis_matrix(times, field.num_ctrl).astype(np.float32)
    return np.einsum("td,ndhwc->nthwc", B, field.ctrl_pts.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# compact storage


def save_window(path, frames: Sequence[dict], gt: GroundTruthWindow, compress_positions: bool = True):
    """Write a window (frames + ground truth) to one compressed npz; float16 for depth, points and positions."""
    f16 = np.float16
    arrays = dict(
        rgb=np.stack([f["rgb"] for f in frames]).astype(np.uint8),
        depth=np.stack([f["depth"] for f in frames]).astype(f16),
        stamps=gt.field.stamps, frame_times=gt.field.frame_times, K=gt.field.intrinsics,
        ctrl_pts=gt.field.ctrl_pts.astype(f16), valid=gt.valid, body_ids=gt.body_ids.astype(np.int16),
        dynamic_mask=gt.dynamic_mask, instance_ids=gt.instance_ids.astype(np.int16),
        visibility=np.packbits(gt.visibility, axis=-1), vis_shape=np.array(gt.visibility.shape),
        cam_poses=gt.cam_poses, body_poses=gt.body_poses, local_points=gt.local_points.astype(f16),
        dynamic_bodies=np.array(gt.dynamic_bodies, np.int32), frame_id=np.array(gt.field.frame_id),
    )
    if compress_positions:
        arrays["positions"] = gt.positions.astype(f16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_window(path):
    """Inverse of :func:`save_window` -> (frames dict of arrays, GroundTruthWindow). float16 data comes back as
    float32 (about 1 mm at 2 m)."""
    z = np.load(path, allow_pickle=False)
    f32 = np.float32
    vis_shape = tuple(z["vis_shape"])
    vis = np.unpackbits(z["visibility"], axis=-1, count=vis_shape[-1]).astype(bool).reshape(vis_shape)
    n, d = z["ctrl_pts"].shape[:2]
    valid = z["valid"]
    conf = np.broadcast_to(valid[:, None], (n, d) + valid.shape[1:]).astype(f32)
    fld = TrajectoryField(ctrl_pts=z["ctrl_pts"].astype(f32), ctrl_conf=np.ascontiguousarray(conf),
                          frame_times=z["frame_times"], stamps=z["stamps"], intrinsics=z["K"], metric=True,
                          frame_id=str(z["frame_id"]), extras={"source": "sim_ground_truth"})
    pos = z["positions"].astype(f32) if "positions" in z else None
    gt = GroundTruthWindow(field=fld, positions=pos, visibility=vis, valid=valid,
                           body_ids=z["body_ids"].astype(np.int32), dynamic_mask=z["dynamic_mask"],
                           instance_ids=z["instance_ids"].astype(np.int32), cam_poses=z["cam_poses"],
                           body_poses=z["body_poses"], local_points=z["local_points"].astype(f32),
                           dynamic_bodies=[int(b) for b in z["dynamic_bodies"]])
    frames = dict(rgb=z["rgb"], depth=z["depth"].astype(f32), stamps=z["stamps"], K=z["K"])
    return frames, gt


def render_window(scene, num_frames: int = 8, dt: float = 0.1, start: Optional[float] = None, num_ctrl: int = 10,
                  dense_samples: int = 31, **kwargs):
    """Render ``num_frames`` frames of ``scene`` ``dt`` apart and compute their ground truth -> (frames, gt)."""
    frames = scene.record(num_frames, dt, start=start)
    gt = compute_window(frames, num_ctrl=num_ctrl, pose_fn=scene.poses_at, dense_samples=dense_samples, **kwargs)
    return frames, gt
