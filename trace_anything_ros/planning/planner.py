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

import math
import time
from dataclasses import asdict, dataclass, field as dc_field
from enum import IntEnum
from typing import List, Optional, Tuple

import numpy as np

from ..field.types import TrajectoryField
from ..paramspec import from_dict, param, validate_fields
from . import se3
from .grasp import Grasp, compute_grasp
from .kabsch import FitParams, finite_rows
from .object_motion import ObjectSelection, fit_confidence, motion_from_goal_field, object_pose_history
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
    """Planner parameters (SI units, base frame). Each field's documentation and valid range live in its
    ``param()`` metadata (``paramspec``): ``validate()`` checks them, and the planner node declares its
    ``planner.*`` parameters (ROS descriptor ranges, descriptions, defaults) from the same metadata."""

    # Limits of the end-effector motion.
    max_linear_velocity: float = param(0.25, "EE linear velocity limit (m/s)", range=(0.0, 5.0), open="lo")
    max_angular_velocity: float = param(1.0, "EE angular velocity limit (rad/s)", range=(0.0, 10.0), open="lo")
    max_linear_acceleration: float = param(0.5, "EE linear acceleration limit (m/s^2)", range=(0.0, 20.0),
                                           open="lo")
    max_angular_acceleration: float = param(2.0, "EE angular acceleration limit (rad/s^2)", range=(0.0, 50.0),
                                            open="lo")
    # Workspace box of the end effector in the base frame (every waypoint must lie in it).
    workspace_min: Tuple[float, float, float] = param(
        (-0.8, -0.8, 0.0), "workspace box minimum corner x, y, z in base_frame (m)")
    workspace_max: Tuple[float, float, float] = param(
        (0.8, 0.8, 1.0), "workspace box maximum corner x, y, z in base_frame (m)")
    # Grasp.
    approach: Tuple[float, float, float] = param((0.0, 0.0, -1.0), "grasp approach direction in base_frame "
                                                 "(default top-down)")
    closing_axis: Optional[Tuple[float, float, float]] = param(
        None, "finger closing axis in base_frame (empty: narrow horizontal side of the object)")
    grasp_depth: float = param(0.02, "grasp this far below the object's top surface (m)", range=(0.0, 0.2))
    max_gripper_width: float = param(0.08, "objects wider than this along the closing axis are refused (m)",
                                     range=(0.0, 1.0), open="lo")
    pre_grasp_distance: float = param(0.10, "pre-grasp offset back along the approach (m)", range=(0.0, 0.5))
    retreat_distance: float = param(0.10, "retreat after release, back along the EE approach axis (m)",
                                    range=(0.0, 0.5))
    gripper_dwell: float = param(0.5, "seconds at grasp and at release for the gripper", range=(0.0, 10.0))
    # Object motion.
    num_waypoints: int = param(8, "object poses from current to goal", range=(2, 100))
    min_points: int = param(10, "object points (tracks / pixels) needed", range=(3, 1000000))
    min_point_confidence: float = param(0.0, "points with lower confidence are ignored", range=(0.0, 1e9))
    motion_threshold: float = param(0.01, "a pixel moves when displaced more than this (m), goal images",
                                    range=(0.0, 1.0), open="lo")
    assumed_scale: float = param(1.0, "metres per field unit for non-metric fields without depth",
                                 range=(0.0, 1000.0), open="lo")
    # Robust fit (see kabsch.FitParams).
    inlier_threshold: float = param(0.01, "rigid fit inlier residual (m)", range=(0.0, 1.0), open="lo")
    ransac_iterations: int = param(64, "RANSAC hypotheses per fit", range=(1, 10000))
    min_inlier_ratio: float = param(0.5, "rigid fit: minimum inlier ratio", range=(0.0, 1.0))
    max_rms: float = param(0.01, "rigid fit: maximum inlier rms residual (m)", range=(0.0, 1.0), open="lo")
    degenerate_ratio: float = param(0.05, "spread ratio below which the fit is translation-only", range=(0.0, 1.0),
                                    open="hi")
    min_confidence: float = param(0.3, "plans with a lower confidence are refused", range=(0.0, 1.0))
    # Goal reached.
    done_translation_tolerance: float = param(0.01, "goal reached within this distance (m)", range=(0.0, 1.0),
                                              open="lo")
    done_rotation_tolerance: float = param(0.087, "goal reached within this angle (rad; 0.087: 5 deg)",
                                           range=(0.0, math.pi), open="lo")
    seed: int = param(0, "RANSAC seed", range=(0, 2**31 - 1))

    def validate(self) -> "PlannerParams":
        validate_fields(self)
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
        return from_dict(cls, d, "planner").validate()

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

    def plan_rigid_motion(self, points, motion, base_T_camera=None, now: Optional[float] = None,
                          confidence: float = 1.0, object_id: int = -1, start_pose=None, note: str = "") -> Plan:
        """A known rigid motion of an object: ``points [M, 3]`` where the object is now (camera frame), ``motion``
        4x4 camera frame (``p_goal = motion @ p_now``), e.g. a goal image's estimate carried to the current frame
        by tracking. The object's pose is (identity, centroid) in the base frame, moved on the geodesic to
        ``motion`` applied to it -- the poses ``plan_from_goal_image`` fits from the curves of that motion."""
        p = self.params
        now = time.time() if now is None else float(now)
        t0 = time.perf_counter()
        B = np.eye(4) if base_T_camera is None else np.asarray(base_T_camera, dtype=np.float64)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        pts = pts[finite_rows(pts)]
        diag = {"note": note} if note else {}
        if len(pts) < p.min_points:
            return self._refuse(f"object has {len(pts)} usable points < {p.min_points}", now, object_id, diag,
                                confidence)
        pts_b = se3.transform_points(B, pts)
        current = se3.make_pose(np.eye(3), pts_b.mean(0))
        target = B @ np.asarray(motion, dtype=np.float64) @ se3.invert(B) @ current
        diag["current_pose"] = current
        obj = se3.interpolate_poses(current, target, np.linspace(0.0, 1.0, p.num_waypoints))
        return self._finish(obj, pts_b, np.ones(len(pts_b)), float(confidence), now, object_id, start_pose, diag,
                            t0)

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
