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

"""Side inputs of the depth-aware compact model (``ModelConfig.geometry == "depth_flow"``).

The official Trace Anything network sees RGB only and must infer depth and motion from appearance. A robot usually
has a depth camera, and a 2-million-parameter model trained on a CPU cannot learn monocular depth to the precision
a manipulation planner needs; so the project's compact model is given what the robot measures and learns what it
does not: which pixels move and how their curves go. Per window (N frames at the model's input size):

* ``aux [N, AUX_CHANNELS, H, W]`` (extra encoder channels next to RGB): inverse depth normalised by the window's
  median depth (0 where unknown), a depth-valid flag, DIS optical flow to the next frame and from the previous
  frame (pixels / ``FLOW_SCALE``; zero at the window ends), and the motion cue: how far the pixel's flow-chained
  samples move from its own back-projection, relative to its depth (camera motion removed where poses are given);
* ``x0 [N, H, W, 3]``: every pixel back-projected with its own depth -- where a static point is, in the reference
  camera under the static-camera assumption the network corrects for;
* ``samples [N, N, H, W, 3]``: frame i's pixel at frame j's time, following the optical flow from frame to frame
  (forward-backward consistency checked; a broken chain holds its last position) and back-projected with frame j's
  depth there. The network blends its curves between ``x0`` and these samples with a learned per-pixel gate.

Without depth (a plain video) every pixel gets depth 1 (a fronto-parallel plane, ``aux`` valid flag 0) and
``default_intrinsics`` where no camera_info exists: the field is then 2.5D (exact image motion, relative depth
change only), which is what overlays and masks need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..field.camera import backproject, backproject_at, default_intrinsics

AUX_CHANNELS = 7
MOTION_SCALE = 10.0       # the motion-cue channel: max_j |samples_ij - x0_i| / z0, times this
FLOW_SCALE = 8.0          # px: flow channels are divided by this
FB_TOL_PX = 1.0           # forward-backward consistency: |f + b| <= FB_TOL_PX + FB_TOL_REL * |f|
FB_TOL_REL = 0.1
DEPTH_TOL_REL = 0.1       # a chained pixel takes frame j's depth only within this of its previous depth (+ abs);
DEPTH_TOL_ABS = 0.02      # else it keeps the previous depth (flow that slid onto the background at an edge)


@dataclass
class GeometryInputs:
    aux: np.ndarray        # [N, AUX_CHANNELS, H, W] float32
    x0: np.ndarray         # [N, H, W, 3] float32
    samples: np.ndarray    # [N, N, H, W, 3] float32
    has_depth: bool


def optical_flow(a_gray: np.ndarray, b_gray: np.ndarray) -> np.ndarray:
    """Dense DIS optical flow ``[H, W, 2]`` (pixels) from ``a`` to ``b`` (uint8 grey images).

    At the model's small input sizes the presets' default finest scale (2: quarter resolution) under-estimates
    the motion of small objects (a 2 px shift read as 1.1 px on a 64-px-wide test image); finest scale 0 with
    4-px patches every 2 px halves the error on simulated windows (0.58 -> 0.28 px on moving pixels) at
    ~5x the time (still a few ms at 96x128)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    dis.setFinestScale(0)
    dis.setPatchSize(4)
    dis.setPatchStride(2)
    return dis.calc(a_gray, b_gray, None)


def _filled_depth(depth: Optional[np.ndarray], n: int, h: int, w: int):
    """(z [N, H, W] float64 with holes filled by the frame's median, valid [N, H, W] bool, window median)."""
    if depth is None:
        return np.ones((n, h, w)), np.zeros((n, h, w), bool), 1.0
    d = np.asarray(depth, dtype=np.float64)
    if d.shape != (n, h, w):
        raise ValueError(f"depth must be [N, H, W] = {(n, h, w)}, got {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    med = float(np.median(d[valid])) if valid.any() else 1.0
    z = np.empty_like(d)
    for i in range(n):
        fill = float(np.median(d[i][valid[i]])) if valid[i].any() else med
        z[i] = np.where(valid[i], d[i], fill)
    return z, valid, med


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray, interp: int) -> np.ndarray:
    return cv2.remap(img, u.astype(np.float32), v.astype(np.float32), interp, borderMode=cv2.BORDER_REPLICATE)


