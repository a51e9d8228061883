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

"""Checkpoint loading and saving.

Two formats:

* the official ``trace_anything.pt`` (or any official-format file): read with ``torch.load(weights_only=True)``
  (never an unrestricted pickle). Accepted variants: a plain state_dict or ``{'state_dict': ...}``; an optional
  ``net.`` prefix on every key; alias names ``time_head.*``/``track_head.*`` and ``*.scratch.layer_rn.{i}`` (either or
  both names present; when both are, they must hold equal values); the local head (``ds_head_local.*``/
  ``local_head.*``) absent or present (ignored). After alias resolution the encoder, fusion transformer, time head and
  track head are checked strictly (every key present, exact shapes); anything missing, unexpected or mismatched is
  reported and refused (``CheckpointError``), never silently skipped.
* our own: safetensors with the architecture config JSON in the metadata (``save_checkpoint``); loading one builds
  the right config. A safetensors file without our metadata (e.g. the parity fixture) needs a config.
"""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .config import OFFICIAL, DecoderConfig, EncoderConfig, HeadConfig, ModelConfig
from .network import TraceAnythingNet, count_parameters, sincos_time_table

META_FORMAT = "trace_anything_ros"
META_CONFIG = "trace_anything_ros.config"
_LAYER_RN = re.compile(r"\.scratch\.layer_rn\.(\d+)\.")
_HEAD_ALIASES = (("time_head.", "ds_head_time."), ("track_head.", "ds_head_track."), ("local_head.", "ds_head_local."))
_IGNORED_PREFIXES = ("ds_head_local.",)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; ``str(e)`` is a one-line reason."""


@dataclass
class LoadReport:
    path: str = ""
    file_format: str = ""                 # 'safetensors' | 'torch'
    wrapper: str = "plain"                # 'plain' | 'state_dict'
    prefix_stripped: str = ""
    num_keys_in_file: int = 0
    aliases_resolved: int = 0
    loaded: int = 0
    ignored: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    dtypes: Dict[str, int] = field(default_factory=dict)
    param_count: int = 0
    config: Optional[ModelConfig] = None
    config_source: str = ""              # 'metadata' | 'given' | 'inferred from shapes'
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def one_line_problem(self) -> str:
        parts = []
        for name, lst in (("missing", self.missing), ("unexpected", self.unexpected)):
            if lst:
                parts.append(f"{len(lst)} {name} (e.g. {', '.join(lst[:3])})")
        if self.mismatched:
            k, got, want = self.mismatched[0]
            parts.append(f"{len(self.mismatched)} shape-mismatched (e.g. {k}: file {list(got)} vs model {list(want)})")
        return "; ".join(parts)

    def summary(self) -> str:
        lines = [f"file: {self.path} ({self.file_format}, wrapper={self.wrapper}"
                 + (f", stripped prefix '{self.prefix_stripped}'" if self.prefix_stripped else "") + ")",
                 f"config: {self.config.name if self.config else '?'} ({self.config_source})"]
        if self.config is not None:
            c = self.config
            lines.append(f"  encoder {c.encoder.embed_dim}w x{c.encoder.depth} ({c.encoder.num_heads} heads), "
                         f"decoder {c.decoder.embed_dim}w x{c.decoder.depth} ({c.decoder.num_heads} heads), "
                         f"DPT feature {c.head.feature_dim} last {c.head.last_dim} layers {list(c.head.layer_dims)}, "
                         f"D={c.num_ctrl}")
        lines.append(f"keys in file: {self.num_keys_in_file}; aliases resolved: {self.aliases_resolved}; "
                     f"loaded tensors: {self.loaded}")
        if self.ignored:
            lines.append(f"ignored ({len(self.ignored)}): local head / extra keys, e.g. {', '.join(self.ignored[:3])}")
        lines.append(f"missing: {len(self.missing)}" + (f" e.g. {', '.join(self.missing[:5])}" if self.missing else ""))
        lines.append(f"unexpected: {len(self.unexpected)}"
                     + (f" e.g. {', '.join(self.unexpected[:5])}" if self.unexpected else ""))
        lines.append(f"shape mismatches: {len(self.mismatched)}")
        lines.append(f"parameters: {self.param_count:,}")
        lines.append("dtypes: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.dtypes.items())))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ reading raw tensors


def _read_file(path: str) -> Tuple[Dict[str, object], str, Dict[str, str]]:
    """Raw mapping, file format and (safetensors) metadata. Raises CheckpointError with one-line reasons."""
    if not os.path.exists(path):
        raise CheckpointError(f"no such file: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"is a directory, not a checkpoint: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"empty file: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    is_zip = head[:4] == b"PK\x03\x04"
    if path.endswith(".safetensors") or (not is_zip and _looks_like_safetensors(head)):
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, "safetensors", meta
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"corrupt or truncated safetensors file {path}: {_short(e)}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = _torch_load(path, is_zip)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line
        msg = _short(e)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            detail = msg.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
            raise CheckpointError(f"refusing {path}: not a valid tensor-only checkpoint (corrupt, or it holds "
                                  f"pickled Python objects; only weights_only loading is allowed): {detail}") from None
        if isinstance(e, (zipfile.BadZipFile, EOFError)) or "zip" in msg.lower() or "central directory" in msg:
            raise CheckpointError(f"corrupt or truncated checkpoint {path}: {msg}") from None
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {msg}") from None
    return obj, "torch", {}


def _torch_load(path: str, is_zip: bool):
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except RuntimeError as e:
        if is_zip and "mmap" in str(e):
            return torch.load(path, map_location="cpu", weights_only=True)
        raise


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def _short(e: BaseException) -> str:
    s = " ".join(str(e).split())
    s = s or type(e).__name__
    return (s[:200] + "...") if len(s) > 200 else s


def _unwrap(obj) -> Tuple[Dict[str, Tensor], str]:
    wrapper = "plain"
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj, wrapper = obj["state_dict"], "state_dict"
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a state_dict (mapping of names to tensors), got {type(obj).__name__}")
    if not obj:
        raise CheckpointError("the state_dict is empty")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"not a state_dict: {len(bad)} entries are not tensors (e.g. {bad[0]!r})")
    return dict(obj), wrapper


def canonical_name(key: str) -> str:
    """Official alias -> canonical key (identity for canonical keys)."""
    for alias, canon in _HEAD_ALIASES:
        if key.startswith(alias):
            key = canon + key[len(alias):]
            break
    return _LAYER_RN.sub(lambda m: f".scratch.layer{int(m.group(1)) + 1}_rn.", key)


def normalize_state_dict(obj, report: Optional[LoadReport] = None) -> Dict[str, Tensor]:
    """Unwrap, strip ``net.``, resolve aliases (checking equal values), drop the local head. Canonical keys out."""
    report = report if report is not None else LoadReport()
    sd, report.wrapper = _unwrap(obj)
    report.num_keys_in_file = len(sd)
    if all(k.startswith("net.") for k in sd):
        sd = {k[4:]: v for k, v in sd.items()}
        report.prefix_stripped = "net."
    out: Dict[str, Tensor] = {}
    origin: Dict[str, str] = {}
    for k, v in sd.items():
        c = canonical_name(k)
        if c.startswith(_IGNORED_PREFIXES):
            report.ignored.append(k)
            continue
        if c in out:
            prev = out[c]
            same = prev.shape == v.shape and (
                (prev.data_ptr() == v.data_ptr() and prev.dtype == v.dtype) or torch.equal(prev, v))
            if not same:
                raise CheckpointError(f"alias pair disagrees: {origin[c]} and {k} hold different values")
            report.aliases_resolved += 1
            if k == c:  # prefer reporting the canonical name
                origin[c] = k
            continue
        out[c] = v
        origin[c] = k
    for v in out.values():
        report.dtypes[str(v.dtype).replace("torch.", "")] = report.dtypes.get(str(v.dtype).replace("torch.", ""), 0) + 1
    return out


# ------------------------------------------------------------------------------------------------ config inference


def _depth(sd, prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return (max(idx) + 1) if idx else 0


def infer_config(sd: Dict[str, Tensor], base: ModelConfig = OFFICIAL) -> Tuple[ModelConfig, List[str]]:
    """Architecture from tensor shapes of a canonical state_dict. Head counts are not visible in shapes: the base
    config's are used when the widths match it, else head_dim 64 is assumed (noted)."""
    notes = []
    try:
        ew = sd["encoder.patch_embed.proj.weight"]
        ed = ew.shape[0]
        dd = sd["decoder.decoder_embed.weight"].shape[0]
        pre = "ds_head_track.dpt."
        fd = sd[pre + "scratch.layer1_rn.weight"].shape[0]
        last = sd[pre + "head.2.weight"].shape[0]
        lds = tuple(int(sd[pre + f"act_postprocess.{i}.0.weight"].shape[0]) for i in range(4))
        nch = sd[pre + "head.4.weight"].shape[0]
        mlp_e = sd["encoder.enc_blocks.0.mlp.fc1.weight"].shape[0] / ed
        mlp_d = sd["decoder.dec_blocks.0.mlp.fc1.weight"].shape[0] / dd
    except KeyError as e:
        raise CheckpointError(f"not a Trace Anything checkpoint: key {e.args[0]} is absent") from None
    if nch % 4:
        raise CheckpointError(f"track head has {nch} output channels, not 4*D")

    def heads(dim, base_dim, base_heads, what):
        if dim == base_dim:
            return base_heads
        notes.append(f"{what} head count not stored in the file: assumed head_dim 64 ({max(1, dim // 64)} heads)")
        return max(1, dim // 64)

    cfg = ModelConfig(
        encoder=EncoderConfig(embed_dim=ed, depth=_depth(sd, "encoder.enc_blocks."), mlp_ratio=mlp_e,
                              num_heads=heads(ed, base.encoder.embed_dim, base.encoder.num_heads, "encoder"),
                              patch_size=ew.shape[-1], in_chans=ew.shape[1]),
        decoder=DecoderConfig(embed_dim=dd, depth=_depth(sd, "decoder.dec_blocks."), mlp_ratio=mlp_d,
                              num_heads=heads(dd, base.decoder.embed_dim, base.decoder.num_heads, "decoder")),
        head=HeadConfig(feature_dim=fd, last_dim=last, layer_dims=lds),
        num_ctrl=nch // 4, name="official" if (ed, dd, fd) == (1024, 1024, 256) else "inferred",
    )
    return cfg, notes


# ------------------------------------------------------------------------------------------------ building / loading


def expected_shapes(cfg: ModelConfig) -> Dict[str, tuple]:
    with torch.device("meta"):
        m = TraceAnythingNet(cfg)
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def check_state_dict(sd: Dict[str, Tensor], cfg: ModelConfig, report: LoadReport) -> None:
    want = expected_shapes(cfg)
    report.missing = [k for k in want if k not in sd]
    report.unexpected = [k for k in sd if k not in want]
    report.mismatched = [(k, tuple(sd[k].shape), want[k]) for k in want if k in sd and tuple(sd[k].shape) != want[k]]
    report.loaded = len(want) - len(report.missing) - len(report.mismatched)


def build_model(cfg: ModelConfig, state_dict: Optional[Dict[str, Tensor]] = None, device="cpu",
                dtype: torch.dtype = torch.float32) -> TraceAnythingNet:
    """Model in eval mode. With a canonical ``state_dict`` it is built on the meta device and the tensors are
    assigned (no second copy of the weights)."""
    if state_dict is None:
        m = TraceAnythingNet(cfg)
    else:
        with torch.device("meta"):
            m = TraceAnythingNet(cfg)
        m.load_state_dict(state_dict, strict=True, assign=True)
        m.decoder.image_idx_emb = torch.from_numpy(sincos_time_table(cfg.decoder.time_table_rows,
                                                                     cfg.decoder.embed_dim))
    return m.to(device=device, dtype=dtype).eval()


def read_checkpoint(path: str, config: Optional[ModelConfig] = None) -> Tuple[Dict[str, Tensor], LoadReport]:
    """Canonical, strictly checked state_dict + report. Raises ``CheckpointError`` (one-line message) on failure."""
    path = os.fspath(path)
    report = LoadReport(path=path)
    raw, report.file_format, meta = _read_file(path)
    sd = normalize_state_dict(raw, report)
    if META_CONFIG in meta and config is None:
        try:
            config = ModelConfig.from_json(meta[META_CONFIG])
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"bad config metadata in {path}: {_short(e)}") from None
        report.config_source = "metadata"
    elif config is not None:
        report.config_source = "given"
    else:
        config, notes = infer_config(sd)
        report.config_source = "inferred from shapes"
        report.notes.extend(notes)
    report.config = config
    _check_dtypes(path, sd, config)
    check_state_dict(sd, config, report)
    report.param_count = sum(int(sd[k].numel()) for k in expected_shapes(config) if k in sd)
    if not report.ok:
        raise _Refused(report)
    return sd, report


