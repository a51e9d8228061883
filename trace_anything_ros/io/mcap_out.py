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

"""MCAP output (ROS-free): channels carrying CDR with ``ros2msg`` schemas, or JSON.

``McapOut.add_ros2(topic, type)`` registers a ``ros2msg`` schema built from the .msg definitions
(``msgdefs``) and a ``cdr`` channel; ``write(topic, data)`` takes serialized CDR bytes (e.g. from rclpy's
``serialize_message`` or a raw subscription). ``add_json(topic, name)`` + ``write_json`` for readers without
ROS; any MCAP tool (Foxglove, ``mcap`` CLI, ``mcap_ros2``) reads both.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Dict, Optional

from .msgdefs import normalize, schema_text


class McapOut:
    def __init__(self, path: str, compression: str = "lz4", chunk_size: int = 4 * 1024 * 1024,
                 profile: str = "ros2"):
        from mcap.writer import CompressionType, Writer

        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self.path = path
        self._fh = open(path, "wb")
        comp = {"lz4": CompressionType.LZ4, "none": CompressionType.NONE, "zstd": CompressionType.ZSTD}[compression]
        if comp == CompressionType.LZ4:
            try:
                import lz4  # noqa: F401
            except ImportError:
                comp = CompressionType.NONE
        self._w = Writer(self._fh, chunk_size=chunk_size, compression=comp)
        self._w.start(profile=profile, library="trace_anything_ros")
        self._schemas: Dict[str, int] = {}
        self._channels: Dict[str, int] = {}
        self._seq: Dict[str, int] = {}
        self.counts: Dict[str, int] = {}
        self.bytes = 0
        self._lock = threading.Lock()
        self.closed = False

    def has(self, topic: str) -> bool:
        return topic in self._channels

    def add_ros2(self, topic: str, type_name: str, qos_yaml: str = "") -> int:
        t = normalize(type_name)
        with self._lock:
            if topic in self._channels:
                return self._channels[topic]
            if t not in self._schemas:
                self._schemas[t] = self._w.register_schema(name=t, encoding="ros2msg",
                                                           data=schema_text(t).encode())
            meta = {"offered_qos_profiles": qos_yaml} if qos_yaml else {}
            cid = self._w.register_channel(topic=topic, message_encoding="cdr", schema_id=self._schemas[t],
                                           metadata=meta)
            self._channels[topic] = cid
            return cid

    def add_json(self, topic: str, name: str) -> int:
        with self._lock:
            if topic in self._channels:
                return self._channels[topic]
            key = "json:" + name
            if key not in self._schemas:
                self._schemas[key] = self._w.register_schema(name=name, encoding="jsonschema",
                                                             data=json.dumps({"type": "object"}).encode())
            cid = self._w.register_channel(topic=topic, message_encoding="json", schema_id=self._schemas[key])
            self._channels[topic] = cid
            return cid

    def write(self, topic: str, data: bytes, log_time: Optional[int] = None, publish_time: Optional[int] = None
              ) -> None:
        now = time.time_ns()
        with self._lock:
            if self.closed:
                return
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            self._w.add_message(channel_id=self._channels[topic], log_time=int(log_time or now),
                                publish_time=int(publish_time or log_time or now), data=bytes(data), sequence=seq)
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.bytes += len(data)

    def write_json(self, topic: str, obj, log_time: Optional[int] = None, publish_time: Optional[int] = None):
        self.write(topic, json.dumps(obj, separators=(",", ":")).encode(), log_time, publish_time)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._w.finish()
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
