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

"""Recorded ROS 2 data without ROS: MCAP files and rosbag2 directories (mcap or sqlite3 storage).

CDR messages are decoded with ``mcap_ros2`` from their ``ros2msg`` schema (MCAP) or from the ``.msg``
definitions (sqlite3 bags carry only type names; see ``msgdefs``); JSON channels (``process`` without rclpy)
are decoded to dicts wrapped for attribute access.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
# image_transport's 'compressed' topics (<image>/compressed): JPEG / PNG, decoded by conversions.compressed_to_rgb
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")


@dataclass
class Recorded:
    topic: str
    type: str           # 'pkg/msg/Type'
    log_time: int       # ns
    publish_time: int   # ns
    msg: Any            # decoded: attribute access (mcap_ros2 DecodedMessage or a namespace from JSON)


BLOB_FIELDS = ("data", "control_points", "confidences")  # uint8[] fields: base64 strings in JSON channels


def _ns(obj):
    if isinstance(obj, dict):
        return SimpleNamespace(**{k: (base64.b64decode(v) if k in BLOB_FIELDS and isinstance(v, str) else _ns(v))
                                  for k, v in obj.items()})
    if isinstance(obj, list):
        return [_ns(v) for v in obj]
    return obj


def is_rosbag2_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "metadata.yaml"))


def _bag_files(path: str) -> Tuple[str, List[str]]:
    """(storage, files) of a rosbag2 directory."""
    import yaml

    with open(os.path.join(path, "metadata.yaml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f) or {}
    info = meta.get("rosbag2_bagfile_information", meta)
    storage = str(info.get("storage_identifier", "")).lower()
    files = [os.path.join(path, p) for p in info.get("relative_file_paths", [])]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        files = sorted(glob.glob(os.path.join(path, "*.mcap")) + glob.glob(os.path.join(path, "*.db3")))
    if not storage:
        storage = "mcap" if files and files[0].endswith(".mcap") else "sqlite3"
    return storage, files


def _iter_mcap(path: str, topics: Optional[Iterable[str]]) -> Iterator[Recorded]:
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        reader = make_reader(f)
        want = None if topics is None else list(topics)
        for schema, channel, message in reader.iter_messages(topics=want, log_time_order=True):
            if channel.message_encoding == "json":
                msg = _ns(json.loads(message.data))
            elif channel.message_encoding == "cdr" and schema is not None and schema.encoding == "ros2msg":
                msg = _decode_cdr(schema, message.data)
            else:
                raise ValueError(f"{path}: topic {channel.topic}: cannot decode {channel.message_encoding!r} "
                                 f"with schema encoding {schema.encoding if schema else None!r}")
            yield Recorded(channel.topic, schema.name if schema else "", message.log_time, message.publish_time, msg)


_DYN: Dict[str, Any] = {}


def _decode_cdr(schema, data: bytes):
    from mcap_ros2._dynamic import generate_dynamic

    key = schema.name
    if key not in _DYN:
        _DYN[key] = generate_dynamic(schema.name, schema.data.decode())[schema.name]
    return _DYN[key](data)


def _decoder_for_type(type_name: str):
    from mcap_ros2._dynamic import generate_dynamic

    from .msgdefs import normalize, schema_text

    t = normalize(type_name)
    if t not in _DYN:
        _DYN[t] = generate_dynamic(t, schema_text(t))[t]
    return _DYN[t]


def _iter_sqlite(path: str, topics: Optional[Iterable[str]]) -> Iterator[Recorded]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, name, type, serialization_format FROM topics").fetchall()
        tmap = {r[0]: (r[1], r[2], r[3]) for r in rows}
        want = None if topics is None else set(topics)
        ids = [i for i, (n, _, _) in tmap.items() if want is None or n in want]
        if not ids:
            return
        q = (f"SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN ({','.join('?' * len(ids))}) "
             "ORDER BY timestamp")
        for tid, ts, data in con.execute(q, ids):
            name, typ, fmt = tmap[tid]
            if fmt != "cdr":
                raise ValueError(f"{path}: topic {name} has serialization {fmt!r}, only cdr is supported")
            yield Recorded(name, typ, int(ts), int(ts), _decoder_for_type(typ)(bytes(data)))
    finally:
        con.close()


def list_topics(path: str) -> Dict[str, Tuple[str, int]]:
    """{topic: (type, message count)} of an MCAP file or rosbag2 directory."""
    out: Dict[str, Tuple[str, int]] = {}
    if is_rosbag2_dir(path):
        storage, files = _bag_files(path)
        for f in files:
            if f.endswith(".db3"):
                con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
                try:
                    for name, typ, n in con.execute(
                            "SELECT t.name, t.type, COUNT(m.id) FROM topics t LEFT JOIN messages m "
                            "ON m.topic_id = t.id GROUP BY t.id"):
                        prev = out.get(name, (typ, 0))[1]
                        out[name] = (typ, prev + int(n))
                finally:
                    con.close()
            else:
                for k, (t, n) in list_topics(f).items():
                    out[k] = (t, out.get(k, (t, 0))[1] + n)
        return out
    from mcap.reader import make_reader

    with open(path, "rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        if summary is None:
            raise ValueError(f"{path}: MCAP without a summary (not closed properly?)")
        counts = summary.statistics.channel_message_counts if summary.statistics else {}
        for cid, ch in summary.channels.items():
            sch = summary.schemas.get(ch.schema_id)
            out[ch.topic] = (sch.name if sch else "", int(counts.get(cid, 0)))
    return out


def iter_messages(path: str, topics: Optional[Iterable[str]] = None) -> Iterator[Recorded]:
    """Decoded messages of an MCAP file or a rosbag2 directory, in log-time order per file."""
    if is_rosbag2_dir(path):
        storage, files = _bag_files(path)
        for f in files:
            yield from (_iter_sqlite(f, topics) if f.endswith(".db3") else _iter_mcap(f, topics))
        return
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory without metadata.yaml (not a rosbag2 bag)")
    yield from _iter_mcap(path, topics)


def image_topics(path: str) -> List[str]:
    """Image topics with messages: sensor_msgs/Image first, then CompressedImage (image_transport 'compressed')."""
    topics = list_topics(path).items()
    return (sorted(t for t, (typ, n) in topics if typ in IMAGE_TYPES and n > 0)
            + sorted(t for t, (typ, n) in topics if typ in COMPRESSED_TYPES and n > 0))


def pick_image_topic(path: str, topic: str = "") -> str:
    """The topic to read: ``topic`` when given (checked), else the first colour-like image topic: a raw
    sensor_msgs/Image one when the bag has one, else a compressed one (a robot's bag often records only
    ``.../image_raw/compressed``)."""
    topics = list_topics(path)
    if topic:
        if topic not in topics:
            raise ValueError(f"{path}: no topic {topic!r} (topics: {', '.join(sorted(topics))})")
        if topics[topic][0] not in IMAGE_TYPES + COMPRESSED_TYPES:
            raise ValueError(f"{path}: topic {topic!r} has type {topics[topic][0]}, not sensor_msgs/msg/Image or "
                             "CompressedImage")
        return topic
    cands = image_topics(path)
    if not cands:
        raise ValueError(f"{path}: no sensor_msgs/msg/Image or CompressedImage topic with messages (topics: "
                         f"{', '.join(f'{k} [{v[0]}]' for k, v in sorted(topics.items()))})")
    pref = [t for t in cands if "depth" not in t.lower() and "mask" not in t]
    return (pref or cands)[0]


def stamp_ns(header_stamp) -> int:
    return int(header_stamp.sec) * 1_000_000_000 + int(header_stamp.nanosec)


def image_rgb(msg) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a decoded sensor_msgs/Image (colour or mono encodings) or CompressedImage."""
    from trace_anything_ros.ros.conversions import to_rgb  # ROS-free module (numpy/cv2 only)

    return np.ascontiguousarray(to_rgb(msg))


