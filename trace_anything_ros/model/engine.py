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

"""Inference engines behind ``FieldEstimator``: torch (cpu/cuda, fp32/fp16/bf16, encoder-token cache) and
onnxruntime (TensorRT -> CUDA -> CPU providers, explicit fallback policy), plus ``create_estimator``.

Frames given to ``predict`` are uint8 ``[N, H, W, 3]`` already at ``input_size`` (``preprocess.prepare_frame`` on
arrival). Portrait sizes (H > W) are rotated for the network and the outputs rotated back (see ``preprocess``).
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .api import FieldPrediction
from . import preprocess as pp

log = logging.getLogger(__name__)

DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
          "bf16": "bfloat16", "bfloat16": "bfloat16"}


class EngineUnavailableError(RuntimeError):
    """The requested device / provider / dtype cannot be used (and fallback='error')."""


def _torch_dtype(name: str):
    import torch
    try:
        return getattr(torch, DTYPES[str(name).lower()])
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use fp32, fp16 or bf16") from None


def _check_frames(frames: np.ndarray, input_size: Tuple[int, int], window: Optional[int] = None) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    if tuple(frames.shape[1:3]) != tuple(input_size):
        raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]}, engine input size is "
                         f"{input_size[0]}x{input_size[1]} (use preprocess.prepare_frame on arrival)")
    if window is not None and frames.shape[0] != window:
        raise ValueError(f"this engine has a fixed window of {window} frames, got {frames.shape[0]}")
    return frames


def _default_times_np(n: int) -> np.ndarray:
    return (np.arange(n, dtype=np.float64) / (n - 1)).astype(np.float32) if n > 1 else np.zeros(1, np.float32)


def _to_prediction(pts: np.ndarray, conf: np.ndarray, t: np.ndarray, portrait: bool) -> FieldPrediction:
    return FieldPrediction(
        ctrl_pts=pp.from_network_points(np.asarray(pts, dtype=np.float32), portrait),
        ctrl_conf=pp.from_network_maps(np.asarray(conf, dtype=np.float32), portrait),
        frame_times=np.asarray(t, dtype=np.float32).reshape(-1),
    )


# ------------------------------------------------------------------------------------------------------ torch


class TorchEngine:
    """PyTorch engine. ``dtype``: fp32 | fp16 | bf16; ``precision``: 'autocast' (weights fp32, matmuls in dtype) or
    'cast' (weights cast to dtype). Encoder tokens are cached per ``frame_keys`` entry (LRU, ``cache_size``); each
    frame is encoded on its own, so a cached frame's tokens are bit-identical to re-encoding it in any window."""

    def __init__(self, model, input_size: Tuple[int, int], device: str = "cpu", dtype: str = "fp32",
                 precision: str = "autocast", cache_size: int = 64, threads: Optional[int] = None,
                 fallback: str = "error"):
        import torch
        if fallback not in ("error", "cpu"):
            raise ValueError("fallback must be 'error' or 'cpu'")
        if str(device).lower() in ("tensorrt", "trt"):
            raise EngineUnavailableError("device 'tensorrt' needs engine 'onnx' (onnxruntime TensorRT provider)")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            if fallback == "error":
                raise EngineUnavailableError(f"device {device!r} requested but CUDA is not available to torch")
            log.warning("CUDA not available to torch: falling back to CPU (fallback='cpu')")
            device = "cpu"
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.dtype = _torch_dtype(dtype)
        if precision not in ("autocast", "cast"):
            raise ValueError("precision must be 'autocast' or 'cast'")
        self.precision = precision if self.dtype != torch.float32 else "none"
        self.model = model.eval().to(self.device)
        if self.precision == "cast":
            self.model = self.model.to(self.dtype)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.portrait = pp.is_portrait(self.input_size)
        self.num_ctrl = int(model.cfg.num_ctrl)
        # the depth-aware variant (geometry 'depth_flow') also wants the frames' intrinsics (and uses depth)
        self.needs_intrinsics = bool(getattr(model, "geometric", False))
        if self.needs_intrinsics and self.portrait:
            raise ValueError("the depth-aware model runs on landscape input sizes only (W >= H)")
        self.cache_size = int(cache_size)
        self._cache: "OrderedDict[object, object]" = OrderedDict()
        self.last_stats: Dict[str, float] = {}

    # -- pieces -------------------------------------------------------------------------------------------------
    def _autocast(self):
        import contextlib
        import torch
        if self.precision == "autocast":
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def _images(self, frames_net: np.ndarray):
        x = pp.normalize(frames_net).to(self.device)
        return x.to(self.dtype) if self.precision == "cast" else x

    def encode_frames(self, frames_net: np.ndarray, keys: Optional[Sequence] = None):
        """Tokens ``[N, P, Ce]`` for network-orientation frames, from the cache where ``keys`` hit."""
        import torch
        n = frames_net.shape[0]
        toks = [None] * n
        hits = 0
        if keys is not None:
            for i, k in enumerate(keys):
                if k in self._cache:
                    self._cache.move_to_end(k)
                    toks[i] = self._cache[k]
                    hits += 1
        with torch.inference_mode(), self._autocast():
            for i in range(n):  # one frame at a time: window-independent, bit-reproducible tokens
                if toks[i] is None:
                    toks[i] = self.model.encode(self._images(frames_net[i:i + 1]))[0]
                    if keys is not None and self.cache_size > 0:
                        self._cache[keys[i]] = toks[i]
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        self.last_stats["cache_hits"] = hits
        return torch.stack(toks, 0)

    def _predict_geometric(self, frames: np.ndarray, depth, intrinsics, times, cam_poses) -> FieldPrediction:
        """Depth-aware variant: geometry inputs per window (they depend on the neighbouring frames, so no token
        cache), one forward pass."""
        import torch
        from . import geometry
        n, H, W = frames.shape[:3]
        t0 = time.perf_counter()
        g = geometry.compute(frames, depth, intrinsics, cam_poses)
        dev = self.device

        def tensor(a):
            x = torch.from_numpy(np.ascontiguousarray(a))[None].to(dev)
            return x.to(self.dtype) if self.precision == "cast" else x

        images = self._images(frames)[None]
        inputs = torch.cat([images, tensor(g.aux)], dim=2)
        geo = {"inputs": inputs, "x0": tensor(g.x0), "samples": tensor(g.samples)}
        tt = torch.as_tensor(_default_times_np(n) if times is None else np.asarray(times, np.float32),
                             device=dev)[None]
        t1 = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            pts, conf, t_hat = self.model.decode(self.model.encode(inputs), tt, H, W, geo)
        res = _to_prediction(pts[0].float().cpu().numpy(), conf[0].float().cpu().numpy(),
                             t_hat[0].float().cpu().numpy(), False)
        t2 = time.perf_counter()
        self.last_stats.update(geometry_s=t1 - t0, encode_s=0.0, decode_s=t2 - t1, total_s=t2 - t0, cache_hits=0)
        return res

    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None,
                intrinsics: Optional[np.ndarray] = None, cam_poses: Optional[np.ndarray] = None) -> FieldPrediction:
        """``intrinsics`` (3x3 on the input grid), ``depth`` and ``cam_poses`` (``[N, 4, 4]``, each frame's camera
        in the first one's, where odometry knows them; None = static camera) are used by the depth-aware variant
        only (without depth it falls back to a unit-depth plane and default intrinsics: a 2.5D field, see
        ``model.geometry``)."""
        import torch
        frames = _check_frames(frames, self.input_size)
        if frame_keys is not None and len(frame_keys) != frames.shape[0]:
            raise ValueError("frame_keys must have one key per frame")
        if self.needs_intrinsics:
            return self._predict_geometric(frames, depth, intrinsics, times, cam_poses)
        n = frames.shape[0]
        fn = pp.to_network(frames)
        H, W = fn.shape[1:3]
        t0 = time.perf_counter()
        tokens = self.encode_frames(fn, frame_keys)
        t1 = time.perf_counter()
        tt = torch.as_tensor(_default_times_np(n) if times is None else np.asarray(times, np.float32),
                             device=self.device)[None]
        with torch.inference_mode(), self._autocast():
            pts, conf, t_hat = self.model.decode(tokens[None], tt, H, W)
        res = _to_prediction(pts[0].float().cpu().numpy(), conf[0].float().cpu().numpy(),
                             t_hat[0].float().cpu().numpy(), self.portrait)
        t2 = time.perf_counter()
        self.last_stats.update(encode_s=t1 - t0, decode_s=t2 - t1, total_s=t2 - t0)
        return res

    def clear_cache(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self.clear_cache()


# ------------------------------------------------------------------------------------------------------ onnxruntime


def select_providers(device: str = "cpu", fallback: str = "error", tensorrt: bool = True,
                     trt_cache_dir: Optional[str] = None, available: Optional[Sequence[str]] = None):
    """onnxruntime provider list for ``device`` ('cpu' | 'cuda' | 'tensorrt'), best first.

    'tensorrt' wants TensorRT (then CUDA, CPU as per-node fallbacks); 'cuda' wants CUDA (TensorRT first when
    ``tensorrt`` and available). If the wanted provider is missing: fallback='error' raises
    ``EngineUnavailableError``; fallback='cpu' logs a WARNING and returns CPU only. Never silent.
    """
    if fallback not in ("error", "cpu"):
        raise ValueError("fallback must be 'error' or 'cpu'")
    if available is None:
        import onnxruntime as ort
        available = ort.get_available_providers()
    available = list(available)
    device = str(device).lower()
    cpu = ["CPUExecutionProvider"]
    if device == "cpu":
        return cpu
    want = {"cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider",
            "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}.get(device.split(":")[0])
    if want is None:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or tensorrt")
    if want not in available:
        msg = f"onnxruntime provider {want} for device {device!r} is not available (available: {available})"
        if fallback == "error":
            raise EngineUnavailableError(msg)
        log.warning("%s; falling back to CPUExecutionProvider (fallback='cpu')", msg)
        return cpu
    provs = []
    if "TensorrtExecutionProvider" in available and (want == "TensorrtExecutionProvider" or tensorrt):
        opts = {"trt_engine_cache_enable": bool(trt_cache_dir)}
        if trt_cache_dir:
            os.makedirs(trt_cache_dir, exist_ok=True)
            opts["trt_engine_cache_path"] = str(trt_cache_dir)
        provs.append(("TensorrtExecutionProvider", opts))
    if "CUDAExecutionProvider" in available:
        provs.append("CUDAExecutionProvider")
    return provs + cpu


class OnnxEngine:
    """onnxruntime session over an exported model (fixed window N and input size; see ``onnx_export``)."""

    def __init__(self, onnx_path: str, device: str = "cpu", fallback: str = "error", tensorrt: bool = True,
                 trt_cache_dir: Optional[str] = None, threads: Optional[int] = None):
        import onnxruntime as ort
        if not os.path.exists(onnx_path):
            raise FileNotFoundError(f"no ONNX model at {onnx_path}")
        providers = select_providers(device, fallback, tensorrt, trt_cache_dir)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(onnx_path, sess_options=so, providers=providers)
        got = self.session.get_providers()
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if wanted not in got:
            msg = f"onnxruntime did not start {wanted} (session has {got})"
            if fallback == "error":
                raise EngineUnavailableError(msg)
            log.warning("%s; running on %s (fallback='cpu')", msg, got)
        self.providers = got
        inp = {i.name: i for i in self.session.get_inputs()}
        shape = inp["images"].shape  # [1, N, 3, H, W]
        self.window = int(shape[1])
        net_hw = (int(shape[3]), int(shape[4]))
        meta = self.session.get_modelmeta().custom_metadata_map
        portrait = meta.get("user_orientation") == "portrait"
        self.input_size = (net_hw[1], net_hw[0]) if portrait else net_hw
        self.portrait = portrait
        self.num_ctrl = int(self.session.get_outputs()[0].shape[2])
        self.last_stats: Dict[str, float] = {}

    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None) -> FieldPrediction:
        frames = _check_frames(frames, self.input_size, self.window)
        t0 = time.perf_counter()
        x = pp.normalize(pp.to_network(frames)).numpy()[None]
        tt = (_default_times_np(self.window) if times is None else np.asarray(times, np.float32))[None]
        pts, conf, t_hat = self.session.run(None, {"images": x, "times": tt})
        res = _to_prediction(pts[0], conf[0], t_hat[0], self.portrait)
        self.last_stats["total_s"] = time.perf_counter() - t0
        return res

    def close(self) -> None:
        self.session = None


# ------------------------------------------------------------------------------------------------------ factory


EMBEDDED = "embedded"
EMBEDDED_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "compact_sim.safetensors")


