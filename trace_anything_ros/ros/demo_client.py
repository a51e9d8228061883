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

"""The demo's own ROS node (``trace-anything-ros demo``): progress, the goal it sends, what it sees live.

``demo.py`` orchestrates the processes and writes the report (``demo_report``); this is its ROS client part, the
only part of the demo that imports rclpy. It subscribes to the graph's topics (``graph.TOPICS``) and is spun in a
background thread:

* progress: sim time (``/clock``), perception windows (``tracks``), objects, the plan statuses, the perception
  node's last diagnostics;
* ``closed_loop`` scenario (``ClosedLoop``): publishes the goal image, switches the planner's ``dry_run`` off after
  the look phase, and after the executor's result waits for the planner's DONE (else cancels the goal); it
  keeps, per perception window, its arrival (sim time) and phase, every plan (stamp, status, reason), the
  planner's record of which plan answered which window (``~/plan_windows``) and the executor's per-frame object
  visibility (simulator ground truth), which ``demo_report.window_statuses`` joins;
* ``tabletop`` scenario: once the perception reports a moving object, asks the planner (``set_object_goal``) to
  move it ``GOAL_OFFSET`` along the camera's x axis (the largest object whose goal and pre-grasp lie inside the
  planner's workspace, read from the running planner); without an object by half time it sends ``goal_pose``.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import Dict, List, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from trace_anything_ros.msg import DynamicObjectArray, ManipulationPlan, TrajectoryArray
from trace_anything_ros.demo_report import status_name

from . import conversions as conv
from .graph import TOPICS

GOAL_RESEND_S, GOAL_SENDS = 10.0, 3   # closed loop: a goal image no plan answers is sent again, at most 3 times
GOAL_OFFSET = (0.10, 0.0, 0.0)   # tabletop: move the object 10 cm along the camera x axis (right in the image)


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


class ClosedLoop:
    """State of the closed-loop scenario: wait (perception warms up) -> look (goal image sent; dry-run plans) ->
    act (dry_run off: the executor runs the next OK plan) -> settle (its result arrived; the planner, still planning
    every window, should report DONE) -> done (DONE came, or the goal was cancelled after ``settle_s``)."""

    def __init__(self, seed: int, goal_rgb: np.ndarray, look: int, frame_id: str, translation_cm: float,
                 yaw_deg: float):
        self.seed, self.goal_rgb, self.look, self.frame_id = seed, goal_rgb, max(1, int(look)), frame_id
        self.translation_cm, self.yaw_deg = float(translation_cm), float(yaw_deg)
        self.phase = "wait"
        self.plans: List[dict] = []       # stamp (sim s), status, reason, dry_run, phase, arrival (sim s)
        self.windows: List[dict] = []     # stamp_ns (the window's newest frame), arrival (sim s), phase
        self.visibility: Dict[int, dict] = {}   # frame stamp_ns -> the executor's object_visibility record
        self.answers: Dict[int, dict] = {}      # window stamp_ns -> the planner's plan_windows record
        self.result: Optional[dict] = None
        self.t_goal = self.t_act = self.t_result = self.t_done = None   # wall (monotonic)
        self.sim_goal = self.sim_cancel = None                    # sim time of the goal image / the cancel
        self.goal_sends, self.t_goal_sent = 0, None               # goal images sent (a lost one is sent again)

    def look_plans(self, status: Optional[str] = None) -> int:
        """Plans answered in the look phase (IDLE ones are no answer), or only those of ``status``."""
        return sum(p["phase"] == "look" and p["status"] != "IDLE" and (status is None or p["status"] == status)
                   for p in self.plans)

    def looked_enough(self) -> bool:
        """``look`` OK dry-run plans (a plan refused at start-up -- the goal image before the planner's first
        camera image -- is retried by the next window), or twice that many answers whatever their status."""
        return self.look_plans("OK") >= self.look or self.look_plans() >= 2 * self.look


class DemoClient:
    """The demo's node (see the module doc). ``closed_loop``: a ``ClosedLoop`` for that scenario."""

    def __init__(self, use_planner: bool, duration: float, closed_loop: Optional[ClosedLoop] = None):
        rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = n = rclpy.create_node("trace_anything_ros_demo")
        self.duration, self.use_planner, self.cl = duration, use_planner, closed_loop
        self.sim_t0: Optional[float] = None
        self.sim_now: Optional[float] = None
        self.windows = 0
        self.first_window_wall: Optional[float] = None
        self.sim_first_window: Optional[float] = None
        self.camera_frame = ""
        self.objects_seen: set = set()
        self.last_objects = None
        self.plans: Counter = Counter()
        self.last_plan = ""
        self.diag: Dict[str, str] = {}
        self.goal_sent = ""
        self.goal_result = ""
        self._workspace = None
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        n.create_subscription(Clock, TOPICS["clock"], self._on_clock, 10)
        n.create_subscription(DiagnosticArray, TOPICS["diagnostics"], self._on_diag, 10)
        n.create_subscription(TrajectoryArray, TOPICS["tracks"], self._on_tracks, rel)
        n.create_subscription(DynamicObjectArray, TOPICS["objects"], self._on_objects, rel)
        if use_planner:
            from trace_anything_ros.srv import SetObjectGoal

            n.create_subscription(ManipulationPlan, TOPICS["plan"], self._on_plan, QoSProfile(
                depth=50, reliability=ReliabilityPolicy.RELIABLE))
            self._goal_cli = n.create_client(SetObjectGoal, TOPICS["set_object_goal"])
            self._goal_pub = n.create_publisher(PoseStamped, TOPICS["goal_pose"], rel)
        if closed_loop is not None:
            from rcl_interfaces.srv import SetParameters
            from sensor_msgs.msg import Image
            from std_msgs.msg import String
            from std_srvs.srv import Trigger

            self._img_pub = n.create_publisher(Image, TOPICS["goal_image"], rel)
            self._param_cli = n.create_client(SetParameters, TOPICS["planner_parameters"])
            self._cancel_cli = n.create_client(Trigger, TOPICS["cancel"])
            n.create_subscription(String, TOPICS["executor_result"], self._on_result, QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            n.create_subscription(String, TOPICS["object_visibility"], self._on_visibility, QoSProfile(
                depth=50, reliability=ReliabilityPolicy.RELIABLE))
            n.create_subscription(String, TOPICS["plan_windows"], self._on_plan_window, QoSProfile(
                depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(n)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            try:
                self.ex.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutting down
                if self._stop.is_set():
                    return
                raise

    def _sim(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9 if self.sim_now is None else self.sim_now

    # ------------------------------------------------------------------------------------------ progress
    def _on_clock(self, m):
        t = m.clock.sec + m.clock.nanosec * 1e-9
        if self.sim_t0 is None:
            self.sim_t0 = t
        self.sim_now = t

    @property
    def sim_elapsed(self) -> float:
        """Sim seconds since the first perception window (the run proper; start-up is not counted)."""
        if self.sim_first_window is None or self.sim_now is None:
            return 0.0
        return self.sim_now - self.sim_first_window

    @property
    def sim_startup(self) -> float:
        if self.sim_t0 is None:
            return 0.0
        end = self.sim_first_window if self.sim_first_window is not None else self.sim_now
        return (end or self.sim_t0) - self.sim_t0

    def _on_diag(self, m):
        for s in m.status:
            if "perception" in s.name or "trajectory_field_node" in s.hardware_id:
                self.diag = {kv.key: kv.value for kv in s.values}
                self.diag["_message"] = s.message

    def _on_tracks(self, m):
        self.windows += 1
        if self.cl is not None:
            self.cl.windows.append(dict(stamp_ns=conv.stamp_to_ns(m.header.stamp), arrival=self._sim(),
                                        phase=self.cl.phase))
        self.camera_frame = m.header.frame_id
        if self.first_window_wall is None:
            self.first_window_wall = time.monotonic()
            self.sim_first_window = self.sim_now if self.sim_now is not None else (
                m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)

    def _on_objects(self, m):
        self.last_objects = m
        self.objects_seen.update(int(o.id) for o in m.objects)

    def _on_plan(self, m):
        s = status_name(m.status)
        self.plans[s] += 1
        self.last_plan = s + (f" ({m.reason})" if m.reason else "")
        if self.cl is not None:
            self.cl.plans.append(dict(stamp=conv.stamp_to_ns(m.header.stamp) * 1e-9, status=s, reason=m.reason,
                                      dry_run=bool(m.dry_run), phase=self.cl.phase, arrival=self._sim()))

    def stats(self) -> dict:
        return dict(sim_elapsed_s=self.sim_elapsed, sim_startup_s=self.sim_startup, windows_seen=self.windows,
                    goal=self.goal_sent, goal_result=self.goal_result, plans_seen=dict(self.plans),
                    last_plan=self.last_plan, diagnostics=dict(self.diag))

    # ---------------------------------------------------------------------------------------- closed loop
    def _on_result(self, m):
        res = json.loads(m.data)
        c = self.cl
        if res.get("executed") is not None and c.result is None and "translation_error_cm" in res:
            c.result, c.t_result = res, time.monotonic()
            _log(f"executor: {res['reason']}; grasped {res['grasped']}; object {res['translation_error_cm']:.2f} cm,"
                 f" {res['rotation_error_deg']:.2f} deg from its goal -> {'SUCCESS' if res['success'] else 'FAILURE'}")

    def _on_visibility(self, m):
        v = json.loads(m.data)
        self.cl.visibility[int(v["stamp_ns"])] = v

    def _on_plan_window(self, m):
        r = json.loads(m.data)
        self.cl.answers[int(r["window_stamp_ns"])] = r

    def closed_loop_step(self, warmup_windows: int = 2, settle_s: float = 5.0) -> None:
        """Advance the closed-loop scenario (``ClosedLoop``) by what has arrived."""
        c = self.cl
        # The goal image is a volatile message: it is sent once the planner answers windows (active, subscribed) --
        # on a slow start (a fresh checkout compiling its modules) the planner activates after perception's first
        # windows, and a goal sent then was lost (every plan IDLE) -- and sent again while no plan answers it.
        planner_up = sum(self.plans.values()) > 0 and self._img_pub.get_subscription_count() > 0
        if c.phase == "wait" and self.windows >= warmup_windows and planner_up:
            self._send_goal_image()
            c.phase = "look"
            self.goal_sent = (f"goal image of episode {c.seed} (object moved {c.translation_cm:.1f} cm, yaw "
                              f"{c.yaw_deg:.1f} deg) on {TOPICS['goal_image']}; {c.look} OK dry-run plans, then act")
            _log(f"goal: {self.goal_sent}")
        elif (c.phase == "look" and not any(p["phase"] == "look" and p["status"] != "IDLE" for p in c.plans)
              and time.monotonic() - c.t_goal_sent > GOAL_RESEND_S and c.goal_sends < GOAL_SENDS):
            self._send_goal_image()
            _log(f"goal: no plan answered the goal image in {GOAL_RESEND_S:.0f} s: sent again")
        elif c.phase == "look" and c.looked_enough():
            if not self._param_cli.service_is_ready():
                return
            from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
            from rcl_interfaces.srv import SetParameters
            req = SetParameters.Request(parameters=[Parameter(name="dry_run", value=ParameterValue(
                type=ParameterType.PARAMETER_BOOL, bool_value=False))])
            self._param_cli.call_async(req)
            c.phase, c.t_act = "act", time.monotonic()
            _log("dry_run off: the executor runs the next OK plan")
        elif c.phase == "act" and c.result is not None:
            c.phase = "settle"   # the planner should now find the object at its goal and report DONE
            self.goal_result = "executed: " + ("SUCCESS" if c.result["success"] else "FAILURE")
        elif c.phase == "settle":
            done = any(p["status"] == "DONE" for p in c.plans if p["phase"] in ("act", "settle"))
            if done or time.monotonic() - c.t_result > settle_s:
                if not done:   # no DONE (a failed execution, or no window since): the goal is cancelled
                    from std_srvs.srv import Trigger
                    c.sim_cancel = self._sim()
                    self._cancel_cli.call_async(Trigger.Request())
                c.phase, c.t_done = "done", time.monotonic()
                self.goal_result += "; planner: " + ("DONE (object at its goal)" if done else "no DONE: goal cancelled")

    def _send_goal_image(self) -> None:
        c = self.cl
        img = conv.array_to_image(c.goal_rgb, "rgb8")
        img.header.frame_id = c.frame_id
        img.header.stamp = self.node.get_clock().now().to_msg()
        if c.sim_goal is None:
            c.sim_goal = self._sim()
        self._img_pub.publish(img)
        c.t_goal_sent = time.monotonic()
        if c.t_goal is None:
            c.t_goal = c.t_goal_sent
        c.goal_sends += 1

    # ------------------------------------------------------------------------------------------- tabletop
    def maybe_send_goal(self, warmup_frac: float = 0.2, fallback_frac: float = 0.5) -> None:
        if not self.use_planner or self.goal_sent:
            return
        el = self.sim_elapsed
        if el < warmup_frac * self.duration or self.windows == 0:
            return
        objs = self.last_objects
        if objs is not None and len(objs.objects) and self._goal_cli.service_is_ready():
            from trace_anything_ros.srv import SetObjectGoal

            o = self.pick_goal_object(objs.objects)
            req = SetObjectGoal.Request(object_id=int(o.id))
            req.target = PoseStamped()
            req.target.header = objs.header       # the camera frame of the perception outputs
            req.target.pose.position.x = o.centroid.x + GOAL_OFFSET[0]
            req.target.pose.position.y = o.centroid.y + GOAL_OFFSET[1]
            req.target.pose.position.z = o.centroid.z + GOAL_OFFSET[2]
            req.target.pose.orientation.w = 1.0
            self._goal_cli.call_async(req).add_done_callback(self._on_goal_done)
            self.goal_sent = (f"service set_object_goal: object #{o.id} to its centroid + "
                              f"{GOAL_OFFSET} in {objs.header.frame_id} at sim t={el:.1f}s")
        elif el >= fallback_frac * self.duration:
            p = PoseStamped()
            p.header.frame_id = self.camera_frame   # a point 1.2 m in front of the camera (the table)
            p.pose.position.x, p.pose.position.y, p.pose.position.z = 0.1, 0.0, 1.2
            p.pose.orientation.w = 1.0
            self._goal_pub.publish(p)
            self.goal_sent = (f"topic goal_pose (largest tracked object -> (0.1, 0, 1.2) in {self.camera_frame}) at "
                              f"sim t={el:.1f}s (no object reported by then)")
            self.goal_result = "published"
        if self.goal_sent:
            _log(f"goal: {self.goal_sent}")

    def planner_workspace(self, timeout: float = 2.0):
        """(workspace_min, workspace_max) of the running planner (its parameters), or None."""
        if self._workspace is not None:
            return self._workspace
        from rcl_interfaces.srv import GetParameters
        cli = self.node.create_client(GetParameters, TOPICS["planner_parameters"].replace("set_", "get_"))
        try:
            if not cli.wait_for_service(timeout_sec=timeout):
                return None
            fut = cli.call_async(GetParameters.Request(names=["planner.workspace_min", "planner.workspace_max"]))
            t_end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < t_end:
                time.sleep(0.02)
            if fut.done() and fut.result() is not None:
                lo, hi = (list(v.double_array_value) for v in fut.result().values)
                if len(lo) == 3 and len(hi) == 3:
                    self._workspace = (lo, hi)
        finally:
            self.node.destroy_client(cli)
        return self._workspace

    def pick_goal_object(self, objects, base_T_cam=None, margin: float = 0.05):
        """The largest object whose goal (centroid + GOAL_OFFSET) and pre-grasp (0.1 m above) pass the planner's
        workspace check (``planning.path.check_workspace`` on the running planner's box shrunk by ``margin``); the
        largest one when none does (or the camera pose / workspace is unknown): its plans are then REFUSED with
        the reason."""
        from trace_anything_ros.planning import se3
        from trace_anything_ros.planning.path import check_workspace

        by_size = sorted(objects, key=lambda o: -o.pixel_count)
        base_T_cam = self.base_T_cam if base_T_cam is None else base_T_cam
        ws = self.planner_workspace() if base_T_cam is not None else None
        if ws is None:
            return by_size[0]
        lo, hi = np.asarray(ws[0]) + margin, np.asarray(ws[1]) - margin
        for o in by_size:
            c = np.array([o.centroid.x, o.centroid.y, o.centroid.z])
            pts = se3.transform_points(base_T_cam, np.stack([c + np.asarray(GOAL_OFFSET), c]))
            poses = [se3.make_pose(None, p + dz) for p in pts for dz in ([0.0, 0.0, 0.0], [0.0, 0.0, 0.1])]
            if check_workspace(poses, ["goal"] * len(poses), lo, hi) is None:
                return o
        return by_size[0]

    base_T_cam = None   # tabletop: the camera's pose in the planner's base frame (set by the demo)

    def _on_goal_done(self, fut):
        try:
            r = fut.result()
            self.goal_result = f"accepted={r.accepted}: {r.message}"
        except Exception as e:  # noqa: BLE001
            self.goal_result = f"failed: {e}"
        _log(f"goal response: {self.goal_result}")

    def close(self):
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.ex.shutdown()
            self.node.destroy_node()
        finally:
            if rclpy.ok():
                rclpy.shutdown()
