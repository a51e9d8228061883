"""Goal-conditioned manipulation planner (ROS-free): object motion -> grasp -> timed end-effector path.

Two goal kinds:

* ``plan_from_goal_image(field, selection, base_T_camera, now)``: ``field`` is the 2-frame trajectory field of
  the pair (current frame, goal image); the object's pixels of the current frame are fitted with a rigid motion
  current -> goal (waypoints at intermediate curve times).
* ``plan_to_object_pose(points, weights, target_pose, base_T_camera, now)``: ``points [T, M, 3]`` are a tracked
  object's points over the current window (camera frame; e.g. its curves evaluated at the frame times); the
  object's current pose is its centroid + fitted rotation history, and it is moved on the geodesic to
  ``target_pose`` (base frame).

Either returns a ``Plan`` whose status follows ``msg/ManipulationPlan.msg``: OK (a checked plan), REFUSED (with a
reason: selection, fit quality, grasp, workspace, limits), DONE (the object is already at the goal within
tolerance). HALTED and IDLE are set by the node (stale perception / no goal). A plan with status OK always passed
the workspace and limit checks.

Frames: ``base_T_camera`` maps camera (optical frame of the field) coordinates into the robot base frame, i.e.
the pose of the camera in the base frame (what ``tf2 lookup_transform(base, camera)`` returns).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field as dc_field, fields
from enum import IntEnum
from typing import List, Optional, Tuple

import numpy as np

from ..field.types import TrajectoryField
from . import se3
from .grasp import Grasp, compute_grasp
from .kabsch import FitParams, finite_rows
from .object_motion import (ObjectMotion, ObjectSelection, fit_confidence, motion_from_goal_field,
                            object_pose_history)
from .path import Limits, build_waypoints, check_workspace, limit_violations, time_parameterize


TIMING_MARGIN = 1e-3  # plans use 99.9 % of each limit


class PlanStatus(IntEnum):
    """Same values as the STATUS_* constants of msg/ManipulationPlan.msg."""

    IDLE = 0
    OK = 1
    REFUSED = 2
    HALTED = 3
    DONE = 4


@dataclass
class PlannerParams:
    """Planner parameters (SI units, base frame). ``validate()`` checks ranges; defaults suit a table-top arm."""

    # Limits of the end-effector motion.
    max_linear_velocity: float = 0.25        # m/s, (0, 5]
    max_angular_velocity: float = 1.0        # rad/s, (0, 10]
    max_linear_acceleration: float = 0.5     # m/s^2, (0, 20]
    max_angular_acceleration: float = 2.0    # rad/s^2, (0, 50]
    # Workspace box of the end effector in the base frame (every waypoint must lie in it).
    workspace_min: Tuple[float, float, float] = (-0.8, -0.8, 0.0)
    workspace_max: Tuple[float, float, float] = (0.8, 0.8, 1.0)
    # Grasp.
    approach: Tuple[float, float, float] = (0.0, 0.0, -1.0)  # approach direction (default: top-down)
    closing_axis: Optional[Tuple[float, float, float]] = None  # None: minor horizontal axis of the object (PCA)
    grasp_depth: float = 0.02                # m below the top surface, [0, 0.2]
    max_gripper_width: float = 0.08          # m, (0, 1]: wider objects are refused
    pre_grasp_distance: float = 0.10         # m back along the approach, [0, 0.5]
    retreat_distance: float = 0.10           # m back along the EE approach axis after release, [0, 0.5]
    gripper_dwell: float = 0.5               # s at grasp and at release, [0, 10]
    # Object motion.
    num_waypoints: int = 8                   # object poses from current to goal (incl. both), [2, 100]
    min_points: int = 10                     # object pixels/points needed, [3, 1e6]
    min_point_confidence: float = 0.0        # pixels with a lower mean curve confidence are ignored, >= 0
    motion_threshold: float = 0.01           # m: a pixel "moves" (pixel/box prompts), (0, 1]
    assumed_scale: float = 1.0               # m per field unit for non-metric fields without depth, (0, 1e3]
    # Robust fit (see kabsch.FitParams).
    inlier_threshold: float = 0.01           # m, (0, 1]
    ransac_iterations: int = 64              # [1, 10000]
    min_inlier_ratio: float = 0.5            # [0, 1]
    max_rms: float = 0.01                    # m, (0, 1]
    degenerate_ratio: float = 0.05           # [0, 1)
    min_confidence: float = 0.3              # plan confidence below this is refused, [0, 1]
    # Goal reached.
    done_translation_tolerance: float = 0.01  # m, (0, 1]
    done_rotation_tolerance: float = 0.087    # rad (5 deg), (0, pi]
    seed: int = 0

    def validate(self) -> "PlannerParams":
        def rng(name, lo, hi, lo_open=False, hi_open=False):
            v = getattr(self, name)
            if not np.isfinite(v) or (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
                raise ValueError(f"parameter {name}={v} out of range {'(' if lo_open else '['}{lo}, {hi}"
                                 f"{')' if hi_open else ']'}")

        rng("max_linear_velocity", 0, 5, lo_open=True)
        rng("max_angular_velocity", 0, 10, lo_open=True)
        rng("max_linear_acceleration", 0, 20, lo_open=True)
        rng("max_angular_acceleration", 0, 50, lo_open=True)
        rng("grasp_depth", 0, 0.2)
        rng("max_gripper_width", 0, 1, lo_open=True)
        rng("pre_grasp_distance", 0, 0.5)
        rng("retreat_distance", 0, 0.5)
        rng("gripper_dwell", 0, 10)
        rng("num_waypoints", 2, 100)
        rng("min_points", 3, 1e6)
        rng("min_point_confidence", 0, np.inf)
        rng("motion_threshold", 0, 1, lo_open=True)
        rng("assumed_scale", 0, 1e3, lo_open=True)
        rng("inlier_threshold", 0, 1, lo_open=True)
        rng("ransac_iterations", 1, 10000)
        rng("min_inlier_ratio", 0, 1)
        rng("max_rms", 0, 1, lo_open=True)
        rng("degenerate_ratio", 0, 1, hi_open=True)
        rng("min_confidence", 0, 1)
        rng("done_translation_tolerance", 0, 1, lo_open=True)
        rng("done_rotation_tolerance", 0, np.pi, lo_open=True)
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"workspace_min {self.workspace_min} must be < workspace_max {self.workspace_max} "
                             f"on every axis")
        a = np.asarray(self.approach, float)
        if a.shape != (3,) or not np.linalg.norm(a) > 1e-9:
            raise ValueError("approach must be a non-zero 3-vector")
        if self.closing_axis is not None:
            c = np.asarray(self.closing_axis, float)
            if c.shape != (3,) or np.linalg.norm(np.cross(c, a)) < 1e-6 * np.linalg.norm(c) * np.linalg.norm(a):
                raise ValueError("closing_axis must be a 3-vector not parallel to approach")
        return self

    @property
    def limits(self) -> Limits:
        return Limits(self.max_linear_velocity, self.max_angular_velocity, self.max_linear_acceleration,
                      self.max_angular_acceleration)

    @property
    def fit(self) -> FitParams:
        return FitParams(inlier_threshold=self.inlier_threshold, ransac_iterations=int(self.ransac_iterations),
                         min_inlier_ratio=self.min_inlier_ratio, max_rms=self.max_rms,
                         degenerate_ratio=self.degenerate_ratio, seed=int(self.seed)).validate()

    @classmethod
    def from_dict(cls, d: dict) -> "PlannerParams":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown planner parameters: {sorted(unknown)}")
        return cls(**d).validate()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    status: PlanStatus
    reason: str = ""
    confidence: float = 0.0
    object_id: int = -1
    stamp: float = 0.0                    # plan time (seconds); EE times are absolute = stamp + offset
    grasp_pose: np.ndarray = dc_field(default_factory=lambda: np.eye(4))
    approach: np.ndarray = dc_field(default_factory=lambda: np.zeros(3))
    object_poses: np.ndarray = dc_field(default_factory=lambda: np.zeros((0, 4, 4)))
    object_times: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))   # seconds from stamp
    ee_poses: np.ndarray = dc_field(default_factory=lambda: np.zeros((0, 4, 4)))
    ee_times: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))       # absolute seconds
    ee_labels: List[str] = dc_field(default_factory=list)
    diagnostics: dict = dc_field(default_factory=dict)
    # EE times relative to ``stamp`` (exact; absolute float seconds near 1.7e9 only resolve ~0.2 us, so build
    # message stamps as stamp_ns + round(ee_offsets * 1e9)).
    ee_offsets: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))

    @property
    def ok(self) -> bool:
        return self.status == PlanStatus.OK


class ManipulationPlanner:
    """Stateless per call (the node keeps goal state); see the module docstring."""

    def __init__(self, params: Optional[PlannerParams] = None):
        self.params = (params or PlannerParams()).validate()

    # ------------------------------------------------------------------ goal kinds
    def plan_from_goal_image(self, fld: TrajectoryField, selection: ObjectSelection, base_T_camera=None,
                             now: Optional[float] = None, depth: Optional[np.ndarray] = None, object_id: int = -1,
                             start_pose=None) -> Plan:
        p = self.params
        now = time.time() if now is None else float(now)
        t0 = time.perf_counter()
        motion = motion_from_goal_field(fld, selection, base_T_camera, depth, p.num_waypoints, p.fit,
                                        p.motion_threshold, p.assumed_scale, p.min_point_confidence, p.min_points)
        diag = {"selection": motion.selection_note, "scale": motion.scale, "scale_note": motion.scale_note,
                "fits": [(f.inlier_ratio, f.rms, f.used_fallback) for f in motion.fits]}
        if not motion.ok:
            return self._refuse(motion.reason, now, object_id, diag, motion.confidence)
        return self._finish(motion.poses, motion.points, motion.weights, motion.confidence, now, object_id,
                            start_pose, diag, t0)

    def plan_to_object_pose(self, points, weights, target_pose, base_T_camera=None, now: Optional[float] = None,
                            object_id: int = -1, initial_orientation=None, start_pose=None,
                            current_index: int = -1) -> Plan:
        """``points [T, M, 3]`` camera frame (the object's points at the window's times), ``weights [T, M]``,
        ``target_pose`` 4x4 in the base frame, ``initial_orientation``: the object's orientation (base frame) at
        window frame 0 (from the node's history; default identity). ``current_index``: which of the T times is
        "now" (default the newest)."""
        p = self.params
        now = time.time() if now is None else float(now)
        t0 = time.perf_counter()
        base_T_camera = np.eye(4) if base_T_camera is None else np.asarray(base_T_camera, dtype=np.float64)
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim == 2:
            pts = pts[None]
        T, M, _ = pts.shape
        w = np.ones((T, M)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(T, M)
        w = np.where(w >= p.min_point_confidence, w, 0.0)
        n_usable = int(((w > 0) & finite_rows(pts)).all(0).sum())
        if n_usable < p.min_points:
            return self._refuse(f"object has {n_usable} usable points < {p.min_points}", now, object_id, {})
        pts_b = se3.transform_points(base_T_camera, pts)
        poses, fits = object_pose_history(pts_b, w, initial_orientation, p.fit)
        bad = [k for k, f in enumerate(fits) if not f.ok]
        diag = {"fits": [(f.inlier_ratio, f.rms, f.used_fallback) for f in fits]}
        conf = fit_confidence(fits[1:], p.fit) if T > 1 else 1.0
        if bad:
            return self._refuse(f"rigid fit of the object's history failed at frame {bad[0]}: {fits[bad[0]].reason}",
                                now, object_id, diag, conf)
        k = current_index % T
        current = poses[k]
        target = np.asarray(target_pose, dtype=np.float64)
        diag["current_pose"] = current
        diag["history_poses"] = poses  # [T, 4, 4] object poses at the T input times (base frame)
        s = np.linspace(0.0, 1.0, p.num_waypoints)
        obj = se3.interpolate_poses(current, target, s)
        # Grasp from the points at the current time, moved by nothing: points_b[k] are where the object is now.
        return self._finish(obj, pts_b[k], w[k], conf, now, object_id, start_pose, diag, t0)

    # ------------------------------------------------------------------ shared tail
    def _refuse(self, reason, now, object_id, diag, confidence=0.0, status=PlanStatus.REFUSED, **kw) -> Plan:
        return Plan(status, reason, float(confidence), int(object_id), now, diagnostics=diag, **kw)

    def _finish(self, object_poses, points, weights, confidence, now, object_id, start_pose, diag, t0) -> Plan:
        p = self.params
        dist, ang = se3.pose_distance(object_poses[0], object_poses[-1])
        if dist <= p.done_translation_tolerance and ang <= p.done_rotation_tolerance:
            return Plan(PlanStatus.DONE, f"object within {dist:.3f} m / {np.degrees(ang):.1f} deg of the goal",
                        float(confidence), int(object_id), now, object_poses=object_poses[:1],
                        object_times=np.zeros(1), diagnostics=diag)
        if confidence < p.min_confidence:
            return self._refuse(f"confidence {confidence:.2f} < min_confidence {p.min_confidence}", now,
                                object_id, diag, confidence)
        grasp: Grasp = compute_grasp(points, weights, p.approach, p.closing_axis, p.grasp_depth,
                                     max_width=p.max_gripper_width, min_points=3)
        if not grasp.ok:
            return self._refuse(f"grasp: {grasp.reason}", now, object_id, diag, confidence)
        poses, labels = build_waypoints(object_poses, grasp.pose, p.pre_grasp_distance, p.retreat_distance,
                                        start_pose)
        common = dict(grasp_pose=grasp.pose, approach=grasp.approach, object_poses=object_poses)
        ws = check_workspace(poses, labels, p.workspace_min, p.workspace_max)
        if ws is not None:
            return self._refuse(ws, now, object_id, diag, confidence, ee_poses=poses, ee_labels=labels, **common)
        # Time against limits shrunk by TIMING_MARGIN so that rounding stamps to nanoseconds can never push a
        # plan over the real limits (checked below against the unshrunk ones).
        m = 1.0 - TIMING_MARGIN
        lim = p.limits
        tight = Limits(lim.max_linear_velocity * m, lim.max_angular_velocity * m, lim.max_linear_acceleration * m,
                       lim.max_angular_acceleration * m)
        rel = time_parameterize(poses, labels, tight, p.gripper_dwell)
        viol = limit_violations(poses, rel, p.limits)
        if viol:
            return self._refuse(f"limits: {viol[0]}", now, object_id, diag, confidence, **common)
        i_grasp = labels.index("grasp")
        obj_times = rel[i_grasp:i_grasp + len(object_poses)].copy()
        diag["planning_time_s"] = time.perf_counter() - t0
        diag["duration_s"] = float(rel[-1])
        return Plan(PlanStatus.OK, "", float(confidence), int(object_id), now, grasp.pose, grasp.approach,
                    object_poses, obj_times, poses, now + rel, labels, diag, rel)
