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

"""End-effector path for a grasp-and-move: waypoints, timing under velocity/acceleration limits, safety checks.

Waypoints (all in the robot base frame): optional ``start`` (the current EE pose), ``pre_grasp`` (the grasp
backed off along the approach), ``grasp``, ``carry_1 .. carry_{K-1}`` (the object's motion composed with the grasp:
``ee_k = obj_k @ inv(obj_0) @ ee_grasp``; the last one is the release pose), ``retreat`` (the release pose
backed off along its approach axis, the EE's z).

Timing: every segment outside the carry is rest-to-rest with a trapezoidal profile (the slower of the linear
and the angular profile). The carry is one motion along its polyline: a trapezoidal profile of a normalised
path parameter (per edge, the time at full speed ``max(d / v_max, angle / w_max)``), stretched uniformly until
the finite-difference check passes. The gripper dwells ``gripper_dwell`` seconds at grasp and at release: the
edge leaving those waypoints starts that much later (its time difference includes the dwell).

``check_limits`` is the contract: per edge, the mean linear/angular velocity is within the limits; at every
waypoint, the change of the mean velocity vectors of the adjacent edges divided by their mean duration is within
the acceleration limits, where the path starts and ends at rest. A plan is only returned when it passes. The
workspace is an axis-aligned box in the base frame; since the EE moves on straight segments between waypoints
and the box is convex, checking the waypoints suffices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import se3


@dataclass(frozen=True)
class Limits:
    max_linear_velocity: float = 0.25       # m/s
    max_angular_velocity: float = 1.0       # rad/s
    max_linear_acceleration: float = 0.5    # m/s^2
    max_angular_acceleration: float = 2.0   # rad/s^2


@dataclass
class EEPath:
    poses: np.ndarray          # [W, 4, 4] base frame
    times: np.ndarray          # [W] seconds from the path's start (arrival times)
    labels: List[str]

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0


def transform_poses(a_T_b, poses_b) -> np.ndarray:
    """Express poses ``[..., 4, 4]`` given in frame b in frame a (e.g. camera -> base with ``base_T_camera``)."""
    return np.asarray(a_T_b, dtype=np.float64) @ np.asarray(poses_b, dtype=np.float64)


def build_waypoints(object_poses, grasp_pose, pre_grasp_distance: float = 0.1, retreat_distance: float = 0.1,
                    start_pose=None) -> Tuple[np.ndarray, List[str]]:
    """EE waypoints ``[W, 4, 4]`` and their labels (see the module docstring)."""
    obj = np.asarray(object_poses, dtype=np.float64)
    g = np.asarray(grasp_pose, dtype=np.float64)
    poses, labels = [], []
    if start_pose is not None:
        poses.append(np.asarray(start_pose, dtype=np.float64))
        labels.append("start")
    pre = g.copy()
    pre[:3, 3] -= pre_grasp_distance * g[:3, 2]
    poses += [pre, g]
    labels += ["pre_grasp", "grasp"]
    rel = se3.invert(obj[0]) @ g  # grasp in the object's frame
    for k in range(1, len(obj)):
        poses.append(obj[k] @ rel)
        labels.append(f"carry_{k}")
    if len(obj) > 1:
        labels[-1] = "release"
    else:
        labels[-1] = "grasp"  # no motion: grasp and release at the same pose
    last = poses[-1]
    ret = last.copy()
    ret[:3, 3] -= retreat_distance * last[:3, 2]
    poses.append(ret)
    labels.append("retreat")
    return np.stack(poses), labels


def trapezoid_time(distance: float, vmax: float, amax: float) -> float:
    """Rest-to-rest duration of a trapezoidal (or triangular) profile."""
    d = abs(float(distance))
    if d <= 0.0:
        return 0.0
    if d <= vmax * vmax / amax:
        return 2.0 * np.sqrt(d / amax)
    return d / vmax + vmax / amax


def _trapezoid_inverse(s, L: float, A: float) -> np.ndarray:
    """Times at which a rest-to-rest profile with unit speed limit and acceleration A reaches positions s."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, L)
    ta = min(1.0 / A, np.sqrt(L / A))
    vp = A * ta
    sa = 0.5 * A * ta * ta
    T = 2 * ta + (L - 2 * sa) / vp
    return np.where(s <= sa, np.sqrt(2 * s / A),
                    np.where(s <= L - sa, ta + (s - sa) / vp, T - np.sqrt(np.maximum(2 * (L - s) / A, 0.0))))


def _edges(poses):
    p = poses[:, :3, 3]
    dp = np.diff(p, axis=0)  # [E, 3]
    R = poses[:, :3, :3]
    rv = se3.rotvec(R[1:] @ np.swapaxes(R[:-1], -1, -2)) if len(poses) > 1 else np.zeros((0, 3))
    return dp, rv  # world-frame displacement and rotation vectors per edge


