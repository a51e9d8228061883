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

"""Procedurally generated MuJoCo tabletop scenes with scripted (kinematic) motion.

A seeded :class:`SceneConfig` builds a :class:`Scene`: a textured table and room, objects of varied shape
(box, cylinder, sphere, capsule) with procedural textures, some static and some moving along scripted paths,
an optional moving camera and a robot stand-in (a mocap gripper that descends onto an object, grasps it
kinematically and carries it). Every moving thing is a mocap body whose pose is an analytic function of time,
so :meth:`Scene.poses_at` gives exact body and camera poses at *any* time (ground truth between and past frames).

Conventions: poses are 4x4 homogeneous ``world_T_x``. The camera pose returned here is the **ROS optical frame**
(x right, y down, z forward); MuJoCo's camera frame (x right, y up, z backward) differs by diag(1, -1, -1).
Depth from MuJoCo's renderer is metric distance along the optical axis (z), verified against a plane.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from ..paramspec import param, validate_fields  # noqa: E402

OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])
TABLE_TOP_Z = 0.74
TABLE_HALF = (0.6, 0.4)

PRESETS = ("tabletop", "moving_camera", "pick_place", "static_scene", "busy")


@dataclass
class SceneConfig:
    """Everything that defines a scene. The same config (seed included) always gives the same scene."""

    seed: int = param(0, "scene seed (same seed: same scene and motion)", range=(0, 2**31 - 1))
    width: int = param(320, "image width in pixels", range=(16, 4096))
    height: int = param(240, "image height in pixels", range=(16, 4096))
    fovy: float = param(55.0, "vertical field of view in degrees", range=(1.0, 179.0))
    num_objects: int = 5
    num_moving: int = 2
    gripper: bool = True
    moving_camera: bool = False
    max_speed: float = 0.25          # m/s, rough upper bound of scripted object speeds
    camera_distance: float = 0.95
    camera_height: float = 0.55      # above the table top
    shadows: bool = False
    preset: str = param("tabletop", "scene preset (SceneConfig.from_preset)", choices=PRESETS)

    def validate(self) -> "SceneConfig":
        """``self`` when the documented fields (seed, size, fovy, preset) are in range, else ValueError."""
        return validate_fields(self)

    @classmethod
    def from_preset(cls, name: str = "tabletop", **overrides) -> "SceneConfig":
        base = {
            "tabletop": dict(num_objects=5, num_moving=2, gripper=True, moving_camera=False),
            "moving_camera": dict(num_objects=5, num_moving=2, gripper=True, moving_camera=True),
            "pick_place": dict(num_objects=3, num_moving=0, gripper=True, moving_camera=False),
            "static_scene": dict(num_objects=5, num_moving=0, gripper=False, moving_camera=True),
            "busy": dict(num_objects=7, num_moving=4, gripper=True, moving_camera=True),
        }
        if name not in base:
            raise ValueError(f"unknown scene preset {name!r}; choose from {PRESETS}")
        cfg = cls(preset=name, **base[name])
        return replace(cfg, **overrides)


# ----------------------------------------------------------------------------------------------------------------
# small SE(3) helpers


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_axis(axis, a: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def make_T(R: np.ndarray, p) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = p
    return T


def inv_T(T: np.ndarray) -> np.ndarray:
    """Inverse of (a stack of) rigid transforms [..., 4, 4]."""
    R = T[..., :3, :3]
    Rt = np.swapaxes(R, -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def look_at_optical(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """world_T_cam in the optical convention (x right, y down, z forward) looking from eye at target."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    f = target - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, np.asarray(up, float))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    return make_T(np.stack([r, d, f], axis=1), eye)


