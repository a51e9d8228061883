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

"""An image goal, estimated once and then tracked frame by frame (ROS-free).

The goal-pair estimate (``planning.goal_pair``) of a goal image is the expensive part of goal-image planning (about
0.5-1 s here) and needs the scene as the goal image was taken against. Re-estimating it on every perception window
neither keeps up with the windows nor survives the robot entering the image. So it is done once per goal image;
afterwards the goal is the rigid motion ``goal`` (reference frame -> goal, camera frame) of the object the estimate
cut out of the reference frame (``ObjectModel``), and the object is followed by geometry in every later RGB-D frame
of the same static camera (``ImageGoalTrack.update``):

1. **Still there?** The object's points, at the pose it was last found at, are projected into the frame's depth:
   the share hidden behind something in front of them (a gripper) and the share of the visible ones whose depth
   and colour agree. Enough visible and agreeing: it is where it was, up to a local refinement
   (``goal_pair.refine_tracked``:
   a depth check cannot see a flat top slide sideways; tens of milliseconds).
2. **Moved**: otherwise it is first looked for where its last motion takes it (the rigid motion between the last two
   poses it was found at, applied once more, then the local refinement, verified as in 1): a carried object, lifted
   off the table, moves on with the gripper. Else it is searched on its support plane near where it was
   (``goal_pair.track_object``: the goal-pair alignment with the frame's depth as goal depth; occluded points carry no
   evidence) and the result is verified as in 1.
3. Neither: **occluded** (too little of it visible: the planner must not guess) or **lost** (visible but not where
   it was, and not found elsewhere), each with its reason; the last known pose is kept.

The remaining motion to the goal is then ``goal @ inv(now)``; ``PlannerSession.plan_image_window`` plans it with
``ManipulationPlanner.plan_rigid_motion``. No object ids are involved: perception's ids may change from window to
window, the object's geometry does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import se3
from .goal_pair import GoalMotion, GoalPairParams, ObjectModel, refine_tracked, track_object


@dataclass
class TrackParams:
    depth_tolerance: float = 0.01   # m: a visible object point agrees with the frame's depth within this
    colour_tolerance: float = 48.0  # mean colour difference (0..255) of an agreeing point (2x goal_pair photo_sigma)
    occlusion_margin: float = 0.01  # m: a depth this far in front of an object point hides it
    min_visible: float = 0.3        # share of the object's points that must be visible to plan (a gripper hides half)
    min_agree: float = 0.7          # share of the visible points that must agree: the object is there
    search_radius: float = 0.3      # m: a moved object is searched this far from where it was last found


@dataclass
class TrackUpdate:
    status: str                     # "at" (where it was), "moved" (found elsewhere), "occluded", "lost"
    visible: float                  # share of the object's points visible in the frame
    agree: float                    # share of the visible ones whose depth agrees at the found pose
    reason: str = ""

    @property
    def found(self) -> bool:
        return self.status in ("at", "moved")


class ImageGoalTrack:
    """The goal of one goal image: ``model`` (the object in the reference frame), ``goal`` (4x4, camera frame:
    ``p_goal = goal @ p_ref``), ``confidence`` of that estimate, ``points`` [N, 3] every object point of the
    reference frame (the planner grasps from them), ``now`` (4x4: ``p_now = now @ p_ref``)."""

    def __init__(self, model: ObjectModel, goal: np.ndarray, confidence: float, points: np.ndarray,
                 params: GoalPairParams = GoalPairParams(), track: TrackParams = TrackParams()):
        self.model, self.goal, self.confidence = model, np.asarray(goal, np.float64), float(confidence)
        self.points = np.asarray(points, np.float64).reshape(-1, 3)
        self.params, self.track = params, track
        self.now = np.eye(4)
        self.prev = None    # the pose it was found at before ``now`` (its last motion: now @ inv(prev))
        self.updates = 0

    @classmethod
    def from_estimate(cls, model: ObjectModel, gm: GoalMotion, depth0: np.ndarray,
                      params: GoalPairParams = GoalPairParams(), track: TrackParams = TrackParams()):
        """From the goal-pair estimate ``gm`` of the reference frame whose depth is ``depth0``."""
        from ..field.camera import backproject

        d0 = np.asarray(depth0, np.float64)
        ok = model.mask & np.isfinite(d0) & (d0 > 0)
        P = backproject(np.where(ok, d0, 0.0), model.K)[ok]
        return cls(model, gm.motion if gm.changed else np.eye(4), gm.confidence, P, params, track)

    # ------------------------------------------------------------------ queries
    def remaining(self) -> np.ndarray:
        """Motion from where the object is now to its goal (camera frame)."""
        return self.goal @ se3.invert(self.now)

    def points_now(self) -> np.ndarray:
        return se3.transform_points(self.now, self.points)

    def check(self, rgb: np.ndarray, depth: np.ndarray, now: Optional[np.ndarray] = None):
        """(visible share, agreeing share of the visible) of the object's points at pose ``now`` in (``rgb``,
        ``depth``): a visible point agrees when the depth there is its own (within ``depth_tolerance``) and so is
        the colour (within ``colour_tolerance``: the depth alone would take any surface at that height)."""
        now = self.now if now is None else now
        Y = se3.transform_points(now, self.model.X)
        K = self.model.K
        H, W = depth.shape
        z = Y[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.rint(K[0, 0] * Y[:, 0] / z + K[0, 2])
            v = np.rint(K[1, 1] * Y[:, 1] / z + K[1, 2])
        inside = (z > 0) & (u >= 0) & (v >= 0) & (u < W) & (v < H)
        d = np.full(len(Y), np.nan)
        d[inside] = depth[v[inside].astype(np.int64), u[inside].astype(np.int64)]
        measured = np.isfinite(d) & (d > 0)
        t = self.track
        hidden = measured & (d < z - t.occlusion_margin)
        vis = inside & measured & ~hidden
        col = np.zeros(len(Y), bool)
        iv = np.nonzero(vis)[0]
        col[iv] = np.abs(np.asarray(rgb)[v[iv].astype(np.int64), u[iv].astype(np.int64)].astype(np.float32)
                         - self.model.C[iv]).mean(-1) <= t.colour_tolerance
        agree = vis & (np.abs(d - z) <= t.depth_tolerance) & col
        n_vis = int(vis.sum())
        return n_vis / max(len(Y), 1), (int(agree.sum()) / n_vis if n_vis else 0.0)

    # ------------------------------------------------------------------ update
    def _found(self, pose: np.ndarray) -> None:
        self.prev, self.now = self.now, np.asarray(pose, np.float64)

    def update(self, rgb: np.ndarray, depth: np.ndarray) -> TrackUpdate:
        """Find the object in a later frame (``rgb`` [H, W, 3], ``depth`` [H, W] metres, the reference frame's grid
        and camera); see the module doc."""
        self.updates += 1
        t = self.track
        depth = np.asarray(depth, np.float64)
        vis, agree = self.check(rgb, depth)
        if vis >= t.min_visible and agree >= t.min_agree:
            near = refine_tracked(self.model, rgb, depth, self.now, self.params)   # slid a little?
            vis2, agree2 = self.check(rgb, depth, near)
            if vis2 >= t.min_visible and agree2 >= t.min_agree:
                self._found(near)
                return TrackUpdate("at", vis2, agree2)
        if self.prev is not None:  # moving on as it moved (carried: off the support plane, where 3. cannot look)
            step = self.now @ se3.invert(self.prev)
            if not np.allclose(step, np.eye(4), atol=1e-9):
                near = refine_tracked(self.model, rgb, depth, step @ self.now, self.params)
                vis2, agree2 = self.check(rgb, depth, near)
                if vis2 >= t.min_visible and agree2 >= t.min_agree:
                    self._found(near)
                    return TrackUpdate("moved", vis2, agree2)
        centre = se3.transform_points(self.now, self.model.center)
        gm = track_object(self.model, rgb, depth, self.params, near=(centre, t.search_radius))
        if gm.ok:
            cand = gm.motion if gm.changed else np.eye(4)
            vis2, agree2 = self.check(rgb, depth, cand)
            if vis2 >= t.min_visible and agree2 >= t.min_agree:
                self._found(cand)
                return TrackUpdate("moved", vis2, agree2)
            why = (f"the best place on the support plane does not hold it ({vis2:.2f} of its points visible there, "
                   f"{agree2:.2f} of those agreeing with the depth)")
        else:
            why = gm.reason or f"confidence {gm.confidence:.2f}"
        if vis < t.min_visible:
            return TrackUpdate("occluded", vis, agree, f"goal object occluded: {vis:.2f} of its points visible "
                               f"(< {t.min_visible}) where it was last found, not found elsewhere ({why})")
        return TrackUpdate("lost", vis, agree, f"goal object lost: {agree:.2f} of its visible points agree with the "
                           f"depth where it was last found (< {t.min_agree}); not found elsewhere: {why}")
