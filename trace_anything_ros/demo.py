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
  the goal image) first plans in ``dry_run`` until ``--look-windows`` of its plans are OK (the robot watches, the
  executor ignores dry-run plans; at most twice that many plans), then ``dry_run`` is switched off, the next OK plan
  is executed, and once the executor reports its result the demo waits for the planner's DONE (the object seen at
  its goal; else it cancels the goal). The planner plans on every perception window while the goal is active (the
  goal image is estimated once, then the object is tracked); ``summary.md`` reports success, the object's final
  error (cm, deg), and the plan status of every window with the goal active, scored on the windows in which the
  goal object is visible (the executor's ground truth, ``demo_report.window_statuses``).
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
  * this process, with a small node (``ros/demo_client.py``, the demo's only ROS code) that shows progress (sim
    time, windows, objects, plan status) and sends the goal: closed loop, the goal image (see above); tabletop,
    once the perception reports a moving object, a ``~/set_object_goal`` request to move it 10 cm along the
    camera's x axis (without an object by half time ``goal_pose`` for the largest object instead).

After the run, ``<out>/`` holds: ``demo.mcap``, ``overlay.mp4`` (one frame per perception window: tracks coloured
by time, dashed forecasts, masks coloured by object id, boxes with ids, plan status), ``overlay_*.png``,
``summary.md`` + ``summary.json`` (rates, latency, model time, frames processed / dropped, objects, plans,
topic counts, wall times; written by ``demo_report``) and ``logs/`` (each process's output).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from typing import Dict, List, Optional

import numpy as np

from . import demo_report
from .ros.graph import TOPICS  # rclpy-free: the one home of the graph's topic names


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
                        help="extra parameter for every node (e.g. rate_hz:=10.0, window.length:=6)")
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
                        help="closed_loop: OK plans computed in dry_run (at most twice as many plans) before the robot "
                             "acts on the next OK one")


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


def _fmt_vec(v) -> str:
    return "[" + ",".join(f"{float(x):.6f}" for x in v) + "]"


def planner_extrinsics(params: List[str]):
    """Planner parameters placing the robot base at the sim's world frame: ``base_frame:=world`` and
    ``camera_to_base.*`` = the sim camera's pose in the world (static camera scenes; the scene is rebuilt here from
    the same seed/preset/size parameters the sim camera gets), and that pose (base_T_cam). ([], None) for
    moving-camera scenes."""
    from trace_anything_ros.ros.graph import SIM_CAMERA_NAME, effective_parameters, node_spec  # rclpy-free
    from trace_anything_ros.sim.scene import Scene, SceneConfig

    try:  # the sim camera's values as it will read them: config/sim_camera.yaml, the graph's settings, --param
        kv = effective_parameters(node_spec("manipulation", SIM_CAMERA_NAME),
                                  param_strings=[p for p in params if ":=" in p])
        cfg = SceneConfig.from_preset(str(kv["scene"]), seed=int(kv["seed"]), width=int(kv["width"]),
                                      height=int(kv["height"]), fovy=float(kv["fovy"])).validate()
    except (ValueError, TypeError, KeyError) as e:
        _log(f"planner extrinsics left at their defaults ({e})")
        return [], None
    if cfg.moving_camera:
        return [], None
    scene = Scene(cfg)
    try:
        T = scene.camera_pose_at(float(kv["start_time"]))
    finally:
        scene.close()
    return _extrinsics_params(T), T


def _extrinsics_params(base_T_cam) -> List[str]:
    from trace_anything_ros.planning.se3 import pose_to_xyz_quat

    xyz, q = pose_to_xyz_quat(base_T_cam)
    return ["base_frame:=world", "use_tf:=false", f"camera_to_base.xyz:={_fmt_vec(xyz)}",
            f"camera_to_base.quat:={_fmt_vec(q)}"]


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


