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

"""PerceptionPipeline: a window of frames -> field + tracks + dynamic mask + objects (+ forecasts). ROS-free.

Shared by the ROS node (``ros/trajectory_field_node.py``) and the offline ``process`` command. The only model
call is ``FieldEstimator.predict``; field/motion calls go through ``pipeline.fieldops``.
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass, field as dc_field
from typing import Callable, List, Optional, Sequence

import numpy as np

from trace_anything_ros.field.timemap import stamp_time_map
from trace_anything_ros.field.types import TrajectoryField
from trace_anything_ros.model.preprocess import pixel_transform
from trace_anything_ros.paramspec import param, validate_fields

from . import fieldops
from .frames import STALE_RESET, Frame, FrameIngest
from .poses import relative_to_first

log = logging.getLogger(__name__)


@dataclass
class PipelineParams:
    """What the pipeline derives from a field. Documentation and valid ranges live in each field's ``param()``
    metadata (``paramspec``); the perception node declares the matching parameters (``ros/params.py``,
    ``PIPELINE_PARAMETERS``) from it."""

    track_stride: int = param(16, "grid spacing (model pixels) of ~/tracks (0: no tracks)", range=(0, 1024))
    track_source_frame: int = param(-1, "window frame whose pixels are tracked (-1: newest)", range=(-64, 63))
    tracks_per_object: int = param(16, "extra tracks on each moving object's pixels, up to this many per object "
                                   "with the grid's (small objects get few grid points; a planner needs several; "
                                   "0: grid only)", range=(0, 4096))
    forecast_horizon: float = param(1.0, "seconds to forecast past the newest frame", range=(0.0, 30.0))
    forecast_samples: int = param(5, "forecast samples over the horizon (0: no forecast)", range=(0, 100))
    forecast_history: float = param(0.5, "seconds of each tracked object's centroid history its motion model is "
                                    "fitted on (motion.forecast)", range=(0.05, 10.0))
    forecast_tolerance: float = param(0.05, "forecast confidence = probability that the error is below this x depth "
                                      "(under the motion model's predicted error, which grows with lead time)",
                                      range=(0.001, 1.0))
    metric_from_depth: bool = param(True, "scale the field to metres when depth is given")
    motion_threshold: float = param(0.01, "floor of the relative displacement over the window that counts as "
                                    "moving", range=(0.0, 10.0))
    min_object_pixels: int = param(20, "smallest object in model-grid pixels", range=(1, 1 << 24))
    compute_motion: bool = param(True, "run motion analysis (dynamic mask, objects)")
    pose_max_gap: float = param(0.05, "a frame without a camera pose within this many seconds (interpolated "
                                "between the two around it) runs its window as if the camera were static, and is "
                                "counted; the worker waits up to this long for the newest frame's pose",
                                range=(0.0, 1.0))

    def validate(self) -> "PipelineParams":
        return validate_fields(self)


@dataclass
class Tracks:
    ids: np.ndarray            # [M] uint32
    source_frame: int
    uv: np.ndarray             # [M, 2] float32 source-image pixel coordinates (u column, v row)
    object_id: np.ndarray      # [M] int32, -1 none
    dynamic: np.ndarray        # [M] bool
    confidence: np.ndarray     # [M] float32
    ctrl: np.ndarray           # [M, D, 3]
    ctrl_conf: np.ndarray      # [M, D]
    positions: np.ndarray      # [M, N, 3] at the window's frame stamps
    forecast: np.ndarray       # [M, F, 3]
    forecast_conf: np.ndarray  # [M, F]

    def __len__(self):
        return int(self.ids.shape[0])


@dataclass
class ObjectSummary:
    id: int
    pixel_count: int           # source-image pixels (grid count scaled by the area ratio)
    roi: tuple                 # (x, y, w, h) in source-image pixels
    centroid: np.ndarray       # [3] at the newest frame
    velocity: np.ndarray       # [3] units / s
    confidence: float
    trajectory: np.ndarray     # [N, 3] at the frame stamps
    forecast: np.ndarray       # [F, 3]
    forecast_conf: np.ndarray  # [F]
    forecast_stamps_ns: List[int] = dc_field(default_factory=list)


@dataclass
class Products:
    field: TrajectoryField
    scale: float                        # factor applied to the network output (1.0 when not metric)
    frame_ids: List[str]
    stamps_ns: List[int]                # the window's frame stamps, oldest first
    source_size: tuple                  # (H, W) of the source images
    mask: Optional[np.ndarray] = None   # bool [H, W] model grid, newest frame
    labels: Optional[np.ndarray] = None  # uint16 [H, W] model grid, newest frame
    objects: List[ObjectSummary] = dc_field(default_factory=list)
    tracks: Optional[Tracks] = None
    forecast_stamps_ns: List[int] = dc_field(default_factory=list)
    timings: dict = dc_field(default_factory=dict)  # seconds: model, post, total
    motion_source: str = ""
    window_keys: List[int] = dc_field(default_factory=list)
    arrival: float = 0.0                # monotonic arrival time of the newest frame
    camera_motion: str = ""             # "" (not asked), "poses" (camera poses given to the model) or why not
    regime: str = ""                    # the estimator's input regime for this window (model.regimes), "" if none
    estimator_warnings: List[str] = dc_field(default_factory=list)  # inputs the estimator missed (named)
    # forecasts: object id -> motion.forecast.ObjectMotion (fitted over the tracked history), their parameters and
    # the window's duration (s); ``forecast_pixels`` applies them to any points of the newest frame
    motion_models: dict = dc_field(default_factory=dict)
    forecast_params: object = None
    window_s: float = 0.0

    def forecast_pixels(self, points, object_ids, lead, near_ids=None):
        """Points ``[M, 3]`` of the newest frame (this window's frame, ``object_ids [M]`` as in ``labels``)
        ``lead [K]`` s ahead, as the tracks are: ``(positions [M, K, 3], sigma [M, K], confidence [M, K])``.
        ``near_ids [M]``: the object next to each point of none (``near_objects()`` at the points' pixels)."""
        return fieldops.forecast_points(points, object_ids, self.motion_models, lead, self.window_s,
                                        self.forecast_params, near_ids)

    def near_objects(self):
        """``[H, W]`` (model grid, newest frame): the object id next to each pixel of no object (its rim, within
        the forecast parameters' ``rim_px``), else -1; all -1 without labels."""
        if self.labels is None:
            return np.full(self.field.ctrl_pts.shape[2:4], -1, np.int64)
        return fieldops.near_objects(self.labels, self.forecast_params)


def load_estimator(factory: str = "", params: Optional[dict] = None):
    """Create a FieldEstimator: ``factory`` is ``"module:function"`` taking one dict of parameters (default
    ``trace_anything_ros.model.engine:create_estimator``; keys: engine, device, dtype, weights, preset,
    input_size, window, ...)."""
    spec = factory or "trace_anything_ros.model.engine:create_estimator"
    if ":" not in spec:
        raise ValueError(f"estimator factory must be 'module:function', got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    fn = getattr(importlib.import_module(mod_name), fn_name)
    return fn(dict(params or {}))


def _object_samples(masks, rows: np.ndarray, cols: np.ndarray, per_object: int):
    """The track grid (``rows``, ``cols``) plus, for each object mask ``[H, W]``, pixels of the object not on the grid,
    evenly spaced in raster order, until the object has ``per_object`` tracks (or all its pixels)."""
    extra_r, extra_c = [rows], [cols]
    if not masks:
        return rows, cols
    on_grid = np.zeros(masks[0].shape, bool)
    on_grid[rows, cols] = True
    for obj in masks:
        rr, cc = np.nonzero(obj & ~on_grid)
        k = min(per_object - int((obj & on_grid).sum()), rr.size)
        if k > 0:
            idx = np.unique(np.linspace(0, rr.size - 1, k).round().astype(np.int64))
            extra_r.append(rr[idx])
            extra_c.append(cc[idx])
    return np.concatenate(extra_r), np.concatenate(extra_c)


def _grid_to_src(to_src: np.ndarray, u, v):
    """Model-grid pixel coordinates -> source-image pixel coordinates (pixel-centre convention)."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return (to_src[0, 0] * u + to_src[0, 1] * v + to_src[0, 2], to_src[1, 0] * u + to_src[1, 1] * v + to_src[1, 2])


def _stamps_ns(stamps_s, newest_ns: int, newest_s: float) -> List[int]:
    """Forecast stamps in integer ns, anchored on the newest frame's exact stamp."""
    return [int(newest_ns + round((float(s) - newest_s) * 1e9)) for s in np.asarray(stamps_s).reshape(-1)]


class PerceptionPipeline:
    """Turns one window (list of Frames, oldest first) into Products by calling the estimator and field/motion."""

    def __init__(self, estimator, params: Optional[PipelineParams] = None, poses=None):
        """``poses``: a ``poses.PoseBuffer`` of the camera (moving cameras); a depth-aware model then gets each
        window's camera motion."""
        self.estimator = estimator
        self.params = params or PipelineParams()
        self.poses = poses
        self._tracker = fieldops.object_tracker()  # stable object ids across consecutive windows

    def reset(self) -> None:
        """Forget cross-window state (object ids), e.g. after a time reset."""
        self._tracker = fieldops.object_tracker()

    def warmup(self, num_frames: int) -> float:
        """One predict on black frames (allocations, JIT, caches). Returns its duration in seconds."""
        h, w = self.estimator.input_size
        t0 = time.perf_counter()
        if hasattr(self.estimator, "warmup"):  # a regime estimator warms every estimator it may run
            self.estimator.warmup(num_frames)
        else:
            self.estimator.predict(np.zeros((num_frames, h, w, 3), np.uint8))
        return time.perf_counter() - t0

    # products a caller may ask for (``process(..., products=...)``); the field is always made
    PRODUCTS = frozenset({"field", "tracks", "mask", "objects", "markers"})

    def process(self, frames: Sequence[Frame], products: Optional[set] = None) -> Products:
        """``products``: the outputs somebody consumes (subset of ``PRODUCTS``; None = all). Motion analysis runs
        only when mask / objects / markers / tracks are wanted, sparse tracks only for tracks / markers."""
        p = self.params
        want = self.PRODUCTS if products is None else set(products)
        want_motion = p.compute_motion and bool(want & {"mask", "objects", "markers", "tracks"})
        want_tracks = p.track_stride > 0 and bool(want & {"tracks", "markers"})
        start_mono = time.monotonic()  # the worker took the window: arrival -> here is queue wait
        camera_motion = ""
        t_start = time.perf_counter()
        n = len(frames)
        rgb = np.stack([f.rgb for f in frames])
        have_depth = all(f.depth is not None for f in frames)
        depth = np.stack([f.depth for f in frames]) if have_depth else None
        t0 = time.perf_counter()
        # an estimator that declares ``needs_stamps`` (the sim ground-truth oracle) also gets the header stamps
        extra = {"stamps_ns": [int(f.stamp_ns) for f in frames]} if getattr(self.estimator, "needs_stamps",
                                                                            False) else {}
        # a depth-aware model (``needs_intrinsics``) also gets the reference frame's K on the model grid (or None)
        if getattr(self.estimator, "needs_intrinsics", False):
            extra["intrinsics"] = None if frames[0].intrinsics is None else np.asarray(frames[0].intrinsics)
            extra["times"] = stamp_time_map(np.asarray([f.stamp_ns for f in frames], np.float64) * 1e-9
                                            ).frame_times.astype(np.float32)      # and the frames' measured times
            if self.poses is not None:  # and the camera's motion, when poses cover every frame
                P, why = self.poses.lookup([f.stamp_ns for f in frames], p.pose_max_gap, wait=p.pose_max_gap)
                camera_motion = "poses" if P is not None else why
                if P is not None:
                    extra["cam_poses"] = relative_to_first(P)
        pred = self.estimator.predict(rgb, frame_keys=[f.key for f in frames], depth=depth, **extra)
        t_model = time.perf_counter() - t0

        stamps_ns = [int(f.stamp_ns) for f in frames]
        stamps = np.asarray(stamps_ns, dtype=np.float64) * 1e-9
        ref = frames[0]
        ctrl = np.asarray(pred.ctrl_pts, dtype=np.float32)
        extras = dict(getattr(pred, "extras", None) or {})  # what the estimator measured (regime, noise floor)
        fld = TrajectoryField(ctrl_pts=ctrl, ctrl_conf=np.asarray(pred.ctrl_conf, dtype=np.float32),
                              frame_times=np.asarray(pred.frame_times, dtype=np.float32), stamps=stamps - 0.0,
                              intrinsics=None if ref.intrinsics is None else np.asarray(ref.intrinsics, np.float64),
                              metric=bool(getattr(pred, "metric", False)), frame_id=ref.frame_id, extras=extras)
        scale = 1.0
        if p.metric_from_depth and depth is not None and not fld.metric:
            s = fieldops.depth_scale(fld, depth)
            if s is not None:
                scale = s
                fld = fieldops.apply_scale(fld, s)
        tmap = fieldops.time_map(stamps, fld.frame_times)
        frame_t = np.asarray(tmap.frame_times, np.float64)
        out = Products(field=fld, scale=scale, frame_ids=[f.frame_id for f in frames], stamps_ns=stamps_ns,
                       source_size=tuple(frames[-1].source_size), window_keys=[f.key for f in frames],
                       arrival=frames[-1].arrival, camera_motion=camera_motion,
                       regime=str(extras.get("regime", "")),
                       estimator_warnings=list(getattr(self.estimator, "last_warnings", None) or []))
        do_forecast = p.forecast_samples > 0 and p.forecast_horizon > 0
        out.forecast_params = fieldops.forecast_params(p.forecast_history, p.forecast_tolerance, p.motion_threshold)
        out.window_s = float(stamps[-1] - stamps[0])

        src_h, src_w = out.source_size
        h, w = fld.height, fld.width
        # model grid -> source pixels: the inverse of the arrival preprocessing (resize factor + top-left crop)
        to_src = np.linalg.inv(pixel_transform((src_h, src_w), (h, w))) if src_h and src_w else np.eye(3)
        area_ratio = abs(float(np.linalg.det(to_src[:2, :2])))

        motion = None
        if want_motion:
            mp = fieldops.motion_params(p.motion_threshold, p.min_object_pixels, p.forecast_horizon,
                                        p.forecast_samples, forecast=out.forecast_params)
            motion = fieldops.analyze_motion(fld, depth, mp, self._tracker, images=rgb)
            out.motion_models = dict(motion.motion_models)
            lut = np.zeros(int(motion.labels.max()) + 1 if motion.labels.size else 1, np.uint16)
            for o in motion.objects:
                lut[o.label] = o.id
            out.mask = np.asarray(motion.mask, bool)
            out.labels = lut[motion.labels]  # instance labels renamed to the (tracked) object ids
            out.motion_source = "motion.analyze"
            for o in motion.objects:
                u0, v0, u1, v1 = o.box
                cu, cv = _grid_to_src(to_src, np.array([u0 - 0.5, u1 + 0.5, u0 - 0.5, u1 + 0.5]),
                                      np.array([v0 - 0.5, v0 - 0.5, v1 + 0.5, v1 + 0.5]))
                x0, y0 = int(np.floor(cu.min() + 0.5)), int(np.floor(cv.min() + 0.5))
                out.objects.append(ObjectSummary(
                    id=int(o.id), pixel_count=int(round(o.pixel_count * area_ratio)),
                    roi=(x0, y0, int(round(cu.max() + 0.5)) - x0, int(round(cv.max() + 0.5)) - y0),
                    centroid=np.asarray(o.centroid, np.float64), velocity=np.asarray(o.velocity, np.float64),
                    confidence=float(o.confidence), trajectory=np.asarray(o.trajectory, np.float64),
                    forecast=np.asarray(o.forecast, np.float64) if do_forecast else np.zeros((0, 3)),
                    forecast_conf=np.asarray(o.forecast_confidence, np.float32) if do_forecast else np.zeros(0),
                    forecast_stamps_ns=(_stamps_ns(o.forecast_stamps, stamps_ns[-1], stamps[-1])
                                        if do_forecast else [])))

        if want_tracks:
            src = p.track_source_frame % n
            st = p.track_stride
            rows, cols = np.meshgrid(np.arange(st // 2, h, st), np.arange(st // 2, w, st), indexing="ij")
            rows, cols = rows.ravel(), cols.ravel()
            if motion is not None and src == n - 1 and p.tracks_per_object > 0:
                rows, cols = _object_samples([motion.labels == o.label for o in motion.objects]
                                             + list(motion.resting.values()), rows, cols, p.tracks_per_object)
            c = fld.ctrl_pts[src][:, rows, cols, :].transpose(1, 0, 2)   # [M, D, 3]
            cc = fld.ctrl_conf[src][:, rows, cols].T                     # [M, D]
            if (motion is not None and motion.positions is not None and motion.frame_index == src
                    and motion.scale == 1.0 and np.array_equal(motion.time_map.frame_times, frame_t)):
                # motion.analyze already evaluated every pixel's curve at the frame times: reuse them
                positions = motion.positions[:, rows, cols, :].transpose(1, 0, 2)  # [M, N, 3]
            else:
                positions = fieldops.evaluate(c, frame_t, d_axis=1)           # [M, N, 3]
            if motion is not None and src == n - 1:
                dyn = motion.mask[rows, cols]
                oid = out.labels[rows, cols].astype(np.int32)  # the objects' (tracked) ids, as in ~/dynamic_objects
                oid[oid == 0] = -1
                for rid, m in motion.resting.items():  # objects that stopped: their id, not dynamic
                    oid[m[rows, cols] & (oid < 0)] = rid
            else:
                dyn = np.zeros(rows.size, bool)
                oid = np.full(rows.size, -1, np.int32)
            if do_forecast:
                # each track moves with its object's motion model (fitted over the object's history), the others
                # hold still; confidence = P(error < tolerance x depth) under the model's predicted error
                fst = fieldops.forecast_stamps(tmap, p.forecast_horizon, p.forecast_samples,
                                               max(2.0 * out.window_s, 2.0 * p.forecast_history))
                newest = src == n - 1
                forecast, _, f_conf = out.forecast_pixels(
                    positions[:, -1], oid if newest else np.full(rows.size, -1), fst - stamps[-1],
                    out.near_objects()[rows, cols] if newest else None)
                out.forecast_stamps_ns = _stamps_ns(fst, stamps_ns[-1], stamps[-1])
            else:
                forecast = np.zeros((rows.size, 0, 3), np.float32)
                f_conf = np.zeros((rows.size, 0), np.float32)
            out.tracks = Tracks(
                ids=np.arange(rows.size, dtype=np.uint32), source_frame=src,
                uv=np.stack(_grid_to_src(to_src, cols, rows), axis=1).astype(np.float32),
                object_id=oid, dynamic=dyn, confidence=cc.mean(axis=1).astype(np.float32),
                ctrl=c.astype(np.float32), ctrl_conf=cc.astype(np.float32), positions=positions.astype(np.float32),
                forecast=forecast.astype(np.float32),
                forecast_conf=np.ascontiguousarray(f_conf, dtype=np.float32))
        t_end = time.perf_counter()
        out.timings = dict(model=t_model, post=t_end - t0 - t_model, total=t_end - t_start, start_mono=start_mono)
        return out


class WindowWorker:
    """The worker thread: takes the newest complete window from a FrameIngest, runs the pipeline, hands the
    products to ``on_result``. Windows superseded while it is busy are dropped and counted by the ingest."""

    def __init__(self, ingest: FrameIngest, pipeline: PerceptionPipeline,
                 on_result: Callable[[Products], None],
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 name: str = "perception-worker", products: Optional[Callable[[], Optional[set]]] = None):
        self.ingest = ingest
        self.pipeline = pipeline
        self.on_result = on_result
        self.on_error = on_error
        self.products = products  # callable -> the products wanted now (None: all), asked once per window
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.processed = 0
        self.failures = 0
        self.busy = False
        self.last_window: Optional[List[Frame]] = None  # context for on_error
        self._generation = ingest.generation

    def start(self) -> "WindowWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.ingest.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self):
        while not self._stop.is_set():
            win = self.ingest.take_window(timeout=0.1)
            if win is None or self._stop.is_set():
                continue
            self.busy = True
            self.last_window = win
            gen = self.ingest.taken_generation
            if gen != self._generation:  # the stream was reset (time jump, size change): forget object ids
                self._generation = gen
                self.pipeline.reset()
            try:
                want = self.products() if self.products is not None else None
                products = self.pipeline.process(win) if want is None else self.pipeline.process(win, want)
                if self.ingest.generation != gen:  # reset while the model ran: a window of the old timeline
                    self.ingest.drops.add(STALE_RESET)
                    continue
                self.processed += 1
                self.on_result(products)
            except BaseException as e:  # noqa: BLE001 - the worker must survive a failing window
                self.failures += 1
                if self.on_error is not None:
                    self.on_error(e)
                else:
                    log.exception("window processing failed")
            finally:
                self.busy = False