def _min_jerk(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * x * (10 - 15 * x + 6 * x * x)


# ----------------------------------------------------------------------------------------------------------------
# scripted motions: world_T_body as an analytic function of absolute scene time


@dataclass
class Motion:
    kind: str                       # static | oscillate | circle | hop
    p0: np.ndarray
    R0: np.ndarray
    axis: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    amp: float = 0.0
    freq: float = 0.0
    phase: float = 0.0
    spin: float = 0.0               # rad/s about the body's world z (or tumble axis)
    spin_axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))

    def pose(self, t: float) -> np.ndarray:
        w = 2 * np.pi * self.freq
        p = self.p0.copy()
        if self.kind == "oscillate":
            p = p + self.axis * self.amp * np.sin(w * t + self.phase)
        elif self.kind == "circle":
            p = p + self.amp * np.array([np.cos(w * t + self.phase) - np.cos(self.phase),
                                         np.sin(w * t + self.phase) - np.sin(self.phase), 0.0])
        elif self.kind == "hop":
            p = p + np.array([0.0, 0.0, self.amp * abs(np.sin(w * t + self.phase))])
        R = rot_axis(self.spin_axis, self.spin * t) @ self.R0 if self.spin else self.R0
        return make_T(R, p)


@dataclass
class GripperPath:
    """Hover above the target object, descend (min-jerk) until ``t_grasp``, then lift and carry it in a loop."""

    grasp_pos: np.ndarray           # gripper origin at grasp (= target object centre)
    yaw: float
    t_grasp: float
    hover: float = 0.3
    lift: float = 0.22
    loop_radius: float = 0.15
    loop_period: float = 6.0

    def pose(self, t: float) -> np.ndarray:
        R = rot_z(self.yaw)
        if t <= self.t_grasp:
            # descend from hover over [0, t_grasp]; before 0 stay hovering
            s = _min_jerk(t / self.t_grasp) if self.t_grasp > 0 else 1.0
            return make_T(R, self.grasp_pos + np.array([0.0, 0.0, self.hover * (1 - s)]))
        tau = t - self.t_grasp
        t_lift = 1.0
        if tau <= t_lift:
            return make_T(R, self.grasp_pos + np.array([0.0, 0.0, self.lift * _min_jerk(tau / t_lift)]))
        tau -= t_lift
        # carry along a horizontal circle that starts at the lifted position, ramping speed up smoothly
        ramp = 1.5
        if tau < ramp:
            ang = 2 * np.pi / self.loop_period * (tau * tau / (2 * ramp))
        else:
            ang = 2 * np.pi / self.loop_period * (tau - ramp / 2)
        r = self.loop_radius
        off = np.array([r * (1 - np.cos(ang)), r * np.sin(ang), self.lift + 0.04 * np.sin(0.5 * ang)])
        return make_T(rot_z(self.yaw + 0.3 * np.sin(ang)), self.grasp_pos + off)


@dataclass
class CameraPath:
    eye0: np.ndarray
    target: np.ndarray
    moving: bool = False
    sweep: float = 0.35             # rad of orbit amplitude
    freq: float = 0.08
    phase: float = 0.0
    bob: float = 0.05

    def pose(self, t: float) -> np.ndarray:
        if not self.moving:
            return look_at_optical(self.eye0, self.target)
        rel = self.eye0 - self.target
        ang = self.sweep * np.sin(2 * np.pi * self.freq * t + self.phase) - self.sweep * np.sin(self.phase)
        eye = self.target + rot_z(ang) @ rel + np.array([0.0, 0.0, self.bob * np.sin(2 * np.pi * 0.13 * t)])
        return look_at_optical(eye, self.target)


# ----------------------------------------------------------------------------------------------------------------
# procedural scene generation


def _rgb(c) -> str:
    return " ".join(f"{float(x):.3f}" for x in c)


