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

"""One preprocessing rule (model.preprocess) used on arrival by the pipeline: fast path vs the official PIL rule,
geometry (resize + top-left crop, portrait) of images, depth and intrinsics agree."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from trace_anything_ros.model import preprocess as pp
from trace_anything_ros.pipeline import frame_intrinsics, preprocess_depth, preprocess_rgb

SHARED = pathlib.Path(os.environ.get("TRACE_ANYTHING_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared"))
VIDEO = SHARED / "fixtures" / "trace_anything_parity" / "inputs.npz"

SOURCES = [(480, 640), (576, 768), (720, 1280), (640, 480), (300, 1000), (100, 100)]
TARGETS = [(96, 128), (128, 96), (128, 160), (288, 512), (64, 64)]


def _ramp(h, w):
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([u, v, np.zeros_like(u)], -1)


@pytest.mark.parametrize("src", SOURCES)
@pytest.mark.parametrize("size", TARGETS)
def test_pixel_transform_matches_the_image_geometry(src, size):
    """A linear ramp through the preprocessing stays linear: the output at model pixel p holds M^-1 p."""
    out = pp._apply(_ramp(*src), size, pp._fast_resize)
    assert out.shape[:2] == size
    minv = np.linalg.inv(pp.pixel_transform(src, size))
    H, W = size
    vv, uu = np.mgrid[3:H - 3, 3:W - 3]
    want = np.einsum("ij,jhw->ihw", minv, np.stack([uu, vv, np.ones_like(uu)]).astype(np.float64))
    tol = 0.5 if min(src) < max(size) else 0.1  # upsampling a 100 px source: INTER_AREA interpolates, not a box
    np.testing.assert_allclose(out[3:H - 3, 3:W - 3, 0], want[0], atol=tol)
    np.testing.assert_allclose(out[3:H - 3, 3:W - 3, 1], want[1], atol=tol)


def test_intrinsics_follow_resize_and_crop():
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    # 640x480 -> 128x160: cover on the short side (170x128), crop the left 160 columns
    k2 = frame_intrinsics(k, (480, 640), (128, 160))
    s = 128 / 480
    np.testing.assert_allclose(k2, [[500 * 170 / 640, 0, (319.5 + 0.5) * 170 / 640 - 0.5],
                                    [0, 500 * s, (239.5 + 0.5) * s - 0.5], [0, 0, 1]], rtol=1e-12)
    # a 3D point projects to the same place in the source and (through the mapping) in the model grid
    X = np.array([0.3, -0.2, 2.0])
    p_src = k @ X / X[2]
    p_grid = k2 @ X / X[2]
    np.testing.assert_allclose(pp.pixel_transform((480, 640), (128, 160)) @ p_src, p_grid, atol=1e-9)
    # camera_info of a 1280x960 calibration with 640x480 images (binning): rescaled first
    k_full = k.copy()
    k_full[:2] = (k[:2] + [[0, 0, 0.5], [0, 0, 0.5]]) * 2 - [[0, 0, 0.5], [0, 0, 0.5]]
    k_full[0, 0] = k_full[1, 1] = 1000.0
    np.testing.assert_allclose(frame_intrinsics(k_full, (480, 640), (128, 160), info_hw=(960, 1280)), k2, atol=1e-9)


def test_portrait_target_crop_keeps_right_columns_and_depth_follows():
    rgb = np.zeros((640, 480, 3), np.uint8)   # a portrait camera: 480 wide -> 96, 640 high -> 128 < 160: cover
    rgb[:, -8:] = 255          # a bright right edge survives the portrait crop (right-hand columns kept)
    rgb[:, :8] = 255           # ... the left one does not
    depth = np.full((640, 480), 1.0, np.float32)
    depth[:, -8:] = np.nan
    out = preprocess_rgb(rgb, (160, 96))
    d = preprocess_depth(depth, (160, 96))
    assert out.shape == (160, 96, 3) and d.shape == (160, 96)
    assert out[:, -1].mean() > 200 and out[:, 0].max() == 0
    assert pp.plan((640, 480), (160, 96)) == (True, (160, 120), (96, 160), True)
    np.testing.assert_array_equal(np.isnan(d), out[..., 0] > 127)


def test_fast_resize_close_to_official_pil():
    """The arrival fast path vs the official rule, bounds of the measured differences (see prepare_frame)."""
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    if VIDEO.exists():
        import cv2
        imgs += [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in np.load(VIDEO)["frames_src_uint8"]]
    for img in imgs:
        a = pp.prepare_frame(img, (96, 128), method="fast").astype(int)
        b = pp.prepare_frame(img, (96, 128), method="pil").astype(int)
        d = np.abs(a - b)
        assert d.max() <= 16 and d.mean() <= 0.3, (d.max(), d.mean())
        assert d[2:-2, 2:-2].max() <= 2       # interior: box * box == PIL's triangle for ratio 5
    with pytest.raises(ValueError):
        pp.prepare_frame(imgs[0], (96, 128), method="bogus")


def test_pil_method_is_the_official_rule_bit_for_bit():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (576, 768, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pp.prepare_frame(img, (96, 128)), pp.official_resize_crop(img, 128)[:96, :128])


@pytest.mark.parametrize("src", SOURCES + [(360, 640), (400, 600), (800, 1280), (1080, 1920)])
@pytest.mark.parametrize("target", TARGETS)
def test_crop_fraction_is_what_prepare_frame_leaves_out(src, target):
    """The share of the source the grid does not see, counted on the image itself: a ramp's prepared pixels cover
    exactly the source's kept part."""
    h, w = src
    frac = pp.crop_fraction(src, target)
    rot_in, size, (LH, LW), _ = pp.plan(src, target)
    sh, sw = (w, h) if rot_in else (h, w)
    rw, rh = size if size is not None else (sw, sh)
    assert 0.0 <= frac < 1.0
    assert frac == pytest.approx(1.0 - LW * LH / float(rw * rh), abs=1e-9)
    if rw == LW and rh == LH:
        assert frac == 0.0


@pytest.mark.parametrize("src, grid, most", [((360, 640), (80, 144), 0.02), ((1080, 1920), (80, 144), 0.02),
                                             ((640, 360), (80, 144), 0.02), ((480, 640), (96, 128), 0.0),
                                             ((400, 600), (96, 144), 0.0), ((512, 512), (112, 112), 0.0)])
def test_aspect_grid_sees_the_whole_camera(src, grid, most):
    """A 16:9 camera on the default 4:3 grid loses its right quarter; the aspect grid (same cost within 25 %,
    multiples of 16) sees all but a row of it. A portrait source (9:16) gets the landscape grid of its turn
    (``plan`` turns it, the official rule; the depth-aware network runs on landscape grids only)."""
    g = pp.aspect_grid(src)
    assert g == grid
    assert g[0] % 16 == 0 and g[1] % 16 == 0
    assert 0.75 <= g[0] * g[1] / (96 * 128) <= 1.25
    assert pp.crop_fraction(src, g) <= most
    assert pp.crop_fraction(src, g) <= pp.crop_fraction(src, (96, 128))
    if src == (360, 640):
        assert pp.crop_fraction(src, (96, 128)) == pytest.approx(0.25, abs=0.01)
    assert g[0] <= g[1]
    img = np.full(src + (3,), 7, np.uint8)
    assert pp.prepare_frame(img, g).shape == g + (3,)
