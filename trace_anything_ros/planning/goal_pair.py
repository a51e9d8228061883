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

"""Goal-pair estimator: current RGB-D frame + intrinsics + goal image -> the object's SE(3) motion -> a 2-frame field.

The "current/goal image pair" input regime of the goal-image planner (issue 13). The learned compact network was
trained on video windows and sees no motion between a current frame and a goal image; the motion a goal image
asks for is instead recovered here by geometry on the pair, and returned as a Trace Anything field so that the
planner downstream (``planning.object_motion.motion_from_goal_field``) is unchanged.

Steps (``estimate_goal_motion``), all in the current camera's optical frame:

1. **Change**: pixels whose colour differs between the current frame and the goal image (blurred, thresholded,
   small specks removed). Nothing changed: the scene is at its goal (identity motion, full confidence).
2. **Support plane**: RANSAC plane fit of the current depth around the changed region (the table the object rests
   on); "up" is the side facing the camera. Heights above it are computed for every pixel.
3. **Object** (current frame): changed pixels standing above the plane, grown over the above-plane pixels connected
   to them (cut at depth steps: an object in front of another), plus the bottom strip of its sides (pixels lower
   than ``min_height`` whose points lie inside the object's footprint on the plane). Its depth points, colours and
   surface normals are the object model; its volume, as one view shows it, is those points extruded down to the
   plane (so that faces hidden now and turned towards the camera by the motion still have a silhouette).
4. **Goal evidence**: where the goal image differs from the current frame, plus the current object's own pixels
   (there the goal shows either the object again or the table it revealed: colour decides). With goal depth: the
   changed pixels standing above the plane in the goal depth. The new place (changed, not the current object) is
   also a coverage target.
5. **Alignment**: motions restricted to the plane (translation along it, yaw about its normal through the object
   centre) move the object, which is projected into the goal image and scored: photometric error of its colours
   (robust; surfaces facing up weigh more, their shading does not change when the object turns), the evidence
   under its volume, the share of the new place it leaves uncovered, (with goal depth) the depth error, and a small
   preference for the smaller turn (symmetric shapes). Points behind the static scene (the current depth without
   the object) are occluded: they carry no evidence, with a small penalty so hiding is not free. Coarse-to-fine
   search: translations from the lifted evidence (1 cm grid) x yaw every 6 deg within +-``yaw_range_deg``, two
   finer local grids around the best distinct starts, then bilinear local refinement (Nelder-Mead).
6. **Confidence**: the share of the object's visible points that, moved, land on goal evidence with a consistent
   colour (and depth), scaled down when less than ``min_visible`` of them are visible in the goal image. Below
   ``min_confidence`` the estimate is rejected: the returned field marks the object's curves unusable (NaN,
   confidence 0) so the planner refuses instead of moving wrongly; the reason is in ``GoalPairEstimator.last``.

Tuned on episodes 100..179 of ``sim.closed_loop`` (goal RGB: 77 of 80 within 1 cm / 4 deg; every such estimate had a
confidence >= 0.81, one wrong by 30 deg had 0.67: hence ``min_confidence`` 0.75; goal RGB-D: right ones down to 0.67,
``min_confidence_depth`` 0.5); ``bench closed_loop`` runs seeds 0..19 (see the README for the figures and the
held-out set).

Limits (measured in ``bench closed_loop``; see the README): rigid objects resting on a plane, moved on it (x, y,
yaw; no tilting, no stacking); one object moved; a static camera between the two images; objects with a square
footprint are ambiguous by 90 deg in yaw (the search covers +-``yaw_range_deg``; a best turn at the edge of that
range is refused as ambiguous rather than executed).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field, fields
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..field.basis import basis_matrix
from ..field.camera import backproject
from ..field.rigid import fit_plane
from ..model.api import FieldPrediction
from ..paramspec import from_dict


@dataclass
class GoalPairParams:
    """Parameters of the goal-pair estimator (SI units)."""

    diff_threshold: float = 20.0        # colour change (max over channels, 0..255, 3x3 blurred) marking change
    min_change_pixels: int = 12         # fewer changed pixels: the scene is at its goal
    min_height: float = 0.008           # m above the support plane: object, not table
    depth_jump: float = 0.015           # m, depth step between neighbouring pixels that separates objects
    plane_threshold: float = 0.004      # m, RANSAC inlier distance of the support plane
    plane_margin_px: int = 40           # plane fitted within the changed region's box grown by this
    max_points: int = 600               # object points used in the alignment (subsampled)
    yaw_range_deg: float = 45.0         # yaw searched: +- this (a square footprint repeats every 90 deg)
    yaw_prior: float = 0.03             # cost added per 90 deg of yaw: among equally good fits, the smaller turn
    occlusion_margin: float = 0.01      # m: a moved point this far behind the static scene's depth is occluded
    occluded_cost: float = 0.5          # cost of hiding the whole object behind the static scene
    min_visible: float = 0.5            # fraction of the object's points that must be visible in the goal image
    side_weight: float = 0.3            # photometric weight of surfaces perpendicular to the plane (top: 1)
    coverage_weight: float = 1.0        # weight of the goal evidence left uncovered by the moved object
    photo_sigma: float = 24.0           # colour error scale (0..255 units)
    evidence_weight: float = 1.0        # weight of the goal-evidence term
    depth_sigma: float = 0.01           # m, goal depth error scale (goal RGB-D only)
    min_confidence: float = 0.75        # goal RGB: estimates below this are rejected
    min_confidence_depth: float = 0.5   # goal RGB-D (the depth term makes inliers stricter): the same
    min_object_pixels: int = 20         # fewer object pixels: rejected
    num_ctrl: int = 10                  # control points per curve of the returned field
    reuse_tolerance: float = 0.5        # mean colour change (0..255) below which a pair is the previous one (0: off)
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "GoalPairParams":
        return from_dict(cls, d, "goal-pair")


@dataclass
class GoalMotion:
    """The object's motion current -> goal in the current camera frame."""

    ok: bool
    reason: str
    motion: np.ndarray = dc_field(default_factory=lambda: np.eye(4))   # cam_T: p_goal = motion @ p_current
    center: np.ndarray = dc_field(default_factory=lambda: np.zeros(3))  # rotation centre (object centroid)
    axis: np.ndarray = dc_field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))  # plane normal ("up")
    translation: np.ndarray = dc_field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0                    # rad about ``axis``
    confidence: float = 0.0
    mask: Optional[np.ndarray] = dc_field(default=None, repr=False)   # object pixels of the current frame
    changed: bool = True                # False: the images show no change (at the goal)
    diagnostics: dict = dc_field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ helpers
