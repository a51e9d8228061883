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

"""The training loop: AdamW, warm-up + cosine learning rate, gradient clipping, checkpoints, resume, logs, plots.

Output directory layout (``TrainConfig.out_dir``):

* ``last.safetensors`` -- the model (our checkpoint format: ``model.checkpoint.save_checkpoint``, architecture
  config embedded, ``step`` and the training config in the metadata), written every ``ckpt_every`` steps and at
  the end; ``last_optim.pt`` -- optimizer + scheduler state, step and RNG state (plain tensors / numbers only,
  loadable with ``torch.load(weights_only=True)``);
* ``best.safetensors`` -- the model with the lowest validation loss so far;
* ``log.csv`` (one row per step, plus validation rows) and ``log.json`` (config + summary), ``curves.png``.

Batches are drawn deterministically from ``(seed, step)``, so a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional

import numpy as np

from . import dataset as ds
from .losses import LossWeights, compute_losses

log = logging.getLogger(__name__)

LOG_FIELDS = ["step", "kind", "lr", "loss", "traj", "motion", "static", "corr", "time", "gate", "epe", "epe_dyn",
              "motion_epe_dyn", "grad_norm", "sec_per_step", "wall_s"]


@dataclass
class TrainConfig:
    preset: str = "compact"
    init: Optional[str] = None            # checkpoint to start from (official .pt or our safetensors)
    steps: int = 1000
    batch: int = 2
    lr: float = 3e-4
    min_lr_ratio: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    frames: int = 4
    size: tuple = (96, 128)               # (H, W)
    ckpt_every: int = 50
    val_every: int = 100
    val_windows: int = 16
    log_every: int = 1
    out_dir: str = os.path.join("build", "train_run")
    cache_dir: str = ds.DEFAULT_CACHE
    num_scenes: int = 100
    first_seed: int = 0
    windows_per_scene: int = 4
    val_fraction: float = 0.1
    seed: int = 0
    threads: Optional[int] = None
    device: str = "cpu"
    augment: bool = True
    weights: LossWeights = field(default_factory=LossWeights)
    # motion / static / corr weights ramp linearly from 0 at aux_ramp[0] to full at aux_ramp[1] (steps):
    # geometry first (the scale-normalised position term), then the terms that shape the motion
    aux_ramp: tuple = (0, 0)
    progress: bool = True
    max_minutes: Optional[float] = None   # stop (with a checkpoint) after this much wall time
    depth_dropout: float = 0.2            # depth-aware presets: share of static-camera windows shown without depth

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["aux_ramp"] = list(self.aux_ramp)
        return d

    def weights_at(self, step: int) -> LossWeights:
        a, b = int(self.aux_ramp[0]), int(self.aux_ramp[1])
        r = 1.0 if step >= b else (0.0 if step < a else (step - a) / max(1, b - a))
        w = self.weights
        return replace(w, motion=w.motion * r, static=w.static * r, corr=w.corr * r)


# ----------------------------------------------------------------------------------------------- model building

TRAIN_PRESETS = ("compact", "compact-lite", "compact-rgbd", "official", "tiny", "tiny-rgbd")


def model_config(name: str, size, frames: int):
    """Architecture for training from scratch. ``compact``/``official`` are the model package's presets;
    ``compact-lite`` is compact with half-width DPT heads (the heads dominate the cost at full resolution);
    ``compact-rgbd`` is compact-lite made depth-aware (``ModelConfig.geometry = "depth_flow"``: RGB-D + optical
    flow inputs, gated curves between depth back-projection and flow-chained samples); ``tiny`` / ``tiny-rgbd``
    are for tests. The decoder's eval-time attention rescaling is switched off (factor 1): a model
    trained from scratch on windows of ``frames`` frames is evaluated on the same token count."""
    from ..model.config import DecoderConfig, EncoderConfig, HeadConfig, ModelConfig, preset
    size = tuple(int(x) for x in size)
    from ..model.config import GEOMETRY_AUX_CHANNELS
    if name.endswith("-rgbd"):
        cfg = model_config(name[: -len("-rgbd")] if name != "compact-rgbd" else "compact-lite", size, frames)
        return replace(cfg, encoder=replace(cfg.encoder, in_chans=3 + GEOMETRY_AUX_CHANNELS), geometry="depth_flow",
                       name=name)
    if name in ("compact", "official"):
        cfg = preset(name, input_size=size)
    elif name == "compact-lite":
        base = preset("compact", input_size=size)
        cfg = replace(base, head=HeadConfig(feature_dim=32, last_dim=16, layer_dims=(16, 32, 48, 64)),
                      name="compact-lite")
    elif name == "tiny":
        cfg = ModelConfig(encoder=EncoderConfig(embed_dim=32, depth=1, num_heads=2),
                          decoder=DecoderConfig(embed_dim=32, depth=2, num_heads=2),
                          head=HeadConfig(feature_dim=8, last_dim=8, layer_dims=(8, 8, 8, 8)),
                          num_ctrl=10, name="tiny", input_size=size)
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {TRAIN_PRESETS}")
    tokens = float(frames * (size[0] // 16) * (size[1] // 16))
    return replace(cfg, decoder=replace(cfg.decoder, inference_seqlen=tokens, train_seqlen=tokens))


def build_model(cfg: TrainConfig):
    """(model in train mode, note)."""
    import torch
    from ..model.checkpoint import load_model
    from ..model.network import TraceAnythingNet
    want = model_config(cfg.preset, cfg.size, cfg.frames)
    if cfg.init:
        model, report = load_model(cfg.init)
        note = f"initialised from {cfg.init} ({report.config.name}, {report.param_count:,} params)"
        if want.geometry != "none" and model.cfg.geometry == "none":
            model = adapt_to_geometry(model, want)
            note += f"; made depth-aware ({want.name}, {sum(p.numel() for p in model.parameters()):,} params)"
        elif model.cfg.geometry != want.geometry:
            raise ValueError(f"--init {cfg.init} has geometry {model.cfg.geometry!r} but preset {cfg.preset!r} "
                             f"wants {want.geometry!r}: pick the preset that matches the checkpoint")
    else:
        torch.manual_seed(cfg.seed)
        model = TraceAnythingNet(model_config(cfg.preset, cfg.size, cfg.frames))
        init_track_bias_(model)
        note = f"{model.cfg.name} from scratch"
    return model.to(cfg.device).train(), note


def init_track_bias_(model, depth: float = 1.0) -> None:
    """Start from a sensible field: every control point at z = ``depth`` on the optical axis (the track head's
    last conv bias; the expm1 norm activation gives |p| = expm1(raw)), confidence logits at 0."""
    import torch
    D = model.cfg.num_ctrl
    last = model.ds_head_track.dpt.head[-1]
    with torch.no_grad():
        last.bias.zero_()
        if getattr(model, "geometric", False):   # residual 0, gate mostly closed: start at the measured points
            last.bias[4 * D] = -3.0
            return
        last.bias[2 * D:3 * D] = math.log1p(depth)


def adapt_to_geometry(src, cfg):
    """A depth-aware model (``cfg``) initialised from an RGB-only one with the same widths: every tensor of the
    same name and shape is copied; the patch embedding keeps its RGB filters (geometry channels start at zero);
    the track head keeps its confidence rows, its xyz rows (now the residual) start at zero and the gate starts
    mostly closed (bias -3: a static start, the measured back-projection)."""
    import torch
    from ..model.network import TraceAnythingNet
    dst = TraceAnythingNet(cfg)
    sd_src = src.state_dict()
    sd = dst.state_dict()
    D = cfg.num_ctrl
    with torch.no_grad():
        for k, v in sd.items():
            if k in sd_src and sd_src[k].shape == v.shape:
                v.copy_(sd_src[k])
        pe = "encoder.patch_embed.proj.weight"
        sd[pe].zero_()
        sd[pe][:, :3] = sd_src[pe]
        last = "ds_head_track.dpt.head.4"
        sd[last + ".weight"].zero_()
        sd[last + ".bias"].zero_()
        sd[last + ".weight"][3 * D:4 * D] = sd_src[last + ".weight"][3 * D:4 * D]
        sd[last + ".bias"][3 * D:4 * D] = sd_src[last + ".bias"][3 * D:4 * D]
        sd[last + ".bias"][4 * D] = -3.0
    dst.load_state_dict(sd)
    return dst


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


# ----------------------------------------------------------------------------------------------- checkpoints


def save_state(model, opt, sched, step: int, out_dir: str, cfg: TrainConfig, name: str = "last",
               extra: Optional[Dict[str, str]] = None) -> str:
    import torch
    from ..model.checkpoint import save_checkpoint
    os.makedirs(out_dir, exist_ok=True)
    meta = {"step": str(step), "train_config": json.dumps(cfg.to_dict(), default=str)}
    meta.update(extra or {})
    path = os.path.join(out_dir, f"{name}.safetensors")
    save_checkpoint(model, path + ".tmp", extra_metadata=meta)
    os.replace(path + ".tmp", path)
    if opt is not None:
        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": int(step),
                 "torch_rng": torch.get_rng_state()}
        opath = os.path.join(out_dir, f"{name}_optim.pt")
        torch.save(state, opath + ".tmp")
        os.replace(opath + ".tmp", opath)
    return path


def load_state(model, opt, sched, out_dir: str, name: str = "last") -> int:
    """Restore model (+ optimizer/scheduler when given) from ``out_dir``; returns the step to continue from."""
    import torch
    from ..model.checkpoint import read_checkpoint
    sd, _ = read_checkpoint(os.path.join(out_dir, f"{name}.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if "image_idx_emb" not in k]:
        raise RuntimeError(f"resume: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")
    state = torch.load(os.path.join(out_dir, f"{name}_optim.pt"), map_location="cpu", weights_only=True)
    if opt is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


# ----------------------------------------------------------------------------------------------- logging / plots


class CsvLog:
    def __init__(self, path: str, resume_step: Optional[int] = None):
        self.path = path
        rows = []
        if resume_step is not None and os.path.exists(path):
            with open(path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=LOG_FIELDS)
        self.w.writeheader()
        for r in rows:
            self.w.writerow(r)
        self.f.flush()

    def write(self, row: dict):
        self.w.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self.f.flush()

    def close(self):
        self.f.close()


def read_log(path: str) -> List[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def plot_curves(csv_path: str, png_path: str, smooth: int = 20) -> bool:
    """Training (smoothed) and validation loss / EPE curves as a PNG. False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no curves.png (pip install matplotlib==3.11.2)")
        return False
    rows = read_log(csv_path)
    tr = [r for r in rows if r["kind"] == "train"]
    va = [r for r in rows if r["kind"] == "val"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, key in zip(axes, ("loss", "epe", "motion_epe_dyn", "time")):
        if tr:
            x = np.array([int(r["step"]) for r in tr])
            y = np.array([float(r[key]) for r in tr])
            ax.plot(x, y, alpha=0.3, color="C0", label="train")
            if len(y) >= smooth:
                k = np.ones(smooth) / smooth
                ax.plot(x[smooth - 1:], np.convolve(y, k, mode="valid"), color="C0", label=f"train (mean {smooth})")
        if va:
            ax.plot([int(r["step"]) for r in va], [float(r[key]) for r in va], "o-", color="C1", label="val")
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------------- data


def prepare_data(cfg: TrainConfig):
    """(train dataset, val dataset): renders missing windows into the cache."""
    spec = ds.WindowSpec(frames=cfg.frames, height=int(cfg.size[0]), width=int(cfg.size[1]),
                         windows_per_scene=cfg.windows_per_scene)
    train_seeds, val_seeds = ds.split_seeds(cfg.num_scenes, cfg.val_fraction, cfg.seed, cfg.first_seed)
    train_paths = ds.build_cache(train_seeds, spec, cfg.cache_dir, progress=cfg.progress)
    val_paths = ds.build_cache(val_seeds, spec, cfg.cache_dir, progress=cfg.progress)[: cfg.val_windows]
    geometric = model_config(cfg.preset, cfg.size, cfg.frames).geometry != "none"
    return (ds.WindowDataset(train_paths, augment=cfg.augment, seed=cfg.seed, geometry=geometric,
                             depth_dropout=cfg.depth_dropout),
            ds.WindowDataset(val_paths, augment=False, geometry=geometric))


def batch_indices(n: int, batch: int, seed: int, step: int) -> List[int]:
    rng = np.random.default_rng([seed, step, 11])
    return [int(i) for i in rng.choice(n, size=batch, replace=n < batch)]


def make_batch(dataset, indices, step: int, device):
    dataset.epoch = step  # augmentation randomness keyed on (seed, step, index): reproducible on resume
    b = ds.collate([dataset[i] for i in indices])
    return {k: v.to(device) for k, v in b.items()}


def forward_losses(model, batch, weights: LossWeights):
    from ..model.network import default_times
    B, N = batch["images"].shape[:2]
    t_in = default_times(B, N, device=batch["images"].device)
    geo = {k: batch["geo_" + k] for k in ("aux", "x0", "samples")} if "geo_aux" in batch else None
    if geo is not None:   # the depth-aware model is given the frames' measured times (as the node has stamps)
        t_in = batch["times"].to(t_in.dtype)
    pts, conf, t_hat = model(batch["images"], t_in, geo) if geo is not None else model(batch["images"], t_in)
    gate = model.geometry_head.gate_logits if geo is not None else None
    return compute_losses(pts, conf, t_hat, batch, weights, gate_logits=gate)


def validate(model, val_ds, weights: LossWeights, device, batch: int = 2) -> Dict[str, float]:
    import torch
    was_training = model.training
    model.eval()
    sums: Dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for start in range(0, len(val_ds), batch):
            idx = list(range(start, min(len(val_ds), start + batch)))
            out = forward_losses(model, make_batch(val_ds, idx, 0, device), weights)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
            n += len(idx)
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()}


