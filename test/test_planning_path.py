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

"""End-effector path: composition with the object motion, timing under limits, workspace and limit checks, grasp."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trace_anything_ros.planning import se3
from trace_anything_ros.planning.grasp import compute_grasp
from trace_anything_ros.planning.path import (Limits, build_waypoints, check_workspace, limit_violations,
                                              time_parameterize, trapezoid_time)

LIMITS = Limits(max_linear_velocity=0.2, max_angular_velocity=0.8, max_linear_acceleration=0.4,
                max_angular_acceleration=1.5)


def _independent_limits_check(poses, times, lim: Limits, tol=1e-6):
    """Re-derives the contract without the module's code: mean velocities per edge, finite-difference
    accelerations at waypoints (rest at both ends)."""
    p = poses[:, :3, 3]
    dt = np.diff(times)
    assert np.all(dt > 0)
    v = np.diff(p, axis=0) / dt[:, None]
    w = np.stack([Rotation.from_matrix(poses[k + 1, :3, :3] @ poses[k, :3, :3].T).as_rotvec()
                  for k in range(len(poses) - 1)]) / dt[:, None]
    assert np.linalg.norm(v, axis=1).max() <= lim.max_linear_velocity * (1 + tol)
    assert np.linalg.norm(w, axis=1).max() <= lim.max_angular_velocity * (1 + tol)
    V = np.vstack([np.zeros(3), v, np.zeros(3)])
    Wv = np.vstack([np.zeros(3), w, np.zeros(3)])
    span = np.concatenate([[dt[0] / 2], (dt[:-1] + dt[1:]) / 2, [dt[-1] / 2]])
    acc = np.linalg.norm(np.diff(V, axis=0), axis=1) / span
    aacc = np.linalg.norm(np.diff(Wv, axis=0), axis=1) / span
    assert acc.max() <= lim.max_linear_acceleration * (1 + tol), acc.max()
    assert aacc.max() <= lim.max_angular_acceleration * (1 + tol), aacc.max()
    return np.linalg.norm(v, axis=1).max(), acc.max()


def _object_motion(seed, K=8):
    r = np.random.default_rng(seed)
    start = se3.make_pose(Rotation.from_rotvec([0, 0, r.uniform(-1, 1)]).as_matrix(),
                          [r.uniform(0.3, 0.5), r.uniform(-0.2, 0.2), 0.05])
    goal = se3.make_pose(Rotation.from_rotvec(r.normal(size=3) * 0.5).as_matrix() @ start[:3, :3],
                         start[:3, 3] + r.uniform(-0.25, 0.25, size=3) * [1, 1, 0.3] + [0, 0, 0.1])
    return se3.interpolate_poses(start, goal, np.linspace(0, 1, K))


def _grasp_for(obj0):
    g = obj0.copy()
    g[:3, :3] = se3.orthonormal_frame([0, 0, -1], obj0[:3, 1])
    g[:3, 3] += [0.0, 0.0, 0.03]
    return g


@pytest.mark.parametrize("seed", range(10))
def test_timing_respects_limits(seed):
    obj = _object_motion(seed)
    poses, labels = build_waypoints(obj, _grasp_for(obj[0]), 0.1, 0.1,
                                    start_pose=se3.make_pose(np.diag([1.0, -1, -1]), [0.3, 0.0, 0.5]))
    times = time_parameterize(poses, labels, LIMITS, gripper_dwell=0.3)
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    assert limit_violations(poses, times, LIMITS) == []
    vmax, amax = _independent_limits_check(poses, times, LIMITS)
    # Not absurdly slow either: the fastest edge uses a good share of the velocity budget.
    assert vmax > 0.2 * LIMITS.max_linear_velocity


def test_limit_violations_are_reported():
    obj = _object_motion(1)
    poses, labels = build_waypoints(obj, _grasp_for(obj[0]))
    times = time_parameterize(poses, labels, LIMITS)
    fast = times * 0.3  # the same path three times faster
    v = limit_violations(poses, fast, LIMITS)
    assert v and any("velocity" in s or "acceleration" in s for s in v)
    assert "not strictly increasing" in limit_violations(poses, np.zeros(len(poses)), LIMITS)[0]


def test_trapezoid_time():
    # triangular: d = a (T/2)^2
    assert np.isclose(trapezoid_time(0.04, 1.0, 1.0), 0.4)
    # trapezoidal: d / v + v / a
    assert np.isclose(trapezoid_time(2.0, 0.5, 1.0), 4.5)
    assert trapezoid_time(0.0, 1.0, 1.0) == 0.0


def test_path_composes_object_motion_with_grasp():
    obj = _object_motion(3)
    grasp = _grasp_for(obj[0])
    poses, labels = build_waypoints(obj, grasp, pre_grasp_distance=0.1, retreat_distance=0.05)
    assert labels[:2] == ["pre_grasp", "grasp"] and labels[-2:] == ["release", "retreat"]
    assert labels[2:-2] == [f"carry_{k}" for k in range(1, len(obj) - 1)]
    # Pre-grasp: 10 cm back along the approach (EE z), same orientation.
    assert np.allclose(poses[0][:3, 3], grasp[:3, 3] - 0.1 * grasp[:3, 2])
    assert np.allclose(poses[0][:3, :3], grasp[:3, :3])
    # Carry: the grasp expressed in the object frame is constant along the motion (rigid attachment).
    rel0 = se3.invert(obj[0]) @ grasp
    for k in range(1, len(obj)):
        ee = poses[1 + k]
        assert np.allclose(se3.invert(obj[k]) @ ee, rel0, atol=1e-9)
    # Retreat: 5 cm back along the release pose's approach axis.
    assert np.allclose(poses[-1][:3, 3], poses[-2][:3, 3] - 0.05 * poses[-2][:3, 2])


def test_pure_translation_moves_ee_by_the_same_vector():
    obj0 = se3.make_pose(np.eye(3), [0.4, 0.0, 0.05])
    d = np.array([0.1, -0.05, 0.02])
    obj = np.stack([se3.make_pose(np.eye(3), obj0[:3, 3] + s * d) for s in np.linspace(0, 1, 5)])
    grasp = _grasp_for(obj0)
    poses, labels = build_waypoints(obj, grasp)
    release = poses[labels.index("release")]
    assert np.allclose(release[:3, 3] - grasp[:3, 3], d)
    assert np.allclose(release[:3, :3], grasp[:3, :3])


def test_workspace_violation_names_waypoint_and_bound():
    obj = _object_motion(0)
    poses, labels = build_waypoints(obj, _grasp_for(obj[0]))
    assert check_workspace(poses, labels, (-1, -1, -0.5), (1, 1, 1)) is None
    z_top = poses[:, 2, 3].max()
    reason = check_workspace(poses, labels, (-1, -1, -0.5), (1, 1, z_top - 0.01))
    k = int(np.argmax(poses[:, 2, 3]))
    assert reason is not None
    assert f"waypoint {k} '{labels[k]}'" in reason and "z_max" in reason
    reason = check_workspace(poses, labels, (0.45, -1, -0.5), (1, 1, 1))
    assert reason is not None and "x_min=0.450" in reason


def test_grasp_top_down_closes_along_the_narrow_side():
    r = np.random.default_rng(0)
    # A 12 cm x 4 cm x 5 cm box rotated by 30 deg about z, standing on the table at z = 0.
    yaw = np.radians(30)
    Rz = Rotation.from_rotvec([0, 0, yaw]).as_matrix()
    pts = r.uniform([-0.06, -0.02, 0.0], [0.06, 0.02, 0.05], size=(2000, 3)) @ Rz.T + [0.4, 0.1, 0.0]
    g = compute_grasp(pts, grasp_depth=0.02, max_width=0.08)
    assert g.ok, g.reason
    assert np.allclose(g.approach, [0, 0, -1])
    assert np.allclose(g.pose[:3, 2], [0, 0, -1])  # EE z = approach
    narrow = Rz[:, 1]
    assert abs(g.pose[:3, 1] @ narrow) > 0.99  # fingers close along the 4 cm side
    assert np.isclose(g.pose[2, 3], 0.05 * 0.95 + 0.0 - 0.02, atol=0.004)  # top surface - grasp depth
    assert np.allclose(g.pose[:2, 3], [0.4, 0.1], atol=0.005)
    assert 0.035 < g.width < 0.045
    assert np.isclose(np.linalg.det(g.pose[:3, :3]), 1.0)
    # Override of the closing axis; a too-wide object is refused with the reason.
    g2 = compute_grasp(pts, closing_axis=Rz[:, 0], max_width=0.2)
    assert abs(g2.pose[:3, 1] @ Rz[:, 0]) > 0.99
    g3 = compute_grasp(pts, closing_axis=Rz[:, 0], max_width=0.08)
    assert not g3.ok and "exceeds the gripper" in g3.reason


def test_grasp_square_box_seen_from_one_side_closes_across_faces_at_the_centre():
    """A 6 x 6 x 7 cm box, yawed 20 deg, seen from the side: its top and one side face only. The fingers close
    along a face normal (not the diagonal, which is wider than the gripper) and the grasp is at the box's centre,
    not at the visible points' centroid (pulled towards the seen side)."""
    r = np.random.default_rng(1)
    Rz = Rotation.from_rotvec([0, 0, np.radians(20)]).as_matrix()
    top = np.c_[r.uniform(-0.03, 0.03, (1500, 2)), np.full(1500, 0.07)]
    side = np.c_[r.uniform(-0.03, 0.03, 1500), np.full(1500, -0.03), r.uniform(0.0, 0.07, 1500)]
    pts = np.concatenate([top, side]) @ Rz.T + [0.2, -0.1, 0.0]
    g = compute_grasp(pts, grasp_depth=0.02, max_width=0.08)
    assert g.ok, g.reason
    # within 4 deg of a face normal (the diagonal is 45 deg off; the search runs over the footprint's occupied 2 mm
    # cells, where this test's side face collapses onto a line of cells: 3 deg here)
    assert max(abs(g.pose[:3, 1] @ Rz[:, 0]), abs(g.pose[:3, 1] @ Rz[:, 1])) > np.cos(np.radians(4.0))
    assert 0.055 < g.width < 0.062
    assert np.allclose(g.pose[:2, 3], [0.2, -0.1], atol=0.003)
    assert np.isclose(g.pose[2, 3], 0.05, atol=0.003)


