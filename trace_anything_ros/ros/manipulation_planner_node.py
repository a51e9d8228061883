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

"""manipulation_planner_node: goal-conditioned grasp-and-move plans from the perception outputs (lifecycle node).

Goals
  * ``goal_pose`` (geometry_msgs/PoseStamped): target pose of the tracked object ``object_id`` (parameter; -1: the
    largest tracked object). Frame: ``base_frame``, the camera frame, or any frame tf2 knows (when tf2 is present).
  * ``~/set_object_goal`` (trace_anything_ros/srv/SetObjectGoal): the same with an object id or a pixel (u, v) of
    the newest frame (the tracked object whose box contains it).
  * ``goal_image`` (sensor_msgs/Image): an image of the scene as it should be. The goal-image estimator (loaded
    lazily on the first goal image, from the ``goal_image.*`` parameters; default the goal-pair estimator
    ``planning.goal_pair``) runs on the pair (newest ``image``, goal image); the largest region that moves between
    them is the object, its rigid motion current -> goal is the object motion. An estimator that declares
    ``needs_intrinsics`` (the goal-pair one) also gets the current frame's ``depth`` (the newest depth image within
    ``goal_image.depth_max_skew`` of the image's stamp) and K from ``camera_info``; a missing one is named in a
    REFUSED plan. ``goal_depth`` (sensor_msgs/Image, optional): the goal image's depth, used when its stamp equals
    the goal image's. An estimate the estimator does not trust is REFUSED with its reason. The goal is estimated
    once: an estimator that can follow its estimate (the goal-pair one) binds the goal to the object it found, and
    every later perception window plans the remaining motion of that object, found by geometry in the newest RGB-D
    frame (``planning.goal_track``: no perception object id needed); an occluded or lost object is REFUSED with
    the reason. Other estimators estimate again on each window.
  * ``~/cancel`` (std_srvs/Trigger): drop the goal (publishes STATUS_IDLE).

Inputs: ``tracks`` (TrajectoryArray) and ``dynamic_objects`` (DynamicObjectArray) of trajectory_field_node; each
``tracks`` message (one perception window) triggers a replan while a goal is active. ``image``, ``depth``,
``camera_info`` (only used for goal images; QoS ``qos.reliability``, default ``auto``: follows the publishers, see
``ros/qos.py``); an image or depth image that cannot be read, or an implausible camera_info, is dropped on arrival
with a warning and the last good one is used.

Outputs: ``~/plan_windows`` (std_msgs/String, JSON, one per perception window while a goal is active: the window's
stamp and the status and stamp of the plan that answered it, SKIPPED when a newer window came first);
``~/plan`` (ManipulationPlan; status IDLE / OK / REFUSED / HALTED / DONE with a reason) and ``~/ee_path``
(nav_msgs/Path: timed end-effector waypoints pre-grasp, grasp, carry..., release, retreat, in ``base_frame``; pose
stamps are absolute times). A path is published only with STATUS_OK, and an OK plan has passed the workspace box
and the velocity/acceleration checks (re-checked here before publishing). When no perception window arrived for
``stale_timeout`` seconds while a goal is active (for image goals: no camera ``image`` either),
STATUS_HALTED is published (with an empty path) until perception
resumes. ``dry_run``: plans are computed and published as usual, flagged ``dry_run`` for inspection (an executor
must not move the robot on them).

Camera -> base: tf2 (``lookup_transform(base_frame, camera frame)``) when ``tf2_ros`` is importable and ``use_tf``;
otherwise the parameters ``camera_to_base.xyz`` / ``camera_to_base.quat`` (x, y, z, w): the pose of the camera's
optical frame in ``base_frame``.

Handing the path to MoveIt (on a robot with MoveIt 2)::

    # 1. Cartesian path through the waypoints (the plan's poses are the tool frame in base_frame):
    req = GetCartesianPath.Request()                # moveit_msgs/srv/GetCartesianPath, service /compute_cartesian_path
    req.header.frame_id = plan.path.header.frame_id
    req.group_name = "arm"; req.link_name = "tool0"  # the link whose pose the waypoints give
    req.waypoints = [ps.pose for ps in plan.path.poses]
    req.max_step = 0.01; req.avoid_collisions = True
    res = cartesian_client.call(req)                # res.fraction must be 1.0, else do not execute
    # 2. Retime res.solution.joint_trajectory so that each waypoint is reached at its stamp (stamp - plan stamp)
    #    and within the joint limits (e.g. time-optimal parameterisation, then stretch to the stamps).
    # 3. Execute: control_msgs/action/FollowJointTrajectory on the arm controller (e.g.
    #    /joint_trajectory_controller/follow_joint_trajectory); close the gripper at the 'grasp' waypoint and open
    #    it at 'release' (the planner leaves gripper_dwell seconds at both).
    # Stop (cancel the action goal) on STATUS_HALTED / REFUSED or when a plan with a different stamp replaces it.
"""
from __future__ import annotations

import json
import sys
from collections import deque
import threading
import time
import traceback
from dataclasses import fields
from typing import Optional

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Vector3
from nav_msgs.msg import Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from trace_anything_ros.msg import DynamicObjectArray, ManipulationPlan, TrajectoryArray
from trace_anything_ros.pipeline import DropCounter, gates
from trace_anything_ros.planning import se3
from trace_anything_ros.planning.path import check_workspace, limit_violations
from trace_anything_ros.planning.planner import ManipulationPlanner, Plan, PlannerParams, PlanStatus
from trace_anything_ros.planning.session import PlannerSession, TrackedObjects, estimate_image_goal
from trace_anything_ros.srv import SetObjectGoal