# ------------------------------------------------------------------------------------------------------ plan
class _Setup:
    """What the run starts: node parameters, commands, the closed-loop state."""

    def __init__(self, args, out: str):
        self.closed = args.scenario == "closed_loop" and not args.no_planner
        self.mcap = os.path.join(out, "demo.mcap")
        self.params = ["use_depth:=true", "camera_pose.enabled:=true", "mask.encoding:=16UC1",
                       "field.float16:=true", "stale_timeout:=5.0"]
        if args.weights:
            self.params.append(f"model.weights:={os.path.abspath(args.weights)}")
        if args.reduced:
            self.params += ["window.length:=4"]
        self.params += args.param
        self.base_T_cam = None
        self.cl = None
        if self.closed:
            self._closed_loop(args)
        elif not args.no_planner:
            extrinsics, self.base_T_cam = planner_extrinsics(self.params)
            self.params += extrinsics
        self.run_cmd = self._run_cmd(args)
        self.exec_cmd = self._exec_cmd(args) if self.closed else None
        self.rec_cmd = [sys.executable, "-m", "trace_anything_ros.ros.recorder", "--out", self.mcap,
                        "--stats", os.path.join(out, "logs", "recorder_stats.json")]
        if args.field_hz > 0:
            self.rec_cmd += ["--throttle", f"{TOPICS['field']}:{args.field_hz}"]

    def _closed_loop(self, args):
        from trace_anything_ros.sim.oracle_goal import episode_images

        spec, _, goal_rgb, self.base_T_cam = episode_images(args.episode)
        self.params += _extrinsics_params(self.base_T_cam) + ["dry_run:=true"]
        self.cl = dict(seed=args.episode, goal_rgb=goal_rgb, look=max(1, args.look_windows),
                       frame_id="sim_camera_optical_frame", translation_cm=spec.translation * 100,
                       yaw_deg=float(np.degrees(spec.yaw)))

    def _run_cmd(self, args) -> List[str]:
        cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", "manipulation", "--use-sim-time"]
        if args.no_planner:
            cmd += ["--only", "sim_camera_node", "--only", "trajectory_field_node"]
        elif self.closed:  # the executor is the graph's camera (and arm)
            cmd += ["--only", "trajectory_field_node", "--only", "manipulation_planner_node"]
        for p in self.params:
            cmd += ["--param", p]
        return cmd

    def _exec_cmd(self, args) -> List[str]:
        return [sys.executable, "-m", "trace_anything_ros.ros.sim_executor_node", "--ros-args",
                "-p", f"seed:={args.episode}", "-p", "publish_clock:=true", "-p", "executions:=1",
                "-p", "rate_hz:=10.0", "-p", "time_scale:=1.0",
                "-r", f"image:={TOPICS['image']}", "-r", f"depth:={TOPICS['depth']}",
                "-r", f"camera_info:={TOPICS['info']}", "-r", f"camera_pose:={TOPICS['camera_pose']}",
                "-r", f"ee_path:={TOPICS['ee_path']}", "-r", f"plan:={TOPICS['plan']}"]


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
    domain = args.domain_id if args.domain_id >= 0 else private_domain_id()
    env = demo_env(domain)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})  # our own node
    wall_timeout = args.wall_timeout or (120.0 + 4.0 * args.duration)
    setup = _Setup(args, out)
    _log(f"ROS_DOMAIN_ID={domain} (localhost only); output {out}/; {args.duration:.0f} s of sim time "
         f"(wall limit {wall_timeout:.0f} s)")
    t_start = time.monotonic()
    timings: Dict[str, float] = {}
    status, live_stats, cl, rc_nodes, rc_rec = _run(args, setup, env, out, t_start, wall_timeout, timings)
    _log(f"nodes exited ({rc_nodes}), recorder exited ({rc_rec}) after {timings['run_s']:.1f} s; writing overlays")
    if not os.path.isfile(setup.mcap) or rc_rec not in (0, None):
        _log(f"the recorder failed (exit {rc_rec}); log tail:\n{_tail(os.path.join(out, 'logs', 'recorder.log'))}")
        return 1
    summary = _report(args, setup, out, live_stats, cl, timings, t_start,
                      dict(status=status, domain_id=domain, nodes_exit=rc_nodes, recorder_exit=rc_rec))
    if status != "ok":
        return 1
    if setup.closed and not summary["closed_loop"]["success"]:
        return 1
    return 0 if summary["perception"]["windows"] > 0 else 1


