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

"""The serialized (CDR) form of the field message: ``field_to_cdr`` / ``cdr_to_field`` against rclpy's own
serializer (real generated type support), malformed input, and one trip over DDS (publish bytes, typed and raw
subscribers)."""
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def conv():
    from trace_anything_ros.ros import conversions
    return conversions


def _field(n=3, d=4, h=5, w=6, seed=0, metric=True):
    from trace_anything_ros.field.types import TrajectoryField
    rng = np.random.default_rng(seed)
    k = np.array([[50.0, 0, 2.5], [0, 50.0, 2.0], [0, 0, 1]])
    return TrajectoryField(rng.random((n, d, h, w, 3)).astype(np.float32), rng.random((n, d, h, w)).astype(np.float32),
                           np.linspace(0, 1, n), 1.0 + 0.1 * np.arange(n), intrinsics=k if metric else None,
                           metric=metric, frame_id="cam")


def _header(frame_id, ns):
    from std_msgs.msg import Header
    from trace_anything_ros.ros.conversions import ns_to_time
    return Header(stamp=ns_to_time(ns), frame_id=frame_id)


# frame ids of every length mod 4 (string padding), both encodings, with and without intrinsics
@pytest.mark.parametrize("frame_id", ["", "a", "ca", "cam", "camera_optical_frame_\u00e9"])
@pytest.mark.parametrize("float16", [False, True])
@pytest.mark.parametrize("metric", [False, True])
def test_cdr_matches_rclpy_serialization(conv, frame_id, float16, metric):
    from rclpy.serialization import deserialize_message, serialize_message
    from trace_anything_ros.msg import TrajectoryField as Msg
    f = _field(metric=metric)
    stamps = [1_000_000_000, 1_100_000_007, 1_200_000_000]
    h = _header(frame_id, 1_200_000_000)
    m = conv.field_to_msg(f, h, float16=float16, scale=2.5, stamps_ns=stamps)
    ours = conv.field_to_cdr(f, h, float16=float16, scale=2.5, stamps_ns=stamps)
    theirs = serialize_message(m)
    assert len(ours) == len(theirs)
    assert deserialize_message(ours, Msg) == m  # every field, as rclpy reads our bytes
    for data in (ours, theirs):  # our reader on rclpy's bytes too
        g = conv.cdr_to_field(data)
        ref = conv.msg_to_field(m)
        np.testing.assert_array_equal(g.ctrl_pts, ref.ctrl_pts)
        np.testing.assert_array_equal(g.ctrl_conf, ref.ctrl_conf)
        np.testing.assert_array_equal(g.frame_times, ref.frame_times)
        np.testing.assert_array_equal(g.stamps, ref.stamps)
        assert g.frame_id == frame_id and g.metric == metric
        assert (g.intrinsics is None) == (not metric)
        if metric:
            np.testing.assert_array_equal(g.intrinsics, ref.intrinsics)


def test_cdr_views_do_not_copy(conv):
    f = _field()
    data = conv.field_to_cdr(f, _header("cam", 5))
    g = conv.cdr_to_field(data)
    assert not g.ctrl_pts.flags.owndata and not g.ctrl_pts.flags.writeable
    assert np.shares_memory(g.ctrl_pts, np.frombuffer(data, np.uint8))


def test_cdr_rejects_malformed(conv):
    f = _field()
    data = conv.field_to_cdr(f, _header("cam", 5))
    for cut in list(range(0, 200, 7)) + [len(data) - 1, len(data) - 100]:
        with pytest.raises(ValueError):
            conv.cdr_to_field(data[:cut])
    with pytest.raises(ValueError):
        conv.cdr_to_field(b"\x07\x07\x00\x00" + data[4:])  # not a CDR encapsulation
    bad = bytearray(data)
    bad[8 + 4:8 + 8] = (0xFFFFFFF0).to_bytes(4, "little")  # frame_id length far past the end
    with pytest.raises(ValueError):
        conv.cdr_to_field(bytes(bad))
    g = _field(n=2)  # shapes that disagree with the blob sizes
    from rclpy.serialization import serialize_message
    m = conv.field_to_msg(g, _header("cam", 5))
    m.height = 7
    with pytest.raises(ValueError):
        conv.cdr_to_field(serialize_message(m))