# ----------------------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, resume: bool = False, train_ds=None, val_ds=None) -> dict:
    """Run (or continue) training; returns the summary written to ``log.json``."""
    import torch
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {cfg.device!r} requested but CUDA is not available to torch")
    os.makedirs(cfg.out_dir, exist_ok=True)
    if train_ds is None:
        train_ds, val_ds = prepare_data(cfg)
    if len(train_ds) == 0:
        raise RuntimeError("no training windows")
    model, note = build_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.steps, cfg.warmup, cfg.min_lr_ratio))
    step = 0
    if resume and os.path.exists(os.path.join(cfg.out_dir, "last_optim.pt")):
        step = load_state(model, opt, sched, cfg.out_dir)
        note += f"; resumed at step {step}"
    log.info("training: %s, %d train / %d val windows", note, len(train_ds), len(val_ds or []))
    csv_log = CsvLog(os.path.join(cfg.out_dir, "log.csv"), resume_step=step if resume else None)
    summary_path = os.path.join(cfg.out_dir, "log.json")
    prev = {}
    if resume and os.path.exists(summary_path):
        with open(summary_path) as f:
            prev = json.load(f)
    best_val = float(prev.get("best_val_loss", math.inf))
    wall_before = float(prev.get("wall_s", 0.0))
    first_loss = prev.get("first_loss")
    t_start = time.perf_counter()
    bar = None
    if cfg.progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
        except ImportError:  # pragma: no cover
            bar = None
    last = {}
    stopped_early = False
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = make_batch(train_ds, batch_indices(len(train_ds), cfg.batch, cfg.seed, step), step, cfg.device)
        out = forward_losses(model, batch, cfg.weights_at(step))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        gn = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        step += 1
        last = {k: float(v.detach()) for k, v in out.items()}
        if first_loss is None:
            first_loss = last["loss"]
        row = dict(step=step, kind="train", lr=f"{lr:.3e}", grad_norm=f"{float(gn):.4f}",
                   sec_per_step=f"{time.perf_counter() - t0:.3f}",
                   wall_s=f"{wall_before + time.perf_counter() - t_start:.1f}",
                   **{k: f"{v:.5f}" for k, v in last.items()})
        if step % cfg.log_every == 0:
            csv_log.write(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.4f}", epe=f"{last['epe']:.4f}", lr=f"{lr:.1e}")
        out_of_time = cfg.max_minutes is not None and (time.perf_counter() - t_start) > 60 * cfg.max_minutes
        if val_ds is not None and len(val_ds) and (step % cfg.val_every == 0 or step == cfg.steps or out_of_time):
            v = validate(model, val_ds, cfg.weights, cfg.device, cfg.batch)
            csv_log.write(dict(step=step, kind="val", wall_s=f"{wall_before + time.perf_counter() - t_start:.1f}",
                               **{k: f"{x:.5f}" for k, x in v.items()}))
            if v["loss"] < best_val:
                best_val = v["loss"]
                save_state(model, None, None, step, cfg.out_dir, cfg, name="best",
                           extra={"val_loss": f"{v['loss']:.6f}", "val_epe": f"{v['epe']:.6f}"})
        if step % cfg.ckpt_every == 0 or step == cfg.steps or out_of_time:
            save_state(model, opt, sched, step, cfg.out_dir, cfg)
            plot_curves(csv_log.path, os.path.join(cfg.out_dir, "curves.png"))
            _write_summary(summary_path, cfg, note, step, first_loss, last, best_val,
                           wall_before + time.perf_counter() - t_start)
        if out_of_time:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    csv_log.close()
    save_state(model, opt, sched, step, cfg.out_dir, cfg)
    plot_curves(csv_log.path, os.path.join(cfg.out_dir, "curves.png"))
    summary = _write_summary(summary_path, cfg, note, step, first_loss, last, best_val,
                             wall_before + time.perf_counter() - t_start, stopped_early)
    summary["model"] = model
    return summary


def _write_summary(path, cfg, note, step, first_loss, last, best_val, wall, stopped_early=False) -> dict:
    s = {"config": cfg.to_dict(), "note": note, "step": step, "first_loss": first_loss,
         "last": last, "best_val_loss": best_val if math.isfinite(best_val) else None, "wall_s": wall,
         "stopped_early": stopped_early}
    with open(path, "w") as f:
        json.dump(s, f, indent=2, default=str)
    return dict(s)