def resolve_weights(weights: Optional[str]) -> Optional[str]:
    """'embedded' -> the compact checkpoint shipped in this package; a path stays a path; empty -> None."""
    if not weights:
        return None
    if str(weights) == EMBEDDED:
        if not os.path.exists(EMBEDDED_WEIGHTS):
            raise FileNotFoundError(f"the embedded weights {EMBEDDED_WEIGHTS} are missing from this install")
        return EMBEDDED_WEIGHTS
    return str(weights)


def build_torch_model(weights: Optional[str] = None, preset: str = "compact", seed: int = 0, config=None):
    """(model, note): from a checkpoint (official .pt or our safetensors; 'embedded' = the shipped compact model)
    or a preset with deterministic random weights (logged as a WARNING: random weights give meaningless fields)."""
    from .checkpoint import init_pattern_, load_model
    from .config import preset as get_preset
    from .network import TraceAnythingNet
    weights = resolve_weights(weights)
    if weights:
        model, report = load_model(weights, config=config)
        return model, f"weights {weights} ({report.config_source} config, {report.param_count:,} params)"
    cfg = config or get_preset(preset)
    log.warning("no weights given: %s preset with RANDOM weights (seed %d) -- outputs are meaningless", cfg.name, seed)
    model = TraceAnythingNet(cfg)
    init_pattern_(model, seed=20251101 + int(seed))
    return model.eval(), f"{cfg.name} preset, random weights"


