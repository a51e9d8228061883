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

"""One call for the node: field -> dynamic mask, instance labels, moving objects (with forecasts)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field as dc_field
from typing import List, Optional

import numpy as np

from ..field.camera import default_intrinsics
from ..field.evaluate import evaluate_curves
from ..field.forecast import forecast_curves
from .forecast import ForecastParams, confidence, fit_motion, support_floors, window_omega
from ..field.scale import metric_scale_from_depth
from ..field.timemap import TimeMap, build_time_map
from ..field.types import TrajectoryField
from ..paramspec import from_dict
from .aperture import adopt_motion, aperture_merges, translation_gains
from .mask import dynamic_mask
from .objects import DynamicObject, ObjectTracker, grow_instances, segment_instances


@dataclass
class MotionParams:
    """Parameters of :func:`analyze` (defaults in brackets; ranges checked by :meth:`validate`).

    frame              [-1]     frame whose pixels are analysed (-1 = newest); any index in [-N, N)
    time_map_mode      ["auto"] stamp <-> normalised time map: auto | pwl | affine | stamps
    min_confidence     [0.0]    >= 0; pixels whose confidence (own time) is not above it are never moving
    conf_quantile      [0.0]    in [0, 0.9]; additionally ignore the least confident fraction of pixels
    depth_power        [1.0]    in [0, 2]; displacement is divided by z ** depth_power (noise grows with depth)
    min_z              [1e-3]   > 0; pixels closer than this (or behind) are invalid
    noise_k            [6.0]    in [1, 50]; threshold = median + k * 1.4826 * MAD of the static majority
    min_rel_motion     [0.01]   in [0, 1]; threshold floor (relative displacement over the window) for fields that do
                                not state their own: a field whose estimator measured its noise carries
                                ``extras['motion_floor']`` (model.regimes: the geometric flow field from its flow
                                noise; the depth-aware network, whose gate already decided, 5e-4), which replaces it
    open_radius        [1]      in [0, 10]; morphological opening radius (pixels)
    close_radius       [1]      in [0, 10]; morphological closing radius (pixels)
    min_area           [20]     >= 1; smallest moving region / object in pixels
    min_part_area      [12]     >= 3; smallest rigid part in pixels
    rigid_factor       [1.0]    in (0, 10]; rigid residual tolerance = rigid_factor * mask threshold
    joint_factor       [1.5]    in (0, 20]; parts whose border stays within joint_factor * tolerance merge
    ransac_iters       [48]     in [1, 1000]; hypotheses per rigid part
    ransac_sample      [300]    in [10, 100000]; pixels scoring each hypothesis
    max_parts          [6]      in [1, 32]; rigid parts per connected region
    grow_iters         [4]      in [0, 50]; rings an object may grow into pixels its rigid motion explains
    grow_min_score     [0.5]    in [0, 1]; ... and that moved at least this fraction of the mask threshold (a still
                                pixel is "explained" by a slow object's small motion: vtest's walkers grew into
                                the road around them)
    boundary_max_frac  [0.02]   in [0, 1]; a field that states ``extras['boundary_px']`` (how far its motion evidence
                                reaches past an edge) has objects smaller than this fraction of the frame published
                                without that outer ring (mixed pixels at the field's resolution)
    depth_jump         [0.05]   in (0, 1]; relative depth step that stops that growth (object/background edge)
    aperture_energy    [0.2]    in [0, 1]; with the analysed frame's image given, a part touching a clearly faster
                                part moves with it when that motion runs along its edges: less than this fraction
                                of its image-gradient energy across it (:mod:`motion.aperture`: a textureless link
                                sliding along itself shows no motion to any image-based estimator); 0: off
    aperture_weighting [False]  with the analysed frame's image given, an object's motion is its pixels' motion
                                weighted by what each pixel's surroundings can show (surface normal + image
                                gradient, :func:`motion.aperture.translation_gains`) instead of their plain mean:
                                a gripper's uniform forearm no longer holds the whole gripper's velocity down.
                                Off: object velocities get better but forecasts do not (sim, fresh seeds
                                3061-3076, 345 objects: newest-step velocity error median 0.046 -> 0.034 m/s; moving
                                pixels +0.5 / +1 s 50.3 / 100.7 -> 49.9 / 103.1 mm: the forecasts' hedge had been
                                helped by under-measured grippers that were about to stop)
    forecast_horizon_s [0.5]    > 0; forecast length (clamped to max_forecast_s)
    max_forecast_s     [None]   > 0 or None (= 2 x the longer of the window and forecast_model.history_s)
    forecast_model     [None]   motion.forecast.ForecastParams (or its dict) of the object motion models fitted
                                over the tracker's history (None: its defaults)
    forecast_mode      ["velocity"] velocity | acceleration
    forecast_samples   [5]      in [1, 100]
    use_depth_scale    [True]   scale a non-metric field from the depth image when depth is given
    seed               [0]      RANSAC seed (results are deterministic)
    """

    frame: int = -1
    time_map_mode: str = "auto"
    min_confidence: float = 0.0
    conf_quantile: float = 0.0
    depth_power: float = 1.0
    min_z: float = 1e-3
    noise_k: float = 6.0
    min_rel_motion: float = 0.01
    open_radius: int = 1
    close_radius: int = 1
    min_area: int = 20
    min_part_area: int = 12
    rigid_factor: float = 1.0
    joint_factor: float = 1.5
    ransac_iters: int = 48
    ransac_sample: int = 300
    max_parts: int = 6
    grow_iters: int = 4
    grow_min_score: float = 0.5
    boundary_max_frac: float = 0.02
    depth_jump: float = 0.05
    aperture_energy: float = 0.2
    aperture_weighting: bool = False
    forecast_horizon_s: float = 0.5
    max_forecast_s: Optional[float] = None
    forecast_mode: str = "velocity"
    forecast_samples: int = 5
    forecast_model: Optional[ForecastParams] = None
    use_depth_scale: bool = True
    seed: int = 0

    def validate(self) -> "MotionParams":
        def rng(name, lo, hi, lo_open=False):
            v = getattr(self, name)
            if v is None or not np.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
                raise ValueError(f"MotionParams.{name}={v!r} outside {'(' if lo_open else '['}{lo}, {hi}]")

        rng("min_confidence", 0.0, np.inf)
        rng("conf_quantile", 0.0, 0.9)
        rng("depth_power", 0.0, 2.0)
        rng("min_z", 0.0, np.inf, lo_open=True)
        rng("noise_k", 1.0, 50.0)
        rng("min_rel_motion", 0.0, 1.0)
        rng("open_radius", 0, 10)
        rng("close_radius", 0, 10)
        rng("min_area", 1, 10**7)
        rng("min_part_area", 3, 10**7)
        rng("rigid_factor", 0.0, 10.0, lo_open=True)
        rng("joint_factor", 0.0, 20.0, lo_open=True)
        rng("ransac_iters", 1, 1000)
        rng("ransac_sample", 10, 100000)
        rng("max_parts", 1, 32)
        rng("grow_iters", 0, 50)
        rng("grow_min_score", 0.0, 1.0)
        rng("boundary_max_frac", 0.0, 1.0)
        rng("depth_jump", 0.0, 1.0, lo_open=True)
        rng("aperture_energy", 0.0, 1.0)
        rng("forecast_horizon_s", 0.0, np.inf, lo_open=True)
        rng("forecast_samples", 1, 100)
        if self.max_forecast_s is not None:
            rng("max_forecast_s", 0.0, np.inf, lo_open=True)
        if self.time_map_mode not in ("auto", "pwl", "affine", "stamps"):
            raise ValueError(f"MotionParams.time_map_mode={self.time_map_mode!r}")
        if isinstance(self.forecast_model, dict):
            self.forecast_model = ForecastParams(**self.forecast_model)
        if self.forecast_model is not None:
            self.forecast_model.validate()
        if self.forecast_mode not in ("velocity", "acceleration"):
            raise ValueError(f"MotionParams.forecast_mode={self.forecast_mode!r}")
        for name in ("open_radius", "close_radius", "min_area", "min_part_area", "ransac_iters", "ransac_sample",
                     "max_parts", "grow_iters", "forecast_samples", "frame", "seed"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"MotionParams.{name} must be an integer")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "MotionParams":
        return from_dict(cls, d, "motion").validate()


@dataclass
class MotionResult:
    mask: np.ndarray  # [H, W] bool, analysed frame (the newest by default)
    labels: np.ndarray  # [H, W] int32 instance labels (0 = static)
    objects: List[DynamicObject]
    score: np.ndarray  # [H, W] float32 per-pixel dynamic score (relative displacement over the window)
    threshold: float  # score threshold used
    noise_scale: float  # robust std of the static majority's score
    frame_index: int  # analysed frame (non-negative)
    stamp: float  # its stamp (seconds)
    time_map: TimeMap
    scale: float  # factor applied to the field's units (1.0 unless scaled from depth)
    metric: bool
    valid: np.ndarray  # [H, W] pixels that could be judged
    timings_ms: dict = dc_field(default_factory=dict)
    # [N, H, W, 3] the analysed frame's curves at the window's frame times (time_map.frame_times), scaled by
    # ``scale``: callers that need the same evaluations (sparse tracks) reuse them instead of recomputing
    positions: Optional[np.ndarray] = None
    # tracked objects that stopped moving (not in ``objects``/``labels``): id -> bool [H, W] where they are now
    # (``ObjectTracker.resting``; empty without a tracker)
    resting: dict = dc_field(default_factory=dict)
    # object id -> motion.forecast.ObjectMotion fitted over the object's history (the forecasts' model)
    motion_models: dict = dc_field(default_factory=dict)
    # instance label -> the label whose motion it took (``motion.aperture``: parts whose motion the images could not
    # show); the labels here are already merged
    aperture_merges: dict = dc_field(default_factory=dict)


def _summarise(label, sel, X, ctrl_f, conf_own, score, thr, tm: TimeMap, ref, params, nparts, model, metric,
               image=None, K=None):
    """DynamicObject for the pixels ``sel [H, W]``. With the analysed frame's ``image`` (and ``K``) its motion is
    the information-weighted mean of its pixels' (``aperture.translation_gains``), else their plain mean."""
    H, W = sel.shape
    vv, uu = np.nonzero(sel)
    w = np.maximum(conf_own[sel].astype(np.float64), 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(w.size, 1.0 / w.size)
    Xs = X[:, sel].astype(np.float64)  # [T, m, 3]
    ctrl_s = ctrl_f[:, sel].astype(np.float64)  # [D, m, 3]
    if image is not None and params.aperture_weighting:
        # the centroid stays the pixels' weighted mean; its motion is what their surroundings can show
        G = translation_gains(X[ref], sel, image, K, w)
        c0 = w @ Xs[ref]
        traj = c0 + np.einsum("mij,tmj->ti", G, Xs - Xs[ref][None])
        c_ctrl = c0 + np.einsum("mij,dmj->di", G, ctrl_s - Xs[ref][None])
    else:
        traj = np.einsum("m,tmi->ti", w, Xs)
        # the centroid curve is the weighted mean of the pixel curves (the basis is linear)
        c_ctrl = np.einsum("m,dmi->di", w, ctrl_s)  # [D, 3]
    s_ref = tm.frame_stamps[ref]
    t_ref = tm.frame_times[ref]
    vel = evaluate_curves(c_ctrl, [t_ref], d_axis=0, deriv=1)[0] * float(tm.rate(s_ref))
    fc = forecast_curves(c_ctrl, tm, params.forecast_horizon_s, d_axis=0, mode=params.forecast_mode,
                         num_samples=params.forecast_samples, max_horizon_s=max_forecast_s(tm, params))
    med = float(np.median(score[sel]))
    conf = float(np.clip(1.0 - np.exp(-(med / max(thr, 1e-12) - 1.0)), 0.0, 1.0))
    R, t = model
    invz = 1.0 / np.maximum(Xs[ref, :, 2], 1e-6)
    pred = np.einsum("tij,mj->tmi", R, Xs[ref]) + t[:, None]
    rms = float(np.sqrt(np.mean(((pred - Xs) ** 2).sum(-1) * invz[None] ** 2)))
    return DynamicObject(id=label, label=label, pixel_count=int(sel.sum()),
                         box=(int(uu.min()), int(vv.min()), int(uu.max()), int(vv.max())),
                         centroid=traj[ref].copy(), velocity=vel, speed=float(np.linalg.norm(vel)), trajectory=traj,
                         trajectory_stamps=tm.frame_stamps.copy(), forecast=fc.positions, forecast_stamps=fc.stamps,
                         forecast_confidence=fc.decay * conf, confidence=conf, num_parts=int(nparts),
                         rotations=R, translations=t, rigid_rms=rms, metric=metric,
                         extras={"forecast_clamped": fc.clamped, "forecast_horizon_s": fc.horizon_s})


def max_forecast_s(tm: TimeMap, params: MotionParams) -> float:
    """The forecast horizon's clamp: ``max_forecast_s`` or 2 x the longer of the window and the fitted history."""
    if params.max_forecast_s is not None:
        return float(params.max_forecast_s)
    hist = (params.forecast_model or ForecastParams()).history_s
    return 2.0 * max(tm.duration, hist)


def object_motions(objects: List[DynamicObject], stamp: float, params: MotionParams,
                   tracker: Optional[ObjectTracker] = None, floors: Optional[dict] = None) -> dict:
    """Fit each object's motion model (``motion.forecast.fit_motion``) over its tracked history (or, without a
    tracker, its window) and replace its forecast (centroid moved by the model) and forecast confidence (calibrated,
    ``motion.forecast.confidence``). ``floors``: label -> ``ObjectMotion.floors`` (``motion.forecast.support_floors``).
    Returns id -> ObjectMotion."""
    fp = params.forecast_model or ForecastParams()
    out = {}
    for o in objects:
        hist = tracker.history(o.id) if tracker is not None else None
        if hist is None:
            st = np.asarray(o.trajectory_stamps, np.float64)
            om = (window_omega(o.rotations, st, int(np.argmin(np.abs(st - stamp))))[None]
                  if o.rotations is not None and len(o.rotations) == st.size else None)
            hist = (st, o.trajectory, None, None, om)
        hs, hc, hg, hws, hw = hist
        if hw is not None and hws is not None:
            hw = np.asarray(hw)[np.asarray(hws) >= stamp - fp.history_s - 1e-6]
        m = fit_motion(hs, hc, stamp, centroid=o.centroid, omegas=hw, params=fp, windows=hg)
        m.floors = (floors or {}).get(o.label, ())
        lead = np.asarray(o.forecast_stamps, np.float64) - stamp
        sig = m.sigma(lead)
        o.forecast = np.asarray(o.centroid, np.float64)[None] + m.displacement(lead)
        o.forecast_confidence = confidence(sig, o.centroid[2], fp.tolerance)
        o.extras.update(motion=m, forecast_sigma=sig)
        out[o.id] = m
    return out


def analyze(field: TrajectoryField, depth=None, params: Optional[MotionParams] = None,
            tracker: Optional[ObjectTracker] = None, images=None) -> MotionResult:
    """Dynamic mask, instance labels and moving objects of ``field``'s analysed frame (the newest by default).

    depth: optional ``[N, H, W]`` or ``[H, W]`` (frame 0) depth in metres at the field's resolution; when the
    field is not metric (and ``use_depth_scale``), the field is scaled by the robust depth / z ratio first.
    tracker: an :class:`ObjectTracker` kept by the caller across windows for stable object ids.
    images: optional ``[N, H, W, 3]`` (or the analysed frame's ``[H, W, 3]``) RGB at the field's resolution: parts
    whose motion the images cannot show take the motion of the part they touch (``aperture_energy``).
    A field whose estimator reports ``extras['moving_foreground']`` (``[H, W]`` bool, the newest frame's movers that
    it holds still: a paused hand, a uniform inside; ``model.flow_field``) has those pixels added to the mask when
    the newest frame is analysed.
    """
    p = (params or MotionParams()).validate()
    tic = time.perf_counter()
    timings = {}
    N = field.num_frames
    if not -N <= p.frame < N:
        raise ValueError(f"frame {p.frame} outside a window of {N} frames")
    ref = p.frame % N
    tm = build_time_map(field.stamps, field.frame_times, p.time_map_mode)
    times = tm.frame_times
    ctrl_f = field.ctrl_pts[ref]
    scale, metric = 1.0, bool(field.metric)
    if depth is not None and p.use_depth_scale and not field.metric:
        est = metric_scale_from_depth(field, depth, frame_times=times)
        if est.ok:
            scale, metric = est.scale, True
            ctrl_f = ctrl_f * np.float32(scale)
    X = evaluate_curves(ctrl_f, times, d_axis=0)  # [N, H, W, 3]
    conf_own = evaluate_curves(field.ctrl_conf[ref], [times[ref]], d_axis=0)[0]  # [H, W]
    min_conf = p.min_confidence
    if p.conf_quantile > 0:
        cvals = conf_own[np.isfinite(conf_own)]
        if cvals.size:
            min_conf = max(min_conf, float(np.quantile(cvals, p.conf_quantile)))
    timings["evaluate"] = (time.perf_counter() - tic) * 1e3
    t1 = time.perf_counter()
    # the threshold floor: the field's own measured noise floor where its estimator states one (a geometric
    # field: what its flow noise reaches over the window), else min_rel_motion (the network's, chosen on validation)
    floor = p.min_rel_motion
    mf = field.extras.get("motion_floor") if isinstance(field.extras, dict) else None
    if mf is not None and np.isfinite(mf) and mf > 0:
        floor = float(mf)
    # and how far its motion evidence reaches past a mover's edge (pixels; the flow field pools it over 3 x 3)
    erode = int(field.extras.get("boundary_px", 0) or 0) if isinstance(field.extras, dict) else 0
    mr = dynamic_mask(X, ref, conf_own, min_confidence=min_conf, depth_power=p.depth_power, min_z=p.min_z,
                      noise_k=p.noise_k, min_rel_motion=floor, open_radius=p.open_radius,
                      close_radius=p.close_radius, min_area=p.min_area)
    # movers the field holds still (a pause, a uniform inside) that its estimator reports for the newest frame
    live = field.extras.get("moving_foreground") if isinstance(field.extras, dict) else None
    if live is not None and ref == N - 1 and np.shape(live) == mr.mask.shape:
        mr.mask = mr.mask | (np.asarray(live, bool) & mr.valid)
    timings["mask"] = (time.perf_counter() - t1) * 1e3
    t2 = time.perf_counter()
    tol = p.rigid_factor * mr.threshold
    seg = segment_instances(X, mr.mask, ref, tol, joint_tol=p.joint_factor * tol, min_area=p.min_area,
                            min_part_area=p.min_part_area, ransac_iters=p.ransac_iters,
                            ransac_sample=p.ransac_sample, max_parts=p.max_parts, seed=p.seed)
    grow_into = mr.valid & (mr.score >= p.grow_min_score * mr.threshold) if p.grow_min_score > 0 else mr.valid
    seg = grow_instances(seg, X, grow_into, ref, tol, max_iters=p.grow_iters, depth_jump=p.depth_jump)
    if erode > 0 and seg.parts:
        # small objects' edges pulled in by the evidence's reach: at the field's resolution their outer ring is
        # mostly mixed pixels (vtest's walkers, ~7 x 15 pixels at 128 x 96); large ones keep it (a close hand)
        import cv2
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
        inner = cv2.erode((seg.labels > 0).astype(np.uint8), k).astype(bool)
        big = p.boundary_max_frac * seg.labels.size
        keep = inner | np.isin(seg.labels, [lab for lab in seg.parts if (seg.labels == lab).sum() >= big
                                            or not (inner & (seg.labels == lab)).any()])
        seg.labels = np.where(keep, seg.labels, 0).astype(seg.labels.dtype)
    X_obj, ctrl_obj = X, ctrl_f      # what the objects are summarised from (the field's, unless a part adopts)
    merges = {}
    img = None if images is None else np.asarray(images)
    if img is not None and img.ndim == 4:
        img = img[ref]
    if img is not None and img.shape[:2] != seg.labels.shape:
        img = None
    K = np.asarray(field.intrinsics if field.intrinsics is not None else default_intrinsics(*seg.labels.shape),
                   np.float64)
    if img is not None and p.aperture_energy > 0 and len(seg.parts) > 1:
        merges = aperture_merges(seg.labels, X, ref, img, K, mr.threshold,
                                 max_energy=p.aperture_energy)
        if merges:
            X_obj, ctrl_obj, seg.labels = adopt_motion(X, ctrl_f, seg.labels, merges, ref)
            for a, b in merges.items():
                seg.parts[b] += seg.parts.pop(a)
                seg.models.pop(a, None)
                seg.all_models.pop(a, None)
    timings["segment"] = (time.perf_counter() - t2) * 1e3
    t3 = time.perf_counter()
    objects = []
    for label in sorted(seg.parts):
        sel = seg.labels == label
        objects.append(_summarise(label, sel, X_obj, ctrl_obj, conf_own, mr.score, mr.threshold, tm, ref, p,
                                  seg.parts[label], seg.models[label], metric, image=img, K=K))
    resting = {}
    if tracker is not None:
        for o in objects:  # the object's 3D extent, for recognising it at rest later
            d = np.linalg.norm(X[ref][seg.labels == o.label] - o.centroid, axis=-1)
            d = d[np.isfinite(d)]
            o.extras["radius"] = float(np.percentile(d, 90)) if d.size else None
        j = tracker.shared_frame(field.stamps)  # the image analysed last time: align the tracks' histories on it
        if j is not None:
            tracker.align_history(X[ref] if j == ref else evaluate_curves(
                field.ctrl_pts[j] * np.float32(scale), [times[j]], d_axis=0)[0])
        tracker.update(seg.labels, objects, stamp=float(field.stamps[ref]), positions=X[ref])
        resting = tracker.resting(seg.labels > 0, X[ref], stamp=float(field.stamps[ref]))
    fp = p.forecast_model or ForecastParams()
    floors = support_floors(X[ref], seg.labels, fp, seed=p.seed) if depth is not None and fp.support_plane else {}
    models = object_motions(objects, float(field.stamps[ref]), p, tracker, floors)
    timings["objects"] = (time.perf_counter() - t3) * 1e3
    timings["total"] = (time.perf_counter() - tic) * 1e3
    return MotionResult(mask=seg.labels > 0, labels=seg.labels, objects=objects, score=mr.score,
                        threshold=mr.threshold, noise_scale=mr.noise_scale, frame_index=ref,
                        stamp=float(field.stamps[ref]), time_map=tm, scale=scale, metric=metric, valid=mr.valid,
                        timings_ms=timings, positions=X, resting=resting, motion_models=models,
                        aperture_merges=merges)
