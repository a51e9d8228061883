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

"""``trace-anything-ros demo``: the main job, end to end on this machine (no ROS install, no downloads).

Two scenarios (``--scenario``):

* ``closed_loop`` (default): the robot moves an object to a goal shown as an image. The ``manipulation`` graph's
  perception and planner nodes run with ``sim_executor_node`` as the graph's camera and arm: it renders a
  ``sim.closed_loop`` episode (``--episode`` seed: a ``pick_place`` scene; the object ``obj0``) on
  /camera/{image_raw,depth/image_raw,camera_info,pose} + /clock, and executes the planner's path with the kinematic
  gripper. This process publishes the goal image (the episode rendered with the object at its goal pose) on
  /goal_image. The planner (its default goal-image estimator: ``planning.goal_pair`` on the current RGB-D frame +
  the goal image) first plans in ``dry_run`` for ``--look-windows`` plans (the robot watches, the executor ignores
  dry-run plans), then ``dry_run`` is switched off, the next OK plan is executed, and once the executor reports
  its result the goal is cancelled. ``summary.md`` reports success, the object's final error (cm, deg) and the plan
  statuses per phase.
* ``tabletop``: the earlier demo: ``sim_camera_node`` (a tabletop scene with moving objects) and a pose goal for a
  perceived object (planned, not executed).

What runs (every node a separate process, talking over DDS on localhost in a private ROS domain):
  * the ``manipulation`` graph started by the runner (``trace-anything-ros run --graph manipulation
    --use-sim-time``, the same nodes / parameter files as the launch files): ``sim_camera_node`` (MuJoCo scene ->
    /camera/image_raw, /camera/depth/image_raw, /camera/camera_info, /clock), ``trajectory_field_node`` (the
    model: the estimator factory's default weights, or ``--weights``) and ``manipulation_planner_node``
    (lifecycle nodes driven to active by the runner);
  * the recorder (``ros/recorder.py``): every topic of the graph -> ``<out>/demo.mcap`` (ros2msg schemas, CDR;
    the dense field at most ``--field-hz`` per second because each one is megabytes);
  * this process: a small node that shows progress (sim time, windows, objects, plan status), and once the
    perception reports a moving object, asks the planner (service ``~/set_object_goal``) to move it 10 cm along
    the camera's x axis; without an object by half time it sends ``goal_pose`` for the largest object instead.

After the run, ``<out>/`` holds: ``demo.mcap``, ``overlay.mp4`` (one frame per perception window: tracks coloured
by time, dashed forecasts, masks coloured by object id, boxes with ids, plan status), ``overlay_*.png``,
``summary.md`` + ``summary.json`` (rates, latency, model time, frames processed / dropped, objects, plans,
topic counts, wall times) and ``logs/`` (each process's output).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from typing import Dict, List, Optional

import numpy as np

PERCEPTION = "/trajectory_field_node"
PLANNER = "/manipulation_planner_node"
TOPICS = dict(
    image="/camera/image_raw", depth="/camera/depth/image_raw", info="/camera/camera_info", clock="/clock",
    field=f"{PERCEPTION}/trajectory_field", tracks=f"{PERCEPTION}/tracks", mask=f"{PERCEPTION}/dynamic_mask",
    objects=f"{PERCEPTION}/dynamic_objects", markers=f"{PERCEPTION}/markers", plan=f"{PLANNER}/plan",
    ee_path=f"{PLANNER}/ee_path", diagnostics="/diagnostics")
PLAN_STATUS = {0: "IDLE", 1: "OK", 2: "REFUSED", 3: "HALTED", 4: "DONE"}
GOAL_OFFSET = (0.10, 0.0, 0.0)   # move the object 10 cm along the camera x axis (right in the image)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of simulated time to run (tabletop; the closed loop runs until the robot is "
                        "done, within --wall-timeout)")
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--weights", default="", help="perception checkpoint (default: the node's default model)")
    parser.add_argument("--no-planner", action="store_true", help="camera + perception only (no goal, no plans)")
    parser.add_argument("--reduced", action="store_true",
                        help="tiny run for CI (< 60 s): 8 s of sim time, 4-frame windows")
    parser.add_argument("--field-hz", type=float, default=0.2,
                        help="record at most this many dense fields per second (0: every one)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra parameter for every node (e.g. rate:=10.0, window.length:=6)")
    parser.add_argument("--domain-id", type=int, default=-1,
                        help="ROS_DOMAIN_ID of the demo's graph (default: a private one derived from the pid)")
    parser.add_argument("--wall-timeout", type=float, default=0.0,
                        help="give up after this many wall seconds (default: 120 + 4 x duration)")
    parser.add_argument("--pngs", type=int, default=6, help="overlay PNGs to save (evenly spaced)")
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a tqdm bar")
    parser.add_argument("--video", default="auto",
                        help="after the simulation, run the same pipeline on this static-camera video (`process`, "
                        "0.9 s windows) into OUT/video/ and score it against background subtraction; 'auto': "
                        "vtest.avi when the bootstrap found it (not with --reduced); '': no video")
    parser.add_argument("--video-frames", type=int, default=150, help="frames of --video to process")
    parser.add_argument("--scenario", choices=("closed_loop", "tabletop"), default="closed_loop",
                        help="closed_loop: move an object to a goal image with the simulated arm; tabletop: moving "
                        "objects and a pose goal (planned, not executed)")
    parser.add_argument("--episode", type=int, default=1, help="closed_loop: episode seed (sim.closed_loop)")
    parser.add_argument("--look-windows", type=int, default=4,
                        help="closed_loop: plans computed in dry_run before the robot acts on the next OK one")


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def demo_env(domain_id: int) -> Dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    return env


def private_domain_id() -> int:
    """A domain in 1..99 (the tests use 100..199), from the pid: parallel demos rarely collide."""
    return 1 + os.getpid() % 99


# ------------------------------------------------------------------------------------------------- live node
class _Live:
    """The demo's own node: progress, goal, a few live statistics (spun in a background thread)."""

    def __init__(self, use_planner: bool, duration: float, base_T_cam, workspace, closed_loop=None):
        self.base_T_cam, self.workspace = base_T_cam, workspace
        self.cl = closed_loop     # dict(goal_rgb, look, frame_id) for the closed-loop scenario
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        from trace_anything_ros.msg import DynamicObjectArray, ManipulationPlan, TrajectoryArray

        self.rclpy = rclpy
        rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("trace_anything_ros_demo")
        self.duration = duration
        self.use_planner = use_planner
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
        self._goal_future = None
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        n = self.node
        n.create_subscription(Clock, TOPICS["clock"], self._on_clock, 10)
        n.create_subscription(DiagnosticArray, TOPICS["diagnostics"], self._on_diag, 10)
        n.create_subscription(TrajectoryArray, TOPICS["tracks"], self._on_tracks, rel)
        n.create_subscription(DynamicObjectArray, TOPICS["objects"], self._on_objects, rel)
        if use_planner:
            from trace_anything_ros.srv import SetObjectGoal

            n.create_subscription(ManipulationPlan, TOPICS["plan"], self._on_plan, rel)
            self._goal_cli = n.create_client(SetObjectGoal, f"{PLANNER}/set_object_goal")
            self._goal_pub = n.create_publisher(PoseStamped, "/goal_pose", rel)
        if self.cl is not None:
            from rcl_interfaces.srv import SetParameters
            from rclpy.qos import DurabilityPolicy
            from sensor_msgs.msg import Image
            from std_msgs.msg import String
            from std_srvs.srv import Trigger

            self.cl.update(phase="wait", plans=[], result=None, t_goal=None, t_act=None, t_result=None,
                           windows=Counter())
            self._img_pub = n.create_publisher(Image, "/goal_image", rel)
            self._param_cli = n.create_client(SetParameters, f"{PLANNER}/set_parameters")
            self._cancel_cli = n.create_client(Trigger, f"{PLANNER}/cancel")
            n.create_subscription(String, "/sim_executor_node/result", self._on_result, QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
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
        if self.cl is not None and "windows" in self.cl:
            self.cl["windows"][self.cl["phase"]] += 1
        self.camera_frame = m.header.frame_id
        if self.first_window_wall is None:
            self.first_window_wall = time.monotonic()
            self.sim_first_window = self.sim_now if self.sim_now is not None else (
                m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)

    def _on_objects(self, m):
        self.last_objects = m
        self.objects_seen.update(int(o.id) for o in m.objects)

    def _on_plan(self, m):
        s = PLAN_STATUS.get(int(m.status), str(m.status))
        self.plans[s] += 1
        self.last_plan = s + (f" ({m.reason})" if m.reason else "")
        if self.cl is not None:
            self.cl["plans"].append((self.cl["phase"], s, bool(m.dry_run), m.reason))

    # ---------------------------------------------------------------------------------- closed loop
    def _on_result(self, m):
        res = json.loads(m.data)
        if self.cl is not None and res.get("executed") is not None and self.cl["result"] is None and \
                "translation_error_cm" in res:
            self.cl["result"] = res
            self.cl["t_result"] = time.monotonic()
            _log(f"executor: {res['reason']}; grasped {res['grasped']}; object {res['translation_error_cm']:.2f} cm,"
                 f" {res['rotation_error_deg']:.2f} deg from its goal -> {'SUCCESS' if res['success'] else 'FAILURE'}")

    def closed_loop_step(self, warmup_windows: int = 2) -> None:
        """wait (perception warms up) -> look (goal image sent; dry-run plans) -> act (dry_run off: the executor runs
        the next OK plan) -> done (its result arrived: goal cancelled)."""
        from trace_anything_ros.ros import conversions as conv

        c = self.cl
        if c["phase"] == "wait" and self.windows >= warmup_windows:
            img = conv.array_to_image(c["goal_rgb"], "rgb8")
            img.header.frame_id = c["frame_id"]
            img.header.stamp = self.node.get_clock().now().to_msg()
            self._img_pub.publish(img)
            c["phase"], c["t_goal"] = "look", time.monotonic()
            self.goal_sent = (f"goal image of episode {c['seed']} (object moved {c['translation_cm']:.1f} cm, yaw "
                              f"{c['yaw_deg']:.1f} deg) on /goal_image; {c['look']} dry-run plans, then act")
            _log(f"goal: {self.goal_sent}")
        elif c["phase"] == "look" and sum(p[0] == "look" and p[1] != "IDLE" for p in c["plans"]) >= c["look"]:
            if not self._param_cli.service_is_ready():
                return
            from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
            from rcl_interfaces.srv import SetParameters
            req = SetParameters.Request(parameters=[Parameter(name="dry_run", value=ParameterValue(
                type=ParameterType.PARAMETER_BOOL, bool_value=False))])
            self._param_cli.call_async(req)
            c["phase"], c["t_act"] = "act", time.monotonic()
            _log("dry_run off: the executor runs the next OK plan")
        elif c["phase"] == "act" and c["result"] is not None:
            from std_srvs.srv import Trigger
            self._cancel_cli.call_async(Trigger.Request())
            c["phase"] = "done"
            self.goal_result = "executed: " + ("SUCCESS" if c["result"]["success"] else "FAILURE")

    # -------------------------------------------------------------------------------------------- goal
    def maybe_send_goal(self, warmup_frac: float = 0.2, fallback_frac: float = 0.5) -> None:
        if not self.use_planner or self.goal_sent:
            return
        el = self.sim_elapsed
        if el < warmup_frac * self.duration or self.windows == 0:
            return
        objs = self.last_objects
        from geometry_msgs.msg import PoseStamped

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
            self._goal_future = self._goal_cli.call_async(req)
            self._goal_future.add_done_callback(self._on_goal_done)
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

    def pick_goal_object(self, objects):
        """The largest object whose goal (centroid + GOAL_OFFSET) and pre-grasp (0.1 m above) lie inside the
        planner's workspace (config/planner.yaml, base frame = the sim world) with a 5 cm margin; the largest one
        when none does (or the camera pose is unknown): its plans are then REFUSED with the reason."""
        by_size = sorted(objects, key=lambda o: -o.pixel_count)
        if self.base_T_cam is None:
            return by_size[0]
        from trace_anything_ros.planning import se3
        lo, hi = np.asarray(self.workspace[0]) + 0.05, np.asarray(self.workspace[1]) - 0.05
        for o in by_size:
            c = np.array([o.centroid.x, o.centroid.y, o.centroid.z]) + np.asarray(GOAL_OFFSET)
            pts = se3.transform_points(self.base_T_cam, np.stack([c, np.array([o.centroid.x, o.centroid.y,
                                                                               o.centroid.z])]))
            pts = np.concatenate([pts, pts + [0.0, 0.0, 0.1]])
            if np.all(np.isfinite(pts)) and np.all((pts >= lo) & (pts <= hi)):
                return o
        return by_size[0]

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
            if self.rclpy.ok():
                self.rclpy.shutdown()


def _planner_workspace(params: List[str]):
    """(workspace_min, workspace_max) as the planner node will use them: config/planner.yaml, then ``params``."""
    import yaml

    from trace_anything_ros.ros.graph import config_dir  # rclpy-free: the one home of the config location
    with open(os.path.join(config_dir(), "planner.yaml")) as f:
        y = yaml.safe_load(f)["manipulation_planner_node"]["ros__parameters"]
    kv = dict(p.split(":=", 1) for p in params if ":=" in p)
    return tuple(json.loads(kv[k]) if k in kv else y[k] for k in ("planner.workspace_min", "planner.workspace_max"))


def planner_extrinsics(params: List[str]):
    """Planner parameters placing the robot base at the sim's world frame: ``base_frame:=world`` and
    ``camera_to_base.*`` = the sim camera's pose in the world (static camera scenes; the scene is rebuilt here from
    the same seed/preset/size parameters the sim camera gets), and that pose (base_T_cam). ([], None) for
    moving-camera scenes."""
    from trace_anything_ros.sim.scene import Scene, SceneConfig

    kv = dict(p.split(":=", 1) for p in params if ":=" in p)
    try:
        cfg = SceneConfig.from_preset(kv.get("scene", "tabletop"), seed=int(kv.get("seed", 0)),
                                      width=int(kv.get("width", 320)), height=int(kv.get("height", 240)),
                                      fovy=float(kv.get("fovy", 55.0)))
    except (ValueError, TypeError) as e:
        _log(f"planner extrinsics left at their defaults ({e})")
        return [], None
    if cfg.moving_camera:
        return [], None
    scene = Scene(cfg)
    try:
        T = scene.camera_pose_at(float(kv.get("start_time", 0.0)))
    finally:
        scene.close()
    from trace_anything_ros.planning.se3 import pose_to_xyz_quat

    xyz, q = pose_to_xyz_quat(T)
    fmt = lambda v: "[" + ",".join(f"{float(x):.6f}" for x in v) + "]"  # noqa: E731
    return ["base_frame:=world", "use_tf:=false", f"camera_to_base.xyz:={fmt(xyz)}",
            f"camera_to_base.quat:={fmt(q)}"], T


# ---------------------------------------------------------------------------------------------- processes
def _start(cmd: List[str], env, log_path: str) -> subprocess.Popen:
    f = open(log_path, "w")
    p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    p._log_file = f  # type: ignore[attr-defined]
    return p


def _stop(p: Optional[subprocess.Popen], timeout: float = 20.0) -> Optional[int]:
    if p is None:
        return None
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    p._log_file.close()  # type: ignore[attr-defined]
    return p.returncode


def _tail(path: str, n: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, n))
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------------------ main
def main(args) -> int:
    if args.reduced:
        args.duration = min(args.duration, 8.0) if args.duration != 30.0 else 8.0
    import importlib.util

    if importlib.util.find_spec("trace_anything_ros.ros.sim_camera_node") is None:
        _log("trace_anything_ros.ros.sim_camera_node is not available: the demo needs the simulated camera")
        return 2
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    for f in os.listdir(out):
        if f.startswith("overlay_") and f.endswith(".png"):
            os.remove(os.path.join(out, f))
    mcap_path = os.path.join(out, "demo.mcap")
    domain = args.domain_id if args.domain_id >= 0 else private_domain_id()
    env = demo_env(domain)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})  # our own node
    wall_timeout = args.wall_timeout or (120.0 + 4.0 * args.duration)
    params = ["use_depth:=true", "camera_pose.enabled:=true", "mask.encoding:=16UC1", "field.float16:=true",
              "stale_timeout:=5.0"]
    if args.weights:
        params.append(f"model.weights:={os.path.abspath(args.weights)}")
    if args.reduced:
        params += ["window.length:=4"]
    params += args.param
    base_T_cam = None
    closed = args.scenario == "closed_loop" and not args.no_planner
    cl_state = None
    if closed:
        from trace_anything_ros.planning import se3
        from trace_anything_ros.sim.oracle_goal import episode_images
        spec, _, goal_rgb, base_T_cam = episode_images(args.episode)
        xyz, q = se3.pose_to_xyz_quat(base_T_cam)
        fmt = lambda v: "[" + ",".join(f"{float(x):.6f}" for x in v) + "]"  # noqa: E731
        params += ["base_frame:=world", "use_tf:=false", f"camera_to_base.xyz:={fmt(xyz)}",
                   f"camera_to_base.quat:={fmt(q)}", "dry_run:=true"]
        cl_state = dict(seed=args.episode, goal_rgb=goal_rgb, look=max(1, args.look_windows),
                        frame_id="sim_camera_optical_frame", translation_cm=spec.translation * 100,
                        yaw_deg=float(np.degrees(spec.yaw)))
    elif not args.no_planner:
        extrinsics, base_T_cam = planner_extrinsics(params)
        params += extrinsics
    run_cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", "manipulation", "--use-sim-time"]
    if args.no_planner:
        run_cmd += ["--only", "sim_camera_node", "--only", "trajectory_field_node"]
    elif closed:  # the executor is the graph's camera (and arm)
        run_cmd += ["--only", "trajectory_field_node", "--only", "manipulation_planner_node"]
    exec_cmd = [sys.executable, "-m", "trace_anything_ros.ros.sim_executor_node", "--ros-args",
                "-p", f"seed:={args.episode}", "-p", "publish_clock:=true", "-p", "executions:=1",
                "-p", "rate_hz:=10.0", "-p", "time_scale:=1.0",
                "-r", f"image:={TOPICS['image']}", "-r", f"depth:={TOPICS['depth']}",
                "-r", f"camera_info:={TOPICS['info']}", "-r", "camera_pose:=/camera/pose",
                "-r", f"ee_path:={TOPICS['ee_path']}", "-r", f"plan:={TOPICS['plan']}"]
    for p in params:
        run_cmd += ["--param", p]
    rec_cmd = [sys.executable, "-m", "trace_anything_ros.ros.recorder", "--out", mcap_path,
               "--stats", os.path.join(out, "logs", "recorder_stats.json")]
    if args.field_hz > 0:
        rec_cmd += ["--throttle", f"{TOPICS['field']}:{args.field_hz}"]
    _log(f"ROS_DOMAIN_ID={domain} (localhost only); output {out}/; {args.duration:.0f} s of sim time "
         f"(wall limit {wall_timeout:.0f} s)")
    t_start = time.monotonic()
    rec = runner = live = executor = None
    timings: Dict[str, float] = {}
    status = "ok"
    try:
        rec = _start(rec_cmd, env, os.path.join(out, "logs", "recorder.log"))
        _log("recorder: " + " ".join(rec_cmd[1:]))
        runner = _start(run_cmd, env, os.path.join(out, "logs", "nodes.log"))
        _log("nodes: " + " ".join(run_cmd[1:]))
        if closed:
            executor = _start(exec_cmd, env, os.path.join(out, "logs", "executor.log"))
            _log("camera + arm: " + " ".join(exec_cmd[1:]))
        live = _Live(not args.no_planner, args.duration, base_T_cam, _planner_workspace(params), cl_state)
        status = _wait(args, live, runner, rec, t_start, wall_timeout, timings, out)
    except KeyboardInterrupt:
        status = "interrupted"
        _log("interrupted: stopping the nodes")
    finally:
        t_stop = time.monotonic()
        live_stats = _live_stats(live) if live is not None else {}
        if live is not None:
            live.close()
        rc_nodes = _stop(runner, 30.0)
        _stop(executor, 15.0)
        rc_rec = _stop(rec, 30.0)
        timings["shutdown_s"] = time.monotonic() - t_stop
    timings["run_s"] = time.monotonic() - t_start
    _log(f"nodes exited ({rc_nodes}), recorder exited ({rc_rec}) after {timings['run_s']:.1f} s; writing overlays")
    if not os.path.isfile(mcap_path) or rc_rec not in (0, None):
        _log(f"the recorder failed (exit {rc_rec}); log tail:\n{_tail(os.path.join(out, 'logs', 'recorder.log'))}")
        return 1
    t_post = time.monotonic()
    summary = summarize(mcap_path, out, args, live_stats, pngs=args.pngs)
    if closed:
        summary["closed_loop"] = closed_loop_summary(cl_state, args)
    timings["postprocess_s"] = time.monotonic() - t_post
    timings["total_wall_s"] = time.monotonic() - t_start
    sim_s = round(live_stats.get("sim_elapsed_s", 0.0), 1) if closed else args.duration  # ends when done
    summary["run"] = dict(status=status, domain_id=domain, duration_sim_s=sim_s, reduced=bool(args.reduced),
                          planner=not args.no_planner, params=params, nodes_exit=rc_nodes, recorder_exit=rc_rec,
                          **{k: round(v, 2) for k, v in timings.items()})
    try:
        with open(os.path.join(out, "logs", "recorder_stats.json")) as f:
            summary["recorder"] = json.load(f)
    except (OSError, ValueError):
        pass
    summary["video"] = run_video(args, out)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(summary))
    _log(f"done in {timings['total_wall_s']:.1f} s wall: {out}/summary.md, overlay.mp4, "
         f"{len(summary['overlay']['pngs'])} PNGs, demo.mcap ({summary['mcap']['messages']} messages)")
    print(summary_markdown(summary, short=True))
    if status != "ok":
        return 1
    if closed and not summary["closed_loop"]["success"]:
        return 1
    return 0 if summary["perception"]["windows"] > 0 else 1


