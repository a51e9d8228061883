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

"""Robust, confidence-weighted rigid fits (Kabsch / Umeyama without scale) of an object's points over time.

``fit_rigid(P, Q, w)`` finds ``T`` with ``Q ~= R P + t``:

1. RANSAC over minimal 3-point samples (a fixed number of hypotheses, scored by the confidence-weighted count of
   points within ``inlier_threshold``; scoring runs on a random subset of at most ``score_points`` points),
2. refit on the inliers of the best hypothesis with the confidence weights (``refit_iterations`` times,
   re-selecting inliers each time),
3. gating: the fit is ``ok`` only if the inlier ratio is >= ``min_inlier_ratio`` and the weighted inlier rms
   residual is <= ``max_rms``,
4. translation-only fallback (R = I, robust mean displacement) when there are fewer than ``min_points`` usable
   points or the (inlier) points are degenerate -- collinear or coincident: the second singular value of their
   spread is below ``degenerate_ratio`` times the first -- so the rotation is not observable.

``fit_rigid_sequence(points [T, M, 3], weights [T, M])`` fits frame 0 -> frame k for every k in one batched
pass (all frames and hypotheses are vectorised: no Python loop over frames or hypotheses).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from trace_anything_ros.field.rigid import kabsch_shared as _kabsch_shared, weighted_kabsch  # noqa: F401 (one home)


@dataclass(frozen=True)
class FitParams:
    inlier_threshold: float = 0.01      # residual (field units, metres when metric) below which a point is inlier
    ransac_iterations: int = 64         # minimal-sample hypotheses per fit
    score_points: int = 128             # hypotheses are scored on at most this many points
    refit_iterations: int = 1           # weighted refits on the inliers (re-selected after each)
    min_inlier_ratio: float = 0.5       # gate: fraction of usable points that must be inliers
    max_rms: float = 0.01               # gate: weighted rms residual of the inliers
    min_points: int = 6                 # fewer usable points: translation-only fallback
    degenerate_ratio: float = 0.05      # sv2 / sv1 of the point spread below this: translation-only fallback
    seed: int = 0                       # RANSAC sampling seed (deterministic plans)

    def validate(self) -> "FitParams":
        if not self.inlier_threshold > 0:
            raise ValueError("inlier_threshold must be > 0")
        if not 1 <= self.ransac_iterations <= 10000:
            raise ValueError("ransac_iterations must be in [1, 10000]")
        if not self.score_points >= 3:
            raise ValueError("score_points must be >= 3")
        if not 0 <= self.refit_iterations <= 10:
            raise ValueError("refit_iterations must be in [0, 10]")
        if not 0.0 <= self.min_inlier_ratio <= 1.0:
            raise ValueError("min_inlier_ratio must be in [0, 1]")
        if not self.max_rms > 0:
            raise ValueError("max_rms must be > 0")
        if not self.min_points >= 3:
            raise ValueError("min_points must be >= 3")
        if not 0.0 <= self.degenerate_ratio < 1.0:
            raise ValueError("degenerate_ratio must be in [0, 1)")
        return self


@dataclass
class RigidFit:
    """One rigid fit ``Q ~= T[:3,:3] @ P + T[:3,3]`` with its diagnostics."""

    T: np.ndarray                  # 4x4
    inlier_ratio: float            # inliers / usable points (weight > 0)
    rms: float                     # weighted rms residual over the inliers
    used_fallback: bool            # translation-only fit
    ok: bool                       # passed the gates
    reason: str = ""               # why not ok / why the fallback was used
    inliers: Optional[np.ndarray] = field(default=None, repr=False)  # bool [M]

    @property
    def R(self) -> np.ndarray:
        return self.T[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T[:3, 3]


def finite_rows(X):
    """``isfinite(X).all(-1)`` for [..., 3] without a slow reduction over a trailing axis of 3."""
    return np.isfinite(X[..., 0] + X[..., 1] + X[..., 2])


def _cross(a, b):
    """np.cross for [..., 3] without its generic-axis overhead."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def _triangle_frames(X):
    """Orthonormal frames (columns: first edge, in-plane normal, plane normal) and centroids of triangles
    ``X [..., 3, 3]`` (points along axis -2)."""
    e1 = X[..., 1, :] - X[..., 0, :]
    e2 = X[..., 2, :] - X[..., 0, :]
    n = _cross(e1, e2)
    a = e1 / np.maximum(np.sqrt(e1[..., 0] ** 2 + e1[..., 1] ** 2 + e1[..., 2] ** 2), 1e-12)[..., None]
    n = n / np.maximum(np.sqrt(n[..., 0] ** 2 + n[..., 1] ** 2 + n[..., 2] ** 2), 1e-12)[..., None]
    b = _cross(n, a)
    return np.stack([a, b, n], axis=-1), (X[..., 0, :] + X[..., 1, :] + X[..., 2, :]) / 3.0


