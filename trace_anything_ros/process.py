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

"""``trace-anything-ros process INPUT``: the perception pipeline offline on a video, a rosbag2 directory or an MCAP.

Same code path as trajectory_field_node: frames are preprocessed on arrival (``pipeline.preprocess_rgb``), pushed
into a ``FrameIngest`` with the same ``WindowSpec`` (``--window``, ``--stride`` = the node's ``window.stride``),
and each complete window (every ``--hop`` frames) goes through ``PerceptionPipeline.process`` with the estimator
from ``create_estimator`` (``--weights``; default: the node's default model).

Outputs in ``--out`` (default ``out/process/<input name>``):
  * ``<name>.mcap``: the node's output topics (``/trajectory_field_node/{tracks,dynamic_mask,dynamic_objects,
    trajectory_field}``) as CDR with ros2msg schemas, the bytes the node publishes for the same products
    (``ros.messages``) when rclpy + our interfaces import; otherwise JSON-encoded channels (same topic
    names, the message fields as JSON; blobs base64). The dynamic mask is 16UC1 object ids at source resolution;
    the dense field is written every ``--field-every`` windows (float16; 0: never) because it is large.
  * ``overlay.mp4`` (one frame per window: tracks, forecasts, masks by object id) and ``overlay_*.png``.
  * ``summary.json`` (frames, windows, fps, model time, objects, encoding).
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import sys
import time
from collections import deque

import numpy as np

from trace_anything_ros.model.preprocess import aspect_grid
from trace_anything_ros.ros.graph import TOPICS as GRAPH_TOPICS  # rclpy-free: the one home of topic names

# the node's output topics (as the graph names them) and the camera image
TOPICS = {k: GRAPH_TOPICS[k] for k in ("tracks", "mask", "objects", "field", "image")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file (anything OpenCV reads), MCAP file or rosbag2 directory")
    parser.add_argument("--topic", default="", help="image topic of an MCAP / rosbag2 (default: the first "
                        "sensor_msgs/Image topic that is not depth / mask)")
    parser.add_argument("--out", default="", help="output directory (default out/process/<input name>)")
    parser.add_argument("--max-frames", type=int, default=0, help="read at most this many frames (0: all)")
    parser.add_argument("--window", type=int, default=4, help="frames per window (node: window.length, default 4)")
    parser.add_argument("--stride", type=int, default=1, help="take every stride-th frame into a window "
                        "(node: window.stride)")
    parser.add_argument("--hop", type=int, default=1, help="run a window every HOP frames (1: every frame, "
                        "as a node with enough compute would)")
    parser.add_argument("--weights", default="embedded", help="checkpoint (official trace_anything.pt or ours); "
                        "default 'embedded': the node's default model (the shipped compact model); '' = random "
                        "weights of --preset (plumbing only)")
    parser.add_argument("--preset", default="compact", help="architecture preset when --weights is ''")
    parser.add_argument("--regime", default="auto", help="input regime (model.regimes): auto (default: chosen per "
                        "window from the inputs: RGB network weights -> official; depth -> rgbd[_poses]; else "
                        "rgb_static / rgb_moving), or force one of official, rgbd_poses, rgbd, rgb_static, "
                        "rgb_moving; a forced regime whose inputs are missing is an error naming them")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", type=float, default=0.0, help="video frame rate for stamps (default: the file's)")
    parser.add_argument("--field-every", type=int, default=10, help="write the dense field every N windows "
                        "(0: never)")
    parser.add_argument("--record-images", action="store_true", help="also write the input frames to the MCAP")
    parser.add_argument("--pngs", type=int, default=6, help="overlay PNGs to save (evenly spaced)")
    parser.add_argument("--json", action="store_true", help="write JSON channels even when rclpy is available")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def _frames(args):
    """(iterator of (stamp_ns, rgb, frame_id, K), total or 0, fps, kind)."""
    from trace_anything_ros.io import bag, video

    path = args.input
    if os.path.isdir(path) or path.endswith(".mcap") or path.endswith(".db3"):
        if path.endswith(".db3"):
            path = os.path.dirname(path)
        topic = bag.pick_image_topic(path, args.topic)
        total = bag.list_topics(path)[topic][1]
        if args.max_frames:
            total = min(total, args.max_frames)
        it = ((f.stamp_ns, f.rgb, f.frame_id, f.K) for f in bag.read_images(path, topic, args.max_frames))
        return it, total, 0.0, f"{'rosbag2' if os.path.isdir(path) else 'mcap'} topic {topic}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input {path!r} does not exist")
    info = video.video_info(path)
    total = info["frames"] if not args.max_frames else min(args.max_frames, info["frames"] or args.max_frames)
    fps = args.fps or info["fps"] or 30.0
    it = ((f.stamp_ns, f.rgb, "camera", None) for f in video.read_video(path, args.max_frames, fps))
    return it, total, fps, f"video {info['width']}x{info['height']} @ {fps:.1f} fps"


# the node's outputs as ``process`` records them: instance labels at source resolution, float16 field
OUTPUT_OPTIONS = {"float16": True, "mask_labels": True, "mask_source": True}


class _Writer:
    """The MCAP output: the node's serialized messages (``ros.messages``) when rclpy is available, else JSON
    channels."""

    def __init__(self, path: str, use_json: bool):
        from trace_anything_ros.io.mcap_out import McapOut

        self.mode = "json"
        self.reason = "requested with --json" if use_json else ""
        self._msgs = None
        if not use_json:
            try:
                import rclpy.serialization  # noqa: F401
                import trace_anything_ros.msg  # noqa: F401 - the generated interfaces
                from trace_anything_ros.ros import messages
                self._msgs = messages
                self._opts = messages.OutputOptions(**OUTPUT_OPTIONS)
                self.mode = "cdr"
            except Exception as e:  # noqa: BLE001 - no ROS: JSON channels
                self.reason = f"rclpy / interfaces not importable ({type(e).__name__}: {e})"
        self.out = McapOut(path)

    def _put(self, topic: str, type_name: str, data: bytes, t: int):
        if not self.out.has(topic):
            self.out.add_ros2(topic, type_name)
        self.out.write(topic, data, log_time=t, publish_time=t)

    def write_products(self, pr, with_field: bool):
        t = int(pr.stamps_ns[-1])
        if self.mode == "cdr":
            keys = ("mask", "objects", "tracks") + (("field",) if with_field else ())
            for key, data in self._msgs.serialized_products(pr, self._opts, keys).items():
                self._put(TOPICS[key], self._msgs.type_name(key), data, t)
            return
        for key, obj in _json_products(pr, with_field).items():
            topic = TOPICS[key]
            if not self.out.has(topic):
                self.out.add_json(topic, {"tracks": "trace_anything_ros/msg/TrajectoryArray",
                                          "mask": "sensor_msgs/msg/Image",
                                          "objects": "trace_anything_ros/msg/DynamicObjectArray",
                                          "field": "trace_anything_ros/msg/TrajectoryField"}[key])
            self.out.write_json(topic, obj, log_time=t, publish_time=t)

    def write_image(self, rgb, stamp_ns: int, frame_id: str):
        topic = TOPICS["image"]
        if self.mode == "cdr":
            data = self._msgs.serialize(self._msgs.image_message(rgb, stamp_ns, frame_id))
            self._put(topic, "sensor_msgs/msg/Image", data, stamp_ns)
        else:
            if not self.out.has(topic):
                self.out.add_json(topic, "sensor_msgs/msg/Image")
            self.out.write_json(topic, _json_image(rgb, "rgb8", stamp_ns, frame_id), stamp_ns, stamp_ns)

    def close(self):
        self.out.close()


def _t(ns: int) -> dict:
    return {"sec": int(ns) // 1_000_000_000, "nanosec": int(ns) % 1_000_000_000}


def _p(a) -> list:
    return [{"x": float(p[0]), "y": float(p[1]), "z": float(p[2])} for p in np.asarray(a, np.float64).reshape(-1, 3)]


def _json_image(a, encoding, stamp_ns, frame_id):
    a = np.ascontiguousarray(a)
    return {"header": {"stamp": _t(stamp_ns), "frame_id": frame_id}, "height": a.shape[0], "width": a.shape[1],
            "encoding": encoding, "is_bigendian": 0, "step": int(a.strides[0]),
            "data": base64.b64encode(a.tobytes()).decode()}


def _json_products(pr, with_field: bool) -> dict:
    """The node's messages as JSON-able dicts (field names as in msg/*.msg; byte blobs base64)."""
    from trace_anything_ros.model.preprocess import grid_to_source

    header = {"stamp": _t(pr.stamps_ns[-1]), "frame_id": pr.frame_ids[0]}
    out = {}
    fst = [_t(s) for s in pr.forecast_stamps_ns]
    if pr.tracks is not None:
        tr = pr.tracks
        out["tracks"] = {"header": header, "metric": bool(pr.field.metric),
                         "frame_stamps": [_t(s) for s in pr.stamps_ns], "trajectories": [
            {"id": int(tr.ids[i]), "source_frame": int(tr.source_frame), "u": float(tr.uv[i, 0]),
             "v": float(tr.uv[i, 1]), "object_id": int(tr.object_id[i]), "dynamic": bool(tr.dynamic[i]),
             "confidence": float(tr.confidence[i]), "control_points": _p(tr.ctrl[i]),
             "control_confidences": tr.ctrl_conf[i].tolist(), "positions": _p(tr.positions[i]),
             "position_stamps": [_t(s) for s in pr.stamps_ns], "forecast": _p(tr.forecast[i]),
             "forecast_stamps": fst[: tr.forecast.shape[1]], "forecast_confidences": tr.forecast_conf[i].tolist()}
            for i in range(len(tr))]}
    if pr.mask is not None:
        lab = grid_to_source(pr.labels, pr.source_size)  # as ros.messages.mask_array (inverse preprocessing)
        out["mask"] = _json_image(lab.astype(np.uint16), "16UC1", pr.stamps_ns[-1], pr.frame_ids[-1])
        out["objects"] = {"header": header, "metric": bool(pr.field.metric), "objects": [
            {"id": int(o.id), "pixel_count": int(o.pixel_count), "confidence": float(o.confidence),
             "roi": {"x_offset": max(0, int(o.roi[0])), "y_offset": max(0, int(o.roi[1])), "width": int(o.roi[2]),
                     "height": int(o.roi[3]), "do_rectify": False},
             "centroid": _p(o.centroid)[0],
             "velocity": dict(zip("xyz", (float(v) for v in o.velocity))),
             "trajectory": _p(o.trajectory), "trajectory_stamps": [_t(s) for s in pr.stamps_ns],
             "forecast": _p(o.forecast), "forecast_stamps": [_t(s) for s in o.forecast_stamps_ns],
             "forecast_confidences": np.asarray(o.forecast_conf, np.float32).tolist()} for o in pr.objects]}
    if with_field:
        f = pr.field
        k = np.zeros(9) if f.intrinsics is None else np.asarray(f.intrinsics, np.float64).reshape(9)
        out["field"] = {"header": header, "frame_stamps": [_t(s) for s in pr.stamps_ns],
                        "frame_times": np.asarray(f.frame_times, np.float32).tolist(), "num_frames": f.num_frames,
                        "num_control_points": f.num_ctrl, "height": f.height, "width": f.width, "k": k.tolist(),
                        "metric": bool(f.metric), "scale": float(pr.scale), "encoding": "16FC1", "is_bigendian": 0,
                        "control_points": base64.b64encode(np.asarray(f.ctrl_pts, np.float16).tobytes()).decode(),
                        "confidences": base64.b64encode(np.asarray(f.ctrl_conf, np.float16).tobytes()).decode()}
    return out


