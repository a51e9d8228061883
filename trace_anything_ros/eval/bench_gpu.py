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

"""GPU readiness: the official preset on CUDA (fp32 / fp16 / bf16, encoder-token cache) and onnxruntime's CUDA and
TensorRT providers against torch. Where CUDA is absent it says so in one line and exits 0.

``trace-anything-ros bench gpu [--frames 8] [--size 288 512] [--dtypes fp32,fp16,bf16] [--repeats 3] [--no-onnx]``

Parts (each reported, an exception in one is recorded as its 'error' and the others still run):
  parity   the parity fixture's tiny official-architecture model (../shared/fixtures/trace_anything_parity, real
           official weights of that config): CUDA in each dtype vs CPU fp32 here (max |a-b| / max |b| per output),
           and CPU fp32 vs the official code's outputs in the fixture
  official the official preset (647.6 M parameters, RANDOM weights: timing and memory only) at --frames x --size:
           per-window time (median of --repeats after a warm-up; the engine returns host arrays, so every timed
           call includes the device sync), peak CUDA memory, per dtype; then the encoder-token cache as a live node
           with overlapping windows uses it (stride 1: 1 new frame per window): time per window and the max
           difference to the uncached window (the cache is exact by construction: 0 expected)
  onnx     the same model exported to ONNX (fp32, fixed window and size), onnxruntime with the CUDA and the
           TensorRT provider where onnxruntime-gpu offers them: per-window time and max error against torch fp32
           on CUDA; missing providers are named
Model weights are random except in 'parity': the official checkpoint is never needed (CC BY-NC; users bring it).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time
from typing import Dict, List

import numpy as np

PARTS = ("parity", "official", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--frames", type=int, default=8, help="window length N of the official preset (8)")
    parser.add_argument("--size", nargs=2, type=int, default=[288, 512], metavar=("H", "W"))
    parser.add_argument("--dtypes", default="fp32,fp16,bf16", help="torch dtypes to run (autocast)")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows after one warm-up (median reported)")
    parser.add_argument("--device", default="cuda", help="torch device (cuda, cuda:1, ...)")
    parser.add_argument("--fixtures", default="", help="the parity fixture's parent directory (default: "
                        "$TRACE_ANYTHING_SHARED/fixtures or ../shared/fixtures beside the checkout)")
    parser.add_argument("--onnx-dir", default="", help="where the ONNX export goes (default: a temporary dir)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime part")
    parser.add_argument("--json", help="also write the result dict here")


def cuda_status() -> str:
    """'' when torch can use CUDA, else why not (one line)."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        return f"torch not importable ({e})"
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU build)"
        return f"no CUDA: torch {torch.__version__}, CUDA build {build}, {torch.cuda.device_count()} devices visible"
    return ""


def _rel(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _fixtures_dir(arg: str) -> pathlib.Path:
    if arg:
        return pathlib.Path(arg)
    env = os.environ.get("TRACE_ANYTHING_SHARED")
    root = pathlib.Path(__file__).resolve().parents[2]
    return (pathlib.Path(env) if env else root.parent / "shared") / "fixtures"


def _sync(device):
    import torch
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, repeats: int, device) -> List[float]:
    fn()  # warm-up (kernels, autotuning, allocator)
    _sync(device)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return out


def _parity(args) -> Dict:
    import torch
    from safetensors.torch import load_file

    from trace_anything_ros.model.config import ModelConfig
    from trace_anything_ros.model.network import TraceAnythingNet
    d = _fixtures_dir(args.fixtures) / "trace_anything_parity"
    if not (d / "config.json").is_file():
        return {"error": f"parity fixture not found in {d}"}
    cfg = ModelConfig.from_official_json(json.loads((d / "config.json").read_text()))
    weights = load_file(str(d / "weights.safetensors"))
    inputs, official = dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))

    def run(device, dtype):
        m = TraceAnythingNet(cfg).eval()
        m.load_state_dict(weights, strict=True)
        m = m.to(device)
        images = torch.from_numpy(inputs["images"])[None].to(device)
        times = torch.from_numpy(inputs["time_steps"])[None].to(device)
        ctx = (torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, dtype))
               if dtype != "float32" else torch.autocast(device_type="cpu", enabled=False))
        with torch.inference_mode(), ctx:
            pts, conf, t_hat = m(images, times)
        return [x[0].float().cpu().numpy() for x in (pts, conf, t_hat)]

    ref = run("cpu", "float32")
    res: Dict = {"cpu_fp32_vs_official": {"ctrl_pts": _rel(ref[0], official["ctrl_pts3d"]),
                                          "ctrl_conf": _rel(ref[1], official["ctrl_conf"])}}
    names = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
    for dt in _dtypes(args):
        got = run(args.device, names[dt])
        res[f"{dt}_vs_cpu_fp32"] = {k: _rel(g, r) for k, g, r in zip(("ctrl_pts", "ctrl_conf", "time"), got, ref)}
    return res


def _dtypes(args) -> List[str]:
    return [d.strip() for d in args.dtypes.split(",") if d.strip()]


def _frames(n: int, size) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size[0], size[1], 3), dtype=np.uint8)


