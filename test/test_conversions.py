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

"""sensor_msgs/Image <-> numpy conversions and the dense field message builder (real generated messages)."""

import numpy as np
import pytest

pytestmark = pytest.mark.ros

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def conv():
    from trace_anything_ros.ros import conversions
    return conversions


def img(encoding, h, w, data, step, bigendian=0):
    from sensor_msgs.msg import Image
    m = Image()
    m.height, m.width, m.encoding, m.step, m.is_bigendian = h, w, encoding, step, bigendian
    m.data = bytes(data)
    return m


@pytest.mark.parametrize("encoding,dtype,ch", [
    ("rgb8", np.uint8, 3), ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4),
    ("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("16UC1", np.uint16, 1), ("32FC1", np.float32, 1)])
def test_roundtrip_zero_copy(conv, encoding, dtype, ch):
    shape = (7, 5) if ch == 1 else (7, 5, ch)
    a = (RNG.random(shape) * 200).astype(dtype)
    m = conv.array_to_image(a, encoding)
    v = conv.image_to_array(m)
    assert v.shape == a.shape and v.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(v, a)
    assert np.shares_memory(v, np.frombuffer(m.data, np.uint8))  # a view, not a copy


def test_row_padding_is_honoured(conv):
    h, w = 4, 3
    a = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)
    step = w * 3 + 7
    buf = np.full((h, step), 99, np.uint8)
    buf[:, : w * 3] = a.reshape(h, -1)
    v = conv.image_to_array(img("rgb8", h, w, buf.tobytes(), step))
    np.testing.assert_array_equal(v, a)


def test_color_conversions_to_rgb(conv):
    a = RNG.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.array_to_image(a[..., ::-1], "bgr8")), a)
    rgba = np.concatenate([a, np.full((4, 6, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.array_to_image(rgba, "rgba8")), a)
    bgra = np.concatenate([a[..., ::-1], np.full((4, 6, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.array_to_image(bgra, "bgra8")), a)
    g = conv.image_to_rgb(conv.array_to_image(a[..., 0], "mono8"))
    assert g.shape == (4, 6, 3) and (g[..., 1] == a[..., 0]).all()


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_mosaics_are_demosaiced_by_their_pattern(conv, pattern, bits):
    """A raw camera's mosaic (no debayering in its driver) comes back as the image it sampled: each ROS pattern
    against the four OpenCV codes (their names count from another corner, so a wrong mapping swaps red and blue
    or shifts green: errors of 20-35 grey levels against < 2 here)."""
    import cv2
    h, w = 48, 64
    rgb = cv2.GaussianBlur(RNG.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3)
    rgb = cv2.normalize(rgb, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    mosaic = np.zeros((h, w), np.uint8)
    for (dy, dx), c in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(c)]
    raw = mosaic if bits == 8 else mosaic.astype(np.uint16) * 257
    out = conv.image_to_rgb(conv.array_to_image(raw, f"bayer_{pattern}{bits}"))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    err = np.abs(out.astype(float) - rgb)[3:-3, 3:-3].mean(axis=(0, 1))
    assert err.max() < 2.0, err


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_is_converted_by_its_byte_order(conv, encoding):
    """YUV 4:2:2 (a USB camera's raw format): 'yuv422' is U Y0 V Y1, 'yuv422_yuy2' Y0 U Y1 V (sensor_msgs'
    image_encodings); BT.601 limited range, against the formula."""
    h, w = 4, 6
    y = RNG.integers(16, 236, (h, w))
    u, v = RNG.integers(16, 241, (h, w // 2)), RNG.integers(16, 241, (h, w // 2))
    packed = np.zeros((h, w, 2), np.uint8)
    luma, chroma = (1, 0) if encoding == "yuv422" else (0, 1)
    packed[..., luma] = y
    packed[:, 0::2, chroma], packed[:, 1::2, chroma] = u, v
    yy, uu, vv = y - 16.0, np.repeat(u, 2, 1) - 128.0, np.repeat(v, 2, 1) - 128.0
    ref = np.stack([1.164 * yy + 1.596 * vv, 1.164 * yy - 0.813 * vv - 0.391 * uu, 1.164 * yy + 2.018 * uu], -1)
    out = conv.image_to_rgb(conv.array_to_image(packed, encoding))
    assert np.abs(out - ref.clip(0, 255)).max() < 1.5
    odd = img(encoding, 2, 3, bytes(12), 6)
    with pytest.raises(conv.ImageError, match="odd") as e:
        conv.image_to_rgb(odd)
    assert e.value.reason == "invalid_image"


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16", "rgba16", "bgra16"])
def test_16bit_colour_is_scaled_to_8_bits(conv, encoding):
    a = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    px = a if encoding.startswith("rgb") else a[..., ::-1]
    if "a" in encoding[3:]:
        px = np.concatenate([px, np.full((3, 5, 1), 9, np.uint8)], axis=2)
    wide = px.astype(np.uint16) * 257 + RNG.integers(0, 129, px.shape).astype(np.uint16) * (px < 255)  # rounded
    np.testing.assert_array_equal(conv.image_to_rgb(conv.array_to_image(wide, encoding)), a)


def test_big_endian_16bit(conv):
    a = np.array([[1, 256], [1000, 65535]], np.uint16)
    m = img("16UC1", 2, 2, a.astype(">u2").tobytes(), 4, bigendian=1)
    np.testing.assert_array_equal(conv.image_to_array(m), a)
    d, valid = conv.depth_to_metres(m)
    np.testing.assert_allclose(d, a / 1000.0, rtol=1e-6)


def test_depth_units_and_invalid_pixels(conv):
    mm = np.array([[0, 1500], [2000, 65535]], np.uint16)
    d, valid = conv.depth_to_metres(conv.array_to_image(mm, "16UC1"))
    assert np.isnan(d[0, 0]) and not valid[0, 0] and d[0, 1] == pytest.approx(1.5)
    f = np.array([[np.nan, np.inf], [0.0, 2.5], [-1.0, 1.0]], np.float32)
    d, valid = conv.depth_to_metres(conv.array_to_image(f, "32FC1"))
    assert valid.tolist() == [[False, False], [False, True], [False, True]]
    assert np.isnan(d[~valid]).all() and d[1, 1] == 2.5


@pytest.mark.parametrize("case,reason,text", [
    ("encoding", "unsupported_encoding", "unsupported encoding 'nv21'"),
    ("truncated", "truncated", "needs"),
    ("step", "wrong_step", "step 5 is smaller"),
    ("huge", "too_large", "over the cap"),
    ("empty", "invalid_image", "empty image"),
])
def test_malformed_images_raise_clear_errors(conv, case, reason, text):
    if case == "encoding":
        m = img("nv21", 2, 2, bytes(8), 4)
    elif case == "truncated":
        m = img("rgb8", 10, 10, bytes(299), 30)
    elif case == "step":
        m = img("rgb8", 2, 2, bytes(12), 5)
    elif case == "huge":
        m = img("rgb8", 100000, 100000, b"", 300000)  # declared 10^10 pixels: rejected before allocating
    else:
        m = img("rgb8", 0, 0, b"", 0)
    with pytest.raises(conv.ImageError) as e:
        conv.image_to_array(m, max_pixels=4096 * 4096)
    assert e.value.reason == reason and text in str(e.value)


def test_mask_builders(conv):
    from std_msgs.msg import Header
    h = Header(frame_id="cam")
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    m = conv.mask_to_image(mask, h)
    assert m.encoding == "mono8" and m.step == 4 and m.header.frame_id == "cam"
    assert conv.image_to_array(m)[1, 2] == 255 and conv.image_to_array(m).sum() == 255
    lab = np.array([[0, 3], [700, 0]], np.uint16)
    m = conv.mask_to_image(lab, h, labels=True)
    assert m.encoding == "16UC1" and m.step == 4
    np.testing.assert_array_equal(conv.image_to_array(m), lab)


@pytest.mark.parametrize("float16", [False, True])
def test_field_message_roundtrip(conv, float16):
    from std_msgs.msg import Header
    from trace_anything_ros.field.types import TrajectoryField
    from trace_anything_ros.msg import TrajectoryField as Msg
    n, d, h, w = 3, 4, 5, 6
    k = np.array([[50.0, 0, 2.5], [0, 50.0, 2.0], [0, 0, 1]])
    f = TrajectoryField(RNG.random((n, d, h, w, 3)).astype(np.float32), RNG.random((n, d, h, w)).astype(np.float32),
                        np.linspace(0, 1, n), np.array([1.0, 1.1, 1.2]), intrinsics=k, metric=True, frame_id="cam")
    stamps_ns = [1_000_000_000, 1_100_000_000, 1_200_000_000]
    m = conv.field_to_msg(f, Header(frame_id="cam"), float16=float16, scale=2.0, stamps_ns=stamps_ns)
    assert m.encoding == (Msg.ENCODING_FLOAT16 if float16 else Msg.ENCODING_FLOAT32)
    assert len(m.control_points) == n * d * h * w * 3 * (2 if float16 else 4)
    assert [conv.stamp_to_ns(s) for s in m.frame_stamps] == stamps_ns and m.scale == 2.0 and m.metric
    g = conv.msg_to_field(m)
    tol = 1e-3 if float16 else 0
    np.testing.assert_allclose(g.ctrl_pts, f.ctrl_pts, atol=tol)
    np.testing.assert_allclose(g.ctrl_conf, f.ctrl_conf, atol=tol)
    np.testing.assert_allclose(g.intrinsics, k)


def test_time_conversion_is_exact(conv):
    ns = 1_700_000_000_123_456_789
    assert conv.stamp_to_ns(conv.ns_to_time(ns)) == ns


def _cv_bridge_reason():
    try:
        import cv_bridge  # noqa: F401
        from cv_bridge import CvBridge  # noqa: F401
        return None
    except Exception as e:  # ImportError, or PyPI's ROS 1 cv-bridge failing to import
        return f"cv_bridge for ROS 2 is not installed here ({type(e).__name__}: {e})"


@pytest.mark.skipif(_cv_bridge_reason() is not None, reason=str(_cv_bridge_reason()))
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "16UC1", "32FC1"])
def test_matches_cv_bridge(conv, encoding):
    from cv_bridge import CvBridge
    dtype, ch = conv.ENCODINGS[encoding]
    shape = (5, 7) if ch == 1 else (5, 7, ch)
    a = (RNG.random(shape) * 200).astype(dtype)
    m = CvBridge().cv2_to_imgmsg(a, encoding=encoding)
    np.testing.assert_array_equal(conv.image_to_array(m), CvBridge().imgmsg_to_cv2(m, "passthrough"))


@pytest.mark.skipif(_cv_bridge_reason() is not None, reason=str(_cv_bridge_reason()))
def test_raw_encodings_match_cv_bridge_rgb8(conv):
    """Where cv_bridge is installed: the raw camera formats convert to the same rgb8 as ``imgmsg_to_cv2(m,
    'rgb8')`` (here the same behaviour is checked against mosaicked images and the BT.601 formula above)."""
    from cv_bridge import CvBridge
    for encoding in ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "yuv422",
                     "yuv422_yuy2", "rgb16", "bgra16", "mono16"]:
        dtype, ch = conv.ENCODINGS[encoding]
        a = RNG.integers(0, np.iinfo(dtype).max, (6, 8, ch) if ch > 1 else (6, 8)).astype(dtype)
        m = conv.array_to_image(a, encoding)
        np.testing.assert_array_equal(conv.image_to_rgb(m), CvBridge().imgmsg_to_cv2(m, "rgb8"), err_msg=encoding)


# ------------------------------------------------------------------------ compressed (image_transport)
def cimg(fmt, data):
    from sensor_msgs.msg import CompressedImage
    m = CompressedImage()
    m.format, m.data = fmt, bytes(data)
    return m


@pytest.mark.parametrize("codec,fmt", [(".jpg", "rgb8; jpeg compressed bgr8"), (".png", "png"),
                                       (".png", "bgr8; png compressed bgr8")])
def test_compressed_colour_decodes_to_rgb(conv, codec, fmt):
    import cv2
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[5:15, 10:30] = (250, 40, 10)                                      # a red block: channel order shows
    ok, buf = cv2.imencode(codec, rgb[:, :, ::-1])
    m = cimg(fmt, buf.tobytes())
    assert conv.compressed_image_size(m) == (30, 40)
    out = conv.compressed_to_rgb(m)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    if codec == ".png":
        assert np.array_equal(out, rgb)
    else:   # JPEG is lossy (and subsamples colour): the block is still red, not blue
        r, g, b = out[7:13, 13:27].reshape(-1, 3).mean(0)
        assert r > 200 and b < 60, (r, g, b)
    mono = cv2.imencode(".png", rgb[:, :, 0])[1]
    assert np.array_equal(conv.compressed_to_rgb(cimg("mono8; png compressed mono8", mono.tobytes()))[..., 1],
                          rgb[:, :, 0])


def test_compressed_depth_16uc1_and_32fc1(conv):
    import cv2
    import struct
    mm = np.full((20, 30), 1500, np.uint16)
    mm[:, :5] = 0                                                          # no return
    png = cv2.imencode(".png", mm)[1].tobytes()
    d, valid = conv.compressed_depth_to_metres(cimg("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + png))
    assert np.allclose(d[valid], 1.5) and not valid[:, :5].any() and valid[:, 5:].all()
    # 32FC1: quantised inverse depth, depth = A / (v - B) (compressed_depth_image_transport's defaults q=100, 10 m)
    q, dmax = 100.0, 10.0
    A = q * (q + 1.0)
    B = 1.0 - A / dmax
    depth = np.linspace(0.4, 3.0, 600, dtype=np.float32).reshape(20, 30)
    inv = np.round(A / depth + B).astype(np.uint16)
    inv[0, 0] = 0
    data = struct.pack("<iff", 0, A, B) + cv2.imencode(".png", inv)[1].tobytes()
    d, valid = conv.compressed_depth_to_metres(cimg("32FC1; compressedDepth png", data), min_range=0.05)
    assert not valid[0, 0] and np.isnan(d[0, 0])
    assert np.allclose(d[valid], depth[valid], rtol=0.01)


def test_hostile_compressed_images_raise_clear_errors(conv):
    import struct
    # a PNG header declaring 100000 x 100000: rejected from the header, nothing decoded or allocated
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100000, 100000) + bytes(20)
    with pytest.raises(conv.ImageError, match="over the cap") as e:
        conv.compressed_to_rgb(cimg("png", bomb), max_pixels=4096 * 4096)
    assert e.value.reason == "too_large"
    cases = [(cimg("jpeg", b"not an image at all"), "undecodable"),
             (cimg("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40)), "undecodable"),
             (cimg("theora", b"\x89PNG\r\n\x1a\n"), "unsupported_encoding"),
             (cimg("16UC1; compressedDepth png", b"\x89PNG\r\n\x1a\n"), "unsupported_encoding")]
    for m, reason in cases:
        with pytest.raises(conv.ImageError) as e:
            conv.compressed_to_rgb(m)
        assert e.value.reason == reason, (m.format, e.value)
    with pytest.raises(conv.ImageError) as e:
        conv.compressed_depth_to_metres(cimg("16UC1; compressedDepth png", b"\x00" * 8))
    assert e.value.reason == "truncated"
    # a valid header over a corrupt body: the decoder's failure is a clear error too
    body = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 8, 8) + bytes(40)
    with pytest.raises(conv.ImageError) as e:
        conv.compressed_to_rgb(cimg("png", body))
    assert e.value.reason == "undecodable"


def test_a_jpeg_for_the_model_grid_is_decoded_reduced_onto_the_same_grid(conv):
    """A 720p JPEG for a 128 x 96 grid is decoded at a quarter of its size (DCT scaling) and prepares to nearly the same
    model input as the full decode; sizes the reduction would change (not divisible, or smaller than the resize)
    are decoded whole."""
    import cv2
    from trace_anything_ros.pipeline import preprocess_rgb
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3)).astype(np.uint8), (0, 0), 3)
    img[200:500, 300:700] = (250, 40, 10)
    m = cimg("rgb8; jpeg compressed bgr8", cv2.imencode(".jpg", img[:, :, ::-1])[1].tobytes())
    k = conv.jpeg_reduction((720, 1280), (96, 128))
    assert k == 4                                # 320 x 180 still covers the 170 x 96 resize; 160 x 90 would not
    reduced = conv.compressed_to_rgb(m, target=(96, 128))
    assert reduced.shape == (180, 320, 3)
    full = conv.compressed_to_rgb(m)
    assert full.shape == (720, 1280, 3)
    a, b = preprocess_rgb(reduced, (96, 128)), preprocess_rgb(full, (96, 128))
    assert a.shape == b.shape == (96, 128, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 4.0
    assert conv.jpeg_reduction((721, 1280), (96, 128)) == 1          # not divisible: the crop would move
    assert conv.jpeg_reduction((96, 128), (96, 128)) == 1            # no resize at all
    assert conv.jpeg_reduction((480, 640), (96, 128)) == 4           # 160 x 120 still covers the 128 x 96 resize
