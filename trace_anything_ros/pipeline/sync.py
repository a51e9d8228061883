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

"""Pairing of the camera streams by stamp (ROS-free; the perception node keeps the bounded queues and wires them).

* ``pick_camera_info``: the camera_info for an image -- of its size or its aspect ratio, nearest in stamp within
  the sync slop, else the latest;
* ``match_depth``: pending images with depth images within the slop (a depth of another aspect ratio is no depth of
  the image; an image not paired yet does not block later ones and is given up once the stream moved past it).

Both report through callbacks so the caller keeps its counters and log lines: ``drop(reason, text)``,
``warn(key, text)`` (a named input warning: used, adapted), ``clear(key)`` (that warning no longer holds),
``push(frame)`` (a paired frame, in stamp order of pairing).
Queue items: camera_info ``(stamp_ns, K 3x3, (h, w))``, depth ``(stamp_ns, depth, (h, w))``, pending: ``Frame``.
"""
from __future__ import annotations

from typing import Callable, Deque, Optional, Tuple

import numpy as np

from . import gates
from .frames import NO_SYNC


def pick_camera_info(infos, stamp_ns: int, image_hw, slop_ns: int, warn: Callable[[str, str], None],
                     clear: Callable[[str], None]) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
    """``(K, camera_info (h, w))`` of the camera_info that describes an image of ``image_hw`` stamped ``stamp_ns``,
    or None (no camera_info of its aspect ratio). ``infos`` must not be empty."""
    image_hw = tuple(image_hw)
    nearest = min(infos, key=lambda it: abs(it[0] - stamp_ns))
    # only camera_info that can describe this image: its size, or the same aspect ratio (binning / resize)
    cands = [it for it in infos if it[2] == image_hw] or [it for it in infos if gates.same_aspect(it[2], image_hw)]
    if not cands or not gates.same_aspect(nearest[2], image_hw):
        got = nearest[2]
        warn("camera_info_size_mismatch",
             f"camera_info is {got[1]}x{got[0]}, another aspect ratio than the {image_hw[1]}x"
             f"{image_hw[0]} image: not used" + ("" if cands else ", running without intrinsics (up to scale)"))
        if not cands:
            return None
    else:
        clear("camera_info_size_mismatch")
    best = min(cands, key=lambda it: abs(it[0] - stamp_ns))
    if abs(best[0] - stamp_ns) > slop_ns:
        best = cands[-1]  # intrinsics rarely change: the latest is the best guess
    if best[2] != image_hw:
        warn("camera_info_rescaled", f"camera_info is {best[2][1]}x{best[2][0]}, the image "
             f"{image_hw[1]}x{image_hw[0]} (same aspect): intrinsics rescaled")
    else:
        clear("camera_info_rescaled")
    return best[1], best[2]


def match_depth(pending: Deque, depths: Deque, slop_s: float, push: Callable, drop: Callable[[str, str], None],
                warn: Callable[[str, str], None], clear: Callable[[str], None]) -> None:
    """Pair the ``pending`` images with ``depths`` (both bounded deques, changed in place): a paired frame gets its
    ``depth`` and is pushed; depth images older than the match are consumed (one of another aspect ratio dropped as
    depth_size_mismatch); an image waiting while a later one paired past its stamp + slop is dropped
    (unsynchronised), and so is the oldest while the pending queue is full."""
    slop = int(slop_s * 1e9)
    waiting = []
    for fr in list(pending):
        src = tuple(fr.source_size)
        match = None
        for i, (s, d, dhw) in enumerate(depths):
            if abs(s - fr.stamp_ns) <= slop and (dhw == src or gates.same_aspect(dhw, src)):
                match = i
                break
        if match is None:
            waiting.append(fr)
            continue
        fr.depth = depths[match][1]
        dhw = depths[match][2]
        for _ in range(match + 1):  # older depth images can no longer match newer frames
            s_old, _, hw_old = depths.popleft()
            if hw_old != src and not gates.same_aspect(hw_old, src):
                drop("depth_size_mismatch", f"depth {hw_old[1]}x{hw_old[0]} cannot belong to the "
                     f"{src[1]}x{src[0]} image (another aspect ratio)")
        if dhw != src:
            warn("depth_rescaled", f"depth is {dhw[1]}x{dhw[0]}, the image {src[1]}x{src[0]} "
                 "(same aspect): resampled to the model grid")
        else:
            clear("depth_rescaled")
        still = []
        for old in waiting:
            if old.stamp_ns + slop < fr.stamp_ns:
                drop(NO_SYNC, f"no depth within {slop_s} s of image {old.stamp_ns * 1e-9:.3f}")
            else:
                still.append(old)
        waiting = still
        push(fr)
    pending.clear()
    pending.extend(waiting)
    while len(pending) == pending.maxlen:
        pending.popleft()
        drop(NO_SYNC, "image waited too long for depth")
