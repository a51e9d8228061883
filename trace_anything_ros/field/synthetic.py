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

"""Synthetic trajectory fields with known motion: rigid plates in front of a background plane.

A scene is a background plane plus rigid planar bodies (rectangles, disks). A body moves with constant
acceleration and constant angular velocity about its centre; an articulated *child* body additionally rotates
about a pivot attached to its parent (a two-link object). The camera may move too (the field stays in frame 0's
camera: static points have constant positions whatever the camera does).

For each frame i every pixel is ray-cast at stamp s_i, its 3D point is moved along the true motion of what it
hit, sampled over the window, and least-squares fitted with the project's cubic basis
(:func:`trace_anything_ros.field.fit.fit_control_points`). Noise, NaN regions and zero-confidence regions can be
injected. :class:`SyntheticTruth` gives the true instance labels per frame and the true position of any pixel
at any stamp (also in the future, for forecast tests).

Everything is vectorised over pixels; a 64 x 64, 6-frame field builds in a few milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import List, Optional, Sequence

import numpy as np

from .camera import default_intrinsics
from .fit import fit_control_points
from .rigid import so3_exp
from .types import TrajectoryField


@dataclass
class Body:
    """A rigid planar body (fronto-parallel at s = 0). Positions in metres, frame 0's camera, s in seconds
    after the window's first stamp."""

    center: Sequence[float]
    half_size: Sequence[float] = (0.2, 0.2)  # rect half extents (x, y); disk: radius = half_size[0]
    shape: str = "rect"
    velocity: Sequence[float] = (0.0, 0.0, 0.0)
    acceleration: Sequence[float] = (0.0, 0.0, 0.0)
    angular_velocity: Sequence[float] = (0.0, 0.0, 0.0)  # about the centre (free body) or the pivot (child)
    parent: Optional[int] = None  # index of the parent body (articulated child)
    pivot: Optional[Sequence[float]] = None  # joint position at s = 0 (child only)
    instance: Optional[int] = None  # ground-truth instance id (defaults: own index + 1; children: parent's)

    def is_moving(self) -> bool:
        return bool(np.any(self.velocity) or np.any(self.acceleration) or np.any(self.angular_velocity))


