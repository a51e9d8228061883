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

"""`trace-anything-ros process`: real video (vtest.avi, first 24 frames) and an MCAP made here -> MCAP + overlays."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trace_anything_ros import cli
from trace_anything_ros.io import bag
from trace_anything_ros.io.video import find_vtest

NODE = "/trajectory_field_node"


def _check_outputs(out, name, windows_min, source_hw, encoding):
    s = json.load(open(out / "summary.json"))
    assert s["windows"] >= windows_min and s["mcap_encoding"] == encoding
    mcap = out / f"{name}.mcap"
    topics = bag.list_topics(str(mcap))
    for t in ("tracks", "dynamic_mask", "dynamic_objects"):
        assert topics[f"{NODE}/{t}"][1] == s["windows"], topics
    assert topics[f"{NODE}/trajectory_field"][1] >= 1
    stamps = {}
    for r in bag.iter_messages(str(mcap)):
        stamps.setdefault(r.topic, []).append(bag.stamp_ns(r.msg.header.stamp))
        if r.topic == f"{NODE}/dynamic_mask":
            assert r.msg.encoding == "16UC1" and (r.msg.height, r.msg.width) == source_hw
        if r.topic == f"{NODE}/tracks":
            tr = r.msg.trajectories
            assert len(tr) > 0 and len(tr[0].positions) == len(r.msg.frame_stamps)
            # pixel-centre convention: the image spans [-0.5, W - 0.5); a finer model grid's first column is at -0.25
            assert all(-0.5 <= t.u < source_hw[1] - 0.5 and -0.5 <= t.v < source_hw[0] - 0.5 for t in tr)
        if r.topic == f"{NODE}/trajectory_field":
            assert r.msg.num_frames == len(r.msg.frame_stamps)
            assert len(bytes(r.msg.control_points)) == (r.msg.num_frames * r.msg.num_control_points * r.msg.height
                                                        * r.msg.width * 3 * (2 if r.msg.encoding == "16FC1" else 4))
    for t in ("tracks", "dynamic_mask", "dynamic_objects"):
        st = stamps[f"{NODE}/{t}"]
        assert all(b > a for a, b in zip(st, st[1:])), (t, st)
    # overlays: one video frame per window, PNGs that are real images
    import cv2
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == s["windows"]
    assert s["overlay_pngs"]
    for p in s["overlay_pngs"]:
        im = cv2.imread(p)
        assert im is not None and im.shape[1] >= 640 and im.std() > 10
    return s


def test_process_vtest_finds_the_walking_people(tmp_path):
    """Real video with DEFAULT settings (window 4, stride 1: 0.3 s windows; people 15 m away move ~1 model pixel per
    0.1 s): RGB only, so the input regime is rgb_static (model.regimes: the geometric flow field, not the depth-aware
    network). Scored against OpenCV's MOG2 background subtraction (eval/video_reference.py) on the first 90 frames:
    measured precision 0.88 / blob recall 0.91 (the network before the regimes: 0.97 / 0.60 only with --stride 3,
    0.23 recall at the default stride)."""
    path = find_vtest()
    if path is None:
        pytest.skip("vtest.avi not found (make bootstrap extracts opencv-doc; or set TRACE_ANYTHING_VTEST)")
    out = tmp_path / "vt"
    rc = cli.main(["process", path, "--max-frames", "90", "--out", str(out), "--no-progress"])
    assert rc == 0
    s = _check_outputs(out, "vtest", 80, (576, 768), "cdr")
    assert s["frames"] == 90 and s["frames_per_s"] > 0 and "compact_sim" in s["model"]
    assert s["regimes"] == {"rgb_static": s["windows"]}, s["regimes"]
    # the overlay is the real frame with drawings on top (not a blank canvas): mostly equal to the input frame
    import cv2
    from trace_anything_ros.io.video import read_video
    frame = list(read_video(path, max_frames=4))[-1].rgb  # window 0 = frames 0..3
    png = cv2.imread(s["overlay_pngs"][0])[:, :, ::-1]
    assert png.shape == frame.shape
    same = (np.abs(png.astype(int) - frame).sum(-1) < 40).mean()
    assert 0.2 < same < 0.999
    from trace_anything_ros.eval.video_reference import agreement
    a = agreement(str(out), path)
    assert a["windows"] >= 60 and a["windows_with_mask"] >= 0.9 * a["windows"], a
    assert a["precision"] >= 0.8 and a["recall"] >= 0.85, a


def test_process_tree_segments_a_hand_close_to_the_lens(tmp_path, opencv_data_dir):
    """Real video, DEFAULT settings: opencv-doc's tree.avi (static camera on a tree in the wind; from frame ~53 a
    hand sweeps in close to the lens, against the light). The issue's acceptance for large close movers, against
    OpenCV MOG2, in the windows where the reference covers >= 5 % of the frame: per-pixel recall >= 0.6 and
    precision >= 0.8 against OpenCV's MOG2 with its defaults (measured 0.790 / 0.926 over 14 windows). Against
    ``eval-video``'s own MOG2 (history 50, its 2 s warm-up unscored) recall 0.869, precision 0.725: since session 12
    (the brightness gain ``flow_field._gain``, large movers persisting ``_live_movers``) the hand is segmented whole
    where it covers the leaves, and that MOG2, whose per-pixel models the leaves in the wind have widened, loses the
    hand there (before: 0.745 / 0.803 against it, 0.624 / 0.947 against the default MOG2). MOG2 is a reference, not
    the truth; the semi-real clips' tests score against true masks. The leaves moving in the wind before the hand
    give empty masks."""
    path = opencv_data_dir / "tree.avi"
    if not path.is_file():
        pytest.skip(f"{path} not found (opencv-doc sample data, extracted by make bootstrap)")
    out = tmp_path / "tree"
    assert cli.main(["process", str(path), "--out", str(out), "--no-progress"]) == 0
    s = json.load(open(out / "summary.json"))
    assert s["regimes"] == {"rgb_static": s["windows"]}, s["regimes"]
    from trace_anything_ros.eval.video_reference import agreement
    a = agreement(str(out), str(path), per_window=True)
    rows = a.pop("per_window")
    assert a["large_mover_windows"] >= 10, a
    assert a["pixel_recall"] >= 0.75 and a["pixel_precision"] >= 0.7, a
    d = agreement(str(out), str(path), reference="mog2-default")
    assert d["large_mover_windows"] >= 10, d
    assert d["pixel_recall"] >= 0.6 and d["pixel_precision"] >= 0.8, d
    quiet = [r for r in rows if r["frame"] < 50]      # the tree alone (the hand's first pixels: frame 53)
    assert len(quiet) >= 15 and all(r["ours_cover"] == 0 for r in quiet), quiet


def test_process_sees_all_of_a_wide_camera(tmp_path, opencv_data_dir):
    """A 16:9 video: the default 4:3 grid's crop would drop the image's right quarter (no mask could ever reach
    it). ``process`` runs the geometric estimator (a video has no depth), which works on any grid, so its grid
    follows the source's aspect (``preprocess.aspect_grid``: 80x144). A hand sweeping through the right quarter is
    segmented there (scored against the clip's true masks)."""
    from trace_anything_ros.eval.clips import make_clip
    from trace_anything_ros.model.preprocess import crop_fraction

    if not (opencv_data_dir / "messi5.jpg").is_file():
        pytest.skip(f"opencv-doc sample photographs not found in {opencv_data_dir} (make bootstrap extracts them)")
    clip = make_clip("sweep", 12, (180, 320), 60, fps=15.0, split="holdout", root=str(opencv_data_dir))
    path, _ = clip.write(str(tmp_path), "wide")
    assert crop_fraction((180, 320), (96, 128)) > 0.2   # what the 4:3 grid would lose
    out = tmp_path / "wide_out"
    assert cli.main(["process", path, "--out", str(out), "--no-progress", "--json"]) == 0
    s = json.load(open(out / "summary.json"))
    assert s["input_size"] == [80, 144], s["input_size"]
    stamps = 1_000_000_000 + np.arange(len(clip.frames), dtype=np.int64) * int(round(1e9 / clip.fps))
    idx = {int(t): i for i, t in enumerate(stamps)}
    masks = {bag.stamp_ns(r.msg.header.stamp): bag.image_array(r.msg)
             for r in bag.iter_messages(str(out / "wide.mcap"), [f"{NODE}/dynamic_mask"])}
    right = slice(240, 320)
    hits, scored = 0.0, 0
    for t, m in masks.items():
        g = clip.masks[idx[int(t)]][:, right]
        if g.mean() >= 0.05:
            scored += 1
            hits += float(((np.asarray(m)[:, right] > 0) & g).sum()) / float(g.sum())
    assert scored >= 3, scored
    assert hits / scored >= 0.5, (hits / scored, scored)
    # the same clip turned to portrait (a phone held upright): the grid of its landscape turn (the official rule
    # turns the frames; the depth-aware network, built with the estimator, runs on landscape grids only), masks back
    # in the portrait image, on the hand
    from trace_anything_ros.eval.clips import Clip
    tall = Clip(np.ascontiguousarray(np.rot90(clip.frames, k=1, axes=(1, 2))),
                np.ascontiguousarray(np.rot90(clip.masks, k=1, axes=(1, 2))), clip.fps, clip.kind, clip.scene,
                clip.texture)
    path, _ = tall.write(str(tmp_path), "tall")
    out = tmp_path / "tall_out"
    assert cli.main(["process", path, "--out", str(out), "--no-progress", "--json"]) == 0
    s = json.load(open(out / "summary.json"))
    assert s["input_size"] == [80, 144], s["input_size"]
    masks = {bag.stamp_ns(r.msg.header.stamp): bag.image_array(r.msg)
             for r in bag.iter_messages(str(out / "tall.mcap"), [f"{NODE}/dynamic_mask"])}
    hits, scored = 0.0, 0
    for t, m in masks.items():
        g = tall.masks[idx[int(t)]]
        assert np.asarray(m).shape == g.shape == (320, 180)
        if g.mean() >= 0.05:
            scored += 1
            hits += float(((np.asarray(m) > 0) & g).sum()) / float(g.sum())
    assert scored >= 3 and hits / scored >= 0.5, (hits / scored, scored)


def test_process_forced_regime_names_the_missing_input(tmp_path):
    """A video has no depth: forcing an RGB-D regime is an error that names depth, not a silent stand-in."""
    from trace_anything_ros.model.regimes import MissingInputError
    src = str(tmp_path / "cam.mcap")
    _make_mcap(src, n=6)   # an image topic (process reads images only): no depth in its windows
    with pytest.raises(MissingInputError, match="depth"):
        cli.main(["process", src, "--regime", "rgbd", "--window", "4", "--out", str(tmp_path / "o"),
                  "--no-progress", "--json"])


def _make_mcap(path, n=12, h=48, w=64, k=(50.0, 0, 32, 0, 50.0, 24, 0, 0, 1), compressed="", d=(0.0,) * 5):
    """A small MCAP of a camera (rgb8 image + camera_info + a depth topic that must not be picked), written
    ROS-free with mcap_ros2's writer and our ros2msg schemas. ``compressed`` ('jpeg' | 'png'): the colour images
    only as image_transport's ``/cam/image_raw/compressed`` (sensor_msgs/CompressedImage), as robots record them."""
    import cv2
    from mcap_ros2.writer import Writer

    from trace_anything_ros.io.msgdefs import schema_text

    with open(path, "wb") as f:
        wr = Writer(f)
        s_img = wr.register_msgdef("sensor_msgs/msg/Image", schema_text("sensor_msgs/msg/Image"))
        s_info = wr.register_msgdef("sensor_msgs/msg/CameraInfo", schema_text("sensor_msgs/msg/CameraInfo"))
        s_comp = wr.register_msgdef("sensor_msgs/msg/CompressedImage",
                                    schema_text("sensor_msgs/msg/CompressedImage"))
        for i in range(n):
            t = 5_000_000_000 + i * 100_000_000
            stamp = {"sec": t // 10**9, "nanosec": t % 10**9}
            img = np.full((h, w, 3), 40, np.uint8)
            img[10:22, 4 + 3 * i: 16 + 3 * i] = (250, 60, 20)   # a square moving right
            hdr = {"stamp": stamp, "frame_id": "cam_optical"}
            if compressed:
                ok, buf = cv2.imencode("." + compressed, np.ascontiguousarray(img[:, :, ::-1]))
                wr.write_message("/cam/image_raw/compressed", s_comp, {
                    "header": hdr, "format": f"rgb8; {compressed} compressed bgr8", "data": buf.tobytes()},
                    log_time=t, publish_time=t)
            else:
                wr.write_message("/cam/image_raw", s_img, {"header": hdr, "height": h, "width": w,
                                                           "encoding": "rgb8", "is_bigendian": 0, "step": w * 3,
                                                           "data": img.tobytes()}, log_time=t, publish_time=t)
            wr.write_message("/cam/depth/image_raw", s_img, {
                "header": hdr, "height": h, "width": w, "encoding": "32FC1", "is_bigendian": 0, "step": w * 4,
                "data": np.full((h, w), 1.5, np.float32).tobytes()}, log_time=t, publish_time=t)
            wr.write_message("/cam/camera_info", s_info, {
                "header": hdr, "height": h, "width": w, "distortion_model": "plumb_bob", "d": list(d),
                "k": list(k), "r": [1.0, 0, 0, 0, 1, 0, 0, 0, 1],
                "p": [50.0, 0, 32, 0, 0, 50.0, 24, 0, 0, 0, 1, 0]}, log_time=t, publish_time=t)
        wr.finish()


@pytest.mark.ros
def test_process_intrinsics_follow_the_crop_for_a_non_multiple_of_16_aspect(tmp_path):
    """A 48x100 camera (aspect 2.08, not the model's) needs a crop after the resize: the field's K must be
    ``pipeline.frame_intrinsics`` (resize factor + crop shift, like the image), not a plain rescale."""
    from trace_anything_ros.model.preprocess import pixel_transform, scale_intrinsics
    from trace_anything_ros.pipeline import frame_intrinsics

    h, w = 48, 100
    k = np.array([[60.0, 0, 49.5], [0, 60.0, 23.5], [0, 0, 1]])
    src = str(tmp_path / "wide.mcap")
    _make_mcap(src, n=8, h=h, w=w, k=k.ravel().tolist())
    out = tmp_path / "wide"
    assert cli.main(["process", src, "--window", "4", "--hop", "4", "--field-every", "1", "--out", str(out),
                     "--no-progress"]) == 0
    fields = [r.msg for r in bag.iter_messages(str(out / "wide.mcap"), [f"{NODE}/trajectory_field"])]
    assert fields
    m = fields[0]
    input_hw = (m.height, m.width)
    got = np.asarray(m.k, np.float64).reshape(3, 3)
    want = frame_intrinsics(k, (h, w), input_hw)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # the crop matters here: a plain rescale to the grid gives another K
    assert not np.allclose(scale_intrinsics(k, (h, w), input_hw), want, atol=1e-3)
    # and the K is consistent with the image geometry: a 3D point projects where its source pixel lands
    X = np.array([0.3, -0.1, 2.0])
    uv_src = (k @ X)[:2] / X[2]
    uv_grid = (pixel_transform((h, w), input_hw) @ np.r_[uv_src, 1.0])[:2]
    np.testing.assert_allclose((got @ X)[:2] / X[2], uv_grid, atol=1e-6)


@pytest.mark.ros
def test_process_mcap_input_cdr_and_json(tmp_path):
    src = str(tmp_path / "cam.mcap")
    _make_mcap(src)
    assert bag.pick_image_topic(src) == "/cam/image_raw"
    frames = list(bag.read_images(src))
    assert len(frames) == 12 and frames[0].K is not None and frames[0].frame_id == "cam_optical"
    out = tmp_path / "cdr"
    rc = cli.main(["process", src, "--window", "4", "--hop", "4", "--field-every", "1", "--out", str(out),
                   "--no-progress", "--record-images"])
    assert rc == 0
    _check_outputs(out, "cam", 3, (48, 64), "cdr")
    # stamps of the outputs are the input stamps of each window's newest frame
    tr = list(bag.iter_messages(str(out / "cam.mcap"), [f"{NODE}/tracks"]))
    assert [bag.stamp_ns(r.msg.header.stamp) for r in tr] == [5_000_000_000 + i * 100_000_000 for i in (3, 7, 11)]
    assert tr[0].msg.header.frame_id == "cam_optical"
    assert bag.list_topics(str(out / "cam.mcap"))["/camera/image_raw"][1] == 12

    out_j = tmp_path / "json"
    rc = cli.main(["process", src, "--topic", "/cam/image_raw", "--window", "4", "--hop", "4", "--out",
                   str(out_j), "--no-progress", "--json"])
    assert rc == 0
    _check_outputs(out_j, "cam", 3, (48, 64), "json")


def test_bag_camera_info_is_judged_as_the_node_judges_it(tmp_path, capsys):
    """``process`` on a bag takes a camera_info's K by the perception node's rule (``gates.intrinsics_problem``: an
    implausible one is not used) and says once that a raw (distorted) camera's is used with K alone."""
    src = str(tmp_path / "raw.mcap")
    _make_mcap(src, n=5, d=(-0.3, 0.1, 0.0, 0.0, 0.0))
    frames = list(bag.read_images(src))
    assert frames[0].K is not None
    err = capsys.readouterr().err
    assert err.count("distortion moves pixels") == 1 and "image_rect" in err, err
    _make_mcap(src, n=5)
    list(bag.read_images(src))
    assert "distortion" not in capsys.readouterr().err
    _make_mcap(src, n=5, k=(1.0, 0, 32, 0, 1.0, 24, 0, 0, 1))     # a 176-degree field of view: not a camera
    assert all(f.K is None for f in bag.read_images(src))


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_process_reads_a_bag_of_compressed_images(tmp_path, fmt):
    """A robot's bag often holds only image_transport's ``<image>/compressed`` (JPEG / PNG CompressedImage): process
    picks it, decodes it to RGB, finds the camera_info of the image's namespace and runs."""
    src = str(tmp_path / "comp.mcap")
    _make_mcap(src, compressed=fmt)
    assert bag.pick_image_topic(src) == "/cam/image_raw/compressed"
    frames = list(bag.read_images(src))
    assert len(frames) == 12 and frames[0].K is not None and frames[0].frame_id == "cam_optical"
    want = np.full((48, 64, 3), 40, np.uint8)
    want[10:22, 4 + 3 * 5: 16 + 3 * 5] = (250, 60, 20)
    err = np.abs(frames[5].rgb.astype(int) - want).mean()
    assert err == 0 if fmt == "png" else err < 3, err          # RGB, not the codec's BGR
    out = tmp_path / "o"
    assert cli.main(["process", src, "--window", "4", "--hop", "4", "--out", str(out), "--no-progress",
                     "--json"]) == 0
    _check_outputs(out, "comp", 3, (48, 64), "json")


def test_process_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["process", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "o"), "--no-progress"])
    src = str(tmp_path / "cam.mcap")
    _make_mcap(src, n=3)
    with pytest.raises(ValueError, match="no topic"):
        cli.main(["process", src, "--topic", "/nope", "--out", str(tmp_path / "o"), "--no-progress"])
    # fewer frames than a window: exit code 1 with a message, not a crash
    assert cli.main(["process", src, "--window", "4", "--out", str(tmp_path / "o2"), "--no-progress",
                     "--json"]) == 1


