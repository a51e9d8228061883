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

"""Training losses for the Trace Anything network on windows with ground-truth trajectories.

All terms take the raw network outputs (``ctrl_pts [B, N, D, H, W, 3]``, ``ctrl_conf [B, N, D, H, W]``,
``times_pred [B, N]``) and a batch from ``train.dataset`` (torch tensors):

* ``gt_tracks [B, N, N, H, W, 3]``: ``gt_tracks[b, i, j]`` = where the scene point seen at frame i's pixel is at
  frame j's time, in the window's reference camera (frame 0), metres;
* ``valid [B, N, H, W]`` (the pixel hit geometry), ``dynamic [B, N, H, W]`` (its point moves in the window);
* ``times [B, N]``: ground-truth normalised frame times (0 for the first frame, 1 for the last);
* ``corr_idx [B, N, N, H*W]`` (long) / ``corr_valid [B, N, N, H*W]``: the pixel of frame j that sees the same
  scene point as frame i's pixel (nearest pixel of its projection, visible in frame j), for i != j.

Scale: the network is up to scale, so predictions and ground truth are each divided by their own mean distance
from the camera over the valid pixels of frame 0 at its own time (DUSt3R-style normalisation). Every error
below is therefore in units of "mean scene distance".

Terms (``LossWeights``):

* ``traj``: confidence-weighted trajectory error (official style) -- every frame's curves evaluated at the GT
  frame times vs the GT positions: ``conf * (|x - x_gt| + conf_eps) - alpha * log(conf)`` averaged over valid
  points (``conf_eps`` bounds the confidence of exactly-right pixels);
* ``motion``: the error of the motion relative to each pixel's own-time position,
  ``|(x_ij - x_ii) - (x_gt_ij - x_gt_ii)|``, averaged separately over GT-static and GT-dynamic pixels and the two
  means averaged (the trajectory term is dominated by depth error; this one isolates the motion);
* ``static``: ground-truth static pixels' curves collapse: mean distance of the control points from their mean;
* ``corr``: corresponding pixels agree: frame i's whole curve (all control points) equals frame j's curve at the
  corresponding pixel;
* ``time``: L1 between predicted frame times and the GT normalised times;
* ``gate`` (depth-aware model only): class-balanced BCE of its per-pixel motion gate vs the GT dynamic mask.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import torch
from torch import Tensor

from ..model.network import evaluate_tracks


@dataclass
class LossWeights:
    traj: float = 1.0
    alpha: float = 0.2        # weight of -log(conf) in the confidence term
    static: float = 0.5
    corr: float = 0.5
    time: float = 1.0
    motion: float = 2.0          # class-balanced error of the motion relative to the own-time position
    dynamic_weight: float = 4.0  # extra weight of GT-dynamic pixels in the traj term (they are a few % of pixels)
    # error floor of the confidence term (normalised units): conf * (err + conf_eps) - alpha log conf. Without it
    # a pixel the network gets exactly right (the depth-aware model's static points are exact by construction)
    # drives its confidence to infinity and, through the conf weight, starves the hard pixels of gradient.
    # The optimum confidence is alpha / (err + conf_eps) <= alpha / conf_eps.
    conf_eps: float = 5e-3
    gate: float = 1.0            # depth-aware model: class-balanced BCE of its motion gate vs the GT dynamic mask

    def to_dict(self) -> dict:
        return asdict(self)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def frame0_scale(points0: Tensor, valid0: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean distance from the camera of frame 0's valid points: ``points0 [B, H, W, 3]``, ``valid0 [B, H, W]`` ->
    ``[B]`` (clamped to ``eps``)."""
    d = points0.norm(dim=-1)
    m = valid0.to(d.dtype)
    s = (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1.0)
    return s.clamp(min=eps)


def gate_loss(gate_logits: Tensor, batch: Dict[str, Tensor]) -> Tensor:
    """Class-balanced binary cross-entropy of the depth-aware model's motion gate (``[B, N, H, W]`` logits) against
    the GT dynamic mask, over valid pixels: the mean over moving and over static pixels, averaged."""
    import torch.nn.functional as F
    valid = batch["valid"]
    dyn = batch["dynamic"] & valid
    sta = ~batch["dynamic"] & valid
    bce = F.binary_cross_entropy_with_logits(gate_logits, dyn.to(gate_logits.dtype), reduction="none")
    l_sta = _masked_mean(bce, sta)
    return torch.where(dyn.any(), 0.5 * (_masked_mean(bce, dyn) + l_sta), l_sta)


