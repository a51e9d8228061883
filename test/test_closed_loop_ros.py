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

"""The closed loop through ROS: a goal image in, a robot stand-in moves the object to its goal.

Separate processes over DDS:
  * ``manipulation_planner_node`` (lifecycle, driven from here with change_state), ``base_frame: world``, camera ->
    base from ``camera_to_base.*`` = the episode camera's world pose, goal-image estimator either
    - ``default``: the node's default (``goal_image.estimator.factory`` left at its default, the goal-pair estimator
      ``planning.goal_pair``: the embedded default a user gets), fed the executor's ``depth`` + ``camera_info``
      and the goal image (RGB only), or
    - ``oracle``: the ground-truth oracle ``sim.oracle_goal`` (perfect perception: the upper bound of the loop);
  * ``sim_executor_node`` (one per episode): owns the MuJoCo episode, publishes the camera ``image`` / ``depth`` /
    ``camera_info`` the planner pairs with the goal image, executes the published ``~/ee_path`` with the kinematic
    gripper (real grasp check) in real time and reports the object's final pose error on ``~/result``.
This process publishes the goal image (rendered from the episode with the object at its goal pose) and checks:
plan OK, path stamps increasing, the executed waypoints = the planned ones (poses and stamps), the object within
2 cm / 10 deg of its goal. Episodes 0 and 1 succeed in the ROS-free loop (test_closed_loop.py).
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from ros_helpers import RosHarness, node_env, stop_process

pytestmark = [pytest.mark.ros, pytest.mark.sim]

REPO = pathlib.Path(__file__).resolve().parent.parent
NODE = "/manipulation_planner_node"
EXECUTOR = "/sim_executor_node"
SEEDS = (0, 1)
FRAME = "sim_camera_optical_frame"


def _cam_params(world_T_cam):
    from trace_anything_ros.planning import se3
    xyz, q = se3.pose_to_xyz_quat(world_T_cam)
    return [float(v) for v in xyz], [float(v) for v in q]


def start_planner(estimator: str, log):
    """camera_to_base.* are set per episode (dynamic parameters) by the test. Its output goes to the file ``log``,
    which a failing wait quotes (``Harness.state``): a pipe is only read once the node has stopped, at the module's
    teardown, whose output pytest does not show for a test that failed before it."""
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.manipulation_planner_node", "--ros-args",
           # stale_timeout: the stand-in camera stalls under CI load
           "-p", "base_frame:=world", "-p", "use_tf:=false", "-p", "stale_timeout:=10.0"]
    if estimator == "oracle":
        cmd += ["-p", "goal_image.estimator.factory:=trace_anything_ros.sim.oracle_goal:create",
                "-p", "goal_image.input_height:=240", "-p", "goal_image.input_width:=320"]
    env = node_env(TAR_ORACLE_GOAL_SEEDS=",".join(map(str, SEEDS)))
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def start_executor(seed):
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.sim_executor_node", "--ros-args",
           "-p", f"seed:={seed}", "-p", "time_scale:=1.0", "-p", f"frame_id:={FRAME}",
           "-r", f"ee_path:={NODE}/ee_path", "-r", f"plan:={NODE}/plan"]
    return subprocess.Popen(cmd, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Harness(RosHarness):
    def __init__(self, context):
        from nav_msgs.msg import Path
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from trace_anything_ros.msg import ManipulationPlan

        super().__init__("closed_loop_ros_test", context, NODE)
        rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.plans, self.paths, self.results, self.images = [], [], [], []
        self.n_images = 0
        self.node.create_subscription(ManipulationPlan, f"{NODE}/plan", self.plans.append, rel)
        self.node.create_subscription(Path, f"{NODE}/ee_path", self.paths.append, rel)
        self.node.create_subscription(
            String, f"{EXECUTOR}/result", lambda m: self.results.append(json.loads(m.data)),
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.node.create_subscription(Image, "image", self._on_image, rel)
        self.pub_goal_image = self.node.create_publisher(Image, "goal_image", rel)
        self.cancel = self.node.create_client(Trigger, f"{NODE}/cancel")
        from trace_anything_ros.msg import TrajectoryArray
        self.pub_tracks = self.node.create_publisher(TrajectoryArray, "tracks", rel)
        self.windows = []
        self.node.create_subscription(String, f"{NODE}/plan_windows", lambda m: self.windows.append(json.loads(m.data)),
                                      rel)

    def window(self):
        """A perception window -- an empty TrajectoryArray -- stamped with the newest camera frame: the planner plans
        a tracked image goal on that frame."""
        from trace_anything_ros.msg import TrajectoryArray
        m = TrajectoryArray()
        m.header = self.images[-1].header
        self.pub_tracks.publish(m)
        return m.header.stamp.sec * 10**9 + m.header.stamp.nanosec

    def state(self, tail=3000):
        """What a failing wait reports: the planner's answers, who publishes and subscribes 'image' (did the
        planner's subscription match the camera?), and the planner's output so far."""
        info = {kind: [(i.node_name, i.qos_profile.reliability.name) for i in get(f"{self.node.get_namespace()}image")]
                for kind, get in (("image publishers", self.node.get_publishers_info_by_topic),
                                  ("image subscribers", self.node.get_subscriptions_info_by_topic))}
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            out = f.read()[-tail:]
        return (f"plans {[(p.status, p.reason) for p in self.plans[-3:]]}; frames here {self.n_images}; {info}\n"
                f"---- planner node ({self.estimator}) ----\n{out}")

    def _on_image(self, m):
        self.images.append(m)
        self.n_images += 1
        del self.images[:-3]


@pytest.fixture(scope="module")
def episodes():
    from trace_anything_ros.sim.oracle_goal import episode_images
    return {s: episode_images(s) for s in SEEDS}


@pytest.fixture(scope="module", params=["default", "oracle"])
def planner(ros_context, request):
    log = tempfile.NamedTemporaryFile("w+", prefix="planner_", suffix=".log")
    proc = start_planner(request.param, log)
    h = Harness(ros_context)
    h.estimator, h.log = request.param, log
    try:
        assert h.lc.wait_for_service(60), "planner node did not come up\n" + h.state()
        yield h
    finally:
        h.close()
        stop_process(proc, 15)
        log.seek(0)
        print(f"---- planner node ({request.param}) ----\n" + log.read()[-6000:])
        log.close()


def _quat_close(a, b, tol):
    a, b = np.asarray(a), np.asarray(b)
    return min(np.abs(a - b).max(), np.abs(a + b).max()) <= tol


@pytest.mark.parametrize("seed", SEEDS)
def test_goal_image_to_object_at_goal(planner, episodes, seed):  # planner first: it starts while episodes render
    from std_srvs.srv import Trigger

    from trace_anything_ros.msg import ManipulationPlan
    from trace_anything_ros.ros import conversions as conv

    h = planner
    spec, cur, goal, world_T_cam = episodes[seed]
    t_start = time.monotonic()
    ex = start_executor(seed)
    try:
        # camera -> base of this episode (dynamic parameters), then the planner active with no goal
        xyz, q = _cam_params(world_T_cam)
        assert all(r.successful for r in h.set_params(camera_to_base__xyz=xyz, camera_to_base__quat=q))
        state = h.lc.get_state()
        if state == "unconfigured":
            assert h.lc.change_state("configure")
            assert h.lc.change_state("activate")
        assert h.lc.get_state() == "active"
        n0 = len(h.plans)
        assert h.call(h.cancel, Trigger.Request()).success
        assert h.wait(lambda: any(p.status == ManipulationPlan.STATUS_IDLE for p in h.plans[n0:]), 10)

        # the executor's camera is up and shows this episode's current state (streaming for ~2 s, so that the
        # planner, subscribed best-effort, has discovered it too and no longer holds the previous episode's last
        # frame: a goal image paired with that one is refused by the oracle, as it should be)
        h.images.clear()
        assert h.wait(lambda: len(h.images) > 0, 60), "no image from the executor"
        k = h.n_images
        assert h.wait(lambda: h.n_images >= k + 10, 10)
        seen = conv.image_to_rgb(h.images[-1])
        assert seen.shape == cur.shape and np.abs(seen.astype(np.int16) - cur).mean() < 2.0

        # the goal image (this process plays the user)
        n = len(h.plans)
        gm = conv.array_to_image(goal, "rgb8")
        gm.header.frame_id = FRAME
        h.pub_goal_image.publish(gm)
        # the planner refuses an image goal until a camera frame has reached it, and plans it on the next one (the
        # goal is kept). Its best-effort subscription can still lack one after this harness received ten: large
        # images over best effort lose whole messages under load (README, 'QoS and transport troubleshooting';
        # fresh-clone CI, session 10: the first answer was that refusal)
        no_frame = "image goal: no camera image received"

        def answers():
            return [p for p in h.plans[n:] if p.status != ManipulationPlan.STATUS_IDLE]

        assert h.wait(lambda: any(not p.reason.startswith(no_frame) for p in answers()), 60), h.state()
        assert all(p.status == ManipulationPlan.STATUS_REFUSED for p in answers() if p.reason.startswith(no_frame))
        plan = [p for p in answers() if not p.reason.startswith(no_frame)][0]
        assert plan.status == ManipulationPlan.STATUS_OK, plan.reason
        assert plan.header.frame_id == "world" and not plan.dry_run
        stamp = conv.stamp_to_ns(plan.header.stamp)
        assert h.wait(lambda: any(conv.stamp_to_ns(p.header.stamp) == stamp and p.poses for p in h.paths), 10)
        path = [p for p in h.paths if conv.stamp_to_ns(p.header.stamp) == stamp and p.poses][0]
        stamps = np.array([conv.stamp_to_ns(ps.header.stamp) for ps in path.poses], np.int64)
        assert len(stamps) >= 4 and np.all(np.diff(stamps) > 0), stamps
        assert stamps[0] >= stamp

        # the stand-in executes it (in real time) and reports the object's pose error
        duration = (stamps[-1] - stamps[0]) * 1e-9
        assert h.wait(lambda: any(r.get("path_stamp_ns") == int(stamps[0]) for r in h.results), duration + 30), \
            h.results
        res = [r for r in h.results if r.get("path_stamp_ns") == int(stamps[0])][0]
        assert res["executed"], res
        assert res["seed"] == seed
        # executed = planned: the gripper passed through every waypoint at its stamp
        assert res["executed_stamps_ns"] == [int(s) for s in stamps]
        got = np.array(res["executed_waypoints"])
        assert got.shape == (len(path.poses), 7)
        for w, ps in zip(got, path.poses):
            p, o = ps.pose.position, ps.pose.orientation
            assert np.allclose(w[:3], [p.x, p.y, p.z], atol=1e-6), (w, p)
            assert _quat_close(w[3:], [o.x, o.y, o.z, o.w], 1e-6), (w, o)
        # the object reached its goal: errors recomputed here from the reported final pose and the episode's goal
        assert res["grasped"], res["grasp_note"]
        final = np.array(res["final_object_pose"])
        assert np.allclose(np.array(res["goal_pose"]), spec.goal_pose, atol=1e-9)
        e_t = np.linalg.norm(final[:3, 3] - spec.goal_pose[:3, 3]) * 100
        e_r = np.degrees(np.arccos(np.clip((np.trace(spec.goal_pose[:3, :3].T @ final[:3, :3]) - 1) / 2, -1, 1)))
        assert e_t == pytest.approx(res["translation_error_cm"], abs=1e-6)
        assert e_t <= 2.0 and e_r <= 10.0, (e_t, e_r, res["grasp_note"])
        assert res["success"]
        # and it moved: the object started the commanded distance away
        s_t = np.linalg.norm(spec.start_pose[:3, 3] - spec.goal_pose[:3, 3]) * 100
        assert s_t >= 4.0 and e_t < s_t / 2
        if h.estimator == "default":
            # the goal image was estimated once; a perception window now finds the object at its goal (tracked by
            # geometry in the window's frame): DONE, recorded for that window
            k = h.n_images
            assert h.wait(lambda: h.n_images >= k + 3, 10)   # frames after the execution
            assert h.wait(lambda: h.pub_tracks.get_subscription_count() > 0, 10)
            w_ns = h.window()
            assert h.wait(lambda: any(r["window_stamp_ns"] == w_ns for r in h.windows), 30), h.windows
            rec = [r for r in h.windows if r["window_stamp_ns"] == w_ns][0]
            assert rec["status"] == "DONE" and rec["track"] == "moved", rec
        print(f"episode {seed}: plan {len(stamps)} waypoints over {duration:.2f} s, object moved {s_t:.1f} cm, "
              f"final error {e_t:.3f} cm / {e_r:.3f} deg; {time.monotonic() - t_start:.1f} s wall")
    finally:
        out = stop_process(ex, 15)
        if out:
            print(f"---- executor {seed} ----\n" + out[-4000:])
