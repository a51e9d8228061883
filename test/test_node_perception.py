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

"""trajectory_field_node in a separate process over DDS, driven and observed from this process.

One node process for the whole module (started with the analytic estimator); tests run in file order and build
on each other's state (lifecycle: configure/activate early, reconfigure with depth + reliable QoS at the end).
"""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ros_helpers import RosHarness, node_env, node_under_test

pytestmark = pytest.mark.ros

TEST_DIR = pathlib.Path(__file__).resolve().parent
REPO = TEST_DIR.parent
NODE = "/trajectory_field_node"
IN_H, IN_W = 32, 48          # model grid
SRC_H, SRC_W = 120, 160      # camera images


def start_node(*params, env=None):
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.trajectory_field_node", "--ros-args",
           "-p", "estimator.factory:=analytic_estimator:create", "-p", f"input_height:={IN_H}",
           "-p", f"input_width:={IN_W}", "-p", "diagnostics.period:=0.2"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, env=env or node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Harness(RosHarness):
    """A test-side rclpy node (in ``context``): publishers for the camera topics, collectors for every output."""

    WAIT_TIMEOUT = 20.0

    def __init__(self, context, name="perception_test"):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from visualization_msgs.msg import MarkerArray

        from trace_anything_ros.msg import DynamicObjectArray, TrajectoryArray, TrajectoryField

        super().__init__(name, context, NODE)
        self.got = {}
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for key, typ in [("trajectory_field", TrajectoryField), ("tracks", TrajectoryArray),
                         ("dynamic_mask", Image), ("dynamic_objects", DynamicObjectArray), ("markers", MarkerArray)]:
            self.node.create_subscription(typ, f"{NODE}/{key}", lambda m, k=key: self.got.setdefault(k, []).append(m),
                                          rel)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, rel)
        self.diag = []
        self.pub_img = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_img_rel = self.node.create_publisher(Image, "image", rel)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.pub_depth = self.node.create_publisher(Image, "depth", rel)

    def _on_diag(self, m):
        for s in m.status:
            if s.name.startswith("trajectory_field_node"):
                self.diag.append(s)

    def diag_values(self):
        return {kv.key: kv.value for kv in self.diag[-1].values} if self.diag else {}

    def wait_diag(self, pred, timeout=15.0):
        n0 = len(self.diag)
        return self.wait(lambda: len(self.diag) > n0 and pred(self.diag[-1], self.diag_values()), timeout)

    def image(self, stamp_ns, red_at=None, encoding="rgb8", h=SRC_H, w=SRC_W, frame_id="cam_optical"):
        from trace_anything_ros.ros import conversions as conv
        a = np.full((h, w, 3), 40, np.uint8)
        if red_at is not None:
            a[30:70, red_at:red_at + 30] = (255, 0, 0)
        m = conv.array_to_image(a, "rgb8")
        m.encoding = encoding if encoding != "rgb8" else m.encoding
        m.header.stamp = conv.ns_to_time(stamp_ns)
        m.header.frame_id = frame_id
        return m

    def camera_info(self, stamp_ns):
        from sensor_msgs.msg import CameraInfo
        from trace_anything_ros.ros import conversions as conv
        ci = CameraInfo(width=SRC_W, height=SRC_H)
        ci.header.stamp = conv.ns_to_time(stamp_ns)
        ci.header.frame_id = "cam_optical"
        ci.k = [100.0, 0.0, 79.5, 0.0, 100.0, 59.5, 0.0, 0.0, 1.0]
        return ci

    def stream(self, start_ns, count, period_ns=50_000_000, info=True, pub=None, depth=None, red=True):
        """Publish ``count`` frames (a red square moving right) and return their stamps."""
        from trace_anything_ros.ros import conversions as conv
        stamps = []
        for i in range(count):
            s = start_ns + i * period_ns
            if info:
                self.pub_info.publish(self.camera_info(s))
            if depth is not None:
                dm = conv.array_to_image(depth, "32FC1")
                dm.header.stamp = conv.ns_to_time(s)
                dm.header.frame_id = "cam_optical"
                self.pub_depth.publish(dm)
            (pub or self.pub_img).publish(self.image(s, red_at=(10 + 4 * i) % 120 if red else None))
            stamps.append(s)
            self.spin(period_ns * 1e-9)
        return stamps


