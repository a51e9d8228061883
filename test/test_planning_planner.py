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

"""ManipulationPlanner end to end on synthetic trajectory fields with known motion (field.synthetic)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trace_anything_ros.field.synthetic import Body, Scene, make_field
from trace_anything_ros.field.types import TrajectoryField
from trace_anything_ros.planning import (ManipulationPlanner, ObjectSelection, PlannerParams, PlanStatus, se3)
from trace_anything_ros.planning.path import Limits, limit_violations

# Camera 1.2 m above the base origin + 0.4 m in x, looking straight down (optical x -> base x, y -> -y, z -> -z).
BASE_T_CAM = se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.4, 0.0, 1.2])
K = np.array([[200.0, 0, 48], [0, 200.0, 48], [0, 0, 1]])


def _goal_field(velocity=(0.10, 0.05, 0.0), angular=(0.0, 0.0, 0.4), noise_abs=0.0, seed=0):
    """A 6 x 4 cm plate 0.6 m in front of the camera (base z = 0.6) moving over 1 s: 2-frame (current, goal)."""
    body = Body(center=(0.0, 0.0, 0.6), half_size=(0.03, 0.02), velocity=velocity, angular_velocity=angular)
    scene = Scene([body], background_z=1.1, background_tilt=0.0)
    fld, truth = make_field(scene, num_frames=2, H=96, W=96, num_ctrl=4, K=K, noise_abs=noise_abs, seed=seed)
    R, t = scene.pose(0, [truth.stamps[1] - truth.stamps[0]])
    cam_motion = se3.make_pose(R[0], t[0])
    base_motion = BASE_T_CAM @ cam_motion @ se3.invert(BASE_T_CAM)
    return fld, truth, base_motion


def _check_motion(plan, base_motion, truth, rot_tol_deg=1.0, trans_tol=0.003):
    assert plan.status == PlanStatus.OK, plan.reason
    obj0, obj1 = plan.object_poses[0], plan.object_poses[-1]
    fitted = obj1 @ se3.invert(obj0)
    assert np.degrees(se3.rotation_error(base_motion[:3, :3], fitted[:3, :3])) < rot_tol_deg
    c = obj0[:3, 3]  # the object's centroid at the current time (base frame)
    assert np.linalg.norm(se3.transform_points(fitted, c) - se3.transform_points(base_motion, c)) < trans_tol
    # The centroid is where the plate is: base (0.4 + 0, 0, 1.2 - 0.6).
    assert np.allclose(c, [0.4, 0.0, 0.6], atol=0.01)


def test_goal_image_with_instance_labels():
    fld, truth, motion = _goal_field()
    planner = ManipulationPlanner(PlannerParams())
    plan = planner.plan_from_goal_image(fld, ObjectSelection(labels=truth.labels[0], object_id=1), BASE_T_CAM,
                                        now=1000.0, object_id=7)
    _check_motion(plan, motion, truth)
    assert plan.object_id == 7 and 0.5 < plan.confidence <= 1.0
    assert plan.ee_labels[0] == "pre_grasp" and plan.ee_labels[-1] == "retreat"
    assert plan.ee_times[0] == pytest.approx(1000.0) and np.all(np.diff(plan.ee_times) > 0)
    assert len(plan.object_poses) == PlannerParams().num_waypoints == len(plan.object_times)
    # Object times are the EE's carry times (relative to the stamp): grasp, carry..., release.
    gi = plan.ee_labels.index("grasp")
    assert np.allclose(plan.object_times, plan.ee_times[gi:gi + len(plan.object_times)] - 1000.0)
    # Grasp: top-down on the plate (it is horizontal in the base frame), fingers along its 4 cm side (base y).
    assert np.allclose(plan.approach, [0, 0, -1])
    assert abs(plan.grasp_pose[:3, 1] @ [0, 1, 0]) > 0.99
    assert plan.grasp_pose[2, 3] == pytest.approx(0.6 - 0.02, abs=0.003)
    p = PlannerParams()
    assert limit_violations(plan.ee_poses, plan.ee_times, p.limits) == []
    # The EE carries the grasp along the object: release = motion applied to the grasp pose.
    release = plan.ee_poses[plan.ee_labels.index("release")]
    assert np.allclose(release, (plan.object_poses[-1] @ se3.invert(plan.object_poses[0])) @ plan.grasp_pose)


def test_goal_image_with_pixel_and_box_prompts_and_noise():
    fld, truth, motion = _goal_field(noise_abs=0.001, seed=3)
    planner = ManipulationPlanner()
    v, u = np.argwhere(truth.labels[0] == 1).mean(0)
    plan = planner.plan_from_goal_image(fld, ObjectSelection(pixel=(u * 2, v * 2), source_size=(192, 192)),
                                        BASE_T_CAM, now=0.0)
    _check_motion(plan, motion, truth, rot_tol_deg=2.0, trans_tol=0.004)
    assert "moving region" in plan.diagnostics["selection"]
    rows, cols = np.nonzero(truth.labels[0] == 1)
    box = (cols.min() - 3, rows.min() - 3, cols.max() + 4, rows.max() + 4)
    plan_b = planner.plan_from_goal_image(fld, ObjectSelection(box=box), BASE_T_CAM, now=0.0)
    _check_motion(plan_b, motion, truth, rot_tol_deg=2.0, trans_tol=0.004)


def test_non_metric_field_scale_from_depth_or_assumed():
    fld, truth, motion = _goal_field()
    half = TrajectoryField(fld.ctrl_pts * 0.5, fld.ctrl_conf, fld.frame_times, fld.stamps, fld.intrinsics,
                           metric=False, frame_id=fld.frame_id)
    planner = ManipulationPlanner()
    sel = ObjectSelection(labels=truth.labels[0], object_id=1)
    depth = truth.points[0][..., 2].astype(np.float32)  # metres, frame 0
    plan = planner.plan_from_goal_image(half, sel, BASE_T_CAM, now=0.0, depth=depth)
    assert plan.diagnostics["scale"] == pytest.approx(2.0, rel=1e-3)
    assert "depth" in plan.diagnostics["scale_note"]
    _check_motion(plan, motion, truth)
    depth_mm = np.round(depth * 1000).astype(np.uint16)  # 16UC1
    plan_mm = planner.plan_from_goal_image(half, sel, BASE_T_CAM, now=0.0, depth=depth_mm)
    assert plan_mm.diagnostics["scale"] == pytest.approx(2.0, rel=5e-3)
    plan_assumed = ManipulationPlanner(PlannerParams(assumed_scale=2.0)).plan_from_goal_image(
        half, sel, BASE_T_CAM, now=0.0)
    assert "assumed scale 2" in plan_assumed.diagnostics["scale_note"]
    _check_motion(plan_assumed, motion, truth)


def test_goal_image_refusals():
    fld, truth, motion = _goal_field()
    planner = ManipulationPlanner()
    # Empty selection.
    plan = planner.plan_from_goal_image(fld, ObjectSelection(mask=np.zeros((96, 96), bool)), BASE_T_CAM, now=0.0)
    assert plan.status == PlanStatus.REFUSED and "usable pixels" in plan.reason
    # A workspace that ends below the pre-grasp height.
    tight = ManipulationPlanner(PlannerParams(workspace_max=(0.8, 0.8, 0.65)))
    plan = tight.plan_from_goal_image(fld, ObjectSelection(labels=truth.labels[0], object_id=1), BASE_T_CAM,
                                      now=0.0)
    assert plan.status == PlanStatus.REFUSED
    assert "'pre_grasp'" in plan.reason and "z_max=0.650" in plan.reason
    # A mask over three plates moving differently: no rigid motion explains it -> the fit gates refuse it.
    bodies = [Body(center=(x, 0.0, 0.6), half_size=(0.02, 0.02), velocity=v)
              for x, v in ((-0.06, (0.1, 0, 0)), (0.0, (0, 0.1, 0)), (0.06, (-0.1, -0.1, 0)))]
    fld3, truth3 = make_field(Scene(bodies, background_z=1.1, background_tilt=0.0), num_frames=2, H=96, W=96,
                              num_ctrl=4, K=K)
    plan = planner.plan_from_goal_image(fld3, ObjectSelection(mask=truth3.labels[0] > 0), BASE_T_CAM, now=0.0)
    assert plan.status == PlanStatus.REFUSED and "fit" in plan.reason and "inlier ratio" in plan.reason


def test_static_object_is_done():
    fld, truth, _ = _goal_field(velocity=(0, 0, 0), angular=(0, 0, 0))
    sel = ObjectSelection(mask=truth.body[0] == 0)
    plan = ManipulationPlanner().plan_from_goal_image(fld, sel, BASE_T_CAM, now=0.0)
    assert plan.status == PlanStatus.DONE


def _tracked_points(seed=0, T=8, M=500):
    r = np.random.default_rng(seed)
    obj = r.uniform([-0.03, -0.02, 0.0], [0.03, 0.02, 0.05], size=(M, 3))
    poses = [se3.make_pose(Rotation.from_rotvec([0, 0, 0.05 * k]).as_matrix(), [0.4 + 0.005 * k, 0.1, 0.0])
             for k in range(T)]
    pts_b = np.stack([se3.transform_points(P, obj) for P in poses]) + r.normal(size=(T, M, 3)) * 0.0005
    return se3.transform_points(se3.invert(BASE_T_CAM), pts_b), poses, obj


def test_plan_to_object_pose_moves_object_to_target():
    pts_cam, poses, obj = _tracked_points()
    target = se3.make_pose(Rotation.from_rotvec([0, 0, 1.0]).as_matrix(), [0.3, -0.2, 0.05])
    planner = ManipulationPlanner()
    plan = planner.plan_to_object_pose(pts_cam, None, target, BASE_T_CAM, now=5.0, object_id=3)
    assert plan.status == PlanStatus.OK, plan.reason
    # Current pose: centroid at the newest frame, orientation = fitted rotation history (0.35 rad about z).
    cur = plan.object_poses[0]
    assert np.allclose(cur[:3, 3], se3.transform_points(poses[-1], obj.mean(0)), atol=0.002)
    assert se3.rotation_angle(cur[:3, :3]) == pytest.approx(0.35, abs=np.radians(1))
    assert np.allclose(plan.object_poses[-1], target)
    # EE at release holds the object at the target with the grasp offset.
    release = plan.ee_poses[plan.ee_labels.index("release")]
    assert np.allclose(se3.invert(target) @ release, se3.invert(cur) @ plan.grasp_pose, atol=1e-9)
    assert limit_violations(plan.ee_poses, plan.ee_times, planner.params.limits) == []
    # Already there -> DONE.
    done = planner.plan_to_object_pose(pts_cam, None, cur, BASE_T_CAM, now=5.0)
    assert done.status == PlanStatus.DONE
    # Target outside the workspace -> refused, the carry waypoint is named.
    far = se3.make_pose(np.eye(3), [1.5, 0.0, 0.05])
    ref = planner.plan_to_object_pose(pts_cam, None, far, BASE_T_CAM, now=5.0)
    assert ref.status == PlanStatus.REFUSED and "x_max" in ref.reason and "'carry_" in ref.reason


def test_limits_scale_the_plan_duration():
    pts_cam, _, _ = _tracked_points()
    target = se3.make_pose(np.eye(3), [0.3, -0.2, 0.05])
    slow = ManipulationPlanner(PlannerParams(max_linear_velocity=0.05, max_linear_acceleration=0.1))
    fast = ManipulationPlanner(PlannerParams(max_linear_velocity=0.5, max_linear_acceleration=1.0))
    ps = slow.plan_to_object_pose(pts_cam, None, target, BASE_T_CAM, now=0.0)
    pf = fast.plan_to_object_pose(pts_cam, None, target, BASE_T_CAM, now=0.0)
    assert ps.ok and pf.ok
    assert ps.ee_times[-1] > 3 * pf.ee_times[-1]
    for plan, planner in ((ps, slow), (pf, fast)):
        assert limit_violations(plan.ee_poses, plan.ee_times, planner.params.limits) == []
        v = np.linalg.norm(np.diff(plan.ee_poses[:, :3, 3], axis=0), axis=1) / np.diff(plan.ee_times)
        assert v.max() <= planner.params.max_linear_velocity * (1 + 1e-6)


def test_params_validation():
    with pytest.raises(ValueError, match="max_linear_velocity"):
        PlannerParams(max_linear_velocity=0).validate()
    with pytest.raises(ValueError, match="workspace"):
        PlannerParams(workspace_min=(0, 0, 0), workspace_max=(1, 1, 0)).validate()
    with pytest.raises(ValueError, match="closing_axis"):
        PlannerParams(closing_axis=(0, 0, 1)).validate()
    with pytest.raises(ValueError, match="unknown"):
        PlannerParams.from_dict({"max_speed": 1.0})
    p = PlannerParams.from_dict({"max_linear_velocity": 0.1})
    assert p.limits == Limits(0.1, 1.0, 0.5, 2.0)
    assert [s.value for s in PlanStatus] == [0, 1, 2, 3, 4]  # msg/ManipulationPlan.msg STATUS_* constants
