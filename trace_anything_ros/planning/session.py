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

"""Goal state of the planner node, ROS-free: which goal is active, replanning per perception window, the tracked
object's orientation history, staleness (HALTED), cancel and DONE. ``ros/manipulation_planner_node.py`` converts
messages to the arrays used here and the returned ``Plan`` back to messages.

Tracked-object goals (``set_pose_goal``): each perception window brings sparse tracks (positions of grid points at
the window's frame stamps, camera frame, with an object id). The object's points are those tracks whose object id
matches; their rigid motion over the window gives the object's rotation history. The object's orientation is
defined as the base frame's axes at the moment it was first seen after the goal was set; it is carried across
windows through the stamps the windows share (a window starting at a stamp seen before continues the orientation
recorded for that stamp; otherwise the newest known orientation is assumed for the window's first frame and
``diagnostics['orientation_gap']`` is set).

Goal object re-binding: perception's object ids are stable only as long as its tracker associates the object from
window to window. When the goal's object id has no tracks in a window, the session predicts where the object is now
(its centroid at the newest stamp it was seen, moved at the velocity it had over that window for at most
``max_extrapolation`` s) and re-binds the goal to the object whose centroid is nearest to that prediction or to the
place it was last seen, within ``rebind_radius`` (units of the tracks: metres
for a metric field; 0 disables). The orientation history carries over (same physical object);
``diagnostics['rebound_from']`` names the old id. Nothing within the radius: REFUSED for that window (the goal
stays; a later window may bring the object back).

Image goals (``set_image_goal``): the node runs the goal-image estimator on (current frame, goal image) and calls
``plan_image`` with the resulting 2-frame field. An estimator that can follow its estimate (the goal-pair one:
``tracker()``) binds the goal to it (``bind_track``); from then on every perception window is planned with
``plan_image_window`` on the newest RGB-D frame: the object is followed by geometry (``planning.goal_track``), the
goal is not estimated again, and no perception object id is needed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..field.types import TrajectoryField
from .object_motion import ObjectSelection
from .planner import ManipulationPlanner, Plan, PlanStatus


@dataclass
class Goal:
    kind: str                                   # "pose" or "image"
    object_id: int = -1                         # -1: resolve from pixel, else the largest object
    target: Optional[np.ndarray] = None         # 4x4 base frame (pose goals)
    pixel: Optional[Tuple[float, float]] = None  # (u, v) in the newest frame's source image
    image: Optional[np.ndarray] = None          # goal image (image goals)
    set_at: float = 0.0
    stamp_ns: Optional[int] = None              # the goal image's header stamp (pairs a goal depth with it)
    track: Optional[object] = None              # image goals: planning.goal_track.ImageGoalTrack once estimated


@dataclass
class TrackedObjects:
    """One perception window in arrays (what the node extracts from TrajectoryArray + DynamicObjectArray)."""

    stamps_ns: Sequence[int]                    # [T] window frame stamps, oldest first
    positions: np.ndarray                       # [M, T, 3] track positions at the stamps (camera frame)
    track_object_ids: np.ndarray                # [M]
    track_confidence: np.ndarray                # [M]
    object_ids: Sequence[int] = ()              # DynamicObject ids
    object_rois: Sequence[Tuple[int, int, int, int]] = ()  # (x, y, w, h) source-image pixels
    object_pixels: Sequence[int] = ()           # pixel counts


class PlannerSession:
    def __init__(self, planner: ManipulationPlanner, stale_timeout: float = 1.0, rebind_radius: float = 0.1):
        self.planner = planner
        self.stale_timeout = float(stale_timeout)
        self.rebind_radius = float(rebind_radius)
        self.max_extrapolation = 0.5  # s
        self.goal: Optional[Goal] = None
        self.last_perception: Optional[float] = None   # arrival time (node clock, seconds)
        self.halted = False
        self._orientation: Dict[int, np.ndarray] = {}  # stamp_ns -> 3x3 object orientation (base frame)
        self._resolved_id: Optional[int] = None
        self._last_seen: Optional[Tuple[int, np.ndarray, np.ndarray]] = None  # (stamp_ns, centroid, velocity /s)

    # ------------------------------------------------------------------ goals
    def set_pose_goal(self, target_base, object_id: int = -1, pixel=None, now: float = 0.0, seen=None) -> None:
        """``seen``: ``(stamp_ns, centroid [3], velocity [3] per s)`` of the object ``object_id`` as perception
        last reported it (its DynamicObject): a goal whose object is gone from the very next window can still be
        re-bound to it."""
        T = np.asarray(target_base, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError("target must be a finite 4x4 pose")
        self.goal = Goal("pose", int(object_id), T, None if pixel is None else (float(pixel[0]), float(pixel[1])),
                         set_at=now)
        self._orientation.clear()
        self._resolved_id = None
        self._last_seen = None
        if seen is not None and object_id >= 0:
            c, v = np.asarray(seen[1], np.float64), np.asarray(seen[2], np.float64)
            if np.all(np.isfinite(c)) and np.all(np.isfinite(v)):
                self._resolved_id = int(object_id)
                self._last_seen = (int(seen[0]), c.reshape(3), v.reshape(3))
        self.halted = False

    def set_image_goal(self, image: np.ndarray, now: float = 0.0, stamp_ns: Optional[int] = None) -> None:
        self.goal = Goal("image", image=np.asarray(image), set_at=now, stamp_ns=stamp_ns)
        self.halted = False

    def cancel(self) -> Plan:
        self.goal = None
        self._orientation.clear()
        self._resolved_id = None
        self._last_seen = None
        self.halted = False
        return Plan(PlanStatus.IDLE, "goal cancelled")

    @property
    def active(self) -> bool:
        return self.goal is not None

    # ------------------------------------------------------------------ staleness
    def perception_arrived(self, now: float) -> None:
        self.last_perception = float(now)
        self.halted = False

    def check_stale(self, now: float) -> Optional[Plan]:
        """A HALTED plan when a goal is active and perception is older than ``stale_timeout`` (or never came)."""
        if self.goal is None:
            return None
        ref = self.last_perception if self.last_perception is not None else self.goal.set_at
        age = float(now) - ref
        if age > self.stale_timeout:
            self.halted = True
            what = "no perception since the goal was set" if self.last_perception is None else \
                f"perception stale: last window {age:.2f} s ago"
            return Plan(PlanStatus.HALTED, f"{what} (> stale_timeout {self.stale_timeout:g} s)",
                        object_id=self._resolved_id if self._resolved_id is not None else -1, stamp=now)
        return None

    # ------------------------------------------------------------------ replanning
    @staticmethod
    def _centroids(w: TrackedObjects) -> Dict[int, np.ndarray]:
        """Object id -> [T, 3] mean track position per frame (tracks with an object id >= 0)."""
        ids = np.asarray(w.track_object_ids)
        pos = np.asarray(w.positions, dtype=np.float64)
        return {int(i): np.nanmean(pos[ids == i], axis=0) for i in np.unique(ids[ids >= 0])}

    def _remember(self, w: TrackedObjects, oid: int) -> None:
        c = self._centroids(w).get(int(oid))
        if c is None or not np.all(np.isfinite(c)):
            return
        st = np.asarray(w.stamps_ns, dtype=np.int64)
        dt = (st[-1] - st[0]) * 1e-9
        vel = (c[-1] - c[0]) / dt if dt > 0 else np.zeros(3)
        self._last_seen = (int(st[-1]), c[-1].copy(), vel)

    def _rebind(self, w: TrackedObjects, lost: int) -> Tuple[Optional[int], str]:
        """The object nearest to where the lost goal object should be now (see the module doc)."""
        if self._last_seen is None or self.rebind_radius <= 0:
            return None, f"object {lost} has no tracks in this window"
        t_ns, c, vel = self._last_seen
        # extrapolated at most ``max_extrapolation`` s (a window's velocity is no forecast for longer: the demo's
        # objects move and pause), and the place it was last seen counts too (it may have stopped there)
        dt = min(max(0.0, (int(w.stamps_ns[-1]) - t_ns) * 1e-9), self.max_extrapolation)
        pred = c + vel * dt
        cand = {i: float(min(np.linalg.norm(cw[-1] - pred), np.linalg.norm(cw[-1] - c)))
                for i, cw in self._centroids(w).items() if np.all(np.isfinite(cw[-1]))}
        if not cand:
            return None, f"object {lost} has no tracks in this window (no tracked object to re-bind to)"
        best = min(cand, key=cand.get)
        if cand[best] > self.rebind_radius:
            return None, (f"object {lost} has no tracks in this window; the nearest object ({best}) is "
                          f"{cand[best]:.3f} from its predicted position (> rebind_radius {self.rebind_radius:g})")
        return best, ""

    def _resolve_object(self, w: TrackedObjects) -> Tuple[Optional[int], str]:
        g = self.goal
        if self._resolved_id is not None:  # the goal's object, as followed so far
            if self._resolved_id in set(np.asarray(w.track_object_ids).tolist()):
                return self._resolved_id, ""
            return self._rebind(w, self._resolved_id)
        if g.object_id >= 0:
            return g.object_id, ""
        if g.pixel is not None:
            u, v = g.pixel
            hits = [(oid, px) for oid, (x, y, wd, ht), px in zip(w.object_ids, w.object_rois, w.object_pixels)
                    if x <= u < x + wd and y <= v < y + ht]
            if not hits:
                return None, f"no tracked object at pixel ({u:.0f}, {v:.0f})"
            return int(min(hits, key=lambda h: h[1])[0]), ""  # the smallest box containing the pixel
        if len(w.object_ids) == 0:
            return None, "no tracked object in the window"
        return int(w.object_ids[int(np.argmax(w.object_pixels))]), ""

    def plan_window(self, w: TrackedObjects, base_T_camera, now: float, start_pose=None) -> Plan:
        """Replan a pose goal for one perception window (``now``: the plan's stamp, seconds)."""
        g = self.goal
        if g is None:
            return Plan(PlanStatus.IDLE, "no active goal", stamp=now)
        if g.kind != "pose":
            raise ValueError("plan_window is for pose goals; image goals use plan_image")
        oid, why = self._resolve_object(w)
        if oid is None:
            return Plan(PlanStatus.REFUSED, why, object_id=-1 if self._resolved_id is None else self._resolved_id,
                        stamp=now)
        rebound = self._resolved_id if self._resolved_id is not None and oid != self._resolved_id else None
        self._resolved_id = oid
        sel = np.asarray(w.track_object_ids) == oid
        if not sel.any():
            return Plan(PlanStatus.REFUSED, f"object {oid} has no tracks in this window", object_id=oid, stamp=now)
        self._remember(w, oid)
        pts = np.transpose(np.asarray(w.positions, dtype=np.float64)[sel], (1, 0, 2))  # [T, M, 3]
        conf = np.asarray(w.track_confidence, dtype=np.float64)[sel]
        weights = np.broadcast_to(np.clip(conf, 1e-6, None), pts.shape[:2])
        stamps = [int(s) for s in w.stamps_ns]
        gap = False
        if not self._orientation:
            R0 = np.eye(3)
        elif stamps[0] in self._orientation:
            R0 = self._orientation[stamps[0]]
        else:
            R0 = self._orientation[max(self._orientation)]
            gap = True
        plan = self.planner.plan_to_object_pose(pts, weights, g.target, base_T_camera, now=now, object_id=oid,
                                                initial_orientation=R0, start_pose=start_pose)
        hist = plan.diagnostics.get("history_poses")
        if hist is not None:
            self._orientation = {s: P[:3, :3].copy() for s, P in zip(stamps, hist)}
        plan.diagnostics["orientation_gap"] = gap
        if rebound is not None:
            plan.diagnostics["rebound_from"] = rebound
        if plan.status == PlanStatus.DONE:
            self.goal = None
        return plan

    def bind_track(self, goal: Goal, track) -> None:
        """Follow the image goal ``goal`` (if still the active one) with ``track`` from now on."""
        if self.goal is goal and goal.kind == "image":
            goal.track = track

    def plan_image_window(self, rgb: np.ndarray, depth: np.ndarray, base_T_camera, now: float,
                          start_pose=None) -> Plan:
        """Replan a tracked image goal on one RGB-D frame (the estimator's grid and camera)."""
        g = self.goal
        if g is None:
            return Plan(PlanStatus.IDLE, "no active goal", stamp=now)
        if g.kind != "image" or g.track is None:
            raise ValueError("plan_image_window is for image goals bound to a track (bind_track)")
        return self.plan_track_update(g.track.update(rgb, depth), base_T_camera, now, start_pose)

    def plan_track_update(self, up, base_T_camera, now: float, start_pose=None) -> Plan:
        """The plan of a tracked image goal after its track's ``update`` (``goal_track.TrackUpdate``; the node runs
        the update outside its lock)."""
        tr = self.goal.track
        if not up.found:
            return Plan(PlanStatus.REFUSED, up.reason, tr.confidence, stamp=now,
                        diagnostics={"track": up.status, "visible": up.visible, "agree": up.agree})
        plan = self.planner.plan_rigid_motion(tr.points_now(), tr.remaining(), base_T_camera, now=now,
                                              confidence=tr.confidence, start_pose=start_pose,
                                              note=f"goal object {up.status}")
        plan.diagnostics.update(track=up.status, visible=up.visible, agree=up.agree)
        if plan.status == PlanStatus.DONE:
            self.goal = None
        return plan

    def plan_image(self, fld: TrajectoryField, base_T_camera, now: float, selection: Optional[ObjectSelection] = None,
                   depth=None, start_pose=None) -> Plan:
        """Replan an image goal from the 2-frame field of (current frame, goal image)."""
        if self.goal is None:
            return Plan(PlanStatus.IDLE, "no active goal", stamp=now)
        sel = selection or ObjectSelection(largest_moving=True)
        plan = self.planner.plan_from_goal_image(fld, sel, base_T_camera, now=now, depth=depth,
                                                 start_pose=start_pose)
        if plan.status == PlanStatus.DONE:
            self.goal = None
        return plan


@dataclass
class GoalEstimate:
    """The goal-image estimator's answer on (current frame, goal image): the 2-frame field, or the refusal."""

    field: Optional[TrajectoryField]   # None: refused
    refusal: Optional[Plan]            # REFUSED plan naming what was missing or why the estimate failed
    seconds: float = 0.0               # estimator time
    quality: object = None             # the estimator's ``last`` (reason, confidence, ok), where it has one


def estimate_image_goal(est, frames: np.ndarray, now: float, frame_id: str = "", depth=None,
                        intrinsics=None) -> GoalEstimate:
    """Run the goal-image estimator ``est`` on ``frames`` [2, H, W, 3] (current frame, goal image, on its grid).
    An estimator declaring ``needs_intrinsics`` also gets ``depth`` [2, H, W] and ``intrinsics`` (None where
    missing: it names what it lacks, refused); the field carries those intrinsics and is stamped ``[now, now]``."""
    kw, K = {}, None
    if getattr(est, "needs_intrinsics", False):
        K = intrinsics
        kw = dict(depth=depth, intrinsics=K, times=np.array([0.0, 1.0], np.float32))
    t0 = time.perf_counter()
    try:
        pred = est.predict(frames, **kw)
    except ValueError as e:  # a missing input, named by the estimator, + where it comes from
        return GoalEstimate(None, Plan(PlanStatus.REFUSED, f"image goal: {e} (topics 'depth' with the image's "
                                       "stamp, 'camera_info')", stamp=now))
    last = getattr(est, "last", None)
    if last is not None and not last.ok and getattr(last, "changed", True):
        return GoalEstimate(None, Plan(PlanStatus.REFUSED, f"image goal: {last.reason}", float(last.confidence),
                                       stamp=now), quality=last)
    seconds = time.perf_counter() - t0
    fld = TrajectoryField(np.asarray(pred.ctrl_pts), np.asarray(pred.ctrl_conf), pred.frame_times, [now, now],
                          intrinsics=K, metric=bool(getattr(pred, "metric", False)), frame_id=frame_id)
    return GoalEstimate(fld, None, seconds, last)
