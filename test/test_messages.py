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

"""ros/messages.py: one products -> messages mapping for the live node and every recording of its outputs.

The headline test: the same pipeline.Products published by a real trajectory_field_node (its ``_publish_products``,
lifecycle publishers, real DDS) and recorded by the real recorder (raw subscriptions: the bytes on the wire) are
byte-identical to what ``process`` writes to its MCAP for those products -- with a camera whose aspect ratio does
NOT match the model grid (640x360 frames of real video into a 128x96 grid: the arrival preprocessing crops), which is
where the recorder's old mask (a plain resize) differed from the node's (the inverse of the crop-aware transform).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

SRC = (360, 640)    # camera (H, W): 16:9
GRID = (96, 128)    # model grid (H, W): 4:3
NODE = "messages_test_node"


def _products(opencv_data_dir, n_frames: int = 4):
    """Products of one window: real video (vtest.avi, resized to 640x360) with a red square moving across it (the
    analytic stand-in model moves red pixels: objects, a mask and dynamic tracks come out of it)."""
    import cv2

    from trace_anything_ros.io.video import read_video
    from trace_anything_ros.model.analytic import AnalyticEstimator
    from trace_anything_ros.pipeline import (Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec,
                                             preprocess_rgb)

    spec = WindowSpec(length=n_frames)
    ingest = FrameIngest(spec.ring_capacity(), window=spec)
    for i, vf in enumerate(read_video(str(opencv_data_dir / "vtest.avi"), n_frames, fps=10.0)):
        rgb = np.ascontiguousarray(cv2.resize(vf.rgb, (SRC[1], SRC[0]), interpolation=cv2.INTER_AREA))
        x = 60 + 12 * i  # the object sits inside the crop (the left 4:3 part of the 16:9 frame)
        rgb[150:230, x:x + 90] = (230, 20, 20)
        assert ingest.push(Frame(stamp_ns=vf.stamp_ns, rgb=preprocess_rgb(rgb, GRID), frame_id="camera_optical",
                                 source_size=SRC)) is None
    win = ingest.take_window(timeout=0.0)
    assert win is not None and len(win) == n_frames
    pr = PerceptionPipeline(AnalyticEstimator(input_size=GRID), PipelineParams()).process(win)
    assert pr.mask is not None and pr.mask.any() and pr.objects and pr.tracks is not None and len(pr.tracks)
    return pr


def _spin_until(ex, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        ex.spin_once(timeout_sec=0.05)
    return cond()


def _read(path):
    from mcap.reader import make_reader

    out = {}
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {s.id: s.name for s in summary.schemas.values()}
        types = {c.topic: schemas[c.schema_id] for c in summary.channels.values()}
        for _, channel, message in reader.iter_messages():
            out.setdefault(channel.topic, []).append(bytes(message.data))
    return out, types


def test_recording_is_byte_identical_to_the_live_topic(ros_context, opencv_data_dir, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from trace_anything_ros.io.mcap_out import McapOut
    from trace_anything_ros.process import OUTPUT_OPTIONS, TOPICS, _Writer
    from trace_anything_ros.ros.recorder import Recorder
    from trace_anything_ros.ros.trajectory_field_node import TrajectoryFieldNode

    pr = _products(opencv_data_dir)
    # the node configured as `process` records (OUTPUT_OPTIONS: 16UC1 labels at source size, float16 field)
    assert OUTPUT_OPTIONS == {"float16": True, "mask_labels": True, "mask_source": True}
    params = {"estimator.factory": "trace_anything_ros.model.analytic:create", "input_height": GRID[0],
              "input_width": GRID[1], "window.length": 4, "model.warmup": False, "mask.encoding": "16UC1",
              "mask.resolution": "source", "field.float16": True}
    node = TrajectoryFieldNode(context=ros_context, cli_args=["--ros-args", "-r", f"__node:={NODE}"],
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    live_path, offline_path = str(tmp_path / "live.mcap"), str(tmp_path / "offline.mcap")
    out = McapOut(live_path)
    topics = {k: f"/{NODE}/{t.rsplit('/', 1)[-1]}" for k, t in TOPICS.items() if k != "image"}
    rec = Recorder(out, topics=list(topics.values()), context=ros_context, scan_period=0.1)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(rec)
    try:
        node.trigger_configure()
        node.trigger_activate()
        assert node.lc_state == "active"
        node._worker.stop()  # the test hands the node its products (the worker would run windows of its own)
        assert _spin_until(ex, lambda: len(rec.recorded_topics) == 4, 15.0), rec.recorded_topics
        assert _spin_until(ex, lambda: all(node._pubs[k].get_subscription_count() for k in topics), 15.0)
        node._publish_products(pr)  # what the worker calls with each window's products
        assert _spin_until(ex, lambda: all(out.counts.get(t, 0) for t in topics.values()), 15.0), dict(out.counts)
    finally:
        ex.shutdown()
        node._release()
        rec.destroy_node()
        node.destroy_node()
        out.close()

    w = _Writer(offline_path, use_json=False)
    assert w.mode == "cdr", w.reason
    w.write_products(pr, with_field=True)
    w.close()

    live, live_types = _read(live_path)
    offline, offline_types = _read(offline_path)
    for key, topic in topics.items():
        assert len(live[topic]) == 1, (key, len(live[topic]))
        assert live_types[topic] == offline_types[TOPICS[key]]
        assert live[topic][0] == offline[TOPICS[key]][0], f"{key}: the recording differs from the live topic"

    # the mask really is the crop-aware one at source size (not a stretch of the grid)
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    import cv2

    from trace_anything_ros.ros import conversions as conv
    img = deserialize_message(live[topics["mask"]][0], Image)
    lab = conv.image_to_array(img)
    assert (img.height, img.width, img.encoding) == (SRC[0], SRC[1], "16UC1")
    stretched = cv2.resize(pr.labels, (SRC[1], SRC[0]), interpolation=cv2.INTER_NEAREST)
    assert not np.array_equal(lab, stretched)
    assert lab[:, SRC[0] * GRID[1] // GRID[0] + 2:].max() == 0  # right of the 4:3 crop: nothing was seen
    ys, xs = np.nonzero(lab)
    assert 130 < ys.mean() < 250 and 60 < xs.mean() < 200  # the red object, where it was in the source frames


def test_mask_message_inverts_the_arrival_preprocessing():
    """mask_array at source size: a grid pixel maps back onto the source pixels it came from (and the JSON path of
    `process`, rclpy-free, uses the same function)."""
    from types import SimpleNamespace

    from trace_anything_ros.model.preprocess import pixel_transform
    from trace_anything_ros.ros import messages

    labels = np.zeros(GRID, np.uint16)
    labels[40:50, 20:30] = 7
    pr = SimpleNamespace(labels=labels, mask=labels > 0, source_size=SRC)
    full = messages.mask_array(pr, labels=True, source=True)
    assert full.shape == SRC and full.dtype == np.uint16
    m = pixel_transform(SRC, GRID)
    for v, u in zip(*np.nonzero(full)):
        gu, gv = (m @ [u, v, 1.0])[:2]
        assert 19.5 <= gu <= 29.5 and 39.5 <= gv <= 49.5
    assert np.array_equal(messages.mask_array(pr, labels=False, source=False), (labels > 0).astype(np.uint8))


def test_tracks_serialized_equals_tracks_message(opencv_data_dir):
    """The node's fast serialized tracks and the message-object path serialize to the same bytes."""
    from trace_anything_ros.ros import messages

    pr = _products(opencv_data_dir)
    h = messages.window_header(pr)
    assert messages.tracks_serialized(pr, h) == messages.serialize(messages.tracks_message(pr, h))
    for f16 in (False, True):
        assert messages.field_serialized(pr, h, f16) == messages.serialize(messages.field_message(pr, h, f16))