def _to_ref(X: np.ndarray, T: Optional[np.ndarray]) -> np.ndarray:
    return X if T is None else X @ T[:3, :3].T + T[:3, 3]


def compute(frames: np.ndarray, depth: Optional[np.ndarray] = None, K: Optional[np.ndarray] = None,
            cam_poses: Optional[np.ndarray] = None) -> GeometryInputs:
    """Geometry inputs for one window: ``frames`` uint8 ``[N, H, W, 3]`` RGB, ``depth`` metres ``[N, H, W]``
    (NaN / 0 = unknown) or None, ``K`` 3x3 for the H x W grid or None (then ``default_intrinsics``),
    ``cam_poses`` ``[N, 4, 4]`` each frame's camera in the reference (first) camera, where odometry / TF knows them
    (None: a static camera; used only with depth)."""
    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    K = default_intrinsics(h, w) if K is None else np.asarray(K, dtype=np.float64)
    poses = [None] * n if (cam_poses is None or depth is None) else [np.asarray(T, np.float64) for T in cam_poses]
    z, valid, med = _filled_depth(depth, n, h, w)
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    fwd = [optical_flow(gray[i], gray[i + 1]) for i in range(n - 1)]   # i -> i+1
    bwd = [optical_flow(gray[i + 1], gray[i]) for i in range(n - 1)]   # i+1 -> i
    aux = np.zeros((n, AUX_CHANNELS, h, w), np.float32)
    aux[:, 0] = np.where(valid, med / z, 0.0)
    aux[:, 1] = valid
    for i in range(n - 1):
        aux[i, 2:4] = np.moveaxis(fwd[i], -1, 0) / FLOW_SCALE
        aux[i + 1, 4:6] = np.moveaxis(bwd[i], -1, 0) / FLOW_SCALE
    x0 = np.stack([_to_ref(backproject(z[i], K), poses[i]) for i in range(n)]).astype(np.float32)
    samples = np.empty((n, n, h, w, 3), np.float32)
    gu, gv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    for i in range(n):
        samples[i, i] = x0[i]
        for step, flows, back in ((1, fwd, bwd), (-1, bwd, fwd)):
            u, v = gu.copy(), gv.copy()
            zc = z[i].copy()
            alive = np.ones((h, w), bool)
            j = i
            while 0 <= j + step < n:
                k = j if step == 1 else j - 1              # flow index between frames j and j + step
                f = _sample(flows[k], u, v, cv2.INTER_LINEAR).astype(np.float64)
                un, vn = u + f[..., 0], v + f[..., 1]
                b = _sample(back[k], un, vn, cv2.INTER_LINEAR).astype(np.float64)
                ok = (np.hypot(f[..., 0] + b[..., 0], f[..., 1] + b[..., 1])
                      <= FB_TOL_PX + FB_TOL_REL * np.hypot(f[..., 0], f[..., 1]))
                ok &= (un >= 0) & (un <= w - 1) & (vn >= 0) & (vn <= h - 1)
                alive &= ok
                u, v = np.where(alive, un, u), np.where(alive, vn, v)
                j += step
                zj = _sample(z[j].astype(np.float32), u, v, cv2.INTER_NEAREST).astype(np.float64)
                zc = np.where(np.abs(zj - zc) <= DEPTH_TOL_REL * zc + DEPTH_TOL_ABS, zj, zc)
                X = _to_ref(backproject_at(u, v, zc, K), poses[j]).astype(np.float32)
                samples[i, j] = np.where(alive[..., None], X, samples[i, j - step])
    rel = np.linalg.norm(samples - x0[:, None], axis=-1).max(axis=1) / np.maximum(np.abs(x0[..., 2]), 1e-6)
    aux[:, 6] = np.minimum(rel * MOTION_SCALE, 10.0)
    return GeometryInputs(aux=aux, x0=x0, samples=samples, has_depth=depth is not None)
