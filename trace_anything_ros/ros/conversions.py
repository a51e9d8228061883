"""sensor_msgs/Image <-> numpy (zero-copy views, cv_bridge semantics) and fast builders of our messages.

Images: ``image_to_array`` returns a view over ``msg.data`` (no copy) shaped [H, W] or [H, W, C], honouring
``step`` (row padding) and ``is_bigendian``; every malformed message raises ``ImageError`` with a clear reason
*before* anything is allocated (declared sizes are checked against ``max_pixels``).
Dense field: ``field_to_msg`` copies the control points / confidences once into byte blobs (float32 or float16).
"""
from __future__ import annotations

import array
import sys
from typing import Optional, Tuple

import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC3", "8UC1")
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")
DEFAULT_MAX_PIXELS = 8192 * 8192
_HOST_BIG = sys.byteorder == "big"


class ImageError(ValueError):
    """A sensor_msgs/Image that cannot be converted. ``reason`` is a short key for drop counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _buffer(data) -> memoryview:
    mv = memoryview(data)
    if mv.format not in ("B", "b", "c") or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def image_to_array(msg, max_pixels: int = DEFAULT_MAX_PIXELS, encodings=None) -> np.ndarray:
    """Zero-copy numpy view of an Image: [H, W] for one channel, [H, W, C] otherwise (like cv_bridge
    ``imgmsg_to_cv2(msg, 'passthrough')``). Non-native byte order yields a view with a byte-swapped dtype."""
    enc = msg.encoding
    allowed = ENCODINGS if encodings is None else {k: ENCODINGS[k] for k in encodings if k in ENCODINGS}
    if enc not in allowed:
        raise ImageError("unsupported_encoding",
                         f"unsupported encoding {enc!r} (supported: {', '.join(sorted(allowed))})")
    dtype, ch = allowed[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError("invalid_image", f"empty image {w}x{h}")
    if h * w > max_pixels:
        raise ImageError("too_large", f"image declares {w}x{h} = {h * w} pixels, over the cap of {max_pixels}")
    itemsize = np.dtype(dtype).itemsize
    row = w * ch * itemsize
    if step < row:
        raise ImageError("wrong_step", f"step {step} is smaller than width*channels*bytes = {row} ({enc}, {w} px)")
    if step % itemsize:
        raise ImageError("wrong_step", f"step {step} is not a multiple of the element size {itemsize} ({enc})")
    buf = _buffer(msg.data)
    need = step * (h - 1) + row
    if len(buf) < need:
        raise ImageError("truncated", f"data has {len(buf)} bytes, {w}x{h} {enc} with step {step} needs {need}")
    dt = np.dtype(dtype)
    if itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG:
        dt = dt.newbyteorder(">" if msg.is_bigendian else "<")
    # strided view over the message buffer (rows may be padded: step > width * channels * itemsize)
    arr = np.ndarray(shape=(h, w, ch), dtype=dt, buffer=buf, offset=0, strides=(step, ch * itemsize, itemsize))
    return arr[:, :, 0] if ch == 1 else arr


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a colour or mono image (a view for rgb8; one conversion otherwise)."""
    import cv2

    a = image_to_array(msg, max_pixels, COLOR_ENCODINGS)
    enc = msg.encoding
    if enc in ("rgb8", "8UC3"):
        return a
    if enc == "bgr8":
        return a[:, :, ::-1]
    if enc == "rgba8":
        return a[:, :, :3]
    if enc == "bgra8":
        return a[:, :, 2::-1]
    if enc in ("mono16",):
        a = (a.astype(np.float32) / 257.0).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_GRAY2RGB)


