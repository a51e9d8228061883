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

"""Training windows from the MuJoCo tabletop scenes, with exact ground-truth trajectories.

A *window* is N frames of one generated scene (``sim.scene``) rendered directly at the model input size, at
stamps ``t0 < t1 < ... < t_{N-1}`` with jittered (non-uniform) gaps, so the time head has something to learn.
Ground truth comes from the scene's exact poses at any time (``Scene.poses_at`` / ``camera_pose_at``) and the
per-pixel body ids of the segmentation render: a point seen at frame i's pixel on body b is carried rigidly with b,
``X_ij = ref_T_world @ world_T_b(t_j) @ b_T_world(t_i) @ world_T_cam_i @ (z_i K^-1 [u, v, 1])``, expressed in the
window's reference camera (frame 0, ROS optical convention). ``trajectory_field`` turns that into the shared
``field.types.TrajectoryField`` (a least-squares spline fit, ``field.fit``) where a field is wanted.

Cache: one ``.npz`` per window under a cache dir (default ``build/train_cache``, never committed), written by
``build_cache``; the exact positions at the frames' own times (``gt_pos``, float32) plus the motion relative to
them (``gt_disp``, float16: sub-millimetre over the window, exactly zero for static points) keep files small.
Train/val split: by scene seed (``split_seeds``), so no scene is in both.

``WindowDataset`` loads windows, applies light augmentation (colour jitter; horizontal flip with a consistent 3D
flip: x -> -x in every camera, poses conjugated) and derives pixel correspondences between frames (the GT
position of frame i's pixel at frame j's time projected into camera j, kept when frame j's depth there agrees).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

DEFAULT_CACHE = os.path.join("build", "train_cache")
SCENE_PRESETS = ("tabletop", "moving_camera", "pick_place", "static_scene", "busy")
DYNAMIC_THRESHOLD_M = 1e-3      # a point that moves more than this within the window is "dynamic"


@dataclass
class WindowSpec:
    """How windows are drawn from scenes (part of the cache key)."""

    frames: int = 4
    height: int = 96
    width: int = 128
    windows_per_scene: int = 4
    max_start: float = 8.0          # s, window start in [0, max_start]
    min_gap: float = 0.08           # s, base gap between frames drawn in [min_gap, max_gap] ...
    max_gap: float = 0.35
    gap_jitter: float = 0.4         # ... then each gap scaled by U(1 - jitter, 1 + jitter)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def scene_preset_for(seed: int) -> str:
    return SCENE_PRESETS[seed % len(SCENE_PRESETS)]


def split_seeds(num_scenes: int, val_fraction: float = 0.1, split_seed: int = 0, first_seed: int = 0
                ) -> Tuple[List[int], List[int]]:
    """Scene seeds ``first_seed .. first_seed+num_scenes-1`` split into (train, val) by a seeded permutation."""
    seeds = np.arange(first_seed, first_seed + num_scenes)
    perm = np.random.default_rng(split_seed).permutation(seeds)
    n_val = max(1, int(round(val_fraction * num_scenes))) if num_scenes > 1 and val_fraction > 0 else 0
    return sorted(int(s) for s in perm[n_val:]), sorted(int(s) for s in perm[:n_val])


# ------------------------------------------------------------------------------------------ ground truth per window


def window_stamps(rng: np.random.Generator, spec: WindowSpec) -> np.ndarray:
    base = rng.uniform(spec.min_gap, spec.max_gap)
    gaps = base * rng.uniform(1 - spec.gap_jitter, 1 + spec.gap_jitter, spec.frames - 1)
    t0 = rng.uniform(0.0, spec.max_start)
    return np.concatenate([[t0], t0 + np.cumsum(gaps)])


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.zeros_like(T)
    R = T[..., :3, :3]
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def render_window(scene, stamps: Sequence[float]) -> Dict[str, np.ndarray]:
    """Render a window and compute its exact ground truth (see module doc). Returns the cache dict."""
    stamps = np.asarray(stamps, dtype=np.float64)
    n = len(stamps)
    rgbs, depths, bodies, cams, poses = [], [], [], [], []
    for t in stamps:
        scene.set_time(float(t))
        f = scene.render(segmentation=True)
        rgbs.append(f["rgb"])
        depths.append(f["depth"])
        bodies.append(f["seg_body"])
        cams.append(f["world_T_cam"])
        poses.append(f["body_poses"])
    K = np.asarray(scene.K, dtype=np.float64)
    H, W = rgbs[0].shape[:2]
    cams = np.stack(cams)                                 # [N, 4, 4] world_T_cam (optical)
    poses = np.stack(poses)                               # [N, nbody, 4, 4] world_T_body
    ref_T_world = _inv(cams[0])
    ref_T_cam = ref_T_world[None] @ cams                  # [N, 4, 4]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # [H, W, 3]
    gt_pos = np.zeros((n, H, W, 3), np.float64)
    gt_disp = np.zeros((n, n, H, W, 3), np.float64)
    valid = np.zeros((n, H, W), bool)
    for i in range(n):
        z = depths[i].astype(np.float64)
        ok = np.isfinite(z) & (z > 0) & (bodies[i] >= 0)
        valid[i] = ok
        Xc = rays * np.where(ok, z, 0.0)[..., None]
        Xw = Xc @ cams[i][:3, :3].T + cams[i][:3, 3]
        b = np.where(ok, bodies[i], 0)
        b_T_world_i = _inv(poses[i])                      # [nbody, 4, 4]
        Xref_i = Xw @ ref_T_world[:3, :3].T + ref_T_world[:3, 3]
        gt_pos[i] = Xref_i
        for j in range(n):
            if j == i:
                continue
            M = poses[j] @ b_T_world_i                    # world(t_i) -> world(t_j) per body
            Mp = M[b]                                      # [H, W, 4, 4]
            Xw_j = np.einsum("hwab,hwb->hwa", Mp[..., :3, :3], Xw) + Mp[..., :3, 3]
            Xref_j = Xw_j @ ref_T_world[:3, :3].T + ref_T_world[:3, 3]
            gt_disp[i, j] = Xref_j - Xref_i
        gt_pos[i][~ok] = 0.0
        gt_disp[i][:, ~ok] = 0.0
    dynamic = (np.linalg.norm(gt_disp, axis=-1).max(axis=1) > DYNAMIC_THRESHOLD_M) & valid
    depth = np.stack(depths).astype(np.float32)
    depth[~valid] = np.nan
    span = stamps[-1] - stamps[0]
    times = ((stamps - stamps[0]) / span if span > 0 else np.zeros(n)).astype(np.float32)
    return dict(images=np.stack(rgbs).astype(np.uint8), gt_pos=gt_pos.astype(np.float32),
                gt_disp=gt_disp.astype(np.float16), valid=valid, dynamic=dynamic, times=times, stamps=stamps,
                K=K.astype(np.float32), ref_T_cam=ref_T_cam.astype(np.float32), depth=depth)


def gt_tracks(sample: Dict[str, np.ndarray]) -> np.ndarray:
    """``[N, N, H, W, 3]`` float32: frame i's points at frame j's time (reference camera)."""
    return sample["gt_pos"][:, None].astype(np.float32) + sample["gt_disp"].astype(np.float32)


def trajectory_field(sample: Dict[str, np.ndarray], num_ctrl: int = 10, frame_id: str = "camera"):
    """The window's ground truth as a ``TrajectoryField`` (metric): each pixel's cubic B-spline fitted through
    its exact positions at the frame times (``field.fit``); invalid pixels get zeros and zero confidence."""
    from ..field.fit import fit_field_from_samples
    from ..field.types import TrajectoryField
    tr = gt_tracks(sample)                                 # [N, T=N, H, W, 3]
    ctrl = fit_field_from_samples(sample["times"], tr, num_ctrl).astype(np.float32)
    conf = np.broadcast_to(sample["valid"][:, None], ctrl.shape[:-1]).astype(np.float32)
    return TrajectoryField(ctrl_pts=ctrl, ctrl_conf=conf, frame_times=sample["times"], stamps=sample["stamps"],
                           intrinsics=sample["K"].astype(np.float64), metric=True, frame_id=frame_id)


def make_scene(seed: int, spec: WindowSpec):
    from ..sim.scene import Scene, SceneConfig
    return Scene(SceneConfig.from_preset(scene_preset_for(seed), seed=int(seed), width=spec.width,
                                         height=spec.height))


def window_path(cache_dir: str, spec: WindowSpec, seed: int, k: int) -> str:
    return os.path.join(cache_dir, f"{spec.key()}_N{spec.frames}_{spec.height}x{spec.width}",
                        f"scene{seed:06d}_w{k:02d}.npz")


def build_cache(seeds: Sequence[int], spec: WindowSpec, cache_dir: str = DEFAULT_CACHE, progress: bool = True
                ) -> List[str]:
    """Render (or reuse) ``spec.windows_per_scene`` windows per scene seed; returns the file paths."""
    paths = []
    todo = [(s, k) for s in seeds for k in range(spec.windows_per_scene)]
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), desc="windows", unit="win")
        except ImportError:  # pragma: no cover
            bar = None
    scene, scene_seed = None, None
    for s, k in todo:
        p = window_path(cache_dir, spec, s, k)
        if not os.path.exists(p):
            if scene_seed != s:
                if scene is not None:
                    scene.close()
                scene, scene_seed = make_scene(s, spec), s
            rng = np.random.default_rng([int(s), int(k), 7])
            sample = render_window(scene, window_stamps(rng, spec))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            tmp = p + ".tmp.npz"
            np.savez_compressed(tmp, seed=np.int64(s), preset=np.array(scene_preset_for(s)), **sample)
            os.replace(tmp, p)
        paths.append(p)
        if bar is not None:
            bar.update(1)
    if scene is not None:
        scene.close()
    if bar is not None:
        bar.close()
    return paths


def load_window(path: str) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------------------ augmentation / corr


def flip_sample(s: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Horizontal image flip with the consistent 3D flip (x -> -x in every camera frame)."""
    out = dict(s)
    W = s["images"].shape[2]
    F = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    for k in ("images", "valid", "dynamic", "depth"):
        out[k] = np.ascontiguousarray(s[k][:, :, ::-1])
    sign = np.array([-1.0, 1.0, 1.0], np.float32)
    out["gt_pos"] = np.ascontiguousarray(s["gt_pos"][:, :, ::-1] * sign)
    out["gt_disp"] = np.ascontiguousarray(s["gt_disp"][:, :, :, ::-1] * sign.astype(np.float16))
    out["ref_T_cam"] = (F @ s["ref_T_cam"] @ F).astype(np.float32)
    K = s["K"].copy()
    K[0, 2] = (W - 1) - K[0, 2]
    out["K"] = K
    return out


