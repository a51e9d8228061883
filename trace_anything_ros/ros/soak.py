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

"""Soak / load harness (rclpy side of `trace-anything-ros bench soak` and of test/test_reliability_load.py).

Perception: the node runs in its own process with the analytic estimator made slower than the stream
(``model_delay`` s per window); this process floods it with 640x480 rgb8 frames at ``rate`` Hz (stamps = wall
clock), subscribes to ``~/tracks`` and ``/diagnostics``, and samples the node's RSS, open fds (/proc/<pid>/fd)
and CPU time. Figures and checks:

* RSS and fds flat: every sample after the warm-up within +-``flat_pct`` % of the first warm sample (fds: or
  within 2 descriptors).
* latency of published results: receive time (wall clock) - header stamp (the newest frame's stamp, wall clock
  at publish time), p50 / p99 / max; bounded by ``latency_bound`` (default 3 x model time + 0.5 s).
* frame accounting (definition): frames_in = image messages the node's callback received; rejected = frames_in -
  frames_accepted (input drops by reason: stamp, encoding, size ...); used = distinct frames that were part of
  a window the worker took; not_processed = frames_in - used. Checks: the node's counters add up
  (frames_in == rejected + frames_accepted, frames_accepted == frames_used + frames_unused +
  frames_unused_in_ring) and the counters match what was observed outside: the distinct frame stamps seen in
  the published ~/tracks == frames_used (no window failed) and frames_in - observed == rejected +
  frames_unused + frames_unused_in_ring.
* bounded queues: queue.ring <= queue.ring_capacity, queue.window_pending <= 1, sync queues <= their capacity
  in every diagnostics message.

Planner: the planner node in its own process, a goal set, then ``tracks`` + ``dynamic_objects`` flooded at
``rate`` Hz; checks that plans keep up with the newest input (after the flood stops, at most
``max_trailing_plans`` plans arrive -- by default the planner's tracks queue depth + the window in work -- and
the last plan describes the last window), CPU and RSS bounded.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from .graph import PERCEPTION_NS as PERCEPTION_NODE, PLANNER_NS as PLANNER_NODE, config_file

REPO = pathlib.Path(__file__).resolve().parents[2]
ANALYTIC_FACTORY = "trace_anything_ros.model.analytic:create"  # the stand-in model of the benchmarks


def node_env(**extra) -> Dict[str, str]:
    """Environment of a node subprocess: this process's environment (ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE,
    ROS_SECURITY_* pass through unchanged); run from a checkout, the checkout and its test/ (the tests' own
    fault-injecting estimators) go first on PYTHONPATH. An installed package needs neither."""
    env = dict(os.environ)
    if (REPO / "test").is_dir() and (REPO / "trace_anything_ros").is_dir():
        prev = [p for p in [env.get("PYTHONPATH")] if p]
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "test"), str(REPO)] + prev)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def proc_sample(pid: int) -> Dict[str, float]:
    """RSS (kB), open file descriptors and CPU seconds (user + system) of a process, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_kb": rss, "fds": fds, "cpu_s": cpu}