def depth_to_metres(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> Tuple[np.ndarray, np.ndarray]:
    """(depth float32 [H, W] in metres with NaN where invalid, valid mask). 16UC1/mono16 are millimetres
    (REP 118), 32FC1 metres; zero, NaN, inf and negative values are invalid."""
    a = image_to_array(msg, max_pixels, DEPTH_ENCODINGS)
    if msg.encoding in ("16UC1", "mono16"):
        valid = a != 0
        d = a.astype(np.float32) * np.float32(1e-3)
    else:
        d = a.astype(np.float32)  # copy (also native byte order)
        valid = np.isfinite(d) & (d > 0)
    d[~valid] = np.nan
    return d, valid


def _as_uint8_array(a: np.ndarray) -> array.array:
    """One memcpy of a numpy array into the array.array('B') rclpy keeps for uint8[] fields."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    return out


def array_to_image(a: np.ndarray, encoding: str, header=None, msg=None):
    """sensor_msgs/Image from an [H, W] or [H, W, C] array (one copy, native little-endian host)."""
    from sensor_msgs.msg import Image

    if encoding not in ENCODINGS:
        raise ImageError("unsupported_encoding", f"unsupported encoding {encoding!r}")
    dtype, ch = ENCODINGS[encoding]
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] != ch:
        raise ImageError("invalid_image", f"array of shape {a.shape} does not match {encoding} ({ch} channels)")
    m = msg if msg is not None else Image()
    if header is not None:
        m.header = header
    m.height, m.width = int(a.shape[0]), int(a.shape[1])
    m.encoding = encoding
    m.is_bigendian = int(_HOST_BIG)
    m.step = int(a.shape[1] * ch * a.itemsize)
    m.data = _as_uint8_array(a)
    return m


def mask_to_image(mask: np.ndarray, header, labels: bool = False, mono_value: int = 255):
    """Dynamic mask as mono8 (0 / ``mono_value``) or instance labels as 16UC1."""
    if labels:
        return array_to_image(np.asarray(mask, dtype=np.uint16), "16UC1", header)
    m = np.asarray(mask)
    return array_to_image((m != 0).astype(np.uint8) * np.uint8(mono_value), "mono8", header)


# ------------------------------------------------------------------------------------------------ time
def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int, out=None):
    from builtin_interfaces.msg import Time

    t = out if out is not None else Time()
    t.sec, t.nanosec = divmod(int(ns), 1_000_000_000)
    return t


# ------------------------------------------------------------------------------------------ dense field
def field_to_msg(field, header, float16: bool = False, scale: float = 1.0, stamps_ns=None):
    """TrajectoryField (field.types) -> trace_anything_ros/TrajectoryField message (one copy per blob)."""
    from trace_anything_ros.msg import TrajectoryField as FieldMsg

    m = FieldMsg()
    m.header = header
    n = field.num_frames
    stamps = stamps_ns if stamps_ns is not None else [int(round(s * 1e9)) for s in field.stamps]
    m.frame_stamps = [ns_to_time(s) for s in stamps]
    m.frame_times = array.array("f", np.asarray(field.frame_times, np.float32).tobytes())
    m.num_frames = n
    m.num_control_points = field.num_ctrl
    m.height, m.width = field.height, field.width
    k = np.zeros(9) if field.intrinsics is None else np.asarray(field.intrinsics, np.float64).reshape(9)
    m.k = k.tolist()
    m.metric = bool(field.metric)
    m.scale = float(scale)
    dt = np.float16 if float16 else np.float32
    m.encoding = FieldMsg.ENCODING_FLOAT16 if float16 else FieldMsg.ENCODING_FLOAT32
    m.is_bigendian = int(_HOST_BIG)
    m.control_points = _as_uint8_array(np.asarray(field.ctrl_pts, dtype=dt))
    m.confidences = _as_uint8_array(np.asarray(field.ctrl_conf, dtype=dt))
    return m


def msg_to_field(m):
    """trace_anything_ros/TrajectoryField message -> field.types.TrajectoryField (zero-copy float32 views)."""
    from trace_anything_ros.field.types import TrajectoryField

    n, d, h, w = int(m.num_frames), int(m.num_control_points), int(m.height), int(m.width)
    if m.encoding == "32FC1":
        dt = np.dtype(np.float32)
    elif m.encoding == "16FC1":
        dt = np.dtype(np.float16)
    else:
        raise ValueError(f"unsupported field encoding {m.encoding!r}")
    if bool(m.is_bigendian) != _HOST_BIG:
        dt = dt.newbyteorder(">" if m.is_bigendian else "<")
    pts = np.frombuffer(_buffer(m.control_points), dtype=dt)
    conf = np.frombuffer(_buffer(m.confidences), dtype=dt)
    if pts.size != n * d * h * w * 3 or conf.size != n * d * h * w:
        raise ValueError(f"blob sizes {pts.size}/{conf.size} do not match [{n},{d},{h},{w}]")
    k = np.asarray(m.k, np.float64).reshape(3, 3)
    return TrajectoryField(
        ctrl_pts=pts.reshape(n, d, h, w, 3), ctrl_conf=conf.reshape(n, d, h, w),
        frame_times=np.asarray(m.frame_times, np.float32),
        stamps=np.asarray([stamp_to_ns(s) * 1e-9 for s in m.frame_stamps]),
        intrinsics=None if not k.any() else k, metric=bool(m.metric), frame_id=m.header.frame_id)


# --------------------------------------------------------------------------------------- geometry_msgs/Point[]
def points(arr) -> list:
    """``[..., 3]`` -> list of ``geometry_msgs/Point`` (row-major), ~7x faster than ``Point(x=, y=, z=)``.

    The generated constructor runs kwargs handling and three property setters per point; here each message
    object is made with ``object.__new__`` and its slots (``_x``, ``_y``, ``_z``, ``_check_fields``) are set
    from one ``tolist()`` of the whole array (the values are Python floats, exactly what the setters store).
    With ``ROS_PYTHON_CHECK_FIELDS=1`` (field checks on) the checked constructor is used.
    """
    from geometry_msgs.msg import Point

    rows = np.asarray(arr, np.float64).reshape(-1, 3).tolist()
    if _CHECK_FIELDS:
        return [Point(x=x, y=y, z=z) for x, y, z in rows]
    new = object.__new__
    out = []
    append = out.append
    for x, y, z in rows:
        p = new(Point)
        p._x, p._y, p._z, p._check_fields = x, y, z, False
        append(p)
    return out


def floats(arr) -> "array.array":
    """A float32 array -> ``array.array('f')`` (what a ``float32[]`` field stores; assigning it is O(1))."""
    a = array.array("f")
    a.frombytes(np.ascontiguousarray(arr, np.float32).tobytes())
    return a


_CHECK_FIELDS = __import__("os").environ.get("ROS_PYTHON_CHECK_FIELDS", "") == "1"
