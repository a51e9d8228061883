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

"""Closed loop of the goal-conditioned manipulation planner in MuJoCo (``sim.closed_loop``): perceive the pair
(current frame, goal image), plan, let the kinematic gripper execute the timed EE path, measure the object's final
pose against the goal. The full 20 + 20 episode figures come from ``trace-anything-ros bench closed_loop``."""
import pathlib

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="MuJoCo is needed for the closed-loop simulation tests")

from trace_anything_ros.sim import closed_loop as cl  # noqa: E402
from trace_anything_ros.sim.scene import make_T, rot_z  # noqa: E402

pytestmark = pytest.mark.sim

# the checkout's shipped weights, whatever the working directory (colcon test runs from its build directory)
WEIGHTS = str(pathlib.Path(__file__).resolve().parents[1] / "trace_anything_ros/model/weights/compact_sim.safetensors")


def test_episodes_are_random_reachable_and_deterministic():
    a, b, c = cl.sample_episode(0), cl.sample_episode(0), cl.sample_episode(1)
    assert a.scene_seed == b.scene_seed and np.allclose(a.goal_pose, b.goal_pose)
    assert a.scene_seed != c.scene_seed
    for s in (a, c):
        d = np.linalg.norm(s.goal_pose[:3, 3] - s.start_pose[:3, 3])
        assert 0.04 - 1e-9 <= d <= 0.15 + 1e-9 and abs(np.degrees(s.yaw)) <= 30.0
        assert s.goal_pose[2, 3] == pytest.approx(s.start_pose[2, 3])  # on the table


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_perception_moves_the_object_to_its_goal(seed):
    spec = cl.sample_episode(seed)
    r = cl.run_episode(spec, "gt")
    assert r.plan_status == "OK", r.plan_reason
    assert r.grasped, r.grasp_note
    assert r.translation_error_cm <= 2.0 and r.rotation_error_deg <= 10.0, r
    assert r.success
    # the object really moved (it started commanded_translation away from the goal)
    assert r.commanded_translation_cm >= 4.0


def test_wrong_grasp_point_picks_up_nothing():
    """No cheating in the executor: a plan whose grasp misses the object leaves the object where it was."""
    from trace_anything_ros.planning.planner import ManipulationPlanner
    from trace_anything_ros.planning.object_motion import ObjectSelection

    spec = cl.sample_episode(0)
    scene, cur, goal = cl._render_pair(spec)
    try:
        fld = cl.gt_goal_field(scene, spec, cur, goal)
        mask = cur["seg_body"] == scene.body_id(cl.OBJECT)
        plan = ManipulationPlanner().plan_from_goal_image(fld, ObjectSelection(mask=mask), cur["world_T_cam"],
                                                          now=0.0, depth=cur["depth"])
        assert plan.ok, plan.reason
        shift = make_T(np.eye(3), [0.05, 0.0, 0.0])  # every EE waypoint 5 cm off in x
        plan.ee_poses = shift @ plan.ee_poses
        obj = scene.objects[0]
        log = cl.execute_plan(scene, plan, obj.half_height - 0.02)
        assert not log.grasped and ("miss" in log.grasp_note or "opening" in log.grasp_note), log.grasp_note
        assert np.allclose(log.final_pose, spec.start_pose)
    finally:
        scene.close()


def test_check_grasp_geometry():
    tol = cl.GraspTolerance()
    obj = make_T(rot_z(0.3), [0.1, 0.0, 0.775])
    ee = make_T(rot_z(0.3) @ np.diag([-1.0, 1.0, -1.0]), [0.1, 0.0, 0.79])  # z down, fingers along the box's y
    assert cl.check_grasp(ee, obj, (0.03, 0.03, 0.035), tol)[0]
    assert not cl.check_grasp(ee @ make_T(np.eye(3), [0.0, 0.02, 0.0]), obj, (0.03, 0.03, 0.035), tol)[0]
    assert not cl.check_grasp(ee @ make_T(np.eye(3), [0.04, 0.0, 0.0]), obj, (0.03, 0.03, 0.035), tol)[0]
    assert not cl.check_grasp(ee @ make_T(np.eye(3), [0.0, 0.0, -0.05]), obj, (0.03, 0.03, 0.035), tol)[0]
    diag = make_T(rot_z(0.3 + np.pi / 4) @ np.diag([-1.0, 1.0, -1.0]), [0.1, 0.0, 0.79])  # across the diagonal
    assert not cl.check_grasp(diag, obj, (0.03, 0.03, 0.035), tol)[0]


def test_model_perception_default_moves_the_object_to_its_goal():
    """The default goal-image perception (the goal-pair estimator on current RGB-D + goal RGB) in the loop."""
    model = cl.ModelPerception()
    try:
        r = cl.run_episode(cl.sample_episode(1), "model", model=model)
    finally:
        model.close()
    assert r.plan_status == "OK", r.plan_reason
    assert r.grasped, r.grasp_note
    assert r.translation_error_cm <= 2.0 and r.rotation_error_deg <= 10.0, r
    assert r.extras["goal_confidence"] >= 0.5


def test_network_on_a_goal_pair_sees_no_motion_and_moves_nothing():
    """The compact network on the RGB pair (``estimator="network"``), a known limitation named as what it is: it
    was trained on video windows and sees no motion between a current frame and a goal image, so it reports the
    object at its goal (DONE), nothing is executed and the object stays the full commanded distance away. This
    fails the day the network learns goal pairs (then assert the 2 cm / 10 deg tolerance here); the goal-pair
    estimator is the default (``test_model_perception_default_moves_the_object_to_its_goal``)."""
    model = cl.ModelPerception(WEIGHTS, estimator="network", threads=1)
    spec = cl.sample_episode(0)
    try:
        r = cl.run_episode(spec, "model", model=model)
    finally:
        model.close()
    assert r.plan_status == "DONE", (r.plan_status, r.plan_reason)
    assert not r.grasped and r.grasp_note == "not executed"
    assert not r.success and r.translation_error_cm == pytest.approx(spec.translation * 100, abs=1e-6)