class Scene:
    def __init__(self, bodies: List[Body], background_z: float = 3.0, background_tilt: float = 0.1):
        self.bodies = bodies
        self.background_z = background_z
        self.background_tilt = background_tilt
        for k, b in enumerate(bodies):
            if b.parent is not None and (b.parent >= k or b.pivot is None):
                raise ValueError("a child body needs an earlier parent and a pivot")
        self.instances = np.array([self._instance(k) for k in range(len(bodies))], dtype=np.int32)

    def _instance(self, k):
        b = self.bodies[k]
        if b.instance is not None:
            return b.instance
        return self._instance(b.parent) if b.parent is not None else k + 1

    def moving(self, k) -> bool:
        b = self.bodies[k]
        return b.is_moving() or (b.parent is not None and self.moving(b.parent))

    def pose(self, k: int, s):
        """``(R [S,3,3], t [S,3])`` mapping body k's points at s = 0 to stamps ``s [S]`` (world frame)."""
        b = self.bodies[k]
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        c0 = np.asarray(b.center, dtype=np.float64)
        Rl = so3_exp(np.asarray(b.angular_velocity, dtype=np.float64)[None] * s[:, None])
        if b.parent is None:
            c = c0 + np.outer(s, b.velocity) + 0.5 * np.outer(s * s, b.acceleration)
            return Rl, c - Rl @ c0
        q = np.asarray(b.pivot, dtype=np.float64)
        Rp, tp = self.pose(b.parent, s)
        # X(s) = P(s) (q + Rl (X0 - q))
        R = Rp @ Rl
        t = np.einsum("sij,sj->si", Rp, q - Rl @ q) + tp
        return R, t

    def cast(self, K, s: float, cam_R=None, cam_t=None, H: int = 64, W: int = 64):
        """Ray-cast at stamp s: ``(points [H,W,3] world, body index [H,W] (-1 = background))``."""
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        d = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
        o = np.zeros(3) if cam_t is None else np.asarray(cam_t, dtype=np.float64)
        if cam_R is not None:
            d = d @ np.asarray(cam_R).T
        n_bg = np.array([0.0, self.background_tilt, 1.0])
        lam_bg = (n_bg @ np.array([0, 0, self.background_z]) - n_bg @ o) / (d @ n_bg)
        best = lam_bg.copy()
        idx = np.full((H, W), -1, dtype=np.int32)
        for k, b in enumerate(self.bodies):  # loop over bodies (a handful), vectorised over pixels
            R, t = self.pose(k, s)
            R, t = R[0], t[0]
            c0 = np.asarray(b.center, dtype=np.float64)
            n = R[:, 2]
            p = R @ c0 + t
            den = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                lam = (n @ (p - o)) / den
            X = o + lam[..., None] * d
            local = (X - t) @ R - c0  # R^T (X - t) - c0, in the body's s=0 frame
            if b.shape == "disk":
                inside = np.hypot(local[..., 0], local[..., 1]) <= b.half_size[0]
            else:
                inside = (np.abs(local[..., 0]) <= b.half_size[0]) & (np.abs(local[..., 1]) <= b.half_size[1])
            hit = inside & np.isfinite(lam) & (lam > 0) & (lam < best - 1e-9)
            best = np.where(hit, lam, best)
            idx = np.where(hit, k, idx)
        return o + best[..., None] * d, idx

    def move_points(self, X, body_idx, s_from: float, s_to) -> np.ndarray:
        """Points ``X [..., 3]`` seen at ``s_from`` on bodies ``body_idx`` moved to stamps ``s_to [S]``:
        ``[S, ..., 3]`` (background, -1, stays put)."""
        s_to = np.atleast_1d(np.asarray(s_to, dtype=np.float64))
        out = np.broadcast_to(X, (s_to.size,) + X.shape).copy()
        for k in range(len(self.bodies)):
            sel = body_idx == k
            if not np.any(sel) or not self.moving(k):
                continue
            R0, t0 = self.pose(k, [s_from])
            X0 = (X[sel] - t0[0]) @ R0[0]  # R0^T (X - t0): back to s = 0
            R, t = self.pose(k, s_to)
            out[:, sel] = np.einsum("sij,mj->smi", R, X0) + t[:, None, :]
        return out


@dataclass
class SyntheticTruth:
    scene: Scene
    K: np.ndarray
    stamps: np.ndarray  # [N] absolute seconds
    points: np.ndarray  # [N, H, W, 3] frame i's pixel points at its own stamp
    body: np.ndarray  # [N, H, W] body index (-1 background)
    labels: np.ndarray  # [N, H, W] ground-truth instance id of moving instances (0 = static)
    valid: np.ndarray  # [N, H, W] pixels that were not made NaN / zero-confidence
    extras: dict = dc_field(default_factory=dict)

    @property
    def num_moving_instances(self) -> int:
        ids = np.unique(self.labels[-1])
        return int(np.sum(ids > 0))

    def moving_mask(self, frame: int = -1) -> np.ndarray:
        return self.labels[frame] > 0

    def positions_at(self, frame: int, stamps) -> np.ndarray:
        """True positions ``[S, H, W, 3]`` of frame ``frame``'s pixels at absolute ``stamps``."""
        frame = frame % len(self.stamps)
        s0 = self.stamps[0]
        return self.scene.move_points(self.points[frame], self.body[frame], self.stamps[frame] - s0,
                                      np.asarray(stamps, dtype=np.float64) - s0)


