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

"""Hostile input: fuzz the message conversion / validation functions with hypothesis; safe model loading.

Documented errors: ``conversions.ImageError`` (a ValueError with ``.reason``) for images, ``ValueError`` for
TrajectoryField messages; camera_info and stamps never raise (the node drops bad ones, counted). Nothing may
allocate beyond what the declared, capped size needs (tracemalloc peaks).
"""
import math
import os
import pickle
import subprocess
import sys
import tracemalloc
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytestmark = pytest.mark.ros  # real sensor_msgs / builtin_interfaces / generated messages

ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "16UC1", "32FC1", "yuv422",
             "yuv422_yuy2", "rgb16", "bgra16", "", "RGB8", "64FC1", "nv21", "bayer_rggb8", "bayer_gbrg16", "\x00"]
U32 = st.integers(0, 2**32 - 1)
SMALL = st.integers(0, 64)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAP = 1 << 16  # pixels: the cap the tests pass as max_pixels


def _image(h, w, step, enc, data, bigendian=0):
    from sensor_msgs.msg import Image
    m = Image()
    m.height, m.width, m.step, m.encoding, m.is_bigendian = h, w, step, enc, bigendian
    m.data = data
    return m


@st.composite
def images(draw):
    h = draw(st.one_of(SMALL, U32))
    w = draw(st.one_of(SMALL, U32))
    step = draw(st.one_of(SMALL, st.integers(0, 512), U32))
    n = draw(st.one_of(st.integers(0, 4096), st.just(max(0, min(h * step, 1 << 16)))))
    data = draw(st.binary(min_size=min(n, 4096), max_size=min(n, 4096)))
    return _image(h, w, step, draw(st.sampled_from(ENCODINGS)), data, draw(st.integers(0, 1)))


def _bounded(fn, msg, budget):
    tracemalloc.start()
    try:
        out = fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= budget, f"peak {peak} B > budget {budget} B for {msg.width}x{msg.height} {msg.encoding!r}"
    return out


@FUZZ
@given(images())
def test_image_conversions_raise_only_image_error_and_stay_in_budget(m):
    from trace_anything_ros.ros import conversions as conv
    budget = 16 * CAP + 8 * len(m.data) + (1 << 20)  # float32 RGB of CAP pixels + the data, + 1 MiB slack
    for fn in (lambda: conv.image_to_array(m, CAP), lambda: conv.image_to_rgb(m, CAP),
               lambda: conv.depth_to_metres(m, CAP)):
        try:
            out = _bounded(fn, m, budget)
        except conv.ImageError as e:
            assert e.reason in {"unsupported_encoding", "invalid_image", "too_large", "wrong_step", "truncated",
                                "oversized_data"}
            assert len(str(e)) < 400  # a hostile encoding string is never echoed whole
            continue
        a = out[0] if isinstance(out, tuple) else out
        assert a.shape[0] == m.height and a.shape[1] == m.width and m.height * m.width <= CAP


@pytest.mark.parametrize("enc", ["rgb8", "mono16", "32FC1"])
def test_huge_declared_image_rejected_before_allocation(enc):
    from trace_anything_ros.ros import conversions as conv
    m = _image(100000, 100000, 300000, enc, b"\x00" * 1024)
    for fn in (conv.image_to_rgb, conv.depth_to_metres, conv.image_to_array):
        tracemalloc.start()
        try:
            with pytest.raises(conv.ImageError) as ei:
                fn(m, 4096 * 4096)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        # refused for its size where the function takes the encoding (no depth in rgb8, no colour in 32FC1)
        wrong_type = (fn, enc) in ((conv.depth_to_metres, "rgb8"), (conv.image_to_rgb, "32FC1"))
        assert ei.value.reason == ("unsupported_encoding" if wrong_type else "too_large"), (fn.__name__, enc)
        assert peak < 256 * 1024, peak  # nothing near 100000^2 bytes


@FUZZ
@given(n=st.integers(0, 5), d=st.integers(0, 12), h=st.one_of(st.integers(0, 9), U32), w=st.integers(0, 9),
       enc=st.sampled_from(["32FC1", "16FC1", "64FC1", ""]), nbytes=st.integers(0, 4096), big=st.integers(0, 1),
       k=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=9, max_size=9),
       times=st.lists(st.floats(allow_nan=True), max_size=8))