from . import conversions as conv
from . import diagnostics as diag
from . import messages
from .graph import PLANNER_NAME, PLANNER_OUTPUTS, PLANNER_SERVICES, private
from .node_main import spin_node
from .params import QOS_RELIABILITY, Spec, check, dataclass_specs, declare_parameters
from .qos import InputSubscriptions

try:  # tf2 is not available as wheels; on a ROS install it is.
    import tf2_ros  # type: ignore
except Exception:  # noqa: BLE001
    tf2_ros = None

TRACKS_QUEUE_DEPTH = 3  # perception windows queued while one is planned (a burst is planned window by window)
FRAME_BUFFER = 40   # camera images / depth images kept (4 s at 10 Hz): a queued window is planned on its own frame
WINDOW_QUEUE = 8    # perception windows waiting for an image-goal plan; beyond, the oldest is skipped
NODE_NAME = PLANNER_NAME
DROP_WARN_S = 5.0   # /diagnostics is WARN, naming the reasons, while camera input was dropped this recently

# name, default, description, range, dynamic
PARAMS = [
    Spec("dry_run", False, "publish plans flagged dry_run (for inspection; executors must not move)", dynamic=True),
    Spec("base_frame", "base_link", "robot base frame: frame of ~/plan and ~/ee_path"),
    Spec("camera_frame", "", "camera optical frame for tf2 / goal poses (empty: the tracks' frame_id)"),
    Spec("use_tf", True, "look up camera -> base with tf2 when tf2_ros is importable (else the parameters)"),
    Spec("camera_to_base.xyz", [0.0, 0.0, 0.0], "camera position in base_frame (m), used without tf2",
         dynamic=True),
    Spec("camera_to_base.quat", [0.0, 0.0, 0.0, 1.0], "camera orientation in base_frame (x, y, z, w), used "
         "without tf2", dynamic=True),
    Spec("object_id", -1, "object targeted by goal_pose (-1: the largest tracked object)", range=(-1, 2**31 - 1),
         dynamic=True),
    Spec("stale_timeout", 1.0, "HALTED when no perception window arrived for this long (s) with an active goal",
         range=(0.01, 3600.0), dynamic=True),
    Spec("check_period", 0.1, "period (s) of the staleness check", range=(0.01, 10.0)),
    Spec("diagnostics.period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    Spec("rebind_radius", 0.1, "when the goal object's id vanishes (perception's tracker lost it), re-bind the goal "
         "to the object nearest its predicted position within this distance (track units: m for a metric field; "
         "0: never)", range=(0.0, 10.0), dynamic=True),
    Spec("goal_image.enabled", True, "accept goal images (loads a field estimator on the first one)"),
    Spec("goal_image.estimator.factory", "trace_anything_ros.planning.goal_pair:create",
         "FieldEstimator factory 'module:function' (default: the goal-pair estimator, needs depth + camera_info; "
         "empty: the compact network engine, RGB only)"),
    Spec("goal_image.depth_max_skew", 0.05, "the current depth image is paired with the image when their stamps "
         "differ by at most this (s)", range=(0.0, 10.0)),
    Spec("image_transport", "raw", "how the camera's 'image' and 'depth' arrive (the current frame of a goal image): "
         "raw (sensor_msgs/Image) or compressed (image_transport's CompressedImage on '<image>/compressed' and "
         "'<depth>/compressedDepth' of the remapped names; decoded only when a goal image is planned)",
         choices=("raw", "compressed")),
    QOS_RELIABILITY,  # of 'image', 'depth' and 'camera_info' (the current frame of a goal image)
    Spec("goal_image.model.preset", "compact", "architecture preset when no weights are given"),
    Spec("goal_image.model.weights", "embedded", "checkpoint path ('embedded': the shipped compact model; "
         "empty: random weights, meaningless plans)"),
    Spec("goal_image.model.device", "cpu", "device: cpu, cuda, cuda:0"),
    Spec("goal_image.input_height", 0, "model input height (0: the estimator's default)", range=(0, 4096)),
    Spec("goal_image.input_width", 0, "model input width (0: the estimator's default)", range=(0, 4096)),
]
# Planner parameters: every PlannerParams field as planner.<name> (dynamic; validated together by
# PlannerParams.validate); default, range and description from the field's metadata (paramspec.param).
PLANNER_PREFIX = "planner."
PARAMS += dataclass_specs(PlannerParams, PLANNER_PREFIX, dynamic=True)
BY_NAME = {s.name: s for s in PARAMS}


def planner_params_from(values: dict) -> PlannerParams:
    """PlannerParams from the node's parameter values (raises ValueError with the reason)."""
    kw = {}
    for f in fields(PlannerParams):
        v = values[PLANNER_PREFIX + f.name]
        if isinstance(BY_NAME[PLANNER_PREFIX + f.name].default, list):  # a 3-vector ([] = unset: closing_axis)
            v = [float(x) for x in v]
            if f.name == "closing_axis" and len(v) == 0:
                v = None
            elif len(v) != 3:
                raise ValueError(f"{PLANNER_PREFIX}{f.name} must have 3 values, got {len(v)}")
            else:
                v = tuple(v)
        kw[f.name] = v
    return PlannerParams(**kw).validate()