def test_every_output_has_one_serialized_form(opencv_data_dir):
    """rclpy leaves CDR padding uninitialised; the outputs are canonical: each decodes with rclpy, and serializing
    the decoded message again gives the same bytes (padding zeroed, nothing else changed)."""
    from rclpy.serialization import deserialize_message, serialize_message

    from trace_anything_ros.ros import conversions as conv
    from trace_anything_ros.ros import messages
    from trace_anything_ros.ros.recorder import _import_type

    pr = _products(opencv_data_dir)
    opts = messages.OutputOptions(mask_labels=True, markers_max_tracks=50)
    out = messages.serialized_products(pr, opts)
    assert set(out) == {"mask", "objects", "field", "tracks", "markers"}
    for key, data in out.items():
        cls = _import_type(messages.type_name(key))
        msg = deserialize_message(data, cls)
        assert messages.serialize(msg) == data, key
        raw = serialize_message(msg)
        assert len(raw) == len(data) and conv.canonical_cdr(raw, cls) == data, key
    mk = deserialize_message(out["markers"], _import_type(messages.type_name("markers")))
    assert [m.ns for m in mk.markers[:3]] == ["", "trajectories", "forecasts"] and len(mk.markers[1].points) > 0


def test_pose_and_camera_messages():
    """Pose <-> message (the planner, sim camera and executor nodes use these) and the pinhole CameraInfo."""
    from geometry_msgs.msg import Pose, Quaternion

    from trace_anything_ros.planning import se3
    from trace_anything_ros.ros import messages

    rng = np.random.default_rng(4)
    for _ in range(20):
        q = rng.normal(size=4)
        T = se3.pose_from_xyz_quat(rng.normal(size=3), q / np.linalg.norm(q))
        np.testing.assert_allclose(messages.pose_matrix(messages.pose_message(T)), T, atol=1e-12)
    ps = messages.pose_stamped(T, 1_500_000_007, "world")
    assert (ps.header.stamp.sec, ps.header.stamp.nanosec, ps.header.frame_id) == (1, 500_000_007, "world")
    with pytest.raises(ValueError, match="quaternion is zero"):
        messages.pose_matrix(Pose(orientation=Quaternion(w=0.0)))
    K = np.array([[200.0, 0, 63.5], [0, 210.0, 47.5], [0, 0, 1]])
    ci = messages.camera_info_message(K, 128, 96, 5, "cam")
    assert (ci.width, ci.height, ci.header.frame_id, ci.header.stamp.nanosec) == (128, 96, "cam", 5)
    np.testing.assert_array_equal(np.reshape(ci.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(ci.p, (3, 4)), np.concatenate([K, np.zeros((3, 1))], axis=1))
    img = messages.image_message(np.ones((4, 6), np.float32), ps.header.stamp, "cam", "32FC1")
    assert (img.height, img.width, img.encoding, img.step) == (4, 6, "32FC1", 24)
