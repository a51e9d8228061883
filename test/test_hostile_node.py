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

"""Hostile input through the real ingest path of trajectory_field_node, in process (issue 14).

A real TrajectoryFieldNode (analytic estimator, configured + activated through its lifecycle) and its real
subscription callbacks (``Subscription.callback``: what the executor calls, the guard included) fed with messages
that hypothesis draws over the whole sensor_msgs/Image and CameraInfo field space: shape (including 1 x N strips
under max_image_pixels), step, encoding (including 100 KB strings), endianness, data length, stamps (including
the node clock +- seconds), frame ids (including 1 MiB). Per message: no exception anywhere (nothing reaches the
guard: dropped.callback_error stays 0), bounded time and memory (tracemalloc peak <= 4 x a valid frame's), and
exactly one counted outcome (accepted into the ring, kept, or a drop with its reason). The separate-process DDS
test is test_hostile_publisher.py.
"""
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytestmark = pytest.mark.ros

CAP = 1 << 16            # max_image_pixels of the node under test
GRID = (32, 48)
SRC = (120, 160)
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "16UC1", "32FC1", "yuv422",
             "yuv422_yuy2", "bayer_rggb8", "bayer_gbrg16", "rgb16", "nv21", "", "RGB8", "64FC1", "\x00",
             "rgb8" * 25_000]
CAMERA_ENCODINGS = ["rgb8", "bgr8", "mono8", "mono16", "rgba8", "bayer_rggb8", "yuv422_yuy2"]   # accepted
CHANNEL_BYTES = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "8UC1": 1, "8UC3": 3,
                 "16UC1": 2, "32FC1": 4, "yuv422": 2, "yuv422_yuy2": 2, "bayer_rggb8": 1, "bayer_gbrg16": 2,
                 "rgb16": 6}
TIME_PER_MESSAGE = 1.0   # s: generous for a loaded 2-core machine (the memory bound catches the 550 MB strip)
BIG_ID = "f" * (1 << 20)