def _cdr_images(n=6, h=24, w=32):
    from mcap_ros2._dynamic import serialize_dynamic

    from trace_anything_ros.io.msgdefs import schema_text

    enc = serialize_dynamic("sensor_msgs/msg/Image", schema_text("sensor_msgs/msg/Image"))["sensor_msgs/msg/Image"]
    out = []
    for i in range(n):
        t = 2_000_000_000 + i * 50_000_000
        img = np.zeros((h, w, 3), np.uint8)
        img[:, i] = (1, 2, 3 + i)
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        out.append((t, img, enc({"header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "c"},
                                 "height": h, "width": w, "encoding": "bgr8", "is_bigendian": 0, "step": w * 3,
                                 "data": bgr.tobytes()})))
    return out


def test_rosbag2_directories_sqlite3_and_mcap(tmp_path):
    """rosbag2 bags as `ros2 bag record` writes them: metadata.yaml + a .db3 (sqlite3 storage) or a .mcap."""
    import sqlite3

    import yaml

    msgs = _cdr_images()
    # sqlite3 storage (schema of rosbag2's sqlite3 plugin)
    d = tmp_path / "bag_sqlite"
    d.mkdir()
    con = sqlite3.connect(d / "bag_sqlite_0.db3")
    con.executescript("CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
                      "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
                      "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
                      "timestamp INTEGER NOT NULL, data BLOB NOT NULL);")
    con.execute("INSERT INTO topics VALUES (1, '/cam/image', 'sensor_msgs/msg/Image', 'cdr', '')")
    for i, (t, _, data) in enumerate(msgs):
        con.execute("INSERT INTO messages VALUES (?, 1, ?, ?)", (i + 1, t, data))
    con.commit()
    con.close()
    meta = {"rosbag2_bagfile_information": {"version": 5, "storage_identifier": "sqlite3",
                                            "relative_file_paths": ["bag_sqlite_0.db3"]}}
    (d / "metadata.yaml").write_text(yaml.safe_dump(meta))
    # mcap storage
    from mcap.writer import Writer

    from trace_anything_ros.io.msgdefs import schema_text
    d2 = tmp_path / "bag_mcap"
    d2.mkdir()
    with open(d2 / "bag_mcap_0.mcap", "wb") as f:
        w = Writer(f)
        w.start("ros2", "test")
        sid = w.register_schema("sensor_msgs/msg/Image", "ros2msg", schema_text("sensor_msgs/msg/Image").encode())
        cid = w.register_channel("/cam/image", "cdr", sid)
        for t, _, data in msgs:
            w.add_message(cid, log_time=t, data=data, publish_time=t)
        w.finish()
    meta["rosbag2_bagfile_information"].update(storage_identifier="mcap", relative_file_paths=["bag_mcap_0.mcap"])
    (d2 / "metadata.yaml").write_text(yaml.safe_dump(meta))
    for bagdir in (d, d2):
        assert bag.is_rosbag2_dir(str(bagdir))
        assert bag.list_topics(str(bagdir)) == {"/cam/image": ("sensor_msgs/msg/Image", len(msgs))}
        frames = list(bag.read_images(str(bagdir), max_frames=5))
        assert [f.stamp_ns for f in frames] == [t for t, _, _ in msgs[:5]]
        for f, (_, img, _) in zip(frames, msgs):
            assert np.array_equal(f.rgb, img)  # bgr8 converted to RGB
