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

"""SE(3) helpers on 4x4 homogeneous matrices (numpy; quaternions are x, y, z, w like ROS).

Naming: ``a_T_b`` maps coordinates expressed in frame ``b`` into frame ``a`` (``p_a = a_T_b @ p_b``), which is
also the pose of frame ``b`` in frame ``a`` -- the transform ``tf2.lookup_transform(a, b)`` returns.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def make_pose(rotation=None, translation=None) -> np.ndarray:
    """4x4 pose from a 3x3 rotation (default identity) and a translation (default zero)."""
    T = np.eye(4)
    if rotation is not None:
        T[:3, :3] = np.asarray(rotation, dtype=np.float64)
    if translation is not None:
        T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrix of a quaternion (x, y, z, w); normalised first. Works on [..., 4]."""
    q = np.asarray(q, dtype=np.float64)
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R) -> np.ndarray:
    """Quaternion (x, y, z, w) with w >= 0 of a rotation matrix [..., 3, 3]."""
    R = np.asarray(R, dtype=np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(R.shape[:-2] + (4,))


def pose_from_xyz_quat(xyz, quat) -> np.ndarray:
    return make_pose(quat_to_matrix(quat), xyz)


def pose_to_xyz_quat(T):
    """(xyz [3], quat xyzw [4]) of a 4x4 pose."""
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].copy(), matrix_to_quat(T[:3, :3])


def invert(T) -> np.ndarray:
    """Inverse of rigid transforms [..., 4, 4] (uses R^T, not a general inverse)."""
    T = np.asarray(T, dtype=np.float64)
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def compose(*Ts) -> np.ndarray:
    """Product T1 @ T2 @ ... (broadcasts over leading dimensions)."""
    out = np.asarray(Ts[0], dtype=np.float64)
    for T in Ts[1:]:
        out = out @ np.asarray(T, dtype=np.float64)
    return out


def transform_points(T, points) -> np.ndarray:
    """Apply a 4x4 transform to points [..., 3]."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    out = p.reshape(-1, 3) @ T[:3, :3].T  # one 2-D GEMM (a batched matmul is much slower for [..., M, 3])
    out += T[:3, 3]
    return out.reshape(p.shape)


def rotation_angle(R) -> np.ndarray:
    """Rotation angle in radians (in [0, pi]) of rotation matrices [..., 3, 3]."""
    R = np.asarray(R, dtype=np.float64)
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    # arccos is ill-conditioned near 0; use the atan2 form with the skew part.
    s = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return np.arctan2(np.linalg.norm(s, axis=-1) / 2.0, c)


def rotation_error(R_a, R_b) -> np.ndarray:
    """Angle (rad) of the relative rotation R_a^T R_b."""
    R_a = np.asarray(R_a, dtype=np.float64)
    return rotation_angle(np.swapaxes(R_a, -1, -2) @ np.asarray(R_b, dtype=np.float64))


def pose_distance(T_a, T_b):
    """(translation distance, rotation angle in rad) between poses."""
    T_a = np.asarray(T_a, dtype=np.float64)
    T_b = np.asarray(T_b, dtype=np.float64)
    return (np.linalg.norm(T_a[..., :3, 3] - T_b[..., :3, 3], axis=-1),
            rotation_error(T_a[..., :3, :3], T_b[..., :3, :3]))


def rotvec(R) -> np.ndarray:
    """Rotation vector (axis * angle) of rotation matrices [..., 3, 3] (closed form; scipy near angle pi)."""
    R = np.asarray(R, dtype=np.float64)
    ang = rotation_angle(R)
    s = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = np.sin(ang)
    small = ang < 1e-8
    factor = np.where(small, 0.5, ang / (2.0 * np.where(small, 1.0, sin)))
    out = s * factor[..., None]
    near_pi = ang > np.pi - 1e-3
    if np.any(near_pi):  # the skew part vanishes near pi: scipy handles it
        out[near_pi] = Rotation.from_matrix(R[near_pi].reshape(-1, 3, 3)).as_rotvec()
    return out


def exp_rotvec(w) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of rotation vectors [..., 3] (Rodrigues)."""
    w = np.asarray(w, dtype=np.float64)
    th = np.sqrt((w * w).sum(-1))
    small = th < 1e-12
    k = w / np.where(small, 1.0, th)[..., None]
    K = np.zeros(w.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -k[..., 2], k[..., 1]
    K[..., 1, 0], K[..., 1, 2] = k[..., 2], -k[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -k[..., 1], k[..., 0]
    s, c = np.sin(th)[..., None, None], np.cos(th)[..., None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def interpolate_poses(T0, T1, s) -> np.ndarray:
    """Poses [K, 4, 4] on the geodesic T0 -> T1 (linear translation, constant-rate rotation) at fractions ``s``
    (clamped to [0, 1])."""
    s = np.clip(np.atleast_1d(np.asarray(s, dtype=np.float64)), 0.0, 1.0)
    T0 = np.asarray(T0, dtype=np.float64)
    T1 = np.asarray(T1, dtype=np.float64)
    w = rotvec(T0[:3, :3].T @ T1[:3, :3])
    out = np.tile(np.eye(4), (s.size, 1, 1))
    out[:, :3, :3] = T0[:3, :3] @ exp_rotvec(s[:, None] * w)
    out[:, :3, 3] = (1.0 - s)[:, None] * T0[:3, 3] + s[:, None] * T1[:3, 3]
    return out


def orthonormal_frame(z_axis, y_hint) -> np.ndarray:
    """Right-handed rotation whose z column is ``z_axis`` and whose y column is ``y_hint`` made orthogonal to it.

    Falls back to any perpendicular y when ``y_hint`` is (nearly) parallel to ``z_axis``.
    """
    z = np.asarray(z_axis, dtype=np.float64)
    z = z / np.linalg.norm(z)
    y = np.asarray(y_hint, dtype=np.float64)
    y = y - z * (y @ z)
    if np.linalg.norm(y) < 1e-6:
        helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        y = helper - z * (helper @ z)
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)
