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

"""Window selection: the newest complete window of N frames from the ring (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .frames import Frame


@dataclass(frozen=True)
class WindowSpec:
    length: int = 8            # N frames per window
    stride: int = 1            # take every stride-th buffered frame (counted back from the newest)
    min_spacing: float = 0.0   # seconds; consecutive window frames are at least this far apart
    max_age: float = 0.0       # seconds; a window whose newest frame arrived longer ago is stale (0: no limit)

    def __post_init__(self):
        if self.length < 2:
            raise ValueError(f"window length must be >= 2, got {self.length}")
        if self.stride < 1:
            raise ValueError(f"window stride must be >= 1, got {self.stride}")
        if self.min_spacing < 0 or self.max_age < 0:
            raise ValueError("min_spacing and max_age must be >= 0")

    def ring_capacity(self, fps_hint: float = 30.0) -> int:
        """Frames the ring must hold so that a complete window fits (stride and spacing included)."""
        per_step = max(self.stride, int(round(self.min_spacing * fps_hint)) + 1 if self.min_spacing > 0 else 1)
        return (self.length - 1) * per_step + 1


def select_window(frames: Sequence["Frame"], spec: WindowSpec) -> Optional[List["Frame"]]:
    """The newest complete window (oldest first), or None when the ring does not hold one yet.

    Walks back from the newest frame; the next frame taken is the newest one that is at least ``stride`` ring
    positions earlier and at least ``min_spacing`` seconds older than the last one taken.
    """
    if not frames:
        return None
    picked = [len(frames) - 1]
    i = len(frames) - 1 - spec.stride
    while len(picked) < spec.length and i >= 0:
        if frames[picked[-1]].stamp - frames[i].stamp >= spec.min_spacing - 1e-9:
            picked.append(i)
            i -= spec.stride
        else:
            i -= 1
    if len(picked) < spec.length:
        return None
    return [frames[j] for j in reversed(picked)]
