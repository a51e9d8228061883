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

"""PlannerSession (the node's ROS-free goal logic): replanning per window, orientation history, HALTED, DONE."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trace_anything_ros.planning import ManipulationPlanner, PlannerParams, PlanStatus, se3
from trace_anything_ros.planning.session import PlannerSession, TrackedObjects

BASE_T_CAM = se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.4, 0.0, 1.2])
DT_NS = 100_000_000


def _window(first_frame, T=4, M=60, yaw_rate=0.1, seed=0, other=True):
    """Tracks of object 5 (a box rotating about base z and sliding in x) over frames first..first+T-1, plus
    object 9 (static, fewer pixels)."""
    r = np.random.default_rng(seed)
    body = np.random.default_rng(42).uniform([-0.03, -0.02, 0.0], [0.03, 0.02, 0.05], size=(M, 3))
    frames = np.arange(first_frame, first_frame + T)
    pos = np.stack([se3.transform_points(
        se3.make_pose(Rotation.from_rotvec([0, 0, yaw_rate * k]).as_matrix(), [0.4 + 0.002 * k, 0.1, 0.0]), body)
        for k in frames], axis=1)  # [M, T, 3] base
    pos = se3.transform_points(se3.invert(BASE_T_CAM), pos) + r.normal(size=pos.shape) * 3e-4
    ids = np.full(M, 5)
    if other:
        static = np.random.default_rng(7).uniform([-0.2, -0.3, 0.0], [-0.15, -0.25, 0.03], size=(20, 3))
        spos = np.repeat(se3.transform_points(se3.invert(BASE_T_CAM), static)[:, None], T, axis=1)
        pos = np.concatenate([pos, spos])
        ids = np.concatenate([ids, np.full(20, 9)])
    return TrackedObjects(stamps_ns=[int(1e9) + int(k) * DT_NS for k in frames], positions=pos,
                          track_object_ids=ids, track_confidence=np.ones(len(ids)),
                          object_ids=[5, 9], object_rois=[(100, 100, 40, 30), (10, 10, 20, 20)],
                          object_pixels=[1200, 400])


def test_pose_goal_replans_per_window_and_carries_orientation():
    s = PlannerSession(ManipulationPlanner(PlannerParams(min_points=10)), stale_timeout=0.5)
    target = se3.make_pose(Rotation.from_rotvec([0, 0, 1.2]).as_matrix(), [0.3, -0.2, 0.0])
    s.set_pose_goal(target, object_id=-1, now=0.0)  # -1: the largest object (5)
    p1 = s.plan_window(_window(0), BASE_T_CAM, now=1.0)
    assert p1.status == PlanStatus.OK, p1.reason
    assert p1.object_id == 5
    # Window 1 starts at frame 0: orientation is the identity there, 0.3 rad at its newest frame (3).
    assert se3.rotation_angle(p1.object_poses[0][:3, :3]) == pytest.approx(0.3, abs=np.radians(1))
    # Window 2 (frames 2..5) overlaps: its first frame's orientation comes from window 1 -> 0.5 rad at frame 5.
    p2 = s.plan_window(_window(2, seed=1), BASE_T_CAM, now=1.1)
    assert p2.status == PlanStatus.OK and not p2.diagnostics["orientation_gap"]
    assert se3.rotation_angle(p2.object_poses[0][:3, :3]) == pytest.approx(0.5, abs=np.radians(1.5))
    # A window after a gap: flagged.
    p3 = s.plan_window(_window(20, seed=2), BASE_T_CAM, now=3.0)
    assert p3.diagnostics["orientation_gap"]
    assert np.allclose(p1.object_poses[-1], target) and np.allclose(p2.object_poses[-1], target)


def test_pixel_goal_resolves_object_by_box_and_done_clears_goal():
    s = PlannerSession(ManipulationPlanner(PlannerParams(min_points=10)))
    s.set_pose_goal(np.eye(4), object_id=-1, pixel=(15, 15), now=0.0)  # inside object 9's box
    w = _window(0)
    p = s.plan_window(w, BASE_T_CAM, now=0.1)
    assert p.object_id == 9
    # Object 9 is static: target = its current pose -> DONE, and the goal is cleared.
    current = p.diagnostics["current_pose"]
    s.set_pose_goal(current, object_id=9, now=0.2)
    done = s.plan_window(w, BASE_T_CAM, now=0.3)
    assert done.status == PlanStatus.DONE and not s.active
    assert s.plan_window(w, BASE_T_CAM, now=0.4).status == PlanStatus.IDLE
    s.set_pose_goal(np.eye(4), object_id=-1, pixel=(300, 300), now=0.5)
    miss = s.plan_window(w, BASE_T_CAM, now=0.6)
    assert miss.status == PlanStatus.REFUSED and "no tracked object at pixel" in miss.reason


def test_stale_perception_halts_and_recovers():
    s = PlannerSession(ManipulationPlanner(), stale_timeout=0.5)
    assert s.check_stale(100.0) is None  # no goal: never halted
    s.set_pose_goal(np.eye(4), object_id=5, now=10.0)
    assert s.check_stale(10.3) is None
    h = s.check_stale(10.6)
    assert h.status == PlanStatus.HALTED and "no perception" in h.reason
    s.perception_arrived(11.0)
    assert s.check_stale(11.4) is None
    h = s.check_stale(11.7)
    assert h.status == PlanStatus.HALTED and "stale" in h.reason and s.halted
    assert s.cancel().status == PlanStatus.IDLE
    assert s.check_stale(100.0) is None


def test_unknown_object_and_bad_target():
    s = PlannerSession(ManipulationPlanner())
    s.set_pose_goal(np.eye(4), object_id=77, now=0.0)
    p = s.plan_window(_window(0), BASE_T_CAM, now=0.1)
    assert p.status == PlanStatus.REFUSED and "no tracks" in p.reason
    with pytest.raises(ValueError):
        s.set_pose_goal(np.full((4, 4), np.nan))


def _relabel(w: TrackedObjects, old: int, new: int) -> TrackedObjects:
    ids = np.where(np.asarray(w.track_object_ids) == old, new, w.track_object_ids)
    return TrackedObjects(w.stamps_ns, w.positions, ids, w.track_confidence,
                          [new if i == old else i for i in w.object_ids], w.object_rois, w.object_pixels)


def test_goal_follows_the_object_when_perception_changes_its_id():
    """Perception's tracker loses object 5 and finds it again as 12: the goal re-binds to 12 (nearest to where 5
    should be), keeps the orientation history, and says so; an id change to a far object is not followed."""
    s = PlannerSession(ManipulationPlanner(PlannerParams(min_points=10)), rebind_radius=0.05)
    target = se3.make_pose(Rotation.from_rotvec([0, 0, 1.2]).as_matrix(), [0.3, -0.2, 0.0])
    s.set_pose_goal(target, object_id=5, now=0.0)
    p1 = s.plan_window(_window(0), BASE_T_CAM, now=1.0)
    assert p1.status == PlanStatus.OK and p1.object_id == 5
    p2 = s.plan_window(_relabel(_window(2, seed=1), 5, 12), BASE_T_CAM, now=1.1)
    assert p2.status == PlanStatus.OK, p2.reason
    assert p2.object_id == 12 and p2.diagnostics["rebound_from"] == 5
    assert not p2.diagnostics["orientation_gap"]  # same physical object: the history carried over
    assert se3.rotation_angle(p2.object_poses[0][:3, :3]) == pytest.approx(0.5, abs=np.radians(1.5))
    p3 = s.plan_window(_relabel(_window(4, seed=2), 5, 12), BASE_T_CAM, now=1.2)
    assert p3.object_id == 12 and "rebound_from" not in p3.diagnostics
    # object 12 vanishes; only the static object 9 (about 0.6 m away) remains: not a candidate
    w = _window(6, seed=3)
    keep = np.asarray(w.track_object_ids) == 9
    only9 = TrackedObjects(w.stamps_ns, w.positions[keep], w.track_object_ids[keep], w.track_confidence[keep],
                           [9], w.object_rois[1:], w.object_pixels[1:])
    p4 = s.plan_window(only9, BASE_T_CAM, now=1.3)
    assert p4.status == PlanStatus.REFUSED and "rebind_radius" in p4.reason and p4.object_id == 12
    # re-binding disabled: an id change is a lost object
    s.rebind_radius = 0.0
    p5 = s.plan_window(_relabel(_window(8, seed=4), 5, 13), BASE_T_CAM, now=1.4)
    assert p5.status == PlanStatus.REFUSED and "no tracks" in p5.reason


def test_goal_object_gone_from_the_first_window_is_found_from_its_reported_position():
    """The goal names object 5 as perception last reported it (its DynamicObject centroid/velocity); the first window
    after the goal already calls it 12: re-bound from the reported position. Without ``seen``: refused."""
    w = _relabel(_window(0), 5, 12)
    c = w.positions[np.asarray(w.track_object_ids) == 12][:, 0].mean(axis=0)  # where it was at the first frame
    seen = (w.stamps_ns[0], c, np.zeros(3))
    for seen_arg, ok in ((seen, True), (None, False)):
        s = PlannerSession(ManipulationPlanner(PlannerParams(min_points=10)), rebind_radius=0.05)
        s.set_pose_goal(se3.make_pose(np.eye(3), [0.3, -0.2, 0.0]), object_id=5, now=0.0, seen=seen_arg)
        p = s.plan_window(w, BASE_T_CAM, now=0.1)
        if ok:
            assert p.status == PlanStatus.OK and p.object_id == 12 and p.diagnostics["rebound_from"] == 5, p.reason
        else:
            assert p.status == PlanStatus.REFUSED and "no tracks" in p.reason