def _official(args, model) -> Dict:
    import torch

    from trace_anything_ros.model.engine import TorchEngine
    n, size = args.frames, tuple(args.size)
    frames = _frames(n + args.repeats + 1, size)
    res: Dict = {"frames": n, "size": list(size), "params": sum(p.numel() for p in model.parameters())}
    fp32_out = None
    for dt in _dtypes(args):
        r: Dict = {}
        try:
            eng = TorchEngine(model, size, device=args.device, dtype=dt, cache_size=4 * n)
            torch.cuda.reset_peak_memory_stats(args.device)
            times = _timed(lambda: eng.predict(frames[:n]), args.repeats, args.device)
            r.update(window_s_median=statistics.median(times), window_s_min=min(times),
                     peak_mem_gb=torch.cuda.max_memory_allocated(args.device) / 1e9)
            out = eng.predict(frames[:n])
            if dt == "fp32":
                fp32_out = out
            elif fp32_out is not None:
                r["max_rel_err_vs_cuda_fp32"] = _rel(out.ctrl_pts, fp32_out.ctrl_pts)
            # token cache: windows sliding by one frame; every frame but the newest is cached
            keys = list(range(len(frames)))
            eng.clear_cache()
            eng.predict(frames[:n], frame_keys=keys[:n])
            cached = []
            for s in range(1, args.repeats + 1):
                t = time.perf_counter()
                eng.predict(frames[s:s + n], frame_keys=keys[s:s + n])
                _sync(args.device)
                cached.append(time.perf_counter() - t)
            hit = eng.predict(frames[1:1 + n], frame_keys=keys[1:1 + n])
            eng.clear_cache()
            miss = eng.predict(frames[1:1 + n])
            r.update(cached_window_s_median=statistics.median(cached),
                     cache_speedup=r["window_s_median"] / statistics.median(cached),
                     cache_max_abs_diff=float(np.abs(hit.ctrl_pts - miss.ctrl_pts).max()))
            eng.close()
        except Exception as e:  # noqa: BLE001 - one dtype failing must not hide the others
            r["error"] = f"{type(e).__name__}: {e}"
        res[dt] = r
        torch.cuda.empty_cache()
    res["_fp32_ctrl_pts"] = fp32_out.ctrl_pts if fp32_out is not None else None
    return res


def _onnx(args, model, torch_ref) -> Dict:
    import onnxruntime as ort

    from trace_anything_ros.model.engine import OnnxEngine
    from trace_anything_ros.model.onnx_export import export_onnx
    avail = ort.get_available_providers()
    res: Dict = {"onnxruntime": ort.__version__, "available_providers": avail}
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    if not any(p in avail for p in wanted.values()):
        res["note"] = "no CUDA / TensorRT provider in this onnxruntime (pip install onnxruntime-gpu)"
        return res
    n, size = args.frames, tuple(args.size)
    out_dir = args.onnx_dir or tempfile.mkdtemp(prefix="bench_gpu_")
    path = os.path.join(out_dir, f"official_N{n}_{size[0]}x{size[1]}.onnx")
    t = time.perf_counter()
    if not os.path.exists(path):
        export_onnx(model, path, window=n, input_size=size, verify=False)
    res["export_s"] = time.perf_counter() - t
    frames = _frames(n, size)
    for dev, prov in wanted.items():
        if prov not in avail:
            res[dev] = {"error": f"{prov} not available"}
            continue
        try:
            eng = OnnxEngine(path, device=dev, fallback="error", tensorrt=(dev == "tensorrt"),
                             trt_cache_dir=os.path.join(out_dir, "trt_cache"))
            times = _timed(lambda: eng.predict(frames), args.repeats, "cpu")
            out = eng.predict(frames)
            r = {"providers": eng.providers, "window_s_median": statistics.median(times)}
            if torch_ref is not None:
                r["max_rel_err_vs_torch_cuda_fp32"] = _rel(out.ctrl_pts, torch_ref)
            res[dev] = r
            eng.close()
        except Exception as e:  # noqa: BLE001
            res[dev] = {"error": f"{type(e).__name__}: {e}"}
    return res


def run(args) -> Dict:
    why = cuda_status()
    if why:
        return {"cuda": False, "reason": why}
    import torch

    from trace_anything_ros.model.engine import build_torch_model
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    res: Dict = {"cuda": True, "device": torch.cuda.get_device_name(args.device), "torch": torch.__version__}
    if "parity" in parts:
        try:
            res["parity"] = _parity(args)
        except Exception as e:  # noqa: BLE001
            res["parity"] = {"error": f"{type(e).__name__}: {e}"}
    ref = None
    if "official" in parts or ("onnx" in parts and not args.no_onnx):
        model, _ = build_torch_model(preset="official", seed=0)
        if "official" in parts:
            res["official"] = _official(args, model)
            ref = res["official"].pop("_fp32_ctrl_pts", None)
        if "onnx" in parts and not args.no_onnx:
            try:
                res["onnx"] = _onnx(args, model, ref)
            except Exception as e:  # noqa: BLE001
                res["onnx"] = {"error": f"{type(e).__name__}: {e}"}
    return res


def main(args) -> int:
    res = run(args)
    if not res.get("cuda"):
        print(f"bench gpu: {res['reason']} -- nothing to measure")
        return 0
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    return 0
