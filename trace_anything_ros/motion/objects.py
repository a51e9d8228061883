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

"""Moving objects: group dynamic pixels into instances by their motion, summarise and track them.

Grouping (:func:`segment_instances`), per connected component of the dynamic mask:

1. sequential SE(3) RANSAC: hypotheses from 3 random pixels (batched Kabsch from the pixels' positions at the
   reference frame time to their positions at every frame time), scored on a pixel subset by the worst residual
   over the window (relative to depth); the best model is refined on its inliers, its inliers removed, repeat;
2. every pixel of the component goes to the rigid model that explains it best; fragments smaller than
   ``min_part_area`` join their most common neighbour;
3. adjacent parts are merged when they stay connected over the window: for the pixels on their common border,
   the two rigid motions predict positions that stay within ``joint_tol`` somewhere along the border (a joint,
   a hinge, or the same motion). Two touching objects moving differently separate along the whole border and
   stay apart; the two links of an articulated object share a joint and are merged into one object.

Each object gets a :class:`DynamicObject` summary; :class:`ObjectTracker` keeps ids stable across consecutive
windows (Hungarian matching on mask overlap, with a box-centre fallback).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import List, Optional

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..field import rigid


@dataclass
class DynamicObject:
    """One moving object of a window (everything in the window's reference camera frame, ``frame_id``).

    Units: metres when the field is metric (or was scaled from depth), else the field's units; seconds.
    """

    id: int  # stable across windows when a tracker is used (else the instance label)
    label: int  # instance label in ``MotionResult.labels`` of this window
    pixel_count: int
    box: tuple  # (u_min, v_min, u_max, v_max) inclusive, pixels of the analysed (newest) frame
    centroid: np.ndarray  # [3] at the analysed frame's stamp
    velocity: np.ndarray  # [3] per second at the analysed frame's stamp
    speed: float
    trajectory: np.ndarray  # [N, 3] centroid at the frame stamps
    trajectory_stamps: np.ndarray  # [N] seconds
    forecast: np.ndarray  # [K, 3] centroid after the window
    forecast_stamps: np.ndarray  # [K] seconds
    forecast_confidence: np.ndarray  # [K] in [0, 1]
    confidence: float  # in [0, 1]: 0 at the detection threshold, -> 1 for motion well above it
    num_parts: int = 1  # rigid parts merged into this object (2 for a two-link object)
    rotations: Optional[np.ndarray] = None  # [N, 3, 3] best rigid motion, analysed frame -> each frame stamp
    translations: Optional[np.ndarray] = None  # [N, 3]
    rigid_rms: float = float("nan")  # RMS residual of that rigid motion (relative to depth)
    metric: bool = False
    extras: dict = dc_field(default_factory=dict)


# ------------------------------------------------------------------------------------------- grouping
def _residuals(R, t, Y, ref_index, invz):
    """Worst relative residual over time of rigid motions ``R [P,T,3,3], t [P,T,3]`` for points ``Y [T,M,3]``:
    ``[P, M]``."""
    srcT = np.ascontiguousarray(Y[ref_index].T)  # [3, M]
    pred = np.matmul(R.reshape(-1, 3, 3), srcT).reshape(R.shape[:2] + (3, -1))  # [P, T, 3, M]
    pred += t[..., None]
    pred -= np.transpose(Y, (0, 2, 1))[None]  # the differences, in place
    pred *= pred
    err = pred[:, :, 0] + pred[:, :, 1]  # [P, T, M] squared distances (contiguous rows: no einsum over c)
    err += pred[:, :, 2]
    return np.sqrt(err.max(1)) * invz[None]  # [P, M]; one sqrt after the max (monotonic: same values)


def _frames3(p):
    """Orthonormal frames ``[..., 3, 3]`` (columns e1, e2, e3) of point triples ``p [..., 3, 3]`` and a validity
    flag (False for (nearly) coincident / collinear triples)."""
    a = p[..., 1, :] - p[..., 0, :]
    b = p[..., 2, :] - p[..., 0, :]
    n = np.cross(a, b)
    na = np.sqrt(np.einsum("...i,...i->...", a, a))
    nn = np.sqrt(np.einsum("...i,...i->...", n, n))
    ok = (na > 1e-12) & (nn > 1e-12 * np.maximum(na, 1e-12) ** 2)
    e1 = a / np.where(ok, na, 1.0)[..., None]
    e3 = n / np.where(ok, nn, 1.0)[..., None]
    return np.stack([e1, np.cross(e3, e1), e3], -1), ok


def _three_point_motions(src, dst):
    """Rigid motions from point triples, closed form (triad method): ``src [P, 3, 3]``, ``dst [P, T, 3, 3]`` ->
    ``R [P, T, 3, 3]``, ``t [P, T, 3]`` with R mapping src's triad frame onto dst's and t matching the centroids.
    Exact for noise-free rigid triples, like a 3-point Kabsch, at a fraction of the cost of a batched SVD (the
    RANSAC hypotheses only need to be plausible; every kept model is refit by Kabsch on its inliers). Degenerate
    triples get R = identity (they score no inliers)."""
    Fp, okp = _frames3(src)  # [P, 3, 3]
    Fq, okq = _frames3(dst)  # [P, T, 3, 3]
    R = Fq @ np.swapaxes(Fp, -1, -2)[:, None]
    bad = ~(okq & okp[:, None])
    if bad.any():
        R[bad] = np.eye(3)
    t = dst.mean(-2) - np.einsum("ptij,pj->pti", R, src.mean(-2))
    return R, t


def _fit_model(Y, ref_index, idx, w=None):
    src = Y[ref_index, idx]  # [m, 3]
    dst = Y[:, idx]  # [T, m, 3]
    R, t = rigid.kabsch(np.broadcast_to(src, dst.shape), dst, w)
    return R, t  # [T, 3, 3], [T, 3]


def _ransac_parts(Y, ref_index, invz, tol, rng, iters, sample, max_parts, min_part):
    """Sequential RANSAC on one region's points ``Y [T, M, 3]`` -> list of (R [T,3,3], t [T,3])."""
    M, T = Y.shape[1], Y.shape[0]
    others = [k for k in range(T) if k != ref_index % T]
    pick = sorted({others[i] for i in np.linspace(0, len(others) - 1, min(3, len(others))).round().astype(int)}) \
        if others else []
    t_sel = np.array(sorted(pick + [ref_index % T]))
    ref_s = int(np.flatnonzero(t_sel == ref_index % T)[0])
    remaining = np.arange(M)
    models = []
    while remaining.size >= max(min_part, 3) and len(models) < max_parts:
        sub = remaining if remaining.size <= sample else rng.choice(remaining, sample, replace=False)
        hyp = remaining[rng.integers(0, remaining.size, size=(iters, 3))]  # [P, 3] (rare repeats: bad hypotheses)
        # hypotheses are scored on the reference time plus up to 3 other frame times (refinement uses all)
        Ys = Y[t_sel]
        src = Ys[ref_s][hyp]  # [P, 3, 3]
        dst = np.transpose(Ys[:, hyp], (1, 0, 2, 3))  # [P, Ts, 3, 3]
        R, t = _three_point_motions(src, dst)
        err = _residuals(R, t, Ys[:, sub], ref_s, invz[sub])  # [P, S]
        best = int(np.argmax((err < tol).sum(1)))
        e = _residuals(R[best][None], t[best][None], Ys[:, remaining], ref_s, invz[remaining])[0]
        inl = remaining[e < tol]
        for _ in range(2):  # refine on all inliers and all frame times
            if inl.size < 3:
                break
            Rb, tb = _fit_model(Y, ref_index, inl)
            e = _residuals(Rb[None], tb[None], Y[:, remaining], ref_index, invz[remaining])[0]
            inl = remaining[e < tol]
        if inl.size < min_part:
            break
        models.append((Rb, tb))
        remaining = np.setdiff1d(remaining, inl, assume_unique=True)
    return models


def _absorb_small(lab: np.ndarray, region: np.ndarray, min_part: int) -> np.ndarray:
    """Relabel connected fragments smaller than ``min_part`` to their most common neighbouring label."""
    out = lab.copy()
    for lbl in np.unique(out[region]):
        if lbl <= 0:
            continue
        n, cc, stats, _ = cv2.connectedComponentsWithStats((out == lbl).astype(np.uint8), connectivity=4)
        for c in range(1, n):
            if stats[c, cv2.CC_STAT_AREA] >= min_part:
                continue
            frag = cc == c
            ring = cv2.dilate(frag.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~frag & region
            neigh = out[ring]
            neigh = neigh[(neigh > 0) & (neigh != lbl)]
            if neigh.size:
                out[frag] = np.bincount(neigh).argmax()
    return out


class _UnionFind:
    def __init__(self, n):
        self.p = list(range(n))

    def find(self, a):
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a, b):
        self.p[self.find(a)] = self.find(b)


@dataclass
class Segmentation:
    labels: np.ndarray  # [H, W] int32, 0 = static
    parts: dict  # label -> number of rigid parts merged into it
    models: dict  # label -> (R [T,3,3], t [T,3]) of its largest part
    all_models: dict = dc_field(default_factory=dict)  # label -> list of every part's (R, t)


def segment_instances(positions: np.ndarray, mask: np.ndarray, ref_index: int, tol: float, *,
                      joint_tol: Optional[float] = None, min_area: int = 20, min_part_area: int = 12,
                      ransac_iters: int = 48, ransac_sample: int = 300, max_parts: int = 6,
                      seed: int = 0) -> Segmentation:
    """Instance labels for the dynamic ``mask [H, W]`` from ``positions [T, H, W, 3]`` (one frame's pixels at the
    window's frame times). ``tol``: rigid residual tolerance relative to depth (e.g. the mask threshold);
    ``joint_tol``: border separation (relative) under which two adjacent parts stay one object (default 1.5 tol).
    """
    joint_tol = 1.5 * tol if joint_tol is None else joint_tol
    rng = np.random.default_rng(seed)
    H, W = mask.shape
    labels = np.zeros((H, W), dtype=np.int32)
    parts_out, models_out, all_out = {}, {}, {}
    if not mask.any():
        return Segmentation(labels, parts_out, models_out, all_out)
    n_reg, reg = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    T = positions.shape[0]
    next_label = 1
    for r in range(1, n_reg):  # loop over regions (a few), vectorised inside
        region = reg == r
        if region.sum() < min_area:
            continue
        pix = np.flatnonzero(region)
        Y = positions.reshape(T, -1, 3)[:, pix].astype(np.float64)  # [T, M, 3]
        invz = 1.0 / np.maximum(Y[ref_index, :, 2], 1e-6)
        models = _ransac_parts(Y, ref_index, invz, tol, rng, ransac_iters, ransac_sample, max_parts, min_part_area)
        if len(models) <= 1:
            part_of = np.zeros(pix.size, dtype=np.int64)
            if not models:
                models = [_fit_model(Y, ref_index, np.arange(pix.size))]
        else:
            Rm = np.stack([m[0] for m in models])
            tm = np.stack([m[1] for m in models])
            part_of = _residuals(Rm, tm, Y, ref_index, invz).argmin(0)
        plab = np.zeros((H, W), dtype=np.int32)
        plab.reshape(-1)[pix] = part_of + 1
        if len(models) > 1:
            plab = _absorb_small(plab, region, min_part_area)
        # nodes = connected components of each part
        node_lab = np.zeros((H, W), dtype=np.int32)
        node_model = []
        for p in range(1, len(models) + 1):
            n, cc = cv2.connectedComponents((plab == p).astype(np.uint8), connectivity=4)
            for c in range(1, n):
                node_lab[cc == c] = len(node_model) + 1
                node_model.append(p - 1)
        uf = _UnionFind(len(node_model))
        # adjacency via 4-neighbour pairs inside the region
        pairs = []
        for a, b in ((node_lab[:, :-1], node_lab[:, 1:]), (node_lab[:-1, :], node_lab[1:, :])):
            sel = (a > 0) & (b > 0) & (a != b)
            if np.any(sel):
                pairs.append(np.stack([a[sel], b[sel]], 1))
        full_idx = np.full(H * W, -1, dtype=np.int64)
        full_idx[pix] = np.arange(pix.size)
        if pairs:
            pr = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
            for a, b in pr:  # loop over adjacent part pairs (a handful)
                ma, mb = models[node_model[a - 1]], models[node_model[b - 1]]
                if node_model[a - 1] == node_model[b - 1]:
                    uf.union(a - 1, b - 1)
                    continue
                border = (cv2.dilate((node_lab == a).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                          & (node_lab == b))
                border |= (cv2.dilate((node_lab == b).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                           & (node_lab == a))
                bi = full_idx[np.flatnonzero(border)]
                bi = bi[bi >= 0]
                if bi.size == 0:
                    continue
                x = Y[ref_index, bi]  # [B, 3]
                pa = np.einsum("tij,bj->tbi", ma[0], x) + ma[1][:, None]
                pb = np.einsum("tij,bj->tbi", mb[0], x) + mb[1][:, None]
                sep = np.sqrt(((pa - pb) ** 2).sum(-1)).max(0) * invz[bi]  # [B]
                if float(sep.min()) < joint_tol:
                    uf.union(a - 1, b - 1)
        groups = {}
        for n_i in range(len(node_model)):
            groups.setdefault(uf.find(n_i), []).append(n_i)
        for members in groups.values():
            sel = np.isin(node_lab, np.array(members) + 1)
            if sel.sum() < min_area:
                continue
            labels[sel] = next_label
            used = sorted({node_model[m] for m in members})
            parts_out[next_label] = len(used)
            sizes = [(node_model[m], int((node_lab == m + 1).sum())) for m in members]
            largest = max(sizes, key=lambda s: s[1])[0]
            models_out[next_label] = models[largest]
            all_out[next_label] = [models[u] for u in used]
            next_label += 1
    return Segmentation(labels, parts_out, models_out, all_out)


def grow_instances(seg: Segmentation, positions: np.ndarray, valid: np.ndarray, ref_index: int, tol: float,
                   max_iters: int = 4, depth_jump: float = 0.05) -> Segmentation:
    """Grow each instance into adjacent static-looking pixels that its rigid motion explains and that continue
    its surface (relative depth step below ``depth_jump``). Recovers the slow hub of a rotating object (its
    pixels barely move, so the mask misses them) without leaking onto the background behind it."""
    labels = seg.labels.copy()
    if labels.max() == 0 or max_iters <= 0:
        return seg
    T = positions.shape[0]
    z = positions[ref_index, ..., 2]
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(max_iters):  # a few dilation rings, vectorised over pixels
        changed = False
        for lbl, models in seg.all_models.items():
            obj = labels == lbl
            ring = cv2.dilate(obj.astype(np.uint8), kernel).astype(bool) & (labels == 0) & valid
            if not ring.any():
                continue
            zo = np.where(obj, z, 0).astype(np.float32)
            zmax = cv2.dilate(zo, kernel)
            zmin = -cv2.dilate(np.where(obj, -z, -np.inf).astype(np.float32), kernel)
            cand = ring & (z >= zmin * (1 - depth_jump)) & (z <= zmax * (1 + depth_jump))
            if not cand.any():
                continue
            idx = np.flatnonzero(cand)
            Y = positions.reshape(T, -1, 3)[:, idx].astype(np.float64)
            invz = 1.0 / np.maximum(Y[ref_index, :, 2], 1e-6)
            R = np.stack([m[0] for m in models])
            t = np.stack([m[1] for m in models])
            ok = _residuals(R, t, Y, ref_index, invz).min(0) < tol
            if ok.any():
                labels.reshape(-1)[idx[ok]] = lbl
                changed = True
        if not changed:
            break
    return Segmentation(labels, seg.parts, seg.models, seg.all_models)


# ------------------------------------------------------------------------------------------- tracking
class ObjectTracker:
    """Stable ids across consecutive windows.

    Each track keeps the object's pixel mask and box centre in the analysed (newest) frame, the stamp of that frame
    and the centre's image velocity (pixels / s, from the last two windows that saw it, smoothed). For a new window
    every track is first moved to the new stamp at that velocity (mask shifted, centre moved), then the window's
    objects are matched to the moved tracks by mask overlap (IoU >= ``min_iou``), with the distance of the centres
    as a fallback (within ``center_gate_px``, widened by ``center_gate_px`` for each window the track was missed).
    Where the objects have 3D centroids, the track's centroid is moved at the object's own velocity over its last
    window too: within ``rel_gate_3d`` (relative to depth) it is a fallback match as well, and a pair farther apart
    than 3x that is never matched, however much the masks overlap (objects crossing at different depths).
    Hungarian assignment (scipy). Unmatched objects get new ids; a track unseen for more than ``max_age`` windows is
    forgotten, unless :meth:`resting` finds it where it was (an object that stopped moving is not detected, but its
    pixels are still at its 3D place): then it stays, with its id, for as long as it rests. Without stamps
    (``update(..., stamp=None)``) no motion is predicted.

    Figures (`trace-anything-ros eval-ids --seeds 0,1,2`: tabletop, 20 s at 10 Hz, a window every
    4 frames, shipped model; before -> with motion prediction): distinct ids 16/18/15 -> 10/8/11, id switches
    13/15/12 -> 11/16/12. Most remaining switches are segmentation, not association: one body split into two
    objects whose best match alternates, or an object detected only while it moves (a pause longer than
    ``max_age`` windows starts a new id). Keeping tracks longer (8 windows, also matched where last seen) cut the
    distinct ids further (6/7/7) but raised the switches to 21/22/13 (old ids re-used on other bodies): not done.
    (Those figures are at ``motion.threshold`` 0.02; at the 0.01 default more moving pixels are found -- detected
    0.63/0.46/0.64 -> 0.68/0.61/0.78 -- and split into more objects: switches 16/26/10, distinct ids 10/11/6.)
    """

    def __init__(self, min_iou: float = 0.1, center_gate_px: float = 12.0, max_age: int = 4,
                 velocity_smoothing: float = 0.5, rel_gate_3d: float = 0.1, history_keep_s: float = 3.0):
        self.history_keep_s = history_keep_s  # centroid history kept per track (motion.forecast fits over it)
        self._last_frame = None  # (stamp, points [H, W, 3], dynamic [H, W]) of the last analysed frame
        self.min_iou = min_iou
        self.center_gate_px = center_gate_px
        self.rel_gate_3d = rel_gate_3d
        self.max_age = max_age
        self.velocity_smoothing = velocity_smoothing
        self._tracks = {}  # id -> dict(mask [H, W] bool, center (u, v), vel (du, dv) px/s or None, stamp, age)
        self._next_id = 1

    def reset(self):
        self._tracks.clear()
        self._next_id = 1
        self._last_frame = None

    # ------------------------------------------------------------------------------------- history (forecasts)
    def shared_frame(self, stamps) -> Optional[int]:
        """Index in ``stamps`` of the frame analysed last time (its image is in the new window too), or None."""
        if self._last_frame is None:
            return None
        d = np.abs(np.asarray(stamps, np.float64) - self._last_frame[0])
        j = int(np.argmin(d))
        return j if d[j] < 1e-6 else None

    def align_history(self, new_points: np.ndarray) -> Optional[tuple]:
        """Move every track's centroid history into the new window's frame. ``new_points [H, W, 3]``: the new
        window's points of the image analysed last time (see :meth:`shared_frame`), at its stamp; the similarity
        between the two views of its static pixels (``motion.forecast.frame_alignment``) is applied. Without a
        shared image (``new_points`` None) the frames are taken as equal (a static camera). Returns (s, R, t)."""
        from .forecast import frame_alignment

        if new_points is None or self._last_frame is None:
            return None
        S = frame_alignment(self._last_frame[1], self._last_frame[2], new_points)
        if S is None:
            return None
        s, R, t = S
        for tr in self._tracks.values():
            if tr.get("hist_c") is not None and len(tr["hist_c"]):
                tr["hist_c"] = s * tr["hist_c"] @ R.T + t
            if tr.get("hist_w") is not None and len(tr["hist_w"]):
                tr["hist_w"] = tr["hist_w"] @ R.T
        return S

    def history(self, tid: int):
        """``(stamps [S], centroids [S, 3], windows [S], omega_stamps [W], omegas [W, 3])`` of track ``tid`` (None if
        unknown); ``windows``: the analysed stamp of the window each sample came from."""
        tr = self._tracks.get(tid)
        if tr is None or tr.get("hist_s") is None:
            return None
        return tr["hist_s"], tr["hist_c"], tr["hist_g"], tr["hist_ws"], tr["hist_w"]

    def _merged_history(self, old: Optional[dict], o: DynamicObject, stamp: Optional[float]):
        """The track's history with this window's samples of object ``o`` appended (trimmed to history_keep_s)."""
        from .forecast import window_omega

        st = np.asarray(o.trajectory_stamps, np.float64).reshape(-1) if o.trajectory_stamps is not None else None
        tj = np.asarray(o.trajectory, np.float64).reshape(-1, 3) if o.trajectory is not None else None
        if st is None or tj is None or st.size != len(tj):
            st, tj = np.zeros(0), np.zeros((0, 3))
        om = np.zeros((0, 3))
        oms = np.zeros(0)
        if o.rotations is not None and st.size == len(o.rotations) and stamp is not None:
            ref = int(np.argmin(np.abs(st - stamp)))
            om = window_omega(o.rotations, st, ref)[None]
            oms = np.array([float(stamp)])
        # the window each sample came from: a window's samples share its pixel set (one consistent curve); between
        # windows the segmented pixels, hence the centroid, may jump
        hg = np.full(st.size, float(stamp) if stamp is not None else (float(st.max()) if st.size else 0.0))
        hs, hc, hsg, hws, hw = st, tj, hg, oms, om
        if old is not None and old.get("hist_s") is not None:
            hs = np.concatenate([old["hist_s"], st])
            hc = np.concatenate([old["hist_c"], tj])
            hsg = np.concatenate([old["hist_g"], hg])
            hws = np.concatenate([old["hist_ws"], oms])
            hw = np.concatenate([old["hist_w"], om])
        if stamp is not None and hs.size:
            keep = hs >= float(stamp) - self.history_keep_s
            hs, hc, hsg = hs[keep], hc[keep], hsg[keep]
            keep = hws >= float(stamp) - self.history_keep_s
            hws, hw = hws[keep], hw[keep]
        return dict(hist_s=hs, hist_c=hc, hist_g=hsg, hist_ws=hws, hist_w=hw)

    @staticmethod
    def _shift(mask: np.ndarray, du: float, dv: float) -> np.ndarray:
        """``mask`` moved by (du, dv) pixels (rounded), zero-filled."""
        su, sv = int(round(du)), int(round(dv))
        if su == 0 and sv == 0:
            return mask
        H, W = mask.shape
        out = np.zeros_like(mask)
        if abs(su) >= W or abs(sv) >= H:
            return out
        out[max(sv, 0):H + min(sv, 0), max(su, 0):W + min(su, 0)] = \
            mask[max(-sv, 0):H + min(-sv, 0), max(-su, 0):W + min(-su, 0)]
        return out

    def _predicted(self, tr: dict, stamp: Optional[float]):
        dt = 0.0 if stamp is None or tr["stamp"] is None else max(0.0, float(stamp) - tr["stamp"])
        if tr["vel"] is None or dt == 0.0:
            return tr["mask"], tr["center"]
        du, dv = tr["vel"][0] * dt, tr["vel"][1] * dt
        return self._shift(tr["mask"], du, dv), (tr["center"][0] + du, tr["center"][1] + dv)

    @staticmethod
    def _predicted_3d(tr: dict, stamp: Optional[float]):
        c, v = tr["c3"], tr["v3"]
        if c is None:
            return None
        dt = 0.0 if stamp is None or tr["stamp"] is None else max(0.0, float(stamp) - tr["stamp"])
        return c + v * dt if v is not None else c

    @staticmethod
    def _rel_dist_3d(pred, c) -> Optional[float]:
        """Distance of two centroids relative to the predicted one's depth (None when unknown)."""
        if pred is None or c is None:
            return None
        c = np.asarray(c, np.float64)
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(pred))) or pred[2] <= 0:
            return None
        return float(np.linalg.norm(c - pred) / pred[2])

    def update(self, labels: np.ndarray, objects: List[DynamicObject], stamp: Optional[float] = None,
               positions: Optional[np.ndarray] = None) -> List[DynamicObject]:
        """Set ``o.id`` of this window's objects; ``stamp``: the analysed frame's time (s); ``positions [H, W, 3]``:
        the analysed frame's 3D points (kept per object, for :meth:`resting`)."""
        ids = list(self._tracks)
        cur_masks = [labels == o.label for o in objects]
        cur_cent = [((o.box[0] + o.box[2]) / 2.0, (o.box[1] + o.box[3]) / 2.0) for o in objects]
        assigned = {}
        if ids and objects:
            pred = {tid: self._predicted(self._tracks[tid], stamp) for tid in ids}
            score = np.zeros((len(objects), len(ids)))
            for j, tid in enumerate(ids):
                pm, pc = pred[tid]
                if pm.shape != labels.shape:
                    continue
                tr = self._tracks[tid]
                gate = self.center_gate_px * (1 + tr["age"])
                c3 = self._predicted_3d(tr, stamp)
                for i, m in enumerate(cur_masks):
                    iou = np.logical_and(pm, m).sum() / max(np.logical_or(pm, m).sum(), 1)
                    d = np.hypot(cur_cent[i][0] - pc[0], cur_cent[i][1] - pc[1])
                    near = max(0.0, 1.0 - d / gate)
                    r3 = self._rel_dist_3d(c3, objects[i].centroid)
                    if r3 is not None:
                        g3 = self.rel_gate_3d * (1 + tr["age"])
                        if r3 > 3 * g3:
                            continue  # overlapping in the image, far apart in 3D (crossing at other depths)
                        near = max(near, 1.0 - r3 / g3)
                    score[i, j] = iou if iou >= self.min_iou else max(0.0, near) * self.min_iou  # below overlap
            r, c = linear_sum_assignment(-score)
            for i, j in zip(r, c):
                if score[i, j] > 0:
                    assigned[i] = ids[j]
        new_tracks = {}
        for i, o in enumerate(objects):
            tid = assigned.get(i)
            vel = None
            old = None if tid is None else self._tracks[tid]
            if tid is None:
                tid = self._next_id
                self._next_id += 1
            else:
                old = self._tracks[tid]
                if stamp is not None and old["stamp"] is not None and stamp > old["stamp"]:
                    dt = float(stamp) - old["stamp"]
                    v = ((cur_cent[i][0] - old["center"][0]) / dt, (cur_cent[i][1] - old["center"][1]) / dt)
                    a = self.velocity_smoothing
                    vel = v if old["vel"] is None else (a * old["vel"][0] + (1 - a) * v[0],
                                                        a * old["vel"][1] + (1 - a) * v[1])
                else:
                    vel = old["vel"]
            o.id = tid
            c3 = np.asarray(o.centroid, np.float64) if o.centroid is not None else None
            v3 = np.asarray(o.velocity, np.float64) if o.velocity is not None else None
            new_tracks[tid] = dict(mask=cur_masks[i], center=cur_cent[i], vel=vel,
                                   stamp=None if stamp is None else float(stamp), age=0,
                                   c3=c3 if c3 is not None and np.all(np.isfinite(c3)) else None,
                                   v3=v3 if v3 is not None and np.all(np.isfinite(v3)) else None,
                                   radius=o.extras.get("radius"), resting=False,
                                   points=None if positions is None else
                                   np.where(cur_masks[i][..., None], positions, np.nan),
                                   **self._merged_history(old, o, stamp))
        for tid, tr in self._tracks.items():
            if tid not in new_tracks and tr["age"] + 1 <= self.max_age:
                new_tracks[tid] = dict(tr, age=tr["age"] + 1)
        self._tracks = new_tracks
        if positions is not None and stamp is not None:
            self._last_frame = (float(stamp), positions, labels > 0)
        return objects

    def resting(self, dynamic: np.ndarray, positions: np.ndarray, stamp: Optional[float] = None,
                min_pixels: int = 12, keep_fraction: float = 0.6, abs_tol: float = 0.005,
                rel_tol: float = 0.005) -> dict:
        """Objects that stopped: id -> bool mask [H, W] of this window's pixels where a track missed in this window
        (not moving any more, so not detected) still is. A track qualifies when at least ``keep_fraction`` of its
        last mask is static now and shows, pixel by pixel, the 3D points it showed when last seen (``positions
        [H, W, 3]``, the analysed frame; within ``abs_tol + rel_tol * z``, and within the object's extent of its
        centroid); those pixels are its mask now, and the track stays alive (resting) instead of ageing out. An
        object that left shows the background there instead -- farther by at least its thickness -- and is not
        kept: a flat object thinner than the tolerance (1 cm at 1 m) would be. An object that moved on after its
        last sighting before stopping is not recognised either. Call after :meth:`update` with the same window,
        whose ``positions`` were given to it too."""
        out = {}
        for tid, tr in self._tracks.items():
            if tr["age"] == 0 and not tr["resting"]:
                continue  # seen moving in this window
            if tr["c3"] is None or not tr["radius"] or tr.get("points") is None or tr["mask"].shape != dynamic.shape:
                continue
            cand = tr["mask"] & ~dynamic
            n_last = int(tr["mask"].sum())
            if n_last == 0 or cand.sum() < keep_fraction * n_last:
                continue
            P, Q = positions[cand], tr["points"][cand]
            tol = abs_tol + rel_tol * np.abs(Q[:, 2])
            with np.errstate(invalid="ignore"):
                ok = (np.all(np.isfinite(P), axis=1) & np.all(np.isfinite(Q), axis=1)
                      & (np.linalg.norm(P - Q, axis=1) <= tol)
                      & (np.linalg.norm(P - tr["c3"], axis=1) <= 1.2 * tr["radius"]))
            if ok.sum() < max(min_pixels, keep_fraction * n_last):
                continue
            m = np.zeros_like(cand)
            m[np.nonzero(cand)[0][ok], np.nonzero(cand)[1][ok]] = True
            tr.update(mask=m, age=0, resting=True, vel=(0.0, 0.0), v3=np.zeros(3),
                      stamp=None if stamp is None else float(stamp))
            out[tid] = m
        return out