def image_array(msg) -> np.ndarray:
    from trace_anything_ros.ros.conversions import image_to_array

    return np.array(image_to_array(msg))


@dataclass
class ImageFrame:
    index: int
    stamp_ns: int
    rgb: np.ndarray
    frame_id: str = ""
    K: Optional[np.ndarray] = None   # 3x3 of the source image, from a camera_info beside the image topic


def read_images(path: str, topic: str = "", max_frames: int = 0) -> Iterator[ImageFrame]:
    """Image frames of one topic of an MCAP / rosbag2 (stamps from the headers; log time when the stamp is 0).
    Intrinsics from ``<topic's namespace>/camera_info`` when recorded."""
    topic = pick_image_topic(path, topic)
    base = topic[:-len("/compressed")] if topic.endswith("/compressed") else topic   # image_transport's layout
    info_topic = base.rsplit("/", 1)[0] + "/camera_info"
    have_info = info_topic in list_topics(path)
    K = None
    from trace_anything_ros.pipeline import gates
    distortion = gates.DistortionCheck()

    def usable(info):
        """Its K where the perception node would take it (``gates.intrinsics_problem``), else None; a camera_info
        of a raw (distorted) image is said on stderr once per distortion (K alone is used)."""
        hw = (int(getattr(info, "height", 0)), int(getattr(info, "width", 0)))
        if gates.intrinsics_problem(info.k, hw) is not None:
            return None
        text, anew = distortion(info.k, getattr(info, "d", []), getattr(info, "distortion_model", ""), hw)
        if text is not None and anew:
            print(f"[bag] {info_topic}: {text}", file=sys.stderr)
        return np.asarray(info.k, np.float64).reshape(3, 3)

    if have_info:  # the first valid camera_info (it may be logged after the first image)
        for r in iter_messages(path, [info_topic]):
            K = usable(r.msg)
            if K is not None:
                break
    i = 0
    for r in iter_messages(path, [topic, info_topic] if have_info else [topic]):
        if r.topic == info_topic:
            k = usable(r.msg)
            K = k if k is not None else K
            continue
        st = stamp_ns(r.msg.header.stamp) or int(r.log_time)
        yield ImageFrame(i, st, image_rgb(r.msg), r.msg.header.frame_id, K)
        i += 1
        if max_frames and i >= max_frames:
            return
