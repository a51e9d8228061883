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

"""window.policy 'latency' (pipeline.freshness.LatencyFirstWindows) on a real FrameIngest, with real threads."""
import threading
import time

import numpy as np

from trace_anything_ros.pipeline import Frame, FrameIngest, WindowSpec
from trace_anything_ros.pipeline.freshness import LatencyFirstWindows

IMG = np.zeros((4, 4, 3), np.uint8)


def _push(ing, i, arrival=None):
    f = Frame(stamp_ns=(i + 1) * 33_000_000, rgb=IMG, frame_id="c", source_size=(4, 4))
    if arrival is not None:
        f.arrival = arrival
    assert ing.push(f) is None
    return f


def _ingest(n_frames, period=0.033):
    ing = FrameIngest(8, window=WindowSpec(length=4))
    t0 = time.monotonic() - n_frames * period
    for i in range(n_frames):
        _push(ing, i, arrival=t0 + i * period)  # the newest arrived ~one period ago: it has waited
    return ing


def test_waits_for_the_next_frame_when_the_pending_window_has_waited():
    ing = _ingest(6)
    src = LatencyFirstWindows(ing, max_wait=0.5)
    before = ing.drops["stale_window"]  # windows the ingest itself replaced while they were pending
    box = {}

    def later():
        time.sleep(0.02)
        box["frame"] = _push(ing, 6)

    th = threading.Thread(target=later)
    th.start()
    win = src.take_window(timeout=0.1)
    th.join()
    assert win[-1] is box["frame"]  # the window of the frame that arrived while waiting, not the pending one
    assert time.monotonic() - win[-1].arrival < 0.05
    assert src.skipped == 1 and ing.drops["stale_window"] == before + 1
    assert ing.generation == ing.taken_generation  # the worker's reset bookkeeping still works through the wrapper
    # the replaced window was never taken: only the processed window's frames count as used (exact accounting)
    assert ing.stats()["used"] == len(win) and not any(f.used for f in ing.snapshot()[:-len(win)])


def test_processes_the_waiting_window_when_no_newer_frame_comes():
    ing = _ingest(6)
    src = LatencyFirstWindows(ing, max_wait=0.5)
    before = ing.drops["stale_window"]
    t0 = time.monotonic()
    win = src.take_window(timeout=0.1)
    waited = time.monotonic() - t0
    assert win is not None and [f.stamp_ns for f in win] == [(i + 1) * 33_000_000 for i in range(2, 6)]
    # held until 2.5 frame periods (33 ms) after its newest frame arrived, not longer, far below max_wait
    assert time.monotonic() - win[-1].arrival >= 2.5 * 0.033 - 1e-3 and waited <= 0.3
    assert src.skipped == 0 and ing.drops["stale_window"] == before


def test_fresh_window_is_taken_at_once():
    ing = _ingest(5)
    _push(ing, 5)  # arrival = now
    src = LatencyFirstWindows(ing, max_wait=0.5)
    t0 = time.monotonic()
    win = src.take_window(timeout=0.1)
    assert win[-1].stamp_ns == 6 * 33_000_000 and time.monotonic() - t0 < 0.02
    assert src.skipped == 0


def test_no_window_no_wait():
    ing = FrameIngest(8, window=WindowSpec(length=4))
    src = LatencyFirstWindows(ing)
    assert src.take_window(timeout=0.01) is None
