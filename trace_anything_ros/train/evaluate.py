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

"""Held-out evaluation of a trained model on simulated windows (the figures in the model card).

Windows come from scene seeds never used for training (default: seeds 100000+, the training run uses 0..119),
rendered and ground-truthed exactly like the training data (``train.dataset``). The model is run through the
project's estimator interface (``model.engine.create_estimator`` with ``weights=PATH``, i.e. the model package's
checkpoint loader), frames as uint8.

Metrics per window (all 3D figures in metres after a per-window scale alignment; the network is up to scale):

* scale: ``s = median(|X_gt| / |X_pred|)`` over the valid pixels of every frame at its own time;
* ``epe``: mean ``|s * P_ij - G_ij|`` over every valid pixel of frame i and every frame time j (curves evaluated at
  the GT normalised frame times); ``epe_dyn`` the same over GT-dynamic pixels only;
* ``motion_epe`` / ``motion_epe_dyn``: the error of the predicted *motion*
  ``|(s P_ij - s P_ii) - (G_ij - G_ii)|`` -- the trajectory quality without the depth error;
* baselines: ``static_gt`` (every point stays at its GT own-time position: an oracle with perfect depth, zero
  motion), ``static_model`` (the model's own-time positions held still: same depth error, no motion) and
  ``constvel_gt`` (oracle: GT positions at frames 0 and 1 extrapolated at constant velocity; frame 0's pixels at
  frames 2.., compared with the model on exactly that subset, ``*_cv_subset``);
* masks: the robot's rule ``motion.mask.dynamic_mask`` on the predicted tracks vs the GT mask (points whose
  largest displacement in the window exceeds ``GT_MASK_REL_MOTION`` = 2 % of their depth, the rule's own floor);
  IoU pooled over all frames (``mask_iou``), the mean per-frame IoU over frames with a non-empty GT mask
  (``mask_iou_mean``), and the pooled IoU against a looser GT (1 %, ``mask_iou_gt1pct``); the same for the
  official variance rule (``motion.mask.official_variance_mask`` on the control points, ``mask_iou_official``)
  and for the node's segmentation (``motion.analyze`` on the scale-aligned field: what ``~/dynamic_mask``
  publishes, ``mask_iou_node``);
* ``time_mae``: mean |predicted - GT| normalised frame time; baseline ``time_mae_uniform`` (i / (N-1)).
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import dataset as ds

HELD_OUT_FIRST_SEED = 100000
GT_MASK_REL_MOTION = 0.02      # what the ground truth calls moving (2 % of depth over the window)
GT_MASK_REL_MOTION_LOOSE = 0.01


def held_out_paths(num_scenes: int = 10, windows_per_scene: int = 2, frames: int = 4, size=(96, 128),
                   cache_dir: str = ds.DEFAULT_CACHE, first_seed: int = HELD_OUT_FIRST_SEED,
                   progress: bool = False, seeds: Optional[Sequence[int]] = None) -> List[str]:
    """Held-out windows (rendered into ``cache_dir`` when missing): scene seeds ``first_seed ..
    first_seed + num_scenes - 1`` (or exactly ``seeds``)."""
    spec = ds.WindowSpec(frames=frames, height=int(size[0]), width=int(size[1]),
                         windows_per_scene=windows_per_scene)
    seeds = list(range(first_seed, first_seed + num_scenes)) if seeds is None else [int(x) for x in seeds]
    return ds.build_cache(seeds, spec, cache_dir, progress=progress)


def _motion_score_gt(G_i: np.ndarray, i: int) -> np.ndarray:
    d = np.linalg.norm(G_i - G_i[i][None], axis=-1).max(0)
    z = np.maximum(G_i[i][..., 2], 1e-6)
    return d / z


def window_metrics(pred_ctrl: np.ndarray, pred_conf: np.ndarray, pred_times: np.ndarray,
                   sample: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Metrics of one window (see the module doc) plus the raw counts needed to pool them."""
    from ..field.evaluate import evaluate_curves
    from ..motion.mask import dynamic_mask
    G = ds.gt_tracks(sample).astype(np.float64)                 # [N, N, H, W, 3]
    valid = sample["valid"]
    times = sample["times"].astype(np.float64)
    n = G.shape[0]
    P = np.stack([evaluate_curves(pred_ctrl[i], times, d_axis=0) for i in range(n)]).astype(np.float64)
    C = np.stack([evaluate_curves(pred_conf[i], times, d_axis=0) for i in range(n)])
    own_p = P[np.arange(n), np.arange(n)]                        # [N, H, W, 3]
    own_g = G[np.arange(n), np.arange(n)]
    rp = np.linalg.norm(own_p, axis=-1)[valid]
    rg = np.linalg.norm(own_g, axis=-1)[valid]
    good = np.isfinite(rp) & (rp > 1e-9)
    s = float(np.median(rg[good] / rp[good])) if good.any() else 1.0
    P = P * s
    own_p = own_p * s
    vm = np.broadcast_to(valid[:, None], G.shape[:-1])
    dyn = sample["dynamic"]
    dm = np.broadcast_to((valid & dyn)[:, None], G.shape[:-1])
    err = np.linalg.norm(P - G, axis=-1)
    m_err = np.linalg.norm((P - own_p[:, None]) - (G - own_g[:, None]), axis=-1)
    e_static_gt = np.linalg.norm(own_g[:, None] - G, axis=-1)
    e_static_model = np.linalg.norm(own_p[:, None] - G, axis=-1)
    out = {"scale": s, "n_valid": int(vm.sum()), "n_dyn": int(dm.sum())}

    def mean(x, m):
        return float(x[m].mean()) if m.any() else float("nan")

    out.update(epe=mean(err, vm), epe_dyn=mean(err, dm), motion_epe=mean(m_err, vm), motion_epe_dyn=mean(m_err, dm),
               static_gt_epe=mean(e_static_gt, vm), static_gt_epe_dyn=mean(e_static_gt, dm),
               static_model_epe=mean(e_static_model, vm), static_model_epe_dyn=mean(e_static_model, dm))
    # constant velocity oracle: frame 0's pixels, positions at frames >= 2 from GT at t0, t1
    if n >= 3:
        g0 = G[0]
        v = (g0[1] - g0[0]) / max(times[1] - times[0], 1e-9)
        cv = g0[0][None] + (times[2:] - times[0])[:, None, None, None] * v[None]
        sub = np.broadcast_to(valid[0][None], (n - 2,) + valid.shape[1:])
        subd = np.broadcast_to((valid[0] & dyn[0])[None], sub.shape)
        e_cv = np.linalg.norm(cv - g0[2:], axis=-1)
        e_model = np.linalg.norm(P[0, 2:] - g0[2:], axis=-1)
        e_st = np.linalg.norm(g0[0][None] - g0[2:], axis=-1)
        out.update(constvel_gt_epe_cv_subset=mean(e_cv, sub), constvel_gt_epe_dyn_cv_subset=mean(e_cv, subd),
                   model_epe_cv_subset=mean(e_model, sub), model_epe_dyn_cv_subset=mean(e_model, subd),
                   static_gt_epe_cv_subset=mean(e_st, sub), static_gt_epe_dyn_cv_subset=mean(e_st, subd),
                   n_cv=int(sub.sum()), n_cv_dyn=int(subd.sum()))
    # masks
    from ..field.types import TrajectoryField
    from ..motion import MotionParams, analyze
    from ..motion.mask import official_variance_mask
    inter = union = inter1 = union1 = inter_o = union_o = inter_n = union_n = 0
    ious = []
    # the node's segmentation (motion.analyze: what ~/dynamic_mask publishes) on the scale-aligned field
    fld = TrajectoryField(np.asarray(pred_ctrl, np.float32) * np.float32(s), np.asarray(pred_conf, np.float32),
                          np.asarray(pred_times, np.float32), np.asarray(sample["stamps"], np.float64), metric=True)
    for i in range(n):
        nm = analyze(fld, params=MotionParams(frame=i)).mask & valid[i]
        gt_mask = valid[i] & (_motion_score_gt(G[i], i) > GT_MASK_REL_MOTION)
        inter_n += int((gt_mask & nm).sum())
        union_n += int((gt_mask | nm).sum())
    for i in range(n):
        score = _motion_score_gt(G[i], i)
        gt_mask = valid[i] & (score > GT_MASK_REL_MOTION)
        gt_loose = valid[i] & (score > GT_MASK_REL_MOTION_LOOSE)
        pm = dynamic_mask(P[i], i, conf=C[i, i]).mask & valid[i]
        om = official_variance_mask(pred_ctrl[i])[0] & valid[i]
        a, b = int((gt_mask & pm).sum()), int((gt_mask | pm).sum())
        inter += a
        union += b
        inter1 += int((gt_loose & pm).sum())
        union1 += int((gt_loose | pm).sum())
        inter_o += int((gt_mask & om).sum())
        union_o += int((gt_mask | om).sum())
        if gt_mask.any():
            ious.append(a / max(b, 1))
    out.update(mask_inter=inter, mask_union=union, mask_iou_frames=ious, mask_inter_gt1=inter1,
               mask_union_gt1=union1, mask_inter_official=inter_o, mask_union_official=union_o,
               mask_inter_node=inter_n, mask_union_node=union_n)
    out["time_mae"] = float(np.abs(np.asarray(pred_times, np.float64) - times).mean())
    out["time_mae_uniform"] = float(np.abs(np.linspace(0, 1, n) - times).mean())
    return out