def _quat_from_R(R: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


@dataclass
class ObjectSpec:
    name: str
    shape: str
    size: tuple                     # MuJoCo geom size
    half_height: float
    radius_xy: float                # footprint radius for placement
    motion: Motion
    material: str


def _generate(cfg: SceneConfig):
    rng = np.random.default_rng(cfg.seed)
    textures, materials = [], []

    def add_material(name, kind, rgb1, rgb2, builtin="checker", w=128, repeat=(1, 1), mark="random",
                     rand=0.08, markrgb=None):
        markrgb = rng.uniform(0, 1, 3) if markrgb is None else markrgb
        textures.append(f'<texture name="tex_{name}" type="{kind}" builtin="{builtin}" rgb1="{_rgb(rgb1)}" '
                        f'rgb2="{_rgb(rgb2)}" width="{w}" height="{w}" mark="{mark}" random="{rand}" '
                        f'markrgb="{_rgb(markrgb)}"/>')
        materials.append(f'<material name="mat_{name}" texture="tex_{name}" texrepeat="{repeat[0]} {repeat[1]}" '
                         f'specular="0.2" shininess="0.2"/>')
        return f"mat_{name}"

    wood = rng.uniform([0.45, 0.3, 0.15], [0.7, 0.5, 0.3])
    mat_table = add_material("table", "2d", wood, wood * 0.75, w=256, repeat=(6, 4), rand=0.15)
    mat_floor = add_material("floor", "2d", rng.uniform(0.3, 0.6, 3), rng.uniform(0.1, 0.3, 3), w=256,
                             repeat=(10, 10), rand=0.1)
    mat_wall = add_material("wall", "2d", rng.uniform(0.5, 0.9, 3), rng.uniform(0.3, 0.6, 3), builtin="checker",
                            w=256, repeat=(8, 3), rand=0.12)

    shapes = ["box", "cylinder", "sphere", "capsule"]
    objects: List[ObjectSpec] = []
    placed: List[tuple] = []
    n_moving = min(cfg.num_moving, cfg.num_objects)
    # the gripper's target (object 0, when a gripper exists) is a small static box
    for k in range(cfg.num_objects):
        is_target = cfg.gripper and k == 0
        moving = (not is_target) and (k >= cfg.num_objects - n_moving)
        shape = "box" if is_target else shapes[int(rng.integers(len(shapes)))]
        if shape == "box":
            hx, hy, hz = (0.03, 0.03, 0.035) if is_target else tuple(rng.uniform([0.03, 0.03, 0.03],
                                                                                 [0.08, 0.08, 0.07]))
            size, half_h, rxy = (hx, hy, hz), hz, float(np.hypot(hx, hy))
        elif shape == "cylinder":
            r, hh = rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.09)
            size, half_h, rxy = (r, hh), hh, r
        elif shape == "sphere":
            r = rng.uniform(0.035, 0.07)
            size, half_h, rxy = (r,), r, r
        else:  # capsule lying on its side (axis along body x after the R0 rotation below)
            r, hh = rng.uniform(0.025, 0.045), rng.uniform(0.04, 0.08)
            size, half_h, rxy = (r, hh), r, hh + r
        # placement without overlap on the table
        for _ in range(200):
            xy = rng.uniform([-0.42, -0.28], [0.42, 0.28])
            if all(np.hypot(*(xy - q)) > rxy + rq + 0.04 for q, rq in placed):
                break
        placed.append((xy, rxy))
        yaw = rng.uniform(-np.pi, np.pi)
        R0 = rot_z(yaw) @ (rot_axis([0, 1, 0], np.pi / 2) if shape == "capsule" else np.eye(3))
        p0 = np.array([xy[0], xy[1], TABLE_TOP_Z + half_h + 0.001])
        if moving:
            kind = ["oscillate", "circle", "hop", "oscillate"][k % 4] if k % 2 else \
                ["circle", "oscillate", "hop"][int(rng.integers(3))]
            speed = rng.uniform(0.35, 1.0) * cfg.max_speed
            if kind == "oscillate":
                amp = rng.uniform(0.08, 0.16)
                ang = rng.uniform(0, np.pi)
                motion = Motion("oscillate", p0, R0, axis=np.array([np.cos(ang), np.sin(ang), 0.0]), amp=amp,
                                freq=speed / (2 * np.pi * amp), phase=rng.uniform(0, 2 * np.pi),
                                spin=rng.uniform(-1.5, 1.5))
            elif kind == "circle":
                amp = rng.uniform(0.06, 0.12)
                motion = Motion("circle", p0, R0, amp=amp, freq=speed / (2 * np.pi * amp),
                                phase=rng.uniform(0, 2 * np.pi), spin=rng.uniform(-2.0, 2.0))
            else:
                amp = rng.uniform(0.06, 0.14)
                motion = Motion("hop", p0, R0, amp=amp, freq=rng.uniform(0.4, 0.8), phase=rng.uniform(0, np.pi),
                                spin=rng.uniform(-2.0, 2.0))
        else:
            motion = Motion("static", p0, R0)
        c1 = rng.uniform(0.1, 1.0, 3)
        c2 = np.clip(c1 * rng.uniform(0.3, 0.7) + rng.uniform(0, 0.3, 3), 0, 1)
        mat = add_material(f"obj{k}", "cube", c1, c2, builtin=["checker", "gradient"][int(rng.integers(2))],
                           w=64, repeat=(1, 1), rand=0.2)
        objects.append(ObjectSpec(f"obj{k}", shape, tuple(float(s) for s in size), float(half_h), float(rxy),
                                  motion, mat))

    gripper = None
    if cfg.gripper and objects:
        tgt = objects[0]
        gripper = GripperPath(grasp_pos=tgt.motion.p0.copy(), yaw=float(rng.uniform(-0.5, 0.5)),
                              t_grasp=float(rng.uniform(1.0, 2.0)), loop_period=float(rng.uniform(5.0, 8.0)))
        mat_grip = add_material("gripper", "cube", [0.25, 0.25, 0.28], [0.6, 0.6, 0.65], w=32, rand=0.05)
    target = np.array([0.0, 0.0, TABLE_TOP_Z + 0.05])
    az = rng.uniform(-0.35, 0.35)
    eye0 = target + np.array([cfg.camera_distance * np.sin(az), -cfg.camera_distance * np.cos(az),
                              cfg.camera_height])
    camera = CameraPath(eye0=eye0, target=target, moving=cfg.moving_camera, phase=float(rng.uniform(0, 2 * np.pi)),
                        freq=float(rng.uniform(0.05, 0.12)))

    # ---------------------------------------------------------------- MJCF
    body_xml = []
    for o in objects:
        T = o.motion.pose(0.0)
        q = _quat_from_R(T[:3, :3])
        body_xml.append(
            f'<body name="{o.name}" mocap="true" pos="{_rgb(T[:3, 3])}" quat="{_rgb(q)}">'
            f'<geom name="{o.name}_geom" type="{o.shape}" size="{_rgb(o.size)}" material="{o.material}" '
            f'contype="0" conaffinity="0"/></body>')
    if gripper is not None:
        tgt = objects[0]
        hw = tgt.size[1] + 0.012          # finger offset: object half width + finger half thickness
        top = tgt.size[2]
        body_xml.append(
            '<body name="gripper" mocap="true" pos="0 0 2">'
            f'<geom name="palm" type="box" size="0.03 {hw + 0.02:.3f} 0.012" pos="0 0 {top + 0.014:.3f}" '
            f'material="{mat_grip}" contype="0" conaffinity="0"/>'
            f'<geom name="finger_l" type="box" size="0.012 0.008 {top / 2 + 0.012:.3f}" '
            f'pos="0 {hw:.3f} {top / 2 - 0.004:.3f}" material="{mat_grip}" contype="0" conaffinity="0"/>'
            f'<geom name="finger_r" type="box" size="0.012 0.008 {top / 2 + 0.012:.3f}" '
            f'pos="0 {-hw:.3f} {top / 2 - 0.004:.3f}" material="{mat_grip}" contype="0" conaffinity="0"/>'
            f'<geom name="wrist" type="cylinder" size="0.022 0.03" pos="0 0 {top + 0.056:.3f}" '
            f'material="{mat_grip}" contype="0" conaffinity="0"/>'
            f'<geom name="forearm" type="capsule" size="0.028 0.2" pos="0 0 {top + 0.29:.3f}" '
            'rgba="0.85 0.5 0.1 1" contype="0" conaffinity="0"/>'
            "</body>")
    shadow = "true" if cfg.shadows else "false"
    tz = TABLE_TOP_Z
    leg = tz - 0.02
    legs = "".join(
        f'<geom name="leg{i}" type="box" size="0.03 0.03 {leg / 2:.3f}" pos="{sx * 0.55:.2f} {sy * 0.35:.2f} '
        f'{leg / 2:.3f}" rgba="0.3 0.2 0.1 1"/>'
        for i, (sx, sy) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]))
    xml = f"""<mujoco model="trace_anything_tabletop_{cfg.seed}">
  <compiler angle="radian"/>
  <option timestep="0.01" gravity="0 0 0"/>
  <visual>
    <global offwidth="{max(cfg.width, 64)}" offheight="{max(cfg.height, 64)}"/>
    <quality shadowsize="{1024 if cfg.shadows else 0}"/>
    <map znear="0.02" zfar="30"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.35 0.35 0.35" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    {''.join(textures)}
    {''.join(materials)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" pos="0 0 4" dir="0.3 0.4 -1" diffuse="0.5 0.5 0.5" castshadow="{shadow}"/>
    <geom name="floor" type="plane" size="4 4 0.1" material="{mat_floor}"/>
    <geom name="wall_back" type="box" size="3 0.02 1.6" pos="0 2.0 1.6" material="{mat_wall}"/>
    <geom name="wall_left" type="box" size="0.02 3 1.6" pos="-2.0 0 1.6" material="{mat_wall}"/>
    <geom name="wall_right" type="box" size="0.02 3 1.6" pos="2.0 0 1.6" material="{mat_wall}"/>
    <geom name="wall_front" type="box" size="3 0.02 1.6" pos="0 -2.2 1.6" material="{mat_wall}"/>
    <geom name="ceiling" type="box" size="3 3 0.02" pos="0 0 3.2" material="{mat_wall}"/>
    <geom name="table_top" type="box" size="{TABLE_HALF[0]} {TABLE_HALF[1]} 0.02" pos="0 0 {tz - 0.02:.3f}"
          material="{mat_table}"/>
    {legs}
    {''.join(body_xml)}
    <body name="camera_rig" mocap="true" pos="0 -1 1.5">
      <camera name="cam" fovy="{cfg.fovy}" pos="0 0 0" quat="1 0 0 0"/>
    </body>
  </worldbody>
</mujoco>"""
    return xml, objects, gripper, camera