@pytest.fixture(scope="module")
def node(ros_context):
    from rclpy.parameter import Parameter

    from trace_anything_ros.ros.trajectory_field_node import TrajectoryFieldNode
    params = {"estimator.factory": "analytic_estimator:create", "input_height": GRID[0], "input_width": GRID[1],
              "window.length": 4, "model.warmup": False, "max_image_pixels": CAP, "stream.switch_frames": 3}
    # another node name: the ROS tests after this module drive a /trajectory_field_node process in the same domain
    n = TrajectoryFieldNode(context=ros_context, cli_args=["--ros-args", "-r", "__node:=hostile_fuzz_node"],
                            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    n.trigger_configure()
    n.trigger_activate()
    assert n.lc_state == "active"
    # callbacks only: tracemalloc traces every thread, and the worker's windows are not a message's cost (the
    # worker under hostile input runs in test_hostile_publisher.py)
    n._worker.stop()
    yield n
    n._release()
    n.destroy_node()


def _cb(node, topic):
    """The subscription's callback as the executor calls it (the image one also takes rclpy's MessageInfo)."""
    import inspect
    cb = next(s.callback for s in node.input_subscriptions() if s.topic_name.endswith("/" + topic))
    if len(inspect.signature(cb).parameters) == 2:
        return lambda m: cb(m, {"publication_sequence_number": None})
    return cb


def _image(h, w, step, enc, data, big=0, stamp_ns=1, frame_id="cam"):
    from sensor_msgs.msg import Image

    from trace_anything_ros.ros import conversions as conv
    m = Image(height=h, width=w, step=step, encoding=enc, is_bigendian=big)
    m.data = data
    m.header.stamp = conv.ns_to_time(max(stamp_ns, 0)) if stamp_ns >= 0 else conv.ns_to_time(0)
    m.header.frame_id = frame_id
    return m


def _outcome(node):
    """(frames accepted, identity of the last drop, identity of the newest camera_info / depth item)."""
    ing = node._ingest
    return (ing.accepted, node._last_drop, node._infos[-1] if node._infos else None,
            node._depths[-1] if node._depths else None)


def _feed(node, topic, msg):
    """One message through the subscription's callback, measured: (seconds, tracemalloc peak, outcome before,
    outcome after)."""
    cb = _cb(node, topic)
    before = _outcome(node)
    errors = node.drops["callback_error"]
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        cb(msg)
    finally:
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert node.drops["callback_error"] == errors, node._last_drop  # nothing raised inside the callback
    return dt, peak, before, _outcome(node)


@pytest.fixture(scope="module")
def valid_peak(node):
    """tracemalloc peak of a valid frame at the cap (256 x 256 rgb8) through the image callback."""
    from trace_anything_ros.ros import conversions as conv
    a = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    peaks = []
    for i in range(3):
        m = conv.array_to_image(a, "rgb8")
        m.header.stamp = conv.ns_to_time(node._now_ns() - 10**9 + i * 10**6)
        m.header.frame_id = "cam"
        _, peak, b, after = _feed(node, "image", m)
        peaks.append(peak)
    node._ingest.clear()
    return max(peaks)


@st.composite
def images(draw, now_ns, seq):
    kind = draw(st.sampled_from(["camera", "camera", "plausible", "strip", "random"]))
    enc = draw(st.sampled_from(ENCODINGS if kind != "camera" else CAMERA_ENCODINGS))
    bpp = CHANNEL_BYTES.get(enc, 3)
    if kind == "camera":  # the stream's own size: frames that can be accepted
        h, w = SRC
    elif kind == "plausible":
        h, w = draw(st.integers(1, 96)), draw(st.integers(1, 128))
    elif kind == "strip":  # extreme aspect ratios under the pixel cap (the issue's crash: 1 x millions)
        n = draw(st.integers(2000, CAP))
        h, w = (1, n) if draw(st.booleans()) else (n, 1)
    else:
        h, w = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    row = w * bpp
    if kind == "camera":
        step = row
    else:
        step = draw(st.one_of(st.just(row), st.integers(row, row + 64), st.integers(0, 2**32 - 1)))
    want = h * step if h * step <= 4 * CAP * 4 else 0
    n = want if kind == "camera" else draw(st.one_of(st.just(want), st.integers(max(0, want - 8), want + 64),
                                                     st.integers(0, 4096)))
    data = bytes(n)
    seq[0] += 1  # a stream of increasing stamps 5 s behind the clock, or anything
    stamp = draw(st.one_of(st.just(now_ns - 5 * 10**9 + seq[0] * 10**7),
                           st.integers(now_ns - 3 * 10**9, now_ns + 3 * 10**9), st.integers(0, 2**62), st.just(0)))
    frame_id = "cam" if kind == "camera" else draw(st.one_of(st.text(max_size=40), st.just(BIG_ID), st.just("cam")))
    return _image(h, w, step, enc, data, draw(st.integers(0, 255)), stamp, frame_id)


def test_fuzz_images_through_the_node(node, valid_peak):
    now = node._now_ns()
    counts = {"accepted": 0, "dropped": 0}

    @FUZZ
    @given(images(now, [0]))
    def run(m):
        dt, peak, before, after = _feed(node, "image", m)
        accepted = after[0] == before[0] + 1
        dropped = after[1] is not before[1]
        assert accepted != dropped, (m.width, m.height, m.step, m.encoding[:20], after[1][:2])
        if dropped:
            reason, text, _ = after[1]
            assert len(text) <= 300 and BIG_ID not in text
        counts["accepted" if accepted else "dropped"] += 1
        assert dt < TIME_PER_MESSAGE, (dt, m.width, m.height, m.encoding[:20])
        assert peak <= 4 * valid_peak + (512 << 10), (peak, valid_peak, m.width, m.height, m.encoding[:20])

    run()
    print("image outcomes", counts, "drops", node.drops.snapshot(), "valid frame peak", valid_peak)
    assert counts["dropped"] > 0 and counts["accepted"] > 0 and node.drops["callback_error"] == 0
    assert node.lc_state == "active"


@st.composite
def camera_infos(draw):
    from sensor_msgs.msg import CameraInfo
    k = draw(st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=9, max_size=9),
                       st.builds(lambda f, g, cx, cy, z: [f, 0.0, cx, 0.0, g, cy, 0.0, 0.0, z],
                                 st.floats(-10, 1e4), st.floats(-10, 1e4), st.floats(-500, 700),
                                 st.floats(-500, 700), st.sampled_from([0.0, 1.0, 2.0]))))
    ci = CameraInfo(height=draw(st.one_of(st.just(SRC[0]), st.integers(0, 2**32 - 1))),
                    width=draw(st.one_of(st.just(SRC[1]), st.integers(0, 2**32 - 1))))
    ci.k = k
    ci.d = draw(st.lists(st.floats(allow_nan=True), max_size=16))
    ci.header.frame_id = draw(st.one_of(st.text(max_size=40), st.just(BIG_ID)))
    ci.header.stamp.sec = draw(st.integers(-2**31, 2**31 - 1))
    ci.header.stamp.nanosec = draw(st.integers(0, 2**32 - 1))
    return ci


def test_fuzz_camera_info_through_the_node(node):
    from trace_anything_ros.pipeline import gates

    @FUZZ
    @given(camera_infos())
    def run(ci):
        dt, peak, before, after = _feed(node, "camera_info", ci)
        kept = after[2] is not before[2]
        dropped = after[1] is not before[1]
        assert kept != dropped
        if kept:  # what is kept is plausible for the size it declares (and its frame id short)
            assert gates.intrinsics_problem(ci.k, (ci.height, ci.width)) is None and len(ci.header.frame_id) <= 256
        assert dt < TIME_PER_MESSAGE and peak < 1 << 20

    run()


