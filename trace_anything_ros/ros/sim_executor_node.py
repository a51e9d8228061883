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

"""``sim_executor_node``: a robot stand-in that executes the planner's ``~/ee_path`` in a MuJoCo episode.

It owns one closed-loop episode of ``trace_anything_ros.sim.closed_loop`` (``sample_episode(seed)``: a
``pick_place`` scene, the graspable object ``obj0`` and its goal pose), and

* publishes the scene as the camera sees it now: ``image`` (sensor_msgs/Image rgb8), ``depth`` (32FC1 metres, NaN
  where nothing is hit; same stamp) and ``camera_info`` at ``rate_hz`` (wall time), frame ``frame_id``; the
  planner's ``image`` / ``depth`` / ``camera_info`` inputs (for goal images); with ``publish_clock`` also
  ``camera_pose`` (geometry_msgs/PoseStamped, the optical frame in ``world_frame``) and ``/clock`` carrying the
  stamps (this node's wall clock), so that it can stand in for the manipulation graph's camera (the demo);
* subscribes ``ee_path`` (nav_msgs/Path; remap it to ``/manipulation_planner_node/ee_path``) and ``plan``
  (ManipulationPlan; remap to ``.../plan``). A path is executed once the plan with the same header stamp has
  arrived and is STATUS_OK and not ``dry_run`` (dry-run plans are for inspection: ignored, not reported), and at
  most ``executions`` paths are executed (0: no limit; later ones are ignored: the robot has done its job); its
  ``grasp_pose`` must be the path's grasp waypoint (the path's
  order: pre_grasp, grasp, carry.., release, retreat). The path's frame must be ``world_frame`` (the MuJoCo world
  = the robot base frame here). An empty path (HALTED / IDLE) stops an execution in progress where it is.
* executes it like ``closed_loop.execute_plan`` (``closed_loop.Execution``): the kinematic gripper follows the
  waypoints at their pose stamps (time = stamp - the path's header stamp; linear + slerp in between, ``dt`` steps,
  paced at ``time_scale`` x wall time, 0: as fast as possible), closes at the grasp waypoint (the object is
  attached only if it is between the fingers), releases at the release waypoint (the object settles on the table);
* publishes, with every camera frame, how much of the object it shows on ``~/object_visibility`` (std_msgs/String,
  JSON: the frame's stamp_ns, visible_px, unoccluded_px = its pixels with the gripper out of view, fraction):
  simulator ground truth, for scoring a planner per frame in which the object is visible (the demo);
* reports on ``~/result`` (std_msgs/String, JSON, transient local, one message per executed or stopped path):
  seed, grasped, grasp_note, final object pose error vs the goal (translation_error_cm, rotation_error_deg),
  success (within ``tol_cm`` and ``tol_deg``), the executed waypoints (the EE pose the gripper had at each
  waypoint's time, and those times as stamps in ns), and logs it. With ``exit_after_result`` the process exits
  after the first result (``linger_s`` later, so that subscribers get it) with exit code 0 on success, 1 otherwise.

ROS-free logic lives in ``sim.closed_loop``; this module is the ROS shell around it.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Optional

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from rosgraph_msgs.msg import Clock as ClockMsg
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from trace_anything_ros.msg import ManipulationPlan
from trace_anything_ros.planning import se3
from trace_anything_ros.planning.planner import PlannerParams
from trace_anything_ros.sim import closed_loop as cl
from trace_anything_ros.sim.scene import Scene

from . import conversions as conv
from . import messages
from .graph import EXECUTOR_NAME
from .node_main import spin_node
from .params import Spec, declare_parameters, field_spec

NODE_NAME = EXECUTOR_NAME
PARAMS = [
    Spec("seed", 0, "episode seed (closed_loop.sample_episode)", range=(0, 2**31 - 1)),
    Spec("width", 320, "image width", range=(16, 4096)),
    Spec("height", 240, "image height", range=(16, 4096)),
    Spec("frame_id", "sim_camera_optical_frame", "frame id of image and camera_info"),
    Spec("world_frame", "world", "frame the executed paths must be in (MuJoCo world = robot base)"),
    Spec("rate_hz", 5.0, "camera image rate (wall time)", range=(0.1, 100.0)),
    Spec("dt", 0.02, "execution time step (s of path time)", range=(1e-3, 1.0)),
    Spec("time_scale", 1.0, "wall seconds per second of path time (0: execute as fast as possible)",
         range=(0.0, 100.0)),
    field_spec(PlannerParams, "grasp_depth", description="the planner's grasp depth below the object's top (m): "
               "the tool point's height in the gripper"),
    Spec("grasp_opening", cl.GraspTolerance().opening, "finger opening (m)", range=(1e-3, 1.0)),
    Spec("tol_cm", 2.0, "success: translation error at most this (cm)", range=(0.0, 100.0)),
    Spec("tol_deg", 10.0, "success: rotation error at most this (deg)", range=(0.0, 180.0)),
    Spec("waypoint_tolerance", 1e-4, "the plan's grasp_pose must match the path's grasp waypoint within this (m)",
         range=(0.0, 1.0)),
    Spec("exit_after_result", False, "exit after the first result (code 0: success, 1: not)"),
    Spec("executions", 0, "execute at most this many paths (0: no limit)", range=(0, 2**31 - 1)),
    Spec("publish_clock", False, "also publish camera_pose and /clock with the frames' stamps (stand in for the "
         "graph's sim camera)"),
    Spec("linger_s", 1.0, "with exit_after_result: keep running this long after the result", range=(0.0, 60.0)),
]


def _pose_T(p) -> np.ndarray:
    return se3.pose_from_xyz_quat([p.position.x, p.position.y, p.position.z],
                                  [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])


class SimExecutorNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        errors = declare_parameters(self, PARAMS, lifecycle=False)
        if errors:
            raise ValueError("; ".join(errors))
        v = {s.name: self.get_parameter(s.name).value for s in PARAMS}
        self.v = v
        t0 = time.perf_counter()
        self.spec = cl.sample_episode(int(v["seed"]), width=int(v["width"]), height=int(v["height"]))
        self.scene = Scene(cl._scene_config(self.spec.scene_seed, self.spec.width, self.spec.height))
        self.scene.set_pose_override("gripper", cl.PARK_POSE)
        self.scene.set_pose_override(cl.OBJECT, self.spec.start_pose)
        self.camera_pose = self.scene.camera_pose_at(0.0)
        self._frame = None  # cached render of the current state
        self._render()
        self.tool_offset = self.scene.objects[0].half_height - float(v["grasp_depth"])
        self.tol = cl.GraspTolerance(opening=float(v["grasp_opening"]))
        rel = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.create_publisher(Image, "image", rel)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", rel)
        self.pub_depth = self.create_publisher(Image, "depth", rel)
        self.pub_pose = self.pub_clock = None
        if v["publish_clock"]:
            self.pub_pose = self.create_publisher(PoseStamped, "camera_pose", rel)
            self.pub_clock = self.create_publisher(ClockMsg, "/clock", QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.executed = 0
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_result = self.create_publisher(String, "~/result", latched)
        self.pub_visibility = self.create_publisher(String, "~/object_visibility", QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(Path, "ee_path", self._on_path, QoSProfile(depth=5,
                                 reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(ManipulationPlan, "plan", self._on_plan, QoSProfile(depth=5,
                                 reliability=ReliabilityPolicy.RELIABLE))
        self._plans = {}          # header stamp ns -> ManipulationPlan (the newest few)
        self._pending: Optional[Path] = None
        self._exec = None         # (closed_loop.Execution, path stamp ns, wall start, path time origin)
        self.results = []
        self.done = False
        self._done_at = None
        self.create_timer(1.0 / float(v["rate_hz"]), self._publish_frame)
        if self.pub_clock is not None:  # a fine-grained clock, so that no frame's stamp runs ahead of it
            self.create_timer(0.02, lambda: self.pub_clock.publish(ClockMsg(clock=self.get_clock().now().to_msg())))
        step_period = float(v["dt"]) * float(v["time_scale"]) if float(v["time_scale"]) > 0 else 0.001
        self.create_timer(max(step_period / 2.0, 0.001), self._on_step)
        xyz, q = se3.pose_to_xyz_quat(self.camera_pose)
        self.get_logger().info(
            f"episode {self.spec.seed} (scene {self.spec.scene_seed}): object moves "
            f"{self.spec.translation * 100:.1f} cm, yaw {np.degrees(self.spec.yaw):.1f} deg; camera in "
            f"{v['world_frame']}: xyz {np.round(xyz, 4).tolist()} quat {np.round(q, 6).tolist()}; ready in "
            f"{time.perf_counter() - t0:.2f} s")

    # ------------------------------------------------------------------------------------------ camera
    def _render(self):
        self._frame = self.scene.render()
        self._frame["visibility"] = cl.object_visibility(self.scene, self._frame)
        return self._frame

    def _publish_frame(self):
        fr = self._frame if self._frame is not None else self._render()
        stamp = self.get_clock().now().to_msg()
        if self.pub_clock is not None:
            self.pub_clock.publish(ClockMsg(clock=stamp))
            self.pub_pose.publish(messages.pose_stamped(self.camera_pose, stamp, self.v["world_frame"]))
        self.pub_image.publish(messages.image_message(fr["rgb"], stamp, self.v["frame_id"], "rgb8"))
        self.pub_depth.publish(messages.image_message(fr["depth"], stamp, self.v["frame_id"], "32FC1"))
        self.pub_info.publish(messages.camera_info_message(self.scene.K, fr["rgb"].shape[1], fr["rgb"].shape[0],
                                                           stamp, self.v["frame_id"]))
        self.pub_visibility.publish(String(data=json.dumps({"stamp_ns": conv.stamp_to_ns(stamp),
                                                            **fr["visibility"]})))

    # ------------------------------------------------------------------------------------------ plans
    def _on_plan(self, msg: ManipulationPlan):
        self._plans[conv.stamp_to_ns(msg.header.stamp)] = msg
        while len(self._plans) > 20:
            self._plans.pop(min(self._plans))
        self._try_start()

    def _on_path(self, msg: Path):
        if not msg.poses:
            if self._exec is not None:
                self._finish("stopped: empty path (planner HALTED / IDLE) during execution")
            return
        self._pending = msg
        self._try_start()

    def _reject(self, path: Path, why: str):
        self.get_logger().warn(f"path not executed: {why}")
        self._pending = None
        self._report({"executed": False, "reason": why, "path_stamp_ns": conv.stamp_to_ns(path.header.stamp)})

    def _try_start(self):
        path = self._pending
        if path is None or self._exec is not None:
            return
        stamp = conv.stamp_to_ns(path.header.stamp)
        plan = self._plans.get(stamp)
        if plan is None:
            return  # wait for the plan of this path
        self._pending = None
        if plan.dry_run:
            return  # an inspection plan: never executed
        limit = int(self.v["executions"])
        if limit and self.executed >= limit:
            return  # done: at most `executions` paths
        if plan.status != ManipulationPlan.STATUS_OK:
            return self._reject(path, f"plan status {plan.status}")
        if path.header.frame_id != self.v["world_frame"]:
            return self._reject(path, f"path frame {path.header.frame_id!r} is not {self.v['world_frame']!r}")
        poses = np.stack([_pose_T(ps.pose) for ps in path.poses])
        stamps = np.array([conv.stamp_to_ns(ps.header.stamp) for ps in path.poses], np.int64)
        if np.any(np.diff(stamps) <= 0):
            return self._reject(path, "pose stamps do not increase")
        try:
            labels = cl.path_labels(len(poses))
        except ValueError as e:
            return self._reject(path, str(e))
        g = labels.index("grasp")
        off = float(np.linalg.norm(poses[g][:3, 3] - _pose_T(plan.grasp_pose)[:3, 3]))
        if off > float(self.v["waypoint_tolerance"]):
            return self._reject(path, f"the plan's grasp_pose is {off * 100:.2f} cm from the path's grasp waypoint")
        times = (stamps - stamps[0]) * 1e-9  # path time; scene time follows it
        ex = cl.Execution(self.scene, poses, times, labels, self.tool_offset, float(self.v["dt"]), self.tol)
        self._exec = (ex, stamps, time.monotonic())
        self.executed += 1
        self.get_logger().info(f"executing path {stamp}: {len(poses)} waypoints over {times[-1]:.2f} s")

    # ------------------------------------------------------------------------------------------ execution
    def _on_step(self):
        if self._exec is None:
            return
        ex, stamps, wall0 = self._exec
        scale = float(self.v["time_scale"])
        # steps whose path time has come (all of them when time_scale is 0)
        while not ex.done and (scale <= 0 or ex.ts[ex.k] - ex.ts[0] <= (time.monotonic() - wall0) / scale):
            ex.step()
        self._frame = None  # re-render on the next camera tick
        if ex.done:
            self._finish("executed")

    def _finish(self, how: str):
        ex, stamps, _ = self._exec
        self._exec = None
        log = ex.log()
        e_t, e_r = cl.pose_error(log.final_pose, self.spec.goal_pose)
        reached = ex.ee_at_waypoints()
        xyz_q = [se3.pose_to_xyz_quat(T) for T in reached]
        res = {"executed": how == "executed", "reason": how, "seed": self.spec.seed,
               "path_stamp_ns": int(stamps[0]), "grasped": bool(log.grasped), "grasp_note": log.grasp_note,
               "translation_error_cm": e_t * 100, "rotation_error_deg": float(np.degrees(e_r)),
               "success": bool(e_t * 100 <= float(self.v["tol_cm"]) and np.degrees(e_r) <= float(self.v["tol_deg"])),
               "steps": int(ex.k), "executed_stamps_ns": [int(s) for s in stamps[:len(reached)]],
               "executed_waypoints": [[*map(float, p), *map(float, q)] for p, q in xyz_q],
               "final_object_pose": log.final_pose.tolist(), "goal_pose": self.spec.goal_pose.tolist()}
        self._report(res)

    def _report(self, res: dict):
        self.results.append(res)
        self.pub_result.publish(String(data=json.dumps(res)))
        if "translation_error_cm" in res:
            self.get_logger().info(
                f"result: {res['reason']}; grasped {res['grasped']} ({res['grasp_note']}); object error "
                f"{res['translation_error_cm']:.2f} cm, {res['rotation_error_deg']:.2f} deg -> "
                f"{'SUCCESS' if res['success'] else 'FAILURE'}")
        if self.v["exit_after_result"] and self._done_at is None:
            self._done_at = time.monotonic()
            self.create_timer(float(self.v["linger_s"]) + 1e-3, self._set_done)

    def _set_done(self):
        self.done = True

    @property
    def exit_code(self) -> int:
        return 0 if self.results and self.results[0].get("success") else 1


def main(args=None) -> int:
    holder = {}

    def factory():
        holder["node"] = SimExecutorNode()
        return holder["node"]

    def cleanup(node):
        node.scene.close()

    spin_node(factory, args, until=lambda node: node.done, cleanup=cleanup)
    node = holder.get("node")
    return node.exit_code if node is not None and node.v["exit_after_result"] else 0


if __name__ == "__main__":
    sys.exit(main())
