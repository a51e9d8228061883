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

"""The Trace Anything network, written from its published description (see the parity fixture README).

Structure and ``state_dict`` key names follow the official model so its checkpoint loads (``encoder.*``,
``decoder.*``, ``ds_head_time.*``, ``ds_head_track.*``); the official aliases (``time_head.*``, ``track_head.*``,
``scratch.layer_rn.{i}``) are NOT registered here -- they are a loader concern (``model.checkpoint``).

Export-friendly: the forward takes and returns fixed-shape tensors, has no ``.item()``, no data-dependent branches and
no Python loop over control points. The encoder sees one frame at a time, so ``encode`` gives window-independent
tokens; ``fuse`` + ``heads`` can be called on cached tokens (see ``TorchEngine``).

Shapes: images ``[B, N, 3, H, W]`` (H, W multiples of 16, W >= H), times ``[B, N]`` in [0, 1].
Outputs: ctrl_pts ``[B, N, D, H, W, 3]``, ctrl_conf ``[B, N, D, H, W]``, times ``[B, N]``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..field.basis import basis_matrix_torch
from .config import DecoderConfig, EncoderConfig, HeadConfig, ModelConfig

# --------------------------------------------------------------------------------------------------- building blocks


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def rope_tables(h: int, w: int, head_dim: int, base: float, dtype: torch.dtype, device) -> Tuple[Tensor, Tensor]:
    """cos / signed-sin tables ``[h*w, head_dim]`` of the 2D rotate-half RoPE (y half first, then x half).

    Angles ``pos * f`` are computed in float32 (as the official code does, also in its float64 run); cos and sin are
    then taken in ``dtype``. The sign of the rotate-half pairing is folded into ``sin`` (see ``apply_rope``).
    """
    m = head_dim // 2                       # channels per axis
    inv_freq = 1.0 / (base ** (torch.arange(0, m, 2, device=device, dtype=torch.float32) / m))  # [m/2]
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    pos_y = ys[:, None].expand(h, w).reshape(-1)    # row-major tokens: y outer, x inner
    pos_x = xs[None, :].expand(h, w).reshape(-1)
    ang_y = pos_y[:, None] * inv_freq[None, :]        # [P, m/2] float32
    ang_x = pos_x[:, None] * inv_freq[None, :]
    ang = torch.cat([ang_y, ang_y, ang_x, ang_x], dim=-1).to(dtype)  # [P, head_dim]
    cos = torch.cos(ang)
    sin = torch.sin(ang)
    q = m // 2
    sign = torch.cat([-torch.ones(q), torch.ones(q), -torch.ones(q), torch.ones(q)]).to(device=device, dtype=dtype)
    return cos, sin * sign


def apply_rope(x: Tensor, cos: Tensor, sin_signed: Tensor) -> Tensor:
    """``x * cos + rot(x) * sin`` with ``rot`` the rotate-half within each of the two axis halves.

    ``x``: ``[B, heads, P, head_dim]``. Quarters [a1, a2 | b1, b2] map to [a2, a1 | b2, b1]; the minus signs live in
    ``sin_signed``.
    """
    q = x.shape[-1] // 4
    swapped = torch.cat([x[..., q:2 * q], x[..., :q], x[..., 3 * q:], x[..., 2 * q:3 * q]], dim=-1)
    return x * cos + swapped * sin_signed


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, scale: float, rope: Tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if rope is not None:
            cos, sin = rope
            rdt = torch.promote_types(q.dtype, torch.float32)
            q = apply_rope(q.to(rdt), cos, sin).to(v.dtype)
            k = apply_rope(k.to(rdt), cos, sin).to(v.dtype)
        o = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return self.proj(o.transpose(1, 2).reshape(B, L, C))


class Block(nn.Module):
    """Pre-norm transformer block: ``x += Attn(LN1 x)``; ``x += MLP(LN2 x)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, ln_eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, scale: float, rope=None) -> Tensor:
        x = x + self.attn(self.norm1(x), scale, rope)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, h*w, C], row-major