def base_T_camera_from(values: dict) -> np.ndarray:
    xyz = [float(x) for x in values["camera_to_base.xyz"]]
    q = [float(x) for x in values["camera_to_base.quat"]]
    if len(xyz) != 3 or len(q) != 4:
        raise ValueError("camera_to_base.xyz needs 3 values and camera_to_base.quat 4 (x, y, z, w)")
    if not np.linalg.norm(q) > 1e-9:
        raise ValueError("camera_to_base.quat must not be zero")
    return se3.pose_from_xyz_quat(xyz, q)


_pose_msg, _pose_to_T = messages.pose_message, messages.pose_matrix  # the one home of pose <-> message


class ManipulationPlannerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._override_errors = declare_parameters(self, PARAMS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.lc_state = "unconfigured"
        self._lock = threading.RLock()
        self._session: Optional[PlannerSession] = None
        self._pubs = {}
        self._subs = []
        self._inputs: Optional[InputSubscriptions] = None  # camera subscriptions of goal images (qos.reliability)
        self._srvs = []
        self._timer = None
        self._objects: Optional[DynamicObjectArray] = None
        self._camera_frame = ""
        self._latest_image = None
        self._latest_image_time = None
        self._goal_awaits_frame = None  # an image goal refused for want of a camera frame: planned on the first one
        self._depths = []             # the newest depth images (goal-image estimators that need one)
        self._images = []             # the newest images (to pair one with a depth image; a window's own frame)
        self._latest_info = None      # newest camera_info
        self._distortion = gates.DistortionCheck()   # ... its distortion, judged once per one
        self._goal_depth = None       # newest goal_depth image
        self._estimator = None
        self._img_thread: Optional[threading.Thread] = None
        self._img_cv = threading.Lock()
        self._img_busy = False
        self._img_jobs = deque()      # image-goal plans to compute: (trigger time, window stamp ns or None)
        self._windows_seen = 0        # perception windows received with a goal active
        self._tf_buffer = None
        self._tf_listener = None
        self._last_halt_pub = 0.0
        self.published = {"ok": 0, "refused": 0, "halted": 0, "done": 0, "idle": 0}
        # /diagnostics: the newest plan, camera inputs dropped by reason (and when last), named warnings
        self._last_plan = None        # (status, reason, monotonic time)
        self.drops, self.warnings = DropCounter(), {}
        self._estimator_state = "not loaded"
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics.period").value),
                                             self._publish_diagnostics)

    # ---------------------------------------------------------------------------------------------- params
    def _values(self) -> dict:
        return {s.name: self.get_parameter(s.name).value for s in PARAMS}

    def _validate(self, v: dict):
        errors = []
        for name, spec in BY_NAME.items():
            if not isinstance(spec.default, list):
                e = check(spec, v[name])
                if e:
                    errors.append(e)
        try:
            planner_params_from(v)
        except (ValueError, TypeError) as e:
            errors.append(str(e))
        try:
            base_T_camera_from(v)
        except ValueError as e:
            errors.append(str(e))
        return errors

    def _on_set_parameters(self, params) -> SetParametersResult:
        v = self._values()
        for p in params:
            spec = BY_NAME.get(p.name)
            if spec is None:
                continue
            if not spec.dynamic and self.lc_state != "unconfigured":
                return SetParametersResult(successful=False, reason=f"rejected: {p.name} is read on configure; it "
                                           f"cannot change while {self.lc_state}")
            v[p.name] = p.value
        errors = self._validate(v)
        if errors:
            return SetParametersResult(successful=False, reason="rejected: " + "; ".join(errors))
        if self._session is not None:
            with self._lock:
                self._session.planner = ManipulationPlanner(planner_params_from(v))
                self._session.stale_timeout = float(v["stale_timeout"])
                self._session.rebind_radius = float(v["rebind_radius"])
        self._cfg_dynamic = v
        return SetParametersResult(successful=True)

    def _v(self) -> dict:
        return getattr(self, "_cfg_dynamic", None) or self._values()

    # ------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values()
        errors = list(self._override_errors) + self._validate(v)
        if errors:
            for e in errors:
                self.get_logger().error(f"configure rejected: {e}")
            return TransitionCallbackReturn.FAILURE
        self._cfg_dynamic = v
        self._session = PlannerSession(ManipulationPlanner(planner_params_from(v)), v["stale_timeout"],
                                       rebind_radius=v["rebind_radius"])
        out_q = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {"plan": self.create_lifecycle_publisher(ManipulationPlan, private(PLANNER_OUTPUTS["plan"]),
                                                              out_q),
                      "path": self.create_lifecycle_publisher(Path, private(PLANNER_OUTPUTS["ee_path"]), out_q),
                      "windows": self.create_lifecycle_publisher(String, private(PLANNER_OUTPUTS["plan_windows"]),
                                                                 QoSProfile(depth=20, reliability=out_q.reliability))}
        in_q = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        # perception: the object list, newest only; windows, the newest few (a burst of windows -- two finished
        # close together -- is planned window by window; a longer queue would be a backlog when planning is slower
        # than perception); goals keep a small queue
        newest_q = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        windows_q = QoSProfile(depth=TRACKS_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = [
            self.create_subscription(TrajectoryArray, "tracks", self._on_tracks, windows_q),
            self.create_subscription(DynamicObjectArray, "dynamic_objects", self._on_objects, newest_q),
            self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, in_q),
        ]
        if v["goal_image.enabled"]:
            packed = v["image_transport"] == "compressed"   # kept compressed: decoded when a goal image is planned
            self._subs += [self.create_subscription(Image, "goal_image", self._on_goal_image, in_q),
                           self.create_subscription(Image, "goal_depth", self._on_goal_depth, in_q)]
            # the camera: qos.reliability (auto: follows the publishers, re-checked every second -- ros/qos.py)
            self._inputs = InputSubscriptions(self, v["qos.reliability"])
            self._inputs.add(*messages.camera_input(self, "image", packed), self._on_image)
            self._inputs.add(*messages.camera_input(self, "depth", packed), self._on_depth)
            self._inputs.add(CameraInfo, "camera_info", self._on_info)
        self._srvs = [self.create_service(SetObjectGoal, private(PLANNER_SERVICES["set_object_goal"]),
                                          self._on_set_goal),
                      self.create_service(Trigger, private(PLANNER_SERVICES["cancel"]), self._on_cancel)]
        if tf2_ros is not None and v["use_tf"]:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
            src = "tf2"
        else:
            src = "parameters camera_to_base.*" + (" (tf2_ros not importable)" if tf2_ros is None else "")
        self._timer = self.create_timer(float(v["check_period"]), self._on_timer)
        self.lc_state = "inactive"
        self.get_logger().info(f"configured: base_frame {v['base_frame']}, camera->base from {src}, "
                               f"stale_timeout {v['stale_timeout']} s, dry_run {v['dry_run']}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lc_state = "active"
        ret = super().on_activate(state)
        self._publish(Plan(PlanStatus.IDLE, "activated: no goal", stamp=self._now()))
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lc_state = "inactive"
        with self._lock:
            if self._session is not None:
                self._session.cancel()
        return super().on_deactivate(state)

    def _release(self):
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for s in self._subs:
            self.destroy_subscription(s)
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        for s in self._srvs:
            self.destroy_service(s)
        for p in self._pubs.values():
            self.destroy_lifecycle_publisher(p)
        self._subs, self._srvs, self._pubs = [], [], {}
        self._session = None
        if self._estimator is not None:
            try:
                self._estimator.close()
            except Exception:  # noqa: BLE001
                pass
            self._estimator = None
            self._estimator_state = "not loaded"

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.lc_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------------------------------- helpers
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _base_T_camera(self, camera_frame: str, stamp=None) -> np.ndarray:
        v = self._v()
        if self._tf_buffer is not None:
            try:
                tr = self._tf_buffer.lookup_transform(v["base_frame"], camera_frame, rclpy.time.Time())
                t, q = tr.transform.translation, tr.transform.rotation
                return se3.pose_from_xyz_quat([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])
            except Exception as e:  # noqa: BLE001 - fall back to the parameters, loudly
                self.get_logger().warn(f"tf2 lookup {v['base_frame']} <- {camera_frame} failed ({e}); using "
                                       "camera_to_base parameters", throttle_duration_sec=5.0)
        return base_T_camera_from(v)

    def _goal_in_base(self, msg: PoseStamped) -> np.ndarray:
        v = self._v()
        T = _pose_to_T(msg.pose)
        frame = msg.header.frame_id
        cam = v["camera_frame"] or self._camera_frame
        if frame in ("", v["base_frame"]):
            return T
        if frame == cam:
            return self._base_T_camera(cam) @ T
        if self._tf_buffer is not None:
            return self._base_T_camera(frame) @ T
        raise ValueError(f"goal frame {frame!r} is neither base_frame {v['base_frame']!r} nor the camera frame "
                         f"{cam!r} (and tf2 is not available)")

    def _publish(self, plan: Plan) -> None:
        """Plan -> ~/plan (+ ~/ee_path when OK). Re-checks OK plans against workspace and limits."""
        if not self._pubs or self.lc_state != "active":
            return
        v = self._v()
        p = self._session.planner.params if self._session is not None else PlannerParams()
        if plan.status == PlanStatus.OK:
            ws = check_workspace(plan.ee_poses, plan.ee_labels, p.workspace_min, p.workspace_max)
            lim = limit_violations(plan.ee_poses, plan.ee_offsets, p.limits)
            if ws or lim:  # cannot happen with the planner's own checks; never publish such a plan anyway
                plan = Plan(PlanStatus.REFUSED, f"final check: {ws or lim[0]}", plan.confidence, plan.object_id,
                            plan.stamp)
        stamp_ns = int(round((plan.stamp or self._now()) * 1e9))
        header = Header(stamp=conv.ns_to_time(stamp_ns), frame_id=v["base_frame"])
        m = ManipulationPlan(header=header, status=int(plan.status), reason=plan.reason,
                             confidence=float(np.clip(plan.confidence, 0.0, 1.0)), object_id=int(plan.object_id),
                             dry_run=bool(v["dry_run"]))
        path = Path(header=header)
        if plan.status == PlanStatus.OK:
            m.grasp_pose = _pose_msg(plan.grasp_pose)
            m.approach = Vector3(x=float(plan.approach[0]), y=float(plan.approach[1]), z=float(plan.approach[2]))
            m.object_poses = [_pose_msg(T) for T in plan.object_poses]
            m.object_times = [Duration(sec=int(t // 1), nanosec=int(round((t % 1) * 1e9)) % 1_000_000_000)
                              for t in plan.object_times]
            path.poses = [PoseStamped(header=Header(stamp=conv.ns_to_time(stamp_ns + int(round(dt * 1e9))),
                                                    frame_id=v["base_frame"]), pose=_pose_msg(T))
                          for T, dt in zip(plan.ee_poses, plan.ee_offsets)]
        m.path = path
        self._pubs["plan"].publish(m)
        if plan.status in (PlanStatus.OK, PlanStatus.HALTED, PlanStatus.IDLE):
            self._pubs["path"].publish(path)  # HALTED / IDLE: an empty path clears a previous one
        self.published[plan.status.name.lower()] += 1
        self._last_plan = (plan.status.name, plan.reason, time.monotonic())
        if plan.status in (PlanStatus.REFUSED, PlanStatus.HALTED):
            self.get_logger().warn(f"{plan.status.name}: {plan.reason}", throttle_duration_sec=2.0)

    # ------------------------------------------------------------------------------------------- goals
    def _on_goal_pose(self, msg: PoseStamped):
        if self.lc_state != "active":
            return
        try:
            T = self._goal_in_base(msg)
            with self._lock:
                self._session.set_pose_goal(T, object_id=int(self._v()["object_id"]), now=self._now(),
                                            seen=self._object_seen(int(self._v()["object_id"])))
            self.get_logger().info(f"pose goal for object {self._v()['object_id']} at {T[:3, 3].round(3).tolist()}")
        except ValueError as e:
            self._publish(Plan(PlanStatus.REFUSED, f"goal_pose rejected: {e}", stamp=self._now()))

    def _on_set_goal(self, req, res):
        if self.lc_state != "active":
            res.accepted, res.message = False, f"node is {self.lc_state}, not active"
            return res
        try:
            T = self._goal_in_base(req.target)
            pixel = (req.u, req.v) if req.object_id < 0 else None
            with self._lock:
                self._session.set_pose_goal(T, object_id=int(req.object_id), pixel=pixel, now=self._now(),
                                            seen=self._object_seen(int(req.object_id)))
            what = f"object {req.object_id}" if req.object_id >= 0 else f"object at pixel ({req.u:.0f}, {req.v:.0f})"
            res.accepted, res.message = True, f"goal accepted for {what}"
        except ValueError as e:
            res.accepted, res.message = False, str(e)
        return res

    def _object_seen(self, object_id: int):
        """(stamp_ns, centroid, velocity) of ``object_id`` in the newest dynamic_objects message, or None."""
        objs = self._objects
        if objs is None or object_id < 0:
            return None
        for o in objs.objects:
            if int(o.id) == object_id:
                return (conv.stamp_to_ns(objs.header.stamp), (o.centroid.x, o.centroid.y, o.centroid.z),
                        (o.velocity.x, o.velocity.y, o.velocity.z))
        return None

    def _on_cancel(self, req, res):
        with self._lock:
            plan = self._session.cancel() if self._session is not None else None
        if plan is not None:
            plan.stamp = self._now()
            self._publish(plan)
        res.success, res.message = True, "goal cancelled"
        return res

    def _usable(self, msg, what: str) -> bool:
        """A camera message ('image' or 'depth') whose declared fields are usable (raw: encoding, size, step, data
        length -- a zero-copy view, nothing converted; compressed: format and header size, nothing decoded). The
        others are dropped with a warning, so that no later plan meets them: the last good frame is planned on."""
        try:
            if conv.is_compressed(msg):
                conv.compressed_image_size(msg, depth=what == "depth")
            else:
                conv.image_to_array(msg, encodings=conv.DEPTH_ENCODINGS if what == "depth" else
                                    conv.COLOR_ENCODINGS)
            return True
        except conv.ImageError as e:
            self.get_logger().warn(f"{what}: dropped: {e}", throttle_duration_sec=5.0)
            self._count_drop(e.reason)
            return False

    def _count_drop(self, reason: str) -> None:
        self.drops.add(reason)
        self.drops.seen(reason)

    def _on_image(self, msg):
        if not self._usable(msg, "image"):
            return
        self._latest_image = msg
        self._images = self._images[-(FRAME_BUFFER - 1):] + [msg]
        self._latest_image_time = self._now()
        s = self._session
        if s is not None and s.goal is not None and s.goal.kind == "image":
            s.perception_arrived(self._latest_image_time)  # an image goal lives on the camera stream
            with self._lock:
                waiting, self._goal_awaits_frame = self._goal_awaits_frame is s.goal, None
            if waiting:  # its goal image came before any frame (refused then): planned now, on this first one
                self._start_image_plan(self._latest_image_time)

    def _on_depth(self, msg):
        if not self._usable(msg, "depth"):
            return
        self._depths = self._depths[-(FRAME_BUFFER - 1):] + [msg]

    def _on_info(self, msg: CameraInfo):
        """The newest plausible camera_info (``gates.intrinsics_problem``, the perception node's rule); an implausible
        one is dropped with a warning and the previous one kept."""
        bad = gates.intrinsics_problem(msg.k, (int(msg.height), int(msg.width)))
        if bad is not None:
            self.get_logger().warn(f"camera_info: dropped: {bad[1]}", throttle_duration_sec=5.0)
            self._count_drop(bad[0])
            return
        self._latest_info = msg
        text, anew = self._distortion(msg.k, msg.d, msg.distortion_model, (int(msg.height), int(msg.width)))
        if text is None:  # goal images lift with K only
            self.warnings.pop("camera_info_distorted", None)
        else:
            self.warnings["camera_info_distorted"] = text
            if anew:
                self.get_logger().warn(text)

    def _on_goal_depth(self, msg: Image):
        if self._usable(msg, "depth"):  # an unusable goal depth is dropped: the goal is planned from RGB
            self._goal_depth = msg

    def _depth_for(self, img: Image):
        """The received depth image closest in stamp to ``img`` within goal_image.depth_max_skew, or None."""
        t_img = conv.stamp_to_ns(img.header.stamp)
        hw = conv.declared_size(img)
        dms = [m for m in list(self._depths) if conv.declared_size(m) == hw]
        dm = min(dms, key=lambda m: abs(conv.stamp_to_ns(m.header.stamp) - t_img)) if dms else None
        skew_ns = float(self._v()["goal_image.depth_max_skew"]) * 1e9
        if dm is None or abs(conv.stamp_to_ns(dm.header.stamp) - t_img) > skew_ns:
            return None
        return dm

    def _image_with_depth(self, wait_s: float = 0.5) -> Optional[Image]:
        """The newest received image that has a depth partner (the depth of the newest image may still be on its
        way: wait up to ``wait_s``); None if none has."""
        t_end = time.monotonic() + wait_s
        while True:
            for img in reversed(list(self._images)):
                if self._depth_for(img) is not None:
                    return img
            if time.monotonic() >= t_end:
                return None
            time.sleep(0.02)

    def _pair_inputs(self, cur: Image, goal, size):
        """Depth [2, H, W] (current; goal where a goal_depth with the goal image's stamp arrived, else NaN) and K on
        the estimator's grid, for an estimator declaring ``needs_intrinsics``; None where missing (the estimator
        names what it lacks)."""
        from trace_anything_ros.pipeline.frames import frame_intrinsics, preprocess_depth

        h, w = size
        img_hw = conv.declared_size(cur)
        K = None
        info = self._latest_info
        if info is not None and gates.same_aspect(img_hw, (int(info.height), int(info.width))):  # plausible K
            K = frame_intrinsics(np.asarray(info.k, np.float64).reshape(3, 3), img_hw, (h, w),
                                 (int(info.height), int(info.width)))
        depth = None
        dm = self._depth_for(cur)
        if dm is not None:
            d0 = preprocess_depth(conv.to_depth_metres(dm)[0], (h, w))
            d1 = np.full((h, w), np.nan, np.float32)
            gd = self._goal_depth
            if gd is not None and goal.stamp_ns is not None and conv.stamp_to_ns(gd.header.stamp) == goal.stamp_ns:
                d1 = preprocess_depth(conv.depth_to_metres(gd)[0], (h, w))
            depth = np.stack([d0, d1]).astype(np.float32)
        return depth, K

    def _on_goal_image(self, msg: Image):
        if self.lc_state != "active":
            return
        now = self._now()
        try:
            goal = conv.image_to_rgb(msg).copy()
        except Exception as e:  # noqa: BLE001
            self._publish(Plan(PlanStatus.REFUSED, f"goal image rejected: {e}", stamp=now))
            return
        with self._lock:
            self._session.set_image_goal(goal, now=now, stamp_ns=conv.stamp_to_ns(msg.header.stamp))
            if self._latest_image_time is not None:
                self._session.perception_arrived(self._latest_image_time)
        self.get_logger().info(f"image goal {goal.shape[1]}x{goal.shape[0]} accepted")
        self._start_image_plan(now)

    def _start_image_plan(self, now: float, window_ns: Optional[int] = None):
        """Plan the image goal for the trigger at ``now`` (a goal image, or the perception window of stamp
        ``window_ns``) in the worker thread, in arrival order. Windows queue while it works (the one-time goal
        estimate takes a second or more) and each is planned on its own newest frame while that frame is still
        buffered; beyond ``WINDOW_QUEUE`` waiting windows the oldest is skipped (reported SKIPPED)."""
        with self._img_cv:
            self._img_jobs.append((now, window_ns))
            dropped = [self._img_jobs.popleft() for _ in range(max(0, len(self._img_jobs) - WINDOW_QUEUE))]
            start = not self._img_busy
            self._img_busy = True
        for _, w in dropped:
            if w is not None:
                self._window_record(w, None, "SKIPPED")
        if start:
            self._img_thread = threading.Thread(target=self._image_worker, daemon=True)
            self._img_thread.start()

    def _image_worker(self):
        while True:
            with self._img_cv:
                if not self._img_jobs:
                    self._img_busy = False
                    return
                job = self._img_jobs.popleft()
            t0 = time.perf_counter()
            plan = self._image_plan(*job)
            if job[1] is not None:
                self._window_record(job[1], plan, compute_s=time.perf_counter() - t0)

    def _image_plan(self, now: float, window_ns: Optional[int] = None) -> Optional[Plan]:
        """One image-goal plan, stamped ``now`` (when its trigger arrived), on the window's own newest frame
        (``window_ns``) when it is still buffered, else on the newest. The goal is estimated on (that image, goal
        image) until an estimate binds it to a track (``planning.goal_track``); afterwards each trigger plans the
        tracked goal on its RGB-D frame without estimating it again."""
        try:
            with self._lock:
                goal = self._session.goal if self._session is not None else None
            if goal is None or goal.kind != "image":
                return None
            with self._lock:
                cur = self._latest_image
                if cur is None:
                    self._goal_awaits_frame = goal
            if cur is None:
                plan = Plan(PlanStatus.REFUSED, "image goal: no camera image received on 'image' yet (planned on the "
                            "first one)", stamp=now)
                self._publish(plan)
                return plan
            est = self._ensure_estimator()
            own = [m for m in list(self._images) if window_ns is not None and
                   conv.stamp_to_ns(m.header.stamp) == window_ns]
            if own and (self._depth_for(own[-1]) is not None or not getattr(est, "needs_intrinsics", False)):
                cur = own[-1]
            elif getattr(est, "needs_intrinsics", False):  # pair the newest image that has a depth image
                cur = self._image_with_depth() or cur
            h, w = (int(x) for x in est.input_size)
            from trace_anything_ros.pipeline import preprocess_rgb

            rgb = preprocess_rgb(conv.to_rgb(cur, target=(h, w)), (h, w))
            if goal.track is not None:
                plan = self._plan_tracked(goal, cur, rgb, (h, w), now)
            else:
                plan = self._plan_estimated(est, goal, cur, rgb, (h, w), now)
            if plan is not None:
                with self._lock:
                    current = self._session is not None and (self._session.goal is goal or plan.status ==
                                                             PlanStatus.DONE)
                if current:  # not for a goal cancelled or replaced meanwhile
                    self._publish(plan)
                    return plan
        except Exception as e:  # noqa: BLE001 - report, keep the node up
            self.get_logger().error(f"image goal planning failed: {e}\n{traceback.format_exc(limit=3)}")
            plan = Plan(PlanStatus.REFUSED, f"image goal planning failed: {type(e).__name__}: {e}", stamp=now)
            self._publish(plan)
            return plan
        return None

    def _plan_tracked(self, goal, cur: Image, rgb, size, now: float) -> Optional[Plan]:
        depth, _ = self._pair_inputs(cur, goal, size)
        if depth is None:
            return Plan(PlanStatus.REFUSED, "image goal: no depth image with the newest image's stamp: the goal "
                        "object cannot be tracked (topic 'depth')", goal.track.confidence, stamp=now)
        base_T_cam = self._base_T_camera(self._v()["camera_frame"] or cur.header.frame_id)
        up = goal.track.update(rgb, depth[0])  # outside the lock (only this worker moves the track): callbacks run
        with self._lock:
            if self._session is None or self._session.goal is not goal:
                return None  # cancelled or replaced meanwhile
            return self._session.plan_track_update(up, base_T_cam, now)

    def _plan_estimated(self, est, goal, cur: Image, rgb, size, now: float) -> Optional[Plan]:
        from trace_anything_ros.pipeline import preprocess_rgb

        frames = np.stack([rgb, preprocess_rgb(goal.image, size)])
        depth = K = None
        if getattr(est, "needs_intrinsics", False):
            depth, K = self._pair_inputs(cur, goal, size)
        ge = estimate_image_goal(est, frames, now, cur.header.frame_id, depth, K)
        if ge.refusal is not None:
            return ge.refusal
        last = ge.quality
        self.get_logger().info(f"goal image estimated in {ge.seconds:.2f} s"
                               + (f": {last.reason or 'ok'}, confidence {last.confidence:.2f}" if last else ""))
        base_T_cam = self._base_T_camera(self._v()["camera_frame"] or cur.header.frame_id)
        track = est.tracker() if callable(getattr(est, "tracker", None)) else None
        with self._lock:
            if self._session is None or self._session.goal is not goal:
                return None  # cancelled or replaced meanwhile
            plan = self._session.plan_image(ge.field, base_T_cam, now)
            if track is not None and plan.status != PlanStatus.DONE:
                self._session.bind_track(goal, track)  # the next windows follow this estimate
        return plan

    def _ensure_estimator(self):
        if self._estimator is None:
            from trace_anything_ros.pipeline import load_estimator

            v = self._v()
            params = {"preset": v["goal_image.model.preset"], "weights": v["goal_image.model.weights"],
                      "device": v["goal_image.model.device"], "window": 2}
            if v["goal_image.input_height"] > 0 and v["goal_image.input_width"] > 0:
                params["input_size"] = [v["goal_image.input_height"], v["goal_image.input_width"]]
            t0 = time.perf_counter()
            try:
                self._estimator = load_estimator(v["goal_image.estimator.factory"], params)
            except Exception as e:
                self._estimator_state = f"failed: {gates.clip(str(e), 200)}"
                raise
            self._estimator_state = "loaded"
            self.get_logger().info(f"goal-image estimator loaded in {time.perf_counter() - t0:.2f} s")
        return self._estimator

    # ------------------------------------------------------------------------------------------- perception
    def _on_objects(self, msg: DynamicObjectArray):
        self._objects = msg

    def _on_tracks(self, msg: TrajectoryArray):
        if self.lc_state != "active" or self._session is None:
            return
        now = self._now()
        self._camera_frame = msg.header.frame_id
        with self._lock:
            self._session.perception_arrived(now)
            goal = self._session.goal
        if goal is None:
            return
        window_ns = conv.stamp_to_ns(msg.header.stamp)
        self._windows_seen += 1
        if goal.kind == "image":
            self._start_image_plan(now, window_ns)
            return
        try:
            w = self._window_arrays(msg)
            base_T_cam = self._base_T_camera(self._v()["camera_frame"] or msg.header.frame_id)
            with self._lock:
                plan = self._session.plan_window(w, base_T_cam, now)
            if "rebound_from" in plan.diagnostics:
                self.get_logger().warn(f"goal object {plan.diagnostics['rebound_from']} lost by perception's tracker:"
                                       f" goal re-bound to object {plan.object_id} (nearest to its predicted position)")
        except Exception as e:  # noqa: BLE001
            self.get_logger().error(f"planning failed: {e}\n{traceback.format_exc(limit=3)}")
            plan = Plan(PlanStatus.REFUSED, f"planning failed: {type(e).__name__}: {e}", stamp=now)
        self._publish(plan)
        self._window_record(window_ns, plan)

    def _window_record(self, window_ns: int, plan: Optional[Plan], what: str = "", compute_s: float = 0.0) -> None:
        """``~/plan_windows``: which plan answered the perception window of stamp ``window_ns`` (JSON: window
        stamp, plan stamp and status; status SKIPPED when a newer window came before it was planned, NONE when its
        goal was dropped meanwhile)."""
        if not self._pubs or self.lc_state != "active":
            return
        rec = {"window_stamp_ns": int(window_ns), "status": what or (plan.status.name if plan else "NONE"),
               "windows_seen": self._windows_seen}
        if plan is not None:
            rec.update(plan_stamp_ns=int(round(plan.stamp * 1e9)), reason=plan.reason, compute_s=round(compute_s, 3),
                       track=plan.diagnostics.get("track", ""))
        self._pubs["windows"].publish(String(data=json.dumps(rec)))

    def _window_arrays(self, msg: TrajectoryArray) -> TrackedObjects:
        stamps = [conv.stamp_to_ns(s) for s in msg.frame_stamps]
        T = len(stamps)
        trs = [t for t in msg.trajectories if len(t.positions) == T]
        pos = np.array([[(p.x, p.y, p.z) for p in t.positions] for t in trs], np.float64).reshape(len(trs), T, 3)
        objs_use = self._objects  # the newest object list (ids are stable across windows)
        ids, rois, pix = [], [], []
        if objs_use is not None:
            for o in objs_use.objects:
                ids.append(int(o.id))
                rois.append((o.roi.x_offset, o.roi.y_offset, o.roi.width, o.roi.height))
                pix.append(int(o.pixel_count))
        else:  # no object list: derive ids from the tracks themselves
            tid = np.array([t.object_id for t in trs], np.int64)
            for i in np.unique(tid[tid >= 0]):
                ids.append(int(i))
                rois.append((0, 0, 0, 0))
                pix.append(int((tid == i).sum()))
        return TrackedObjects(stamps, pos, np.array([t.object_id for t in trs], np.int64),
                              np.array([t.confidence for t in trs], np.float64), ids, rois, pix)

    def _on_timer(self):
        if self.lc_state != "active" or self._session is None:
            return
        now = self._now()
        with self._lock:
            plan = self._session.check_stale(now)
        if plan is not None:
            t = time.monotonic()
            if t - self._last_halt_pub >= min(1.0, self._session.stale_timeout):
                self._last_halt_pub = t
                self._publish(plan)

    # ------------------------------------------------------------------------------------------- diagnostics
    def diagnostic_status(self):
        """This node's /diagnostics status (``diagnostics.planner_report``)."""
        t = time.monotonic()
        sess = self._session
        goal = sess.goal.kind if sess is not None and sess.goal is not None else ""
        last = sess.last_perception if sess is not None else None
        lp = self._last_plan
        snap = diag.PlannerSnapshot(
            lc_state=self.lc_state, goal=goal, published=dict(self.published),
            last_plan=(lp[0], lp[1], t - lp[2]) if lp is not None else ("", "", None),
            since_perception_s=self._now() - last if last is not None else float("inf"),
            windows_seen=self._windows_seen, drops=self.drops.snapshot(),
            recent_drops=self.drops.recent(DROP_WARN_S, t),
            warnings=list(self.warnings.values()), estimator=self._estimator_state)
        level, message, values = diag.planner_report(snap)
        return diag.status(f"{self.get_name()}: planner", self.get_fully_qualified_name(), level, message, values)

    def _publish_diagnostics(self):
        try:
            self._diag_pub.publish(diag.array(self.get_clock().now().to_msg(), [self.diagnostic_status()]))
        except Exception as e:  # noqa: BLE001 - diagnostics must never take the node down
            self.get_logger().warn(f"diagnostics failed: {e}", throttle_duration_sec=10.0)


def main(args=None) -> int:
    # Single-threaded on purpose: every callback here is in the node's default (mutually exclusive) group, so a
    # second executor thread adds no parallelism, only rclpy's per-wait Python overhead and GIL contention. Measured
    # (ros/soak.py soak_planner, tracks at 100 Hz, 12 s): 312 plans with MultiThreadedExecutor(2), 1102 with this one,
    # at the same CPU (0.86 / 0.84 of a core). The image-goal model runs in its own thread.
    return spin_node(ManipulationPlannerNode, args)


if __name__ == "__main__":
    sys.exit(main())
