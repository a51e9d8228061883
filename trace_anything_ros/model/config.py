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

"""Architecture hyper-parameters of the Trace Anything network (every width, depth and head count).

``ModelConfig`` is plain data: it round-trips through ``to_dict``/``from_dict`` (that dict is what our safetensors
checkpoints embed in their metadata) and can be built from the official-style ``config.json`` of the parity fixtures
(``from_official_json``). Presets: ``official`` (the released model, 647,555,627 parameters, no local head) and
``compact`` (a small model that runs at a few frames/s on 2 CPU cores at 96x128).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import List, Optional, Tuple


GEOMETRY_MODES = ("none", "depth_flow")
GEOMETRY_AUX_CHANNELS = 7   # model.geometry.AUX_CHANNELS (kept here so the config stays import-light)


@dataclass(frozen=True)
class EncoderConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    in_chans: int = 3
    rope_base: float = 100.0
    block_ln_eps: float = 1e-5
    final_ln_eps: float = 1e-6


@dataclass(frozen=True)
class DecoderConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    block_ln_eps: float = 1e-5
    final_ln_eps: float = 1e-6
    time_table_rows: int = 1000
    # eval-mode attention scale factor sqrt(ln(inference_seqlen) / ln(train_seqlen)), official 137 / 20
    inference_seqlen: float = 137.0
    train_seqlen: float = 20.0

    @property
    def eval_scale_factor(self) -> float:
        return math.sqrt(math.log(self.inference_seqlen) / math.log(self.train_seqlen))


@dataclass(frozen=True)
class HeadConfig:
    feature_dim: int = 256
    last_dim: int = 128
    layer_dims: Tuple[int, int, int, int] = (96, 192, 384, 768)


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    num_ctrl: int = 10                 # D, control points per curve (3*S+1)
    name: str = "custom"
    # Nominal input size (H, W) the model is meant for (engines / export default); the network accepts any
    # multiple-of-16 size with W >= H.
    input_size: Tuple[int, int] = (288, 512)
    # "none": the official RGB-only network. "depth_flow": the project's depth-aware compact variant -- the encoder
    # also sees inverse depth, a depth-valid flag, optical flow and a motion cue (``model.geometry``; in_chans 3 + 7)
    # and the
    # track head blends each pixel's curve between its depth back-projection and its flow-chained samples with a
    # learned gate (one extra head channel + a full-resolution refinement; see ``network.GeometryHead``).
    geometry: str = "none"

    def __post_init__(self):
        if self.geometry not in GEOMETRY_MODES:
            raise ValueError(f"geometry must be one of {GEOMETRY_MODES}, got {self.geometry!r}")
        want_chans = 3 + (GEOMETRY_AUX_CHANNELS if self.geometry == "depth_flow" else 0)
        if self.encoder.in_chans != want_chans:
            raise ValueError(f"geometry {self.geometry!r} needs encoder.in_chans {want_chans}, "
                             f"got {self.encoder.in_chans}")
        if self.encoder.patch_size != 16:
            raise ValueError("the DPT heads assume patch size 16 (4x/2x/1x/0.5x hooks reach full resolution)")
        if (self.num_ctrl - 1) % 3 != 0 or self.num_ctrl < 4:
            raise ValueError(f"num_ctrl must be 3*S+1 (4, 7, 10, ...), got {self.num_ctrl}")
        for c in (self.encoder, self.decoder):
            if c.embed_dim % c.num_heads != 0:
                raise ValueError(f"embed_dim {c.embed_dim} not divisible by num_heads {c.num_heads}")
        if (self.encoder.embed_dim // self.encoder.num_heads) % 4 != 0:
            raise ValueError("encoder head_dim must be a multiple of 4 for 2D RoPE")
        if self.decoder.embed_dim % 2 != 0:
            raise ValueError("decoder embed_dim must be even (sin-cos time table)")
        if len(self.head.layer_dims) != 4:
            raise ValueError("layer_dims needs 4 entries")

    @property
    def hooks(self) -> List[int]:
        d = self.decoder.depth
        return [0, 2 * d // 4, 3 * d // 4, d]

    @property
    def track_channels(self) -> int:
        return 4 * self.num_ctrl

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        d = asdict(self)
        d["head"]["layer_dims"] = list(self.head.layer_dims)
        d["input_size"] = list(self.input_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        def sub(klass, v):
            names = {f.name for f in fields(klass)}
            unknown = set(v) - names
            if unknown:
                raise ValueError(f"unknown {klass.__name__} fields: {sorted(unknown)}")
            v = dict(v)
            if "layer_dims" in v:
                v["layer_dims"] = tuple(int(x) for x in v["layer_dims"])
            return klass(**v)

        d = dict(d)
        kw = {}
        if "encoder" in d:
            kw["encoder"] = sub(EncoderConfig, d.pop("encoder"))
        if "decoder" in d:
            kw["decoder"] = sub(DecoderConfig, d.pop("decoder"))
        if "head" in d:
            kw["head"] = sub(HeadConfig, d.pop("head"))
        if "input_size" in d:
            kw["input_size"] = tuple(int(x) for x in d.pop("input_size"))
        unknown = set(d) - {"num_ctrl", "name", "geometry"}
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        kw.update(d)
        return cls(**kw)

    @classmethod
    def from_json(cls, s: str) -> "ModelConfig":
        return cls.from_dict(json.loads(s))

    @classmethod
    def from_official_json(cls, cfg: dict) -> "ModelConfig":
        """Build from an official-style ``config.json`` (the parity fixture's format)."""
        args = cfg.get("official_model_args", {})
        enc_a = args.get("encoder_args", {})
        dec_a = args.get("decoder_args", {})
        head_a = args.get("head_args", {})
        enc = cfg.get("encoder", {})
        dec = cfg.get("decoder", {})
        dpt = cfg.get("dpt", {})

        def pick(*vals, default=None):
            for v in vals:
                if v is not None:
                    return v
            return default

        pos_embed = enc_a.get("pos_embed")
        rope_base = pick(enc.get("rope_base"), float(pos_embed[4:]) if pos_embed else None, default=100.0)
        encoder = EncoderConfig(
            embed_dim=int(pick(enc.get("embed_dim"), enc_a.get("embed_dim"))),
            depth=int(pick(enc.get("depth"), enc_a.get("depth"))),
            num_heads=int(pick(enc.get("num_heads"), enc_a.get("num_heads"))),
            mlp_ratio=float(pick(enc.get("mlp_ratio"), enc_a.get("mlp_ratio"), default=4.0)),
            patch_size=int(pick(enc.get("patch_size"), enc_a.get("patch_size"), default=16)),
            in_chans=int(pick(enc.get("in_chans"), default=3)),
            rope_base=float(rope_base),
            block_ln_eps=float(pick(enc.get("block_ln_eps"), default=1e-5)),
            final_ln_eps=float(pick(enc.get("final_norm_eps"), default=1e-6)),
        )
        decoder = DecoderConfig(
            embed_dim=int(pick(dec.get("embed_dim"), dec_a.get("embed_dim"))),
            depth=int(pick(dec.get("depth"), dec_a.get("depth"))),
            num_heads=int(pick(dec.get("num_heads"), dec_a.get("num_heads"))),
            mlp_ratio=float(pick(dec.get("mlp_ratio"), dec_a.get("mlp_ratio"), default=4.0)),
            qkv_bias=bool(pick(dec.get("qkv_bias"), dec_a.get("qkv_bias"), default=True)),
            block_ln_eps=float(pick(dec.get("block_ln_eps"), default=1e-5)),
            final_ln_eps=float(pick(dec.get("final_norm_eps"), default=1e-6)),
            time_table_rows=int(dec.get("time_embedding", {}).get("table_rows", 1000)),
        )
        enc_dim_dec = pick(dec.get("enc_embed_dim"), dec_a.get("enc_embed_dim"), default=encoder.embed_dim)
        if int(enc_dim_dec) != encoder.embed_dim:
            raise ValueError("decoder enc_embed_dim must equal encoder embed_dim")
        factor = dec.get("eval_attn_scale_factor")
        if factor is not None and abs(float(factor) - decoder.eval_scale_factor) > 1e-9:
            raise ValueError(f"unsupported eval attention factor {factor}")
        feature_dim = int(pick(dpt.get("feature_dim"), head_a.get("feature_dim"), default=256))
        head = HeadConfig(
            feature_dim=feature_dim,
            last_dim=int(pick(dpt.get("last_dim"), head_a.get("last_dim"), default=feature_dim // 2)),
            layer_dims=tuple(int(x) for x in pick(dpt.get("layer_dims"), head_a.get("layer_dims"),
                                                  default=(96, 192, 384, 768))),
        )
        if pick(cfg.get("with_local_head"), head_a.get("with_local_head"), default=False):
            raise ValueError("a local head is not supported by this implementation")
        num_ctrl = int(pick(cfg.get("bspline", {}).get("D"), cfg.get("poly_degree_arg"), args.get("poly_degree"),
                            default=10))
        mc = cls(encoder=encoder, decoder=decoder, head=head, num_ctrl=num_ctrl, name="official-json",
                 input_size=(int(cfg.get("H", 288)), int(cfg.get("W", 512))))
        hooks = cfg.get("hooks")
        if hooks is not None and list(hooks) != mc.hooks:
            raise ValueError(f"hooks {hooks} differ from the official rule {mc.hooks}")
        return mc


OFFICIAL = ModelConfig(name="official")

# 3,785,483 parameters (15.2 MB fp32 safetensors); 96x128 input, window 4: ~6-17 frames/s on 2 busy CPU cores.
COMPACT = ModelConfig(
    encoder=EncoderConfig(embed_dim=128, depth=4, num_heads=4),
    decoder=DecoderConfig(embed_dim=128, depth=4, num_heads=4),
    head=HeadConfig(feature_dim=64, last_dim=32, layer_dims=(32, 64, 96, 128)),
    num_ctrl=10,
    name="compact",
    input_size=(96, 128),
)

PRESETS = {"official": OFFICIAL, "compact": COMPACT}


def preset(name: str, input_size: Optional[Tuple[int, int]] = None) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    if input_size is not None:
        cfg = replace(cfg, input_size=tuple(int(x) for x in input_size))
    return cfg
