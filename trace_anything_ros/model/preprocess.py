"""Frame preprocessing: the official rule, at a configurable model input size.

Official rule (``scripts/infer.py`` of the reference code): portrait images are rotated 90 degrees counter-clockwise
to landscape; the long side is resized with PIL's antialiased bilinear filter to ``long`` (short side
``int(short * long / long_in)``); the result is cropped top-left to multiples of 16; pixels become ``x/255`` then
``(x - 0.5) / 0.5`` in float32.

Here the model input size is fixed per stream, ``input_size = (H, W)`` **in the user's orientation**:

* ``prepare_frame(frame, input_size)`` -- call ONCE per frame on arrival: uint8 ``[h, w, 3]`` in, uint8
  ``[H, W, 3]`` out (still the user's orientation). For a landscape target (W >= H) it is the official rule with
  ``long = W``; if the camera is wider than the target aspect, the short side is resized to ``H`` instead (cover) so
  the top-left crop is always possible. For a portrait target (H > W) the frame is rotated to landscape, processed by
  the same rule, and rotated back, so the network side is exactly the official pipeline.
* ``to_network(frames)`` (inside the engine) rotates a portrait window to landscape (the network needs W >= H);
  ``from_network_maps`` / ``from_network_points`` rotate outputs back so users see their own orientation.
  Rotation: network = ``np.rot90(user, k=1)`` (counter-clockwise, like PIL ``ROTATE_90``). A 3D point
  (x, y, z) of the user's camera is (y, -x, z) in the rotated (network) camera; back: (x, y, z) = (-y', x', z').
* ``normalize(frames)`` -- uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` in [-1, 1] (torch), bit-identical
  to torchvision ``ToTensor`` + ``Normalize(0.5, 0.5)``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def is_portrait(input_size: Tuple[int, int]) -> bool:
    return int(input_size[0]) > int(input_size[1])


def _pil_resize(img: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize(size_wh, Image.BILINEAR))


def official_resize_crop(frame: np.ndarray, long_side: int) -> np.ndarray:
    """The exact official rule for a landscape (or rotated) frame: resize long side, crop top-left to x16."""
    h, w = frame.shape[:2]
    if w >= h:
        size = (long_side, int(h * long_side / w))
    else:
        size = (int(w * long_side / h), long_side)
    out = _pil_resize(np.ascontiguousarray(frame), size)
    H, W = out.shape[:2]
    return out[: H - H % 16, : W - W % 16]


def _landscape_prepare(frame: np.ndarray, H: int, W: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if h > w:  # official: portrait source -> landscape first
        frame = np.rot90(frame, k=1)
        h, w = w, h
    nh = int(h * W / w)
    if nh >= H:
        size = (W, nh)
    else:  # camera wider than the target: cover on the short side instead
        size = (max(W, int(w * H / h)), H)
    if (w, h) == size:
        out = np.ascontiguousarray(frame)
    else:
        out = _pil_resize(np.ascontiguousarray(frame), size)
    return np.ascontiguousarray(out[:H, :W])


def prepare_frame(frame: np.ndarray, input_size: Tuple[int, int]) -> np.ndarray:
    """uint8 ``[h, w, 3]`` (any size, RGB) -> uint8 ``[H, W, 3]`` at the model input size, user orientation."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected uint8 [h, w, 3], got {frame.dtype} {frame.shape}")
    H, W = int(input_size[0]), int(input_size[1])
    if H % 16 or W % 16:
        raise ValueError(f"input size must be multiples of 16, got {H}x{W}")
    if H > W:  # portrait target: do it in the network's (landscape) orientation, then rotate back
        src = frame if frame.shape[0] < frame.shape[1] else np.rot90(frame, k=1)
        return np.ascontiguousarray(np.rot90(_landscape_prepare(np.ascontiguousarray(src), W, H), k=-1))
    return _landscape_prepare(frame, H, W)


def to_network(frames: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` user frames -> network frames (rotated CCW when portrait)."""
    if frames.shape[1] > frames.shape[2]:
        return np.ascontiguousarray(np.rot90(frames, k=1, axes=(1, 2)))
    return frames


def from_network_maps(arr: np.ndarray, portrait: bool) -> np.ndarray:
    """Rotate maps ``[..., H', W']`` (H', W' last two axes) back to the user's orientation."""
    if not portrait:
        return arr
    nd = arr.ndim
    return np.ascontiguousarray(np.rot90(arr, k=-1, axes=(nd - 2, nd - 1)))


def from_network_points(pts: np.ndarray, portrait: bool) -> np.ndarray:
    """Point maps ``[..., H', W', 3]`` -> user orientation: pixels rotated back and (x', y', z') -> (-y', x', z')."""
    if not portrait:
        return pts
    nd = pts.ndim
    p = np.rot90(pts, k=-1, axes=(nd - 3, nd - 2))
    return np.ascontiguousarray(np.stack([-p[..., 1], p[..., 0], p[..., 2]], axis=-1))


def normalize(frames):
    """uint8 ``[..., H, W, 3]`` (numpy or torch) -> float32 torch ``[..., 3, H, W]`` in [-1, 1]."""
    import torch
    t = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    t = t.movedim(-1, -3).to(torch.float32).div(255.0)
    return t.sub(0.5).div(0.5)