@pytest.fixture(scope="module")
def env(ros_context):
    proc = start_node("window.length:=4", "tracks.stride:=8", "forecast.horizon:=0.2", "forecast.samples:=3")
    with node_under_test(proc, Harness(ros_context)) as hp:
        yield hp


def test_lifecycle_configure_and_activate(env):
    h, _ = env
    assert h.lc.get_state() == "unconfigured"
    assert h.lc.change_state("configure")
    assert h.lc.get_state() == "inactive"
    assert h.lc.change_state("activate")
    assert h.lc.get_state() == "active"
    assert h.wait_diag(lambda s, v: v.get("model_state") == "ready" and v.get("lifecycle_state") == "active")
    # the subscription's QoS and the QoS the image publishers offer, as the graph shows them to this harness
    from rclpy.qos import ReliabilityPolicy
    infos = h.node.get_publishers_info_by_topic("/image")
    rel = sum(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    assert infos and any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    assert h.wait_diag(lambda s, v: v.get("input_qos") == "best_effort"
                       and (int(v.get("image_publishers_reliable", -1)),
                            int(v.get("image_publishers_best_effort", -1))) == (rel, len(infos) - rel)), \
        {k: v for k, v in h.diag_values().items() if "qos" in k or "publishers" in k}


def test_missing_camera_info_warns_and_runs_up_to_scale(env):
    h, _ = env
    assert h.wait(lambda: h.pub_img.get_subscription_count() > 0, 30), "subscription never matched"
    h.wait(lambda: all(len(h.node.get_publishers_info_by_topic(f"{NODE}/{k}")) for k in ("tracks", "dynamic_mask")),
           10)
    h.stream(1_000_000_000, 8, info=False)
    assert h.wait(lambda: h.got.get("tracks"), 15), "no tracks without camera_info"
    assert h.wait_diag(lambda s, v: "no camera_info" in s.message and s.level == b"\x01")
    assert not h.got["tracks"][-1].metric
    # the 4:3 camera on this 3:2 grid: the crop drops its bottom rows, reported (preprocess.crop_fraction)
    from trace_anything_ros.model.preprocess import crop_fraction
    seen = 1.0 - crop_fraction((SRC_H, SRC_W), (IN_H, IN_W))
    assert seen < 0.95
    assert float(h.diag_values()["model_view_fraction"]) == pytest.approx(seen, abs=1e-3)


def test_outputs_have_stamps_frame_ids_shapes_and_encodings(env):
    h, _ = env
    h.got.clear()
    stamps = h.stream(2_000_000_000, 12)
    keys = ("trajectory_field", "tracks", "dynamic_mask", "dynamic_objects", "markers")
    assert h.wait(lambda: all(h.got.get(k) for k in keys) and
                  h.got["tracks"][-1].header.stamp.sec == 2, 20), {k: len(v) for k, v in h.got.items()}
    sent = set(stamps)
    from trace_anything_ros.ros.conversions import msg_to_field, stamp_to_ns
    f = h.got["trajectory_field"][-1]
    assert f.header.frame_id == "cam_optical" and stamp_to_ns(f.header.stamp) in sent
    assert (f.num_frames, f.height, f.width, f.num_control_points) == (4, IN_H, IN_W, 10)
    fs = [stamp_to_ns(s) for s in f.frame_stamps]
    assert set(fs) <= sent and fs == sorted(fs) and fs[-1] == stamp_to_ns(f.header.stamp)
    field = msg_to_field(f)
    assert field.ctrl_pts.shape == (4, 10, IN_H, IN_W, 3) and f.encoding == "32FC1"
    assert field.intrinsics[0, 0] == pytest.approx(100.0 * IN_W / SRC_W)  # camera_info scaled to the model grid
    # the tracks of the field's window (the field, ~1 MB, can arrive after the next window's tracks)
    assert h.wait(lambda: any(m.header.stamp == f.header.stamp for m in h.got["tracks"]), 10)
    tr = [m for m in h.got["tracks"] if m.header.stamp == f.header.stamp][-1]
    assert tr.header.frame_id == "cam_optical" and [stamp_to_ns(s) for s in tr.frame_stamps] == fs
    # the 8-pixel grid plus samples on the moving object (tracks.per_object: 16 tracks on it in all)
    assert len(tr.trajectories) > (IN_H // 8) * (IN_W // 8)
    t0 = tr.trajectories[0]
    assert len(t0.positions) == 4 and len(t0.control_points) == 10 and len(t0.forecast) == 3
    assert all(stamp_to_ns(s) > fs[-1] for s in t0.forecast_stamps) and 0 <= t0.u < SRC_W and 0 <= t0.v < SRC_H
    assert any(t.dynamic for t in tr.trajectories) and not all(t.dynamic for t in tr.trajectories)
    mk = h.got["dynamic_mask"][-1]
    assert mk.encoding == "mono8" and (mk.width, mk.height) == (SRC_W, SRC_H) and stamp_to_ns(mk.header.stamp) in sent
    assert mk.header.frame_id == "cam_optical" and 0 < sum(mk.data) // 255 < SRC_W * SRC_H
    ob = h.got["dynamic_objects"][-1]
    assert ob.header.frame_id == "cam_optical" and len(ob.objects) == 1
    o = ob.objects[0]
    same = [m for m in h.got["tracks"] if m.header.stamp == ob.header.stamp]  # the tracks of the same window
    assert same, "no tracks message for the objects' window"
    ob_tr = [t for t in same[-1].trajectories if t.object_id == o.id]
    assert len(ob_tr) == 16 and all(t.dynamic for t in ob_tr)  # tracks name the objects' ids
    assert o.velocity.x > 0 and abs(o.velocity.y) < 1e-3 and len(o.trajectory) == 4
    assert 0 <= o.roi.x_offset < SRC_W and o.roi.width > 0 and len(o.forecast) == len(o.forecast_stamps) > 0
    ma = h.got["markers"][-1]
    assert {m.ns for m in ma.markers} >= {"trajectories", "forecasts", "objects"}
    assert all(m.header.frame_id == "cam_optical" for m in ma.markers)
    assert h.wait_diag(lambda s, v: float(v.get("output_rate_hz", 0)) > 0 and "latency_s_mean" in v
                       and "model_time_s_mean" in v and float(v["input_rate_hz"]) > 0)


def test_parameters_out_of_range_are_rejected_with_a_message(env):
    h, _ = env
    r = h.set_params(tracks__stride=5000)[0]
    assert not r.successful and "tracks.stride" in r.reason and "range" in r.reason
    r = h.set_params(mask__encoding="rgb8")[0]
    assert not r.successful and "mono8" in r.reason
    r = h.set_params(window__length=6)[0]  # configure-time parameter while active
    assert not r.successful and "configure" in r.reason
    r = h.set_params(**{"mask__encoding": "16UC1"})[0]
    assert r.successful, r.reason
    h.got.clear()
    h.stream(4_000_000_000, 6)
    assert h.wait(lambda: h.got.get("dynamic_mask") and h.got["dynamic_mask"][-1].encoding == "16UC1", 15)
    mk = h.got["dynamic_mask"][-1]
    lab = np.frombuffer(bytes(mk.data), np.uint16)
    assert lab.max() >= 1 and set(np.unique(lab)) - {0}  # object ids
    assert h.set_params(mask__encoding="mono8")[0].successful


@pytest.mark.parametrize("case,reason", [
    ("unsupported_encoding", "unsupported_encoding"), ("truncated", "truncated"), ("wrong_step", "wrong_step"),
    ("too_large", "too_large"), ("zero_stamp", "zero_stamp"), ("duplicate", "duplicate_stamp"),
    ("non_monotonic", "non_monotonic_stamp")])
def test_bad_input_is_dropped_counted_and_survived(env, case, reason):
    h, proc = env
    base = 10_000_000_000 + 10**9 * ["unsupported_encoding", "truncated", "wrong_step", "too_large",
                                     "zero_stamp", "duplicate", "non_monotonic"].index(case)
    h.stream(base, 1)  # a good frame first (sets the last stamp)
    m = h.image(base + 50_000_000)
    if case == "unsupported_encoding":
        m.encoding = "nv21"
    elif case == "truncated":
        m.data = bytes(m.data)[: len(m.data) // 2]
    elif case == "wrong_step":
        m.step = SRC_W  # < width * 3
    elif case == "too_large":
        m.width, m.height, m.step = 100000, 100000, 300000
    elif case == "zero_stamp":
        m = h.image(0)
    elif case == "duplicate":
        m = h.image(base)
    elif case == "non_monotonic":
        m = h.image(base - 10_000_000)
    before = int(h.diag_values().get(f"dropped.{reason}", 0))
    h.pub_img.publish(m)
    assert h.wait_diag(lambda s, v: int(v.get(f"dropped.{reason}", 0)) > before), h.diag_values()
    assert proc.poll() is None and h.lc.get_state() == "active"


RAW_ENCODINGS = ["bayer_rggb8", "bayer_gbrg16", "yuv422", "yuv422_yuy2", "rgb16"]


def _raw(rgb, encoding):
    """``rgb`` as a camera driver publishes it raw: a Bayer mosaic, YUV 4:2:2 or 16-bit colour."""
    import cv2
    if encoding.startswith("bayer_"):
        a = np.zeros(rgb.shape[:2], np.uint8)
        for (dy, dx), c in zip([(0, 0), (0, 1), (1, 0), (1, 1)], encoding[6:10]):
            a[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(c)]
        return a.astype(np.uint16) * 257 if encoding.endswith("16") else a
    if encoding.startswith("yuv422"):
        yuyv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_YUY2)
        return yuyv if encoding == "yuv422_yuy2" else np.ascontiguousarray(yuyv[..., ::-1])  # UYVY: U Y0 V Y1
    return rgb.astype(np.uint16) * 257


@pytest.mark.parametrize("encoding", RAW_ENCODINGS)
def test_raw_camera_encodings_are_converted_and_run_the_pipeline(env, encoding):
    """A camera driver's raw formats (a Bayer mosaic without debayering, YUV 4:2:2 from a USB camera, 16-bit
    colour) are converted in the node as cv_bridge does (colours checked in test_conversions.py): its windows are
    published and nothing is dropped."""
    from trace_anything_ros.ros import conversions as conv
    from trace_anything_ros.ros.conversions import stamp_to_ns
    h, proc = env
    base = 17_000_000_000 + 500_000_000 * RAW_ENCODINGS.index(encoding)
    h.stream(base, 3)      # rgb8 frames first: the node takes up the new time base (a jump ahead: time_jump)
    assert h.wait_diag(lambda s, v: True)
    v0 = h.diag_values()
    h.got.clear()
    stamps = set()
    for i in range(3, 9):
        s = base + i * 50_000_000
        h.pub_info.publish(h.camera_info(s))
        m = conv.array_to_image(_raw(np.asarray(conv.image_to_rgb(h.image(s, red_at=10 + 4 * i))), encoding),
                                encoding)
        m.header.stamp, m.header.frame_id = conv.ns_to_time(s), "cam_optical"
        h.pub_img.publish(m)
        stamps.add(s)
        h.spin(0.05)
    assert h.wait(lambda: any({stamp_to_ns(x) for x in t.frame_stamps} <= stamps for t in h.got.get("tracks", [])),
                  15), (encoding, h.diag_values())
    assert h.wait_diag(lambda s, v: True)
    drops = {k: v for k, v in h.diag_values().items() if k.startswith("dropped.") and v != v0.get(k, "0")}
    assert not drops, drops
    assert proc.poll() is None


def test_a_distorted_camera_info_is_named_until_a_rectified_one_comes(env):
    """The node lifts with K alone: a camera_info of a raw (distorted) image is a named warning in /diagnostics
    (how many pixels the distortion moves, and to subscribe to image_rect) until a rectified one arrives."""
    h, proc = env
    v0 = h.diag_values()
    for i, d in enumerate(([-0.3, 0.1, 0.0, 0.0, 0.0], [0.0] * 5)):
        ci = h.camera_info(19_600_000_000 + i * 100_000_000)
        ci.distortion_model, ci.d = "plumb_bob", d
        h.pub_info.publish(ci)
        if i == 0:
            assert h.wait_diag(lambda s, v: int(v.get("warned.camera_info_distorted", 0)) > int(
                v0.get("warned.camera_info_distorted", 0)) and "image_rect" in s.message and s.level >= b"\x01"), \
                h.diag_values()
            assert "plumb_bob" in h.diag[-1].message and " px at the image's edges" in h.diag[-1].message
    assert h.wait_diag(lambda s, v: "image_rect" not in s.message), h.diag[-1].message
    assert proc.poll() is None


def test_odd_size_frame_is_dropped_and_after_a_time_reset_only_new_frames_are_published(env):
    """One frame of another size is dropped and counted (a single odd frame is not a camera change: the ring is
    kept, test_hostile_ingest.py covers real changes); after a jump back in time the node publishes windows of the
    new timeline only, never a mix. That the ring itself is cleared is not visible from outside (the window
    selection would not mix the timelines even with an uncleared ring): test_pipeline.py /
    test_hostile_ingest.py prove it on FrameIngest."""
    h, proc = env
    h.stream(20_000_000_000, 3)
    v0 = h.diag_values()
    h.pub_img.publish(h.image(20_200_000_000, h=SRC_H // 2, w=SRC_W // 2))
    assert h.wait_diag(lambda s, v: int(v.get("dropped.size_change", 0)) > int(v0.get("dropped.size_change", 0)))
    h.stream(20_300_000_000, 3)
    h.pub_img.publish(h.image(1_000_000))  # ~20 s backwards: a time reset (buffers cleared, stream continues)
    assert h.wait_diag(lambda s, v: int(v.get("dropped.time_reset", 0)) > int(v0.get("dropped.time_reset", 0)))
    h.got.clear()
    new = set(h.stream(1_050_000_000, 6)) | {1_000_000}
    from trace_anything_ros.ros.conversions import stamp_to_ns
    assert h.wait(lambda: any({stamp_to_ns(s) for s in m.frame_stamps} <= new for m in h.got.get("tracks", [])),
                  15), "no output of the new timeline after the time reset"
    # no window mixes the new timeline's frames with the old (20 s) ones, and once a window of the new timeline is
    # out no old one follows (an old window still in flight at the reset may arrive first)
    wins = [{stamp_to_ns(s) for s in m.frame_stamps} for m in h.got["tracks"]]
    assert all(w <= new or not (w & new) for w in wins), wins
    first_new = next(i for i, w in enumerate(wins) if w <= new)
    assert all(w <= new for w in wins[first_new:]), wins
    assert proc.poll() is None


def test_stale_input_warns(env):
    h, _ = env
    h.set_params(diagnostics__stale_after=0.3)
    assert h.wait_diag(lambda s, v: "stale input" in s.message and s.level >= b"\x01", 10)
    h.set_params(diagnostics__stale_after=2.0)


def test_reconfigure_with_depth_and_reliable_qos(env):
    h, proc = env
    assert h.lc.change_state("deactivate") and h.lc.get_state() == "inactive"
    assert h.wait_diag(lambda s, v: v.get("model_state") == "unloaded")
    assert h.lc.change_state("cleanup") and h.lc.get_state() == "unconfigured"
    rs = h.set_params(use_depth=True, qos__reliability="reliable", sync__slop=0.01)
    assert all(r.successful for r in rs), [r.reason for r in rs]
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    # a best-effort publisher cannot feed a reliable subscription: reported as an incompatible-QoS event
    h.spin(1.0)
    h.pub_img.publish(h.image(30_000_000_000))
    assert h.wait_diag(lambda s, v: int(v.get("incompatible_qos_events", 0)) > 0 and "incompatible QoS" in s.message,
                       15), h.diag_values()
    # metric scale from depth: the analytic scene is at Z=2 (up to scale), depth says 3 m
    depth = np.full((SRC_H, SRC_W), 3.0, np.float32)
    depth[:10] = np.nan
    h.got.clear()
    assert h.wait(lambda: h.pub_depth.get_subscription_count() > 0, 30), "subscription never matched"
    h.stream(31_000_000_000, 8, pub=h.pub_img_rel, depth=depth)
    # field and tracks of a window are separate messages: wait for both (tracks may land just after the field)
    assert h.wait(lambda: h.got.get("trajectory_field") and h.got.get("tracks"), 15), h.diag_values()
    f = h.got["trajectory_field"][-1]
    assert f.metric and f.scale == pytest.approx(1.5, rel=1e-3)
    assert h.got["tracks"][-1].metric
    # depth with no valid pixel is dropped and counted
    bad = np.full((SRC_H, SRC_W), np.nan, np.float32)
    before = int(h.diag_values().get("dropped.invalid_depth", 0))
    h.stream(40_000_000_000, 1, pub=h.pub_img_rel, depth=bad)
    assert h.wait_diag(lambda s, v: int(v.get("dropped.invalid_depth", 0)) > before)
    # an image whose depth never comes is dropped as unsynchronised once newer depth arrives
    before = int(h.diag_values().get("dropped.unsynchronised", 0))
    h.pub_img_rel.publish(h.image(41_000_000_000))
    h.spin(0.1)
    h.stream(42_000_000_000, 1, pub=h.pub_img_rel, depth=depth)
    assert h.wait_diag(lambda s, v: int(v.get("dropped.unsynchronised", 0)) > before)
    assert proc.poll() is None


def test_compressed_transport_rgbd(env):
    """image_transport 'compressed': JPEG images on '<image>/compressed' and 16UC1 PNG depth on
    '<depth>/compressedDepth' (sensor_msgs/CompressedImage, as a robot streams or records them) run the same
    pipeline -- metric from the decoded depth -- and a compressed image whose header declares too many pixels is
    dropped before it is decoded."""
    import struct

    import cv2
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    from trace_anything_ros.ros import conversions as conv
    h, proc = env
    assert h.lc.change_state("deactivate") and h.lc.change_state("cleanup")
    rs = h.set_params(image_transport="compressed")
    assert all(r.successful for r in rs), [r.reason for r in rs]
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_c = h.node.create_publisher(CompressedImage, "image/compressed", rel)
    pub_d = h.node.create_publisher(CompressedImage, "depth/compressedDepth", rel)
    assert h.wait(lambda: pub_c.get_subscription_count() > 0 and pub_d.get_subscription_count() > 0, 30), \
        "compressed subscriptions never matched"
    mm = np.full((SRC_H, SRC_W), 3000, np.uint16)
    mm[:10] = 0
    depth_png = struct.pack("<iff", 0, 0.0, 0.0) + cv2.imencode(".png", mm)[1].tobytes()
    h.got.clear()
    for i in range(8):
        s = 50_000_000_000 + i * 50_000_000
        h.pub_info.publish(h.camera_info(s))
        d = CompressedImage(format="16UC1; compressedDepth png", data=depth_png)
        d.header.stamp, d.header.frame_id = conv.ns_to_time(s), "cam_optical"
        pub_d.publish(d)
        rgb = np.asarray(conv.image_to_rgb(h.image(s, red_at=10 + 4 * i)))
        c = CompressedImage(format="rgb8; jpeg compressed bgr8",
                            data=cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))[1].tobytes())
        c.header.stamp, c.header.frame_id = conv.ns_to_time(s), "cam_optical"
        pub_c.publish(c)
        h.spin(0.05)
    assert h.wait(lambda: h.got.get("trajectory_field") and h.got.get("tracks"), 15), h.diag_values()
    f = h.got["trajectory_field"][-1]
    assert f.metric and f.scale == pytest.approx(1.5, rel=1e-3)          # the analytic scene at Z=2, depth 3 m
    assert (f.height, f.width) == (IN_H, IN_W)
    # a PNG header declaring 100000 x 100000 pixels: dropped (too_large), nothing decoded
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100000, 100000) + bytes(20)
    before = int(h.diag_values().get("dropped.too_large", 0))
    c = CompressedImage(format="png", data=bomb)
    c.header.stamp, c.header.frame_id = conv.ns_to_time(60_000_000_000), "cam_optical"
    pub_c.publish(c)
    assert h.wait_diag(lambda s, v: int(v.get("dropped.too_large", 0)) > before), h.diag_values()
    assert proc.poll() is None and h.lc.get_state() == "active"


def test_sigint_exits_cleanly(env):
    h, proc = env
    proc.send_signal(2)
    assert proc.wait(20) == 0
