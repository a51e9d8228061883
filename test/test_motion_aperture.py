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

"""A textureless part sliding along itself (the aperture problem) moves with the part it touches.

The synthetic field stands for what an image-based estimator gives a uniformly coloured arm link lifted along its
axis: the link (a tall bar) barely moves, the textured gripper block at its end moves fast. With the analysed
frame's image, ``motion.analyze`` makes them one object moving as the block; where the image would show the block's
motion on the bar (a textured bar, or a motion across the bar's edges) nothing changes."""
import numpy as np
import pytest

from trace_anything_ros.field import synthetic
from trace_anything_ros.motion import MotionParams, analyze
from trace_anything_ros.motion.aperture import aperture_merges

H, W = 48, 64


def _case(block_velocity, bar_texture):
    # the bar leaves the image at the top (an arm link seen up to its joint): no end of it shows its lift
    bar = synthetic.Body(center=(0.0, -0.4, 1.52), half_size=(0.05, 0.5), velocity=(0.0, -0.08, 0.0))
    block = synthetic.Body(center=(0.0, 0.16, 1.5), half_size=(0.1, 0.07), velocity=block_velocity)
    f, truth = synthetic.make_field(synthetic.Scene([bar, block]), num_frames=4, H=H, W=W, duration=0.3)
    import cv2

    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.normal(size=(H, W, 3)).astype(np.float32), (0, 0), 2.0)
    img = np.clip(128 + 60 * noise / noise.std(), 0, 255).astype(np.uint8)     # a textured background
    body = truth.body[-1]
    v, u = np.mgrid[0:H, 0:W]
    img[body == 1] = np.where(((u // 3 + v // 3) % 2 == 0)[body == 1, None], 230, 30)   # checker block
    if bar_texture == "uniform":
        img[body == 0] = (200, 120, 40)
    else:                                                                # stripes across the bar's axis
        img[body == 0] = np.where((v // 2 % 2 == 0)[body == 0, None], 220, 40)
    return f, truth, img


def _owner_counts(res, truth):
    """{object label: set of true bodies covering > 20 % of it}."""
    out = {}
    for o in res.objects:
        sel = res.labels == o.label
        b, c = np.unique(truth.body[-1][sel], return_counts=True)
        out[o.label] = {int(x) for x, n in zip(b, c) if n > 0.2 * c.sum()}
    return out


def test_a_textureless_bar_lifted_with_its_block_moves_with_it():
    f, truth, img = _case((0.0, -0.4, 0.0), "uniform")
    alone = analyze(f, params=MotionParams(aperture_energy=0.0), images=img)
    owners = _owner_counts(alone, truth)
    assert sorted(map(sorted, owners.values())) == [[0], [1]], owners   # without it: two objects, bar and block
    vb = next(o for o in alone.objects if owners[o.label] == {1}).velocity
    res = analyze(f, images=img)
    assert len(res.objects) == 1, _owner_counts(res, truth)
    o = res.objects[0]
    assert np.array_equal(res.mask, alone.mask)                          # the mask is the same, the grouping not
    assert ((res.labels == o.label) == alone.mask).all()
    # the merged object moves as the block (the bar's own near-static curves would have pulled it down)
    assert np.linalg.norm(o.velocity - vb) < 0.1 * np.linalg.norm(vb), (o.velocity, vb)
    disp = o.trajectory[-1] - o.trajectory[0]
    assert disp[1] < -0.1 and abs(disp[0]) < 0.01, disp
    assert len(res.aperture_merges) == 1
    # the published per-pixel positions stay the field's
    assert np.array_equal(res.positions, alone.positions)


@pytest.mark.parametrize("velocity,texture", [((0.0, -0.4, 0.0), "stripes"), ((0.4, 0.0, 0.0), "uniform")])
def test_a_bar_whose_image_would_show_the_motion_keeps_its_own(velocity, texture):
    """Stripes across the bar: a lift would show on it. A sideways block motion: the bar's edges would show it."""
    f, truth, img = _case(velocity, texture)
    res = analyze(f, images=img)
    assert sorted(map(sorted, _owner_counts(res, truth).values())) == [[0], [1]]
    assert res.aperture_merges == {}


def test_aperture_merges_needs_contact_and_a_faster_neighbour():
    f, truth, img = _case((0.0, -0.4, 0.0), "uniform")
    res = analyze(f, params=MotionParams(aperture_energy=0.0))
    from trace_anything_ros.field.evaluate import evaluate_curves
    X = evaluate_curves(f.ctrl_pts[-1], list(res.time_map.frame_times), d_axis=0)
    K = np.asarray(f.intrinsics)
    labels = res.labels
    bar = int(np.bincount(labels[truth.body[-1] == 0]).argmax())
    block = int(np.bincount(labels[truth.body[-1] == 1]).argmax())
    assert aperture_merges(labels, X, 3, img, K, res.threshold) == {bar: block}
    # the block apart from the bar (its pixels moved 10 px down the image): no contact, no merge
    far = np.zeros_like(labels)
    far[labels == bar] = bar
    rows, cols = np.nonzero(labels == block)
    keep = rows + 10 < H
    far[rows[keep] + 10, cols[keep]] = block
    Xf = X.copy()
    Xf[:, rows[keep] + 10, cols[keep]] = X[:, rows[keep], cols[keep]]
    assert aperture_merges(far, Xf, 3, img, K, res.threshold) == {}
    # a neighbour no faster than twice the bar: no merge
    assert aperture_merges(labels, X, 3, img, K, res.threshold, max_energy=0.0) == {}


def _one_object_displacements(velocity, texture):
    """The bar and the block as one object: its pixels, their displacements over the window, the image, K."""
    f, truth, img = _case(velocity, texture)
    from trace_anything_ros.field.evaluate import evaluate_curves
    from trace_anything_ros.field.timemap import build_time_map
    tm = build_time_map(f.stamps, f.frame_times)
    X = evaluate_curves(f.ctrl_pts[-1], list(tm.frame_times), d_axis=0).astype(np.float64)
    sel = truth.body[-1] >= 0
    d = (X[-1] - X[0])[sel]
    return X[-1], sel, d, truth.body[-1][sel], img, np.asarray(f.intrinsics, np.float64)


def test_an_objects_motion_along_its_uniform_part_comes_from_its_textured_part():
    """One object, a uniform bar that barely moves (what the images show of a lifted forearm) and a textured block
    moving fast along the bar's axis: the information-weighted translation is close to the block's, the plain mean
    is pulled toward the bar's."""
    from trace_anything_ros.motion.aperture import translation_gains
    P, sel, d, body, img, K = _one_object_displacements((0.0, -0.4, 0.0), "uniform")
    w = np.full(len(d), 1.0 / len(d))
    G = translation_gains(P, sel, img, K, w)
    assert np.allclose(G.sum(0), np.eye(3), atol=1e-9)
    block = d[body == 1].mean(0)
    plain = w @ d
    weighted = np.einsum("mij,mj->i", G, d)
    assert plain[1] > 0.5 * block[1], (plain, block)                        # the bar dominates the plain mean
    assert weighted[1] < 0.7 * block[1], (weighted, block)                  # the block's motion dominates this one
    # a pure translation of every pixel is returned exactly
    t = np.array([0.03, -0.02, 0.01])
    assert np.allclose(np.einsum("mij,mj->i", G, np.broadcast_to(t, d.shape)), t, atol=1e-12)


def test_a_textured_part_keeps_its_own_motion_in_the_weighted_mean():
    """Stripes across the bar: the images would show a lift on it, so its own slow motion counts as much as the
    block's -- the weighted mean stays between the two (no part is ignored where it can show its motion)."""
    from trace_anything_ros.motion.aperture import translation_gains
    P, sel, d, body, img, K = _one_object_displacements((0.0, -0.4, 0.0), "stripes")
    w = np.full(len(d), 1.0 / len(d))
    weighted = np.einsum("mij,mj->i", translation_gains(P, sel, img, K, w), d)
    block, bar = d[body == 1].mean(0), d[body == 0].mean(0)
    assert block[1] < 0.5 * bar[1] < 0
    assert 0.5 * block[1] < weighted[1] < bar[1], (weighted, bar, block)


def test_analyze_weights_each_objects_motion_only_when_asked():
    """Off (the default), with or without the image: the plain mean. On: the weighted one, which for the block (a
    rigid translation of all its pixels) is the same motion, and for the bar stays its own slow lift."""
    f, truth, img = _case((0.0, -0.4, 0.0), "uniform")
    plain = analyze(f, params=MotionParams(aperture_energy=0.0), images=img)
    none = analyze(f, params=MotionParams(aperture_energy=0.0))
    on = analyze(f, params=MotionParams(aperture_energy=0.0, aperture_weighting=True), images=img)
    assert len(plain.objects) == len(none.objects) == len(on.objects) == 2
    for a, b, c in zip(plain.objects, none.objects, on.objects):
        assert np.allclose(a.trajectory, b.trajectory) and np.allclose(a.velocity, b.velocity)
        assert np.allclose(c.trajectory[-1], a.trajectory[-1])                 # the centroid now is the same
        tol = 0.1 * max(np.linalg.norm(a.velocity), 0.05)
        assert np.linalg.norm(c.velocity - a.velocity) < tol, (a.velocity, c.velocity)
