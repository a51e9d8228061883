"""Ship a trained checkpoint: copy it into ``model/weights/`` and record its held-out figures next to it.

    python -m trace_anything_ros.train.ship build/train_run/best.safetensors \\
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
    sub = ev.evaluate(dst, sub_paths, threads=threads)
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
                        "summary": sub["summary"]},
        "tolerance": TOLERANCE,
        "evaluate_command": f"python -m trace_anything_ros.train.evaluate {os.path.relpath(dst)} --scenes {scenes} "
                            f"--windows-per-scene {windows_per_scene}",
    }
    with open(os.path.join(WEIGHTS_DIR, f"{name}.eval.json"), "w") as f:
        json.dump(record, f, indent=2, default=float)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("--name", default="compact_sim")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--windows-per-scene", type=int, default=2)
    p.add_argument("--cache", default=ds.DEFAULT_CACHE)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    rec = ship(a.src, a.name, a.scenes, a.windows_per_scene, a.cache, a.threads)
    print(ev.format_summary(rec["held_out"]["summary"]))
    print(f"test subset: {json.dumps({k: rec['test_subset']['summary'][k] for k in ('epe', 'mask_iou', 'time_mae')})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