def run_video(args, out: str) -> Optional[dict]:
    """The real-video part of the demo: ``process`` on ``args.video`` (windows of 4 frames 3 apart: 0.9 s at 10 fps,
    the span at which the compact model finds vtest's walking people) + ``eval-video``. None when there is none."""
    path = args.video
    if path == "auto":
        from trace_anything_ros.io.video import find_vtest
        path = "" if args.reduced else (find_vtest() or "")
    if not path:
        return None
    from trace_anything_ros import process
    from trace_anything_ros.eval.video_reference import agreement
    vout = os.path.join(out, "video")
    p = argparse.ArgumentParser()
    process.add_arguments(p)
    pargs = p.parse_args([path, "--out", vout, "--max-frames", str(args.video_frames), "--stride", "3", "--hop", "3",
                          "--pngs", "3", "--no-progress"] + (["--weights", os.path.abspath(args.weights)]
                                                            if args.weights else []))
    _log(f"real video: {path} ({args.video_frames} frames) -> {vout}/")
    t0 = time.monotonic()
    try:
        rc = process.main(pargs)
        with open(os.path.join(vout, "summary.json")) as f:
            ps = json.load(f)
        ref = agreement(vout, path)
    except Exception as e:  # noqa: BLE001 - the simulation part stands on its own
        _log(f"real video failed: {type(e).__name__}: {e}")
        return {"input": path, "error": f"{type(e).__name__}: {e}"}
    return {"input": path, "rc": rc, "frames": ps["frames"], "windows": ps["windows"],
            "model_time_mean_s": ps["model_time_mean_s"], "objects_seen": len(ps["objects_seen"]),
            "pngs": [os.path.relpath(x, out) for x in ps["overlay_pngs"]], "reference": ref,
            "wall_s": round(time.monotonic() - t0, 1)}