def compute_losses(ctrl_pts: Tensor, ctrl_conf: Tensor, times_pred: Tensor, batch: Dict[str, Tensor],
                   weights: LossWeights = LossWeights(), gate_logits: Tensor = None) -> Dict[str, Tensor]:
    """Loss terms and their weighted sum (``'loss'``); also the unweighted normalised end-point error
    (``'epe'``, same units as the traj term; ``'epe_dyn'`` over GT-dynamic pixels only) for monitoring. Every value is a
    scalar tensor."""
    gt = batch["gt_tracks"].to(ctrl_pts.dtype)                  # [B, N, N, H, W, 3]
    valid = batch["valid"]                                       # [B, N, H, W]
    times = batch["times"].to(ctrl_pts.dtype)                    # [B, N]
    B, N, D, H, W, _ = ctrl_pts.shape

    pts, conf = evaluate_tracks(ctrl_pts, ctrl_conf, times)      # [B, N, N, H, W, 3], [B, N, N, H, W]
    s_pred = frame0_scale(pts[:, 0, 0], valid[:, 0])             # frame 0's points at its own time
    s_gt = frame0_scale(gt[:, 0, 0], valid[:, 0])
    inv_p = (1.0 / s_pred).view(B, 1, 1, 1, 1, 1)
    inv_g = (1.0 / s_gt).view(B, 1, 1, 1, 1, 1)
    err = (pts * inv_p - gt * inv_g).norm(dim=-1)                # [B, N, N, H, W]
    vmask = valid[:, :, None].expand(B, N, N, H, W)
    out: Dict[str, Tensor] = {}
    out["epe"] = _masked_mean(err, vmask).detach()
    out["epe_dyn"] = _masked_mean(err, vmask & batch["dynamic"][:, :, None]).detach()
    conf_c = conf.clamp(min=1e-6)
    w = 1.0 + (weights.dynamic_weight - 1.0) * batch["dynamic"].to(err.dtype)[:, :, None]   # [B, N, 1, H, W]
    term = (conf_c * (err + weights.conf_eps) - weights.alpha * torch.log(conf_c)) * w
    out["traj"] = (term * vmask).sum() / (w.expand_as(err) * vmask).sum().clamp(min=1.0)

    # motion relative to each pixel's own-time position (free of the depth error that dominates ``traj``),
    # balanced between GT-static and GT-dynamic pixels so the few movers count as much as the background
    n_idx = torch.arange(N, device=pts.device)
    own_p = pts[:, n_idx, n_idx][:, :, None]                    # [B, N, 1, H, W, 3]
    own_g = gt[:, n_idx, n_idx][:, :, None]
    m_err = ((pts - own_p) * inv_p - (gt - own_g) * inv_g).norm(dim=-1)     # [B, N, N, H, W]
    dyn3 = batch["dynamic"][:, :, None].expand(B, N, N, H, W)
    m_dyn = _masked_mean(m_err, vmask & dyn3)
    m_sta = _masked_mean(m_err, vmask & ~dyn3)
    has_dyn = (vmask & dyn3).any()
    out["motion"] = torch.where(has_dyn, 0.5 * (m_dyn + m_sta), m_sta)
    out["motion_epe_dyn"] = m_dyn.detach()

    # static pixels: control points collapse onto one position
    cp = ctrl_pts * (1.0 / s_pred).view(B, 1, 1, 1, 1, 1)
    dev = (cp - cp.mean(dim=2, keepdim=True)).norm(dim=-1).mean(dim=2)       # [B, N, H, W]
    static = valid & ~batch["dynamic"]
    out["static"] = _masked_mean(dev, static)

    # correspondences: frame i's curve == frame j's curve at the corresponding pixel
    if "corr_idx" in batch and weights.corr > 0:
        idx = batch["corr_idx"]                                  # [B, N, N, HW]
        cval = batch["corr_valid"]
        flat = cp.reshape(B, N, D, H * W, 3)
        src = flat[:, None].expand(B, N, N, D, H * W, 3)         # src[b, i, j] = frame j's curves
        g = idx[:, :, :, None, :, None].expand(B, N, N, D, H * W, 3)
        other = torch.gather(src, 4, g)                          # [B, N(i), N(j), D, HW, 3]
        diff = (flat[:, :, None] - other).norm(dim=-1).mean(dim=3)  # [B, N, N, HW]
        out["corr"] = _masked_mean(diff, cval)
    else:
        out["corr"] = torch.zeros((), dtype=ctrl_pts.dtype, device=ctrl_pts.device)

    out["time"] = (times_pred.to(times.dtype) - times).abs().mean()
    out["loss"] = (weights.traj * out["traj"] + weights.motion * out["motion"] + weights.static * out["static"]
                   + weights.corr * out["corr"] + weights.time * out["time"])
    if gate_logits is not None:
        out["gate"] = gate_loss(gate_logits, batch)
        out["loss"] = out["loss"] + weights.gate * out["gate"]
    return out