def test_grasp_centre_does_not_follow_the_sampling_density():
    """A camera samples an object's near side more densely than its far side (perspective; the near side face
    lands on the footprint's near edge). A 7.6 cm box, 8 cm opening: over the raw points the far edge's 98th
    percentile falls inside the box and the grasp centre moves towards the camera (the closed-loop failures, by
    0.6-1 cm); over the footprint's occupied cells (``grasp.FOOTPRINT_CELL``) the centre stays on the box's."""
    from trace_anything_ros.planning.grasp import FOOTPRINT_CELL

    r = np.random.default_rng(3)
    half = 0.038
    # top face: the density falls off towards the far side (+y), 20x from the near edge to the far one
    y = -half + 2 * half * (1.0 - np.sqrt(1.0 - r.uniform(0, 1, 6000) * (1 - 1 / 20.0 ** 2)) * 1.0)
    y = np.clip(-half + (2 * half) * np.log1p(r.uniform(0, 1, 6000) * (np.e ** 3 - 1)) / 3.0, -half, half)
    y = -y   # dense at -half (the camera's side)
    top = np.c_[r.uniform(-0.03, 0.03, y.size), y, np.full(y.size, 0.06)]
    side = np.c_[r.uniform(-0.03, 0.03, 3000), np.full(3000, -half), r.uniform(0.0, 0.06, 3000)]
    pts = np.concatenate([top, side]) + [0.3, 0.0, 0.0]
    dense = compute_grasp(pts, closing_axis=[0, 1, 0], footprint_cell=0.0)
    even = compute_grasp(pts, closing_axis=[0, 1, 0])
    assert FOOTPRINT_CELL > 0
    assert abs(dense.pose[1, 3]) > 0.002, dense.pose[:3, 3]    # pulled towards the dense side
    assert abs(even.pose[1, 3]) < 0.001, even.pose[:3, 3]
    assert even.width == pytest.approx(2 * half, abs=0.003) and even.width > dense.width
