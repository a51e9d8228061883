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

"""An image goal estimated once and tracked (``planning.goal_track`` through ``PlannerSession.plan_image_window``):
a rendered MuJoCo episode of ``sim.closed_loop`` whose plan the kinematic gripper executes while the session
replans on a frame every 0.5 s of path time, as the planner node does per perception window."""
import numpy as np
import pytest

pytest.importorskip("mujoco", reason="MuJoCo is needed to render the episodes")

from trace_anything_ros.planning import goal_pair as gp  # noqa: E402
from trace_anything_ros.planning.planner import ManipulationPlanner, PlanStatus  # noqa: E402
from trace_anything_ros.planning.session import PlannerSession  # noqa: E402
from trace_anything_ros.sim import closed_loop as cl  # noqa: E402

pytestmark = pytest.mark.sim


def _bound_session(seed):
    spec = cl.sample_episode(seed)
    scene, cur, goal = cl._render_pair(spec)
    est = gp.create({})
    est.predict(np.stack([cur["rgb"], goal["rgb"]]), intrinsics=cur["K"],
                depth=np.stack([cur["depth"], np.full_like(cur["depth"], np.nan)]))
    track = est.tracker()
    assert track is not None, est.last.reason
    session = PlannerSession(ManipulationPlanner())
    session.set_image_goal(goal["rgb"])
    session.bind_track(session.goal, track)
    return spec, scene, cur, session


@pytest.mark.parametrize("seed", [3])
def test_tracked_goal_is_planned_on_every_frame_until_done(seed):
    spec, scene, cur, session = _bound_session(seed)
    B = cur["world_T_cam"]
    try:
        first = session.plan_image_window(cur["rgb"], cur["depth"], B, 0.0)
        assert first.status == PlanStatus.OK and first.diagnostics["track"] == "at", first.reason
        # the tracked plan moves the object where the goal image shows it
        moved = first.object_poses[-1] @ np.linalg.inv(first.object_poses[0]) @ spec.start_pose
        e_t, e_r = cl.pose_error(moved, spec.goal_pose)
        assert e_t < 0.01 and np.degrees(e_r) < 4.0, (e_t, np.degrees(e_r))
        ex = cl.Execution(scene, first.ee_poses, first.ee_times, first.ee_labels,
                          scene.objects[0].half_height - 0.02)
        statuses = []
        while not ex.done and session.goal is not None:
            for _ in range(25):      # 0.5 s of path time at dt 0.02
                if not ex.done:
                    ex.step()
            fr = scene.render()
            vis = cl.object_visibility(scene, fr)
            p = session.plan_image_window(fr["rgb"], fr["depth"], B, 0.0)
            statuses.append((vis["fraction"], p.status.name, p.diagnostics.get("track"), p.reason))
        # every frame in which at least half of the object shows was planned (OK), or it was at its goal (DONE).
        # Carried, the object is off its support plane, where the search for a moved object looks: it is found
        # where its last motion takes it (ImageGoalTrack; without that, with the grasp over the footprint's cells
        # this seed lost it at 52 % visible)
        assert all(s in ("OK", "DONE") for f, s, _, _ in statuses if f >= 0.5), statuses
        assert statuses[-1][1] == "DONE" and session.goal is None, statuses   # reached: the goal is dropped
        assert any(t == "moved" for _, _, t, _ in statuses), statuses       # it was found where it was carried
    finally:
        scene.close()


def test_occluded_or_lost_goal_object_is_refused_with_the_reason():
    spec, scene, cur, session = _bound_session(1)
    B = cur["world_T_cam"]
    try:
        tr = session.goal.track
        # something in front of the whole object (its pixels 10 cm nearer): occluded, not guessed
        depth = cur["depth"].copy()
        depth[tr.model.mask] -= 0.10
        p = session.plan_image_window(cur["rgb"], depth, B, 0.0)
        assert p.status == PlanStatus.REFUSED and "occluded" in p.reason, p.reason
        # the object taken away (lifted 1 m, out of view): lost
        far = spec.start_pose.copy()
        far[:3, 3] += [0.0, 0.0, 1.0]
        scene.set_pose_override(cl.OBJECT, far)
        fr = scene.render()
        p = session.plan_image_window(fr["rgb"], fr["depth"], B, 0.0)
        assert p.status == PlanStatus.REFUSED and "lost" in p.reason, p.reason
        assert session.goal is not None   # the goal stays: a later frame may show the object again
        # back where it was: planned again
        scene.set_pose_override(cl.OBJECT, spec.start_pose)
        fr = scene.render()
        p = session.plan_image_window(fr["rgb"], fr["depth"], B, 0.0)
        assert p.status == PlanStatus.OK, p.reason
    finally:
        scene.close()
