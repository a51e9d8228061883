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

r"""Ship a trained checkpoint: copy it into ``model/weights/`` and record its held-out figures next to it.

    python -m trace_anything_ros.train.ship build/train_run/best.safetensors \
        --name compact_sim --scenes 10 --windows-per-scene 2

writes ``trace_anything_ros/model/weights/<name>.safetensors`` and ``<name>.eval.json``: the full held-out
evaluation (``train.evaluate``) and a small ``test_subset`` (two held-out windows) that the test suite re-computes
and compares within the recorded tolerance.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil

from . import dataset as ds
from . import evaluate as ev

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model", "weights")
TEST_SUBSET_SEEDS = (ev.HELD_OUT_FIRST_SEED, ev.HELD_OUT_FIRST_SEED + 4)   # a tabletop and a busy scene
MAX_BYTES = 20 * 1024 * 1024
# What the test accepts when re-computing the subset (rendering/BLAS differences across machines):
TOLERANCE = {"epe_rel": 0.05, "mask_iou_abs": 0.05, "time_mae_abs": 0.01}


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ship(src: str, name: str = "compact_sim", scenes: int = 10, windows_per_scene: int = 2,
         cache_dir: str = ds.DEFAULT_CACHE, threads: int = 2, frames: int = 4) -> dict:
    from ..model.checkpoint import read_checkpoint
    from safetensors import safe_open
    if os.path.getsize(src) > MAX_BYTES:
        raise ValueError(f"{src} is {os.path.getsize(src)} bytes, more than {MAX_BYTES}")
    _, rep = read_checkpoint(src)
    os.makedirs(WEIGHTS_DIR, exist_ok=True)
    dst = os.path.join(WEIGHTS_DIR, f"{name}.safetensors")
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    with safe_open(dst, framework="pt") as f:
        meta = f.metadata() or {}
    size = rep.config.input_size
    full_paths = ev.held_out_paths(scenes, windows_per_scene, frames, size, cache_dir)
    full = ev.evaluate(dst, full_paths, threads=threads)
    sub_paths = ev.held_out_paths(windows_per_scene=1, frames=frames, size=size, cache_dir=cache_dir,
                                  seeds=TEST_SUBSET_SEEDS)
    fixture = os.path.join(WEIGHTS_DIR, f"{name}.testwindows.npz")
    ev.save_windows(fixture, sub_paths)
    sub = ev.evaluate(dst, ev.load_windows(fixture), threads=threads)
    scene_py = os.path.join(os.path.dirname(WEIGHTS_DIR), "..", "sim", "scene.py")
    record = {
        "checkpoint": os.path.basename(dst), "sha256": sha256(dst), "bytes": os.path.getsize(dst),
        "config": rep.config.to_dict(), "parameters": rep.param_count,
        "trained_steps": int(meta.get("step", "0")), "val_loss": meta.get("val_loss"),
        "train_config": json.loads(meta["train_config"]) if "train_config" in meta else None,
        "held_out": {"seeds": [ev.HELD_OUT_FIRST_SEED, ev.HELD_OUT_FIRST_SEED + scenes - 1],
                     "windows_per_scene": windows_per_scene, "frames": frames, "summary": full["summary"],
                     "per_window": [{k: v for k, v in w.items() if k != "mask_iou_frames"}
                                    for w in full["per_window"]]},
        "test_subset": {"seeds": list(TEST_SUBSET_SEEDS), "windows_per_scene": 1, "frames": frames,
                        "windows_file": os.path.basename(fixture), "summary": sub["summary"]},
        "held_out_cache": os.path.relpath(os.path.dirname(full_paths[0])),
        "sim_scene_py_sha256": sha256(scene_py) if os.path.exists(scene_py) else None,
        "tolerance": TOLERANCE,
        "evaluate_command": f"python -m trace_anything_ros.train.evaluate {os.path.relpath(dst)} --scenes {scenes} "
                            f"--windows-per-scene {windows_per_scene}",
    }
    with open(os.path.join(WEIGHTS_DIR, f"{name}.eval.json"), "w") as f:
        json.dump(record, f, indent=2, default=float)
    return record


def _train_rows(run_dir: str):
    import csv
    path = os.path.join(run_dir, "log.csv")
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "val"]


def _train_command(tc: dict) -> str:
    w = tc["weights"]
    parts = [f"trace-anything-ros train --preset {tc['preset']}", f"--steps {tc['steps']}", f"--batch {tc['batch']}",
             f"--lr {tc['lr']:g}", f"--warmup {tc['warmup']}", f"--weight-decay {tc['weight_decay']:g}",
             f"--frames {tc['frames']}", f"--size {tc['size'][0]} {tc['size'][1]}",
             f"--aux-ramp {tc['aux_ramp'][0]} {tc['aux_ramp'][1]}", f"--scenes {tc['num_scenes']}",
             f"--windows-per-scene {tc['windows_per_scene']}", f"--val-windows {tc['val_windows']}",
             f"--val-every {tc['val_every']}", f"--ckpt-every {tc['ckpt_every']}", f"--seed {tc['seed']}",
             f"--threads {tc['threads']}", "--device cpu", f"--out {tc['out_dir']}"]
    if tc.get("max_minutes"):
        parts.append(f"--max-minutes {tc['max_minutes']:g}")
    if tc.get("init"):
        parts.append(f"--init {tc['init']}")
    if tc.get("depth_dropout"):
        parts.append(f"--depth-dropout {tc['depth_dropout']:g}")
    parts.append(f"--cache {tc.get('cache_dir', 'build/train_cache')}")
    defaults = {"traj": 1.0, "alpha": 0.2, "motion": 2.0, "static": 0.5, "corr": 0.5, "time": 1.0,
                "dynamic_weight": 4.0, "conf_eps": 5e-3, "gate": 1.0}
    for k, v in w.items():
        if defaults.get(k) != v:
            parts.append(f"--w-{k.replace('_', '-')} {v:g}")
    return " \\\n    ".join(parts)


INIT_HISTORY = {"compact_sim": "f70dc2d"}   # commit whose compact_sim.safetensors was this one's --init


def _init_note(tc: dict, name: str) -> str:
    init = tc.get("init") or ""
    if os.path.basename(init) != f"{name}.safetensors" or name not in INIT_HISTORY:
        return ""
    c = INIT_HISTORY[name]
    return (f"`--init` was the previous shipped `{name}` (RGB-only), replaced by this one: restore it with "
            f"`git show {c}:trace_anything_ros/model/weights/{name}.safetensors > build/{name}_rgb.safetensors` and "
            f"pass that path.\n")


def _architecture(record: dict, s: dict) -> str:
    c = record["config"]
    base = (f"encoder {c['encoder']['embed_dim']} wide x {c['encoder']['depth']} blocks ({c['encoder']['num_heads']} "
            f"heads, {c['encoder']['in_chans']} input channels), fusion transformer {c['decoder']['embed_dim']} x "
            f"{c['decoder']['depth']}, half-width DPT heads (feature {c['head']['feature_dim']}, last "
            f"{c['head']['last_dim']}, layers {c['head']['layer_dims']}); D = {c['num_ctrl']} control points, input "
            f"{c['input_size'][0]}x{c['input_size'][1]}, windows of {record['held_out']['frames']} frames; the "
            f"decoder's eval-time attention rescaling is off (trained and run on the same token count).")
    if c.get("geometry", "none") == "depth_flow":
        what = ("`" + c["name"] + "`: the project's depth-aware variant of the compact Trace Anything network "
                "(`ModelConfig.geometry = 'depth_flow'`, `model.geometry`, `network.GeometryHead`). A 2.5 M-parameter "
                "network trained on two CPU cores cannot learn monocular depth to the precision a manipulation planner "
                "needs, and a robot measures depth; so the encoder sees RGB plus inverse depth, a depth-valid flag, "
                "DIS optical flow to the next / from the previous frame and a motion cue, and the track head blends "
                "each pixel's curve between its depth back-projection and its flow-chained, depth-lifted samples with "
                "a learned per-pixel gate, plus a residual (a full-resolution convolutional refinement sharpens gate "
                "and residual at object boundaries). Static points come out exactly at their measured positions; what "
                "the network learns is which pixels move and how their curves go. Official structure otherwise: ")
    else:
        what = "`" + c["name"] + "`: the official structure at compact width: "
    return ("## Architecture\n" + what + base + f" Inference on this CPU: {s['model_s_per_window']:.2f} s per "
            f"{record['held_out']['frames']}-frame window (geometry inputs included; shared machine).\n")


def write_model_card(record: dict, run_dir: str, name: str = "compact_sim") -> str:
    """MODEL_CARD.md next to the checkpoint, every figure taken from ``record`` and the run's logs."""
    s = record["held_out"]["summary"]
    tc = record.get("train_config") or {}
    tr, va = _train_rows(run_dir)
    summary = {}
    if os.path.exists(os.path.join(run_dir, "log.json")):
        with open(os.path.join(run_dir, "log.json")) as f:
            summary = json.load(f)
    mm = 1000.0

    def avg(rows, key, a, b):
        vals = [float(r[key]) for r in rows[a:b] if r.get(key) not in (None, "")]
        return sum(vals) / len(vals) if vals else float("nan")

    n = len(tr)
    first = f"{avg(tr, 'loss', 0, 20):.3f}" if n else "?"
    lastl = f"{avg(tr, 'loss', max(0, n - 50), n):.3f}" if n else "?"
    val_table = "\n".join(f"| {r['step']} | {float(r['loss']):.4f} | {float(r['epe']):.4f} | "
                          f"{float(r['motion_epe_dyn']):.4f} | {float(r['time']):.4f} |" for r in va)
    spp = [float(r["sec_per_step"]) for r in tr if r.get("sec_per_step")]
    med_sps = sorted(spp)[len(spp) // 2] if spp else float("nan")
    wall = float(summary.get("wall_s", float("nan")))
    ratio_m = s["ratio_motion_epe_dyn_vs_static"]
    ratio_e = s["ratio_epe_dyn_vs_static_gt"]
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    text = f"""# {name}: the project's own compact Trace Anything model (simulation only)

`trace_anything_ros/model/weights/{name}.safetensors` -- {record['bytes'] / 1e6:.1f} MB, {record['parameters']:,}
parameters, our safetensors format with the architecture config embedded (load with
`trace_anything_ros.model.checkpoint.load_model(path)` or `create_estimator({{"weights": path}})`; the node takes it
as `model.weights`). sha256 `{record['sha256']}`. Trained on this project's MuJoCo scenes only{' (started from ' + tc['init'] + ', an earlier RGB-only checkpoint of this project trained from scratch the same way)' if tc.get('init') else ', from scratch'}; no
official weights or data were used (the official checkpoint is CC BY-NC and never bundled).
Figures below are generated by `python -m trace_anything_ros.train.ship` from `{name}.eval.json` and the run's logs.

{_architecture(record, s)}
## Data
`trace_anything_ros.train.dataset`: windows rendered from `sim.scene` tabletop scenes (presets tabletop,
moving_camera, pick_place, static_scene, busy, cycled by seed) at the model size, with exact ground truth from the
scenes' analytic poses: every pixel's 3D position at every frame time in the reference camera (frame 0), validity,
dynamic flag (moves > 1 mm in the window), correspondences between frames (projection + depth check). Frame gaps
are drawn per window (base gap 0.08-0.35 s, each gap +-40 %), so frame times are not uniform.
Training: scene seeds {tc.get('first_seed', 0)}..{tc.get('first_seed', 0) + tc.get('num_scenes', 0) - 1}, {tc.get('windows_per_scene')} windows each,
split by scene seed ({1 - tc.get('val_fraction', 0.1):.0%} train / {tc.get('val_fraction', 0.1):.0%} val, split seed {tc.get('seed')});
augmentation: colour jitter, horizontal flip with the consistent 3D flip. Cache: `{tc.get('cache_dir', 'build/train_cache')}` (npz).
Held-out evaluation: scene seeds {record['held_out']['seeds'][0]}..{record['held_out']['seeds'][1]} (never used in
training), {record['held_out']['windows_per_scene']} windows each ({s['windows']} windows).

## Recipe (exact commands)
```
trace-anything-ros train --cache-only --scenes {tc.get('num_scenes')} --windows-per-scene {tc.get('windows_per_scene')} --cache {tc.get('cache_dir', 'build/train_cache')}
{_train_command(tc) if tc else '?'}
python -m trace_anything_ros.train.ship {tc.get('out_dir', 'build/train_run')}/best.safetensors --name {name}
```
{_init_note(tc, name)}
Losses (`train.losses`, scale-normalised by each side's mean frame-0 distance): confidence-weighted trajectory
error at the GT frame times (conf * (err + {tc.get('weights', {}).get('conf_eps', 0)}) - 0.2 log conf, GT-dynamic pixels x4), class-balanced motion error relative
to each pixel's own-time position (weight 2), static-pixel curve collapse (0.5), correspondence agreement (0.5),
time-head L1 (1), and for the depth-aware model a class-balanced BCE of its motion gate against the GT dynamic
mask ({tc.get('weights', {}).get('gate', 0)}); motion/static/corr weights ramped over steps {tc.get('aux_ramp')}. Depth dropout
{tc.get('depth_dropout', 0)}: that share of static-camera windows is shown without depth and trained on the 2.5D
target (`train.dataset.without_depth`), so plain videos work. AdamW (betas 0.9/0.95,
weight decay {tc.get('weight_decay')}), lr {tc.get('lr')} with {tc.get('warmup')} warm-up steps then cosine to 5 %,
gradient clip {tc.get('grad_clip')}, batch {tc.get('batch')}, 2 CPU threads on a shared 2-core machine.

## Training run
{summary.get('step', n)} steps (of {tc.get('steps')} planned{'; stopped by the time limit, so the cosine schedule did not reach its end' if summary.get('stopped_early') else ''}),
wall time {wall / 60:.0f} min ({wall / max(1, summary.get('step', n) or 1):.2f} s/step on average, median {med_sps:.2f} s/step:
the 2 cores were shared with other jobs; {2 / med_sps if med_sps else float('nan'):.1f} windows/s at the median, batch 2).
Training loss (mean of the first 20 / last 50 steps): {first} -> {lastl}. Shipped: the best validation checkpoint
(step {record['trained_steps']}, val loss {record['val_loss']}). Validation (16 windows of held-out-by-seed scenes; errors in units of the mean
frame-0 distance):

| step | val loss | EPE (norm.) | motion EPE dynamic (norm.) | time L1 |
|---:|---:|---:|---:|---:|
{val_table}

## Held-out evaluation
`{record['evaluate_command']}` (3D figures in mm after a per-window median scale alignment; the model is up to
scale):

| metric | model | static, GT depth | static, model depth | const. velocity (GT, oracle) |
|---|---:|---:|---:|---:|
| 3D EPE, all pixels | {s['epe'] * mm:.1f} | {s['static_gt_epe'] * mm:.1f} | {s['static_model_epe'] * mm:.1f} | |
| 3D EPE, dynamic pixels | {s['epe_dyn'] * mm:.1f} | {s['static_gt_epe_dyn'] * mm:.1f} | {s['static_model_epe_dyn'] * mm:.1f} | |
| motion EPE, all pixels | {s['motion_epe'] * mm:.1f} | {s['static_gt_epe'] * mm:.1f} | | |
| motion EPE, dynamic pixels | {s['motion_epe_dyn'] * mm:.1f} | {s['static_gt_epe_dyn'] * mm:.1f} | | |
| 3D EPE, frame 0's dynamic pixels at frames 2.. | {s['model_epe_dyn_cv_subset'] * mm:.1f} | {s['static_gt_epe_dyn_cv_subset'] * mm:.1f} | | {s['constvel_gt_epe_dyn_cv_subset'] * mm:.1f} |

Motion EPE = error of the predicted displacement from each pixel's own-time position (removes the depth error,
which dominates the absolute EPE). Dynamic masks (robot rule `motion.mask.dynamic_mask` on the predicted tracks vs
GT points moving more than 2 % of their depth; the rule detects from 1 %, chosen on the validation scenes):
pooled IoU **{s['mask_iou']:.3f}** (mean per frame {s['mask_iou_mean']:.3f}; vs a 1 % GT {s['mask_iou_gt1pct']:.3f});
the node's segmentation (`motion.analyze`, what `~/dynamic_mask` publishes) **{s.get('mask_iou_node', float('nan')):.3f}**;
the official variance rule on our control points {s['mask_iou_official']:.3f} (a baseline: Otsu splits every frame's
variances, so its threshold is relative to the frame, not to a motion). Frame times: MAE {s['time_mae']:.4f} vs {s['time_mae_uniform']:.4f} for uniform times.

Against the targets: 3D EPE <= 0.7x the everything-static baseline -- {met(ratio_e <= 0.7)} (dynamic pixels:
{ratio_e:.2f}x the static baseline with GT depth, all pixels {s['epe'] / max(s['static_gt_epe'], 1e-12):.2f}x; the static
baseline is an oracle whose error is only the true motion, {s['static_gt_epe_dyn'] * mm:.0f} mm on moving pixels; the
model's own points held still give {s['static_model_epe_dyn'] * mm:.0f} mm; on motion alone the model is at
{ratio_m:.2f}x the static baseline);
mask IoU >= 0.6 -- {met(min(s['mask_iou'], s.get('mask_iou_node', 0.0)) >= 0.6)} ({s['mask_iou']:.3f} robot rule,
{s.get('mask_iou_node', float('nan')):.3f} node).
Reading: on moving pixels the model's tracks are {s['epe_dyn'] * mm:.1f} mm from the truth where holding every point
still costs {s['static_gt_epe_dyn'] * mm:.1f} mm (same measured depth) -- {(1 - ratio_e) * 100:.0f} % of the motion
recovered; on static pixels its curves are the measured points (the gate closed).

## Reproducibility test
`test/test_train_shipped.py` runs this checkpoint through `create_estimator` on the two `test_subset` windows
(seeds {record['test_subset']['seeds']}, stored in `{record['test_subset']['windows_file']}` so the check does not
depend on the simulator's version) and compares with the recorded figures: relative
{record['tolerance']['epe_rel']:.0%} on 3D errors, {record['tolerance']['mask_iou_abs']} absolute on mask IoU,
{record['tolerance']['time_mae_abs']} on the time error (room for BLAS / thread-count differences between machines).
Held-out windows: cache `{record.get('held_out_cache')}` (a later scene generator renders different windows and
gives somewhat different figures; the stored test windows do not move).

## Limitations
Used only in its regime: the node's default estimator (`model.regimes`, `estimator.regime: auto`) runs this network
for windows with depth (rgbd_poses / rgbd); RGB-only windows run the geometric flow field (`model.flow_field`;
vtest.avi with defaults: MOG2 precision 0.954, blob recall 0.848), and official weights replace it everywhere (README,
"Estimators by input regime").
Simulation only (procedural MuJoCo tabletop, textured primitives, one camera model, 96x128): not meant for real
robots' images -- use the official model there. Depth-aware: it wants registered depth (`use_depth: true`) and,
with a moving camera, the camera's motion within the window (the benchmark and the training give it from the
simulator, as odometry would; the ROS node does not look it up in TF yet, so on a moving camera the node's field
includes the camera's motion as scene motion). Without depth (plain video) the field is 2.5D: exact image motion,
unit depth. The motion it can see is limited by the optical flow at 96x128 (DIS, `model.geometry`): small or
fast objects and occlusion boundaries are where it errs. Training curves: `{name}_curves.png`.
"""  # noqa: E501 (the model card's Markdown: table rows and paragraphs are written as they render)
    path = os.path.join(WEIGHTS_DIR, "MODEL_CARD.md")
    with open(path, "w") as f:
        f.write(text)
    png = os.path.join(run_dir, "curves.png")
    if os.path.exists(png):
        shutil.copyfile(png, os.path.join(WEIGHTS_DIR, f"{name}_curves.png"))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("--name", default="compact_sim")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--windows-per-scene", type=int, default=2)
    p.add_argument("--cache", default=ds.DEFAULT_CACHE)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run-dir", default=None, help="training run directory (log.csv, log.json, curves.png); "
                   "default: the checkpoint's directory")
    a = p.parse_args(argv)
    rec = ship(a.src, a.name, a.scenes, a.windows_per_scene, a.cache, a.threads)
    run_dir = a.run_dir or os.path.dirname(os.path.abspath(a.src))
    print("model card:", write_model_card(rec, run_dir, a.name))
    print(ev.format_summary(rec["held_out"]["summary"]))
    print(f"test subset: {json.dumps({k: rec['test_subset']['summary'][k] for k in ('epe', 'mask_iou', 'time_mae')})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def shipped_estimator(name: str = "compact_sim"):
    """Zero-argument factory of the shipped checkpoint's estimator, for the benchmark runner:
    ``trace-anything-ros eval --estimator compact_sim=trace_anything_ros.train.ship:shipped_estimator
    --width 128 --height 96 --frames 4``."""
    from ..model.engine import create_estimator
    return create_estimator({"weights": os.path.join(WEIGHTS_DIR, f"{name}.safetensors")})
