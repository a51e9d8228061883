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

"""eval/overlay.py: tracks drawn where they project, forecasts in their colour, masks coloured per object id."""
from __future__ import annotations

import numpy as np
import pytest

from trace_anything_ros.eval import overlay as ov


def _scene():
    K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])
    # one moving track: from pixel (40, 60) to (100, 60) at z = 2 over 5 frames, forecast on to (140, 60)
    us = np.linspace(40, 100, 5)
    pos = np.stack([(us - 80) / 100 * 2, np.zeros(5), np.full(5, 2.0)], -1)[None].astype(np.float32)
    fu = np.array([120.0, 140.0])
    fc = np.stack([(fu - 80) / 100 * 2, np.zeros(2), np.full(2, 2.0)], -1)[None].astype(np.float32)
    d = ov.OverlayData(uv=np.array([[100.0, 60.0]], np.float32), positions=pos, forecast=fc,
                       forecast_conf=np.ones((1, 2), np.float32), dynamic=np.array([True]),
                       object_id=np.array([1], np.int32), K=K)
    return d


def test_tracks_and_forecast_drawn_where_they_project():
    rgb = np.full((120, 160, 3), 60, np.uint8)
    d = _scene()
    img = ov.render(rgb, d, legend=False, min_width=160)
    assert img.shape == rgb.shape
    changed = np.abs(img.astype(int) - rgb).sum(-1) > 30
    # along the track (row 60, columns 45..95) almost every pixel is drawn; far from it nothing is
    assert changed[58:63, 45:95].any(axis=0).mean() > 0.9
    assert not changed[100:, :].any() and not changed[:20, :].any()
    # colour by time: the old end is bluish, the new end yellowish
    old = img[58:63, 45:50].reshape(-1, 3).astype(int)
    new = img[58:63, 88:95].reshape(-1, 3).astype(int)
    old = old[np.abs(old - 60).sum(1) > 30].mean(0)
    new = new[np.abs(new - 60).sum(1) > 30].mean(0)
    assert old[2] > old[1] and new[1] > new[2]  # blue > green at the start, green > blue at the end
    # the forecast (dashed magenta) continues past the query pixel: some magenta pixels between 105 and 140
    seg = img[57:64, 105:140].reshape(-1, 3).astype(int)
    magenta = (seg[:, 0] > 150) & (seg[:, 2] > 150) & (seg[:, 1] < 100)
    assert magenta.sum() >= 5
    # dashed: gaps along the forecast line
    row = img[58:63, 105:138].astype(int)
    on = ((row[..., 0] > 150) & (row[..., 2] > 150) & (row[..., 1] < 100)).any(0)
    assert on.any() and not on.all()


def test_anchor_without_intrinsics_uses_fitted_pinhole():
    d = _scene()
    d.K = None
    # give the fit more than one point: a static grid of tracks
    grid_u, grid_v = np.meshgrid(np.arange(10, 160, 30.0), np.arange(10, 120, 30.0))
    uv = np.stack([grid_u.ravel(), grid_v.ravel()], -1)
    z = 2.0
    static = np.stack([(uv[:, 0] - 80) / 100 * z, (uv[:, 1] - 60) / 100 * z, np.full(len(uv), z)], -1)
    d.uv = np.concatenate([d.uv, uv.astype(np.float32)])
    d.positions = np.concatenate([d.positions, np.repeat(static[:, None], 5, 1).astype(np.float32)])
    d.forecast = np.concatenate([d.forecast, np.repeat(static[:, None], 2, 1).astype(np.float32)])
    d.forecast_conf = np.ones((len(d.uv), 2), np.float32)
    d.dynamic = np.array([True] + [False] * len(uv))
    d.object_id = np.array([1] + [-1] * len(uv), np.int32)
    K = ov.fit_pinhole(d.positions[:, -1], d.uv)
    assert K is not None and K[0, 0] == pytest.approx(100, rel=1e-3) and K[1, 2] == pytest.approx(60, abs=0.5)
    rgb = np.full((120, 160, 3), 60, np.uint8)
    img = ov.render(rgb, d, legend=False, min_width=160)
    changed = np.abs(img.astype(int) - rgb).sum(-1) > 30
    assert changed[58:63, 45:95].any(axis=0).mean() > 0.9


def test_mask_colours_per_object_id_and_boxes():
    rgb = np.full((120, 160, 3), 100, np.uint8)
    labels = np.zeros((60, 80), np.uint16)   # model grid, half size: resized nearest to the image
    labels[5:20, 5:20] = 3
    labels[35:55, 50:75] = 7
    d = ov.OverlayData(labels=labels)
    img = ov.render(rgb, d, legend=False, min_width=160)
    a = img[14:36, 14:36].reshape(-1, 3).astype(int)     # inside object 3
    b = img[74:106, 104:146].reshape(-1, 3).astype(int)  # inside object 7
    bg = img[60:70, 10:40].reshape(-1, 3).astype(int)
    assert (np.abs(a - a[0]).max() == 0) and (np.abs(b - b[0]).max() == 0)  # uniform per object
    assert np.abs(a[0] - b[0]).sum() > 60                                   # distinct colours per id
    assert (bg == 100).all()                                                # background untouched
    # the blend goes toward the id colour
    for px, oid in ((a[0], 3), (b[0], 7)):
        c = np.array(ov.id_color(oid))
        expect = 100 * (1 - 0.45) + c * 0.45
        assert np.abs(px - expect).max() <= 2
    assert ov.id_color(3) != ov.id_color(7) and ov.id_color(0) == (0, 0, 0)
    # boxes with ids
    d2 = ov.OverlayData(objects=[ov.ObjectOverlay(7, (50, 40, 30, 30), np.zeros((0, 3)), np.zeros((0, 3)))])
    img2 = ov.render(rgb, d2, legend=False, min_width=160)
    edge = img2[40:70, 50].astype(int)
    assert (np.abs(edge - np.array(ov.id_color(7))).sum(1) < 30).mean() > 0.8


def test_upscale_legend_text_and_video(tmp_path):
    rgb = np.full((60, 80, 3), 30, np.uint8)
    img = ov.render(rgb, _scene(), text_lines=["hello"], min_width=640)
    assert img.shape == (480, 640, 3)
    assert (img[:20, :60] != 30).any()            # text panel top-left
    assert (img[-20:, -100:] != 30).any()         # legend bottom-right
    v = ov.VideoOut(str(tmp_path / "o.mp4"), 5)
    for _ in range(3):
        v.write(img)
    v.close()
    import cv2
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3
    ov.save_png(str(tmp_path / "o.png"), img)
    back = cv2.imread(str(tmp_path / "o.png"))[:, :, ::-1]
    assert np.array_equal(back, img)
