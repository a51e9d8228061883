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

"""Model benchmark: our ``official`` preset vs the official Trace Anything code on this CPU (same random weights and
input, fp32, separate subprocesses for time and peak RSS), bf16 cost, and compact-preset frames/s (torch, ONNX).

``trace-anything-ros bench model [...]`` or ``python -m trace_anything_ros.eval.bench_model [...]``.
The official code is imported from ``--official-src`` (a checkout of ByteDance-Seed/TraceAnything made outside this
repo; it needs ``einops``, which ``--official-deps`` may point at). Without it, that comparison is skipped (reported).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

PARTS = ("official", "bf16", "compact")


def add_arguments(parser) -> None:
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--frames", type=int, default=2, help="frames for the official-size comparison (2)")
    parser.add_argument("--size", nargs=2, type=int, default=[288, 512], metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up (min is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official-src", default=os.environ.get("TRACE_ANYTHING_OFFICIAL_SRC", "/tmp/ta_official"),
                        help="directory holding the official 'trace_anything' package")
    parser.add_argument("--official-deps", default=os.environ.get("TRACE_ANYTHING_OFFICIAL_DEPS", "/tmp/ta_deps"),
                        help="extra sys.path entry for the official code's dependencies (einops)")
    parser.add_argument("--compact-size", nargs=2, type=int, default=[96, 128], metavar=("H", "W"))
    parser.add_argument("--compact-window", type=int, default=4)
    parser.add_argument("--json", help="also write the result dict here")
    # internal: one measurement in this process
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="autocast", help=argparse.SUPPRESS)


# ------------------------------------------------------------------------------------------------ worker side


def _rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _inputs(n: int, H: int, W: int):
    import torch
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, H, W, generator=g) * 2 - 1
    times = [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    return images, times


def _official_model(src: str, deps: str):
    for p in (deps, src):
        if p and p not in sys.path:
            sys.path.insert(0, p)
    from trace_anything.trace_anything import TraceAnything  # noqa: E402  (the official code, read-only use)
    enc = dict(encoder_type="croco", img_size=512, patch_size=16, patch_embed_cls="ManyAR_PatchEmbed",
               embed_dim=1024, num_heads=16, depth=24, mlp_ratio=4, pos_embed="RoPE100",
               attn_implementation="flash_attention")
    dec = dict(decoder_type="fast3r", random_image_idx_embedding=False, enc_embed_dim=1024, embed_dim=1024,
               num_heads=16, depth=24, mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0,
               attn_implementation="flash_attention")
    head = dict(head_type="dpt", output_mode="pts3d", landscape_only=True, depth_mode=["exp", -float("inf"),
                float("inf")], conf_mode=["exp", 1, float("inf")], patch_size=16, with_local_head=False)
    return TraceAnything(encoder_args=enc, decoder_args=dec, head_args=head, targeting_mechanism="bspline_conf",
                         poly_degree=10, whether_local=False)


def _worker(args) -> Dict:
    import torch
    torch.set_num_threads(args.threads)
    from trace_anything_ros.model.checkpoint import init_pattern_
    H, W = args.size
    res: Dict = {"worker": args.worker, "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    if args.worker == "official":
        model = _official_model(args.official_src, args.official_deps)
    else:
        from trace_anything_ros.model.config import OFFICIAL
        from trace_anything_ros.model.network import TraceAnythingNet
        model = TraceAnythingNet(OFFICIAL)
    init_pattern_(model)  # same weights in both (same named_parameters order)
    model.eval()
    res["params"] = sum(p.numel() for p in model.parameters())
    res["build_s"] = time.perf_counter() - t0
    images, times = _inputs(args.frames, H, W)
    res["rss_after_build_gb"] = _rss_now() / 1e9

    if args.worker == "official":
        views = [{"img": images[i:i + 1], "time_step": times[i]} for i in range(args.frames)]

        def run():
            with torch.no_grad():
                out = model(views)
            return (torch.stack([o["ctrl_pts3d"] for o in out]), torch.stack([o["ctrl_conf"] for o in out]),
                    torch.stack([o["time"].reshape(()) for o in out]))
    else:
        import contextlib
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
        x = images[None]
        tt = torch.tensor(times, dtype=torch.float32)[None]
        if args.dtype != "fp32" and args.precision == "cast":
            model = model.to(dt)
            x = x.to(dt)
        ctx = (lambda: torch.autocast("cpu", dtype=dt)) if (args.dtype != "fp32" and args.precision == "autocast") \
            else contextlib.nullcontext

        def run():
            with torch.inference_mode(), ctx():
                p, c, t = model(x, tt)
            return p[0], c[0], t[0]

    times_s: List[float] = []
    for i in range(args.repeats + 1):
        t0 = time.perf_counter()
        out = run()
        times_s.append(time.perf_counter() - t0)
    res["warmup_s"] = times_s[0]
    res["times_s"] = times_s[1:]
    res["time_s"] = min(times_s[1:]) if len(times_s) > 1 else times_s[0]
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    if args.out:
        np.savez(args.out, ctrl_pts=out[0].float().numpy(), ctrl_conf=out[1].float().numpy(),
                 time=out[2].float().numpy())
    return res


def _compact(args) -> Dict:
    import torch
    torch.set_num_threads(args.threads)
    from trace_anything_ros.model.engine import OnnxEngine, TorchEngine, build_torch_model
    from trace_anything_ros.model.onnx_export import export_onnx
    H, W = args.compact_size
    n = args.compact_window
    model, _ = build_torch_model(None, "compact")
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 256, (n + 8, H, W, 3), dtype=np.uint8)
    res: Dict = {"params": sum(p.numel() for p in model.parameters()), "size": [H, W], "window": n}

    def fps(engine, keys: bool):
        engine.predict(stream[:n], frame_keys=list(range(n)) if keys else None)  # warm-up
        t0 = time.perf_counter()
        k = 8
        for s in range(1, k + 1):
            engine.predict(stream[s:s + n], frame_keys=list(range(s, s + n)) if keys else None)
        dt = (time.perf_counter() - t0) / k
        return {"window_s": dt, "windows_per_s": 1 / dt, "frames_per_s": n / dt}

    res["torch_fp32_no_cache"] = fps(TorchEngine(model, (H, W)), keys=False)
    res["torch_fp32_token_cache"] = fps(TorchEngine(model, (H, W)), keys=True)
    res["torch_bf16_token_cache"] = fps(TorchEngine(model, (H, W), dtype="bf16"), keys=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "compact.onnx")
        rep = export_onnx(model, path, window=n, input_size=(H, W))
        res["onnx_verify_max_rel_err"] = rep["verify"]["max_rel_err"]
        res["onnx_cpu"] = fps(OnnxEngine(path, threads=args.threads), keys=False)
    return res


# ------------------------------------------------------------------------------------------------ parent side


def _sub(args, worker: str, out: str, **extra) -> Dict:
    cmd = [sys.executable, "-m", "trace_anything_ros.eval.bench_model", "--worker", worker, "--out", out,
           "--frames", str(args.frames), "--size", str(args.size[0]), str(args.size[1]), "--repeats",
           str(args.repeats), "--threads", str(args.threads), "--official-src", args.official_src,
           "--official-deps", args.official_deps]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _err(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _cmp(pa: str, pb: str) -> Dict:
    a, b = np.load(pa), np.load(pb)
    return {k: _err(a[k], b[k]) for k in ("ctrl_pts", "ctrl_conf", "time")}


def run(args) -> Dict:
    if args.worker:
        return _worker(args) if args.worker in ("ours", "official") else _compact(args)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    result: Dict = {"cpu_threads": args.threads, "frames": args.frames, "size": list(args.size)}
    tmp = tempfile.mkdtemp(prefix="bench_model_")
    ours_out = os.path.join(tmp, "ours.npz")
    if "official" in parts or "bf16" in parts:
        result["ours_fp32"] = _sub(args, "ours", ours_out)
    if "official" in parts:
        if os.path.isdir(os.path.join(args.official_src, "trace_anything")):
            off_out = os.path.join(tmp, "official.npz")
            result["official_fp32"] = off = _sub(args, "official", off_out)
            ours = result["ours_fp32"]
            if "error" not in off and "error" not in ours:
                result["time_ratio_ours_over_official"] = ours["time_s"] / off["time_s"]
                result["peak_rss_ratio_ours_over_official"] = ours["peak_rss_gb"] / off["peak_rss_gb"]
                result["max_rel_err_ours_vs_official"] = _cmp(ours_out, off_out)
        else:
            result["official_fp32"] = {"error": f"official code not found under {args.official_src}"}
    if "bf16" in parts:
        for prec in ("autocast", "cast"):
            out = os.path.join(tmp, f"ours_bf16_{prec}.npz")
            r = _sub(args, "ours", out, dtype="bf16", precision=prec)
            if "error" not in r and os.path.exists(ours_out):
                r["max_rel_err_vs_fp32"] = _cmp(out, ours_out)
                if "error" not in result.get("ours_fp32", {"error": 1}):
                    r["speedup_vs_fp32"] = result["ours_fp32"]["time_s"] / r["time_s"]
            result[f"ours_bf16_{prec}"] = r
    if "compact" in parts:
        result["compact"] = _compact_sub(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _compact_sub(args) -> Dict:
    cmd = [sys.executable, "-m", "trace_anything_ros.eval.bench_model", "--worker", "compact", "--threads",
           str(args.threads), "--compact-size", str(args.compact_size[0]), str(args.compact_size[1]),
           "--compact-window", str(args.compact_window)]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(args=None) -> int:
    """``args``: parsed arguments (``trace-anything-ros bench model`` parses them) or a command line (``python -m``;
    None: sys.argv)."""
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.bench_model",
                                    description=__doc__.splitlines()[0])
        add_arguments(p)
        args = p.parse_args(args)
    res = run(args)
    print(json.dumps(res) if args.worker else json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