_POOLED = ["epe", "epe_dyn", "motion_epe", "motion_epe_dyn", "static_gt_epe", "static_gt_epe_dyn",
           "static_model_epe", "static_model_epe_dyn"]
_CV = ["constvel_gt_epe_cv_subset", "constvel_gt_epe_dyn_cv_subset", "model_epe_cv_subset",
       "model_epe_dyn_cv_subset", "static_gt_epe_cv_subset", "static_gt_epe_dyn_cv_subset"]


def aggregate(per_window: Sequence[Dict]) -> Dict[str, float]:
    """Point-weighted means over windows (each window weighted by its number of valid / dynamic points)."""
    res: Dict[str, float] = {"windows": len(per_window)}
    for k in _POOLED + _CV:
        wkey = ("n_cv_dyn" if "dyn" in k else "n_cv") if k in _CV else ("n_dyn" if k.endswith("_dyn") else "n_valid")
        vals = [(w[k], w[wkey]) for w in per_window if k in w and np.isfinite(w[k]) and w[wkey] > 0]
        tot = sum(c for _, c in vals)
        res[k] = float(sum(v * c for v, c in vals) / tot) if tot else float("nan")
    inter = sum(w["mask_inter"] for w in per_window)
    union = sum(w["mask_union"] for w in per_window)
    res["mask_iou"] = float(inter / union) if union else float("nan")
    for suffix, key in (("_gt1", "mask_iou_gt1pct"), ("_official", "mask_iou_official"), ("_node", "mask_iou_node")):
        i_ = sum(w.get("mask_inter" + suffix, 0) for w in per_window)
        u_ = sum(w.get("mask_union" + suffix, 0) for w in per_window)
        res[key] = float(i_ / u_) if u_ else float("nan")
    frames = [x for w in per_window for x in w["mask_iou_frames"]]
    res["mask_iou_mean"] = float(np.mean(frames)) if frames else float("nan")
    res["time_mae"] = float(np.mean([w["time_mae"] for w in per_window]))
    res["time_mae_uniform"] = float(np.mean([w["time_mae_uniform"] for w in per_window]))
    res["ratio_motion_epe_vs_static"] = res["motion_epe"] / res["static_gt_epe"]
    res["ratio_epe_dyn_vs_static_gt"] = res["epe_dyn"] / res["static_gt_epe_dyn"]
    res["ratio_motion_epe_dyn_vs_static"] = res["motion_epe_dyn"] / res["static_gt_epe_dyn"]
    res["ratio_epe_vs_static_model"] = res["epe"] / res["static_model_epe"]
    res["ratio_epe_dyn_vs_static_model"] = res["epe_dyn"] / res["static_model_epe_dyn"]
    return res