def _weights_tag(weights: Optional[str], seed: int) -> str:
    """Identity of the weights for the ONNX cache name: the checkpoint's path, size and mtime, or the seed."""
    weights = resolve_weights(weights)
    if not weights:
        return f"random{seed}"
    import hashlib
    st = os.stat(weights)
    key = f"{os.path.abspath(weights)}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def create_estimator(params: Dict):
    """The node's factory. Keys (all optional):

    engine 'torch'|'onnx' (torch); device 'cpu'|'cuda'|'tensorrt' (cpu); dtype 'fp32'|'fp16'|'bf16' (fp32);
    precision 'autocast'|'cast'; weights PATH (official .pt or our .safetensors) or 'embedded' (the shipped
    compact model), else preset 'official'|'compact' with random weights; input_size [H, W] (preset's); window N (onnx:
    fixed, default 4);
    onnx_path PATH (onnx: exported on the fly into onnx_cache_dir when absent); fallback 'error'|'cpu' (error);
    trt_cache_dir PATH; threads INT; cache_size INT (64).

    With a ``regime`` key ('auto' or a regime name; what the node, ``process`` and ``eval``'s 'model' pass) the result
    is the input-regime estimator of ``model.regimes`` (the network above for its regime, geometry elsewhere);
    without it, the bare network engine.
    """
    if params and "regime" in params:
        from . import regimes
        return regimes.create_estimator(params)
    p = dict(params or {})
    engine = str(p.get("engine", "torch")).lower()
    device = str(p.get("device", "cpu"))
    fallback = str(p.get("fallback", "error"))
    threads = p.get("threads")
    threads = int(threads) if threads else None
    input_size = p.get("input_size")
    if engine == "torch":
        model, note = build_torch_model(p.get("weights") or None, p.get("preset", "compact"), int(p.get("seed", 0)))
        size = tuple(input_size) if input_size else tuple(model.cfg.input_size)
        est = TorchEngine(model, size, device=device, dtype=p.get("dtype", "fp32"),
                          precision=p.get("precision", "autocast"), cache_size=int(p.get("cache_size", 64)),
                          threads=threads, fallback=fallback)
        est.description = f"torch {device} {p.get('dtype', 'fp32')}: {note}"
        return est
    if engine == "onnx":
        if str(p.get("dtype", "fp32")).lower() not in ("fp32", "float32"):
            raise EngineUnavailableError("the ONNX engine runs the fp32 export (use engine 'torch' for fp16/bf16)")
        onnx_path = p.get("onnx_path")
        if not onnx_path:
            from .onnx_export import export_onnx
            model, note = build_torch_model(p.get("weights") or None, p.get("preset", "compact"),
                                            int(p.get("seed", 0)))
            size = tuple(input_size) if input_size else tuple(model.cfg.input_size)
            window = int(p.get("window", 4))
            cache_dir = p.get("onnx_cache_dir") or os.path.join(os.path.expanduser("~"), ".cache", "trace_anything_ros")
            os.makedirs(cache_dir, exist_ok=True)
            onnx_path = os.path.join(cache_dir, f"{model.cfg.name}_N{window}_{size[0]}x{size[1]}_"
                                                f"{_weights_tag(p.get('weights'), int(p.get('seed', 0)))}.onnx")
            if os.path.exists(onnx_path):  # cached export of the same weights, window and size
                log.info("ONNX engine: using the cached export %s", onnx_path)
            else:
                tmp = f"{onnx_path}.{os.getpid()}.tmp"
                try:
                    export_onnx(model, tmp, window=window, input_size=size, verify=False)
                    os.replace(tmp, onnx_path)  # atomic: a concurrent reader never sees half a file
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
        est = OnnxEngine(onnx_path, device=device, fallback=fallback, tensorrt=bool(p.get("tensorrt", True)),
                         trt_cache_dir=p.get("trt_cache_dir"), threads=threads)
        if input_size and tuple(input_size) != est.input_size:
            raise ValueError(f"ONNX model {onnx_path} is for {est.input_size}, not {tuple(input_size)}")
        if p.get("window") and int(p["window"]) != est.window:
            raise ValueError(f"ONNX model {onnx_path} has window {est.window}, not {p['window']}")
        est.description = f"onnxruntime {est.providers[0]}: {onnx_path}"
        return est
    raise ValueError(f"unknown engine {engine!r}; use 'torch' or 'onnx'")
