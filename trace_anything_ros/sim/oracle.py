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

"""Ground-truth oracle estimator: "perfect perception" of a simulated scene, as a FieldEstimator (ROS-free).

An **upper bound**, not a model: it never looks at the pixels it is given. Constructed with the same scene preset,
seed, size and field of view as the ``sim_camera_node`` that feeds the perception node, it rebuilds that scene
(``sim.scene``: every motion is an analytic function of time), maps each window frame to its scene time through
the frame's stamp, renders the scene at those times at the camera's resolution and returns the exact ground-truth
field (``sim.ground_truth.compute_window``: metric, reference camera = frame 0, ROS optical convention) sampled at
the model grid the node asks for (the node's arrival geometry: ``model.preprocess.pixel_transform``). With it, the
graph's plumbing (stamps, sync, resizing back to the source, motion analysis, messages) and the scoring against
``gt/dynamic_mask`` / ``gt/object_poses`` are checked exactly; any shortfall is the pipeline's, not a model's.

Stamps: the estimator sets ``needs_stamps = True``, so ``pipeline.PerceptionPipeline`` passes ``stamps_ns`` (the
window's header stamps) to ``predict``. Scene time = stamp (s) - ``time_offset``; with the sim camera's default
``publish_clock: true`` every header stamp *is* the scene time (offset 0). Without stamps (the node's warm-up on
black frames) it returns an all-static, zero-confidence field of the right shape.

Use from the node: ``estimator.factory: trace_anything_ros.sim.oracle:create_estimator`` and the scene given as
``model.weights: "sim:scene=moving_camera,seed=3,width=160,height=120"`` (keys: scene, seed, width, height, fovy,
time_offset, dense_samples), or the same ``key=value`` list in the environment variable ``TAR_SIM_ORACLE``, or as
keys of the factory's parameter dict (offline callers). Precedence: dict keys > ``model.weights`` > environment.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np

from trace_anything_ros.model.api import FieldPrediction

ENV_VAR = "TAR_SIM_ORACLE"
SPEC_PREFIX = "sim:"
DEFAULTS = dict(scene="tabletop", seed=0, width=320, height=240, fovy=55.0, time_offset=0.0, dense_samples=31)


def parse_spec(spec: str) -> dict:
    """``"scene=moving_camera,seed=3,width=160,height=120"`` (optionally prefixed by ``sim:``) -> typed dict."""
    s = (spec or "").strip()
    if s.startswith(SPEC_PREFIX):
        s = s[len(SPEC_PREFIX):]
    out = {}
    for item in filter(None, (p.strip() for p in s.split(","))):
        if "=" not in item:
            raise ValueError(f"sim oracle spec: expected key=value, got {item!r} in {spec!r}")
        k, v = (x.strip() for x in item.split("=", 1))
        if k not in DEFAULTS:
            raise ValueError(f"sim oracle spec: unknown key {k!r} (known: {', '.join(DEFAULTS)})")
        out[k] = type(DEFAULTS[k])(v)
    return out


class GroundTruthOracle:
    """FieldEstimator returning the exact ground-truth field of the simulated scene at the frames' stamps."""

    needs_stamps = True   # PerceptionPipeline passes stamps_ns=[...] (the window's header stamps) to predict

    def __init__(self, scene: str = "tabletop", seed: int = 0, width: int = 320, height: int = 240,
                 fovy: float = 55.0, input_size=(96, 128), num_ctrl: int = 10, time_offset: float = 0.0,
                 dense_samples: int = 31, cache_frames: int = 64):
        from trace_anything_ros.model.preprocess import pixel_transform
        from trace_anything_ros.sim.scene import Scene, SceneConfig

        self.config = SceneConfig.from_preset(str(scene), seed=int(seed), width=int(width), height=int(height),
                                              fovy=float(fovy))
        self.scene = Scene(self.config)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_ctrl = int(num_ctrl)
        self.time_offset = float(time_offset)
        self.dense_samples = int(dense_samples)
        self._cache: "OrderedDict[int, dict]" = OrderedDict()   # stamp_ns -> rendered frame (windows overlap)
        self._cache_size = max(int(cache_frames), 1)
        self.calls = 0
        self.description = (f"sim ground-truth oracle (perfect-perception upper bound): {self.config.preset} seed "
                            f"{self.config.seed} {self.config.width}x{self.config.height}, grid "
                            f"{self.input_size[1]}x{self.input_size[0]}")
        # model-grid pixel centres -> nearest source pixel (inverse of the node's arrival resize + crop)
        h, w = self.input_size
        to_src = np.linalg.inv(pixel_transform((self.config.height, self.config.width), self.input_size))
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        su = to_src[0, 0] * u + to_src[0, 1] * v + to_src[0, 2]
        sv = to_src[1, 0] * u + to_src[1, 1] * v + to_src[1, 2]
        self._src_u = np.clip(np.rint(su), 0, self.config.width - 1).astype(np.intp)
        self._src_v = np.clip(np.rint(sv), 0, self.config.height - 1).astype(np.intp)

    def scene_time(self, stamp_ns: int) -> float:
        return int(stamp_ns) * 1e-9 - self.time_offset

    def _render(self, stamp_ns: int) -> dict:
        fr = self._cache.get(int(stamp_ns))
        if fr is None:
            self.scene.set_time(self.scene_time(stamp_ns))
            fr = self.scene.render(segmentation=True)
            self._cache[int(stamp_ns)] = fr
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(int(stamp_ns))
        return fr

    def ground_truth(self, stamps_ns: Sequence[int]):
        """The full-resolution GroundTruthWindow of the frames at ``stamps_ns`` (oldest first)."""
        from trace_anything_ros.sim.ground_truth import compute_window

        frames = [self._render(s) for s in stamps_ns]
        return compute_window(frames, num_ctrl=self.num_ctrl, pose_fn=self.scene.poses_at,
                              dense_samples=self.dense_samples, with_visibility=False)

    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None, stamps_ns: Optional[Sequence[int]] = None) -> FieldPrediction:
        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        if (h, w) != self.input_size:
            raise ValueError(f"frames must be {self.input_size}, got {(h, w)}")
        self.calls += 1
        if stamps_ns is None:  # warm-up (black frames, no stamps): a static, zero-confidence field
            return FieldPrediction(ctrl_pts=np.zeros((n, self.num_ctrl, h, w, 3), np.float32),
                                   ctrl_conf=np.zeros((n, self.num_ctrl, h, w), np.float32),
                                   frame_times=np.linspace(0.0, 1.0, n, dtype=np.float32))
        if len(stamps_ns) != n:
            raise ValueError(f"{n} frames but {len(stamps_ns)} stamps")
        gt = self.ground_truth(stamps_ns)
        fld = gt.field
        ctrl = fld.ctrl_pts[:, :, self._src_v, self._src_u]          # [N, D, h, w, 3]
        conf = fld.ctrl_conf[:, :, self._src_v, self._src_u]         # [N, D, h, w]
        return FieldPrediction(ctrl_pts=np.ascontiguousarray(ctrl, np.float32),
                               ctrl_conf=np.ascontiguousarray(conf, np.float32),
                               frame_times=np.asarray(fld.frame_times, np.float32))

    def close(self) -> None:
        self._cache.clear()
        self.scene.close()


def create_estimator(params: Optional[dict] = None) -> GroundTruthOracle:
    """The node's factory signature (one dict). Scene keys from the dict, else a ``sim:key=value,...`` spec in
    ``weights`` (the node's ``model.weights``), else ``$TAR_SIM_ORACLE``; ``input_size`` [H, W] (default 96x128)
    and ``num_ctrl`` as for the model."""
    p = dict(params or {})
    cfg = dict(DEFAULTS)
    cfg.update(parse_spec(os.environ.get(ENV_VAR, "")))
    weights = str(p.get("weights") or "")
    if weights.startswith(SPEC_PREFIX):
        cfg.update(parse_spec(weights))
    elif weights:
        raise ValueError(f"sim oracle: model.weights must be empty or a '{SPEC_PREFIX}key=value,...' scene spec, "
                         f"got {weights!r}")
    cfg.update({k: type(DEFAULTS[k])(p[k]) for k in DEFAULTS if k in p})
    return GroundTruthOracle(input_size=tuple(p.get("input_size") or (96, 128)),
                             num_ctrl=int(p.get("num_ctrl", 10)), **cfg)