def _check_dtypes(path: str, sd: Dict[str, Tensor], cfg: ModelConfig) -> None:
    """Floating-point tensors where the model has floating-point ones (any float width is cast on load)."""
    with torch.device("meta"):
        want = {k: v.is_floating_point() for k, v in TraceAnythingNet(cfg).state_dict().items()}
    bad = [k for k, is_float in want.items() if is_float and k in sd and not sd[k].is_floating_point()]
    if bad:
        raise CheckpointError(f"wrong dtype in {path}: {len(bad)} weight tensors are not floating point (e.g. "
                              f"{bad[0]}: {sd[bad[0]].dtype}); expected float16/bfloat16/float32/float64")


class _Refused(CheckpointError):
    def __init__(self, report: LoadReport):
        name = report.config.name if report.config else "?"
        super().__init__(f"wrong architecture in {report.path} for {name} config: "
                         f"{report.one_line_problem()}")
        self.report = report


def load_model(path: str, config: Optional[ModelConfig] = None, device="cpu",
               dtype: torch.dtype = torch.float32) -> Tuple[TraceAnythingNet, LoadReport]:
    sd, report = read_checkpoint(path, config)
    model = build_model(report.config, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                        device=device, dtype=dtype)
    report.param_count = count_parameters(model)
    return model, report


