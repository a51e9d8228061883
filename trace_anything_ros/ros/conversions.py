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

"""sensor_msgs/Image <-> numpy (zero-copy views, cv_bridge semantics) and fast builders of our messages.

Images: ``image_to_array`` returns a view over ``msg.data`` (no copy) shaped [H, W] or [H, W, C], honouring
``step`` (row padding) and ``is_bigendian``; every malformed message raises ``ImageError`` with a clear reason
*before* anything is allocated (declared sizes are checked against ``max_pixels``).
Dense field: ``field_to_msg`` copies the control points / confidences once into byte blobs (float32 or float16);
``field_to_cdr`` / ``cdr_to_field`` build / read the serialized message directly (the node publishes that form).
"""
from __future__ import annotations

import array
import struct
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
    "rgb16": (np.uint16, 3),
    "bgr16": (np.uint16, 3),
    "rgba16": (np.uint16, 4),
    "bgra16": (np.uint16, 4),
    "yuv422": (np.uint8, 2),        # UYVY: two pixels in four bytes, U Y0 V Y1
    "yuv422_yuy2": (np.uint8, 2),   # YUYV: Y0 U Y1 V
}
# raw sensor mosaics (a camera driver without debayering): the ROS name -> OpenCV's demosaicing code, whose Bayer
# names count from the second row and column (cv_bridge's mapping; checked against a mosaicked image in the tests)
BAYER = {"rggb": "COLOR_BayerBG2RGB", "bggr": "COLOR_BayerRG2RGB", "gbrg": "COLOR_BayerGR2RGB",
         "grbg": "COLOR_BayerGB2RGB"}
