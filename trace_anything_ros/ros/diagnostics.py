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

"""diagnostic_msgs/DiagnosticArray for /diagnostics, written here (no diagnostic_updater in this environment)."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # DiagnosticStatus levels as ints (the message stores them as bytes)


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._t: deque = deque()
        self._lock = threading.Lock()
        self.count = 0
        self.last: Optional[float] = None

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._t.append(now)
            self.count += 1
            self.last = now
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()
            if len(self._t) < 2:
                return 0.0
            span = max(now - self._t[0], self._t[-1] - self._t[0])
            return (len(self._t) - 1) / span if span > 0 else 0.0


class Stat:
    """Last / mean / median / max of a scalar over the last ``n`` samples."""

    def __init__(self, n: int = 50):
        self._v: deque = deque(maxlen=n)
        self._lock = threading.Lock()

    def add(self, v: float) -> None:
        with self._lock:
            self._v.append(float(v))

    def summary(self) -> Dict[str, float]:
        with self._lock:
            if not self._v:
                return {}
            v = list(self._v)
        srt = sorted(v)
        return {"last": v[-1], "mean": sum(v) / len(v), "median": srt[len(srt) // 2], "max": max(v)}


def status(name: str, hardware_id: str, level: int, message: str, values: Dict[str, object]) -> DiagnosticStatus:
    s = DiagnosticStatus()
    s.level = bytes([int(level)])
    s.name, s.hardware_id, s.message = name, hardware_id, message
    s.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return s


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def array(stamp, statuses) -> DiagnosticArray:
    a = DiagnosticArray()
    a.header.stamp = stamp
    a.status = list(statuses)
    return a


@dataclass
class PerceptionSnapshot:
    """What the perception node gathers for one /diagnostics status (plain values; ``perception_report`` builds
    the level, message and key/values from it)."""

    lc_state: str
    model_state: str
    model_error: str
    input_rate_hz: float
    output_rate_hz: float
    frames_in: int
    windows_out: int
    since_input_s: float                       # inf: no image ever
    drops: Dict[str, int]
    warned: Dict[str, int]
    stats: Dict[str, Dict[str, float]]         # key prefix (latency_s ...) -> Stat.summary()
    qos_events: int = 0
    qos_event_text: str = ""
    last_drop: Tuple[str, str, Optional[float]] = ("", "", None)  # (reason, text, age in s or None)
    recent_drops: List[str] = field(default_factory=list)  # reasons seen within drop_warn_window
    drop_warn_window: float = 2.0
    stale_after: float = 2.0
    ingest: Optional[Dict[str, int]] = None    # FrameIngest.stats() plus "switches"; None while unconfigured
    lost_before_node: int = 0
    lost_since_last: int = 0                   # camera messages lost / received since the previous status
    in_since_last: int = 0
    camera_pose: Optional[Tuple[str, int, int]] = None  # (camera_motion, windows without pose, queued poses)
    estimator_regime: str = ""
    exposure_gain: float = 1.0                 # a dim stream brightened by the estimator (1: as it came)
    view_fraction: float = 1.0                 # share of the camera image the model grid sees (crop_fraction)
    sync_queues: Tuple[int, int, int, int] = (0, 0, 0, 0)  # images, depth, camera_info, capacity
    warnings: List[str] = field(default_factory=list)
    input_qos: str = ""                        # the image subscription's reliability: reliable | best_effort
    image_publishers: Tuple[int, int] = (0, 0)  # publishers of the image topic offering (reliable, best effort)


def perception_report(s: PerceptionSnapshot) -> Tuple[int, str, Dict[str, object], Optional[str]]:
    """``(level, message, values, input_loss_line)`` of the perception node's status; ``input_loss_line`` is the
    message part the node also logs (None when no input loss)."""
    since = s.since_input_s
    values = {
        "lifecycle_state": s.lc_state, "model_state": s.model_state,
        "input_rate_hz": s.input_rate_hz, "output_rate_hz": s.output_rate_hz,
        "frames_in": s.frames_in, "windows_out": s.windows_out,
        "time_since_last_input_s": since if math.isfinite(since) else -1.0,
        "dropped_total": sum(s.drops.values()),
        "incompatible_qos_events": s.qos_events,
    }
    for k, summary in s.stats.items():
        for kk, vv in summary.items():
            values[f"{k}_{kk}"] = vv
    for r, n in sorted(s.drops.items()):
        values[f"dropped.{r}"] = n
    for r, n in sorted(s.warned.items()):
        values[f"warned.{r}"] = n
    last_reason, last_text, last_age = s.last_drop
    if last_age is not None:
        values.update({"last_drop_reason": last_reason, "last_drop": last_text, "last_drop_age_s": last_age})
    st = s.ingest
    if st is not None:
        values["stream_switches"] = st["switches"]
    values["frames_lost_before_node"] = s.lost_before_node  # estimate: DDS sequence gaps while one publisher sends
    # bounded queues and frame accounting: frames_in == rejected (input drops) + frames_accepted;
    # frames_accepted == frames_used + frames_unused + frames_unused_in_ring
    if st is not None:
        values.update({"queue.ring": st["ring"], "queue.ring_capacity": st["ring_capacity"],
                       "queue.window_pending": st["window_pending"], "frames_accepted": st["accepted"],
                       "frames_used": st["used"], "frames_unused": st["unused_dropped"],
                       "frames_unused_in_ring": st["unused_in_ring"], "windows_offered": st["windows_offered"]})
    if s.camera_pose is not None:
        values.update({"camera_motion": s.camera_pose[0], "windows_without_camera_pose": s.camera_pose[1],
                       "queue.camera_poses": s.camera_pose[2]})
    values["estimator_regime"] = s.estimator_regime
    values["exposure_gain"] = round(float(s.exposure_gain), 2)
    if s.input_qos:
        values.update({"input_qos": s.input_qos, "image_publishers_reliable": s.image_publishers[0],
                       "image_publishers_best_effort": s.image_publishers[1]})
    values["model_view_fraction"] = round(float(s.view_fraction), 3)
    n_img, n_depth, n_info, cap = s.sync_queues
    values.update({"queue.sync_images": n_img, "queue.sync_depth": n_depth, "queue.camera_info": n_info,
                   "queue.sync_capacity": cap})
    if s.model_error:
        values["error"] = s.model_error
    level, msgs, loss = OK, [], None
    if s.model_state == "failed":
        level, msgs = ERROR, [f"model failed to load: {s.model_error}"]
    elif s.model_error and s.lc_state == "unconfigured":
        level, msgs = ERROR, [f"configuration rejected: {s.model_error}"]
    if s.lc_state == "active" and since > s.stale_after:
        level = max(level, WARN)
        msgs.append("stale input: no image for " + (f"{since:.1f} s" if math.isfinite(since) else "ever"))
    if s.qos_events:
        level = max(level, WARN)
        msgs.append(s.qos_event_text)
    d_lost, d_in = s.lost_since_last, s.in_since_last
    if d_lost > max(10, d_in):  # more camera messages lost than received since the previous status
        level = max(level, WARN)
        rel, be = s.image_publishers
        if s.input_qos == "best_effort" and rel and not be:  # the publishers would deliver every image
            fix = (f"every image publisher ({rel}) offers reliable QoS and this subscription is best effort, where a "
                   "large image is lost with any UDP fragment: set qos.reliability: auto (follows them) or reliable")
        else:
            fix = ("transport or subscription queue: large images over best effort lose a message with any UDP "
                   "fragment; qos.reliability: auto or reliable if the camera publishes reliably, image_transport: "
                   "compressed, or check qos.depth and the camera's rate")
        loss = (f"input loss: {d_lost} of {d_lost + d_in} camera messages lost before the node ({fix}; README "
                "'QoS and transport troubleshooting')")
        msgs.append(loss)
    if s.recent_drops:
        level = max(level, WARN)
        msgs.append(f"input rejected in the last {s.drop_warn_window:g} s: "
                    + ", ".join(f"{r} ({s.drops.get(r, 0)})" for r in s.recent_drops))
    for w in s.warnings:
        level = max(level, WARN)
        msgs.append(w)
    if not msgs:
        msgs = [f"{s.lc_state}, model {s.model_state}"]
    return level, "; ".join(msgs), values, loss


def level_of(s: DiagnosticStatus) -> int:
    lv = s.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)


@dataclass
class PlannerSnapshot:
    """What the planner node gathers for one /diagnostics status (``planner_report`` builds the rest)."""

    lc_state: str
    goal: str                                   # '' (none), 'pose', 'image'
    published: Dict[str, int]                   # plans published by status (ok, refused, halted, done, idle)
    last_plan: Tuple[str, str, Optional[float]] = ("", "", None)   # (status, reason, age in s or None)
    since_perception_s: float = math.inf        # since the last perception window (inf: none)
    windows_seen: int = 0
    drops: Dict[str, int] = field(default_factory=dict)             # camera inputs dropped, by reason
    recent_drops: List[str] = field(default_factory=list)           # reasons seen within drop_warn_window
    warnings: List[str] = field(default_factory=list)               # named input warnings (camera_info_distorted)
    estimator: str = "not loaded"               # the goal-image estimator: not loaded | loaded | failed: <why>


def planner_report(s: PlannerSnapshot) -> Tuple[int, str, Dict[str, object]]:
    """(level, message, key/values) of the planner's status: WARN while its newest plan is REFUSED or HALTED
    (with the reason), camera input was rejected lately, or a named input warning holds; ERROR when the goal-image
    estimator failed to load."""
    status, reason, age = s.last_plan
    values = {"lifecycle_state": s.lc_state, "goal": s.goal or "none", "windows_seen": s.windows_seen,
              "time_since_last_window_s": s.since_perception_s if math.isfinite(s.since_perception_s) else -1.0,
              "goal_image_estimator": s.estimator}
    for k, n in sorted(s.published.items()):
        values[f"plans.{k}"] = n
    if status:
        values.update({"last_plan_status": status, "last_plan_reason": reason,
                       "last_plan_age_s": -1.0 if age is None else age})
    for r, n in sorted(s.drops.items()):
        values[f"dropped.{r}"] = n
    level, msgs = OK, []
    if s.estimator.startswith("failed"):
        level, msgs = ERROR, [f"goal-image estimator {s.estimator}"]
    if status in ("REFUSED", "HALTED"):
        level = max(level, WARN)
        msgs.append(f"{status}: {reason}")
    if s.recent_drops:
        level = max(level, WARN)
        msgs.append("camera input rejected lately: " + ", ".join(f"{r} ({s.drops.get(r, 0)})"
                                                                 for r in s.recent_drops))
    for w in s.warnings:
        level = max(level, WARN)
        msgs.append(w)
    if not msgs:
        msgs = [f"{s.lc_state}, goal {s.goal or 'none'}" + (f", last plan {status}" if status else "")]
    return level, "; ".join(msgs), values
