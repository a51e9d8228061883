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

"""``trace-anything-ros eval``: benchmark field estimators on held-out generated MuJoCo scenes with ground truth.

    trace-anything-ros eval --preset ci --out out/eval
    trace-anything-ros eval --preset full --estimator model=trace_anything_ros.model.engine:create_estimator

Estimators: the baselines ``static`` (every pixel stays at its depth point), ``const_velocity`` (per-pixel
velocity from the last two frames' depth back-projections), the ``ground_truth`` oracle (sanity row), and any
``NAME=module:factory`` whose factory returns a ``FieldEstimator`` (``predict(frames) -> FieldPrediction``) or a
callable ``f(frames, depth)``. Writes ``results.json``, ``results.md`` and PNG plots to ``--out``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from typing import Callable, Dict, List

import numpy as np

PRESETS = {
    # < 3 min on 2 cores: 3 scenes x 1 window of 6 frames at 128 x 96
    "ci": dict(scenes=["tabletop", "moving_camera", "pick_place"], seeds=[1001], windows=1, frames=6, dt=0.12,
               width=128, height=96, num_ctrl=10, horizons=[0.5, 1.0], history_s=1.0),
    "full": dict(scenes=["tabletop", "moving_camera", "pick_place", "static_scene", "busy"],
                 seeds=[2001, 2002, 2003], windows=2, frames=8, dt=0.1, width=320, height=240, num_ctrl=10,
                 horizons=[0.5, 1.0], history_s=1.0),
    # history_s: seconds of the stream before each evaluated window, run through the pipeline first (a window
    # every ``hop`` frames, default half a window), so object tracks and their motion histories exist as on a node
}
DEFAULT_ESTIMATORS = ["ground_truth", "static", "const_velocity"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ci", help="benchmark size")
    parser.add_argument("--estimator", action="append", default=[], metavar="NAME[=module:factory]",
                        help=f"estimator to score (repeatable; default {', '.join(DEFAULT_ESTIMATORS)}); "
                             "'model' = trace_anything_ros.model.engine:create_estimator")
    parser.add_argument("--mask", default="displacement", choices=["displacement", "motion"],
                        help="mask function scored for IoU / J&F (motion: trace_anything_ros.motion.analyze)")
    parser.add_argument("--out", default="out/eval", help="output directory")
    parser.add_argument("--width", type=int, default=0, help="override the preset's image width")
    parser.add_argument("--height", type=int, default=0, help="override the preset's image height")
    parser.add_argument("--frames", type=int, default=0, help="override frames per window")
    parser.add_argument("--seed", type=int, action="append", default=[], help="override scene seeds")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def resolve_estimator(spec: str):
    """'static' | 'const_velocity' | 'ground_truth' | 'model' | 'NAME=module:factory' -> (name, estimator)."""
    from trace_anything_ros.eval.estimators import BASELINES

    name, _, target = spec.partition("=")
    if not target:
        if name in BASELINES:
            return name, BASELINES[name]()
        if name == "model":  # the node's default estimator: input regimes (model.regimes), embedded weights
            target = "trace_anything_ros.model.regimes:default_estimator"
        elif ":" in name:
            target, name = name, name.rsplit(":", 1)[1]
        else:
            raise ValueError(f"unknown estimator {spec!r}")
    mod, _, fn = target.partition(":")
    obj = getattr(importlib.import_module(mod), fn)
    return name, (obj() if isinstance(obj, type) or not hasattr(obj, "predict") and _is_factory(obj) else obj)


def _is_factory(fn) -> bool:
    import inspect

    try:
        ps = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(ps) == 0


def mask_function(kind: str) -> Callable:
    from trace_anything_ros.eval.metrics import displacement_mask

    if kind == "displacement":
        return displacement_mask
    import importlib

    _an = importlib.import_module("trace_anything_ros.motion.analyze")   # the module (the package exports a function)
    return lambda field: _an.analyze(field).labels


def generate_windows(cfg: dict):
    """Yield one dict per evaluated window of the preset's held-out scenes, while its scene is open: ``preset``,
    ``seed``, ``start`` (the window's first stamp), ``frames`` (rendered, oldest first: ``history`` frames of the
    stream before the window, then the window's ``cfg['frames']``), ``history``, ``gt`` (the window's ground truth),
    ``future`` ({h: world_T_bodies at +h}), ``past`` (body poses ``delta`` s before the newest frame, for the oracle
    velocity), ``delta``, ``pose_fn`` (scene.poses_at)."""
    from trace_anything_ros.sim.ground_truth import compute_window
    from trace_anything_ros.sim.scene import Scene, SceneConfig

    dt = cfg["dt"]
    for preset in cfg["scenes"]:
        for seed in cfg["seeds"]:
            scene = Scene(SceneConfig.from_preset(preset, seed=seed, width=cfg["width"], height=cfg["height"]))
            rng = np.random.default_rng(seed * 7 + 3)
            try:
                for _ in range(cfg["windows"]):
                    start = float(rng.uniform(0.8, 4.0))
                    n_hist = int(min(round(cfg.get("history_s", 0.0) / dt), np.floor(start / dt + 1e-9)))
                    frames = scene.record(n_hist + cfg["frames"], dt, start=start - n_hist * dt)
                    win = frames[n_hist:]
                    gt = compute_window(win, num_ctrl=cfg["num_ctrl"], pose_fn=scene.poses_at)
                    t_last = win[-1]["stamp"]
                    delta = 1e-3
                    yield dict(preset=preset, seed=seed, start=start, frames=frames, history=n_hist, gt=gt,
                               future={h: scene.poses_at(t_last + h) for h in cfg["horizons"]},
                               past=scene.poses_at(t_last - delta), delta=delta, pose_fn=scene.poses_at)
            finally:
                scene.close()


def stream_products(estimator, w: dict, cfg: dict, products=frozenset({"mask", "objects"}), params=None):
    """Run ``estimator`` on the stream of window ``w`` (``generate_windows``) through ``PerceptionPipeline``, as the
    node does: windows of ``cfg['frames']`` frames, a new one every ``hop`` frames (default half a window), ending
    with the evaluated window; the pipeline's tracker keeps the objects (and their histories) across windows.
    ``params``: ``PipelineParams`` (default: the node's, without sparse tracks). Returns ``(Products of the
    evaluated window, predict seconds of that window)``."""
    from trace_anything_ros.eval.estimators import ContextEstimator, GroundTruthEstimator
    from trace_anything_ros.pipeline import Frame, PerceptionPipeline, PipelineParams
    from trace_anything_ros.sim.ground_truth import compute_window, normalised_times

    frames, nf, n_hist = w["frames"], cfg["frames"], w["history"]
    h, wd = frames[0]["rgb"].shape[:2]
    K = np.asarray(frames[0]["K"], np.float64)
    needs_gt = isinstance(estimator, GroundTruthEstimator)

    def context(keys):
        sub = [frames[k] for k in keys]
        stamps = np.array([f["stamp"] for f in sub], np.float64)
        gt = w["gt"] if keys[0] == n_hist else (
            compute_window(sub, num_ctrl=cfg["num_ctrl"], pose_fn=w["pose_fn"], with_visibility=False)
            if needs_gt else None)
        return dict(K=K, cam_poses=np.stack([np.asarray(f["world_T_cam"], np.float64) for f in sub]),
                    stamps=stamps, frame_times=normalised_times(stamps).astype(np.float32), gt=gt)

    adapter = ContextEstimator(estimator, (h, wd), context)
    pp = PerceptionPipeline(adapter, params or PipelineParams(track_stride=0, forecast_horizon=max(cfg["horizons"])))
    pf = [Frame(stamp_ns=int(round(f["stamp"] * 1e9)), rgb=f["rgb"], frame_id="cam",
                depth=np.asarray(f["depth"], np.float32), intrinsics=K, key=i)
          for i, f in enumerate(frames)]
    hop = int(cfg.get("hop") or max(1, nf // 2))
    last = len(frames) - 1
    ends = sorted(range(last, nf - 2, -hop))
    out = None
    for e in ends:
        out = pp.process(pf[e - nf + 1:e + 1], products=None if products is None else set(products))
    return out, adapter.last_predict_s


def pipeline_forecaster(products):
    """``forecaster(h)`` for ``metrics.forecast_error``: every pixel of the newest frame (at its position now, the
    products' field) forecast by the pipeline's object motion models (``Products.forecast_pixels``)."""
    from trace_anything_ros.field.evaluate import evaluate_curves
    from trace_anything_ros.field.timemap import build_time_map

    fld = products.field
    tm = build_time_map(fld.stamps, fld.frame_times)
    now = evaluate_curves(fld.ctrl_pts[-1], [tm.frame_times[-1]], d_axis=0)[0]            # [H, W, 3]
    H, W = now.shape[:2]
    labels = products.labels if products.labels is not None else np.zeros((H, W), np.uint16)
    ids = np.where(labels > 0, labels.astype(np.int64), -1).reshape(-1)
    near = products.near_objects().reshape(-1)

    def forecaster(lead):
        pos, sig, conf = products.forecast_pixels(now.reshape(-1, 3), ids, [lead], near)
        return pos[:, 0].reshape(H, W, 3), sig[:, 0].reshape(H, W), conf[:, 0].reshape(H, W)

    return forecaster


def run(cfg: dict, estimators: Dict[str, object], mask_fn: Callable) -> dict:
    """Score every estimator on every window; each runs on the window's stream through the node's pipeline (see
    ``stream_products``): the field, masks and forecasts measured are the ones the node would publish. Reference
    rows ``hold_still`` and ``oracle_const_velocity`` (ground truth, forecasts only) come with every window."""
    from trace_anything_ros.eval.metrics import evaluate, forecast_references

    rows: List[dict] = []
    t0 = time.perf_counter()
    for w in generate_windows(cfg):
        meta = dict(scene=w["preset"], seed=w["seed"], start=w["start"])
        refs = forecast_references(w["gt"], w["frames"][-1]["body_poses"], w["past"], w["delta"], w["future"])
        for name, res in refs.items():
            rows.append(dict(res, estimator=name, **meta))
        for name, est in estimators.items():
            prods, pred_s = stream_products(est, w, cfg)
            fp = prods.forecast_params
            res = evaluate(prods.field, w["gt"], mask_fn=mask_fn, future_poses=w["future"],
                           forecaster=pipeline_forecaster(prods), tolerance=fp.tolerance if fp else 0.05)
            res.update(estimator=name, predict_s=pred_s, objects=len(prods.objects), **meta)
            rows.append(res)
    return dict(rows=rows, summary=summarize(rows), config=cfg, wall_s=time.perf_counter() - t0)


def _flat(d: dict, prefix: str = "") -> Dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, np.floating)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def summarize(rows: List[dict]) -> Dict[str, Dict[str, float]]:
    """Mean of every numeric metric per estimator (NaNs ignored)."""
    by: Dict[str, List[Dict[str, float]]] = {}
    for r in rows:
        by.setdefault(r["estimator"], []).append(_flat({k: v for k, v in r.items()
                                                        if k not in ("estimator", "scene", "seed", "start")}))
    out = {}
    for name, flats in by.items():
        keys = sorted(set().union(*flats))
        out[name] = {k: float(np.nanmean([f.get(k, np.nan) for f in flats])) if any(
            np.isfinite(f.get(k, np.nan)) for f in flats) else float("nan") for k in keys}
    return out


TABLE = [  # (column title, summary key, scale, format)
    ("EPE all (mm)", "epe_aligned.all", 1e3, ".1f"), ("EPE static (mm)", "epe_aligned.static", 1e3, ".1f"),
    ("EPE dynamic (mm)", "epe_aligned.dynamic", 1e3, ".1f"), ("EPE raw all (mm)", "epe_raw.all", 1e3, ".1f"),
    ("static spread (mm)", "static_spread", 1e3, ".1f"), ("consistency (mm)", "consistency.all", 1e3, ".1f"),
    ("mask IoU", "mask.iou", 1, ".3f"), ("J&F", "mask.JF", 1, ".3f"),
    ("forecast +0.5 s dyn (mm)", "forecast.0.5s.dynamic", 1e3, ".1f"),
    ("forecast +1 s dyn (mm)", "forecast.1s.dynamic", 1e3, ".1f"),
    ("+0.5 s cover90", "forecast.0.5s.cover90", 1, ".2f"), ("+1 s cover90", "forecast.1s.cover90", 1, ".2f"),
    ("+1 s conf / hit", ("forecast.1s.conf", "forecast.1s.hit"), 1, ".2f"), ("predict (s)", "predict_s", 1, ".3f"),
]


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"# Trajectory-field benchmark ({cfg.get('name', '')})", "",
             f"{len(cfg['scenes'])} scene presets x {len(cfg['seeds'])} seeds x {cfg['windows']} windows of "
             f"{cfg['frames']} frames ({cfg['dt']} s apart) at {cfg['width']}x{cfg['height']}; errors after median "
             "scale alignment unless 'raw'; consistency = same scene point from different frames; forecast = "
             "newest frame's pixels forecast by the node's pipeline (each object's motion model fitted over the "
             "stream's history, "
             "the other pixels held still), on moving pixels; references from the ground truth: hold_still and "
             "oracle_const_velocity (each point's exact trajectory extrapolated at its exact velocity); cover90 = "
             "fraction of moving pixels within the predicted 90 % error radius (0.90 when calibrated); conf / hit = "
             "mean published confidence / fraction within its tolerance.", "",
             "| estimator | " + " | ".join(c[0] for c in TABLE) + " |", "|---" * (len(TABLE) + 1) + "|"]
    for name, s in result["summary"].items():
        cells = []
        for _, key, sc, fmt in TABLE:
            vals = [s.get(k, float("nan")) for k in (key if isinstance(key, tuple) else (key,))]
            cells.append(" / ".join("n/a" if not np.isfinite(v) else format(v * sc, fmt) for v in vals))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time {result['wall_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def plots(result: dict, out: str) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, ax, title, name):
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    s = result["summary"]
    names = list(s)
    files = []
    groups = [("epe_aligned.static", "static"), ("epe_aligned.dynamic", "dynamic"), ("consistency.all", "consistency"),
              ("static_spread", "static spread")]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(names))
    wbar = 0.8 / len(groups)
    for k, (key, label) in enumerate(groups):
        ax.bar(x + k * wbar, [s[n].get(key, np.nan) * 1e3 for n in names], wbar, label=label)
    ax.set_xticks(x + wbar * (len(groups) - 1) / 2, names)
    ax.set_ylabel("mm (scale-aligned)")
    files.append(save(fig, ax, "Trajectory error at the frame times", "epe.png"))
    hs = sorted({k.split(".")[1] for n in names for k in s[n] if k.startswith("forecast.")},
                key=lambda v: float(v.rstrip("s")))
    if hs:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for n in names:
            ax.plot([float(h.rstrip("s")) for h in hs], [s[n].get(f"forecast.{h}.dynamic", np.nan) * 1e3 for h in hs],
                    "o-", label=n)
        ax.set_xlabel("lead time past the newest frame (s)")
        ax.set_ylabel("dynamic-pixel error (mm)")
        files.append(save(fig, ax, "Forecast error", "forecast.png"))
    return files


def main(args) -> int:
    cfg = dict(PRESETS[args.preset], name=args.preset)
    if args.width:
        cfg["width"] = args.width
    if args.height:
        cfg["height"] = args.height
    if args.frames:
        cfg["frames"] = args.frames
    if args.seed:
        cfg["seeds"] = list(args.seed)
    estimators = dict(resolve_estimator(s) for s in (args.estimator or DEFAULT_ESTIMATORS))
    result = run(cfg, estimators, mask_function(args.mask))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    md = markdown(result)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    files = [] if args.no_plots else plots(result, args.out)
    print(md)
    print("wrote", ", ".join([os.path.join(args.out, "results.json"), os.path.join(args.out, "results.md")] + files))
    return 0
