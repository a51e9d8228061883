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

"""``sim_camera_node``: a simulated RGB-D camera (MuJoCo tabletop scene from ``trace_anything_ros.sim``).

Publishes (relative names; the defaults resolve to the ``/camera/...`` topics the graphs and the demo use):
  camera/image_raw        sensor_msgs/Image       rgb8
  camera/depth/image_raw  sensor_msgs/Image       32FC1, metres along the optical axis (NaN: nothing hit)
  camera/camera_info      sensor_msgs/CameraInfo  K, P (plumb_bob, zero distortion), width/height
  camera/pose             geometry_msgs/PoseStamped  pose of the optical frame in frame ``world_frame_id``
  /clock                  rosgraph_msgs/Clock     scene time, when ``publish_clock`` (others use use_sim_time)
  gt/dynamic_mask         sensor_msgs/Image       mono8 0/255: pixels of bodies moving at this instant
  gt/object_poses         geometry_msgs/PoseArray world poses of the scene's objects (+ gripper), in order
All messages of one frame share one stamp: the scene time when ``publish_clock`` is true, else the node clock.

The frame loop runs on a steady (wall) timer even with use_sim_time:=true, since this node drives sim time.
Only standard message types are used. This module is the only sim code that imports rclpy.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image

from trace_anything_ros.sim.scene import Scene, SceneConfig

from . import messages
from .graph import CAMERA_REMAPS, SIM_CAMERA_NAME, SIM_GT, relative
from .node_main import spin_node
from .params import Spec, check, declare_parameters, field_spec

# The scene's parameters come from SceneConfig's field metadata (default, range, description); the rest are the
# node's own.
PARAMS = [
    field_spec(SceneConfig, "seed"),
    field_spec(SceneConfig, "preset", "scene"),
    field_spec(SceneConfig, "width"),
    field_spec(SceneConfig, "height"),
    field_spec(SceneConfig, "fovy"),
    Spec("rate_hz", 10.0, "frames per second of sim time (and of wall time when real_time)", range=(0.01, 1000.0)),
    # Kept, deprecated: a removed parameter given as an override is ignored by rclpy without a word, so scripts
    # that still pass rate:= would silently run at 10 Hz; this way they run at their rate and are told the name.
    Spec("rate", 0.0, "deprecated alias of rate_hz (> 0 overrides it, with a warning; 0: unset)",
         range=(0.0, 1000.0)),
    Spec("real_time", True, "pace frames at rate_hz in wall time (false: as fast as rendering allows)"),
    Spec("duration", 0.0, "seconds of sim time to run, then exit (0: forever)", range=(0.0, 1e9)),
    Spec("start_time", 0.0, "scene time of the first frame minus one period", range=(-1e9, 1e9)),
    Spec("publish_clock", True, "publish /clock with the scene time and stamp every message with it"),
    Spec("frame_id", "sim_camera_optical_frame", "frame id of image, depth and camera_info (ROS optical convention)"),
    Spec("world_frame_id", "world", "frame id of camera/pose and gt/object_poses"),
    Spec("publish_gt", True, "publish gt/dynamic_mask and gt/object_poses (costs a segmentation render)"),
    Spec("qos.reliability", "reliable", "reliable (works with best-effort subscribers too) or best_effort",
         choices=("reliable", "best_effort")),
    Spec("qos.depth", 5, "publisher history depth", range=(1, 1000)),
]


def rate_from(values: dict, warn=None) -> float:
    """The frame rate: ``rate_hz``, or the deprecated ``rate`` when it is set (> 0; ``warn`` is told so)."""
    if float(values["rate"]) > 0:
        if warn is not None:
            warn(f"parameter 'rate' is deprecated: use rate_hz:={float(values['rate']):g} (it overrides rate_hz="
                 f"{float(values['rate_hz']):g} now)")
        return float(values["rate"])
    return float(values["rate_hz"])


def _stamp_msg(t_ns: int):
    return Time(nanoseconds=int(t_ns)).to_msg()


class SimCameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__(SIM_CAMERA_NAME, **kwargs)
        errors = declare_parameters(self, PARAMS, lifecycle=False)
        v = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        errors += [e for p in PARAMS for e in [check(p, v[p.name])] if e]
        if errors:
            raise ValueError("; ".join(errors))
        g = v.__getitem__
        rate = rate_from(v, self.get_logger().warning)
        self.period = 1.0 / rate
        self.duration = float(g("duration"))
        self.publish_clock = bool(g("publish_clock"))
        self.publish_gt = bool(g("publish_gt"))
        self.frame_id = str(g("frame_id"))
        self.world_frame_id = str(g("world_frame_id"))
        cfg = SceneConfig.from_preset(str(g("scene")), seed=int(g("seed")), width=int(g("width")),
                                      height=int(g("height")), fovy=float(g("fovy"))).validate()
        self.scene = Scene(cfg)
        self.scene.set_time(float(g("start_time")))
        self.t_start = self.scene.time

        rel = ReliabilityPolicy.BEST_EFFORT if g("qos.reliability") == "best_effort" else ReliabilityPolicy.RELIABLE
        qos = QoSProfile(depth=int(g("qos.depth")), reliability=rel, durability=DurabilityPolicy.VOLATILE,
                         history=HistoryPolicy.KEEP_LAST)
        self.pub_image = self.create_publisher(Image, relative(CAMERA_REMAPS["image"]), qos)
        self.pub_depth = self.create_publisher(Image, relative(CAMERA_REMAPS["depth"]), qos)
        self.pub_info = self.create_publisher(CameraInfo, relative(CAMERA_REMAPS["camera_info"]), qos)
        self.pub_pose = self.create_publisher(PoseStamped, relative(CAMERA_REMAPS["camera_pose"]), qos)
        self.pub_clock = (self.create_publisher(ClockMsg, "/clock", QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE)) if self.publish_clock else None)
        if self.publish_gt:
            self.pub_mask = self.create_publisher(Image, relative(SIM_GT["gt_mask"]), qos)
            self.pub_objects = self.create_publisher(PoseArray, relative(SIM_GT["gt_object_poses"]), qos)
        self.frames = 0
        self.done = False
        self.render_s = 0.0
        period = self.period if bool(g("real_time")) else 1e-3
        # a steady clock: with use_sim_time this node is the one that makes time advance
        self.timer = self.create_timer(period, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"scene {cfg.preset} seed {cfg.seed} ({len(self.scene.tracked)} tracked bodies), {cfg.width}x{cfg.height} "
            f"at {rate:g} Hz, clock {'published' if self.publish_clock else 'not published'}")

    def _tick(self):
        if self.done:
            return
        if self.duration > 0 and self.scene.time - self.t_start >= self.duration - 1e-9:
            self.done = True
            return
        t0 = time.perf_counter()
        self.scene.step(self.period)
        fr = self.scene.render(segmentation=self.publish_gt)
        self.render_s += time.perf_counter() - t0
        if self.publish_clock:
            t_ns = int(round(self.scene.time * 1e9))
            c = ClockMsg()
            c.clock = _stamp_msg(t_ns)
            self.pub_clock.publish(c)
        else:
            t_ns = self.get_clock().now().nanoseconds
        stamp = _stamp_msg(t_ns)
        self.pub_info.publish(messages.camera_info_message(fr["K"], self.scene.config.width,
                                                           self.scene.config.height, stamp, self.frame_id))
        self.pub_image.publish(messages.image_message(fr["rgb"], stamp, self.frame_id, "rgb8"))
        self.pub_depth.publish(messages.image_message(fr["depth"], stamp, self.frame_id, "32FC1"))
        self.pub_pose.publish(messages.pose_stamped(fr["world_T_cam"], stamp, self.world_frame_id))
        if self.publish_gt:
            moving = set(self.scene.moving_bodies(self.scene.time - self.period, self.scene.time, samples=3))
            seg = fr["seg_body"]
            mask = (np.isin(seg, list(moving)) if moving else np.zeros(seg.shape, bool)).astype(np.uint8) * 255
            self.pub_mask.publish(messages.image_message(mask, stamp, self.frame_id, "mono8"))
            pa = PoseArray()
            pa.header.stamp = stamp
            pa.header.frame_id = self.world_frame_id
            pa.poses = [messages.pose_message(T) for T in self.scene.body_poses().values()]
            self.pub_objects.publish(pa)
        self.frames += 1


def main(args=None) -> int:
    def cleanup(node):
        if node.done:
            node.get_logger().info(f"duration reached after {node.frames} frames "
                                   f"({node.render_s / max(node.frames, 1) * 1e3:.1f} ms render per frame)")
        node.scene.close()

    return spin_node(SimCameraNode, args, until=lambda node: node.done, cleanup=cleanup)


if __name__ == "__main__":
    sys.exit(main())