ENCODINGS.update({f"bayer_{p}{bits}": (np.uint8 if bits == 8 else np.uint16, 1) for p in BAYER for bits in (8, 16)})
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC3", "8UC1", "rgb16", "bgr16", "rgba16",
                   "bgra16", "yuv422", "yuv422_yuy2") + tuple(f"bayer_{p}{b}" for p in BAYER for b in (8, 16))
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
    if enc not in allowed:  # the name is clipped: a hostile 100 KB encoding string never reaches a log line
        raise ImageError("unsupported_encoding",
                         f"unsupported encoding {_clip(enc)} (supported: {_names(allowed)})")
    dtype, ch = allowed[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError("invalid_image", f"empty image {w}x{h}")
    if h * w > max_pixels:
        raise ImageError("too_large", f"image declares {w}x{h} = {h * w} pixels, over the cap of {max_pixels}")
    if enc.startswith("yuv422") and w % 2:
        raise ImageError("invalid_image", f"{enc} packs two pixels in four bytes: width {w} is odd")
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
    if len(buf) > step * h:  # sensor_msgs/Image: data is step * height bytes; more is a malformed message
        raise ImageError("oversized_data", f"data has {len(buf)} bytes, more than step*height = {step * h} "
                                           f"({w}x{h} {enc})")
    dt = np.dtype(dtype)
    if itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG:
        dt = dt.newbyteorder(">" if msg.is_bigendian else "<")
    # strided view over the message buffer (rows may be padded: step > width * channels * itemsize)
    arr = np.ndarray(shape=(h, w, ch), dtype=dt, buffer=buf, offset=0, strides=(step, ch * itemsize, itemsize))
    return arr[:, :, 0] if ch == 1 else arr


def _names(encodings) -> str:
    """The encodings, the Bayer ones in one item (a drop message stays short)."""
    names = sorted(e for e in encodings if not e.startswith("bayer_"))
    if any(e.startswith("bayer_") for e in encodings):
        names.append("bayer_{rggb,bggr,gbrg,grbg}{8,16}")
    return ", ".join(names)


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a colour, mono, YUV 4:2:2 or Bayer image (a view for rgb8; one conversion otherwise;
    16-bit images scaled to 8 bits, as cv_bridge does)."""
    import cv2

    a = image_to_array(msg, max_pixels, COLOR_ENCODINGS)
    enc = msg.encoding
    if enc.startswith("bayer_"):   # a 16-bit mosaic scaled to 8 bits first: a third of the memory
        return cv2.cvtColor(_to8(a) if a.dtype.itemsize == 2 else np.ascontiguousarray(a),
                            getattr(cv2, BAYER[enc[6:10]]))
    if enc.startswith("yuv422"):
        return cv2.cvtColor(np.ascontiguousarray(a),
                            cv2.COLOR_YUV2RGB_UYVY if enc == "yuv422" else cv2.COLOR_YUV2RGB_YUY2)
    if enc.endswith("16") and enc != "mono16":  # rgb16, bgr16, rgba16, bgra16
        a, enc = _to8(a), enc[:-2] + "8"
    if enc in ("rgb8", "8UC3"):
        return a
    if enc == "bgr8":
        return a[:, :, ::-1]
    if enc == "rgba8":
        return a[:, :, :3]
    if enc == "bgra8":
        return a[:, :, 2::-1]
    if enc in ("mono16",):
        a = _to8(a)
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_GRAY2RGB)


def _to8(a: np.ndarray) -> np.ndarray:
    """uint8 of a 16-bit image: x * 255 / 65535 rounded to the nearest level (cv_bridge's convertTo)."""
    return np.rint(a.astype(np.float32) / 257.0).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ compressed
# sensor_msgs/CompressedImage as image_transport's 'compressed' and 'compressedDepth' plugins write it: format
# "jpeg" / "png" (older publishers) or "<encoding>; jpeg compressed <enc>" / "<encoding>; png compressed <enc>";
# depth "16UC1; compressedDepth png" / "32FC1; compressedDepth png" (older: "<enc>; compressedDepth"), whose data
# starts with a 12-byte ConfigHeader (int32 format, float32 depthQuantA, depthQuantB) before the PNG.
COMPRESSED_DEPTH_HEADER = 12


def compressed_size(data) -> Tuple[int, int]:
    """``(height, width)`` that a PNG or JPEG stream declares, read from its header without decoding it (a few
    hundred bytes declaring a 100000 x 100000 image must be rejected before anything is allocated)."""
    b = bytes(memoryview(data)[:65536])
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24 and b[12:16] == b"IHDR":
        w, h = struct.unpack(">II", b[16:24])
        return int(h), int(w)
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            seg = struct.unpack(">H", b[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):   # a start-of-frame segment
                if i + 9 > len(b):
                    break
                h, w = struct.unpack(">HH", b[i + 5:i + 9])
                return int(h), int(w)
            i += 2 + seg
        raise ImageError("undecodable", "JPEG without a frame header in its first 64 KiB")
    raise ImageError("undecodable", "compressed data is neither PNG nor JPEG")


def _compressed_kind(fmt: str) -> str:
    f = fmt.lower()
    if "compresseddepth" in f:
        return "depth"
    if "jpeg" in f or "jpg" in f or "png" in f:
        return "colour"
    raise ImageError("unsupported_encoding", f"unsupported compressed format {_clip(fmt)} (supported: image_transport "
                                             "'compressed' jpeg / png, 'compressedDepth' png)")


def compressed_image_size(msg, max_pixels: int = DEFAULT_MAX_PIXELS, depth: bool = False) -> Tuple[int, int]:
    """Checks of a CompressedImage before it is decoded: its format (colour, or ``depth``: compressedDepth) and the
    size its header declares (at most ``max_pixels``). Returns ``(height, width)``."""
    kind = _compressed_kind(msg.format)
    if (kind == "depth") != depth:
        raise ImageError("unsupported_encoding", f"format {_clip(msg.format)} on a "
                                                 f"{'depth' if depth else 'colour'} topic")
    data = memoryview(_buffer(msg.data))
    if depth:
        if len(data) <= COMPRESSED_DEPTH_HEADER:
            raise ImageError("truncated", f"compressedDepth data of {len(data)} bytes has no image after its header")
        data = data[COMPRESSED_DEPTH_HEADER:]
    h, w = compressed_size(data)
    if h <= 0 or w <= 0:
        raise ImageError("invalid_image", f"compressed image declares {w}x{h}")
    if h * w > max_pixels:
        raise ImageError("too_large", f"compressed image declares {w}x{h} = {h * w} pixels, over the cap of "
                                      f"{max_pixels}")
    return h, w


def _decode(data, flags: int, hw: Tuple[int, int]) -> np.ndarray:
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if a is None:
        raise ImageError("undecodable", "the compressed data does not decode")
    if a.shape[:2] != hw:
        raise ImageError("undecodable", f"decoded {a.shape[1]}x{a.shape[0]}, the header declared {hw[1]}x{hw[0]}")
    return a


def jpeg_reduction(hw: Tuple[int, int], target: Tuple[int, int]) -> int:
    """The largest k in 8, 4, 2 (else 1) at which a JPEG of size ``hw`` can be decoded (DCT scaling: ~k^2 less
    work) and still be prepared for the model grid ``target`` exactly as the full image would: k divides both
    sides (the crop and the resize factor are the same) and the reduced image is not smaller than the resize."""
    from trace_anything_ros.model.preprocess import plan

    rot_in, size, _, _ = plan(hw, target)
    if size is None:
        return 1
    h, w = (hw[1], hw[0]) if rot_in else hw                  # the working (landscape) orientation of the resize
    for k in (8, 4, 2):
        if h % k == 0 and w % k == 0 and w // k >= size[0] and h // k >= size[1]:
            return k
    return 1


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS, target: Optional[Tuple[int, int]] = None
                      ) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a sensor_msgs/CompressedImage (image_transport 'compressed': JPEG or PNG, colour or
    mono; the decoder's BGR is turned to RGB, as image_transport's republisher would give ``rgb8``). ``target``:
    the model grid the image is for; a JPEG is then decoded at the reduced size ``jpeg_reduction`` allows, which
    ``pipeline.preprocess_rgb`` maps onto the same grid (720p for a 128 x 96 grid, decode + preparation: 11.4 ->
    1.9 ms; a raw rgb8 720p image: 5.9 ms)."""
    import cv2

    hw = compressed_image_size(msg, max_pixels)
    k = jpeg_reduction(hw, target) if target is not None and _buffer(msg.data)[:2] == b"\xff\xd8" else 1
    if k > 1:
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[k]
        return cv2.cvtColor(_decode(_buffer(msg.data), flag, (hw[0] // k, hw[1] // k)), cv2.COLOR_BGR2RGB)
    a = _decode(_buffer(msg.data), cv2.IMREAD_UNCHANGED, hw)
    if a.dtype == np.uint16:
        a = (a.astype(np.float32) / 257.0).astype(np.uint8)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)


def compressed_depth_to_metres(msg, max_pixels: int = DEFAULT_MAX_PIXELS, min_range: float = 0.0,
                               max_range: float = float("inf")) -> Tuple[np.ndarray, np.ndarray]:
    """``depth_to_metres`` of a compressedDepth CompressedImage: "16UC1; compressedDepth" is a 16-bit PNG of
    millimetres; "32FC1; compressedDepth" a 16-bit PNG of quantised inverse depth, ``depth = depthQuantA /
    (v - depthQuantB)`` (0: no return), the quantisation parameters in the 12-byte header before the PNG."""
    import cv2

    hw = compressed_image_size(msg, max_pixels, depth=True)
    raw = _buffer(msg.data)
    _, qa, qb = struct.unpack("<iff", bytes(raw[:COMPRESSED_DEPTH_HEADER]))
    a = _decode(raw[COMPRESSED_DEPTH_HEADER:], cv2.IMREAD_UNCHANGED, hw)
    if a.dtype != np.uint16 or a.ndim != 2:
        raise ImageError("undecodable", f"compressedDepth PNG is {a.dtype} with {a.shape[2] if a.ndim == 3 else 1} "
                                        "channels, not 16-bit mono")
    if not msg.format.lower().startswith("32fc1"):
        return _metres(a, True, min_range, max_range)
    if not (np.isfinite(qa) and np.isfinite(qb) and qa > 0):
        raise ImageError("undecodable", f"compressedDepth quantisation ({qa}, {qb}) is not usable")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(a > 0, np.float32(qa) / (a.astype(np.float32) - np.float32(qb)), np.nan).astype(np.float32)
    return _metres(d, False, min_range, max_range)


def _metres(a: np.ndarray, millimetres: bool, min_range: float, max_range: float) -> Tuple[np.ndarray, np.ndarray]:
    """(depth float32 in metres with NaN where invalid, valid mask) of integer millimetres (0: no return) or of
    metres (zero, NaN, inf, negative: no return); values outside [min_range, max_range] are invalid too."""
    from trace_anything_ros.pipeline.gates import depth_range_valid

    if millimetres:
        d = a.astype(np.float32) * np.float32(1e-3)
        valid = (a != 0) & depth_range_valid(d, min_range, max_range)
    else:
        d = a.astype(np.float32)  # copy (also native byte order)
        valid = depth_range_valid(d, max(min_range, np.nextafter(np.float32(0), np.float32(1))), max_range)
    d[~valid] = np.nan
    return d, valid


def is_compressed(msg) -> bool:
    """A sensor_msgs/CompressedImage (or its decoded / JSON form): a ``format``, no ``encoding``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS, target: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an Image (``image_to_rgb``) or a CompressedImage (``compressed_to_rgb``; with the
    model grid ``target`` possibly at a reduced size that prepares to the same grid)."""
    return compressed_to_rgb(msg, max_pixels, target) if is_compressed(msg) else image_to_rgb(msg, max_pixels)


def to_depth_metres(msg, max_pixels: int = DEFAULT_MAX_PIXELS, min_range: float = 0.0,
                    max_range: float = float("inf")) -> Tuple[np.ndarray, np.ndarray]:
    """``depth_to_metres`` of an Image or ``compressed_depth_to_metres`` of a compressedDepth CompressedImage."""
    fn = compressed_depth_to_metres if is_compressed(msg) else depth_to_metres
    return fn(msg, max_pixels, min_range, max_range)


def declared_size(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> Tuple[int, int]:
    """``(height, width)`` an Image declares, or a CompressedImage's header (nothing decoded)."""
    if is_compressed(msg):
        return compressed_image_size(msg, max_pixels, depth="compresseddepth" in msg.format.lower())
    return int(msg.height), int(msg.width)


def depth_to_metres(msg, max_pixels: int = DEFAULT_MAX_PIXELS, min_range: float = 0.0,
                    max_range: float = float("inf")) -> Tuple[np.ndarray, np.ndarray]:
    """(depth float32 [H, W] in metres with NaN where invalid, valid mask). 16UC1/mono16 are millimetres
    (REP 118), 32FC1 metres; zero, NaN, inf, negative values and values outside [min_range, max_range] (the
    sensor's range: no return) are invalid."""
    a = image_to_array(msg, max_pixels, DEPTH_ENCODINGS)
    return _metres(a, msg.encoding in ("16UC1", "mono16"), min_range, max_range)


def header_problem(header, max_frame_id: int) -> Optional[Tuple[str, str]]:
    """``("invalid_frame_id", text)`` when the header's frame_id is longer than ``max_frame_id`` characters (a
    frame id is copied into every output: a hostile 1 MiB one would be multiplied), else None."""
    fid = header.frame_id
    if len(fid) > max_frame_id:
        return "invalid_frame_id", f"frame_id of {len(fid)} characters (limit {max_frame_id}): {_clip(fid, 32)}"
    return None


def _clip(s, n: int = 64) -> str:
    from trace_anything_ros.pipeline.gates import clip

    return clip(s, n)


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
        raise ValueError(f"unsupported field encoding {_clip(m.encoding)}")
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


# ------------------------------------------------------------------------- dense field, serialized (CDR) form
# The TrajectoryField message as the bytes DDS carries (XCDR1, the encoding rmw_fastrtps uses for ROS 2 messages):
# a 4-byte encapsulation header (0x00 0x01 = little-endian CDR), then the fields in .msg order, each primitive
# aligned to its size (8-byte float64 to 8) relative to the end of that header, strings as uint32 length (with the
# NUL) + bytes + NUL, sequences as uint32 count + elements. ``Publisher.publish(bytes)`` sends such bytes as they
# are and ``create_subscription(..., raw=True)`` hands them over untouched, so the two blobs skip rclpy's
# Python<->C message conversion (one copy into the array.array, one into the C struct, and on the receive side
# one into a bytes object plus one more into the array.array) and CDR (de)serialization. Subscribers that take
# the message type see an ordinary TrajectoryField. Checked against rclpy.serialization in test_conversions.
_CDR_LE, _CDR_BE = b"\x00\x01\x00\x00", b"\x00\x00\x00\x00"


class _CdrWriter:

    def __init__(self):
        self.parts, self.pos = [], 0

    def _align(self, n: int):
        pad = -self.pos % n
        if pad:
            self.parts.append(b"\x00" * pad)
            self.pos += pad

    def put(self, fmt: str, *vals, align: int):
        self._align(align)
        b = struct.pack("<" + fmt, *vals)
        self.parts.append(b)
        self.pos += len(b)

    def string(self, s: str):
        b = s.encode("utf-8") + b"\x00"
        self.put("I", len(b), align=4)
        self.parts.append(b)
        self.pos += len(b)

    def raw(self, b: bytes, align: int = 1):
        """Bytes already in CDR form (e.g. float64 triples); ``align``: the alignment of their first element (an
        empty sequence aligns nothing)."""
        if b:
            self._align(align)
            self.parts.append(b)
            self.pos += len(b)

    def blob(self, mv: memoryview):
        self.put("I", mv.nbytes, align=4)
        self.parts.append(mv)
        self.pos += mv.nbytes


def field_to_cdr(field, header, float16: bool = False, scale: float = 1.0, stamps_ns=None) -> bytes:
    """TrajectoryField (field.types) -> the serialized trace_anything_ros/TrajectoryField message (CDR bytes for
    ``Publisher.publish``): the same content as ``field_to_msg``, each blob copied once."""
    return b"".join(field_cdr_parts(field, header, float16, scale, stamps_ns))


def field_cdr_parts(field, header, float16: bool = False, scale: float = 1.0, stamps_ns=None) -> list:
    """The serialized message as a list of bytes-like parts (the blobs are views of the field's arrays when they are
    C-contiguous in the wire dtype: nothing is copied here); ``field_to_cdr`` joins them."""
    n = field.num_frames
    stamps = stamps_ns if stamps_ns is not None else [int(round(s * 1e9)) for s in field.stamps]
    if len(stamps) != n:
        raise ValueError(f"{len(stamps)} stamps for {n} frames")
    dt = np.dtype(np.float16 if float16 else np.float32)
    pts = memoryview(np.ascontiguousarray(field.ctrl_pts, dtype=dt)).cast("B")
    conf = memoryview(np.ascontiguousarray(field.ctrl_conf, dtype=dt)).cast("B")
    k = np.zeros(9) if field.intrinsics is None else np.asarray(field.intrinsics, np.float64).reshape(9)
    w = _CdrWriter()
    sec, nsec = divmod(stamp_to_ns(header.stamp), 1_000_000_000)
    w.put("iI", sec, nsec, align=4)
    w.string(header.frame_id)
    w.put("I", n, align=4)
    for s in stamps:
        w.put("iI", *divmod(int(s), 1_000_000_000), align=4)
    ft = np.asarray(field.frame_times, np.float32).reshape(-1)
    w.put("I", ft.size, align=4)
    w.put(f"{ft.size}f", *ft.tolist(), align=4)
    w.put("4I", n, field.num_ctrl, field.height, field.width, align=4)
    w.put("9d", *k.tolist(), align=8)
    w.put("?", bool(field.metric), align=1)
    w.put("f", float(scale), align=4)
    w.string("16FC1" if float16 else "32FC1")
    w.put("B", int(_HOST_BIG), align=1)
    w.blob(pts)
    w.blob(conf)
    return [_CDR_LE] + w.parts


def tracks_to_cdr(tracks, header, metric: bool, stamps_ns, forecast_stamps_ns) -> bytes:
    """Products.tracks (pipeline.perception.Tracks) -> serialized trace_anything_ros/TrajectoryArray (CDR bytes
    for ``Publisher.publish``), field for field what ``messages.tracks_message`` builds (position_stamps = the
    window's stamps, forecast_stamps = the first F of ``forecast_stamps_ns``). rclpy's message path spends most
    of its time building and converting one geometry_msgs/Point object per point; here the points are float64
    bytes sliced from one numpy array per kind and each track costs a few struct.pack calls."""
    m_tr = int(tracks.ids.shape[0])
    d, n, f = tracks.ctrl.shape[1], tracks.positions.shape[1], tracks.forecast.shape[1]
    ctrl = np.ascontiguousarray(tracks.ctrl, "<f8").reshape(m_tr, d * 3) if m_tr else None
    pos = np.ascontiguousarray(tracks.positions, "<f8").reshape(m_tr, n * 3) if m_tr else None
    fc = np.ascontiguousarray(tracks.forecast, "<f8").reshape(m_tr, f * 3) if m_tr else None
    cc = np.ascontiguousarray(tracks.ctrl_conf, "<f4").reshape(m_tr, d) if m_tr else None
    fcc = np.ascontiguousarray(tracks.forecast_conf, "<f4").reshape(m_tr, f) if m_tr else None
    win = [divmod(int(s), 1_000_000_000) for s in stamps_ns]
    fst = [divmod(int(s), 1_000_000_000) for s in list(forecast_stamps_ns)[:f]]
    win_b = struct.pack(f"<{2 * len(win)}i", *[x for st in win for x in st]) if win else b""
    fst_b = struct.pack(f"<{2 * len(fst)}i", *[x for st in fst for x in st]) if fst else b""
    ids, uv = tracks.ids.tolist(), np.asarray(tracks.uv, np.float32).tolist()
    oid, dyn = tracks.object_id.tolist(), tracks.dynamic.tolist()
    conf = np.asarray(tracks.confidence, np.float32).tolist()
    src = int(tracks.source_frame)
    w = _CdrWriter()
    sec, nsec = divmod(stamp_to_ns(header.stamp), 1_000_000_000)
    w.put("iI", sec, nsec, align=4)
    w.string(header.frame_id)
    w.put("I", len(win), align=4)
    w.raw(win_b)
    w.put("?", bool(metric), align=1)
    w.put("I", m_tr, align=4)
    for i in range(m_tr):
        w.put("IIffi?", ids[i], src, uv[i][0], uv[i][1], oid[i], dyn[i], align=4)
        w.put("fI", conf[i], d, align=4)
        w.raw(ctrl[i].tobytes(), align=8)
        w.put("I", d, align=4)
        w.raw(cc[i].tobytes())
        w.put("I", n, align=4)
        w.raw(pos[i].tobytes(), align=8)
        w.put("I", len(win), align=4)
        w.raw(win_b)
        w.put("I", f, align=4)
        w.raw(fc[i].tobytes(), align=8)
        w.put("I", len(fst), align=4)
        w.raw(fst_b)
        w.put("I", f, align=4)
        w.raw(fcc[i].tobytes())
    return _CDR_LE + b"".join(w.parts)


class _CdrReader:

    def __init__(self, data):
        self.buf = _buffer(data)
        if len(self.buf) < 4 or bytes(self.buf[:4]) not in (_CDR_LE, _CDR_BE):
            raise ValueError("not a CDR (XCDR1) little/big-endian encapsulated message")
        self.end = "<" if bytes(self.buf[:4]) == _CDR_LE else ">"
        self.pos = 4

    def _take(self, nbytes: int, align: int) -> int:
        self.pos += -(self.pos - 4) % align
        if nbytes < 0 or self.pos + nbytes > len(self.buf):
            raise ValueError(f"truncated field message: need {nbytes} bytes at {self.pos}, have {len(self.buf)}")
        at = self.pos
        self.pos += nbytes
        return at

    def get(self, fmt: str, align: int):
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from(self.end + fmt, self.buf, self._take(size, align))

    def string(self) -> str:
        (n,) = self.get("I", 4)
        at = self._take(n, 1)
        return bytes(self.buf[at:at + max(n - 1, 0)]).decode("utf-8")

    def blob(self) -> Tuple[int, int]:
        (n,) = self.get("I", 4)
        return self._take(n, 1), n


def cdr_to_field(data):
    """Serialized trace_anything_ros/TrajectoryField (bytes from a ``raw=True`` subscription) ->
    field.types.TrajectoryField whose arrays are zero-copy read-only views over ``data``. Every length is checked
    against the buffer before anything is read (ValueError on malformed input)."""
    from trace_anything_ros.field.types import TrajectoryField

    r = _CdrReader(data)
    r.get("iI", 4)  # header.stamp (the newest frame's stamp; also the last of frame_stamps)
    frame_id = r.string()
    (ns,) = r.get("I", 4)
    if ns * 8 > len(r.buf):
        raise ValueError(f"field message declares {ns} frame stamps in {len(r.buf)} bytes")
    stamps = [r.get("iI", 4) for _ in range(ns)]
    (nt,) = r.get("I", 4)
    if nt * 4 > len(r.buf):
        raise ValueError(f"field message declares {nt} frame times in {len(r.buf)} bytes")
    times = np.asarray(r.get(f"{nt}f", 4), np.float32)
    n, d, h, w = r.get("4I", 4)
    k = np.asarray(r.get("9d", 8), np.float64).reshape(3, 3)
    (metric,) = r.get("?", 1)
    r.get("f", 4)  # scale (already applied to the positions)
    enc = r.string()
    (big,) = r.get("B", 1)
    if enc == "32FC1":
        dt = np.dtype(np.float32)
    elif enc == "16FC1":
        dt = np.dtype(np.float16)
    else:
        raise ValueError(f"unsupported field encoding {_clip(enc)}")
    if bool(big) != _HOST_BIG:
        dt = dt.newbyteorder(">" if big else "<")
    p_at, p_n = r.blob()
    c_at, c_n = r.blob()
    cells = n * d * h * w
    if p_n != cells * 3 * dt.itemsize or c_n != cells * dt.itemsize:
        raise ValueError(f"blob sizes {p_n}/{c_n} bytes do not match [{n},{d},{h},{w}] {enc}")
    pts = np.frombuffer(r.buf, dtype=dt, count=cells * 3, offset=p_at).reshape(n, d, h, w, 3)
    conf = np.frombuffer(r.buf, dtype=dt, count=cells, offset=c_at).reshape(n, d, h, w)
    return TrajectoryField(
        ctrl_pts=pts, ctrl_conf=conf, frame_times=times,
        stamps=np.asarray([(s * 1_000_000_000 + ns_) * 1e-9 for s, ns_ in stamps]),
        intrinsics=None if not k.any() else k, metric=bool(metric), frame_id=frame_id)


# ------------------------------------------------------------------------------ canonical serialized messages
# rclpy's serialize_message (and its publish) leaves the CDR alignment padding as whatever the buffer held before
# (two serializations of one message can differ). ``canonical_cdr`` zeroes every padding byte, walking the message
# type's rosidl introspection (SLOT_TYPES), so that one message always has one serialized form: the form our own
# writers above produce, and what the node publishes (ros/messages.py).
_CDR_BASIC = {"boolean": 1, "octet": 1, "uint8": 1, "int8": 1, "char": 1, "int16": 2, "uint16": 2, "int32": 4,
              "uint32": 4, "int64": 8, "uint64": 8, "float": 4, "double": 8}
_FIXED_CACHE: dict = {}
_CLASS_CACHE: dict = {}


def _slot_class(t):
    key = (tuple(t.namespaces), t.name)
    cls = _CLASS_CACHE.get(key)
    if cls is None:
        import importlib

        cls = _CLASS_CACHE[key] = getattr(importlib.import_module(".".join(t.namespaces)), t.name)
    return cls


def _fixed_layout(t) -> Optional[Tuple[int, int]]:
    """(size, alignment) of a type whose serialized form has a constant size and no padding inside once its start
    is aligned (a primitive; a struct or array of such members that all share one alignment, e.g. Point); else
    None."""
    from rosidl_parser import definition as d

    if isinstance(t, d.BasicType):
        n = _CDR_BASIC[t.typename]
        return n, n
    if isinstance(t, d.Array):
        inner = _fixed_layout(t.value_type)
        return None if inner is None else (inner[0] * t.size, inner[1])
    if isinstance(t, d.NamespacedType):
        key = (tuple(t.namespaces), t.name)
        if key not in _FIXED_CACHE:
            parts = [_fixed_layout(st) for st in _slot_class(t).SLOT_TYPES]
            ok = parts and all(p is not None and p[1] == parts[0][1] for p in parts)
            _FIXED_CACHE[key] = (sum(p[0] for p in parts), parts[0][1]) if ok else None
        return _FIXED_CACHE[key]
    return None


def _zero_pad(buf: bytearray, pos: int, align: int) -> int:
    pad = -(pos - 4) % align
    if pad:
        buf[pos:pos + pad] = bytes(pad)
    return pos + pad


def _canonical_walk(buf: bytearray, pos: int, t) -> int:
    from rosidl_parser import definition as d

    if isinstance(t, d.BasicType):
        n = _CDR_BASIC[t.typename]
        return _zero_pad(buf, pos, n) + n
    if isinstance(t, d.AbstractString):
        pos = _zero_pad(buf, pos, 4)
        return pos + 4 + struct.unpack_from("<I", buf, pos)[0]
    if isinstance(t, d.NamespacedType):
        for st in _slot_class(t).SLOT_TYPES:
            pos = _canonical_walk(buf, pos, st)
        return pos
    if isinstance(t, (d.Array, d.AbstractSequence)):
        if isinstance(t, d.Array):
            count = t.size
        else:
            pos = _zero_pad(buf, pos, 4)
            count = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        fixed = _fixed_layout(t.value_type)
        if fixed is not None:
            return _zero_pad(buf, pos, fixed[1]) + count * fixed[0] if count else pos
        for _ in range(count):
            pos = _canonical_walk(buf, pos, t.value_type)
        return pos
    raise NotImplementedError(f"canonical_cdr: {type(t).__name__} members are not supported")


def canonical_cdr(data, msg_type) -> bytes:
    """Serialized (little-endian CDR) message of type ``msg_type`` with every alignment padding byte zeroed."""
    buf = bytearray(data)
    if bytes(buf[:4]) != _CDR_LE:
        raise ValueError("canonical_cdr: not a little-endian CDR (XCDR1) encapsulated message")
    end = 4
    for st in msg_type.SLOT_TYPES:
        end = _canonical_walk(buf, end, st)
    if end > len(buf):
        raise ValueError(f"canonical_cdr: {msg_type.__name__} needs {end} bytes, the message has {len(buf)}")
    buf[end:] = bytes(len(buf) - end)  # trailing alignment of the buffer
    return bytes(buf)


def serialize_canonical(msg) -> bytes:
    """``rclpy.serialization.serialize_message`` with zeroed padding (``canonical_cdr``): one message, one form."""
    from rclpy.serialization import serialize_message

    return canonical_cdr(serialize_message(msg), type(msg))


# --------------------------------------------------------------------------------------- geometry_msgs/Point[]
def points(arr) -> list:
    """``[..., 3]`` -> list of ``geometry_msgs/Point`` (row-major), several times faster than ``Point(x=, y=, z=)``.

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
