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

"""Closed-loop goal-conditioned manipulation in MuJoCo (ROS-free): perceive -> plan -> execute -> measure.

One episode (``run_episode(EpisodeSpec, perception)``):

1. **Scene**: a ``pick_place`` scene (``sim.scene``) of a random seed; its graspable object is ``obj0`` (a small
   static box on the table). The scripted gripper is parked out of view.
2. **Goal**: a random reachable pose of the object: on the table, translated 4..15 cm and yawed up to 30 deg,
   clear of the other objects and inside the camera image (``sample_episode``).
3. **Perception** (the paper's goal-image setting: a 2-frame field current -> goal):

   * ``"gt"``: the current frame is rendered; the goal image is rendered from a copy of the scene with the object at
     its goal pose; the ground-truth field of the pair (``sim.ground_truth.compute_window``, the object moving on
     the geodesic between the two poses) is the perception.
   * ``"model"``: the project's default goal-image estimator (``ModelPerception``): the goal-pair estimator
     (``planning.goal_pair``: current RGB-D frame + intrinsics + goal image -> the object's motion on its support
     plane -> a metric 2-frame field) at its input size; ``goal_depth=True`` also hands it the goal image's depth
     (the goal RGB-D row of the benchmark). ``estimator="network"`` runs the compact network on the RGB pair
     instead (``model.engine.create_estimator``; non-metric, scaled by the current depth): it sees no motion.

   The object's pixels of the current frame are selected with the simulator's instance segmentation
   (``ObjectSelection(mask=...)``; a segmentation stand-in, the same for both perceptions).
4. **Plan**: ``ManipulationPlanner.plan_from_goal_image`` in the robot base frame (= the MuJoCo world frame;
   ``base_T_camera`` = the camera's world pose).
5. **Execute** (``execute_plan``): the kinematic gripper stand-in follows the plan's timed EE waypoints (linear
   position + slerp interpolation in time, ``dt`` steps). At the ``grasp`` waypoint the gripper closes; the object
   is attached only if it is actually between the fingers (``GraspTolerance``: the tool point's offset from the
   object's centre along the closing axis leaves the object inside the opening, across it within the object, and
   the tool point's height lies within the object's height): a wrong grasp point picks up nothing. Attached, the
   object follows the gripper rigidly (the relative pose at closing). At ``release`` it is let go and settles on
   the table (kinematic settle: z onto the table top, tilt removed, x/y/yaw kept).
6. **Measure**: final object pose vs the goal: translation error (cm), rotation error (deg, geodesic; no symmetry
   folding). Success: within ``tol_cm`` and ``tol_deg`` (2 cm, 10 deg).

EE frame (planning.grasp): z = approach (down), y = closing axis. The gripper body of ``sim.scene`` has z up and
its fingers along y, origin at the centre of the object it was built for; so ``world_T_gripper = world_T_ee @
EE_TO_GRIPPER`` with the tool offset of the grasp height (``half_height - grasp_depth`` along EE z).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field as dc_field
from typing import Dict, List, Optional

import numpy as np

from .scene import TABLE_TOP_Z, Scene, SceneConfig, inv_T, make_T, rot_z

OBJECT = "obj0"
PARK_POSE = make_T(np.eye(3), [0.0, 0.0, 2.6])  # above the camera's field of view


@dataclass
class EpisodeSpec:
    seed: int                      # episode seed (scene seed and goal draw)
    scene_seed: int
    goal_pose: np.ndarray          # world_T_object at the goal
    start_pose: np.ndarray         # world_T_object now
    translation: float             # m, commanded
    yaw: float                     # rad, commanded
    width: int = 320
    height: int = 240


@dataclass
class GraspTolerance:
    opening: float = 0.08          # m: finger opening (= PlannerParams.max_gripper_width)
    vertical_margin: float = 0.005  # m: the tool point must be this far inside the object's height span


@dataclass
class EpisodeResult:
    seed: int
    perception: str
    plan_status: str
    plan_reason: str
    grasped: bool
    grasp_note: str
    translation_error_cm: float
    rotation_error_deg: float
    success: bool
    commanded_translation_cm: float
    commanded_yaw_deg: float
    plan_confidence: float = 0.0
    plan_duration_s: float = 0.0
    perception_s: float = 0.0
    planning_s: float = 0.0
    execution_s: float = 0.0
    extras: Dict = dc_field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# episodes


def _scene_config(scene_seed: int, width: int, height: int) -> SceneConfig:
    return SceneConfig.from_preset("pick_place", seed=int(scene_seed), width=width, height=height)


def _project(scene: Scene, p_world) -> np.ndarray:
    C = scene.camera_pose_at(scene.time)
    pc = inv_T(C) @ np.append(p_world, 1.0)
    if pc[2] <= 0:
        return np.array([np.inf, np.inf])
    uv = scene.K @ (pc[:3] / pc[2])
    return uv[:2]


def _goal_ok(scene: Scene, P: np.ndarray, margin_px: float = 12.0) -> bool:
    obj = scene.objects[0]
    x, y = P[:2, 3]
    if abs(x) > 0.5 - obj.radius_xy or abs(y) > 0.32 - obj.radius_xy:
        return False
    for o in scene.objects[1:]:
        if np.hypot(*(P[:2, 3] - o.motion.p0[:2])) < obj.radius_xy + o.radius_xy + 0.03:
            return False
    w, h = scene.config.width, scene.config.height
    uv = _project(scene, P[:3, 3])
    return bool(margin_px <= uv[0] <= w - 1 - margin_px and margin_px <= uv[1] <= h - 1 - margin_px)


def sample_episode(seed: int, width: int = 320, height: int = 240, max_translation: float = 0.15,
                   min_translation: float = 0.04, max_yaw_deg: float = 30.0, min_visible_px: int = 60) -> EpisodeSpec:
    """A random episode: scene seed and a reachable goal pose (deterministic in ``seed``)."""
    rng = np.random.default_rng(10_000 + int(seed))
    for _ in range(50):
        scene_seed = int(rng.integers(0, 1_000_000))
        scene = Scene(_scene_config(scene_seed, width, height))
        try:
            scene.set_pose_override("gripper", PARK_POSE)
            start = scene.object_pose_at(OBJECT, 0.0)
            if not _goal_ok(scene, start):
                continue
            fr = scene.render()
            if int((fr["seg_body"] == scene.body_id(OBJECT)).sum()) < min_visible_px:
                continue
            for _ in range(200):
                d = rng.uniform(min_translation, max_translation)
                a = rng.uniform(-np.pi, np.pi)
                yaw = np.deg2rad(rng.uniform(-max_yaw_deg, max_yaw_deg))
                G = make_T(rot_z(yaw) @ start[:3, :3], start[:3, 3] + d * np.array([np.cos(a), np.sin(a), 0.0]))
                if _goal_ok(scene, G):
                    return EpisodeSpec(int(seed), scene_seed, G, start, float(d), float(yaw), width, height)
        finally:
            scene.close()
    raise RuntimeError(f"no feasible episode for seed {seed}")


# ----------------------------------------------------------------------------------------------------------------
# perception


def _object_mask(frame: dict, scene: Scene) -> np.ndarray:
    return frame["seg_body"] == scene.body_id(OBJECT)


def _render_pair(spec: EpisodeSpec):
    """(scene at the current state, current frame, goal frame). The goal frame comes from a copy of the scene with
    the object at its goal pose."""
    cfg = _scene_config(spec.scene_seed, spec.width, spec.height)
    scene = Scene(cfg)
    scene.set_pose_override("gripper", PARK_POSE)
    scene.set_pose_override(OBJECT, spec.start_pose)
    cur = scene.render()
    goal_scene = Scene(cfg)
    try:
        goal_scene.set_pose_override("gripper", PARK_POSE)
        goal_scene.set_pose_override(OBJECT, spec.goal_pose)
        goal = goal_scene.render()
    finally:
        goal_scene.close()
    cur["stamp"], goal["stamp"] = 0.0, 1.0
    return scene, cur, goal


def gt_goal_field(scene: Scene, spec: EpisodeSpec, cur: dict, goal: dict, num_ctrl: int = 10):
    """Ground-truth 2-frame field current -> goal (metric, frame 0's camera); the object moves on the geodesic."""
    from ..planning import se3
    from .ground_truth import compute_window

    b = scene.body_id(OBJECT)
    P0 = cur["body_poses"]

    def pose_fn(t):
        P = P0.copy()
        P[b] = se3.interpolate_poses(spec.start_pose, spec.goal_pose, np.array([float(t)]))[0]
        return P

    return compute_window([cur, goal], num_ctrl=num_ctrl, pose_fn=pose_fn, dense_samples=11,
                          with_visibility=False).field


class ModelPerception:
    """The default goal-image estimator on (current frame, goal image) -> 2-frame field.

    ``estimator``: ``"goal_pair"`` (default: ``planning.goal_pair``, gets the current depth + K, and the goal depth
    when ``goal_depth``), ``"network"`` (the compact model of ``weights`` on the RGB pair) or a ``FieldEstimator``
    instance (fed what it declares: ``needs_intrinsics`` -> K and depth). ``last`` is the estimator's own report
    when it keeps one (goal pair: ``GoalMotion``)."""

    def __init__(self, weights: str = "trace_anything_ros/model/weights/compact_sim.safetensors",
                 estimator=None, threads: Optional[int] = None, goal_depth: bool = False,
                 params: Optional[dict] = None):
        if estimator is None or estimator == "goal_pair":
            from ..planning.goal_pair import create
            estimator = create(dict(params or {}))
        elif estimator == "network":
            from ..model.engine import create_estimator
            p = {"weights": weights, "cache_size": 0}
            if threads:
                p["threads"] = int(threads)
            estimator = create_estimator(p)
        self.estimator = estimator
        self.goal_depth = bool(goal_depth)

    @property
    def last(self):
        return getattr(self.estimator, "last", None)

    def estimate(self, cur: dict, goal: dict):
        """``planning.session.GoalEstimate`` of (current frame, goal image): what the planner node's goal-image path
        computes (``estimate_image_goal``, one home): the 2-frame field, or the refusal naming why (a goal
        alignment the estimator does not trust, a missing input)."""
        from ..pipeline.frames import frame_intrinsics, preprocess_depth, preprocess_rgb
        from ..planning.session import estimate_image_goal

        size = tuple(self.estimator.input_size)
        frames = np.stack([preprocess_rgb(cur["rgb"], size), preprocess_rgb(goal["rgb"], size)])
        K = frame_intrinsics(cur["K"], cur["rgb"].shape[:2], size)
        d0 = preprocess_depth(cur["depth"], size)
        d1 = preprocess_depth(goal["depth"], size) if self.goal_depth else np.full(size, np.nan, np.float32)
        return estimate_image_goal(self.estimator, frames, now=0.0, frame_id="sim_camera_optical_frame",
                                   depth=np.stack([d0, d1]).astype(np.float32), intrinsics=K)

    def close(self):
        self.estimator.close()


# ----------------------------------------------------------------------------------------------------------------
# execution


def ee_to_gripper(tool_offset: float) -> np.ndarray:
    """ee_T_gripper: the gripper body (z up, fingers along y, origin at the grasped
    object's centre) from the EE frame (z down = approach, y = closing), the tool point ``tool_offset`` above it."""
    return make_T(np.diag([-1.0, 1.0, -1.0]), [0.0, 0.0, tool_offset])


def _interp_pose(poses: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    from ..planning import se3
    if t <= times[0]:
        return poses[0].copy()
    if t >= times[-1]:
        return poses[-1].copy()
    k = int(np.searchsorted(times, t, side="right") - 1)
    s = (t - times[k]) / max(times[k + 1] - times[k], 1e-12)
    return se3.interpolate_poses(poses[k], poses[k + 1], np.array([s]))[0]


def check_grasp(ee_pose: np.ndarray, obj_pose: np.ndarray, half_size, tol: GraspTolerance):
    """Is the box ``half_size`` (hx, hy, hz) at ``obj_pose`` between the open fingers of an EE at ``ee_pose``?
    -> (ok, note). Closing axis = EE y, across = EE x, height along the world z."""
    h = np.asarray(half_size, float)
    R = obj_pose[:3, :3]
    d = ee_pose[:3, 3] - obj_pose[:3, 3]
    y, x = ee_pose[:3, 1], ee_pose[:3, 0]
    ext_y = float(np.abs(R.T @ y) @ h)         # object half extent along the closing axis
    ext_x = float(np.abs(R.T @ x) @ h)
    ext_z = float(np.abs(R.T @ np.array([0.0, 0.0, 1.0])) @ h)
    off_y, off_x, off_z = float(d @ y), float(d @ x), float(d[2])
    if abs(off_y) + ext_y > tol.opening / 2:
        return False, (f"object not inside the opening: offset {off_y * 100:.1f} cm + half extent "
                       f"{ext_y * 100:.1f} cm > {tol.opening * 50:.1f} cm along the closing axis")
    if abs(off_x) > ext_x:
        return False, f"fingers miss the object: offset {off_x * 100:.1f} cm across > half extent {ext_x * 100:.1f} cm"
    if abs(off_z) > ext_z - tol.vertical_margin:
        return False, f"tool point {off_z * 100:.1f} cm from the object's centre height (half height {ext_z * 100:.1f})"
    return True, f"grasped (offsets: closing {off_y * 100:.1f} cm, across {off_x * 100:.1f} cm, z {off_z * 100:.1f} cm)"


def settle(pose: np.ndarray, half_height: float) -> np.ndarray:
    """Kinematic settle after release: onto the table top, tilt removed, x / y / yaw kept."""
    x = pose[:3, 0]
    yaw = float(np.arctan2(x[1], x[0]))
    return make_T(rot_z(yaw), [pose[0, 3], pose[1, 3], TABLE_TOP_Z + half_height + 0.001])


@dataclass
class ExecutionLog:
    grasped: bool
    grasp_note: str
    final_pose: np.ndarray
    times: np.ndarray
    gripper_poses: np.ndarray
    object_poses: np.ndarray


class Execution:
    """``execute_plan`` one time step at a time (an executor paced by a clock calls ``step()`` per tick).

    ``poses [W, 4, 4]`` EE waypoints (world = base frame), ``times [W]`` their times (s, any origin; the scene time
    is set to them), ``labels`` with one ``"grasp"`` (the gripper closes there) and optionally ``"release"`` (it
    opens there). The steps are every ``dt`` from the first to the last time plus every waypoint time exactly."""

    def __init__(self, scene: Scene, poses, times, labels, tool_offset: float, dt: float = 0.02,
                 tol: GraspTolerance = GraspTolerance()):
        self.scene, self.tol = scene, tol
        self.obj = scene.objects[0]
        self.half = np.asarray(self.obj.size, float)
        labels = list(labels)
        self.times = np.asarray(times, float)
        self.poses = np.asarray(poses, float)
        self.t_grasp = self.times[labels.index("grasp")]
        self.t_release = self.times[labels.index("release")] if "release" in labels else self.t_grasp
        self.E2G = ee_to_gripper(tool_offset)
        self.obj_pose = scene.object_pose_at(OBJECT, scene.time)
        self.rel = None
        self.grasped, self.note, self.closed = False, "grasp waypoint not reached", False
        ts = np.arange(self.times[0], self.times[-1] + dt, dt)
        # make sure the event and waypoint times are hit exactly
        ts = np.unique(np.concatenate([ts[ts < self.times[-1]], self.times, [self.t_grasp, self.t_release]]))
        self.ts = ts
        self.k = 0
        self._t, self._g, self._o = [], [], []

    @property
    def done(self) -> bool:
        return self.k >= len(self.ts)

    def step(self) -> float:
        """Advance one step; returns its time."""
        t = float(self.ts[self.k])
        self.k += 1
        ee = _interp_pose(self.poses, self.times, t)
        G = ee @ self.E2G
        if not self.closed and t >= self.t_grasp:  # the gripper closes once, at the grasp waypoint
            self.closed = True
            ok, self.note = check_grasp(ee, self.obj_pose, self.half, self.tol)
            if ok:
                self.rel = inv_T(G) @ self.obj_pose
                self.grasped = True
        if self.rel is not None:
            self.obj_pose = G @ self.rel
            if t >= self.t_release:
                self.obj_pose = settle(self.obj_pose, self.obj.half_height)
                self.rel = None
        self.scene.set_pose_override("gripper", G)
        self.scene.set_pose_override(OBJECT, self.obj_pose)
        self.scene.set_time(t)
        self._t.append(t)
        self._g.append(G)
        self._o.append(self.obj_pose.copy())
        return t

    def ee_at_waypoints(self) -> np.ndarray:
        """The EE poses the gripper had at the waypoint times (steps taken so far) -> [W', 4, 4]."""
        t = np.asarray(self._t)
        G2E = inv_T(self.E2G)
        out = []
        for tw in self.times:
            i = np.nonzero(np.abs(t - tw) < 1e-9)[0]
            if len(i) == 0:
                break
            out.append(self._g[int(i[0])] @ G2E)
        return np.stack(out) if out else np.zeros((0, 4, 4))

    def log(self) -> ExecutionLog:
        return ExecutionLog(self.grasped, self.note, self.obj_pose, np.array(self._t),
                            np.stack(self._g) if self._g else np.zeros((0, 4, 4)),
                            np.stack(self._o) if self._o else np.zeros((0, 4, 4)))


def execute_plan(scene: Scene, plan, tool_offset: float, dt: float = 0.02, tol: GraspTolerance = GraspTolerance(),
                 on_step=None) -> ExecutionLog:
    """Drive the scene's gripper along ``plan.ee_poses`` at ``plan.ee_times`` (absolute; scene time = plan time),
    close at "grasp", open at "release". ``on_step(scene, t)`` is called after every step (e.g. to render)."""
    ex = Execution(scene, plan.ee_poses, plan.ee_times, plan.ee_labels, tool_offset, dt, tol)
    while not ex.done:
        t = ex.step()
        if on_step is not None:
            on_step(scene, t)
    return ex.log()


def path_labels(num_waypoints: int) -> List[str]:
    """Labels of a planner EE path without a ``start`` waypoint (``planning.path.build_waypoints``; the order
    ManipulationPlan.msg documents): pre_grasp, grasp, carry_1.., release, retreat."""
    W = int(num_waypoints)
    if W < 3:
        raise ValueError(f"an EE path has at least 3 waypoints (pre_grasp, grasp, retreat), got {W}")
    if W == 3:
        return ["pre_grasp", "grasp", "retreat"]
    return ["pre_grasp", "grasp"] + [f"carry_{k}" for k in range(1, W - 3)] + ["release", "retreat"]


def object_visibility(scene: Scene, frame: dict) -> dict:
    """How much of the object ``frame`` (a ``scene.render()`` of the current state) shows: its pixels there
    (``visible_px``) and with the gripper parked out of view (``unoccluded_px``: the object as it would show
    without the robot in front of it; the same frame when the gripper is parked), ``fraction`` their ratio."""
    b = scene.body_id(OBJECT)
    visible = int((frame["seg_body"] == b).sum())
    G = scene.object_pose_at("gripper", scene.time)
    if np.allclose(G, PARK_POSE):
        unoccluded = visible
    else:
        scene.set_pose_override("gripper", PARK_POSE)
        try:
            unoccluded = int((scene.render()["seg_body"] == b).sum())
        finally:
            scene.set_pose_override("gripper", G)
    return {"visible_px": visible, "unoccluded_px": unoccluded,
            "fraction": round(visible / unoccluded, 4) if unoccluded else 0.0}


def pose_error(P: np.ndarray, G: np.ndarray):
    """(translation error m, rotation error rad) between two poses."""
    dt = float(np.linalg.norm(P[:3, 3] - G[:3, 3]))
    c = (np.trace(G[:3, :3].T @ P[:3, :3]) - 1.0) / 2.0
    return dt, float(np.arccos(np.clip(c, -1.0, 1.0)))


# ----------------------------------------------------------------------------------------------------------------
# one episode


def run_episode(spec: EpisodeSpec, perception: str = "gt", model: Optional[ModelPerception] = None,
                planner_params=None, tol_cm: float = 2.0, tol_deg: float = 10.0, dt: float = 0.02,
                grasp_tol: GraspTolerance = GraspTolerance(), keep: bool = False) -> EpisodeResult:
    """Perceive (``"gt"`` or ``"model"``), plan, execute, measure. ``keep``: return the field, plan and execution
    log in ``extras``."""
    from ..planning.object_motion import ObjectSelection
    from ..planning.planner import ManipulationPlanner, PlannerParams

    params = planner_params or PlannerParams()
    planner = ManipulationPlanner(params)
    scene, cur, goal = _render_pair(spec)
    try:
        t0 = time.perf_counter()
        refusal = None
        if perception == "gt":
            fld = gt_goal_field(scene, spec, cur, goal)
        elif perception == "model":
            if model is None:
                raise ValueError("perception='model' needs a ModelPerception")
            ge = model.estimate(cur, goal)
            fld, refusal = ge.field, ge.refusal
        else:
            raise ValueError(f"unknown perception {perception!r} (gt | model)")
        t1 = time.perf_counter()
        mask = _object_mask(cur, scene)
        sel = ObjectSelection(mask=mask, source_size=mask.shape)
        plan = refusal if refusal is not None else planner.plan_from_goal_image(fld, sel, cur["world_T_cam"], now=0.0,
                                                                                depth=cur["depth"])
        t2 = time.perf_counter()
        common = dict(seed=spec.seed, perception=perception, plan_status=plan.status.name, plan_reason=plan.reason,
                      commanded_translation_cm=spec.translation * 100, commanded_yaw_deg=float(np.degrees(spec.yaw)),
                      plan_confidence=float(plan.confidence), perception_s=t1 - t0, planning_s=t2 - t1)
        extras = {"scale_note": plan.diagnostics.get("scale_note", "")}
        last = model.last if perception == "model" else None
        if last is not None:  # the goal-pair estimator's own report
            extras["goal_confidence"] = float(last.confidence)
            if last.reason:
                extras["goal_reason"] = last.reason
        if len(plan.object_poses) > 1:
            # the perceived motion applied to the true start pose vs the goal: the plan's error before execution
            from ..planning import se3
            moved = plan.object_poses[-1] @ se3.invert(plan.object_poses[0]) @ spec.start_pose
            m_t, m_r = pose_error(moved, spec.goal_pose)
            extras["planned_motion_error_cm"], extras["planned_motion_error_deg"] = m_t * 100, float(np.degrees(m_r))
        if keep:
            extras.update(field=fld, plan=plan, current=cur, goal=goal)
        if not plan.ok:
            # nothing executed: the object stays where it is (DONE counts by the same measurement)
            e_t, e_r = pose_error(spec.start_pose, spec.goal_pose)
            return EpisodeResult(grasped=False, grasp_note="not executed", translation_error_cm=e_t * 100,
                                 rotation_error_deg=float(np.degrees(e_r)),
                                 success=bool(e_t * 100 <= tol_cm and np.degrees(e_r) <= tol_deg), extras=extras,
                                 **common)
        obj = scene.objects[0]
        tool_offset = obj.half_height - params.grasp_depth
        log = execute_plan(scene, plan, tool_offset, dt=dt, tol=grasp_tol)
        t3 = time.perf_counter()
        e_t, e_r = pose_error(log.final_pose, spec.goal_pose)
        if keep:
            extras["execution"] = log
        extras["final_pose"] = log.final_pose.tolist()
        return EpisodeResult(grasped=log.grasped, grasp_note=log.grasp_note, translation_error_cm=e_t * 100,
                             rotation_error_deg=float(np.degrees(e_r)),
                             success=bool(e_t * 100 <= tol_cm and np.degrees(e_r) <= tol_deg),
                             plan_duration_s=float(plan.diagnostics.get("duration_s", 0.0)),
                             execution_s=t3 - t2, extras=extras, **common)
    finally:
        scene.close()


def summarize(results: List[EpisodeResult]) -> dict:
    if not results:
        return {"episodes": 0}
    te = np.array([r.translation_error_cm for r in results])
    re = np.array([r.rotation_error_deg for r in results])
    st = {}
    for r in results:
        st[r.plan_status] = st.get(r.plan_status, 0) + 1
    return {"episodes": len(results), "success_rate": float(np.mean([r.success for r in results])),
            "grasp_rate": float(np.mean([r.grasped for r in results])),
            "plan_status": st,
            "translation_error_cm": {"median": float(np.median(te)), "p90": float(np.percentile(te, 90)),
                                     "max": float(te.max())},
            "rotation_error_deg": {"median": float(np.median(re)), "p90": float(np.percentile(re, 90)),
                                   "max": float(re.max())}}
