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

"""ros/recorder.py: raw subscriptions -> MCAP with ros2msg schemas, readable by mcap_ros2 (custom + std types)."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def _spin_until(executor, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        executor.spin_once(timeout_sec=0.05)
    return cond()


def test_recorder_writes_decodable_mcap(tmp_path):
    import rclpy
    from geometry_msgs.msg import Point
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from trace_anything_ros.io.mcap_out import McapOut
    from trace_anything_ros.msg import DynamicObject, DynamicObjectArray
    from trace_anything_ros.ros import conversions as conv
    from trace_anything_ros.ros.recorder import Recorder

    path = str(tmp_path / "rec.mcap")
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        pub_node = rclpy.create_node("rec_test_pub", context=ctx)
        obj_pub = pub_node.create_publisher(DynamicObjectArray, "/rec_test/objects",
                                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        img_pub = pub_node.create_publisher(Image, "/rec_test/image", qos_profile_sensor_data)  # best effort
        out = McapOut(path)
        rec = Recorder(out, topics=["/rec_test/objects", "/rec_test/image"], context=ctx, scan_period=0.1)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(pub_node)
        ex.add_node(rec)
        assert _spin_until(ex, lambda: len(rec.recorded_topics) == 2, 10.0), rec.recorded_topics
        assert _spin_until(ex, lambda: obj_pub.get_subscription_count() and img_pub.get_subscription_count(), 10.0)
        rgb = np.zeros((6, 8, 3), np.uint8)
        rgb[2, 3] = (10, 20, 30)
        sent = 5
        for i in range(sent):
            stamp = conv.ns_to_time((i + 1) * 1_000_000_000 + 7)
            m = DynamicObjectArray(header=Header(stamp=stamp, frame_id="cam"), metric=True)
            o = DynamicObject(id=40 + i, pixel_count=123, confidence=0.5)
            o.centroid = Point(x=0.1 * i, y=-0.2, z=1.5)
            o.trajectory = [Point(x=1.0, y=2.0, z=3.0), Point(x=1.5, y=2.5, z=3.5)]
            o.trajectory_stamps = [stamp, stamp]
            m.objects = [o]
            obj_pub.publish(m)
            img_pub.publish(conv.array_to_image(rgb, "rgb8", Header(stamp=stamp, frame_id="cam")))
            _spin_until(ex, lambda: False, 0.1)
        _spin_until(ex, lambda: out.counts.get("/rec_test/objects", 0) >= sent
                    and out.counts.get("/rec_test/image", 0) >= 1, 5.0)
        ex.shutdown()
        rec.destroy_node()
        pub_node.destroy_node()
        out.close()
    finally:
        rclpy.shutdown(context=ctx)

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["trace_anything_ros/msg/DynamicObjectArray"].encoding == "ros2msg"
        schema_text = schemas["trace_anything_ros/msg/DynamicObjectArray"].data.decode()
        assert "MSG: trace_anything_ros/DynamicObject" in schema_text
        objs, imgs = [], []
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert channel.message_encoding == "cdr"
            (objs if channel.topic == "/rec_test/objects" else imgs).append((message, decoded))
    assert len(objs) == sent  # reliable: every message
    assert [d.objects[0].id for _, d in objs] == [40 + i for i in range(sent)]
    d = objs[-1][1]
    assert d.header.frame_id == "cam" and d.metric is True
    assert d.header.stamp.sec == sent and d.header.stamp.nanosec == 7
    assert d.objects[0].centroid.x == pytest.approx(0.4) and d.objects[0].centroid.z == pytest.approx(1.5)
    assert [p.z for p in d.objects[0].trajectory] == [3.0, 3.5]
    assert [m.log_time for m, _ in objs] == sorted(m.log_time for m, _ in objs)
    assert 1 <= len(imgs) <= sent
    im = imgs[-1][1]
    assert (im.height, im.width, im.encoding, im.step) == (6, 8, "rgb8", 24)
    a = np.frombuffer(bytes(im.data), np.uint8).reshape(6, 8, 3)
    assert a[2, 3].tolist() == [10, 20, 30] and a.sum() == 60

    # the project's own reader gives the same
    from trace_anything_ros.io import bag
    topics = bag.list_topics(path)
    assert topics["/rec_test/objects"] == ("trace_anything_ros/msg/DynamicObjectArray", sent)
    frames = list(bag.read_images(path, "/rec_test/image"))
    assert frames[-1].rgb[2, 3].tolist() == [10, 20, 30] and frames[-1].frame_id == "cam"