# --------------------------------------------------------------------------------------------------- encoder / decoder


class Encoder(nn.Module):
    """CroCo-style ViT with 2D RoPE; each frame independently."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.enc_blocks = nn.ModuleList(
            [Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, True, cfg.block_ln_eps) for _ in range(cfg.depth)])
        self.enc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.final_ln_eps)

    def forward(self, images: Tensor) -> Tensor:
        """``images [F, 3, H, W]`` -> tokens ``[F, P, Ce]``."""
        p = self.cfg.patch_size
        h, w = images.shape[-2] // p, images.shape[-1] // p
        x = self.patch_embed(images)
        head_dim = self.cfg.embed_dim // self.cfg.num_heads
        rope = rope_tables(h, w, head_dim, self.cfg.rope_base, torch.promote_types(x.dtype, torch.float32), x.device)
        scale = head_dim ** -0.5
        for blk in self.enc_blocks:
            x = blk(x, scale, rope)
        return self.enc_norm(x)


def sincos_time_table(rows: int, dim: int) -> np.ndarray:
    """Row p = [sin(p w_k), cos(p w_k)], w_k = 10000^(-k/(dim/2)); float64 math, float32 storage."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.arange(rows, dtype=np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1).astype(np.float32)


class Decoder(nn.Module):
    """Fusion transformer: global self-attention over all frames' tokens, sin-cos time embedding."""

    def __init__(self, cfg: DecoderConfig, enc_dim: int):
        super().__init__()
        self.cfg = cfg
        self.decoder_embed = nn.Linear(enc_dim, cfg.embed_dim)
        self.dec_blocks = nn.ModuleList([
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.block_ln_eps) for _ in range(cfg.depth)
        ])
        self.register_buffer("image_idx_emb", torch.from_numpy(sincos_time_table(cfg.time_table_rows, cfg.embed_dim)),
                             persistent=False)
        self.dec_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.final_ln_eps)

    def time_index(self, times: Tensor) -> Tensor:
        """Row of the time table: ``trunc(float32(t) * (rows-1))`` computed in float32 (clamped to the table)."""
        rows = self.image_idx_emb.shape[0]
        idx = (times.to(torch.float32) * float(rows - 1)).to(torch.int64)
        return idx.clamp(0, rows - 1)

    def forward(self, tokens: Tensor, times: Tensor, hooks: Sequence[int]) -> List[Tensor]:
        """``tokens [B, N, P, Ce]``, ``times [B, N]`` -> hook features, each ``[B*N, P, C]``."""
        B, N, P, Ce = tokens.shape
        emb = F.embedding(self.time_index(times), self.image_idx_emb)  # [B, N, Cd]
        x = self.decoder_embed(tokens) + emb.to(tokens.dtype)[:, :, None, :]
        x = x.reshape(B, N * P, -1)
        hd = self.cfg.embed_dim // self.cfg.num_heads
        scale = hd ** -0.5 * (self.cfg.eval_scale_factor if not self.training else 1.0)
        wanted = set(hooks)
        outs = {0: tokens.reshape(B * N, P, Ce)}
        depth = len(self.dec_blocks)
        for i, blk in enumerate(self.dec_blocks):
            x = blk(x, scale)
            if i + 1 == depth:
                x = self.dec_norm(x)
            if (i + 1) in wanted:
                outs[i + 1] = x.reshape(B * N, P, -1)
        return [outs[k] for k in hooks]


# --------------------------------------------------------------------------------------------------- DPT heads


class ResidualConvUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        # in-place on fresh conv outputs only (never on x): same math, fewer large allocations
        out = F.relu_(self.conv1(F.relu(x)))
        out = self.conv2(out)
        return out.add_(x)


class FusionBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.out_conv = nn.Conv2d(c, c, 1)
        self.resConfUnit1 = ResidualConvUnit(c)  # unused in refinenet4 (single input), kept for the key set
        self.resConfUnit2 = ResidualConvUnit(c)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if skip is not None:
            x = self.resConfUnit1(skip).add_(x)  # official order x + RCU(skip); addition commutes exactly
        x = self.resConfUnit2(x)
        # The 1x1 out_conv is per-pixel linear and bilinear weights sum to 1, so conv-then-upsample equals the
        # official upsample-then-conv (up to rounding) at a quarter of the cost.
        x = self.out_conv(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class Scratch(nn.Module):
    def __init__(self, layer_dims: Sequence[int], feature_dim: int):
        super().__init__()
        self.layer1_rn = nn.Conv2d(layer_dims[0], feature_dim, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(layer_dims[1], feature_dim, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(layer_dims[2], feature_dim, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(layer_dims[3], feature_dim, 3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(feature_dim)
        self.refinenet2 = FusionBlock(feature_dim)
        self.refinenet3 = FusionBlock(feature_dim)
        self.refinenet4 = FusionBlock(feature_dim)


class Upsample2x(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class DPT(nn.Module):
    """Dense prediction head over 4 token hooks; output at full input resolution."""

    def __init__(self, dim_tokens: Sequence[int], cfg: HeadConfig, out_channels: int):
        super().__init__()
        ld, fd = list(cfg.layer_dims), cfg.feature_dim
        self.scratch = Scratch(ld, fd)
        self.head = nn.Sequential(
            nn.Conv2d(fd, fd // 2, 3, padding=1),
            Upsample2x(),
            nn.Conv2d(fd // 2, cfg.last_dim, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.last_dim, out_channels, 1),
        )
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim_tokens[0], ld[0], 1), nn.ConvTranspose2d(ld[0], ld[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(dim_tokens[1], ld[1], 1), nn.ConvTranspose2d(ld[1], ld[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(dim_tokens[2], ld[2], 1)),
            nn.Sequential(nn.Conv2d(dim_tokens[3], ld[3], 1), nn.Conv2d(ld[3], ld[3], 3, stride=2, padding=1)),
        ])

    def forward(self, feats: Sequence[Tensor], h: int, w: int) -> Tensor:
        """``feats``: 4 x ``[F, h*w, C_i]`` -> ``[F, out, 16h, 16w]``."""
        s = self.scratch
        rn = (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
        layers = []
        for i in range(4):  # static loop over the four hooks
            t = feats[i]
            x = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
            layers.append(rn[i](self.act_postprocess[i](x)))
        l2 = layers[2]
        p = s.refinenet4(layers[3])[:, :, : l2.shape[2], : l2.shape[3]]  # crop (odd h or w)
        p = s.refinenet3(p, l2)
        p = s.refinenet2(p, layers[1])
        p = s.refinenet1(p, layers[0])
        return self.head(p)


class SpatialMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class TimeHead(nn.Module):
    """DPT map (1 channel) -> spatial mean -> Linear(1,1) -> sigmoid: predicted normalised time per frame."""

    def __init__(self, dim_tokens, cfg: HeadConfig):
        super().__init__()
        self.dpt = DPT(dim_tokens, cfg, 1)
        self.scalar_head = nn.Sequential(SpatialMean(), nn.Flatten(), nn.Linear(1, 1), nn.Sigmoid())

    def forward(self, feats, h: int, w: int) -> Tensor:
        return self.scalar_head(self.dpt(feats, h, w))  # [F, 1]


def _expm1(x: Tensor) -> Tensor:
    if torch.onnx.is_in_onnx_export():  # ONNX has no Expm1: accurate branch-free form (both sides evaluated)
        th = torch.tanh(0.5 * x)
        small = 2.0 * th / (1.0 - th)
        return torch.where(x < 0.5, small, torch.exp(x) - 1.0)
    return torch.expm1(x)


class TrackHead(nn.Module):
    """DPT map with 4D channels -> control points (expm1 norm activation) and confidences (1 + exp)."""

    def __init__(self, dim_tokens, cfg: HeadConfig, num_ctrl: int):
        super().__init__()
        self.num_ctrl = num_ctrl
        self.dpt = DPT(dim_tokens, cfg, 4 * num_ctrl)

    def forward(self, feats, h: int, w: int) -> Tuple[Tensor, Tensor]:
        raw = self.dpt(feats, h, w)                     # [F, 4D, H, W]
        return activate_track(raw, self.num_ctrl)


def activate_track(raw: Tensor, num_ctrl: int) -> Tuple[Tensor, Tensor]:
    """Raw ``[F, 4D, H, W]`` (channel c*D+k = coord c of point k; 3D+k = conf logit k) -> ``[F,D,H,W,3]``,
    ``[F,D,H,W]``."""
    Fr, _, H, W = raw.shape
    v = raw.reshape(Fr, 4, num_ctrl, H, W)
    x, y, z = v[:, 0], v[:, 1], v[:, 2]                 # [F, D, H, W] each (cheap slices, no strided reduction)
    d = torch.sqrt(x * x + y * y + z * z)
    xyz = torch.stack([x, y, z], dim=-1)                # [F, D, H, W, 3]
    pts = xyz / d.clamp(min=1e-8).unsqueeze(-1) * _expm1(d).unsqueeze(-1)
    conf = 1.0 + torch.exp(v[:, 3])
    return pts, conf


# --------------------------------------------------------------------------------------------------- full model


class GeometryHead(nn.Module):
    """The ``depth_flow`` variant's curve composition (see ``model.geometry``).

    The track DPT gives ``4D + 1`` channels at full resolution; a small convolutional refinement sees them with the
    raw inputs (RGB + geometry channels, full resolution: object boundaries are sharper there than in 16-px tokens)
    and adds a correction (zero at initialisation). Then, per pixel of frame i:

        ctrl_k = x0 + g * (base_k - x0 + z0 * r_k),   g = sigmoid(gate logit)

    ``x0`` the pixel's own back-projection, ``base`` the control points that smoothly interpolate its flow-chained
    samples at the frames' (measured) times (``smooth_fit_matrix``), ``r`` a residual in units of the pixel's depth
    ``z0``. A closed gate gives a static point exactly at its measured position; confidence is ``1 + exp``
    as in the official head.
    """

    RESIDUAL_SCALE = 0.1
    # inference: None = the soft gate (sigmoid, as trained); a probability p = hard gate: a point is moving iff its
    # gate exceeds p (it follows its full curve), else it is exactly its measured position. Training: always soft.
    # 0.98 was chosen on the training run's validation scenes (never the held-out ones): at 0.5 -> 0.98 the
    # all-pixel EPE fell 0.99 -> 0.78 mm and the gate-mask IoU rose 0.70 -> 0.84 while the moving pixels' EPE
    # went 23.0 -> 23.8 mm (the soft gate leaks flow noise into static points; a missed mover is no worse than static)
    gate_threshold = 0.98

    def __init__(self, num_ctrl: int, in_chans: int, hidden: int = 32):
        super().__init__()
        self.num_ctrl = num_ctrl
        c = 4 * num_ctrl + 1
        self.refine = nn.Sequential(nn.Conv2d(c + in_chans, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(hidden, c, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, raw: Tensor, inputs: Tensor, x0: Tensor, samples: Tensor, times: Tensor, B: int, N: int
                ) -> Tuple[Tensor, Tensor]:
        """``raw [F, 4D+1, H, W]``, ``inputs [F, 3+aux, H, W]``, ``x0 [B, N, H, W, 3]``, ``samples [B, N, N, H, W,
        3]``, frame ``times [B, N]`` -> ``ctrl_pts [B, N, D, H, W, 3]``, ``ctrl_conf [B, N, D, H, W]``."""
        D = self.num_ctrl
        H, W = raw.shape[-2:]
        raw = raw + self.refine(torch.cat([raw, inputs.to(raw.dtype)], dim=1))
        v = raw[:, : 4 * D].reshape(B, N, 4, D, H, W)
        # the gate is a per-pixel "this point moves" logit: kept (with its graph) for the training loss that
        # supervises it with the ground-truth dynamic mask (``train.losses``: a sigmoid gate trained only
        # through the curves saturates closed)
        self.gate_logits = raw[:, 4 * D].reshape(B, N, H, W)
        logit = raw[:, 4 * D]
        gate = torch.sigmoid(logit)
        if not self.training and self.gate_threshold is not None:
            gate = (gate > self.gate_threshold).to(gate.dtype)
        gate = gate.reshape(B, N, 1, H, W, 1)
        r = torch.stack([v[:, :, 0], v[:, :, 1], v[:, :, 2]], dim=-1)                 # [B, N, D, H, W, 3]
        x0 = x0.to(raw.dtype)
        M = smooth_fit_matrix(times.to(torch.float32), D).to(raw.dtype)               # [B, D, N]
        base = torch.einsum("bdj,bijhwc->bidhwc", M, samples.to(raw.dtype))            # [B, N, D, H, W, 3]
        x0e = x0[:, :, None]                                                           # [B, N, 1, H, W, 3]
        z0 = x0e[..., 2:3].abs()
        pts = x0e + gate * (base - x0e + self.RESIDUAL_SCALE * z0 * r)
        conf = 1.0 + torch.exp(v[:, :, 3])
        return pts, conf


def smooth_fit_matrix(t: Tensor, num_ctrl: int, smooth: float = 1e-3) -> Tensor:
    """``[B, D, T]``: control points ``M @ x`` of the smoothest cubic B-spline through samples ``x`` at times
    ``t [B, T]`` (least squares + a second-difference penalty, relative weight ``smooth``; rows sum to 1, so
    constant samples give that constant exactly). Differentiable in ``t``."""
    Bm = basis_matrix_torch(t, num_ctrl)                                               # [B, T, D]
    L = torch.diff(torch.eye(num_ctrl, dtype=Bm.dtype, device=Bm.device), n=2, dim=0)
    A = Bm.transpose(1, 2) @ Bm
    tr = torch.diagonal(A, dim1=1, dim2=2).sum(-1).clamp(min=1e-12)[:, None, None]
    A = A + smooth * tr / num_ctrl * (L.T @ L)[None]
    return torch.linalg.solve(A, Bm.transpose(1, 2))


class TraceAnythingNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.encoder)
        self.decoder = Decoder(cfg.decoder, cfg.encoder.embed_dim)
        ed, dd = cfg.encoder.embed_dim, cfg.decoder.embed_dim
        dims = [ed, dd, dd, dd]
        self.ds_head_time = TimeHead(dims, cfg.head)
        self.ds_head_track = TrackHead(dims, cfg.head, cfg.num_ctrl)
        if self.geometric:
            self.ds_head_track.dpt.head[-1] = nn.Conv2d(cfg.head.last_dim, 4 * cfg.num_ctrl + 1, 1)
            self.geometry_head = GeometryHead(cfg.num_ctrl, cfg.encoder.in_chans)

    @property
    def geometric(self) -> bool:
        """True for the depth-aware variant: ``forward`` then needs ``geo`` (``model.geometry`` inputs)."""
        return self.cfg.geometry != "none"

    @property
    def patch_size(self) -> int:
        return self.cfg.encoder.patch_size

    def encode(self, images: Tensor) -> Tensor:
        """Per-frame encoder tokens: ``images [B, N, C, H, W]`` (or ``[F, C, H, W]``) -> ``[B, N, P, Ce]``/``[F,P,Ce]``
        (C = ``encoder.in_chans``: RGB, plus the geometry channels for the depth-aware variant)."""
        if images.dim() == 4:
            return self.encoder(images)
        B, N = images.shape[:2]
        t = self.encoder(images.reshape(B * N, *images.shape[2:]))
        return t.reshape(B, N, t.shape[1], t.shape[2])

    def fuse(self, tokens: Tensor, times: Tensor) -> List[Tensor]:
        """Fusion transformer on cached/fresh tokens ``[B, N, P, Ce]`` with input times ``[B, N]``: hook features."""
        return self.decoder(tokens, times, self.cfg.hooks)

    def heads(self, feats: List[Tensor], B: int, N: int, H: int, W: int, geo: Optional[dict] = None
              ) -> Tuple[Tensor, Tensor, Tensor]:
        p = self.patch_size
        h, w = H // p, W // p
        t_hat = self.ds_head_time(feats, h, w).reshape(B, N)
        D = self.cfg.num_ctrl
        if self.geometric:
            if geo is None:
                raise ValueError("this model is depth-aware (geometry 'depth_flow'): pass geo= (model.geometry)")
            # the frames' times are measured (stamps): the curves are placed at the input times, which are also
            # the returned frame times (the time head is kept for the official structure but not used)
            t_in = geo["times"]
            raw = self.ds_head_track.dpt(feats, h, w)
            inputs = geo["inputs"].reshape(B * N, -1, H, W)
            pts, conf = self.geometry_head(raw, inputs, geo["x0"], geo["samples"], t_in, B, N)
            return pts, conf, t_in.to(t_hat.dtype)
        pts, conf = self.ds_head_track(feats, h, w)
        return pts.reshape(B, N, D, H, W, 3), conf.reshape(B, N, D, H, W), t_hat

    def decode(self, tokens: Tensor, times: Tensor, H: int, W: int, geo: Optional[dict] = None
               ) -> Tuple[Tensor, Tensor, Tensor]:
        """Fusion + heads from encoder tokens ``[B, N, P, Ce]``: ``(ctrl_pts, ctrl_conf, times_pred)``."""
        B, N = tokens.shape[:2]
        if geo is not None:
            geo = dict(geo, times=times)
        return self.heads(self.fuse(tokens, times), B, N, H, W, geo)

    def forward(self, images: Tensor, times: Tensor, geo: Optional[dict] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """``images [B, N, 3, H, W]`` in [-1, 1], ``times [B, N]`` -> ctrl_pts, ctrl_conf, predicted times.
        Depth-aware variant: ``geo = {"aux": [B, N, 7, H, W], "x0": [B, N, H, W, 3], "samples": [B, N, N, H, W,
        3]}`` (``model.geometry.compute`` per window); the encoder sees ``cat(images, aux)``; ``times`` must be the
        frames' measured normalised times (from their stamps) and are returned as the frame times."""
        H, W = images.shape[-2], images.shape[-1]
        if self.geometric:
            if geo is None:
                raise ValueError("this model is depth-aware (geometry 'depth_flow'): pass geo= (model.geometry)")
            inputs = torch.cat([images, geo["aux"].to(images.dtype)], dim=2)
            geo = dict(geo, inputs=inputs)
            return self.decode(self.encode(inputs), times, H, W, geo)
        return self.decode(self.encode(images), times, H, W)


def default_times(B: int, N: int, device=None, dtype=torch.float32) -> Tensor:
    """Official input times ``t_i = i / (N-1)`` (0 for N = 1), ``[B, N]``."""
    if N == 1:
        return torch.zeros(B, 1, device=device, dtype=dtype)
    return (torch.arange(N, device=device, dtype=torch.float64) / (N - 1)).to(dtype)[None].expand(B, N).contiguous()


def evaluate_tracks(ctrl_pts: Tensor, ctrl_conf: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
    """Evaluate every frame's curves at times ``t [B, T]`` (e.g. predicted times):

    ``ctrl_pts [B, N, D, H, W, 3]`` -> ``[B, N, T, H, W, 3]``; ``ctrl_conf [B, N, D, H, W]`` -> ``[B, N, T, H, W]``.
    ``track[b, i, j]`` is frame i's curves at ``t[b, j]``. Uses ``field.basis.basis_matrix_torch`` (t clamped).
    """
    D = ctrl_pts.shape[2]
    basis = basis_matrix_torch(t, D).to(ctrl_pts.dtype)           # [B, T, D]
    pts = torch.einsum("btd,bndhwc->bnthwc", basis, ctrl_pts)
    conf = torch.einsum("btd,bndhw->bnthw", basis, ctrl_conf)
    return pts, conf


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