class Scene:
    """A generated scene: kinematic stepping, RGB-D + segmentation rendering, exact poses at any time."""

    def __init__(self, config: Optional[SceneConfig] = None):
        self.config = config or SceneConfig()
        self.xml, self.objects, self.gripper, self.camera_path = _generate(self.config)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        self.time = 0.0
        m = self.model
        self.body_names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or "world" for b in range(m.nbody)]
        self.tracked = [o.name for o in self.objects] + (["gripper"] if self.gripper is not None else [])
        self._body_id = {n: i for i, n in enumerate(self.body_names)}
        self._cam_body = self._body_id["camera_rig"]
        self._mocap_of = {b: int(m.body_mocapid[b]) for b in range(m.nbody) if m.body_mocapid[b] >= 0}
        self.geom_body = np.asarray(m.geom_bodyid, dtype=np.int32)
        self.K = intrinsics(self.config.width, self.config.height, self.config.fovy)
        self._renderer = None
        self._carry_rel = None
        self._pose_override: Dict[str, np.ndarray] = {}
        if self.gripper is not None:
            G = self.gripper.pose(self.gripper.t_grasp)
            self._carry_rel = inv_T(G) @ self.objects[0].motion.pose(self.gripper.t_grasp)
        self._apply(self.time)

    # ------------------------------------------------------------------ poses
    def set_pose_override(self, name: str, world_T_body: Optional[np.ndarray]) -> None:
        """Runtime hook for an external controller (e.g. ``sim.closed_loop``): pin tracked body ``name`` (an object
        or "gripper") to ``world_T_body`` at every time, replacing its scripted motion (and the scripted carry);
        ``None`` returns it to the script. Applied to the MuJoCo state at once."""
        if name not in self.tracked:
            raise KeyError(f"unknown tracked body {name!r}; choose from {self.tracked}")
        if world_T_body is None:
            self._pose_override.pop(name, None)
        else:
            self._pose_override[name] = np.array(world_T_body, dtype=np.float64).reshape(4, 4)
        self._apply(self.time)

    def object_pose_at(self, name: str, t: float) -> np.ndarray:
        if name in self._pose_override:
            return self._pose_override[name].copy()
        if name == "gripper":
            return self.gripper.pose(t)
        obj = self.objects[int(name[3:])]
        if self.gripper is not None and obj is self.objects[0] and t > self.gripper.t_grasp:
            return self.gripper.pose(t) @ self._carry_rel
        return obj.motion.pose(t)

    def camera_pose_at(self, t: float) -> np.ndarray:
        """world_T_cam (ROS optical frame) at scene time t."""
        return self.camera_path.pose(t)

    def poses_at(self, t: float) -> np.ndarray:
        """world_T_body for every MuJoCo body [nbody, 4, 4] at scene time t (body 0 = world, static)."""
        out = np.tile(np.eye(4), (self.model.nbody, 1, 1))
        for name in self.tracked:
            out[self._body_id[name]] = self.object_pose_at(name, t)
        C = self.camera_pose_at(t)
        out[self._cam_body] = make_T(C[:3, :3] @ OPTICAL_FROM_MUJOCO, C[:3, 3])
        return out

    def body_poses(self) -> Dict[str, np.ndarray]:
        """Current world_T_body of the tracked bodies (objects and gripper) by name."""
        return {n: self.object_pose_at(n, self.time) for n in self.tracked}

    def body_id(self, name: str) -> int:
        return self._body_id[name]

    def moving_bodies(self, t0: float, t1: float, samples: int = 8, tol: float = 1e-4) -> List[int]:
        """Body ids that move (translation > tol m or rotation > tol rad) anywhere in [t0, t1]."""
        ts = np.linspace(t0, t1, max(samples, 2))
        P = np.stack([self.poses_at(t) for t in ts])
        return _moving_from_poses(P, tol, exclude=(self._cam_body,))

    # ------------------------------------------------------------------ stepping
    def _apply(self, t: float):
        P = self.poses_at(t)
        for b, mid in self._mocap_of.items():
            self.data.mocap_pos[mid] = P[b, :3, 3]
            self.data.mocap_quat[mid] = _quat_from_R(P[b, :3, :3])
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self.data.time = t

    def set_time(self, t: float):
        self.time = float(t)
        self._apply(self.time)

    def step(self, dt: float):
        self.set_time(self.time + float(dt))

    # ------------------------------------------------------------------ rendering
    @property
    def renderer(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.config.height, self.config.width)
        return self._renderer

    def render(self, segmentation: bool = True) -> dict:
        """One RGB-D frame at the current time.

        Returns dict: rgb uint8 [H,W,3], depth float32 [H,W] metres along the optical axis (NaN where nothing is
        hit), K [3,3], world_T_cam [4,4] (optical frame), stamp (scene time, s), body_poses [nbody,4,4], and with
        segmentation: seg_geom / seg_body int32 [H,W] (-1 where nothing is hit).
        """
        r = self.renderer
        r.update_scene(self.data, camera="cam")
        rgb = r.render().copy()
        r.enable_depth_rendering()
        depth = r.render().astype(np.float32, copy=True)
        r.disable_depth_rendering()
        out = dict(rgb=rgb, depth=depth, K=self.K.copy(), world_T_cam=self.camera_pose_at(self.time),
                   stamp=self.time, body_poses=self.poses_at(self.time))
        if segmentation:
            r.enable_segmentation_rendering()
            seg = r.render()
            r.disable_segmentation_rendering()
            geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1).astype(np.int32)
            body = np.where(geom >= 0, self.geom_body[np.maximum(geom, 0)], -1).astype(np.int32)
            out["seg_geom"], out["seg_body"] = geom, body
            depth[geom < 0] = np.nan
        return out

    def record(self, num_frames: int, dt: float, start: Optional[float] = None) -> List[dict]:
        """Render ``num_frames`` frames ``dt`` apart starting at ``start`` (default: now). Leaves time at the end."""
        if start is not None:
            self.set_time(start)
        frames = []
        for i in range(num_frames):
            if i:
                self.step(dt)
            frames.append(self.render())
        return frames

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _moving_from_poses(P: np.ndarray, tol: float, exclude=()) -> List[int]:
    """P [T, nbody, 4, 4] -> ids of bodies whose pose changes by more than tol (m or rad)."""
    dp = np.linalg.norm(P[:, :, :3, 3] - P[:1, :, :3, 3], axis=-1).max(axis=0)
    rel = np.einsum("tbji,bjk->tbik", P[:, :, :3, :3], P[0, :, :3, :3])
    ang = np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)).max(axis=0)
    return [b for b in range(P.shape[1]) if (dp[b] > tol or ang[b] > tol) and b not in exclude and b != 0]


def intrinsics(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """Pinhole K of MuJoCo's camera for pixel-index coordinates (pixel centres at integers, OpenCV/ROS)."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