def _blur3(img: np.ndarray) -> np.ndarray:
    return ndimage.uniform_filter(img.astype(np.float32), size=(3, 3) + (1,) * (img.ndim - 2), mode="nearest")


def change_mask(rgb0: np.ndarray, rgb1: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose (3x3 blurred) colour differs by more than ``threshold`` in some channel; specks removed."""
    d = np.abs(_blur3(rgb0) - _blur3(rgb1)).max(-1)
    m = d > threshold
    m = ndimage.binary_opening(m, np.ones((2, 2), bool))
    lab, n = ndimage.label(m, np.ones((3, 3), bool))
    if n == 0:
        return m
    sizes = ndimage.sum(m, lab, np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= 6
    return keep[lab]


def _rot_about(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices [B, 3, 3] about unit ``axis`` by ``angles`` [B]."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray, bilinear: bool):
    """img [H, W, C] at float pixel coordinates -> (values [..., C], inside [...])."""
    H, W = img.shape[:2]
    inside = (u >= 0) & (v >= 0) & (u <= W - 1) & (v <= H - 1)
    uc, vc = np.clip(u, 0, W - 1), np.clip(v, 0, H - 1)
    if not bilinear:
        return img[np.rint(vc).astype(np.int64), np.rint(uc).astype(np.int64)], inside
    u0, v0 = np.minimum(np.floor(uc).astype(np.int64), W - 2), np.minimum(np.floor(vc).astype(np.int64), H - 2)
    fu, fv = (uc - u0)[..., None], (vc - v0)[..., None]
    a, b = img[v0, u0], img[v0, u0 + 1]
    c, d = img[v0 + 1, u0], img[v0 + 1, u0 + 1]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv, inside


# ------------------------------------------------------------------------------------------------ estimate
class _Scorer:
    """Cost of planar motions (a, b, yaw) of the object against the goal image.

    Two point sets move together: ``X`` (the object's visible depth points, with colours ``C``: photometric term)
    and ``S`` (``X`` plus ``X`` extruded down to the support plane: the object's volume as far as one view shows
    it, so that faces hidden in the current frame and turned towards the camera by the motion still have a
    silhouette: goal-evidence and coverage terms)."""

    def __init__(self, X, C, S, center, n, e1, e2, K, goal_rgb, evidence, goal_depth, p: GoalPairParams,
                 static_depth=None, photo_weight=None):
        self.X, self.C, self.c, self.n, self.e1, self.e2, self.K = X, C, center, n, e1, e2, K
        self.wp = np.ones(len(X), np.float32) if photo_weight is None else np.asarray(photo_weight, np.float32)
        self.P = np.concatenate([X, S])
        self.M = len(X)
        self.p = p
        self.cov = None
        # one image holding colour (3), evidence (1), the static scene's depth (1: the current depth without the
        # object, for occlusion by things in front) and goal depth (1, NaN -> large)
        if static_depth is None:
            static_depth = np.full(goal_rgb.shape[:2], 1e3)
        chans = [goal_rgb.astype(np.float32), evidence[..., None].astype(np.float32),
                 np.nan_to_num(static_depth, nan=1e3).astype(np.float32)[..., None]]
        self.has_depth = goal_depth is not None
        if self.has_depth:
            chans.append(np.nan_to_num(goal_depth, nan=1e3).astype(np.float32)[..., None])
        self.img = np.concatenate(chans, -1)

    def moved(self, hyp: np.ndarray) -> np.ndarray:
        hyp = np.atleast_2d(hyp)
        R = _rot_about(self.n, hyp[:, 2])                                    # [B, 3, 3]
        t = hyp[:, :1] * self.e1 + hyp[:, 1:2] * self.e2                     # [B, 3]
        return np.matmul(self.P - self.c, R.transpose(0, 2, 1)) + (self.c + t)[:, None]

    def per_point(self, hyp: np.ndarray, bilinear: bool):
        Y = self.moved(hyp)                                                  # [B, M + MS, 3]
        z = Y[..., 2]
        u = self.K[0, 0] * Y[..., 0] / z + self.K[0, 2]
        v = self.K[1, 1] * Y[..., 1] / z + self.K[1, 2]
        self._u, self._v = u, v
        val, inside = _sample(self.img, u, v, bilinear)
        photo = np.abs(val[:, :self.M, :3] - self.C).mean(-1) / self.p.photo_sigma
        ev = val[..., 3]
        occluded = val[..., 4] < z - self.p.occlusion_margin   # behind a static surface of the scene
        dep = np.abs(val[:, :self.M, 5] - z[:, :self.M]) / self.p.depth_sigma if self.has_depth else None
        return photo, ev, dep, inside, occluded

    def set_coverage(self, target: np.ndarray):
        """Goal-evidence pixels (bool [H, W]: where the goal shows something new) that the moved object should
        cover; the cost adds the fraction it leaves uncovered (computed on the target's box, grown)."""
        rr, cc = np.nonzero(target)
        if len(rr) == 0:
            self.cov = None
            return
        H, W = target.shape
        g = 12
        self.box = (max(rr.min() - g, 0), min(rr.max() + g + 1, H), max(cc.min() - g, 0), min(cc.max() + g + 1, W))
        r0, r1, c0, c1 = self.box
        self.cov = target[r0:r1, c0:c1].copy()
        self.cov_n = float(self.cov.sum())

    def missed(self, u: np.ndarray, v: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Fraction [B] of the coverage target not within one pixel of a (visible) projected point."""
        r0, r1, c0, c1 = self.box
        h, w = r1 - r0, c1 - c0
        B = u.shape[0]
        ui, vi = np.rint(u).astype(np.int64) - c0, np.rint(v).astype(np.int64) - r0
        ok = visible & (ui >= 0) & (vi >= 0) & (ui < w) & (vi < h)
        wp = w + 2
        hit = np.zeros((B, (h + 2) * wp), bool)
        b = np.broadcast_to(np.arange(B)[:, None], ui.shape)[ok]
        hit[b, (vi[ok] + 1) * wp + ui[ok] + 1] = True
        if not hasattr(self, "_cov_idx") or self._cov_wp != wp:
            rr, cc = np.nonzero(self.cov)
            self._cov_idx, self._cov_wp = (rr + 1) * wp + cc + 1, wp
        covered = np.zeros((B, len(self._cov_idx)), bool)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                covered |= hit[:, self._cov_idx + dr * wp + dc]
        return (~covered).sum(1) / max(self.cov_n, 1.0)

    def cost(self, hyp: np.ndarray, bilinear: bool = False) -> np.ndarray:
        hyp = np.atleast_2d(hyp)
        photo, ev, dep, inside, occluded = self.per_point(hyp, bilinear)
        M, p = self.M, self.p
        vis = inside & ~occluded
        c_ph = np.minimum(photo, 2.0)
        if dep is not None:
            c_ph = c_ph + np.minimum(dep, 2.0)
        # occluded points (behind the static scene) carry no evidence: averages over the others, and a small
        # penalty per occluded point so that hiding the object is not free
        seen = ~occluded | ~inside
        c_ph = np.where(inside[:, :M], c_ph, 4.0)
        w = seen[:, :M] * self.wp
        c_ph = (c_ph * w).sum(-1) / np.maximum(w.sum(-1), 1e-6) + 4.0 * (seen[:, :M].sum(-1) == 0)
        c_ev = np.where(inside, 1.0 - ev, 2.0)
        c_ev = (c_ev * seen).sum(-1) / np.maximum(seen.sum(-1), 1) + 2.0 * (seen.sum(-1) == 0)
        c = c_ph + p.evidence_weight * 2.0 * c_ev + p.occluded_cost * (1.0 - seen.mean(-1))
        if self.cov is not None and p.coverage_weight > 0:
            c = c + p.coverage_weight * 2.0 * self.missed(self._u, self._v, vis)
        # among equally good alignments (symmetric shapes), the smaller rotation
        return c + p.yaw_prior * np.abs(hyp[:, 2]) / (np.pi / 2)

    def inliers(self, hyp: np.ndarray):
        """(inlier [M], visible [M]) of the coloured points at one hypothesis."""
        photo, ev, dep, inside, occluded = self.per_point(np.atleast_2d(hyp), True)
        M = self.M
        vis = (inside & ~occluded)[:, :M]
        ok = vis & (photo < 1.0) & (ev[:, :M] >= 0.5)
        if dep is not None:
            ok &= dep < 1.5
        return ok[0], vis[0]


def _bottom_strip(obj, P0, valid, height, n, p: GoalPairParams) -> np.ndarray:
    """Pixels next to the object lower than ``min_height`` (the bottom of its sides) whose points lie inside the
    object's footprint on the plane (table pixels beside it lie outside)."""
    from scipy.spatial import Delaunay

    e1 = np.cross(n, [0.0, 0.0, 1.0])
    e1 /= max(np.linalg.norm(e1), 1e-12)
    e2 = np.cross(n, e1)
    ring = ndimage.binary_dilation(obj, np.ones((3, 3), bool), iterations=3) & ~obj & valid
    ring &= np.nan_to_num(height, nan=-1.0) > -p.plane_threshold
    ring &= np.nan_to_num(height, nan=1.0) <= p.min_height
    if not ring.any():
        return ring
    Xo = P0[obj]
    fo = np.stack([Xo @ e1, Xo @ e2], -1)
    try:
        tri = Delaunay(fo)
    except Exception:  # noqa: BLE001 - degenerate footprint: nothing added
        return np.zeros_like(ring)
    Xr = P0[ring]
    fr = np.stack([Xr @ e1, Xr @ e2], -1)
    ctr = fo.mean(0)
    fr_in = ctr + (fr - ctr) * 0.97    # a little slack inwards for points on the hull's edge
    inside = tri.find_simplex(fr_in) >= 0
    out = np.zeros_like(ring)
    out[ring] = inside
    return out


@dataclass
class ObjectModel:
    """The moved object as the current frame shows it (step 3 of the module doc): what the alignment moves."""

    mask: np.ndarray                    # bool [H, W] object pixels of the current frame
    X: np.ndarray                       # [M, 3] visible depth points (subsampled), camera frame
    C: np.ndarray                       # [M, 3] their colours
    Wp: np.ndarray                      # [M] photometric weights (surfaces facing up weigh more)
    S: np.ndarray                       # [MS, 3] X extruded down to the plane (silhouette points)
    center: np.ndarray                  # rotation centre (mean of X)
    n: np.ndarray                       # support plane normal ("up", facing the camera)
    dpl: float                          # plane offset: n . p + dpl = 0
    e1: np.ndarray                      # in-plane axes
    e2: np.ndarray
    static_depth: np.ndarray            # the current depth without the object (occlusion by the static scene)
    rgb: np.ndarray                     # the current frame the model was cut from
    K: np.ndarray


def _plane_and_object(rgb0, d0, K, changed, p: GoalPairParams, diag: dict):
    """Support plane + the object's pixels (steps 2-3) -> ObjectModel, or a failed GoalMotion."""
    H, W = d0.shape
    P0 = backproject(np.nan_to_num(d0, nan=0.0), K)
    valid0 = np.isfinite(d0)
    # support plane around the change
    rr, cc = np.nonzero(changed)
    m = p.plane_margin_px
    box = np.zeros((H, W), bool)
    box[max(rr.min() - m, 0):rr.max() + m + 1, max(cc.min() - m, 0):cc.max() + m + 1] = True
    cand = box & valid0
    pts = P0[cand]
    if len(pts) > 4000:
        pts = pts[np.random.default_rng(p.seed).choice(len(pts), 4000, replace=False)]
    try:
        n, dpl, ratio = fit_plane(pts, p.plane_threshold, seed=p.seed)
    except ValueError as e:
        return GoalMotion(False, f"support plane: {e}", mask=np.zeros((H, W), bool), diagnostics=diag)
    diag["plane_inlier_ratio"] = float(ratio)
    height = np.where(valid0, P0 @ n + dpl, np.nan)
    above = np.nan_to_num(height, nan=0.0) > p.min_height
    seeds = changed & above
    if seeds.sum() < p.min_object_pixels:
        return GoalMotion(False, f"no object above the support plane in the changed region ({int(seeds.sum())} "
                          f"pixels < {p.min_object_pixels}): the current frame does not show the object the goal "
                          "image moves", mask=seeds, diagnostics=diag)
    obj = _object_region(d0, seeds, above, P0, p)
    if obj is None:
        return GoalMotion(False, "no object region above the support plane in the changed region",
                          mask=seeds, diagnostics=diag)
    if obj.sum() < p.min_object_pixels:
        return GoalMotion(False, f"object has {int(obj.sum())} pixels < {p.min_object_pixels}", mask=obj,
                          diagnostics=diag)
    obj |= _bottom_strip(obj, P0, valid0, height, n, p)
    X = P0[obj]
    C = rgb0[obj].astype(np.float32)
    # photometric weight: surfaces facing up keep their shading when the object turns about the plane normal,
    # side faces do not (the light falls on them at another angle)
    gu = np.gradient(P0, axis=1)
    gv = np.gradient(P0, axis=0)
    nrm = np.cross(gu, gv)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    Wp = (p.side_weight + (1.0 - p.side_weight) * np.abs(nrm[obj] @ n) ** 2).astype(np.float32)
    if len(X) > p.max_points:
        idx = np.random.default_rng(p.seed).choice(len(X), p.max_points, replace=False)
        X, C, Wp = X[idx], C[idx], Wp[idx]
    center = X.mean(0)
    e1 = np.cross(n, [0.0, 0.0, 1.0])
    if np.linalg.norm(e1) < 1e-6:
        e1 = np.cross(n, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    # the object's volume below its visible surface (extruded to the plane): silhouette points
    hX = np.maximum(X @ n + dpl, 0.0)
    S = np.concatenate([X - n * (hX * f)[:, None] for f in (0.3, 0.6, 0.95)])
    if len(S) > 2 * p.max_points:
        S = S[np.random.default_rng(p.seed + 1).choice(len(S), 2 * p.max_points, replace=False)]
    return ObjectModel(obj, X, C, Wp, S, center, n, float(dpl), e1, e2, np.where(obj, np.nan, d0),
                       np.asarray(rgb0), np.asarray(K, np.float64))


def _object_region(d0, seeds, above, P0, p: GoalPairParams) -> Optional[np.ndarray]:
    """The above-plane component holding most of the changed pixels, cut at depth discontinuities (an object
    standing in front of another one), with its silhouette's edge pixels; None when there is none."""
    H, W = d0.shape
    z = np.nan_to_num(d0, nan=np.inf)
    jump = np.zeros((H, W), bool)
    dz_v = np.abs(np.diff(z, axis=0)) > p.depth_jump
    dz_h = np.abs(np.diff(z, axis=1)) > p.depth_jump
    jump[:-1] |= dz_v
    jump[1:] |= dz_v
    jump[:, :-1] |= dz_h
    jump[:, 1:] |= dz_h
    lab, _ = ndimage.label(above & ~jump)
    ids, cnt = np.unique(lab[seeds & ~jump], return_counts=True)
    cnt, ids = cnt[ids > 0], ids[ids > 0]
    if len(ids) == 0:
        return None
    obj = lab == ids[np.argmax(cnt)]
    # the silhouette's own edge pixels back (within the object's depth range)
    zr = d0[obj]
    ring = ndimage.binary_dilation(obj, np.ones((3, 3), bool)) & above & ~obj
    obj |= ring & (d0 >= zr.min() - p.depth_jump) & (d0 <= zr.max() + p.depth_jump)
    S = seeds & obj
    sc = P0[S].mean(0)
    ext = np.linalg.norm(P0[S] - sc, axis=-1).max()
    obj &= np.linalg.norm(P0 - sc, axis=-1) <= ext + 0.02
    return obj


def _valid_depth(d: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if d is None:
        return None
    d = np.asarray(d, np.float64)
    d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    return d if np.isfinite(d).any() else None


def estimate_goal_motion(rgb0: np.ndarray, depth0: np.ndarray, K: np.ndarray, rgb1: np.ndarray,
                         depth1: Optional[np.ndarray] = None, params: GoalPairParams = GoalPairParams(),
                         model_out: Optional[list] = None) -> GoalMotion:
    """The moved object's motion current -> goal (see the module docstring). Images at one size, depth in metres
    (NaN / <= 0 invalid), ``K`` 3x3 for that size. ``model_out``: a list the ``ObjectModel`` is appended to (to
    track the object afterwards, ``track_object``)."""
    p = params
    rgb0, rgb1 = np.asarray(rgb0), np.asarray(rgb1)
    H, W = rgb0.shape[:2]
    if rgb1.shape[:2] != (H, W) or np.asarray(depth0).shape != (H, W):
        raise ValueError(f"current image {rgb0.shape[:2]}, goal image {rgb1.shape[:2]} and current depth "
                         f"{np.asarray(depth0).shape} must have one size")
    d0 = np.where(np.isfinite(np.asarray(depth0, np.float64)) & (np.asarray(depth0, np.float64) > 0),
                  np.asarray(depth0, np.float64), np.nan)
    d1 = _valid_depth(depth1)
    diag = {}
    changed = change_mask(rgb0, rgb1, p.diff_threshold)
    diag["changed_pixels"] = int(changed.sum())
    if changed.sum() < p.min_change_pixels:
        return GoalMotion(True, "no change between the current frame and the goal image", confidence=1.0,
                          mask=np.zeros((H, W), bool), changed=False, diagnostics=diag)
    model = _plane_and_object(rgb0, d0, np.asarray(K, np.float64), changed, p, diag)
    if isinstance(model, GoalMotion):
        return model
    if model_out is not None:
        model_out.append(model)
    return _align(model, rgb1, d1, changed, p, diag)


def _evidence(model: ObjectModel, rgb1, d1, changed, p: GoalPairParams):
    """Goal evidence (step 4) in [0, 1] per pixel and the coverage target."""
    obj = model.mask
    if d1 is not None:
        P1 = backproject(np.nan_to_num(d1, nan=0.0), model.K)
        h1 = np.where(np.isfinite(d1), P1 @ model.n + model.dpl, np.nan)
        ev = (changed & (np.nan_to_num(h1, nan=0.0) > p.min_height)).astype(np.float32)
        ev[~changed & obj] = 1.0          # unchanged object pixels: the object is there again
    else:
        # changed pixels, and the current object's own pixels (the goal shows there either the object again or
        # the table it revealed: the colour decides, not the evidence map)
        ev = (changed | ndimage.binary_dilation(obj, np.ones((3, 3), bool))).astype(np.float32)
    ev = ndimage.maximum_filter(ev, size=3) * 0.5 + ev * 0.5  # a little tolerance at the silhouette's edge
    target = ev >= 1.0 if d1 is not None else (changed & ~ndimage.binary_dilation(obj, np.ones((3, 3), bool)))
    return ev, target


def _align(model: ObjectModel, rgb1, d1, changed, p: GoalPairParams, diag: dict, static=None, coverage=True,
           near=None, cell: float = 0.01) -> GoalMotion:
    """Steps 5-6: the planar motion of ``model`` that best explains (rgb1, d1). ``static``: depth in front of
    which moved points are occluded (default: the model's static scene); ``near`` (centre, radius): translation
    candidates only within ``radius`` of ``centre`` (camera frame); ``cell``: their grid (m)."""
    X, C, S, Wp, center, n, dpl, e1, e2, K = (model.X, model.C, model.S, model.Wp, model.center, model.n,
                                              model.dpl, model.e1, model.e2, model.K)
    static = model.static_depth if static is None else static
    ev, target = _evidence(model, rgb1, d1, changed, p)
    scorer = _Scorer(X, C, S, center, n, e1, e2, K, rgb1, ev, d1, p, static, Wp)
    if coverage:
        scorer.set_coverage(target)

    # translation candidates: the goal-evidence pixels lifted to the plane at the object centre's height
    hc = float(center @ n + dpl)
    gr, gc = np.nonzero(ev >= 0.5)
    rays = np.stack([(gc - K[0, 2]) / K[0, 0], (gr - K[1, 2]) / K[1, 1], np.ones(len(gr))], -1)
    denom = rays @ n
    lam = (hc - dpl) / np.where(np.abs(denom) > 1e-9, denom, np.nan)
    Q = rays * lam[:, None]
    Q = Q[np.isfinite(Q).all(1) & (lam > 0)]
    if near is not None:
        Q = Q[np.linalg.norm(Q - np.asarray(near[0]), axis=-1) <= float(near[1])]
    if len(Q) == 0:
        return GoalMotion(False, "goal evidence does not reach the support plane", mask=model.mask, diagnostics=diag)
    ab = np.stack([(Q - center) @ e1, (Q - center) @ e2], -1)
    cells = np.unique(np.round(ab / cell).astype(np.int64), axis=0) * cell
    yaw_max = np.deg2rad(p.yaw_range_deg)
    yaws = np.arange(-yaw_max, yaw_max + 1e-9, np.deg2rad(6.0))
    hyps = np.concatenate([np.column_stack([cells, np.full(len(cells), y)]) for y in yaws])
    sub = np.random.default_rng(p.seed).choice(len(X), min(len(X), 120), replace=False)
    sub_s = np.random.default_rng(p.seed).choice(len(S), min(len(S), 180), replace=False)
    coarse = _Scorer(X[sub], C[sub], S[sub_s], center, n, e1, e2, K, rgb1, ev, d1, p, static, Wp[sub])
    if coverage:
        coarse.set_coverage(target)
    costs = np.concatenate([coarse.cost(hyps[i:i + 2000]) for i in range(0, len(hyps), 2000)])
    order = np.argsort(costs)
    diag["coarse_hypotheses"] = int(len(hyps))
    results = _refine_starts(scorer, hyps, order, yaw_max)
    best_cost, best = _polish(scorer, results[0][0], results[0][1], yaw_max)
    inl, vis = scorer.inliers(best)
    visible = float(vis.mean())
    # trusted: enough of the object visible in the goal image, and most of what is visible consistent
    conf = float(inl.sum() / max(vis.sum(), 1)) * float(np.clip(visible / p.min_visible, 0.0, 1.0))
    # ambiguity, for diagnostics only: the relative cost gap to the best distinct hypothesis (as a gate it did not
    # single out the wrong turns: README, the goal_pair row of 'Estimators by input regime')
    alt = [c for c, h in results[1:] if np.hypot(*(h[:2] - best[:2])) > 0.015 or abs(h[2] - best[2]) > 0.2]
    margin = (min(alt) - best_cost) / max(best_cost, 1e-6) if alt else 1.0
    diag.update(cost=best_cost, inlier_ratio=float(inl.mean()), visible_ratio=visible, margin=float(margin),
                object_pixels=int(model.mask.sum()), points=int(len(X)))
    R = _rot_about(n, np.array([best[2]]))[0]
    t = best[0] * e1 + best[1] * e2
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = center + t - R @ center
    min_conf = p.min_confidence_depth if d1 is not None else p.min_confidence
    # the best turn at the edge of the searched range: the optimum may lie beyond it (a square footprint looks
    # alike turned by 90 deg, and the turn the goal asks for is then ambiguous): refused, not guessed
    at_edge = abs(float(best[2])) >= yaw_max - np.deg2rad(1.0)
    diag["yaw_at_edge"] = bool(at_edge)
    ok = conf >= min_conf and not at_edge
    if at_edge:
        reason = (f"goal alignment ambiguous: the best turn ({np.degrees(best[2]):+.1f} deg) is at the edge of the "
                  f"searched +-{p.yaw_range_deg:g} deg (a symmetric footprint looks alike turned by 90 deg)")
    else:
        reason = "" if ok else (f"goal alignment not trusted: confidence {conf:.2f} < {min_conf} ("
                                f"{visible:.2f} of the object's points visible in the goal image, "
                                f"{inl.sum() / max(vis.sum(), 1):.2f} of those on goal evidence with a consistent "
                                "colour)")
    return GoalMotion(ok, reason, T, center, n, t, float(best[2]), conf, model.mask, True, diag)


def _refine_starts(scorer, hyps, order, yaw_max):
    """The best few distinct coarse hypotheses, each refined on two finer local grids -> [(cost, hyp)] sorted."""
    starts = []
    for i in order:
        h = hyps[i]
        if all(np.hypot(*(h[:2] - s[:2])) > 0.015 or abs(h[2] - s[2]) > np.deg2rad(12) for s in starts):
            starts.append(h)
        if len(starts) >= 3:
            break
    results = []
    for h in starts:
        for step_t, step_r, k in ((0.004, np.deg2rad(3.0), 3), (0.0015, np.deg2rad(1.0), 2)):
            g = np.arange(-k, k + 1)
            da, db, dy = np.meshgrid(g * step_t, g * step_t, g * step_r, indexing="ij")
            cand_h = h + np.stack([da.ravel(), db.ravel(), dy.ravel()], -1)
            cand_h[:, 2] = np.clip(cand_h[:, 2], -yaw_max, yaw_max)
            cst = scorer.cost(cand_h)
            h = cand_h[int(np.argmin(cst))]
        results.append((float(scorer.cost(h, bilinear=True)[0]), h))
    results.sort(key=lambda r: r[0])
    return results


def _polish(scorer, best_cost, best, yaw_max):
    """Bilinear local refinement (Nelder-Mead) of the best hypothesis -> (cost, hyp)."""
    try:
        from scipy.optimize import minimize
        scale = np.array([0.002, 0.002, np.deg2rad(1.0)])

        def f(x):
            h = best + x * scale
            return float(scorer.cost(h, bilinear=True)[0]) + (1e3 if abs(h[2]) > yaw_max else 0.0)

        r = minimize(f, np.zeros(3), method="Nelder-Mead",
                     options=dict(xatol=0.05, fatol=1e-4, maxiter=200,
                                  initial_simplex=np.vstack([np.zeros(3), np.eye(3)])))
        if r.fun < best_cost:
            return float(r.fun), best + r.x * scale
    except Exception:  # noqa: BLE001 - the grid result stands
        pass
    return best_cost, best


def _motion_of(model: ObjectModel, hyp) -> np.ndarray:
    """4x4 camera-frame motion of a planar hypothesis (a, b, yaw) about the model's centre."""
    R = _rot_about(model.n, np.array([hyp[2]]))[0]
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = model.center + hyp[0] * model.e1 + hyp[1] * model.e2 - R @ model.center
    return T


def _hyp_of(model: ObjectModel, motion) -> np.ndarray:
    """The planar hypothesis (a, b, yaw) closest to a camera-frame motion (inverse of ``_motion_of``)."""
    motion = np.asarray(motion, np.float64)
    t = motion[:3, :3] @ model.center + motion[:3, 3] - model.center
    x = motion[:3, :3] @ model.e1
    yaw = float(np.arctan2(x @ model.e2, x @ model.e1))
    return np.array([t @ model.e1, t @ model.e2, yaw])


def refine_tracked(model: ObjectModel, rgb: np.ndarray, depth: np.ndarray, motion,
                   params: GoalPairParams = GoalPairParams()) -> np.ndarray:
    """The object's pose near ``motion`` (model frame -> now, camera frame) in a later RGB-D frame: the goal-pair
    cost on two fine local grids around it (+-1.2 cm, +-9 deg), as ``track_object`` refines its best starts. A depth
    check alone cannot see a flat top slide sideways; this can."""
    p = params
    d1 = _valid_depth(depth)
    changed = change_mask(model.rgb, np.asarray(rgb), p.diff_threshold)
    if d1 is None or changed.sum() < p.min_change_pixels:
        return np.eye(4) if d1 is not None else np.asarray(motion, np.float64)
    ev, _ = _evidence(model, np.asarray(rgb), d1, changed, p)
    scorer = _Scorer(model.X, model.C, model.S, model.center, model.n, model.e1, model.e2, model.K, np.asarray(rgb),
                     ev, d1, p, d1, model.Wp)
    h0 = _hyp_of(model, motion)
    (cost, best), = _refine_starts(scorer, h0[None], [0], np.deg2rad(p.yaw_range_deg) + abs(h0[2]))
    return _motion_of(model, best)


def track_object(model: ObjectModel, rgb: np.ndarray, depth: np.ndarray, params: GoalPairParams = GoalPairParams(),
                 near=None) -> GoalMotion:
    """Where the object of ``model`` is in a later RGB-D frame of the same static camera: its planar motion from
    the model's frame to (``rgb``, ``depth``) -- the goal-pair alignment with the later frame's depth as the goal
    depth. Whatever stands in front of the object now (a gripper) occludes it: those points carry no evidence, and
    new things in the image (the gripper again) are no place the object must cover. ``near``: (centre [3], radius)
    in the camera frame: the object is searched only there."""
    p = params
    d1 = _valid_depth(depth)
    if d1 is None:
        return GoalMotion(False, "no valid depth in the frame to track the goal object in", mask=model.mask)
    diag = {}
    changed = change_mask(model.rgb, np.asarray(rgb), p.diff_threshold)
    diag["changed_pixels"] = int(changed.sum())
    if changed.sum() < p.min_change_pixels:
        return GoalMotion(True, "", confidence=1.0, mask=model.mask, changed=False, diagnostics=diag)
    # a 2 cm coarse grid (the fine grids refine it): a tracked object is searched on every window
    return _align(model, np.asarray(rgb), d1, changed, p, diag, static=d1, coverage=False, near=near, cell=0.02)


# ------------------------------------------------------------------------------------------------ field
def _geodesic_ctrl(X: np.ndarray, gm: GoalMotion, num_ctrl: int, reverse: bool = False):
    """Control points [D, M, 3] of the curves of points X moving on the geodesic of ``gm`` (rotation about its
    centre, linear translation) from t=0 to t=1 (``reverse``: X are goal positions, moving back in time to 0)."""
    s = np.linspace(0.0, 1.0, 4 * num_ctrl)
    B = basis_matrix(s, num_ctrl)
    pinv = np.linalg.pinv(B)                                         # [D, S]
    yaw, tr = gm.yaw, gm.translation
    if reverse:  # start from the goal: at time t the point is at motion(t) @ motion(1)^-1 @ X
        Rf = _rot_about(gm.axis, np.array([-yaw]))[0]
        X = (X - gm.center - tr) @ Rf.T + gm.center                 # back to current positions
    R = _rot_about(gm.axis, s * yaw)                                 # [S, 3, 3]
    # p(s) = R(s) (X - c) + c + s t  ->  ctrl_d = A_d (X - c) + (sum_s pinv_ds) c + (sum_s pinv_ds s) t
    A = np.einsum("ds,sij->dij", pinv, R)                            # [D, 3, 3]
    b = pinv.sum(1)[:, None] * gm.center + (pinv @ s)[:, None] * tr  # [D, 3]
    return np.einsum("dij,mj->dmi", A, X - gm.center) + b[:, None]


def goal_field(rgb_shape, depth0: np.ndarray, K: np.ndarray, gm: GoalMotion, num_ctrl: int = 10,
               depth1: Optional[np.ndarray] = None) -> FieldPrediction:
    """The 2-frame field of the pair: frame 0 = the current frame's depth points (static; the object's pixels move
    along ``gm``), frame 1 = the goal (its depth when given, else the current geometry with the object moved in
    by z-buffered splatting and the table where it was); frame times 0 and 1. Rejected motions mark the object's
    curves unusable (NaN, confidence 0)."""
    H, W = rgb_shape[:2]
    D = int(num_ctrl)
    d0 = np.asarray(depth0, np.float64)
    valid0 = np.isfinite(d0) & (d0 > 0)
    P0 = backproject(np.where(valid0, d0, 0.0), K)
    ctrl = np.empty((2, D, H, W, 3), np.float32)
    conf = np.zeros((2, D, H, W), np.float32)
    P0n = np.where(valid0[..., None], P0, np.nan)
    ctrl[0] = P0n[None]
    conf[0] = valid0.astype(np.float32)[None]
    obj = gm.mask if gm.mask is not None else np.zeros((H, W), bool)
    obj = obj & valid0
    if gm.changed and obj.any():
        if gm.ok:
            ctrl[0][:, obj] = _geodesic_ctrl(P0[obj], gm, D).astype(np.float32)
            conf[0][:, obj] = gm.confidence
        else:
            ctrl[0][:, obj] = np.nan
            conf[0][:, obj] = 0.0
    # frame 1 (goal)
    if depth1 is not None and np.isfinite(np.asarray(depth1, np.float64)).any():
        d1 = np.asarray(depth1, np.float64)
        valid1 = np.isfinite(d1) & (d1 > 0)
        P1 = np.where(valid1[..., None], backproject(np.where(valid1, d1, 0.0), K), np.nan)
        ctrl[1] = P1[None]
        conf[1] = valid1.astype(np.float32)[None]
    else:
        ctrl[1] = P0n[None]
        conf[1] = valid0.astype(np.float32)[None]
        if gm.changed and gm.ok and obj.any():
            # the table where the object was: not known from the current frame; marked unusable
            ctrl[1][:, obj] = np.nan
            conf[1][:, obj] = 0.0
            Y = P0[obj] @ gm.motion[:3, :3].T + gm.motion[:3, 3]
            u = np.rint(K[0, 0] * Y[:, 0] / Y[:, 2] + K[0, 2]).astype(np.int64)
            v = np.rint(K[1, 1] * Y[:, 1] / Y[:, 2] + K[1, 2]).astype(np.int64)
            ins = (u >= 0) & (v >= 0) & (u < W) & (v < H) & (Y[:, 2] > 0)
            u, v, Y = u[ins], v[ins], Y[ins]
            order = np.argsort(-Y[:, 2])          # far first: near points overwrite
            u, v, Y = u[order], v[order], Y[order]
            zbuf = np.full((H, W), np.inf)
            zbuf[v, u] = Y[:, 2]
            cur = ctrl[1, 0, :, :, 2]
            hit = np.isfinite(zbuf) & ~(np.nan_to_num(cur, nan=np.inf) < zbuf - 0.01)
            if hit.any():
                vv, uu = np.nonzero(hit)
                Pg = backproject(np.where(hit, zbuf, 0.0), K)[hit]
                ctrl[1][:, hit] = _geodesic_ctrl(Pg, gm, D, reverse=True).astype(np.float32)
                conf[1][:, hit] = gm.confidence
    pred = FieldPrediction(ctrl, conf, np.array([0.0, 1.0], np.float32))
    pred.metric = True  # set as attributes: also fine with a FieldPrediction without these fields
    pred.extras = {"regime": "goal_pair", "goal_confidence": float(gm.confidence), "goal_ok": bool(gm.ok),
                   "goal_reason": gm.reason}
    return pred


# ------------------------------------------------------------------------------------------------ estimator
class GoalPairEstimator:
    """``FieldEstimator`` for the current/goal image pair (``model.api``): ``predict(frames [2, H, W, 3], depth=
    [2, H, W] (goal depth may be NaN), intrinsics=K)``. Declares ``needs_intrinsics`` and ``needs_depth``; a
    missing input raises ``ValueError`` naming it (never replaced by a stand-in). ``last`` holds the newest
    ``GoalMotion`` (reason, confidence, diagnostics). Output: metric (``metric = True``)."""

    needs_intrinsics = True
    needs_depth = True
    needs_stamps = False
    metric = True
    regime = "goal_pair"

    def __init__(self, params: Optional[GoalPairParams] = None, input_size: Sequence[int] = (240, 320)):
        self.params = params or GoalPairParams()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_ctrl = int(self.params.num_ctrl)
        self.last: Optional[GoalMotion] = None
        self.last_model: Optional[ObjectModel] = None   # the object of the last estimate (to track it)
        self.last_depth: Optional[np.ndarray] = None     # the current depth of the last estimate
        self._cache = None   # (frames, depth, K, prediction) of the last call: an unchanged pair is not re-estimated
        self.reused = 0
        self.description = f"goal-pair geometry (support plane + silhouette/photometric alignment), " \
                           f"{self.input_size[1]}x{self.input_size[0]}"

    def predict(self, frames: np.ndarray, frame_keys=None, depth: Optional[np.ndarray] = None,
                intrinsics: Optional[np.ndarray] = None, times=None, cam_poses=None, **_) -> FieldPrediction:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] != 2 or frames.shape[-1] != 3:
            raise ValueError(f"the goal-pair estimator takes 2 RGB frames (current, goal) [2, H, W, 3], got "
                             f"{frames.shape}")
        missing = []
        if depth is None or not np.isfinite(np.asarray(depth[0], np.float64)).any():
            missing.append("depth of the current frame (depth[0], metres)")
        if intrinsics is None:
            missing.append("intrinsics (3x3 K of the input grid, from camera_info)")
        if missing:
            raise ValueError("goal-pair estimator: missing input: " + "; ".join(missing))
        if cam_poses is not None and not np.allclose(np.asarray(cam_poses)[-1], np.eye(4), atol=1e-3):
            raise ValueError("goal-pair estimator: the camera moved between the current frame and the goal image "
                             "(static camera required)")
        K = np.asarray(intrinsics, np.float64).reshape(3, 3)
        d = np.asarray(depth, np.float64)
        if self._same_as_cached(frames, d, K):
            self.reused += 1   # a robot waiting in front of a static scene: the same pair, the same answer
            return self._cache[3]
        models: list = []
        gm = estimate_goal_motion(frames[0], d[0], K, frames[1], d[1] if len(d) > 1 else None, self.params, models)
        self.last = gm
        self.last_model = models[0] if models else None
        self.last_depth = d[0]
        pred = goal_field(frames.shape[1:], d[0], K, gm, self.num_ctrl, d[1] if len(d) > 1 else None)
        self._cache = (frames.copy(), d.copy(), K.copy(), pred)
        return pred

    def _same_as_cached(self, frames, d, K) -> bool:
        tol = float(self.params.reuse_tolerance)
        c = self._cache
        if tol <= 0 or c is None or c[0].shape != frames.shape or c[1].shape != d.shape or not np.allclose(c[2], K):
            return False
        if np.abs(c[0].astype(np.int16) - frames).mean(axis=(1, 2, 3)).max() > tol:
            return False
        a, b = c[1], d
        fa, fb = np.isfinite(a), np.isfinite(b)
        return bool((fa == fb).mean() > 0.999 and np.abs(a[fa & fb] - b[fa & fb]).mean() < 1e-3)

    def tracker(self):
        """An ``ImageGoalTrack`` of the last estimate (``planning.goal_track``: the goal followed frame by frame
        without estimating it again), or None when it was not trusted or showed no object."""
        from .goal_track import ImageGoalTrack

        gm, model = self.last, self.last_model
        if gm is None or not gm.ok or not gm.changed or model is None:
            return None
        return ImageGoalTrack.from_estimate(model, gm, self.last_depth, self.params)

    def close(self) -> None:
        pass


def create(params: Optional[dict] = None) -> GoalPairEstimator:
    """Factory ``trace_anything_ros.planning.goal_pair:create`` (``pipeline.load_estimator``): keys
    ``input_size`` [H, W] (default 240 x 320) and any ``GoalPairParams`` field; the engine keys of
    ``model.engine.create_estimator`` (weights, preset, device, window, ...) are ignored."""
    p = dict(params or {})
    size = p.pop("input_size", None) or (240, 320)
    names = {f.name for f in fields(GoalPairParams)}
    gp = GoalPairParams.from_dict({k: v for k, v in p.items() if k in names})
    return GoalPairEstimator(gp, size)
