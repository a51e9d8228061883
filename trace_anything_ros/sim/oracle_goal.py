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

"""Ground-truth goal-image "estimator" for closed-loop episodes: the perfect-perception upper bound (ROS-free).

A ``FieldEstimator`` (``model.api``) for the goal-image path of ``manipulation_planner_node``
(``goal_image.estimator.factory: trace_anything_ros.sim.oracle_goal:create``). It is **not a model**: it knows the
simulator. For the episodes it is told about (``sim.closed_loop.sample_episode(seed)``), it renders the episode's
current frame and goal image and, given a frame pair, returns the ground-truth 2-frame field current -> goal
(``closed_loop.gt_goal_field``: metric, the current frame's camera; the object on the geodesic between its start
and goal poses) of the episode whose rendered (current, goal) pair the frames are. Frames that are not such a pair
(another scene, a moved object, a resized image) raise ``ValueError``: the oracle never answers for images it does
not know. Use it to measure everything downstream of perception (planner, path, executor) with perception taken
out of the error budget; results with it are an upper bound, never a model's score.

Episodes: ``params["episode_seeds"]`` (list or comma-separated string) or the environment variable
``TAR_ORACLE_GOAL_SEEDS`` (e.g. ``"0,1"``; node processes are started with it, since the node passes only its
``goal_image.*`` parameters to the factory). Image size: ``params["input_size"]`` (H, W) if given, else the
episode's render size (320 x 240); the node must feed frames at that size (``goal_image.input_height/width``).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..model.api import FieldPrediction
from .closed_loop import EpisodeSpec, _render_pair, gt_goal_field, sample_episode

ENV_SEEDS = "TAR_ORACLE_GOAL_SEEDS"
MATCH_TOLERANCE = 2.0  # mean absolute uint8 difference below which a frame is the episode's rendered frame


def episode_images(seed: int, width: int = 320, height: int = 240):
    """(EpisodeSpec, current frame rgb uint8 [H, W, 3], goal image rgb, world_T_cam [4, 4] optical frame) of
    episode ``seed``."""
    spec = sample_episode(int(seed), width=width, height=height)
    scene, cur, goal = _render_pair(spec)
    scene.close()
    return spec, cur["rgb"], goal["rgb"], np.asarray(cur["world_T_cam"], np.float64)


def _seeds(params: dict) -> List[int]:
    raw = params.get("episode_seeds")
    if raw is None:
        raw = os.environ.get(ENV_SEEDS, "")
    if isinstance(raw, str):
        raw = [s for s in raw.replace(" ", "").split(",") if s]
    seeds = [int(s) for s in raw]
    if not seeds:
        raise ValueError(f"oracle goal estimator: no episodes (set params['episode_seeds'] or ${ENV_SEEDS})")
    return seeds


class OracleGoalEstimator:
    """Ground-truth 2-frame field of a known episode's (current frame, goal image) pair (see the module doc)."""

    needs_stamps = False

    def __init__(self, seeds: Sequence[int], input_size: Optional[Sequence[int]] = None, num_ctrl: int = 10):
        self.seeds = [int(s) for s in seeds]
        self.num_ctrl = int(num_ctrl)
        h, w = (240, 320) if not input_size else (int(input_size[0]), int(input_size[1]))
        self.input_size = (h, w)
        self._episodes: Dict[int, tuple] = {}   # seed -> (spec, scene, cur, goal) rendered on first use
        self._fields: Dict[int, object] = {}
        self.calls: List[int] = []               # the episode each predict answered for
        self.closed = False

    def _episode(self, seed: int):
        if seed not in self._episodes:
            h, w = self.input_size
            spec: EpisodeSpec = sample_episode(seed, width=w, height=h)
            scene, cur, goal = _render_pair(spec)
            self._episodes[seed] = (spec, scene, cur, goal)
        return self._episodes[seed]

    def match(self, frames: np.ndarray) -> int:
        """The seed of the episode whose (current, goal) renders the two frames are; ValueError if none."""
        diffs = []
        for s in self.seeds:
            _, _, cur, goal = self._episode(s)
            d = max(float(np.abs(frames[0].astype(np.int16) - cur["rgb"]).mean()),
                    float(np.abs(frames[1].astype(np.int16) - goal["rgb"]).mean()))
            if d <= MATCH_TOLERANCE:
                return s
            diffs.append(round(d, 2))
        raise ValueError(f"oracle goal estimator: the frames are not the (current, goal) pair of any known episode "
                         f"{self.seeds} (mean abs differences {diffs} > {MATCH_TOLERANCE})")

    def predict(self, frames: np.ndarray, frame_keys=None, depth=None) -> FieldPrediction:
        if self.closed:
            raise RuntimeError("estimator closed")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] != 2 or tuple(frames.shape[1:3]) != self.input_size:
            raise ValueError(f"oracle goal estimator: needs 2 frames of {self.input_size}, got {frames.shape}")
        seed = self.match(frames)
        if seed not in self._fields:
            spec, scene, cur, goal = self._episode(seed)
            self._fields[seed] = gt_goal_field(scene, spec, cur, goal, num_ctrl=self.num_ctrl)
        fld = self._fields[seed]
        self.calls.append(seed)
        return FieldPrediction(np.asarray(fld.ctrl_pts, np.float32), np.asarray(fld.ctrl_conf, np.float32),
                               np.asarray(fld.frame_times, np.float32))

    def close(self) -> None:
        for _, scene, _, _ in self._episodes.values():
            scene.close()
        self._episodes.clear()
        self.closed = True


def create(params: Optional[dict] = None) -> OracleGoalEstimator:
    """Factory for ``load_estimator`` / ``goal_image.estimator.factory``."""
    params = dict(params or {})
    return OracleGoalEstimator(_seeds(params), params.get("input_size"), int(params.get("num_ctrl", 10)))