def _run(args, setup: _Setup, env, out: str, t_start: float, wall_timeout: float, timings: dict):
    """Start recorder, nodes (and executor), follow the run with the demo's node, stop everything."""
    from .ros.demo_client import ClosedLoop, DemoClient

    rec = runner = live = executor = None
    status, cl = "ok", None
    try:
        rec = _start(setup.rec_cmd, env, os.path.join(out, "logs", "recorder.log"))
        _log("recorder: " + " ".join(setup.rec_cmd[1:]))
        runner = _start(setup.run_cmd, env, os.path.join(out, "logs", "nodes.log"))
        _log("nodes: " + " ".join(setup.run_cmd[1:]))
        if setup.closed:
            executor = _start(setup.exec_cmd, env, os.path.join(out, "logs", "executor.log"))
            _log("camera + arm: " + " ".join(setup.exec_cmd[1:]))
            cl = ClosedLoop(**setup.cl)
        live = DemoClient(not args.no_planner, args.duration, cl)
        live.base_T_cam = setup.base_T_cam
        status = _wait(args, live, runner, rec, t_start, wall_timeout, timings, out)
    except KeyboardInterrupt:
        status = "interrupted"
        _log("interrupted: stopping the nodes")
    finally:
        t_stop = time.monotonic()
        live_stats = live.stats() if live is not None else {}
        if live is not None:
            live.close()
        rc_nodes = _stop(runner, 30.0)
        _stop(executor, 15.0)
        rc_rec = _stop(rec, 30.0)
        timings["shutdown_s"] = time.monotonic() - t_stop
    timings["run_s"] = time.monotonic() - t_start
    return status, live_stats, cl, rc_nodes, rc_rec


def _report(args, setup: _Setup, out: str, live_stats: dict, cl, timings: dict, t_start: float, run: dict) -> dict:
    """summary.json + summary.md from the recording and the live node's closed-loop record; the video part."""
    t_post = time.monotonic()
    summary = demo_report.summarize(setup.mcap, out, live_stats, planner=not args.no_planner, weights=args.weights,
                                    pngs=args.pngs)
    if setup.closed and cl is not None:
        summary["closed_loop"] = demo_report.closed_loop_summary(cl)
    timings["postprocess_s"] = time.monotonic() - t_post
    timings["total_wall_s"] = time.monotonic() - t_start
    sim_s = round(live_stats.get("sim_elapsed_s", 0.0), 1) if setup.closed else args.duration  # ends when done
    summary["run"] = dict(run, duration_sim_s=sim_s, reduced=bool(args.reduced), planner=not args.no_planner,
                          params=setup.params, **{k: round(v, 2) for k, v in timings.items()})
    try:
        with open(os.path.join(out, "logs", "recorder_stats.json")) as f:
            summary["recorder"] = json.load(f)
    except (OSError, ValueError):
        pass
    summary["video"] = run_video(args, out)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(demo_report.summary_markdown(summary))
    _log(f"done in {timings['total_wall_s']:.1f} s wall: {out}/summary.md, overlay.mp4, "
         f"{len(summary['overlay']['pngs'])} PNGs, demo.mcap ({summary['mcap']['messages']} messages)")
    print(demo_report.summary_markdown(summary, short=True))
    return summary


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


def _wait(args, live, runner, rec, t_start, wall_timeout, timings, out) -> str:
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
                if live.cl.phase == "done" and now - live.cl.t_done > 1.0:
                    return "ok"   # the planner found the object at its goal (or the goal was cancelled)
                if live.cl.phase == "act" and live.cl.result is None and now - live.cl.t_act > 60.0:
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