@st.composite
def depths(draw, now_ns):
    enc = draw(st.sampled_from(["32FC1", "16UC1", "mono16", "rgb8", "64FC1"]))
    if draw(st.booleans()):
        h, w = draw(st.integers(1, 96)), draw(st.integers(1, 128))
    else:
        n = draw(st.integers(2000, CAP))
        h, w = (1, n) if draw(st.booleans()) else (n, 1)
    bpp = CHANNEL_BYTES.get(enc, 8)
    value = draw(st.sampled_from([0.0, 1.5, 1e37, -1.0, float("nan"), float("inf"), 0.01, 25.0]))
    if enc == "32FC1":
        a = np.full((h, w), value, np.float32)
    else:
        a = np.full((h, w * max(1, bpp // 2)), 0 if not np.isfinite(value) else int(min(max(value, 0), 65.535) * 1000),
                    np.uint16)
    data = a.tobytes()[: h * w * bpp]
    return _image(h, w, w * bpp, enc, data, 0, draw(st.integers(now_ns - 10**9, now_ns + 3 * 10**9)), "cam")


def test_fuzz_depth_through_the_node(node, valid_peak):
    now = node._now_ns()
    cb = node._guarded(node._on_depth, "depth")  # the callback use_depth subscribes (this node: use_depth off)

    @FUZZ
    @given(depths(now))
    def run(m):
        before = _outcome(node)
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            cb(m)
        finally:
            dt = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        after = _outcome(node)
        kept, dropped = after[3] is not before[3], after[1] is not before[1]
        assert kept != dropped and node.drops["callback_error"] == 0
        if kept:  # only depth within range reaches the model grid
            d = after[3][1]
            v = d[np.isfinite(d)]
            assert v.size and v.min() >= 0.05 and v.max() <= 20.0
        assert dt < TIME_PER_MESSAGE and peak <= 4 * valid_peak + (512 << 10)

    run()


def test_the_issue_cases_are_named_drops(node):
    """The outside tester's findings, one message each, through the real callbacks."""
    from trace_anything_ros.ros import conversions as conv
    now = node._now_ns()

    def last():
        return node._last_drop[0]

    img = _cb(node, "image")
    strip = _image(1, CAP, 3 * CAP, "rgb8", bytes(3 * CAP), stamp_ns=now - 10**8)
    img(strip)
    assert last() == "extreme_aspect"
    tall = _image(20000, 1, 3, "rgb8", bytes(3 * 20000), stamp_ns=now - 10**8)
    img(tall)
    assert last() == "extreme_aspect"
    good = conv.array_to_image(np.zeros(SRC + (3,), np.uint8), "rgb8")
    good.header.stamp = conv.ns_to_time(now - 10**8)
    long_data = _image(SRC[0], SRC[1], SRC[1] * 3, "rgb8", bytes(SRC[0] * SRC[1] * 3 + 1), stamp_ns=now - 10**8)
    img(long_data)
    assert last() == "oversized_data"
    big_id = _image(SRC[0], SRC[1], SRC[1] * 3, "rgb8", bytes(good.data), stamp_ns=now - 10**8, frame_id=BIG_ID)
    img(big_id)
    assert last() == "invalid_frame_id" and len(node._last_drop[1]) < 300
    enc = _image(SRC[0], SRC[1], SRC[1] * 3, "x" * 100_000, bytes(good.data), stamp_ns=now - 10**8)
    img(enc)
    assert last() == "unsupported_encoding" and len(node._last_drop[1]) < 300
    fut = _image(SRC[0], SRC[1], SRC[1] * 3, "rgb8", bytes(good.data), stamp_ns=now + 10**9)
    img(fut)
    assert last() == "future_stamp"
    info = _cb(node, "camera_info")
    from sensor_msgs.msg import CameraInfo
    ci = CameraInfo(height=SRC[0], width=SRC[1])
    ci.k = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 0]
    info(ci)
    assert last() == "invalid_camera_info"
    dep = node._guarded(node._on_depth, "depth")
    d = conv.array_to_image(np.full(SRC, 1e37, np.float32), "32FC1")
    d.header.stamp = conv.ns_to_time(now - 10**8)
    dep(d)
    assert last() == "invalid_depth"
    assert node.drops["callback_error"] == 0
    # diagnostics: every reason counted, the last one named, WARN naming the reasons
    st_ = node.diagnostic_status()
    vals = {kv.key: kv.value for kv in st_.values}
    for r in ("extreme_aspect", "oversized_data", "invalid_frame_id", "unsupported_encoding", "future_stamp",
              "invalid_camera_info", "invalid_depth"):
        assert int(vals[f"dropped.{r}"]) >= 1, r
        assert r in st_.message
    assert vals["last_drop_reason"] == "invalid_depth" and st_.level == b"\x01"