def _wait(args, live: _Live, runner, rec, t_start, wall_timeout, timings, out) -> str:
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=round(args.duration, 1), unit="sim s", desc="demo", file=sys.stderr,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} sim s [{elapsed}] {postfix}")
        except ImportError:
            bar = None
    last_log = 0.0
    startup_timeout = min(wall_timeout, 240.0)
    phase = "starting (model loading)"
    try:
        while True:
            now = time.monotonic()
            for name, p in (("nodes", runner), ("recorder", rec)):
                if p.poll() is not None:
                    log = os.path.join(out, "logs", "nodes.log" if name == "nodes" else "recorder.log")
                    _log(f"{name} exited early with {p.returncode}; log tail:\n{_tail(log)}")
                    return f"{name} exited early ({p.returncode})"
            if live.sim_t0 is not None and "first_clock_s" not in timings:
                timings["first_clock_s"] = now - t_start
            if live.first_window_wall is not None and "first_window_s" not in timings:
                timings["first_window_s"] = live.first_window_wall - t_start
                phase = "running"
            el = live.sim_elapsed
            if live.cl is not None:
                live.closed_loop_step()
                if live.cl["phase"] == "done" and now - live.cl["t_result"] > 2.0:
                    return "ok"   # the object is where it should be: a last window or two shows it there
                if live.cl["phase"] == "act" and live.cl["result"] is None and now - live.cl["t_act"] > 60.0:
                    _log("no execution result 60 s after dry_run was switched off")
                    return "no execution result"
            else:
                live.maybe_send_goal()
            info = dict(phase=phase if live.windows == 0 else "running", windows=live.windows,
                        objects=len(live.objects_seen),
                        plan=(live.last_plan.split(" ")[0] if live.last_plan else "-"))
            if bar is not None:
                bar.n = round(min(el, args.duration), 1)
                bar.set_postfix(info, refresh=False)
                bar.refresh()
            elif now - last_log > 5.0:
                last_log = now
                _log(f"sim {el:5.1f}/{args.duration:.0f} s  " + "  ".join(f"{k} {v}" for k, v in info.items()))
            if el >= args.duration and live.cl is None:  # the closed loop ends when the robot is done
                return "ok"
            if live.windows == 0 and now - t_start > startup_timeout:
                _log(f"no perception window after {startup_timeout:.0f} s: giving up")
                return "no perception output"
            if now - t_start > wall_timeout:
                _log(f"wall limit of {wall_timeout:.0f} s reached at sim {el:.1f} s")
                return "ok" if live.windows > 0 else "timeout"
            time.sleep(0.2)
    finally:
        if bar is not None:
            bar.close()