def save_checkpoint(model: TraceAnythingNet, path: str, extra_metadata: Optional[Dict[str, str]] = None) -> None:
    """Our format: safetensors, canonical keys, config JSON in the metadata."""
    from safetensors.torch import save_file
    meta = {"format": META_FORMAT, META_CONFIG: model.cfg.to_json()}
    meta.update(extra_metadata or {})
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.fspath(path), metadata=meta)


# ------------------------------------------------------------------------------------------------ deterministic init


@torch.no_grad()
def init_pattern_(model: torch.nn.Module, seed: int = 20251101) -> torch.nn.Module:
    """The parity fixture's weight pattern (in ``named_parameters`` order, which is the official order): z ~ N(0,1)
    from ``torch.Generator().manual_seed(seed)``; ndim >= 2: z / sqrt(fan_in); LayerNorm weights 1 + 0.1 z; other 1-D
    0.05 z. Works on the official module too, so both get the same weights."""
    g = torch.Generator().manual_seed(seed)
    ln_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    for _, p in model.named_parameters():
        z = torch.randn(p.shape, generator=g)
        if p.ndim >= 2:
            z = z / float(torch.tensor(p.shape[1:]).prod()) ** 0.5
        elif id(p) in ln_weights:
            z = 1 + 0.1 * z
        else:
            z = 0.05 * z
        p.copy_(z.to(p.dtype))
    return model


def write_official_format(model: TraceAnythingNet, path: str, with_aliases: bool = True, net_prefix: bool = True,
                          wrapper: bool = True) -> None:
    """Save a state_dict the way the official code would (alias duplicates, ``net.`` prefix, Lightning wrapper);
    for tests and tools that need an official-format file without the real checkpoint."""
    sd = dict(model.state_dict())
    if with_aliases:
        for k in list(sd):
            for alias, canon in _HEAD_ALIASES:
                if k.startswith(canon):
                    sd[alias + k[len(canon):]] = sd[k]
        for k in list(sd):
            m = re.search(r"\.scratch\.layer(\d)_rn\.", k)
            if m:
                sd[k.replace(m.group(0), f".scratch.layer_rn.{int(m.group(1)) - 1}.")] = sd[k]
    if net_prefix:
        sd = {"net." + k: v for k, v in sd.items()}
    obj = {"state_dict": sd, "epoch": 0} if wrapper else sd
    torch.save(obj, os.fspath(path))