def test_field_message_raises_only_value_error(n, d, h, w, enc, nbytes, big, k, times):
    import array

    from trace_anything_ros.msg import TrajectoryField as FieldMsg
    from trace_anything_ros.ros import conversions as conv
    m = FieldMsg()
    m.num_frames, m.num_control_points, m.height, m.width = n, d, h, w
    m.encoding, m.is_bigendian = enc, big
    m.control_points = array.array("B", bytes(nbytes))
    m.confidences = array.array("B", bytes(nbytes // 3))
    m.k = k
    m.frame_times = array.array("f", [t if math.isnan(t) or abs(t) < 3e38 else 0.0 for t in times])
    try:
        f = _bounded(lambda: conv.msg_to_field(m), m, 2 * nbytes + (1 << 20))
    except ValueError:
        return
    assert f.ctrl_pts.size == n * d * h * w * 3


@FUZZ
@given(k=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=9, max_size=9),
       h=U32, w=U32, sec=st.integers(-2**31, 2**31 - 1), nsec=U32)
def test_camera_info_and_stamps_never_raise(k, h, w, sec, nsec):
    """The node's camera_info callback (called on a stand-in node) drops bad K / sizes and keeps good ones;
    any stamp converts and gets a verdict without raising. (The whole field space through a real node:
    test_hostile_node.py.)"""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo

    from trace_anything_ros.pipeline import FrameIngest, WindowSpec, gates
    from trace_anything_ros.ros import conversions as conv
    from trace_anything_ros.ros.trajectory_field_node import TrajectoryFieldNode
    ci = CameraInfo(height=h, width=w)
    ci.k = k
    ci.header.stamp = Time(sec=sec, nanosec=nsec)
    dropped, kept = [], []
    fake = types.SimpleNamespace(_ingest=types.SimpleNamespace(size=None), _drop=lambda r, msg: dropped.append(r),
                                 _infos=types.SimpleNamespace(append=kept.append), _cfg={"max_frame_id_length": 256})
    TrajectoryFieldNode._on_info(fake, ci)
    kk = np.asarray(k).reshape(3, 3)
    plausible = gates.intrinsics_problem(k, (h, w)) is None
    assert (len(kept), len(dropped)) == ((1, 0) if plausible else (0, 1))
    if not (np.isfinite(kk).all() and kk[0, 0] > 0 and kk[1, 1] > 0 and h > 0 and w > 0):
        assert dropped == ["invalid_camera_info"]  # what was dropped before the gate still is
    ns = conv.stamp_to_ns(ci.header.stamp)
    ing = FrameIngest(4, window=WindowSpec(length=2))
    assert ing.check_stamp(ns) in (None, "zero_stamp")
    assert ing.check_stamp(ns) == (None if ns > 0 else "zero_stamp")


# ------------------------------------------------------------------------------------------ safe model loading
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["plain", "torch_save", "in_state_dict"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, how):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil_{how}.pt"
    if how == "plain":
        path.write_bytes(pickle.dumps(_Evil(str(marker))))
    elif how == "torch_save":
        torch.save(_Evil(str(marker)), str(path))
    else:
        torch.save({"state_dict": {"encoder.patch_embed.proj.weight": torch.zeros(2), "x": _Evil(str(marker))}},
                   str(path))
    assert not marker.exists()
    from trace_anything_ros.model.checkpoint import CheckpointError, load_model
    with pytest.raises(CheckpointError) as ei:
        load_model(str(path))
    assert "refusing" in str(ei.value) or "cannot read" in str(ei.value)
    r = subprocess.run([sys.executable, "-m", "trace_anything_ros.cli", "check-weights", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not marker.exists(), "unpickling ran code"
    # the same file through the node's factory (engine.create_estimator)
    from trace_anything_ros.model.engine import create_estimator
    with pytest.raises(CheckpointError):
        create_estimator({"weights": str(path)})
    assert not marker.exists()


def test_onnx_loading_executes_no_code(tmp_path):
    """An ONNX file is a protobuf graph: onnxruntime parses it, no Python object is unpickled. A file whose bytes are
    a pickle with a code-running __reduce__ is rejected as an invalid model and the marker is not created."""
    ort = pytest.importorskip("onnxruntime")
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.onnx"
    path.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(Exception) as ei:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert "INVALID" in str(ei.value).upper() or "protobuf" in str(ei.value).lower() or "load" in str(ei.value).lower()
    assert not marker.exists()