def evaluate(weights: str, paths: Sequence, threads: Optional[int] = None, device: str = "cpu") -> Dict:
    """Run the checkpoint on windows (cache paths, or window dicts as ``dataset.load_window`` returns);
    returns ``{'summary': ..., 'per_window': [...]}``."""
    from ..model.engine import create_estimator
    est = create_estimator({"weights": weights, "device": device, "threads": threads, "cache_size": 0})
    per = []
    t_model = 0.0
    for k, p in enumerate(paths):
        s = ds.load_window(p) if isinstance(p, str) else p
        name = os.path.basename(p) if isinstance(p, str) else f"window{k}"
        if tuple(s["images"].shape[1:3]) != tuple(est.input_size):
            raise ValueError(f"window {name} is {s['images'].shape[1:3]}, the model takes {est.input_size}")
        t0 = time.perf_counter()
        # a depth-aware model gets what the robot measures (depth, K, camera motion, stamps); RGB-only: frames only
        kw = (dict(depth=s["depth"], intrinsics=s["K"], cam_poses=s["ref_T_cam"], times=s["times"])
              if getattr(est, "needs_intrinsics", False) else {})
        pred = est.predict(s["images"], **kw)
        t_model += time.perf_counter() - t0
        m = window_metrics(pred.ctrl_pts, pred.ctrl_conf, pred.frame_times, s)
        m["window"] = name
        m["preset"] = str(s["preset"])
        per.append(m)
    est.close()
    summary = aggregate(per)
    summary["model_s_per_window"] = t_model / max(1, len(paths))
    return {"summary": summary, "per_window": per}