def closed_loop_summary(c: dict, args) -> dict:
    """The closed-loop scenario in numbers: the executor's result and the plan statuses per phase."""
    res = c.get("result") or {}
    phases = {}
    for ph, st, dry, reason in c.get("plans", []):
        phases.setdefault(ph, Counter())[st] += 1
    look = phases.get("look", Counter())
    n_look = sum(v for k, v in look.items() if k != "IDLE")
    active = Counter()
    for ph in ("look", "act"):
        active.update({k: v for k, v in phases.get(ph, Counter()).items() if k != "IDLE"})
    reasons = Counter(f"{ph}: {st}: {r}" for ph, st, _, r in c.get("plans", []) if r and st != "OK")
    return dict(
        episode=c["seed"], goal=dict(translation_cm=round(c["translation_cm"], 2), yaw_deg=round(c["yaw_deg"], 2)),
        executed=bool(res.get("executed", False)), grasped=bool(res.get("grasped", False)),
        grasp_note=res.get("grasp_note", ""), success=bool(res.get("success", False)),
        translation_error_cm=res.get("translation_error_cm"), rotation_error_deg=res.get("rotation_error_deg"),
        plans_by_phase={k: dict(v) for k, v in phases.items()},
        ok_fraction_look=round(look.get("OK", 0) / n_look, 3) if n_look else None,
        windows_by_phase=dict(c.get("windows", {})),
        ok_per_window_look=(round(look.get("OK", 0) / c["windows"]["look"], 3)
                            if c.get("windows", {}).get("look") else None),
        ok_fraction_goal_active=round(active.get("OK", 0) / sum(active.values()), 3) if active else None,
        reasons=dict(reasons.most_common(6)),
        seconds=dict(look=round(c["t_act"] - c["t_goal"], 2) if c.get("t_act") and c.get("t_goal") else None,
                     act=round(c["t_result"] - c["t_act"], 2) if c.get("t_result") and c.get("t_act") else None))