def _triangle_hypotheses(P, Q):
    """Rigid transforms from minimal samples ``P [K, 3, 3]``, ``Q [F, K, 3, 3]`` (3 points each) without an
    SVD: the orthonormal frames of the two triangles are aligned. Exact for noise-free data; noisy samples only
    seed RANSAC (the refit is a weighted least-squares Kabsch). Degenerate triangles give junk hypotheses that
    score low."""
    Fp, cp = _triangle_frames(P)
    Fq, cq = _triangle_frames(Q)
    R = Fq @ np.swapaxes(Fp, -1, -2)[None]
    t = cq - (R @ cp[None, :, :, None])[..., 0]
    return R, t


def _spread_ratio_shared(P_outer, P, w):
    """sv2 / sv1 of the spread of the shared points ``P [M, 3]`` under per-frame weights ``w [F, M]`` (one GEMM
    with the precomputed outer products ``P_outer [M, 9]``). 0 for coincident points."""
    ws = w.sum(-1, keepdims=True)
    wn = w / np.where(ws > 0, ws, 1.0)
    c = wn @ P  # [F, 3]
    C = (wn @ P_outer).reshape(-1, 3, 3) - c[:, :, None] * c[:, None, :]
    ev = np.linalg.eigvalsh(C)  # ascending
    s1 = np.sqrt(np.maximum(ev[..., 2], 0.0))
    s2 = np.sqrt(np.maximum(ev[..., 1], 0.0))
    return np.where(s1 > 1e-12, s2 / np.where(s1 > 1e-12, s1, 1.0), 0.0)


def _to_T(R, t):
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def _translation_only(P, Q, w, thr):
    """Robust translation: per-axis median displacement, then weighted mean over points within thr. [F]."""
    d = Q - P[None]  # [F, M, 3]
    valid = w > 0
    dm = np.where(valid[..., None], d, np.nan)
    med = np.nanmedian(dm, axis=1)  # [F, 3]
    med = np.where(np.isnan(med), 0.0, med)
    inl = valid & (np.linalg.norm(d - med[:, None], axis=-1) < thr)
    wi = w * inl
    s = wi.sum(-1)
    t = np.where(s[:, None] > 0, (wi[..., None] * d).sum(1) / np.where(s > 0, s, 1.0)[:, None], med)
    return t, inl