def make_field(scene: Scene, num_frames: int = 6, H: int = 64, W: int = 64, num_ctrl: int = 10,
               duration: float = 1.0, start: float = 100.0, stamp_jitter: float = 0.0, noise: float = 0.0,
               noise_abs: float = 0.0, camera_velocity=(0.0, 0.0, 0.0), nan_box=None, zero_conf_box=None,
               frame_times=None, conf_value: float = 5.0, samples_per_segment: int = 6, seed: int = 0,
               K=None):
    """Build ``(TrajectoryField, SyntheticTruth)``.

    noise: std of per-control-point Gaussian noise relative to depth (0.005 = 5 mm at 1 m); noise_abs: absolute
    std. stamp_jitter: relative jitter of the frame spacing (irregular stamps). nan_box / zero_conf_box:
    ``(row0, row1, col0, col1)`` pixel boxes made NaN / zero-confidence (with garbage positions) in every frame.
    frame_times: predicted times to store (default: stamp-normalised). The camera translates with
    ``camera_velocity`` (m/s), which changes what each frame sees but not the field's static points.
    """
    rng = np.random.default_rng(seed)
    K = default_intrinsics(H, W) if K is None else np.asarray(K, dtype=np.float64)
    gaps = np.ones(max(num_frames - 1, 0))
    if stamp_jitter > 0 and num_frames > 1:
        gaps = gaps * (1.0 + stamp_jitter * rng.uniform(-1, 1, size=gaps.shape))
    rel = np.concatenate([[0.0], np.cumsum(gaps)])
    rel = rel / rel[-1] * duration if num_frames > 1 else rel
    stamps = start + rel
    u = rel / duration if num_frames > 1 else np.zeros(1)
    S = (num_ctrl - 1) // 3
    t_dense = np.linspace(0.0, 1.0, samples_per_segment * S + 1)
    s_dense = t_dense * duration
    pts = np.zeros((num_frames, H, W, 3))
    body = np.zeros((num_frames, H, W), dtype=np.int32)
    ctrl = np.zeros((num_frames, num_ctrl, H, W, 3), dtype=np.float64)
    for i in range(num_frames):  # loop over frames, vectorised over pixels
        cam_t = np.asarray(camera_velocity, dtype=np.float64) * rel[i]
        X, b = scene.cast(K, rel[i], cam_t=cam_t, H=H, W=W)
        pts[i], body[i] = X, b
        traj = scene.move_points(X, b, rel[i], s_dense)  # [S, H, W, 3]
        ctrl[i] = fit_control_points(t_dense, traj, num_ctrl, t_axis=0)
    z = np.abs(ctrl[..., 2:3])
    if noise > 0 or noise_abs > 0:
        ctrl = ctrl + rng.normal(size=ctrl.shape) * (noise * z + noise_abs)
    conf = np.full((num_frames, num_ctrl, H, W), conf_value, dtype=np.float64)
    valid = np.ones((num_frames, H, W), dtype=bool)
    if nan_box is not None:
        r0, r1, c0, c1 = nan_box
        ctrl[:, :, r0:r1, c0:c1] = np.nan
        valid[:, r0:r1, c0:c1] = False
    if zero_conf_box is not None:
        r0, r1, c0, c1 = zero_conf_box
        conf[:, :, r0:r1, c0:c1] = 0.0
        region = ctrl[:, :, r0:r1, c0:c1]
        ctrl[:, :, r0:r1, c0:c1] = region + rng.normal(scale=1.0, size=region.shape)  # garbage where unconfident
        valid[:, r0:r1, c0:c1] = False
    moving_inst = np.array([scene.instances[k] if scene.moving(k) else 0 for k in range(len(scene.bodies))] + [0],
                           dtype=np.int32)
    labels = moving_inst[body]  # body -1 -> last entry (0)
    labels = np.where(valid, labels, 0)
    ft = u if frame_times is None else np.asarray(frame_times, dtype=np.float64)
    fld = TrajectoryField(ctrl.astype(np.float32), conf.astype(np.float32), ft, stamps, intrinsics=K,
                          metric=True, frame_id="synthetic_optical", extras={"synthetic": True})
    truth = SyntheticTruth(scene, K, stamps, pts, body, labels, valid)
    return fld, truth


# ------------------------------------------------------------------------------------------- random scenes
KINDS = ("static", "one", "two_touching", "two_apart", "rotating", "articulated")


