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

"""``trace-anything-ros train``: train the compact model (or fine-tune any checkpoint) on simulated windows.

Examples::

    # the shipped model's recipe (see trace_anything_ros/model/weights/MODEL_CARD.md)
    trace-anything-ros train --preset compact-lite --steps 3000 --batch 2 --out build/train_run
    # continue an interrupted run
    trace-anything-ros train --preset compact-lite --steps 3000 --batch 2 --out build/train_run --resume
    # fine-tune a user's official checkpoint on a GPU (same code)
    trace-anything-ros train --init /path/to/trace_anything.pt --device cuda --lr 2e-5 --size 288 512
"""
from __future__ import annotations

import argparse
import logging

from . import dataset as ds
from .loop import TRAIN_PRESETS, TrainConfig, train
from .losses import LossWeights


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    w = LossWeights()
    p.add_argument("--preset", default=d.preset, choices=TRAIN_PRESETS,
                   help="architecture when training from scratch (default %(default)s)")
    p.add_argument("--init", default=None, metavar="PATH",
                   help="start from this checkpoint (official trace_anything.pt or our .safetensors): fine-tuning")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--frames", type=int, default=d.frames, help="frames per window (default %(default)s)")
    p.add_argument("--size", type=int, nargs=2, default=list(d.size), metavar=("H", "W"),
                   help="input size, multiples of 16 (default %(default)s)")
    p.add_argument("--out", default=d.out_dir, help="run directory: checkpoints, log.csv, curves.png")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors + last_optim.pt")
    p.add_argument("--cache", default=d.cache_dir, help="window cache directory (default %(default)s)")
    p.add_argument("--scenes", type=int, default=d.num_scenes, help="number of scene seeds (train + val)")
    p.add_argument("--first-seed", type=int, default=d.first_seed)
    p.add_argument("--windows-per-scene", type=int, default=d.windows_per_scene)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--val-windows", type=int, default=d.val_windows)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cpu | cuda[:i] (default: cuda when available, else cpu)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this much wall time (a checkpoint is written)")
    p.add_argument("--aux-ramp", type=int, nargs=2, default=[0, 0], metavar=("START", "END"),
                   help="ramp the motion/static/corr loss weights from 0 at START to full at END (steps)")
    p.add_argument("--depth-dropout", type=float, default=d.depth_dropout,
                   help="depth-aware presets: share of static-camera windows trained without depth (plain videos)")
    p.add_argument("--cache-only", action="store_true", help="only render the window cache, then exit")
    p.add_argument("--no-progress", action="store_true")
    for name in ("traj", "alpha", "motion", "static", "corr", "time", "dynamic_weight", "conf_eps", "gate"):
        p.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=getattr(w, name),
                       help=f"loss weight {name} (default %(default)s)")


def config_from_args(args) -> TrainConfig:
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    weights = LossWeights(traj=args.w_traj, alpha=args.w_alpha, motion=args.w_motion, static=args.w_static,
                          corr=args.w_corr,
                          time=args.w_time, dynamic_weight=args.w_dynamic_weight, conf_eps=args.w_conf_eps,
                          gate=args.w_gate)
    return TrainConfig(preset=args.preset, init=args.init, steps=args.steps, batch=args.batch, lr=args.lr,
                       weight_decay=args.weight_decay, warmup=args.warmup, grad_clip=args.grad_clip,
                       frames=args.frames, size=tuple(args.size), out_dir=args.out, cache_dir=args.cache,
                       num_scenes=args.scenes, first_seed=args.first_seed, windows_per_scene=args.windows_per_scene,
                       val_fraction=args.val_fraction, val_windows=args.val_windows, val_every=args.val_every,
                       ckpt_every=args.ckpt_every, seed=args.seed, threads=args.threads, device=device,
                       augment=not args.no_augment, weights=weights, progress=not args.no_progress,
                       max_minutes=args.max_minutes, aux_ramp=tuple(args.aux_ramp),
                       depth_dropout=args.depth_dropout)


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_args(args)
    if any(int(x) % 16 for x in cfg.size):
        print(f"error: --size must be multiples of 16, got {cfg.size}")
        return 2
    if cfg.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            print(f"error: --device {cfg.device} but CUDA is not available to torch")
            return 2
    if args.cache_only:
        spec = ds.WindowSpec(frames=cfg.frames, height=int(cfg.size[0]), width=int(cfg.size[1]),
                             windows_per_scene=cfg.windows_per_scene)
        tr, va = ds.split_seeds(cfg.num_scenes, cfg.val_fraction, cfg.seed, cfg.first_seed)
        paths = ds.build_cache(tr + va, spec, cfg.cache_dir, progress=cfg.progress)
        print(f"{len(paths)} windows in {cfg.cache_dir} ({len(tr)} train / {len(va)} val scenes)")
        return 0
    s = train(cfg, resume=args.resume)
    last = s.get("last", {})
    print(f"done: step {s['step']}, first loss {s['first_loss']}, last loss {last.get('loss')}, "
          f"best val loss {s['best_val_loss']}, wall {s['wall_s']:.0f} s -> {cfg.out_dir}")
    return 0