def make_estimator(weights: str = "embedded", preset: str = "compact", device: str = "cpu", window: int = 4,
                   regime: str = "auto"):
    from trace_anything_ros.pipeline import load_estimator

    params = {"device": device, "window": window, "preset": preset, "regime": regime}
    if weights:
        params["weights"] = weights
    return load_estimator("", params)


def _count_window(stats: dict, pr) -> int:
    """Add one window's products to the run statistics; returns the window's index."""
    wi = stats["windows"]
    stats["windows"] += 1
    stats["model_s"].append(pr.timings["model"])
    stats["total_s"].append(pr.timings["total"])
    stats["objects"].update(int(o.id) for o in pr.objects)
    if pr.regime:
        stats.setdefault("regimes", {})
        stats["regimes"][pr.regime] = stats["regimes"].get(pr.regime, 0) + 1
    for wmsg in pr.estimator_warnings:
        stats.setdefault("warnings", {})
        stats["warnings"][wmsg] = stats["warnings"].get(wmsg, 0) + 1
    return wi


def _summary(args, kind: str, est, input_size, spec, stats: dict, wall_s: float, loop_s: float, writer,
             video) -> dict:
    """summary.json of a run."""
    return {
        "input": args.input, "kind": kind, "model": getattr(est, "description", type(est).__name__),
        "input_size": list(input_size), "window": spec.length, "stride": spec.stride, "hop": args.hop,
        "frames": stats["frames"], "windows": stats["windows"], "dropped_frames": stats["dropped"],
        "wall_s": round(wall_s, 3), "loop_s": round(loop_s, 3),
        "frames_per_s": round(stats["frames"] / loop_s, 3) if loop_s > 0 else 0.0,
        "windows_per_s": round(stats["windows"] / loop_s, 3) if loop_s > 0 else 0.0,
        "model_time_mean_s": round(float(np.mean(stats["model_s"])), 4) if stats["model_s"] else None,
        "window_time_mean_s": round(float(np.mean(stats["total_s"])), 4) if stats["total_s"] else None,
        "objects_seen": sorted(stats["objects"]), "regimes": stats.get("regimes", {}),
        "estimator_warnings": stats.get("warnings", {}), "mcap": writer.out.path, "mcap_encoding": writer.mode,
        "mcap_encoding_reason": writer.reason, "mcap_messages": dict(writer.out.counts),
        "overlay_video": video.path if video.frames else None, "overlay_pngs": stats["pngs"]}


