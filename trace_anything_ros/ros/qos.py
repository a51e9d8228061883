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

"""Camera input QoS: one rule for every node (``qos.reliability``).

``auto`` (the default) follows the topic's publishers, as ``ros2 topic echo`` does: reliable when every
publisher offers reliable QoS, best effort (the sensor-data profile, which matches any publisher) when one offers
best effort or none is there yet. The rule is re-checked every second, so a camera driver started after the node,
or replaced by another, is followed: the subscription is recreated when the answer changes. Why it matters: over
best effort one lost UDP fragment loses a whole large image, and a reliable publisher's images then arrive at a
fraction of its rate (README, "QoS and transport troubleshooting": 1.3 Hz vs 7.0 Hz through ``ros2 launch``).
``sensor_data``, ``reliable`` and ``best_effort`` fix the reliability and are never changed.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from .params import QOS_RELIABILITY

MODES = tuple(QOS_RELIABILITY.choices)
REFRESH_PERIOD = 1.0  # seconds between checks of the publishers (mode auto)


def reliability_counts(infos) -> Tuple[int, int]:
    """(reliable, best effort): how many of the endpoints ``infos`` (rclpy TopicEndpointInfo) offer each."""
    rel = sum(1 for i in infos if i.qos_profile.reliability == ReliabilityPolicy.RELIABLE)
    return rel, len(infos) - rel


def publisher_reliability(node, topic: str) -> Tuple[int, int]:
    """``reliability_counts`` of the publishers of ``topic`` (resolved as ``node`` resolves it)."""
    return reliability_counts(node.get_publishers_info_by_topic(node.resolve_topic_name(topic)))


def follows_reliable(counts: Tuple[int, int]) -> Optional[bool]:
    """The ``auto`` rule on ``publisher_reliability`` counts: True (every publisher is reliable), False (one is best
    effort), None (no publisher: keep what the subscription has)."""
    rel, best = counts
    if rel + best == 0:
        return None
    return best == 0


def input_qos(mode: str, depth: int = 5, history: str = "keep_last", reliable: bool = False) -> QoSProfile:
    """The QoS profile of mode ``mode`` (``MODES``); ``reliable``: the ``auto`` rule's current answer."""
    if mode not in MODES:
        raise ValueError(f"qos.reliability must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "reliable" or (mode == "auto" and reliable):
        q = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    elif mode == "best_effort":
        q = QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
    else:  # sensor_data, or auto while a best-effort publisher (or none) is there
        q = QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability,
                       durability=qos_profile_sensor_data.durability)
    q.history = HistoryPolicy.KEEP_ALL if history == "keep_all" else HistoryPolicy.KEEP_LAST
    return q


class _Input:
    def __init__(self, msg_type, topic: str, callback, event_callbacks):
        self.msg_type, self.topic, self.callback, self.event_callbacks = msg_type, topic, callback, event_callbacks
        self.sub = None
        self.reliable = False


class InputSubscriptions:
    """A node's camera input subscriptions under one ``qos.reliability`` mode.

    ``add`` creates a subscription (with ``auto``: reliable at once when every publisher already offers it) and
    returns a getter of the current subscription object (it changes when ``auto`` recreates it). With ``auto`` a
    timer (``REFRESH_PERIOD``) re-checks each topic's publishers; a change is logged once (info) and
    ``on_switch(topic, reliable)`` is called, e.g. to reset a sequence-number loss counter.
    """

    def __init__(self, node, mode: str, depth: int = 5, history: str = "keep_last",
                 on_switch: Optional[Callable[[str, bool], None]] = None):
        input_qos(mode)  # validates the mode
        self.node, self.mode, self.depth, self.history, self.on_switch = node, mode, depth, history, on_switch
        self._inputs: List[_Input] = []
        self._timer = node.create_timer(REFRESH_PERIOD, self.refresh) if mode == "auto" else None

    def add(self, msg_type, topic: str, callback, event_callbacks=None) -> Callable[[], object]:
        entry = _Input(msg_type, topic, callback, event_callbacks)
        if self.mode == "auto":
            entry.reliable = bool(follows_reliable(publisher_reliability(self.node, topic)))
        self._subscribe(entry)
        self._inputs.append(entry)
        return lambda: entry.sub

    def _subscribe(self, entry: _Input):
        qos = input_qos(self.mode, self.depth, self.history, entry.reliable)
        kw = {"event_callbacks": entry.event_callbacks} if entry.event_callbacks is not None else {}
        entry.sub = self.node.create_subscription(entry.msg_type, entry.topic, entry.callback, qos, **kw)

    def refresh(self) -> List[str]:
        """Re-check the publishers (mode ``auto``); resubscribe where the rule's answer changed. Returns the topics
        switched."""
        switched = []
        for entry in self._inputs:
            try:
                want = follows_reliable(publisher_reliability(self.node, entry.topic))
            except Exception as e:  # noqa: BLE001 - a graph query failing (shutdown) must not take the node down
                self.node.get_logger().debug(f"qos follow: {entry.topic}: {e}")
                continue
            if want is None or want == entry.reliable:
                continue
            self.node.destroy_subscription(entry.sub)
            entry.reliable = want
            self._subscribe(entry)
            switched.append(entry.topic)
            name = self.node.resolve_topic_name(entry.topic)
            self.node.get_logger().info(
                f"input {name}: " + ("every publisher offers reliable QoS: subscribed reliable" if want else
                                     "a publisher offers best effort: subscribed best effort (sensor data)")
                + " (qos.reliability: auto)")
            if self.on_switch is not None:
                self.on_switch(entry.topic, want)
        return switched

    def subscriptions(self) -> list:
        return [e.sub for e in self._inputs]

    def destroy(self):
        for e in self._inputs:
            self.node.destroy_subscription(e.sub)
        self._inputs = []
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