def color_jitter(images: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Brightness / contrast / saturation per window plus a small per-frame brightness wobble."""
    x = images.astype(np.float32) / 255.0
    b = rng.uniform(1 - strength, 1 + strength) * rng.uniform(0.97, 1.03, (x.shape[0], 1, 1, 1))
    c = rng.uniform(1 - strength, 1 + strength)
    sat = rng.uniform(1 - strength, 1 + strength)
    x = x * b
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * c + mean
    gray = x.mean(axis=-1, keepdims=True)
    x = (x - gray) * sat + gray
    return (np.clip(x, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def correspondences(s: Dict[str, np.ndarray], depth_tol: float = 0.02, depth_abs: float = 0.01
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """``(corr_idx int64 [N, N, H*W], corr_valid bool [N, N, H*W])``: frame j pixel (flat index) seeing frame i's
    pixel's point at t_j, visible (depth agrees within ``depth_tol * z + depth_abs``); i == j never valid."""
    tr = gt_tracks(s)
    n, _, H, W, _ = tr.shape
    K = s["K"].astype(np.float64)
    idx = np.zeros((n, n, H * W), np.int64)
    ok_all = np.zeros((n, n, H * W), bool)
    cam_T_ref = _inv(s["ref_T_cam"].astype(np.float64))
    for j in range(n):
        X = tr[:, j].reshape(n, H * W, 3).astype(np.float64)
        Xc = X @ cam_T_ref[j][:3, :3].T + cam_T_ref[j][:3, 3]
        z = Xc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uu = np.rint(K[0, 0] * Xc[..., 0] / z + K[0, 2])
            vv = np.rint(K[1, 1] * Xc[..., 1] / z + K[1, 2])
        inb = (z > 1e-6) & (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
        q = np.where(inb, vv * W + uu, 0).astype(np.int64)
        dj = s["depth"][j].reshape(-1)[q]
        vis = inb & np.isfinite(dj) & (np.abs(dj - z) < depth_tol * z + depth_abs)
        vis &= s["valid"].reshape(n, H * W)
        vis[j] = False
        idx[:, j] = q
        ok_all[:, j] = vis
    return idx, ok_all


class WindowDataset:
    """Torch-style dataset over cached windows. ``augment``: colour jitter + random flip (``flip_p``).
    ``geometry``: add the depth-aware model's inputs (``model.geometry``); ``depth_dropout``: the share of
    static-camera windows shown without depth (and trained on the 2.5D target, ``without_depth``)."""

    def __init__(self, paths: Sequence[str], augment: bool = False, flip_p: float = 0.5, seed: int = 0,
                 with_corr: bool = True, geometry: bool = False, depth_dropout: float = 0.0):
        self.geometry = geometry
        self.depth_dropout = depth_dropout
        self.paths = list(paths)
        self.augment = augment
        self.flip_p = flip_p
        self.seed = seed
        self.with_corr = with_corr
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, i: int) -> Dict[str, np.ndarray]:
        s = load_window(self.paths[i])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.augment:
            if rng.uniform() < self.flip_p:
                s = flip_sample(s)
            s["images"] = color_jitter(s["images"], rng)
        if self.geometry:
            drop = self.depth_dropout > 0 and static_camera(s) and rng.uniform() < self.depth_dropout
            s = add_geometry(without_depth(s) if drop else s)
        return s

    def __getitem__(self, i: int) -> Dict[str, "object"]:
        return to_torch(self.sample(i), with_corr=self.with_corr)


def static_camera(s: Dict[str, np.ndarray], tol: float = 1e-4) -> bool:
    """True when every frame's camera is the reference camera (within ``tol``)."""
    return bool(np.abs(s["ref_T_cam"] - np.eye(4, dtype=np.float32)).max() < tol)


def without_depth(s: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The window as a plain video shows it (static camera): no depth, and the 2.5D target the depth-aware model
    is trained on then -- every pixel's trajectory scaled by 1 / its own depth (``model.geometry``'s unit plane),
    which keeps its image motion exact. Marks the sample ``no_depth``."""
    out = dict(s)
    z = np.where(s["valid"], s["gt_pos"][..., 2], 1.0).astype(np.float32)            # [N, H, W]
    inv = (1.0 / np.maximum(z, 1e-6))[..., None]
    out["gt_pos"] = (s["gt_pos"] * inv).astype(np.float32)
    out["gt_disp"] = (s["gt_disp"].astype(np.float32) * inv[:, None]).astype(np.float16)
    out["no_depth"] = np.bool_(True)
    return out


def add_geometry(s: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Attach ``model.geometry.compute`` inputs (``geo_aux``, ``geo_x0``, ``geo_samples``) to a window."""
    from ..model import geometry
    no_depth = bool(s.get("no_depth", False))
    g = geometry.compute(s["images"], None if no_depth else s["depth"], s["K"],
                         None if no_depth else s["ref_T_cam"])
    out = dict(s)
    out.update(geo_aux=g.aux, geo_x0=g.x0, geo_samples=g.samples)
    return out


def to_torch(s: Dict[str, np.ndarray], with_corr: bool = True) -> Dict[str, "object"]:
    """One window as model-ready tensors (images normalised to [-1, 1], ``[N, 3, H, W]``)."""
    import torch
    from ..model.preprocess import normalize
    out = {
        "images": normalize(s["images"]),
        "gt_tracks": torch.from_numpy(gt_tracks(s)),
        "valid": torch.from_numpy(np.ascontiguousarray(s["valid"])),
        "dynamic": torch.from_numpy(np.ascontiguousarray(s["dynamic"])),
        "times": torch.from_numpy(s["times"].astype(np.float32)),
    }
    for k in ("geo_aux", "geo_x0", "geo_samples"):
        if k in s:
            out[k] = torch.from_numpy(np.ascontiguousarray(s[k]))
    if with_corr:
        idx, ok = correspondences(s)
        out["corr_idx"] = torch.from_numpy(idx)
        out["corr_valid"] = torch.from_numpy(ok)
    return out


def collate(items: List[Dict]) -> Dict:
    import torch
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def list_cache(cache_dir: str, spec: WindowSpec, seeds: Optional[Sequence[int]] = None) -> List[str]:
    d = os.path.dirname(window_path(cache_dir, spec, 0, 0))
    paths = sorted(glob.glob(os.path.join(d, "scene*_w*.npz")))
    if seeds is not None:
        keep = {int(s) for s in seeds}
        paths = [p for p in paths if int(os.path.basename(p)[5:11]) in keep]
    return paths
