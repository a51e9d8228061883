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

"""Input regimes: one ``FieldEstimator`` that knows what each window gives it and runs the estimator that works there.

=============  ==========================================  =============================================================
regime         inputs of the window                        estimator
=============  ==========================================  =============================================================
official       user-supplied RGB network weights           that network (the official Trace Anything model), any input
rgbd_poses     depth (+ intrinsics) + camera poses         the shipped depth-aware network (``compact-rgbd``), the
                                                           regime it was trained in, or see ``RGBD_ESTIMATORS``
rgbd           depth (+ intrinsics), no camera poses       the same, static-camera assumption
rgb_static     RGB only, background does not move          ``flow_field.FlowFieldEstimator`` (geometry: DIS flow, fb
                                                           checks, scale-free plane, ``metric`` false)
rgb_moving     RGB only, background moves                  the same with the background's homography removed
goal_pair      current RGB-D + K and a goal image (pair)    ``planning.goal_pair`` (built in, imported lazily; the
                                                           planner node's goal-image default)
=============  ==========================================  =============================================================

``regime='auto'`` (the default) chooses per window from the inputs: weights of an RGB network given -> official;
depth present -> rgbd_poses / rgbd (poses present or not); else RGB, static or moving as the flow's background says.
A forced regime whose inputs are missing raises ``MissingInputError`` naming them (the node reports it in
``/diagnostics``); nothing is replaced by a stand-in. The regime of the last window is ``last_regime`` (and
``extras['regime']`` of the prediction); a change is logged once. Inputs the chosen estimator would like but can do
without (camera_info for the depth lifting) are named in ``last_warnings``.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .api import FieldPrediction

log = logging.getLogger(__name__)

AUTO = "auto"
REGIMES = ("official", "rgbd_poses", "rgbd", "rgb_static", "rgb_moving", "goal_pair")
CHOICES = (AUTO,) + REGIMES
# what each regime's estimator needs from the window (checked when the regime is forced)
NEEDS: Dict[str, Tuple[str, ...]] = {"official": ("weights",), "rgbd_poses": ("depth", "cam_poses"),
                                     "rgbd": ("depth",), "rgb_static": (), "rgb_moving": (), "goal_pair": ("depth",)}
INPUT_NAMES = {"depth": "depth images (node: use_depth + the 'depth' topic; process: an RGB-D bag)",
               "cam_poses": "camera poses (node: camera_pose.enabled / camera_pose.source)",
               "weights": "RGB network weights (model.weights = the official trace_anything.pt or another RGB-only "
                          "checkpoint; the embedded model is depth-aware)"}
# estimators for the RGB-D regimes: 'net' = the depth-aware network, 'flow' = geometric (depth lifted along the flow)
RGBD_ESTIMATORS = ("net", "flow")
# The depth-aware network decides motion itself (a per-pixel gate: its static pixels' curves are exactly still), so
# its fields state a floor just above float noise instead of motion.threshold's 0.01, which cut into its moving
# pixels: node-rule mask IoU 0.707 -> 0.852 on sim seeds 3001-3002 (tuned there; the benchmark's seeds are 2001-2003)
NET_MOTION_FLOOR = 5e-4
MIN_DEPTH_VALID = 0.05   # a window "has depth" when at least this fraction of its depth pixels is valid

_REGISTRY: Dict[str, Callable[[dict], object]] = {}
# regimes whose estimator lives elsewhere in the package, imported only when the regime is forced
_BUILTIN_PLUGS = {"goal_pair": "trace_anything_ros.planning.goal_pair:create"}


class MissingInputError(ValueError):
    """A forced regime's estimator needs an input this window does not have (the message names it)."""


def register_regime(name: str, factory: Callable[[dict], object]) -> None:
    """Plug an estimator in for regime ``name`` (e.g. 'goal_pair'): ``factory(params) -> FieldEstimator``, built
    lazily the first time the regime runs. Selected when forced (``regime=name``), or by auto when its estimator
    says it applies (an ``applies(frames, depth=..., **inputs) -> bool`` method)."""
    if name in ("auto",):
        raise ValueError("'auto' is not a regime")
    _REGISTRY[name] = factory


def _call(est, frames, frame_keys, depth, times, intrinsics, cam_poses) -> FieldPrediction:
    if getattr(est, "needs_intrinsics", False):
        return est.predict(frames, frame_keys=frame_keys, depth=depth, times=times, intrinsics=intrinsics,
                           cam_poses=cam_poses)
    return est.predict(frames, frame_keys=frame_keys, depth=depth)