def save_windows(path: str, paths: Sequence[str]) -> None:
    """Bundle cached windows into one npz (``w{k}_<key>``): a fixed evaluation set independent of the simulator."""
    out = {}
    for k, p in enumerate(paths):
        for key, v in ds.load_window(p).items():
            out[f"w{k}_{key}"] = v
    np.savez_compressed(path, **out)


def load_windows(path: str) -> List[Dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        items: Dict[int, Dict[str, np.ndarray]] = {}
        for name in z.files:
            k, key = name.split("_", 1)
            items.setdefault(int(k[1:]), {})[key] = z[name]
    return [items[k] for k in sorted(items)]


def format_summary(s: Dict) -> str:
    mm = 1000.0
    lines = [
        f"windows: {s['windows']}",
        f"3D EPE all pixels  : model {s['epe'] * mm:.1f} mm | static (GT depth) {s['static_gt_epe'] * mm:.1f} mm | "
        f"static (model depth) {s['static_model_epe'] * mm:.1f} mm",
        f"3D EPE dynamic     : model {s['epe_dyn'] * mm:.1f} mm | "
        f"static (GT depth) {s['static_gt_epe_dyn'] * mm:.1f} mm"
        f" | static (model depth) {s['static_model_epe_dyn'] * mm:.1f} mm "
        f"(ratio vs static-GT {s['ratio_epe_dyn_vs_static_gt']:.2f})",
        f"motion EPE all     : model {s['motion_epe'] * mm:.1f} mm vs static {s['static_gt_epe'] * mm:.1f} mm "
        f"(ratio {s['ratio_motion_epe_vs_static']:.2f})",
        f"motion EPE dynamic : model {s['motion_epe_dyn'] * mm:.1f} mm vs static {s['static_gt_epe_dyn'] * mm:.1f} mm "
        f"(ratio {s['ratio_motion_epe_dyn_vs_static']:.2f})",
        f"const-vel subset   : model {s['model_epe_dyn_cv_subset'] * mm:.1f} mm | const-vel (GT) "
        f"{s['constvel_gt_epe_dyn_cv_subset'] * mm:.1f} mm | static (GT) {s['static_gt_epe_dyn_cv_subset'] * mm:.1f} mm"
        f" (dynamic pixels of frame 0 at frames 2..)",
        f"mask IoU           : pooled {s['mask_iou']:.3f}, mean per frame {s['mask_iou_mean']:.3f}, "
        f"vs 1% GT {s['mask_iou_gt1pct']:.3f}; official variance rule {s['mask_iou_official']:.3f}; node "
        f"(motion.analyze) {s.get('mask_iou_node', float('nan')):.3f}",
        f"time MAE           : model {s['time_mae']:.4f} vs uniform {s['time_mae_uniform']:.4f}",
    ]
    return "\n".join(lines)


def main_cli(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="evaluate a checkpoint on held-out simulated windows")
    p.add_argument("weights")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--windows-per-scene", type=int, default=2)
    p.add_argument("--first-seed", type=int, default=HELD_OUT_FIRST_SEED)
    p.add_argument("--cache", default=ds.DEFAULT_CACHE)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    from ..model.checkpoint import read_checkpoint
    _, rep = read_checkpoint(a.weights)
    cfg = rep.config
    frames = 4
    paths = held_out_paths(a.scenes, a.windows_per_scene, frames, cfg.input_size, a.cache, a.first_seed)
    res = evaluate(a.weights, paths, threads=a.threads)
    print(format_summary(res["summary"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_cli())