def limit_violations(poses, times, limits: Limits, rtol: float = 1e-6) -> List[str]:
    """Human-readable violations of ``limits`` (empty list: OK). See the module docstring for the contract."""
    poses = np.asarray(poses, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    out = []
    if len(poses) < 2:
        return out
    dt = np.diff(times)
    if not np.all(dt > 0):
        k = int(np.argmin(dt))
        return [f"times not strictly increasing at waypoint {k + 1}"]
    dp, rv = _edges(poses)
    v = dp / dt[:, None]
    w = rv / dt[:, None]
    vl = np.linalg.norm(v, axis=1)
    wl = np.linalg.norm(w, axis=1)
    for k in np.nonzero(vl > limits.max_linear_velocity * (1 + rtol))[0]:
        out.append(f"edge {k}->{k + 1}: linear velocity {vl[k]:.4f} > {limits.max_linear_velocity} m/s")
    for k in np.nonzero(wl > limits.max_angular_velocity * (1 + rtol))[0]:
        out.append(f"edge {k}->{k + 1}: angular velocity {wl[k]:.4f} > {limits.max_angular_velocity} rad/s")
    # Accelerations at waypoints, rest at both ends.
    z = np.zeros((1, 3))
    V = np.concatenate([z, v, z])
    Wv = np.concatenate([z, w, z])
    span = np.concatenate([[dt[0] / 2], (dt[:-1] + dt[1:]) / 2, [dt[-1] / 2]])  # ends: half an edge from rest
    al = np.linalg.norm(np.diff(V, axis=0), axis=1) / span
    aw = np.linalg.norm(np.diff(Wv, axis=0), axis=1) / span
    for k in np.nonzero(al > limits.max_linear_acceleration * (1 + rtol))[0]:
        out.append(f"waypoint {k}: linear acceleration {al[k]:.4f} > {limits.max_linear_acceleration} m/s^2")
    for k in np.nonzero(aw > limits.max_angular_acceleration * (1 + rtol))[0]:
        out.append(f"waypoint {k}: angular acceleration {aw[k]:.4f} > {limits.max_angular_acceleration} rad/s^2")
    return out


def check_workspace(poses, labels: Sequence[str], minimum, maximum, skip: Sequence[str] = ("start",)) \
        -> Optional[str]:
    """None when every waypoint (except labels in ``skip``) lies in the box; else the first violation."""
    lo = np.asarray(minimum, dtype=np.float64)
    hi = np.asarray(maximum, dtype=np.float64)
    for i, (T, lab) in enumerate(zip(np.asarray(poses), labels)):
        if lab in skip:
            continue
        p = T[:3, 3]
        for ax, name in enumerate("xyz"):
            if p[ax] < lo[ax]:
                return (f"waypoint {i} '{lab}' leaves the workspace: {name}={p[ax]:.3f} m is below "
                        f"{name}_min={lo[ax]:.3f} m")
            if p[ax] > hi[ax]:
                return (f"waypoint {i} '{lab}' leaves the workspace: {name}={p[ax]:.3f} m is above "
                        f"{name}_max={hi[ax]:.3f} m")
        if not np.all(np.isfinite(T)):
            return f"waypoint {i} '{lab}' is not finite"
    return None


def time_parameterize(poses, labels: Sequence[str], limits: Limits, gripper_dwell: float = 0.5,
                      max_stretch_iterations: int = 20) -> np.ndarray:
    """Arrival times ``[W]`` (seconds from the first waypoint) under ``limits`` (see the module docstring)."""
    poses = np.asarray(poses, dtype=np.float64)
    W = len(poses)
    if W == 0:
        return np.zeros(0)
    dp, rv = _edges(poses)
    d = np.linalg.norm(dp, axis=1)
    a = np.linalg.norm(rv, axis=1)
    L = limits
    carry = np.array([lab.startswith("carry_") or lab == "release" for lab in labels])
    # Edges k -> k+1 that belong to the carry: those ending at a carry/release waypoint.
    carry_edge = carry[1:]
    dwell = np.array([gripper_dwell if labels[k] in ("grasp", "release") else 0.0 for k in range(W - 1)])
    rest = np.array([max(trapezoid_time(d[k], L.max_linear_velocity, L.max_linear_acceleration),
                         trapezoid_time(a[k], L.max_angular_velocity, L.max_angular_acceleration))
                     for k in range(W - 1)])
    motion = rest.copy()
    idx = np.nonzero(carry_edge)[0]
    if len(idx):
        ell = np.maximum(d[idx] / L.max_linear_velocity, a[idx] / L.max_angular_velocity)
        ell = np.maximum(ell, 1e-9)
        A = min(L.max_linear_acceleration / L.max_linear_velocity,
                L.max_angular_acceleration / L.max_angular_velocity)
        tc = _trapezoid_inverse(np.concatenate([[0.0], np.cumsum(ell)]), float(ell.sum()), A)
        base = np.diff(tc)
        motion[idx] = base
        for _ in range(max_stretch_iterations):
            times = np.concatenate([[0.0], np.cumsum(np.maximum(motion + dwell, 1e-6))])
            if not limit_violations(poses, times, limits):
                return times
            # Stretch the carry (velocity ~ 1/f, acceleration ~ 1/f^2) by the worst excess.
            motion[idx] *= max(1.05, np.sqrt(_worst_ratio(poses, times, limits)) * 1.01)
    # Without a carry, or when stretching did not converge (the caller's final check then refuses the plan).
    return np.concatenate([[0.0], np.cumsum(np.maximum(motion + dwell, 1e-6))])


def _worst_ratio(poses, times, limits: Limits) -> float:
    """Largest (observed / allowed) over velocities and accelerations (1.0 = at the limit)."""
    dt = np.diff(times)
    dp, rv = _edges(poses)
    v = dp / dt[:, None]
    w = rv / dt[:, None]
    z = np.zeros((1, 3))
    span = np.concatenate([[dt[0] / 2], (dt[:-1] + dt[1:]) / 2, [dt[-1] / 2]])
    al = np.linalg.norm(np.diff(np.concatenate([z, v, z]), axis=0), axis=1) / span
    aw = np.linalg.norm(np.diff(np.concatenate([z, w, z]), axis=0), axis=1) / span
    r = [al.max() / limits.max_linear_acceleration, aw.max() / limits.max_angular_acceleration,
         (np.linalg.norm(v, axis=1).max() / limits.max_linear_velocity) ** 2,
         (np.linalg.norm(w, axis=1).max() / limits.max_angular_velocity) ** 2]
    return float(max(r))