def _flat(series: List[float], pct: float, abs_tol: float = 0.0) -> Dict[str, float]:
    if not series:
        return {"first": float("nan"), "last": float("nan"), "max_dev_pct": float("nan"), "ok": False}
    first = float(series[0])
    dev = max(abs(float(x) - first) for x in series)
    dev_pct = 100.0 * dev / first if first else float("inf")
    return {"first": first, "last": float(series[-1]), "min": float(min(series)), "max": float(max(series)),
            "max_dev_pct": dev_pct, "ok": bool(dev_pct <= pct or dev <= abs_tol)}


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """SIGINT a node subprocess, SIGKILL it after ``timeout`` s; returns its captured stdout ("" when none)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


def _spin_until(ex, t_monotonic: float) -> None:
    """Spin ``ex`` until ``time.monotonic()`` reaches ``t_monotonic`` (the publishing loops' pacing)."""
    while True:
        left = t_monotonic - time.monotonic()
        if left <= 0:
            return
        ex.spin_once(timeout_sec=left)


def hostile_images(src=(480, 640)):
    """Hostile image messages of issue 14 for the soak (``hostile_fraction``): factories ``(stamp_ns) -> Image``
    cycled through: 1 x 300000 and 20000 x 1 strips, data longer than step*height, a 1 MiB frame_id, a 100 KB
    encoding, a stamp 1 s ahead of the clock, one 30 s back, a frame of another size, a zero stamp."""
    from sensor_msgs.msg import Image

    from . import conversions as conv
    h, w = src
    base = conv.array_to_image(np.zeros((h, w, 3), np.uint8), "rgb8").data
    half = conv.array_to_image(np.zeros((h // 2, w // 2, 3), np.uint8), "rgb8").data
    payloads = {"strip": bytes(3 * 300_000), "tall": bytes(3 * 20_000), "longer": bytes(h * w * 3 + 4096)}

    def img(stamp_ns, hh=h, ww=w, step=None, data=None, enc="rgb8", frame_id="soak_cam"):
        m = Image(height=hh, width=ww, step=step if step is not None else ww * 3, encoding=enc)
        m.data = data if data is not None else base
        m.header.stamp = conv.ns_to_time(max(0, stamp_ns))
        m.header.frame_id = frame_id
        return m

    big_id, big_enc = "f" * (1 << 20), "x" * 100_000
    return [
        ("extreme_aspect", lambda s: img(s, 1, 300_000, data=payloads["strip"])),
        ("extreme_aspect", lambda s: img(s, 20_000, 1, step=3, data=payloads["tall"])),
        ("oversized_data", lambda s: img(s, data=payloads["longer"])),
        ("invalid_frame_id", lambda s: img(s, frame_id=big_id)),
        ("unsupported_encoding", lambda s: img(s, enc=big_enc)),
        ("future_stamp", lambda s: img(s + 1_000_000_000)),
        ("time_reset", lambda s: img(s - 30_000_000_000)),
        ("size_change", lambda s: img(s, h // 2, w // 2, data=half)),
        ("zero_stamp", lambda s: img(0)),
    ]


def soak_perception(duration: float = 60.0, rate: float = 60.0, model_delay: float = 0.2, warmup: float = 10.0,
                    window: int = 4, flat_pct: float = 5.0, latency_bound: Optional[float] = None,
                    input_size=(96, 128), sample_period: float = 1.0, log=print, context=None,
                    hostile_fraction: float = 0.0) -> dict:
    """``hostile_fraction``: that share of the messages (every 1/fraction-th) is a hostile one (``hostile_images``,
    cycled) instead of a camera frame; checks then also: every hostile message rejected under its reason, no
    stream switch, outputs keep coming."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from trace_anything_ros.msg import TrajectoryArray

    from . import conversions as conv
    from .lifecycle_client import LifecycleClient
    from .node_main import context_or_default

    cmd = [sys.executable, "-m", "trace_anything_ros.ros.trajectory_field_node", "--ros-args",
           "-p", f"estimator.factory:={ANALYTIC_FACTORY}", "-p", f"input_height:={input_size[0]}",
           "-p", f"input_width:={input_size[1]}", "-p", f"window.length:={window}", "-p", "diagnostics.period:=0.5",
           "-p", "tracks.stride:=32", "-p", "forecast.samples:=2", "-p", "model.warmup:=false",
           "-r", "image:=/soak/image", "-r", "camera_info:=/soak/camera_info"]
    proc = subprocess.Popen(cmd, env=node_env(TAR_ANALYTIC_DELAY=model_delay), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    ctx = context_or_default(context)
    node = rclpy.create_node("soak_perception", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    diag: List = []
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.extend(
        {kv.key: kv.value for kv in s.values} for s in m.status if s.name.startswith("trajectory_field_node")), 50)
    outs: List = []  # (receive wall ns, header stamp ns, frame stamps)

    def on_tracks(m):
        outs.append((time.time_ns(), conv.stamp_to_ns(m.header.stamp), [conv.stamp_to_ns(s) for s in m.frame_stamps]))

    node.create_subscription(TrajectoryArray, f"{PERCEPTION_NODE}/tracks", on_tracks,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(Image, "/soak/image", qos_profile_sensor_data)
    lc = LifecycleClient(node, PERCEPTION_NODE, executor=ex)
    samples: List[tuple] = []
    res: dict = {"duration_s": duration, "rate_hz": rate, "model_delay_s": model_delay, "window": window,
                 "image": "640x480 rgb8", "hostile_fraction": hostile_fraction}
    hostile = hostile_images() if hostile_fraction > 0 else []
    every = int(round(1.0 / hostile_fraction)) if hostile_fraction > 0 else 0
    hostile_sent: Dict[str, int] = {}
    try:
        if not (lc.wait_for_service(60) and lc.change_state("configure") and lc.change_state("activate")):
            raise RuntimeError("perception node did not configure/activate")
        end = time.monotonic() + 10
        while time.monotonic() < end and (pub.get_subscription_count() == 0 or not node.get_publishers_info_by_topic(
                f"{PERCEPTION_NODE}/tracks")):
            ex.spin_once(timeout_sec=0.05)
        a = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        a[100:200, 100:200] = (255, 0, 0)
        msg = conv.array_to_image(a, "rgb8")
        msg.header.frame_id = "soak_cam"
        period = 1.0 / rate
        t_start = time.monotonic()
        next_t, next_sample, sent = t_start, t_start, 0
        while time.monotonic() - t_start < duration:
            if every and sent % every == every - 1:
                reason, make = hostile[(sent // every) % len(hostile)]
                pub.publish(make(time.time_ns()))
                hostile_sent[reason] = hostile_sent.get(reason, 0) + 1
            else:
                msg.header.stamp = conv.ns_to_time(time.time_ns())
                pub.publish(msg)
            sent += 1
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t_start, proc_sample(proc.pid)))
                next_sample += sample_period
            next_t += period
            _spin_until(ex, next_t)
        t_stop = time.monotonic()
        n_diag = len(diag)

        def settled():  # the window in flight at the stop published: frames_used (counted when the worker takes a
            # window) == the distinct frames seen in the outputs, in a diagnostics message newer than the stop
            if len(diag) < n_diag + 3:
                return False
            seen = set()
            for _, _, fs in outs:
                seen.update(fs)
            return int(float(diag[-1].get("frames_used", -1))) == len(seen)
        while time.monotonic() - t_stop < 10.0 and not settled():  # last window + fresh diagnostics
            ex.spin_once(timeout_sec=0.05)
        samples.append((time.monotonic() - t_start, proc_sample(proc.pid)))
        res["frames_sent"] = sent
        res["achieved_rate_hz"] = sent / (t_stop - t_start)
        res["node_alive"] = proc.poll() is None
    finally:
        ex.shutdown()
        node.destroy_node()
        out = stop_process(proc)
    res["node_log_tail"] = out[-2000:]
    return _perception_checks(res, samples, outs, diag, every, hostile_sent, warmup=warmup, flat_pct=flat_pct,
                              sample_period=sample_period, window=window,
                              latency_bound=latency_bound if latency_bound is not None else 3 * model_delay + 0.5)


def _perception_checks(res: dict, samples: List[tuple], outs: List[tuple], diag: List[dict], every: int,
                       hostile_sent: Dict[str, int], warmup: float, flat_pct: float, sample_period: float, window: int,
                       latency_bound: float) -> dict:
    """The figures and checks of ``soak_perception`` (see the module docstring) from what the flood observed: the
    node's /proc samples, the tracks received (receive ns, header stamp ns, frame stamps), its diagnostics values;
    ``every``: one hostile message in ``every`` (0: none), ``hostile_sent``: their count by reason."""
    v = diag[-1] if diag else {}
    warm = [s for t, s in samples if t >= warmup]
    res["rss_MB"] = {k: (x / 1024 if isinstance(x, float) and k != "max_dev_pct" and k != "ok" else x)
                     for k, x in _flat([s["rss_kb"] for s in warm], flat_pct).items()}
    res["fds"] = _flat([s["fds"] for s in warm], flat_pct, abs_tol=2)
    # the RSS course (MB), one sample per ~30 s: settling vs a trend
    res["rss_course_MB"] = [(round(t), round(s["rss_kb"] / 1024, 1))
                            for t, s in samples[::max(1, int(30 / sample_period))]]
    if len(samples) >= 2:
        res["cpu_fraction"] = ((samples[-1][1]["cpu_s"] - samples[0][1]["cpu_s"])
                               / max(1e-9, samples[-1][0] - samples[0][0]))
    lat = np.array([(r - s) * 1e-9 for r, s, _ in outs], np.float64)
    lat_warm = lat  # every published result, the first windows included
    res["outputs"] = len(outs)
    if len(lat_warm):
        res["latency_s"] = {"p50": float(np.percentile(lat_warm, 50)), "p99": float(np.percentile(lat_warm, 99)),
                            "max": float(lat_warm.max())}
    bound = latency_bound
    res["latency_bound_s"] = bound
    # frame accounting
    gi = lambda k: int(float(v.get(k, 0)))  # noqa: E731
    drops = {k[len("dropped."):]: int(x) for k, x in v.items() if k.startswith("dropped.")}
    observed = set()
    for _, _, fs in outs:
        observed.update(fs)
    acc = {"frames_sent": res.get("frames_sent", 0), "frames_in": gi("frames_in"), "frames_accepted":
           gi("frames_accepted"), "frames_used": gi("frames_used"), "frames_unused": gi("frames_unused"),
           "frames_unused_in_ring": gi("frames_unused_in_ring"), "observed_in_outputs": len(observed),
           "windows_offered": gi("windows_offered"), "windows_out": gi("windows_out"), "drops": drops}
    acc["rejected"] = acc["frames_in"] - acc["frames_accepted"]
    acc["not_processed"] = acc["frames_in"] - acc["frames_used"]
    res["accounting"] = acc
    queues = {"ring_max": max((int(d.get("queue.ring", 0)) for d in diag), default=-1),
              "ring_capacity": max((int(d.get("queue.ring_capacity", 0)) for d in diag), default=-1),
              "window_pending_max": max((int(d.get("queue.window_pending", 0)) for d in diag), default=-1),
              "sync_images_max": max((int(d.get("queue.sync_images", 0)) for d in diag), default=-1),
              "sync_depth_max": max((int(d.get("queue.sync_depth", 0)) for d in diag), default=-1),
              "camera_info_max": max((int(d.get("queue.camera_info", 0)) for d in diag), default=-1),
              "sync_capacity": max((int(d.get("queue.sync_capacity", 0)) for d in diag), default=-1)}
    res["queues"] = queues
    if every:
        # what was sent vs what the node counted (DDS may lose some best-effort messages: counted <= sent)
        res["hostile"] = {"sent": hostile_sent, "counted": {r: drops.get(r, 0) for r in hostile_sent},
                          "stream_switches": gi("stream_switches")}
    input_drop_reasons = {"zero_stamp", "duplicate_stamp", "non_monotonic_stamp", "unsupported_encoding",
                          "invalid_image", "truncated", "wrong_step", "too_large", "unsynchronised",
                          # issue 14: hostile input (size_change / time_reset / time_jump: frames of an unconfirmed
                          # change; with no stream switch -- checked below -- nothing else is counted under them)
                          "extreme_aspect", "oversized_data", "invalid_frame_id", "future_stamp", "size_change",
                          "time_reset", "time_jump", "callback_error"}
    res["pass"] = {
        "node_alive": bool(res.get("node_alive")),
        "rss_flat": bool(res["rss_MB"]["ok"]),
        "fds_flat": bool(res["fds"]["ok"]),
        "outputs": len(outs) > 0,
        "latency_p99_bounded": bool(len(lat) and res["latency_s"]["p99"] <= bound),
        "accounting_in": acc["frames_in"] == acc["rejected"] + acc["frames_accepted"] and acc["rejected"] == sum(
            n for r, n in drops.items() if r in input_drop_reasons),
        "accounting_ring": acc["frames_accepted"] == acc["frames_used"] + acc["frames_unused"]
        + acc["frames_unused_in_ring"],
        # frames only in windows the output gate withheld (implausible_output: e.g. a publisher burst put 4 frames
        # within a few ms, and the analytic model's red square then "moves" tens of m/s) are used but never seen
        "accounting_matches_outputs": 0 <= acc["frames_used"] - acc["observed_in_outputs"]
        <= window * drops.get("implausible_output", 0) and (
            acc["frames_in"] - acc["frames_used"]
            == acc["rejected"] + acc["frames_unused"] + acc["frames_unused_in_ring"]),
        "withheld_windows": drops.get("implausible_output", 0) <= max(1, res["outputs"] // 100),
        "no_model_errors": drops.get("model_error", 0) == 0,
        "no_callback_errors": drops.get("callback_error", 0) == 0,
        "queues_bounded": 0 <= queues["ring_max"] <= queues["ring_capacity"] and queues["window_pending_max"] <= 1
        and queues["sync_images_max"] <= queues["sync_capacity"] and queues["sync_depth_max"] <= queues["sync_capacity"]
        and queues["camera_info_max"] <= queues["sync_capacity"],
    }
    if every:
        h = res["hostile"]
        res["pass"]["hostile_counted_under_their_reasons"] = all(
            0 < h["counted"][r] <= n for r, n in h["sent"].items() if r != "zero_stamp") and h["counted"].get(
            "zero_stamp", 1) > 0
        res["pass"]["no_stream_switch"] = h["stream_switches"] == 0
    return res


# ------------------------------------------------------------------------------------------------ planner
CAM_XYZ = (0.4, 0.0, 2.3)
CAM_QUAT = (1.0, 0.0, 0.0, 0.0)


def object_window_msgs(pos, stamps):
    """Planner input of one window: ``TrajectoryArray`` (metric, frame "cam_optical", one dynamic trajectory of
    object 3 per row of ``pos`` [M, T, 3] at ``stamps``) and the matching ``DynamicObjectArray`` (object 3, a
    50..80 x 40..60 px box)."""
    from geometry_msgs.msg import Point

    from trace_anything_ros.msg import DynamicObject, DynamicObjectArray, Trajectory, TrajectoryArray
    M = len(pos)
    m = TrajectoryArray()
    m.header.stamp, m.header.frame_id = stamps[-1], "cam_optical"
    m.frame_stamps = stamps
    m.metric = True
    trs = []
    for i in range(M):
        t = Trajectory(id=i, object_id=3, dynamic=True, confidence=1.0)
        t.positions = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pos[i]]
        t.position_stamps = stamps
        trs.append(t)
    m.trajectories = trs
    objs = DynamicObjectArray()
    objs.header = m.header
    o = DynamicObject(id=3, pixel_count=500)
    o.roi.x_offset, o.roi.y_offset, o.roi.width, o.roi.height = 50, 40, 30, 20
    objs.objects = [o]
    return m, objs


def _planner_window(k: int, M: int = 40, T: int = 4, period_ns: int = 100_000_000):
    """Tracks + objects of one window: object 3 (a box) whose base-frame x encodes k (0.30 + 0.005 * (k % 40): half
    a step = 2.5 mm)."""
    from trace_anything_ros.planning import se3

    from . import conversions as conv
    body = np.random.default_rng(1).uniform([-0.03, -0.02, 0.0], [0.03, 0.02, 0.05], size=(M, 3))
    x = 0.30 + 0.005 * (k % 40)
    pos = np.stack([se3.transform_points(se3.make_pose(np.eye(3), [x + 0.001 * j, 0.1, 0.0]), body)
                    for j in range(T)], axis=1)
    base_T_cam = se3.pose_from_xyz_quat(CAM_XYZ, CAM_QUAT)
    pos = se3.transform_points(se3.invert(base_T_cam), pos)
    t0 = time.time_ns() - (T - 1) * period_ns
    stamps = [conv.ns_to_time(t0 + j * period_ns) for j in range(T)]
    m, objs = object_window_msgs(pos, stamps)
    return m, objs, x + 0.001 * (T - 1)


def soak_planner(duration: float = 15.0, rate: float = 100.0, warmup: float = 3.0, flat_pct: float = 5.0,
                 max_trailing_plans: Optional[int] = None, log=print, context=None) -> dict:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from trace_anything_ros.msg import DynamicObjectArray, ManipulationPlan, TrajectoryArray
    from trace_anything_ros.srv import SetObjectGoal

    from .lifecycle_client import LifecycleClient
    from .manipulation_planner_node import TRACKS_QUEUE_DEPTH
    from .node_main import context_or_default

    if max_trailing_plans is None:
        max_trailing_plans = TRACKS_QUEUE_DEPTH + 1
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.manipulation_planner_node", "--ros-args",
           "--params-file", config_file("planner.yaml"),
           "-p", f"camera_to_base.xyz:={list(CAM_XYZ)}", "-p", f"camera_to_base.quat:={list(CAM_QUAT)}",
           "-p", "stale_timeout:=5.0", "-p", "planner.min_points:=10", "-p", "planner.max_gripper_width:=1.0",
           "-p", "goal_image.enabled:=false",
           "-r", "tracks:=/soak/tracks", "-r", "dynamic_objects:=/soak/dynamic_objects"]
    proc = subprocess.Popen(cmd, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = context_or_default(context)
    node = rclpy.create_node("soak_planner", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    plans: List = []
    node.create_subscription(ManipulationPlan, f"{PLANNER_NODE}/plan", lambda m: plans.append((time.monotonic(), m)),
                             rel)
    pub_tracks = node.create_publisher(TrajectoryArray, "/soak/tracks", rel)
    pub_objects = node.create_publisher(DynamicObjectArray, "/soak/dynamic_objects", rel)
    set_goal = node.create_client(SetObjectGoal, f"{PLANNER_NODE}/set_object_goal")
    lc = LifecycleClient(node, PLANNER_NODE, executor=ex)
    samples: List[tuple] = []
    res: dict = {"duration_s": duration, "rate_hz": rate}
    try:
        if not (lc.wait_for_service(60) and lc.change_state("configure") and lc.change_state("activate")):
            raise RuntimeError("planner node did not configure/activate")
        end = time.monotonic() + 10
        while time.monotonic() < end and pub_tracks.get_subscription_count() == 0:
            ex.spin_once(timeout_sec=0.05)
        req = SetObjectGoal.Request(object_id=3)
        req.target = PoseStamped()
        req.target.header.frame_id = "base_link"
        req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = 0.3, -0.2, 0.03
        req.target.pose.orientation.w = 1.0
        assert set_goal.wait_for_service(10)
        fut = set_goal.call_async(req)
        end = time.monotonic() + 10
        while not fut.done() and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        if not (fut.done() and fut.result().accepted):
            raise RuntimeError("goal not accepted")
        period = 1.0 / rate
        t_start = time.monotonic()
        next_t, next_sample, k = t_start, t_start, 0
        last_x = None
        while time.monotonic() - t_start < duration:
            m, objs, last_x = _planner_window(k)
            pub_objects.publish(objs)
            pub_tracks.publish(m)
            k += 1
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t_start, proc_sample(proc.pid)))
                next_sample += 1.0
            next_t += period
            _spin_until(ex, next_t)
        t_stop = time.monotonic()
        t_stop_wall_ns = time.time_ns()
        while time.monotonic() - t_stop < 2.0:
            ex.spin_once(timeout_sec=0.02)
        samples.append((time.monotonic() - t_start, proc_sample(proc.pid)))
        res["node_alive"] = proc.poll() is None
        ok_plans = [(t, p) for t, p in plans if p.status == ManipulationPlan.STATUS_OK]
        res["inputs_sent"] = k
        res["achieved_rate_hz"] = k / (t_stop - t_start)
        res["plans"] = len(plans)
        res["plans_ok"] = len(ok_plans)
        res["statuses"] = sorted({int(p.status) for _, p in plans})
        # plans the node computed after the flood stopped (plan stamp = the node's clock when planning): with
        # no backlog at most the one in progress; a queue of old windows would add one plan per queued window
        from . import conversions as conv
        res["plans_after_stop"] = sum(1 for _, p in plans if conv.stamp_to_ns(p.header.stamp) > t_stop_wall_ns)
        res["last_plan_after_stop_s"] = (plans[-1][0] - t_stop) if plans else float("nan")
        if ok_plans:
            p = ok_plans[-1][1]
            res["last_plan_object_x"] = p.object_poses[0].position.x if p.object_poses else float("nan")
        res["last_input_object_x"] = last_x
    finally:
        ex.shutdown()
        node.destroy_node()
        out = stop_process(proc)
    res["node_log_tail"] = out[-1500:]
    warm = [s for t, s in samples if t >= warmup]
    res["rss_MB"] = {k: (x / 1024 if isinstance(x, float) and k not in ("max_dev_pct", "ok") else x)
                     for k, x in _flat([s["rss_kb"] for s in warm], flat_pct).items()}
    res["fds"] = _flat([s["fds"] for s in warm], flat_pct, abs_tol=2)
    if len(samples) >= 2:
        res["cpu_fraction"] = ((samples[-1][1]["cpu_s"] - samples[0][1]["cpu_s"])
                               / max(1e-9, samples[-1][0] - samples[0][0]))
    res["pass"] = {
        "node_alive": bool(res.get("node_alive")),
        "plans": res.get("plans_ok", 0) > 0,
        "no_backlog": res.get("plans_after_stop", 99) <= max_trailing_plans,
        "last_plan_is_newest_input": abs(res.get("last_plan_object_x", float("nan"))
                                         - (res.get("last_input_object_x") or float("nan"))) < 0.0025,
        "rss_flat": bool(res["rss_MB"]["ok"]),
        "fds_flat": bool(res["fds"]["ok"]),
        "cpu_bounded": res.get("cpu_fraction", 9.0) <= 1.05,  # at most one core on average (2 threads)
    }
    return res