def random_scene(rng: np.random.Generator, kind: str, duration: float = 1.0) -> Scene:
    """A random scene of one of ``KINDS`` with clearly visible motion over a 1 s window (64 x 64 view)."""
    def v(scale):
        d = rng.normal(size=3) * np.array([1.0, 1.0, 0.3])
        return d / np.linalg.norm(d) * scale

    z = rng.uniform(1.3, 2.0)
    cx, cy = rng.uniform(-0.15, 0.15, size=2) * z
    hs = rng.uniform(0.12, 0.2, size=2) * z
    bodies: List[Body] = []
    # positions are chosen for the END of the window (the analysed, newest frame): objects are in view and
    # "touching" objects touch there; start positions follow from the motion (s = 0 is `duration` earlier).

    def back(c, vel):
        return tuple(np.asarray(c, dtype=np.float64) - np.asarray(vel) * duration)

    if kind == "static":
        bodies.append(Body(center=(cx, cy, z), half_size=tuple(hs)))  # a static object in front of the wall
    elif kind == "one":
        vel = v(rng.uniform(0.2, 0.4) * z)
        bodies.append(Body(center=back((cx, cy, z), vel), half_size=tuple(hs), velocity=tuple(vel),
                           shape=str(rng.choice(["rect", "disk"]))))
    elif kind == "rotating":
        w = np.array([0.0, 0.0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.4)])
        w[:2] = rng.normal(size=2) * 0.2
        bodies.append(Body(center=(cx, cy, z), half_size=(hs[0] * 1.3, hs[1] * 0.6), angular_velocity=tuple(w)))
    elif kind in ("two_touching", "two_apart"):
        gap = 0.0 if kind == "two_touching" else 0.12 * z
        a = hs * np.array([0.8, 1.0])
        va = v(rng.uniform(0.2, 0.35) * z)
        vb = -va + v(0.1 * z)  # B's velocity differs clearly from A's (relative speed >= 0.2 z per second)
        bodies.append(Body(center=back((cx - a[0] - gap / 2, cy, z), va), half_size=tuple(a), velocity=tuple(va)))
        bodies.append(Body(center=back((cx + a[0] + gap / 2, cy, z + 0.01), vb), half_size=tuple(a),
                           velocity=tuple(vb)))
    elif kind == "articulated":
        a = (hs[0] * 0.9, hs[1] * 0.45)
        vel = v(rng.uniform(0.15, 0.3) * z)
        wz = rng.choice([-1, 1]) * rng.uniform(0.6, 1.0)
        # link 2 hangs on a pin at link 1's right end, straight at s = 0 and rotated by wz * duration at the end
        c1 = back((cx - a[0], cy, z), vel)
        bodies.append(Body(center=c1, half_size=a, velocity=tuple(vel)))
        pivot = (c1[0] + a[0], c1[1], z - 0.005)
        bodies.append(Body(center=(c1[0] + a[0] * 1.95, c1[1], z - 0.005), half_size=(a[0], a[1] * 0.8), parent=0,
                           pivot=pivot, angular_velocity=(0.0, 0.0, wz)))
    else:
        raise ValueError(f"unknown scene kind {kind!r}")
    return Scene(bodies, background_z=rng.uniform(2.8, 3.5), background_tilt=rng.uniform(-0.1, 0.1))


def random_case(seed: int, kind: Optional[str] = None, noise: float = 0.003, H: int = 64, W: int = 64,
                num_frames: int = 6, num_ctrl: int = 10, **kw):
    """``(field, truth, kind)`` for a seeded random scene (kind drawn from ``KINDS`` when not given)."""
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(KINDS))
    duration = kw.pop("duration", 1.0)
    scene = random_scene(rng, kind, duration)
    fld, truth = make_field(scene, num_frames=num_frames, H=H, W=W, num_ctrl=num_ctrl, noise=noise,
                            stamp_jitter=0.2, seed=seed, duration=duration, **kw)
    return fld, truth, kind