def test_serialized_field_over_dds(conv, ros_context):
    """Bytes from field_to_cdr published on a real publisher reach a typed and a raw subscriber intact."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from trace_anything_ros.msg import TrajectoryField as Msg
    node = rclpy.create_node("cdr_field_test", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        q = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Msg, "cdr_field", q)
        typed, raw = [], []
        node.create_subscription(Msg, "cdr_field", typed.append, q)
        node.create_subscription(Msg, "cdr_field", raw.append, q, raw=True)
        end = time.monotonic() + 10
        while pub.get_subscription_count() < 2 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        assert pub.get_subscription_count() == 2
        f = _field(n=4, d=5, h=16, w=20, seed=3)
        data = conv.field_to_cdr(f, _header("cam", 1_300_000_000))
        pub.publish(data)
        end = time.monotonic() + 10
        while (not typed or not raw) and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        assert typed and raw
        assert bytes(raw[0]) == data
        for g in (conv.msg_to_field(typed[0]), conv.cdr_to_field(raw[0])):
            np.testing.assert_array_equal(g.ctrl_pts, f.ctrl_pts)
            np.testing.assert_array_equal(g.ctrl_conf, f.ctrl_conf)
        assert conv.stamp_to_ns(typed[0].header.stamp) == 1_300_000_000
    finally:
        ex.shutdown()
        node.destroy_node()


@pytest.mark.parametrize("m_tracks,f", [(0, 5), (1, 0), (7, 5)])
def test_tracks_cdr_matches_node_message(conv, m_tracks, f):
    """tracks_to_cdr == rclpy's serialization of the TrajectoryArray message (messages.tracks_message), read back by
    rclpy."""
    from types import SimpleNamespace
    from rclpy.serialization import deserialize_message
    from trace_anything_ros.msg import TrajectoryArray
    from trace_anything_ros.pipeline.perception import Tracks
    from trace_anything_ros.ros import messages
    rng = np.random.default_rng(m_tracks + f)
    d, n = 4, 3
    tr = Tracks(ids=np.arange(m_tracks, dtype=np.uint32) * 3, source_frame=2,
                uv=rng.random((m_tracks, 2)).astype(np.float32) * 100,
                object_id=rng.integers(-1, 3, m_tracks).astype(np.int32),
                dynamic=rng.random(m_tracks) > 0.5, confidence=rng.random(m_tracks).astype(np.float32),
                ctrl=rng.random((m_tracks, d, 3)).astype(np.float32),
                ctrl_conf=rng.random((m_tracks, d)).astype(np.float32),
                positions=rng.random((m_tracks, n, 3)).astype(np.float32),
                forecast=rng.random((m_tracks, f, 3)).astype(np.float32),
                forecast_conf=rng.random((m_tracks, f)).astype(np.float32))
    stamps = [1_000_000_000, 1_033_000_001, 1_066_000_000]
    fst = [1_100_000_000 + 10_000_000 * i for i in range(f)]
    pr = SimpleNamespace(tracks=tr, field=SimpleNamespace(metric=True), stamps_ns=stamps, forecast_stamps_ns=fst)
    h = _header("cam_x", stamps[-1])
    ref = messages.tracks_message(pr, h)
    data = conv.tracks_to_cdr(tr, h, True, stamps, fst)
    got = deserialize_message(data, TrajectoryArray)
    assert got == ref
    assert len(got.trajectories) == m_tracks
    if m_tracks:
        assert got.trajectories[-1].positions[-1].z == pytest.approx(float(tr.positions[-1, -1, 2]))
