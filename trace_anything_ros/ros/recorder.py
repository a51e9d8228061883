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

"""recorder: an rclpy node that records topics of the graph into an MCAP file (rosbag2's MCAP layout).

Every topic seen on the graph (or the ones given) is subscribed with ``raw=True`` (the serialized CDR bytes are
written as received, no deserialization) using the publishers' reliability, and written to an MCAP channel with a
``ros2msg`` schema built from the ``.msg`` definitions (ours in ``msg/``, the standard ones in the venv's
``share/<pkg>/msg/``; see ``io.msgdefs``). Topics appearing later are picked up by a periodic graph scan.
``mcap_ros2`` (or Foxglove, or ``ros2 bag`` with the mcap plugin) reads the result.

    python -m trace_anything_ros.ros.recorder --out rec.mcap [--topic /a ...] [--throttle /big:0.5]
                                                 [--duration S] [--exclude /rosout]

Offline recordings of the node's outputs (``process``) serialize ``ros/messages.py``'s values, as the node publishes
them.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Dict, List, Optional

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from trace_anything_ros.io.mcap_out import McapOut
from trace_anything_ros.io.msgdefs import try_schema_text

from .node_main import spin_node
from .qos import follows_reliable, reliability_counts

DEFAULT_EXCLUDE = ("/parameter_events",)


class Recorder(Node):
    def __init__(self, out: McapOut, topics: Optional[List[str]] = None, exclude=DEFAULT_EXCLUDE,
                 throttle: Optional[Dict[str, float]] = None, scan_period: float = 0.5,
                 node_name: str = "trace_anything_ros_recorder", **kwargs):
        super().__init__(node_name, **kwargs)
        self.out = out
        self.topics = list(topics) if topics else None
        self.exclude = set(exclude or ())
        self.throttle = dict(throttle or {})
        self._last: Dict[str, int] = {}
        self.skipped: Dict[str, int] = {}
        self.unsupported: Dict[str, str] = {}
        self._subs = {}
        self._lock = threading.Lock()
        self._scan()
        self._timer = self.create_timer(scan_period, self._scan)

    def _qos_for(self, topic: str) -> QoSProfile:
        try:
            infos = self.get_publishers_info_by_topic(topic)
        except Exception:  # noqa: BLE001
            infos = []
        reliable = follows_reliable(reliability_counts(infos)) is not False  # the camera inputs' rule (ros/qos.py)
        transient = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)

    def _scan(self):
        for topic, types in self.get_topic_names_and_types():
            if topic in self._subs or topic in self.unsupported or topic in self.exclude:
                continue
            if self.topics is not None and topic not in self.topics:
                continue
            if not self.get_publishers_info_by_topic(topic):
                continue  # only subscribers so far: wait for a publisher (its QoS decides ours)
            typ = types[0]
            if try_schema_text(typ) is None:
                self.unsupported[topic] = f"no .msg definition found for {typ}"
                self.get_logger().warn(f"not recording {topic}: {self.unsupported[topic]}")
                continue
            try:
                msg_cls = _import_type(typ)
            except Exception as e:  # noqa: BLE001
                self.unsupported[topic] = f"cannot import {typ}: {e}"
                self.get_logger().warn(f"not recording {topic}: {self.unsupported[topic]}")
                continue
            self.out.add_ros2(topic, typ)
            qos = self._qos_for(topic)
            self._subs[topic] = self.create_subscription(msg_cls, topic, self._make_cb(topic), qos, raw=True)
            self.get_logger().info(f"recording {topic} [{typ}] ({qos.reliability.name.lower()})")

    def _make_cb(self, topic: str):
        period_ns = int(1e9 / self.throttle[topic]) if self.throttle.get(topic) else 0

        def cb(data: bytes):
            now = time.time_ns()
            if period_ns:
                last = self._last.get(topic)
                if last is not None and now - last < period_ns:
                    self.skipped[topic] = self.skipped.get(topic, 0) + 1
                    return
                self._last[topic] = now
            self.out.write(topic, data, log_time=now, publish_time=now)
        return cb

    @property
    def recorded_topics(self) -> List[str]:
        return sorted(self._subs)


def _import_type(type_name: str):
    import importlib

    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


# -------------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trace_anything_ros.ros.recorder", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="MCAP file to write")
    p.add_argument("--topic", action="append", default=[], help="record only these topics (default: all)")
    p.add_argument("--exclude", action="append", default=list(DEFAULT_EXCLUDE), help="topics not recorded")
    p.add_argument("--throttle", action="append", default=[], metavar="TOPIC:HZ",
                   help="record at most HZ messages/s of TOPIC (the rest is counted as skipped)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until SIGINT)")
    p.add_argument("--stats", default="", help="write recording statistics (JSON) here on exit")
    p.add_argument("--compression", default="lz4", choices=("lz4", "none", "zstd"))
    args, ros_args = p.parse_known_args(argv)
    return args, ros_args


def main(argv=None) -> int:
    args, ros_args = parse_args(sys.argv[1:] if argv is None else argv)
    throttle = {}
    for t in args.throttle:
        topic, hz = t.rsplit(":", 1)
        throttle[topic] = float(hz)
    stop = threading.Event()
    state = {}

    def create():
        state["out"] = McapOut(args.out, compression=args.compression)
        node = Recorder(state["out"], args.topic or None, args.exclude, throttle)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
        state["t0"] = time.monotonic()
        return node

    def until(node):
        return stop.is_set() or bool(args.duration and time.monotonic() - state["t0"] > args.duration)

    def cleanup(node):
        out = state["out"]
        stats = {"path": args.out, "topics": node.recorded_topics, "counts": dict(out.counts), "bytes": out.bytes,
                 "throttled": throttle, "skipped": dict(node.skipped), "unsupported": dict(node.unsupported)}
        out.close()
        if args.stats:
            import json
            with open(args.stats, "w") as f:
                json.dump(stats, f, indent=1)
        node.get_logger().info(f"wrote {args.out}: {sum(out.counts.values())} messages on {len(out.counts)} topics, "
                               f"{out.bytes / 1e6:.1f} MB")

    return spin_node(create, [sys.argv[0]] + ros_args, until=until, cleanup=cleanup, signal_handlers=False)


if __name__ == "__main__":
    sys.exit(main())
