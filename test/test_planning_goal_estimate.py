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


"""planning.session.estimate_image_goal: the goal-image estimator's run on (current frame, goal image) -> the 2-frame
field the planner session plans, or the refusal naming what is missing -- without ROS (the planner node calls it).
A rendered MuJoCo episode of ``sim.closed_loop`` (seed 103, as test_goal_pair.py) and the real goal-pair estimator.
"""
import numpy as np
import pytest

pytest.importorskip("mujoco", reason="MuJoCo is needed to render the goal-pair episode")

from trace_anything_ros.planning import goal_pair as gp  # noqa: E402
from trace_anything_ros.planning.planner import ManipulationPlanner, PlanStatus  # noqa: E402
from trace_anything_ros.planning.session import PlannerSession, estimate_image_goal  # noqa: E402
from trace_anything_ros.sim import closed_loop as cl  # noqa: E402

pytestmark = pytest.mark.sim


def test_the_estimate_is_a_field_the_session_plans(goal_pair_episode):
    spec, cur, goal = goal_pair_episode
    est = gp.GoalPairEstimator()
    depth = np.stack([cur["depth"], np.full_like(cur["depth"], np.nan)])
    ge = estimate_image_goal(est, np.stack([cur["rgb"], goal["rgb"]]), 7.5, "cam_optical", depth, cur["K"])
    assert ge.refusal is None and ge.quality is est.last and ge.quality.ok and ge.seconds > 0
    f = ge.field
    assert f.metric and f.frame_id == "cam_optical" and np.allclose(f.intrinsics, cur["K"])
    assert np.allclose(f.stamps, [7.5, 7.5]) and f.ctrl_pts.shape[0] == 2
    session = PlannerSession(ManipulationPlanner())
    session.set_image_goal(goal["rgb"], now=7.5)
    plan = session.plan_image(f, cur["world_T_cam"], 7.5)
    assert plan.ok, plan.reason
    moved = plan.object_poses[-1] @ np.linalg.inv(plan.object_poses[0]) @ spec.start_pose
    e_t, e_r = cl.pose_error(moved, spec.goal_pose)
    assert e_t < 0.01 and np.degrees(e_r) < 4.0, (e_t, np.degrees(e_r))


def test_a_missing_input_is_refused_with_its_source(goal_pair_episode):
    _, cur, goal = goal_pair_episode
    ge = estimate_image_goal(gp.GoalPairEstimator(), np.stack([cur["rgb"], goal["rgb"]]), 3.0, "cam", None,
                             cur["K"])
    assert ge.field is None and ge.refusal.status == PlanStatus.REFUSED and ge.refusal.stamp == 3.0
    assert ge.refusal.reason.startswith("image goal: goal-pair estimator: missing input: depth of the current frame")
    assert ge.refusal.reason.endswith("(topics 'depth' with the image's stamp, 'camera_info')")