def fit_rigid_pairs(P, Q, w=None, params: FitParams = FitParams()) -> List[RigidFit]:
    """Fit one rigid transform P -> Q[f] per frame f. ``P [M, 3]``, ``Q [F, M, 3]``, ``w [F, M]`` (pairwise
    confidence, 0 = unusable; default 1). Returns F ``RigidFit``s."""
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if Q.ndim == 2:
        Q = Q[None]
    F, M, _ = Q.shape
    if P.shape != (M, 3):
        raise ValueError(f"P must be [M, 3] matching Q [F, M, 3], got {P.shape} and {Q.shape}")
    w = np.ones((F, M)) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float64), (F, M)).copy()
    fin_p, fin_q = finite_rows(P), finite_rows(Q)
    w = np.where(fin_p[None] & fin_q & (w > 0), w, 0.0)
    if not fin_p.all():
        P = np.where(fin_p[:, None], P, 0.0)
    if not fin_q.all():
        Q = np.where(fin_q[..., None], Q, 0.0)
    valid = w > 0
    n_valid = valid.sum(-1)  # [F]
    thr = params.inlier_threshold

    if M == 0 or not n_valid.any():
        return [RigidFit(np.eye(4), 0.0, float("inf"), True, False, "no usable points", np.zeros(M, bool))
                for _ in range(F)]

    rng = np.random.default_rng(params.seed)
    K = params.ransac_iterations
    # Minimal samples drawn among points usable in every frame where possible (weighted by mean confidence).
    wmean = w.mean(0)
    prob = wmean / wmean.sum() if wmean.sum() > 0 else None
    idx = rng.choice(M, size=(K, 3), p=prob) if M >= 3 else np.zeros((K, 3), dtype=np.int64)
    R_h, t_h = _triangle_hypotheses(P[idx], Q[:, idx])  # [F, K, 3, 3], [F, K, 3]
    S = min(M, params.score_points)
    sub = rng.choice(M, size=S, replace=False) if S < M else np.arange(M)
    # Component-major float32 scoring: one GEMM [F*K*3, 3] @ [3, S] -> [F, K, 3, S]; squared norms as three
    # contiguous products (numpy reductions over a trailing axis of length 3 are slow).
    Ps = np.ascontiguousarray(P[sub].T, dtype=np.float32)  # [3, S]
    d = (R_h.reshape(F * K * 3, 3).astype(np.float32) @ Ps).reshape(F, K, 3, S)
    d += t_h.astype(np.float32)[..., None]
    d -= np.ascontiguousarray(np.swapaxes(Q[:, sub], 1, 2), dtype=np.float32)[:, None]
    np.square(d, out=d)
    res2 = d[:, :, 0] + d[:, :, 1] + d[:, :, 2]  # [F, K, S]
    score = ((res2 < np.float32(thr * thr)).astype(np.float32) @ w[:, sub, None].astype(np.float32))[..., 0]
    best = score.argmax(-1)
    fr = np.arange(F)
    R = R_h[fr, best]
    t = t_h[fr, best]

    Pt = np.ascontiguousarray(P.T)  # [3, M]
    Qt = np.ascontiguousarray(np.swapaxes(Q, 1, 2))  # [F, 3, M]

    def residuals(R, t):  # [F, M]
        d = (R.reshape(F * 3, 3) @ Pt).reshape(F, 3, M)
        d += t[..., None]
        d -= Qt
        np.square(d, out=d)
        return np.sqrt(d[:, 0] + d[:, 1] + d[:, 2])

    inl = valid & (residuals(R, t) < thr)
    for _ in range(params.refit_iterations):
        wi = w * inl
        ok_frames = wi.sum(-1) > 0
        R, t = _kabsch_shared(P, Pt, Q, Qt, np.where(ok_frames[:, None], wi, w))
        inl = valid & (residuals(R, t) < thr)

    # Degeneracy on the inlier set (or all usable points when there are too few inliers).
    use = np.where((inl.sum(-1) >= 3)[:, None], inl, valid)
    spread = _spread_ratio_shared((P[:, :, None] * P[:, None, :]).reshape(M, 9), P, w * use)
    n_use = use.sum(-1)
    fallback = (n_valid < params.min_points) | (spread < params.degenerate_ratio) | (n_use < 3)
    if fallback.any():
        t_f, inl_f = _translation_only(P, Q[fallback], w[fallback], thr)
        R = R.copy()
        t = t.copy()
        R[fallback] = np.eye(3)
        t[fallback] = t_f
        inl = inl.copy()
        inl[fallback] = inl_f

    res = residuals(R, t)
    wi = w * inl
    sw = wi.sum(-1)
    rms = np.where(sw > 0, np.sqrt((wi * res**2).sum(-1) / np.where(sw > 0, sw, 1.0)), np.inf)
    ratio = np.where(n_valid > 0, inl.sum(-1) / np.maximum(n_valid, 1), 0.0)

    T = _to_T(R, t)
    out = []
    for f in range(F):
        reasons = []
        if fallback[f]:
            if n_valid[f] < params.min_points:
                reasons.append(f"translation-only fallback: {int(n_valid[f])} usable points < {params.min_points}")
            else:
                reasons.append(f"translation-only fallback: degenerate points (spread ratio {spread[f]:.3f} < "
                               f"{params.degenerate_ratio})")
        ok = True
        if n_valid[f] == 0:
            ok = False
            reasons.append("no usable points")
        if ratio[f] < params.min_inlier_ratio:
            ok = False
            reasons.append(f"inlier ratio {ratio[f]:.2f} < {params.min_inlier_ratio}")
        if not rms[f] <= params.max_rms:
            ok = False
            reasons.append(f"rms residual {rms[f]:.4f} > {params.max_rms}")
        out.append(RigidFit(T[f], float(ratio[f]), float(rms[f]), bool(fallback[f]), ok, "; ".join(reasons),
                            inl[f]))
    return out


def fit_rigid(P, Q, w=None, params: FitParams = FitParams()) -> RigidFit:
    """Single robust fit ``Q ~= R P + t`` (P, Q [M, 3], w [M])."""
    Q = np.asarray(Q, dtype=np.float64)
    w = None if w is None else np.asarray(w, dtype=np.float64)[None]
    return fit_rigid_pairs(P, Q[None], w, params)[0]


def fit_rigid_sequence(points, weights=None, params: FitParams = FitParams(), reference: int = 0) -> List[RigidFit]:
    """Rigid motion of one object over time: ``points [T, M, 3]`` (the same M physical points at T times, e.g.
    the object's curves evaluated at T times), ``weights [T, M]`` -> T fits mapping the reference frame's points
    to frame k's (the fit of the reference frame itself is the identity). The pair weight is
    ``sqrt(w_ref * w_k)``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"points must be [T, M, 3], got {pts.shape}")
    T, M, _ = pts.shape
    w = np.ones((T, M)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(T, M)
    w = np.clip(w, 0.0, None)
    others = [k for k in range(T) if k != reference]
    fits = fit_rigid_pairs(pts[reference], pts[others], np.sqrt(w[reference][None] * w[others]), params) \
        if others else []
    n_valid = int((w[reference] > 0).sum())
    ident = RigidFit(np.eye(4), 1.0 if n_valid else 0.0, 0.0, False, n_valid > 0, "" if n_valid else
                     "no usable points", w[reference] > 0)
    out = list(fits)
    out.insert(reference, ident)
    return out