class RegimeEstimator:
    """The FieldEstimator behind the node, ``process`` and the benchmark (see the module docstring).

    ``network``: the loaded network engine (or None: no weights / a forced RGB regime); ``rgbd``: which estimator
    the RGB-D regimes run ('net' | 'flow')."""

    needs_intrinsics = True   # receives K, times and camera poses from the pipeline (and passes them on)

    def __init__(self, regime: str = AUTO, network=None, input_size: Optional[Tuple[int, int]] = None,
                 num_ctrl: int = 10, rgbd: str = "net", params: Optional[dict] = None):
        if regime not in CHOICES and regime not in _REGISTRY:
            raise ValueError(f"unknown regime {regime!r}; use one of {CHOICES + tuple(_REGISTRY)}")
        if rgbd not in RGBD_ESTIMATORS:
            raise ValueError(f"rgbd estimator must be one of {RGBD_ESTIMATORS}, got {rgbd!r}")
        from .flow_field import FlowFieldEstimator
        self.regime = regime
        self.network = network
        self.network_is_rgb = network is not None and not getattr(network, "needs_intrinsics", False)
        if input_size is None:
            input_size = network.input_size if network is not None else (96, 128)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_ctrl = int(network.num_ctrl) if network is not None else int(num_ctrl)
        self.rgbd = rgbd
        self.params = dict(params or {})
        self.flow = FlowFieldEstimator(self.input_size, self.num_ctrl)
        self._plugged: Dict[str, object] = {}
        self.last_regime = ""
        self.last_reason = ""
        self.last_warnings: List[str] = []
        self.last_stats: Dict[str, float] = {}
        net = getattr(network, "description", type(network).__name__) if network is not None else "no network"
        self.description = f"regime {regime} (rgb-d: {rgbd}; {net}; rgb: geometric flow field)"
        if regime == "official" and not self.network_is_rgb:
            raise MissingInputError(f"regime 'official' needs {INPUT_NAMES['weights']}")
        if regime in ("rgbd", "rgbd_poses") and rgbd == "net" and network is None:
            raise MissingInputError(f"regime {regime!r} with the network estimator needs model.weights "
                                    "('embedded' or a depth-aware checkpoint)")

    def any_grid_without_depth(self) -> bool:
        """Whether every estimator this one runs on RGB-only windows works on any model grid: the geometric flow
        field does (no RGB network weights, no plugged regime, regime auto or an RGB one)."""
        return not self.network_is_rgb and not _REGISTRY and self.regime in (AUTO, "rgb_static", "rgb_moving")

    def set_input_size(self, input_size: Tuple[int, int]) -> None:
        """Another grid for the RGB-only estimator (``process`` and the node: the camera's aspect,
        ``preprocess.aspect_grid``; ``predict`` follows RGB-only frames of another grid by itself); the depth-aware
        network keeps its own and is not run on it. A new grid starts a new stream (the remembered background)."""
        if not self.any_grid_without_depth():
            raise ValueError(f"regime {self.regime!r} with {self.description}: its model grid is fixed")
        size = (int(input_size[0]), int(input_size[1]))
        if size != self.input_size:
            from .flow_field import FlowFieldEstimator
            self.flow.close()
            self.flow = FlowFieldEstimator(size, self.num_ctrl)
            self.input_size = size

    # -- choice -----------------------------------------------------------------------------------------------
    def choose(self, frames, depth, cam_poses, **inputs) -> Tuple[str, str]:
        """(regime, why) for one window; raises ``MissingInputError`` when a forced regime lacks an input."""
        has_depth = depth is not None and float(np.mean(np.isfinite(depth) & (np.asarray(depth) > 0))) \
            >= MIN_DEPTH_VALID
        have = {"depth": has_depth, "cam_poses": cam_poses is not None, "weights": self.network_is_rgb}
        if self.regime != AUTO:
            missing = [k for k in NEEDS.get(self.regime, ()) if not have[k]]
            if missing:
                raise MissingInputError(f"regime {self.regime!r} (forced) needs "
                                        + "; ".join(INPUT_NAMES[k] for k in missing) + ", absent in this window")
            return self.regime, "forced"
        for name, factory in _REGISTRY.items():
            est = self._plug(name)
            applies = getattr(est, "applies", None)
            if applies is not None and applies(frames, depth=depth, cam_poses=cam_poses, **inputs):
                return name, f"{name} estimator applies"
        if self.network_is_rgb:
            return "official", "RGB network weights given"
        if has_depth:
            return ("rgbd_poses", "depth + camera poses") if cam_poses is not None else ("rgbd", "depth, no poses")
        return "rgb", "no depth"

    def _plug(self, name):
        """The plugged estimator of regime ``name``, built once: a registered factory, else a built-in one
        (``_BUILTIN_PLUGS``, forced only: resolved for this estimator, never registered for the whole process, where
        auto would start consulting it and other estimators' grids would be fixed)."""
        if name not in self._plugged:
            factory = _REGISTRY.get(name)
            if factory is None:
                import importlib
                mod, fn = _BUILTIN_PLUGS[name].split(":")
                factory = getattr(importlib.import_module(mod), fn)
            self._plugged[name] = factory(dict(self.params))
        return self._plugged[name]

    # -- FieldEstimator ---------------------------------------------------------------------------------------
    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None,
                intrinsics: Optional[np.ndarray] = None, cam_poses: Optional[np.ndarray] = None,
                **inputs) -> FieldPrediction:
        regime, why = self.choose(frames, depth, cam_poses, **inputs)
        warnings: List[str] = []
        if regime in _REGISTRY or regime in _BUILTIN_PLUGS:
            est = self._plug(regime)
            pred = est.predict(frames, frame_keys=frame_keys, depth=depth, times=times, intrinsics=intrinsics,
                               cam_poses=cam_poses, **inputs)
        elif regime == "official":
            pred = _call(self.network, frames, frame_keys, depth, times, intrinsics, cam_poses)
        elif regime in ("rgbd", "rgbd_poses"):
            if intrinsics is None:
                warnings.append("no camera_info: depth lifted with default intrinsics (focal 0.9 x max(H, W)); "
                                "give the camera's K for a correct metric field")
            poses = cam_poses if regime == "rgbd_poses" else None
            est = self.network if self.rgbd == "net" else self.flow
            if est is self.flow:
                self.flow.camera = "static"
            pred = _call(est, frames, frame_keys, depth, times, intrinsics, poses)
            if est is self.network:
                if not isinstance(getattr(pred, "extras", None), dict):
                    pred = FieldPrediction(pred.ctrl_pts, pred.ctrl_conf, pred.frame_times)
                pred.extras = dict(pred.extras, motion_floor=NET_MOTION_FLOOR, estimator="net")
        else:  # RGB only: the flow field works on any grid, and follows the frames' (the node's follows its camera)
            if tuple(frames.shape[1:3]) != self.flow.input_size and self.any_grid_without_depth():
                self.set_input_size(frames.shape[1:3])
            self.flow.camera = {"rgb_static": "static", "rgb_moving": "moving"}.get(regime, "auto")
            pred = self.flow.predict(frames, frame_keys=frame_keys, depth=None, times=times, intrinsics=intrinsics)
            if regime == "rgb":
                regime = f"rgb_{pred.extras.get('camera', 'static')}"
                why = f"{why}, background {'moves' if regime == 'rgb_moving' else 'still'}"
        if not isinstance(getattr(pred, "extras", None), dict):
            pred = FieldPrediction(pred.ctrl_pts, pred.ctrl_conf, pred.frame_times)
        pred.extras = dict(pred.extras, regime=regime)
        if regime != self.last_regime:
            log.info("estimator regime: %s (%s)%s", regime, why, f"; {'; '.join(warnings)}" if warnings else "")
        self.last_regime, self.last_reason, self.last_warnings = regime, why, warnings
        sub = self.network if regime == "official" or (regime.startswith("rgbd") and self.rgbd == "net") \
            else self.flow
        self.last_stats = dict(getattr(sub, "last_stats", {}) or {})
        return pred

    def warmup(self, num_frames: int) -> None:
        """One window of black frames through every estimator this one may run (then forgets the regime, so the
        first real window is logged)."""
        h, w = self.input_size
        frames = np.zeros((num_frames, h, w, 3), np.uint8)
        if self.regime in (AUTO, "rgb_static", "rgb_moving"):
            self.flow.predict(frames)
        if self.network is not None and self.regime in (AUTO, "official", "rgbd", "rgbd_poses"):
            depth = np.ones((num_frames, h, w), np.float32)
            poses = np.repeat(np.eye(4)[None], num_frames, 0)
            _call(self.network, frames, None, depth, None, None, poses)
        self.flow.clear_cache()
        self.last_regime = ""

    def close(self) -> None:
        for est in [self.network, self.flow] + list(self._plugged.values()):
            if est is not None and hasattr(est, "close"):
                est.close()


