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

"""sim_camera_node in its own process, received over DDS: sizes, encodings, one stamp per frame, sim clock."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.sim]

W, H = 80, 60


@pytest.fixture(scope="module")
def received(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image

    env = dict(os.environ)  # conftest: localhost discovery + per-session ROS_DOMAIN_ID
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.sim_camera_node", "--ros-args",
           "-p", f"width:={W}", "-p", f"height:={H}", "-p", "rate_hz:=10.0", "-p", "seed:=3",
           "-p", "scene:=moving_camera", "-p", "duration:=60.0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("sim_camera_test_listener", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    got = {"image": [], "depth": [], "info": [], "mask": [], "clock": []}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/camera/image_raw", lambda m: got["image"].append(m), qos)
    node.create_subscription(Image, "/camera/depth/image_raw", lambda m: got["depth"].append(m), qos)
    node.create_subscription(CameraInfo, "/camera/camera_info", lambda m: got["info"].append(m), qos)
    node.create_subscription(Image, "/gt/dynamic_mask", lambda m: got["mask"].append(m), qos)
    node.create_subscription(Clock, "/clock", lambda m: got["clock"].append(m), qos)
    t_end = time.monotonic() + 60.0
    try:
        while time.monotonic() < t_end and min(len(got["image"]), len(got["depth"]), len(got["info"])) < 8:
            ex.spin_once(timeout_sec=0.1)
            if proc.poll() is not None:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        ex.shutdown()
        node.destroy_node()
    got["log"] = out
    return got


def _ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_receives_all_streams(received):
    assert len(received["image"]) >= 8, received["log"][-3000:]
    assert len(received["depth"]) >= 8 and len(received["info"]) >= 8
    assert len(received["mask"]) >= 1 and len(received["clock"]) >= 1


def test_sizes_and_encodings(received):
    im, dp, info, mask = received["image"][-1], received["depth"][-1], received["info"][-1], received["mask"][-1]
    assert (im.width, im.height, im.encoding, im.step) == (W, H, "rgb8", W * 3)
    assert (dp.width, dp.height, dp.encoding, dp.step) == (W, H, "32FC1", W * 4)
    assert (info.width, info.height) == (W, H)
    assert (mask.width, mask.height, mask.encoding) == (W, H, "mono8")
    for m in (im, dp, info):
        assert m.header.frame_id == "sim_camera_optical_frame"
    rgb = np.frombuffer(bytes(im.data), np.uint8).reshape(H, W, 3)
    depth = np.frombuffer(bytes(dp.data), np.float32).reshape(H, W)
    assert rgb.std() > 5                                     # a textured scene, not a blank image
    assert np.isfinite(depth).mean() > 0.99 and 0.2 < np.nanmedian(depth) < 5.0
    K = np.array(info.k).reshape(3, 3)
    f = 0.5 * H / np.tan(np.deg2rad(55.0) / 2)              # the MuJoCo camera's default fovy (sim.scene), square px
    assert np.allclose([K[0, 0], K[1, 1]], f, rtol=1e-6), K
    assert abs(K[0, 2] - (W - 1) / 2) < 1e-6 and abs(K[1, 2] - (H - 1) / 2) < 1e-6
    assert np.allclose(np.array(info.p).reshape(3, 4)[:, :3], K)


def test_stamps_consistent(received):
    si = [_ns(m.header.stamp) for m in received["image"]]
    sd = {_ns(m.header.stamp) for m in received["depth"]}
    sc = {_ns(m.header.stamp) for m in received["info"]}
    common = [s for s in si if s in sd and s in sc]
    assert len(common) >= 6                                  # the three streams of a frame share one stamp
    assert all(b > a for a, b in zip(si, si[1:]))            # increasing
    d = np.diff(si) / 1e9
    assert np.allclose(d, 0.1, atol=1e-6)                    # sim time: exactly one period apart at 10 Hz
    clocks = [_ns(c.clock) for c in received["clock"]]
    assert max(clocks) >= si[0]