def main(args) -> int:
    from trace_anything_ros.eval import overlay as ov
    from trace_anything_ros.pipeline import (Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec,
                                             frame_intrinsics, preprocess_rgb)

    name = os.path.splitext(os.path.basename(os.path.normpath(args.input)))[0] or "input"
    out_dir = args.out or os.path.join("out", "process", name)
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.perf_counter()
    frames, total, fps, kind = _frames(args)
    est = make_estimator(args.weights, args.preset, args.device, args.window, getattr(args, "regime", "auto"))
    if getattr(est, "any_grid_without_depth", lambda: False)():
        # `process` gives the estimator no depth, so with the embedded weights the geometric flow field runs (the
        # depth-aware network never does): its grid follows the source's aspect, and a 16:9 camera is seen whole
        # instead of losing its right quarter to the 4:3 grid's crop (preprocess.aspect_grid; the node does the same)
        first = next(frames, None)
        if first is not None:
            frames = itertools.chain([first], frames)
            est.set_input_size(aspect_grid(np.asarray(first[1]).shape[:2], est.input_size))
    input_size = tuple(int(x) for x in est.input_size)
    spec = WindowSpec(length=args.window, stride=args.stride)
    ingest = FrameIngest(spec.ring_capacity(), window=spec)
    pipeline = PerceptionPipeline(est, PipelineParams())
    writer = _Writer(os.path.join(out_dir, f"{name}.mcap"), args.json)
    print(f"[process] {args.input}: {kind}; model {getattr(est, 'description', type(est).__name__)}, input "
          f"{input_size[1]}x{input_size[0]}, window {spec.length} (stride {spec.stride}), hop {args.hop}; MCAP "
          f"encoding {writer.mode}{' (' + writer.reason + ')' if writer.reason else ''}", file=sys.stderr, flush=True)
    expected_windows = max(1, (max(total, 0) - ((spec.length - 1) * spec.stride)) // max(args.hop, 1) + 1) if total \
        else 0
    png_every = max(1, expected_windows // max(args.pngs, 1)) if expected_windows else 10
    video = ov.VideoOut(os.path.join(out_dir, "overlay.mp4"), (fps or 10.0) / max(args.hop, 1))
    sources = deque(maxlen=ingest.capacity + 1)
    stats = {"frames": 0, "windows": 0, "model_s": [], "total_s": [], "objects": set(), "dropped": 0, "pngs": []}
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=total or None, unit="frame", desc="process", file=sys.stderr)
        except ImportError:
            bar = None
    t_loop = time.perf_counter()
    since_last = 0
    try:
        for stamp_ns, rgb, frame_id, K in frames:
            stats["frames"] += 1
            if bar is not None:
                bar.update(1)
            # K of the model grid: the one home (resize factor + crop shift, like the image), as in the node
            Ki = frame_intrinsics(K, rgb.shape[:2], input_size) if K is not None else None
            fr = Frame(stamp_ns=int(stamp_ns), rgb=preprocess_rgb(rgb, input_size), frame_id=frame_id or "camera",
                       intrinsics=Ki, source_size=(rgb.shape[0], rgb.shape[1]))
            if ingest.push(fr) is not None:
                stats["dropped"] += 1
                continue
            sources.append((fr.key, rgb, K))
            if args.record_images:
                writer.write_image(rgb, int(stamp_ns), frame_id or "camera")
            since_last += 1
            if since_last < args.hop:
                continue
            win = ingest.take_window(timeout=0.0)
            if win is None:
                continue
            since_last = 0
            pr = pipeline.process(win)
            wi = _count_window(stats, pr)
            writer.write_products(pr, with_field=bool(args.field_every) and wi % args.field_every == 0)
            src = {k: (im, kk) for k, im, kk in sources}
            img, Ks = src.get(win[-1].key, (rgb, K))
            lines = [f"{name}  window {wi}  t={stamp_ns * 1e-9:.2f}s  frames {len(win)}  {pr.regime}",
                     f"model {pr.timings['model'] * 1e3:.0f} ms  objects {len(pr.objects)}  "
                     f"moving px {int(pr.mask.sum()) if pr.mask is not None else 0}"]
            frame_img = ov.render(img, ov.from_products(pr, Ks), lines)
            video.write(frame_img)
            if wi % png_every == 0 and len(stats["pngs"]) < args.pngs:
                p = os.path.join(out_dir, f"overlay_{wi:04d}.png")
                ov.save_png(p, frame_img)
                stats["pngs"].append(p)
                stats["last_png_window"] = wi
            if bar is not None:
                bar.set_postfix(windows=stats["windows"], model_ms=f"{pr.timings['model'] * 1e3:.0f}")
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        video.close()
    loop_s = time.perf_counter() - t_loop
    if stats["windows"] and stats.get("last_png_window") != stats["windows"] - 1:
        p = os.path.join(out_dir, "overlay_last.png")
        ov.save_png(p, frame_img)
        stats["pngs"].append(p)
    summary = _summary(args, kind, est, input_size, spec, stats, time.perf_counter() - t_start, loop_s, writer,
                       video)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"[process] {stats['frames']} frames, {stats['windows']} windows in {loop_s:.1f} s "
          f"({summary['frames_per_s']:.2f} frames/s, model {summary['model_time_mean_s']} s/window); "
          f"wrote {out_dir}/ ({name}.mcap [{writer.mode}], overlay.mp4, {len(stats['pngs'])} PNGs, summary.json)",
          file=sys.stderr, flush=True)
    if stats["windows"] == 0:
        print(f"[process] no complete window: {stats['frames']} frames < window {spec.length} "
              f"(stride {spec.stride})", file=sys.stderr)
        return 1
    return 0