def create_estimator(params: Dict) -> RegimeEstimator:
    """Factory (``estimator.factory`` / ``pipeline.load_estimator``): the engine keys of
    ``model.engine.create_estimator`` (weights, preset, engine, device, dtype, input_size, window, ...) plus
    ``regime`` ('auto' or one of ``REGIMES``) and ``rgbd_estimator`` ('net' | 'flow'). The network is loaded
    unless the forced regime is an RGB one or ``weights`` is None (no network)."""
    from . import engine
    p = dict(params or {})
    regime = str(p.pop("regime", AUTO) or AUTO)
    rgbd = str(p.pop("rgbd_estimator", "net") or "net")
    network = None
    if regime not in ("rgb_static", "rgb_moving") and p.get("weights", "embedded") is not None \
            and not (rgbd == "flow" and regime in ("rgbd", "rgbd_poses")):
        p.setdefault("weights", "embedded")
        network = engine.create_estimator(p)
    size = p.get("input_size")
    return RegimeEstimator(regime, network, tuple(size) if size else None, rgbd=rgbd, params=params)


def default_estimator() -> RegimeEstimator:
    """Zero-argument factory for the benchmark (``eval --estimator model``): the node's default estimator
    (regime auto, embedded weights)."""
    return create_estimator({"regime": AUTO, "weights": "embedded"})


def flow_rgbd_estimator() -> RegimeEstimator:
    """Zero-argument factory for the benchmark: regime auto with the geometric estimator in the RGB-D regimes."""
    return create_estimator({"regime": AUTO, "rgbd_estimator": "flow"})
