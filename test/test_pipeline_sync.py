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


"""pipeline.sync without ROS: camera_info choice for an image and depth <-> image pairing by stamp."""
from collections import deque

import numpy as np

from trace_anything_ros.pipeline import Frame
from trace_anything_ros.pipeline import frames as F
from trace_anything_ros.pipeline.sync import match_depth, pick_camera_info

MS = 1_000_000


class Log:
    def __init__(self):
        self.drops, self.warned, self.cleared, self.pushed = [], {}, [], []

    def drop(self, reason, text):
        self.drops.append((reason, text))

    def warn(self, key, text):
        self.warned[key] = text

    def clear(self, key):
        self.cleared.append(key)

    def push(self, fr):
        self.pushed.append(fr)


def _k(f):
    return np.array([[f, 0, 64], [0, f, 48], [0, 0, 1]], np.float64)


def _frame(stamp_ns, hw=(480, 640)):
    return Frame(stamp_ns=stamp_ns, rgb=np.zeros((4, 4, 3), np.uint8), source_size=hw)


def test_camera_info_of_the_image_size_nearest_in_stamp():
    log = Log()
    infos = [(0, _k(100), (480, 640)), (10 * MS, _k(200), (480, 640)), (11 * MS, _k(300), (240, 320))]
    k, hw = pick_camera_info(infos, 9 * MS, (480, 640), 20 * MS, log.warn, log.clear)
    assert k[0, 0] == 200 and hw == (480, 640)  # same size preferred over the nearer binned one
    assert not log.warned and set(log.cleared) == {"camera_info_size_mismatch", "camera_info_rescaled"}


def test_camera_info_outside_the_slop_falls_back_to_the_latest():
    log = Log()
    infos = [(0, _k(100), (480, 640)), (5 * MS, _k(150), (480, 640))]
    k, _ = pick_camera_info(infos, -100 * MS, (480, 640), 20 * MS, log.warn, log.clear)
    assert k[0, 0] == 150


def test_camera_info_of_the_same_aspect_is_rescaled_other_aspect_not_used():
    log = Log()
    k, hw = pick_camera_info([(0, _k(100), (240, 320))], 0, (480, 640), MS, log.warn, log.clear)
    assert hw == (240, 320) and "camera_info_rescaled" in log.warned
    log = Log()
    assert pick_camera_info([(0, _k(100), (480, 480))], 0, (480, 640), MS, log.warn, log.clear) is None
    assert "running without intrinsics" in log.warned["camera_info_size_mismatch"]


def test_depth_pairs_within_slop_and_consumes_older_depth():
    log = Log()
    pending, depths = deque(maxlen=4), deque(maxlen=4)
    d_old, d_new = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    depths.extend([(0, d_old, (480, 640)), (100 * MS, d_new, (480, 640))])
    pending.append(_frame(101 * MS))
    match_depth(pending, depths, 0.005, log.push, log.drop, log.warn, log.clear)
    assert [f.stamp_ns for f in log.pushed] == [101 * MS] and log.pushed[0].depth is d_new
    assert not pending and not depths and not log.drops and "depth_rescaled" in log.cleared


def test_depth_of_another_aspect_is_not_the_images_and_is_dropped_when_passed():
    log = Log()
    pending, depths = deque(maxlen=4), deque(maxlen=4)
    depths.extend([(0, np.zeros((2, 2), np.float32), (480, 480)), (1 * MS, np.ones((2, 2), np.float32), (240, 320))])
    pending.append(_frame(0))
    match_depth(pending, depths, 0.005, log.push, log.drop, log.warn, log.clear)
    assert len(log.pushed) == 1 and log.pushed[0].depth[0, 0] == 1.0  # the binned depth (same aspect)
    assert [r for r, _ in log.drops] == ["depth_size_mismatch"] and "depth_rescaled" in log.warned


def test_an_unpaired_image_does_not_block_and_is_given_up_once_passed():
    log = Log()
    pending, depths = deque(maxlen=4), deque(maxlen=4)
    pending.extend([_frame(0), _frame(1000 * MS)])  # the first has no depth; the second pairs
    depths.append((1000 * MS, np.ones((2, 2), np.float32), (480, 640)))
    match_depth(pending, depths, 0.005, log.push, log.drop, log.warn, log.clear)
    assert [f.stamp_ns for f in log.pushed] == [1000 * MS]
    assert [r for r, _ in log.drops] == [F.NO_SYNC] and "no depth within 0.005 s" in log.drops[0][1]
    assert not pending


def test_a_full_pending_queue_drops_its_oldest():
    log = Log()
    pending, depths = deque(maxlen=3), deque(maxlen=3)
    pending.extend(_frame(i * MS) for i in range(3))
    match_depth(pending, depths, 0.005, log.push, log.drop, log.warn, log.clear)
    assert [f.stamp_ns for f in pending] == [1 * MS, 2 * MS]
    assert log.drops == [(F.NO_SYNC, "image waited too long for depth")] and not log.pushed