def _live_stats(live: _Live) -> dict:
    return dict(sim_elapsed_s=live.sim_elapsed, sim_startup_s=live.sim_startup, windows_seen=live.windows, goal=live.goal_sent,
                goal_result=live.goal_result, plans_seen=dict(live.plans), last_plan=live.last_plan,
                diagnostics=dict(live.diag))


# -------------------------------------------------------------------------------------------- summary + overlay
def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _rate(stamps: List[int]) -> float:
    if len(stamps) < 2:
        return 0.0
    span = (max(stamps) - min(stamps)) * 1e-9
    return (len(stamps) - 1) / span if span > 0 else 0.0


def summarize(mcap_path: str, out: str, args, live_stats: dict, pngs: int = 6) -> dict:
    """Read the recording back: overlays (one per window) and the numbers of summary.json."""
    from trace_anything_ros.eval import overlay as ov
    from trace_anything_ros.io import bag

    topics = bag.list_topics(mcap_path)
    counts = {t: n for t, (_, n) in sorted(topics.items())}
    n_windows_total = counts.get(TOPICS["tracks"], 0)
    png_every = max(1, n_windows_total // max(pngs, 1))
    images = deque(maxlen=64)          # (stamp_ns, rgb)
    K = None
    pending: Dict[int, dict] = {}
    stamps: Dict[str, List[int]] = {}
    log_times: Dict[str, List[int]] = {}
    objects_per_window, object_ids, moving_px = [], set(), []
    plans, plan_reasons = Counter(), Counter()
    plan_lines: List[str] = []
    last_plan = "-"
    diag_last: Dict[str, str] = {}
    diag_level = Counter()
    video = ov.VideoOut(os.path.join(out, "overlay.mp4"), 2.0)
    saved: List[str] = []
    rendered = 0
    nearest = [0]   # windows drawn on an older frame (the recorder missed the window's best-effort frame)
    window_stamps: List[int] = []

    def render(st: int, parts: dict):
        nonlocal rendered
        img = None
        for s, im in reversed(images):  # the window's newest frame; else the closest older recorded one
            if s <= st and st - s <= 500_000_000:
                img = im
                break
        if img is None:
            return
        if s != st:
            nearest[0] += 1
        data = ov.from_messages(parts.get("tracks"), parts.get("objects"), parts.get("mask"), K)
        n_obj = len(parts["objects"].objects) if parts.get("objects") is not None else 0
        lines = [f"sim t={st * 1e-9:6.2f}s  window {rendered}  objects {n_obj}",
                 f"plan: {last_plan}"[:80]]
        frame = ov.render(img, data, lines)
        video.write(frame)
        if rendered % png_every == 0 and len(saved) < pngs:
            p = os.path.join(out, f"overlay_{rendered:04d}.png")
            ov.save_png(p, frame)
            saved.append(p)
        rendered += 1
        window_stamps.append(st)

    want = [TOPICS[k] for k in ("image", "info", "tracks", "objects", "mask", "plan", "diagnostics")]
    frame = None
    for r in bag.iter_messages(mcap_path, [t for t in want if t in topics]):
        if r.topic not in (TOPICS["diagnostics"],):
            stamps.setdefault(r.topic, []).append(bag.stamp_ns(r.msg.header.stamp))
        log_times.setdefault(r.topic, []).append(r.log_time)
        if r.topic == TOPICS["image"]:
            images.append((bag.stamp_ns(r.msg.header.stamp), bag.image_rgb(r.msg)))
        elif r.topic == TOPICS["info"]:
            k = np.asarray(r.msg.k, np.float64).reshape(3, 3)
            if k[0, 0] > 0:
                K = k
        elif r.topic in (TOPICS["tracks"], TOPICS["objects"], TOPICS["mask"]):
            st = bag.stamp_ns(r.msg.header.stamp)
            key = {TOPICS["tracks"]: "tracks", TOPICS["objects"]: "objects", TOPICS["mask"]: "mask"}[r.topic]
            pending.setdefault(st, {})[key] = r.msg
            if key == "objects":
                objects_per_window.append(len(r.msg.objects))
                object_ids.update(int(o.id) for o in r.msg.objects)
            if key == "mask":
                moving_px.append(int(np.count_nonzero(bag.image_array(r.msg))))
            for s in sorted(pending):
                if len(pending[s]) == 3 or s < st:
                    render(s, pending.pop(s))
        elif r.topic == TOPICS["plan"]:
            s = PLAN_STATUS.get(int(r.msg.status), str(r.msg.status))
            plans[s] += 1
            plan_reasons[f"{s}: {r.msg.reason}"] += 1
            last_plan = s + (f" #{r.msg.object_id}" if r.msg.object_id >= 0 else "") + \
                (f" {r.msg.reason}" if r.msg.reason else "") + (f" ({len(r.msg.path.poses)} waypoints)"
                                                                 if len(r.msg.path.poses) else "")
            plan_lines.append(f"{bag.stamp_ns(r.msg.header.stamp) * 1e-9:.2f}s {last_plan}")
        elif r.topic == TOPICS["diagnostics"]:
            for s in r.msg.status:
                if "trajectory_field_node" in s.hardware_id or "perception" in s.name:
                    diag_last = {kv.key: kv.value for kv in s.values}
                    diag_last["_message"] = s.message
                    lvl = s.level if isinstance(s.level, int) else int.from_bytes(bytes(s.level), "little")
                    diag_level[{0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}.get(lvl, str(lvl))] += 1
    for s in sorted(pending):
        render(s, pending.pop(s))
    video.fps = 2.0
    video.close()
    # re-time the video to the measured window rate: write it again only if the rate differs a lot
    w_rate = _rate(window_stamps)
    if video.frames and w_rate > 0 and abs(w_rate - 2.0) > 0.5:
        _retime(video.path, w_rate)

    d = diag_last or live_stats.get("diagnostics", {})
    dn = {k: _num(v) for k, v in d.items()}
    img_st = stamps.get(TOPICS["image"], [])
    tr_st = stamps.get(TOPICS["tracks"], [])
    drops = {k[len("dropped."):]: dn[k] for k in dn if k.startswith("dropped.")}
    summary = dict(
        mcap=dict(path=mcap_path, bytes=os.path.getsize(mcap_path), messages=sum(counts.values()), topics=counts),
        camera=dict(frames=len(img_st), rate_hz_sim=round(_rate(img_st), 3),
                    rate_hz_wall=round(_rate(log_times.get(TOPICS["image"], [])), 3),
                    sim_span_s=round((max(img_st) - min(img_st)) * 1e-9, 3) if img_st else 0.0,
                    intrinsics=K.tolist() if K is not None else None),
        perception=dict(
            windows=len(tr_st), output_rate_hz_sim=round(_rate(tr_st), 3),
            output_rate_hz_wall=round(_rate(log_times.get(TOPICS["tracks"], [])), 3),
            input_rate_hz=dn.get("input_rate_hz"), output_rate_hz=dn.get("output_rate_hz"),
            frames_in=dn.get("frames_in"), windows_out=dn.get("windows_out"),
            frames_dropped=dn.get("dropped_total"), drops=drops,
            latency_mean_s=dn.get("latency_s_mean"), latency_max_s=dn.get("latency_s_max"),
            model_time_mean_s=dn.get("model_time_s_mean"), model_time_max_s=dn.get("model_time_s_max"),
            diagnostics_levels=dict(diag_level), diagnostics_message=d.get("_message", ""),
            diagnostics_last={k: v for k, v in d.items() if not k.startswith("_")}),
        objects=dict(ids=sorted(object_ids), count=len(object_ids),
                     max_per_window=max(objects_per_window) if objects_per_window else 0,
                     mean_per_window=round(float(np.mean(objects_per_window)), 2) if objects_per_window else 0.0,
                     moving_pixels_mean=round(float(np.mean(moving_px)), 1) if moving_px else 0.0),
        planner=dict(enabled=not args.no_planner, goal=live_stats.get("goal", ""),
                     goal_result=live_stats.get("goal_result", ""), statuses=dict(plans),
                     reasons=dict(plan_reasons.most_common(8)), timeline=plan_lines[:5] + (
                         ["..."] + plan_lines[-5:] if len(plan_lines) > 10 else plan_lines[5:10])),
        overlay=dict(video=video.path if video.frames else None, frames=video.frames, on_older_frame=nearest[0],
                     video_fps=round(w_rate, 3) if w_rate > 0 else 2.0, pngs=saved),
        model=dict(weights=args.weights or "(node default)"),
    )
    return summary


def _retime(path: str, fps: float) -> None:
    """Rewrite the mp4 at ``fps`` (the window rate in sim time, so it plays in real time)."""
    import cv2

    from .io.video import read_video

    frames = [np.ascontiguousarray(f.rgb[:, :, ::-1]) for f in read_video(path)]  # back to BGR for the writer
    if not frames:
        return
    tmp = path + ".tmp.mp4"
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), max(fps, 0.5), (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    os.replace(tmp, path)


def summary_markdown(s: dict, short: bool = False) -> str:
    p, c, o, pl, r = s["perception"], s["camera"], s["objects"], s["planner"], s.get("run", {})

    def f(v, fmt="{:.3g}"):
        return fmt.format(v) if isinstance(v, (int, float)) else ("-" if v in (None, "") else str(v))

    lines = []
    if not short:
        lines += ["# trace-anything-ros demo", "",
                  "Simulated RGB-D camera (MuJoCo) -> trajectory_field_node -> manipulation_planner_node, each a "
                  "separate ROS 2 process over DDS (localhost, private domain), recorded to `demo.mcap`.", ""]
    lines += [
        "| | |", "|---|---|",
        f"| run | {f(r.get('status'))}: {f(r.get('duration_sim_s'))} s sim time after the first window, "
        f"{f(r.get('total_wall_s'))} s wall (start-up until the first window {f(r.get('first_window_s'))} s, "
        f"overlays {f(r.get('postprocess_s'))} s) |",
        f"| camera | {c['frames']} frames, {f(c['rate_hz_sim'])} Hz (sim time), {f(c['rate_hz_wall'])} Hz (wall) |",
        f"| perception | {p['windows']} windows, {f(p['output_rate_hz_sim'])} Hz (sim), {f(p['output_rate_hz_wall'])} "
        f"Hz (wall); node: in {f(p['input_rate_hz'])} Hz, out {f(p['output_rate_hz'])} Hz |",
        f"| latency | mean {f(p['latency_mean_s'])} s, max {f(p['latency_max_s'])} s (arrival -> published) |",
        f"| model time | mean {f(p['model_time_mean_s'])} s, max {f(p['model_time_max_s'])} s per window |",
        f"| frames | {f(p['frames_in'])} received, {f(p['frames_dropped'])} dropped "
        f"({', '.join(f'{k} {f(v)}' for k, v in p['drops'].items()) or 'none'}) |",
        f"| objects | {o['count']} ids seen {o['ids'][:12]}{'...' if o['count'] > 12 else ''}, up to "
        f"{o['max_per_window']} per window (mean {o['mean_per_window']}) |",
        f"| planner | {'off' if not pl['enabled'] else ', '.join(f'{k} {v}' for k, v in pl['statuses'].items()) or 'no plan'} |",
    ]
    cl = s.get("closed_loop")
    if cl:
        e_t, e_r = cl["translation_error_cm"], cl["rotation_error_deg"]
        lines += [
            f"| closed loop | episode {cl['episode']} (object to move {cl['goal']['translation_cm']} cm, yaw "
            f"{cl['goal']['yaw_deg']} deg): **{'SUCCESS' if cl['success'] else 'FAILURE'}**, final error "
            f"{f(e_t, '{:.2f}')} cm / {f(e_r, '{:.2f}')} deg (tolerance 2 cm / 10 deg), grasped {cl['grasped']} |",
            f"| plans | " + "; ".join(f"{ph}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                                      for ph, c in cl["plans_by_phase"].items())
            + f" (OK: {f(cl['ok_fraction_look'])} of the dry-run plans, {f(cl['ok_fraction_goal_active'])} of all "
            f"plans with the goal active; perception windows per phase "
            f"{', '.join(f'{k} {v}' for k, v in cl['windows_by_phase'].items())}) |",
        ]
    lines += [
        f"| recording | {s['mcap']['messages']} messages on {len(s['mcap']['topics'])} topics, "
        f"{s['mcap']['bytes'] / 1e6:.1f} MB |",
    ]
    if short:
        return "\n".join(lines) + "\n"
    lines += ["", "## Planner", "", f"- goal: {pl['goal'] or '-'}", f"- response: {pl['goal_result'] or '-'}"]
    lines += [f"- {k}: {v}x" for k, v in pl["reasons"].items()]
    if pl["timeline"]:
        lines += ["", "Plan timeline (stamp, status):", ""] + [f"    {t}" for t in pl["timeline"]]
    lines += ["", "## Recorded topics", "", "| topic | messages |", "|---|---|"]
    lines += [f"| `{t}` | {n} |" for t, n in s["mcap"]["topics"].items()]
    rec = s.get("recorder", {})
    if rec.get("skipped"):
        lines += ["", f"Throttled (not recorded, by design): {rec['skipped']}"]
    lines += ["", "## Overlays", "", f"`overlay.mp4` ({s['overlay']['frames']} frames, one per window, "
              f"{s['overlay']['video_fps']} fps = the window rate in sim time) and:", ""]
    lines += [f"![{os.path.basename(x)}]({os.path.basename(x)})" for x in s["overlay"]["pngs"]]
    lines += ["", "Tracks are coloured by time (dark blue = oldest frame of the window, yellow = newest), forecasts "
              "are dashed magenta, the dynamic mask is coloured by object id with a box and `#id` per object.", "",
              "## Perception diagnostics (last)", "", f"{p['diagnostics_message']}", "",
              "```", json.dumps(p["diagnostics_last"], indent=1), "```", "",
              f"Model: {s['model']['weights']}. Logs of every process: `logs/`.", ""]
    v = s.get("video")
    if v:
        lines += ["## Real video", ""]
        if "error" in v:
            lines += [f"`{v['input']}`: failed ({v['error']})", ""]
        else:
            ref = v["reference"]
            lines += [f"`{v['input']}`, {v['frames']} frames through the same pipeline (`trace-anything-ros process "
                      f"--stride 3 --hop 3`: windows of 4 frames spanning 0.9 s, no depth): {v['windows']} windows, "
                      f"model {f(v['model_time_mean_s'])} s per window, {v['objects_seen']} object ids, "
                      f"{f(v['wall_s'])} s. Against OpenCV MOG2 background subtraction (`eval-video`): precision "
                      f"{f(ref['precision'])} (our moving pixels on moving things), recall {f(ref['recall'])} "
                      f"(moving blobs we touch), a mask in {ref['windows_with_mask']} of {ref['windows']} scored "
                      "windows. Overlays and the MCAP: `video/`.", ""]
            lines += [f"![{os.path.basename(x)}]({x})" for x in v["pngs"]] + [""]
    return "\n".join(lines)
