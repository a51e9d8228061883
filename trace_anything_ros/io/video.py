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

"""Video input via OpenCV (ROS-free)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VTEST_ENV = "TRACE_ANYTHING_VTEST"
VTEST_CANDIDATES = (
    os.path.join(_REPO_ROOT, "build/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"),  # bootstrap
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",                                             # apt install
)


def find_vtest() -> Optional[str]:
    """Path of OpenCV's vtest.avi (real video: static camera, people walking), or None.

    ``$TRACE_ANYTHING_VTEST`` overrides (a set but missing path gives None: never fall back silently)."""
    env = os.environ.get(VTEST_ENV)
    if env:
        return env if os.path.isfile(env) else None
    for c in VTEST_CANDIDATES:
        if os.path.isfile(c):
            return c
    return None


@dataclass
class VideoFrame:
    index: int
    stamp_ns: int
    rgb: np.ndarray  # uint8 [H, W, 3]


def video_info(path: str) -> dict:
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise IOError(f"cannot open video {path!r}")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        return dict(fps=float(fps) if fps > 0 else 0.0, frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                    width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def read_video(path: str, max_frames: int = 0, fps: float = 0.0, start_ns: int = 1_000_000_000
               ) -> Iterator[VideoFrame]:
    """RGB frames of a video file with stamps from its frame rate (``fps`` overrides; 30 when unknown).

    Stamps start at ``start_ns`` (> 0: a zero stamp is invalid for the pipeline)."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise IOError(f"cannot open video {path!r}")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
    period_ns = int(round(1e9 / rate))
    i = 0
    try:
        while not max_frames or i < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            yield VideoFrame(i, start_ns + i * period_ns, np.ascontiguousarray(bgr[:, :, ::-1]))
            i += 1
    finally:
        cap.release()
