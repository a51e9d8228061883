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

"""The geometric flow field's remembered background (model.flow_field) on real images: a mover that passes slowly
must not drag it along (behind the mover it would then be wrong: a trailing ghost in the mask), a mover present
while it was learnt must not stay in it; and on real video (vtest.avi) the masks stay on the walkers."""
from __future__ import annotations

import numpy as np
import pytest

from trace_anything_ros.eval import clips
from trace_anything_ros.model import flow_field
from trace_anything_ros.model.flow_field import FlowFieldEstimator

SIZE = (96, 128)


def _scene(seed=0):
    """A real photograph (opencv-doc) at the input size, grey, and a real-textured dark patch to move over it."""
    root = clips.data_dir()
    if root is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    img = clips._cover(clips._read("fruits.jpg", root), SIZE[0], SIZE[1], 0)
    tex = clips._cover(clips._read("messi5.jpg", root), 30, 20, 0) * 0.4
    return img.astype(np.float32), tex.astype(np.float32), np.random.default_rng(seed)


def _frame(img, tex, x, rng, noise=2.0):
    f = img.copy()
    if x is not None:
        f[40:70, x:x + 20] = tex
    return np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)


def _feed(est, frames):
    """Every 4-frame window of ``frames`` through the estimator, as a stream (frame keys = indices)."""
    for s in range(len(frames) - 3):
        est.predict(np.stack(frames[s:s + 4]), frame_keys=list(range(s, s + 4)))
    return est._bg


def test_a_slow_mover_does_not_drag_the_remembered_background_along():
    """A patch crosses the view at 1 px per frame (each pixel covered ~20 frames): right after it has passed, the
    background where it was is the scene again (a background that followed the covered pixels by 2 grey levels per
    frame was up to 40 levels off there: the mask showed the patch's trailing ghost)."""
    img, tex, rng = _scene()
    frames = [_frame(img, tex, None, rng) for _ in range(12)]
    frames += [_frame(img, tex, x, rng) for x in range(20, 80)]                # 1 px per frame
    bg = _feed(FlowFieldEstimator(SIZE), frames)
    scene = flow_field._photo(img.astype(np.uint8))        # what the memory holds (colour; grey with COLOUR 0)
    behind = np.s_[40:70, 60:75]                                                # uncovered 4-19 frames ago
    err = flow_field._chan(np.abs(bg - scene))[behind]
    # measured (mean absolute difference over the colour channels): median 1.3, 90th percentile 3 levels (dragged
    # along at 2 levels per frame: 14 and 24)
    assert np.median(err) <= 4.0 and np.percentile(err, 90) <= 12.0, (np.median(err), np.percentile(err, 90))


def test_the_background_a_mover_covers_follows_the_exposure(monkeypatch):
    """A patch crosses the view at 1 px per frame; while it covers columns 60-69, the camera's exposure falls to
    0.7 over 10 frames (auto exposure reacting to a bright mover: a white car entering a parking lot's view darkened
    the asphalt by a third). 5-9 frames after the patch has uncovered them, the background there matches the darker
    scene and none of it is a live mover (``BG_EXPOSURE``: the whole remembered background takes each frame's
    exposure ratio). The control (``BG_EXPOSURE`` off) kept the covered pixels at the old exposure: 35 grey levels
    off, and two thirds of the patch's path behind it held as part of the mover. The stream's own brightening
    (``EXPOSURE``) is off in both: the scene is compared as the estimator saw it."""
    monkeypatch.setattr(flow_field, "EXPOSURE", 0)

    def run(seed):
        img, tex, rng = _scene(seed)
        frames = [_frame(img, tex, None, rng) for _ in range(12)]
        for x in range(20, 76):
            gain = 1.0 - 0.3 * min(max(x - 50, 0), 10) / 10.0
            frames.append(_frame(img * gain, tex * gain, x, rng))
        est = FlowFieldEstimator(SIZE)
        bg = _feed(est, frames)
        scene = flow_field._photo(np.clip(img * 0.7, 0, 255).astype(np.uint8))
        err = flow_field._chan(np.abs(bg - scene))[40:70, 62:70]
        live = est._live[40:70, 55:75].mean() if est._live is not None else 0.0
        return float(np.median(err)), float(np.percentile(err, 90)), float(live)

    for seed in (5, 6):
        # measured: median 1.0, 90th percentile 1.7-2.0, live 0; off: median 35, live 0.63-0.67
        med, p90, live = run(seed)
        assert med <= 4.0 and p90 <= 8.0 and live <= 0.1, (seed, med, p90, live)
    monkeypatch.setattr(flow_field, "BG_EXPOSURE", 0)
    med, p90, live = run(5)
    assert med >= 20.0 and live >= 0.3, (med, p90, live)


def test_a_mover_present_while_the_background_was_learnt_leaves_it():
    """The patch stands still during the first 10 frames (the median learns it), then leaves: within ~15 frames the
    pixels it uncovered, which hold still, are background again."""
    img, tex, rng = _scene(1)
    frames = [_frame(img, tex, 60, rng) for _ in range(12)] + [_frame(img, tex, None, rng) for _ in range(16)]
    bg = _feed(FlowFieldEstimator(SIZE), frames)
    scene = flow_field._photo(img.astype(np.uint8))
    err = flow_field._chan(np.abs(bg - scene))[40:70, 60:80]
    assert np.percentile(err, 90) <= 8.0, np.percentile(err, 90)


@pytest.mark.slow
def test_vtest_masks_stay_on_the_walkers():
    """vtest.avi (real, static camera), first 120 frames, the default estimator and the node's mask rules: against
    OpenCV MOG2 (``eval-video``'s measure, its 2 s warm-up unscored), at least 95 % of the moving pixels lie near
    the reference foreground and 85 % of its person-sized blobs are touched (measured 0.957 / 0.967; 0.975 / 0.906
    before clearly changed pixels followed their flow, ``FOLLOW_K``; with the background dragged along by slow
    walkers 0.894 / 0.906)."""
    import cv2

    from trace_anything_ros.eval.video_reference import agreement_masks
    from trace_anything_ros.io.video import find_vtest, read_video
    from trace_anything_ros.model import regimes
    from trace_anything_ros.pipeline import Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec, \
        preprocess_rgb

    path = find_vtest()
    if path is None:
        pytest.skip("vtest.avi not found (make bootstrap extracts opencv-doc; or set TRACE_ANYTHING_VTEST)")
    est = regimes.create_estimator({"regime": "auto", "weights": None})
    spec = WindowSpec(length=4, stride=1)
    ingest = FrameIngest(spec.ring_capacity(), window=spec)
    pipe = PerceptionPipeline(est, PipelineParams())
    masks = {}
    for f in read_video(path, 120):
        ingest.push(Frame(stamp_ns=f.stamp_ns, rgb=preprocess_rgb(f.rgb, SIZE), frame_id="cam",
                          source_size=f.rgb.shape[:2]))
        win = ingest.take_window(timeout=0.0)
        if win is not None:
            pr = pipe.process(win, {"mask"})
            assert pr.regime == "rgb_static"
            masks[f.stamp_ns] = cv2.resize(pr.mask.astype(np.uint8), (f.rgb.shape[1], f.rgb.shape[0]),
                                           interpolation=cv2.INTER_NEAREST)
    r = agreement_masks(masks, path, per_window=True)
    rows = r.pop("per_window")
    assert r["windows"] >= 90 and len(rows) == r["windows"]
    assert r["precision"] >= 0.95 and r["recall"] >= 0.85, r
    # where the false positives are (eval-video --per-window): the rows add up to the summary, in frame order
    assert [w["frame"] for w in rows] == sorted(w["frame"] for w in rows) and rows[0]["frame"] >= 20
    assert sum(w["fp_px"] for w in rows) == r["false_positive_px"]
    assert r["pixel_weighted_precision"] >= 0.93, r


def _clip_masks(clip):
    """The default estimator and the node's mask rules over a clip, as ``process`` runs them: masks at the clip's
    size, by the stamps ``Clip.write`` gives its frames."""
    import cv2

    from trace_anything_ros.model import regimes
    from trace_anything_ros.pipeline import Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec, \
        preprocess_rgb

    est = regimes.create_estimator({"regime": "auto", "weights": None})
    spec = WindowSpec(length=4, stride=1)
    ingest = FrameIngest(spec.ring_capacity(), window=spec)
    pipe = PerceptionPipeline(est, PipelineParams())
    stamps = 1_000_000_000 + np.arange(len(clip.frames), dtype=np.int64) * int(round(1e9 / clip.fps))
    masks = {}
    for t, rgb in zip(stamps, clip.frames):
        ingest.push(Frame(stamp_ns=int(t), rgb=preprocess_rgb(rgb, SIZE), frame_id="cam", source_size=rgb.shape[:2]))
        win = ingest.take_window(timeout=0.0)
        if win is not None:
            pr = pipe.process(win, {"mask"})
            masks[int(t)] = cv2.resize(pr.mask.astype(np.uint8), (rgb.shape[1], rgb.shape[0]),
                                       interpolation=cv2.INTER_NEAREST)
    return masks, stamps


def test_a_fast_textured_mover_is_segmented_whole(monkeypatch):
    """A hand (a real photograph's texture) sweeps across a real photograph in one second (held-out semi-real clip,
    ``eval.clips`` seed 18): its flow passes the forward-backward check but is too imprecise to explain the pixels
    better than the background does, which left holes inside the hand. Pixels that are clearly not the background
    (``FOLLOW_K``) now follow their flow: against the clip's true masks recall 0.74 -> 0.84 and IoU 0.68 -> 0.74 at
    precision 0.90 -> 0.88 (through ``process``); the same clip with the rule off is the control. Measured with the
    fast movers' fill (``_fill_movers``) off in both, as when the rule was made; with it on as shipped: recall 0.84 ->
    0.89, IoU 0.74 -> 0.77, precision 0.87 -> 0.86 (on vtest's slow walkers the fill does not apply and this rule
    carries the recall)."""
    from trace_anything_ros.eval.clips import make_clip, score_masks

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 18, (240, 320), 60, fps=15.0, split="holdout", sweep_s=1.0)
    monkeypatch.setattr(flow_field, "FILL", 0)
    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    monkeypatch.setattr(flow_field, "FOLLOW_K", float("inf"))
    masks, stamps = _clip_masks(clip)
    off = score_masks(masks, clip.masks, stamps)
    assert on["mover_windows"] >= 15 and on["empty_windows_with_mask"] == 0, on
    assert on["recall"] >= off["recall"] + 0.05 and on["iou"] >= off["iou"] + 0.03, (on, off)
    assert on["precision"] >= 0.8 and on["precision"] >= off["precision"] - 0.05, (on, off)


def _ratio_of_medians(a, b, where=None):
    """The brightness gain before session 12 (the control): the ratio of the two images' medians."""
    if where is not None:
        a, b = a[where], b[where]
    return float(np.median(a)) / max(float(np.median(b)), 1.0)


def test_brightness_gain_is_not_moved_by_a_large_mover():
    """A large uniform mover (a hand close to the lens) shifts the frame's median by itself; the exposure ratio of
    the background must not follow it."""
    rng = np.random.default_rng(3)
    bg = rng.uniform(20, 200, (96, 128, 3)).astype(np.float32)
    frame = bg * 1.1
    frame[20:80, 30:80] = (225.0, 160.0, 120.0)          # 24 % of the frame: a skin-coloured patch
    assert abs(flow_field._gain(frame, bg) - 1.1) < 0.01
    assert abs(_ratio_of_medians(frame, bg) - 1.1) > 0.05   # the case the old rule got wrong
    known = np.zeros((96, 128), bool)
    known[:, :64] = True
    assert abs(flow_field._gain(frame, bg, known) - 1.1) < 0.01
    sat = np.full_like(bg, 250.0)                         # clipped pixels carry no ratio: no crash, neutral
    assert flow_field._gain(sat, sat) == 1.0


def test_the_frame_to_frame_exposure_ratio_is_not_moved_by_a_mover():
    """``_frame_ratio`` (what the remembered background is scaled by, every frame): a bright mover on a quarter of
    the view spreads its pixels' ratios to one side, which moved the plain median (``_gain``) by 0.6 %; refined over
    the pixels the ratio explains, it is within 0.1 %. Two unrelated views give no ratio (1.0)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        scene = rng.uniform(20, 200, (96, 128, 3)).astype(np.float32)
        before = scene + rng.normal(0, 2, scene.shape)
        after = scene * 0.9 + rng.normal(0, 2, scene.shape)
        after[20:80, 30:80] = rng.uniform(150, 240, (60, 50, 3))
        assert abs(flow_field._frame_ratio(after, before) - 0.9) < 0.001
        assert abs(flow_field._gain(after, before) - 0.9) > 0.004       # the plain median: the control
        other = rng.uniform(20, 200, (96, 128, 3)).astype(np.float32)
        assert flow_field._frame_ratio(other, before) == 1.0


def _scores_with_rules_off(monkeypatch, clip, *rules):
    """``(on, off)``: ``eval.clips.score_masks`` of the clip's masks with the defaults, then with the ``flow_field``
    switches ``rules`` set to 0 (the control)."""
    from trace_anything_ros.eval.clips import score_masks

    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    for r in rules:
        monkeypatch.setattr(flow_field, r, 0)
    masks, stamps = _clip_masks(clip)
    return on, score_masks(masks, clip.masks, stamps)


def test_a_large_uniform_hand_leaves_no_ghost(monkeypatch):
    """A skin-coloured, nearly uniform hand (``eval.clips`` ``occluder='skin'``, held-out seed 48) sweeps across a
    real photograph in 1.5 s, covering up to a third of the frame. Its pixels moved the frame's median brightness by
    a third, and the remembered background was scaled with it (the ratio of the medians): the whole scene stopped
    matching it and the hand trailed a ghost as large as itself. With the median of the per-pixel ratios
    (``flow_field._gain``), against the clip's true masks: precision 0.71 -> 0.90, recall 0.64 -> 0.85, IoU 0.48 ->
    0.77; the old rule is the control."""
    from trace_anything_ros.eval.clips import make_clip, score_masks

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 48, (240, 320), 60, fps=15.0, split="holdout", sweep_s=1.5, occluder="skin")
    # a background scaled by a wrong ratio is partly explained as the scene in shadow (``SHADOW``): off, to see
    # this rule alone (with it: precision 0.88 here, 0.86 for the control)
    monkeypatch.setattr(flow_field, "SHADOW", 0)
    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    monkeypatch.setattr(flow_field, "_gain", _ratio_of_medians)
    masks, stamps = _clip_masks(clip)
    off = score_masks(masks, clip.masks, stamps)
    assert on["mover_windows"] >= 20 and on["empty_windows_with_mask"] == 0, on
    assert on["precision"] >= 0.85 and on["precision"] >= off["precision"] + 0.1, (on, off)
    assert on["iou"] >= off["iou"] + 0.15, (on, off)


def test_a_hand_waving_in_place_stays_segmented(monkeypatch):
    """A skin-coloured, nearly uniform hand waves in place for 3 s (``eval.clips`` kind 'wave', held-out seed 65,
    320x240, 15 fps). It stops at every turn and its inside shows no motion: the motion-based mask lost it there,
    and the remembered background absorbed its still inside. A large foreground region that moved within
    ``PERSIST_FRAMES`` stays a mover (``FlowFieldEstimator._live_movers``): against the clip's true masks recall
    0.52 -> 0.62, IoU 0.49 -> 0.59, precision 0.96 -> 0.96; with it off as the control. No mask after it left."""
    from trace_anything_ros.eval.clips import make_clip, score_masks

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("wave", 65, (240, 320), 75, fps=15.0, split="holdout", occluder="skin")
    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    monkeypatch.setattr(flow_field, "PERSIST", 0)
    masks, stamps = _clip_masks(clip)
    off = score_masks(masks, clip.masks, stamps)
    assert on["mover_windows"] >= 50 and on["empty_windows"] >= 10 and on["empty_windows_with_mask"] == 0, on
    assert on["recall"] >= off["recall"] + 0.06 and on["iou"] >= off["iou"] + 0.06, (on, off)
    assert on["precision"] >= 0.9 and on["precision"] >= off["precision"] - 0.02, (on, off)


def test_only_large_recent_movers_persist():
    """``_live_movers``' guards on synthetic maps: a large foreground region that moved recently is live, also
    after it stopped, until ``PERSIST_FRAMES`` have passed; a small one (a walker far away), a region that never
    moved (a ghost, a lighting change) and isolated moving pixels (leaves' jitter) are not."""
    h, w = 96, 128
    est = FlowFieldEstimator((h, w))
    fg = np.zeros((h, w), bool)
    fg[20:70, 30:80] = True            # 20 % of the frame: a hand
    fg[5:12, 100:106] = True           # a small region (0.3 %)
    fg[75:95, 5:60] = True             # a large region that never moves
    disp = np.zeros((h, w))
    disp[20:70, 30:40] = 3.0           # the hand's moving edge
    disp[5:12, 100:106] = 3.0          # the small region moves
    disp[80:95:4, 10:60:4] = 3.0       # isolated jitter in the still region
    est._bg_n = 100
    live = est._live_movers(disp, fg, 1.0)
    assert live[20:70, 30:80].all() and not live[5:12, 100:106].any() and not live[75:95, 5:60].any()
    still = np.zeros((h, w))
    est._bg_n = 100 + flow_field.PERSIST_FRAMES    # the hand stopped: still live ...
    assert est._live_movers(still, fg, 1.0)[20:70, 30:80].all()
    est._bg_n += 1                                 # ... until PERSIST_FRAMES have passed
    assert not est._live_movers(still, fg, 1.0).any()


def test_the_pixels_a_mover_uncovers_are_found_at_its_trailing_edge():
    """``_uncovered``: a dark textured patch moves 3 px to the right over a photograph; the pixels of the newer frame
    that the older one did not show (the backward flow fails its fb check, the image changed) are the 3-px band it
    left, not the scene, nor the patch itself, nor the band it now covers."""
    img, tex, rng = _scene(5)
    a, b = _frame(img, tex, 40, rng), _frame(img, tex, 43, rng)
    pa, pb = flow_field._photo(a), flow_field._photo(b)
    est = FlowFieldEstimator(SIZE)
    unc = flow_field._uncovered(est._pair(flow_field._gray(a), flow_field._gray(b), None, None), pa, pb)
    band = np.zeros(SIZE, bool)
    band[40:70, 40:43] = True
    near = np.zeros(SIZE, bool)
    near[36:74, 36:67] = True         # the patch, before and after, and a margin for the flow's smoothing
    assert unc[band].mean() >= 0.5, unc[band].mean()
    inside = unc[40:70, 46:63].mean()      # the patch, away from its edges
    assert unc[~near].mean() <= 0.002 and inside <= 0.05, (unc[~near].mean(), inside)


def test_what_a_mover_uncovers_is_not_held_as_a_mover(monkeypatch):
    """A dark patch rests over a photograph long enough to be absorbed into the remembered background; meanwhile what
    lies behind it shifts (a shirt's crease under a signer's hands), so when the patch slides off (3 px per frame)
    the uncovered region matches neither the background nor what it showed before. Joined to the moving patch, it
    was held as part of a live mover (``_live_movers``: a third of it, for as long as the patch moved next to it) --
    the ghost of a shirt's print on real signing clips (README). A pixel that a mover uncovered is no longer live
    until it moves itself (``UNCOVER``): at most 10 % of the region; the patch stays live. ``UNCOVER`` off is the
    control."""
    img, tex, rng0 = _scene(4)
    base = img.copy()
    base[:, 30:70] = np.roll(img, 3, axis=1)[:, 30:70]

    def run():
        rng = np.random.default_rng(4)
        frames = [_frame(img, tex, None, rng) for _ in range(12)] + [_frame(img, tex, 40, rng) for _ in range(16)]
        frames += [_frame(base, tex, x, rng) for x in range(40, 100, 3)]
        est = FlowFieldEstimator(SIZE)
        region, patch = [], []
        for s in range(len(frames) - 3):
            est.predict(np.stack(frames[s:s + 4]), frame_keys=list(range(s, s + 4)))
            k, live = s + 3, est._live if est._live is not None else np.zeros(SIZE, bool)
            x = 40 + 3 * (k - 28)
            if 30 <= k <= 38:      # the patch slides off the region it covered, and moves on next to it
                region.append(live[40:70, 40:min(60, x)].mean())
            if k >= 41:
                patch.append(live[40:70, x:x + 20].mean())
        return np.array(region), np.array(patch)

    on_region, on_patch = run()
    monkeypatch.setattr(flow_field, "UNCOVER", 0)
    off_region, _ = run()
    assert on_region.max() <= 0.1 and off_region.mean() >= 0.2, (on_region, off_region)
    assert on_patch.min() >= 0.8, on_patch


def test_a_live_region_is_held_out_of_the_background_for_a_while_only(monkeypatch):
    """Pixels of a live mover's region that hold still (a uniform inside) are not absorbed into the remembered
    background, nor drifted towards, for up to ``PERSIST_HOLD`` still frames; after that they are background like
    any stopped object (a wrong background next to a mover that keeps moving is corrected). ``GHOST`` is off: the
    patch's dark top looks like the dark scene above it, and the ghost rule takes that part (14 % of the patch) for
    uncovered background, as it should (see test_the_background_grows_into_a_ghost_not_into_a_mover_at_rest)."""
    monkeypatch.setattr(flow_field, "GHOST", 0)
    img, tex, rng = _scene(2)
    est = FlowFieldEstimator(SIZE)
    scene = flow_field._photo(img.astype(np.uint8))
    est._remember([flow_field._photo(_frame(img, tex, None, rng)) for _ in range(flow_field.BG_WARM)],
                  list(range(flow_field.BG_WARM)), False)
    live = np.zeros(SIZE, bool)
    live[40:70, 60:80] = True
    key = flow_field.BG_WARM
    for _ in range(flow_field.BG_ABSORB + 5):        # the patch holds still where the region is live
        est._live = live
        est._remember([flow_field._photo(_frame(img, tex, 60, rng))], [key], False)
        key += 1
    err = flow_field._chan(np.abs(est._bg - scene))[live]
    assert np.percentile(err, 90) <= 8.0, np.percentile(err, 90)          # still the scene: not absorbed
    for _ in range(flow_field.PERSIST_HOLD):
        est._live = live
        est._remember([flow_field._photo(_frame(img, tex, 60, rng))], [key], False)
        key += 1
    patch = flow_field._photo(_frame(img, tex, 60, np.random.default_rng(9)))
    err = flow_field._chan(np.abs(est._bg - patch))[live]
    assert np.percentile(err, 90) <= 12.0, np.percentile(err, 90)         # held past PERSIST_HOLD: absorbed


def _wall_stream(est, frames, live=None, start=0):
    """``frames`` into the static camera's remembered background one by one (``live``: the region a live mover
    holds, as ``_live_movers`` would report it)."""
    for k, f in enumerate(frames):
        est._live = live
        est._remember([flow_field._photo(f)], [start + k], False)
    return start + len(frames)


def test_the_background_grows_into_a_ghost_not_into_a_mover_at_rest(monkeypatch):
    """A dark patch stands on a plain wall while the background is learnt, then leaves; the region it uncovered is
    joined to a live mover (held out of the background for ``PERSIST_HOLD`` frames: a person's arm that hung there
    and now waves). The background grows into it from its edge (``GHOST``): within 12 frames the region is the wall
    again; with ``GHOST`` off (the control) it is still the patch. A patch that arrives and rests, live, is not taken
    for a ghost: it does not look like the wall next to it."""
    rng = np.random.default_rng(3)
    wall = clips.plain_wall(SIZE[0], SIZE[1], rng)
    tex = np.full((30, 20, 3), 40.0, np.float32) + rng.normal(0, 6, (30, 20, 3))
    region = np.zeros(SIZE, bool)
    region[40:70, 60:80] = True

    def run():
        est = FlowFieldEstimator(SIZE)
        key = _wall_stream(est, [_frame(wall, tex, 60, rng) for _ in range(flow_field.BG_WARM)])
        _wall_stream(est, [_frame(wall, tex, None, rng) for _ in range(12)], region, key)
        return flow_field._chan(np.abs(est._bg - flow_field._photo(wall.astype(np.uint8))))[region]

    err_on = run()
    monkeypatch.setattr(flow_field, "GHOST", 0)
    err_off = run()
    on90, off50 = np.percentile(err_on, 90), np.median(err_off)
    assert on90 <= 8.0 and off50 >= 40.0, (on90, off50)
    monkeypatch.setattr(flow_field, "GHOST", 1)
    est = FlowFieldEstimator(SIZE)
    key = _wall_stream(est, [_frame(wall, tex, None, rng) for _ in range(flow_field.BG_WARM)])
    _wall_stream(est, [_frame(wall, tex, 60, rng) for _ in range(flow_field.BG_ABSORB + 5)], region, key)
    err = flow_field._chan(np.abs(est._bg - flow_field._photo(wall.astype(np.uint8))))[region]
    assert np.mean(err <= 8.0) >= 0.9, np.mean(err <= 8.0)      # still the wall: the resting patch stays out


def _patch_stops_and_leaves(img, rng, stances):
    """The static camera's remembered background over the scene ``img``, then a patch at x = 60 holding still in
    each of ``stances`` (``(texture, frames)``, in turn), then gone: the background's distance from the scene over
    the patch's pixels just before it left, and in the frame after."""
    scene = flow_field._photo(img.astype(np.uint8))
    est = FlowFieldEstimator(SIZE)
    key = _wall_stream(est, [_frame(img, None, None, rng) for _ in range(flow_field.BG_WARM + 5)])
    for tex, n in stances:
        key = _wall_stream(est, [_frame(img, tex, 60, rng) for _ in range(n)], None, key)
    before = flow_field._chan(np.abs(est._bg - scene))[40:70, 60:80]
    _wall_stream(est, [_frame(img, None, None, rng)], None, key)
    return before, flow_field._chan(np.abs(est._bg - scene))[40:70, 60:80]


def test_a_stopped_mover_that_leaves_gives_back_the_background_it_covered(monkeypatch):
    """A patch stops on a photograph for 25 frames (it becomes background, as a stopped object does) and leaves:
    the very next frame, the pixels it uncovered are the scene again (``BG_ALT``: the background a pixel had
    before it absorbed a stop is kept, and returns when the pixel shows it again -- an arm held still, then
    lowered, no longer leaves the shirt behind it as a ghost). The control (``BG_ALT`` off) still holds the patch.
    ``GHOST`` is off in both: the photograph's texture is what is tested, not the ghost's edge."""
    img, tex, rng = _scene(4)
    monkeypatch.setattr(flow_field, "GHOST", 0)
    absorbed, back = _patch_stops_and_leaves(img, rng, [(tex, 25)])
    monkeypatch.setattr(flow_field, "BG_ALT", 0)
    _, off = _patch_stops_and_leaves(img, rng, [(tex, 25)])
    assert np.median(absorbed) >= 20.0, np.median(absorbed)           # the stopped patch was background
    assert np.percentile(back, 90) <= 8.0 and np.median(off) >= 20.0, (np.percentile(back, 90), np.median(off))


def test_a_mover_absorbed_twice_gives_back_the_oldest_background(monkeypatch):
    """A patch stops on a photograph long enough to be established background (``BG_ALT_AGE`` frames after it was
    absorbed), changes (half as bright again) and holds still again (absorbed again: a person standing at a table
    turns), then leaves: the pixels it covered are the scene again in the very next frame (``BG_ALT_OLDEST``: the
    older background is the one kept). The control (``BG_ALT_OLDEST`` off) kept the patch's first image instead,
    and holds it where the scene was (on a real clip: the wall and table behind a person who stood at it, masked
    with her as she walked off). ``GHOST`` is off: the photograph's texture is what is tested, not the ghost's edge."""
    img, tex, rng = _scene(5)
    monkeypatch.setattr(flow_field, "GHOST", 0)
    stances = [(tex, flow_field.BG_ABSORB + flow_field.BG_ALT_AGE + 5), (tex * 1.5, flow_field.BG_ABSORB + 5)]
    absorbed, back = _patch_stops_and_leaves(img, rng, stances)
    monkeypatch.setattr(flow_field, "BG_ALT_OLDEST", 0)
    _, off = _patch_stops_and_leaves(img, rng, stances)
    assert np.median(absorbed) >= 20.0, np.median(absorbed)           # the changed patch was background
    assert np.percentile(back, 90) <= 8.0 and np.median(off) >= 20.0, (np.percentile(back, 90), np.median(off))


def test_a_stopped_movers_image_grown_over_the_scene_gives_it_back(monkeypatch):
    """A plain dark patch stops on a plain wall and is absorbed; then it reaches 6 px further (an arm put out) and
    holds still: the background grows over the new pixels from the absorbed patch beside them (``_ghosts``: they
    look like their neighbour's background). When the patch leaves, those pixels are the wall again in the very
    next frame: the wall they had was kept (``BG_ALT_OLDEST``: growing a newer background over an older one keeps
    the older). The control (off) holds the patch there, joined to the mover's path as a ghost (on a real clip:
    the wall beside a person who stood at a table; on the ASL clips mean blob precision 0.853 -> 0.864)."""
    rng = np.random.default_rng(6)
    wall = clips.plain_wall(SIZE[0], SIZE[1], rng)
    plain = np.full((30, 26, 3), 40.0, np.float32)

    def frame(width):
        f = wall.copy()
        if width:
            f[40:70, 60:60 + width] = plain[:, :width]
        return np.clip(f + rng.normal(0, 2.0, f.shape), 0, 255).astype(np.uint8)

    def run():
        est = FlowFieldEstimator(SIZE)
        key = _wall_stream(est, [frame(0) for _ in range(flow_field.BG_WARM + 5)])
        key = _wall_stream(est, [frame(20) for _ in range(flow_field.BG_ABSORB + 5)], None, key)
        key = _wall_stream(est, [frame(26) for _ in range(8)], None, key)
        grown = flow_field._chan(np.abs(est._bg - flow_field._photo(wall.astype(np.uint8))))[40:70, 80:86]
        _wall_stream(est, [frame(0)], None, key)
        return grown, flow_field._chan(np.abs(est._bg - flow_field._photo(wall.astype(np.uint8))))[40:70, 80:86]

    grown, back = run()
    monkeypatch.setattr(flow_field, "BG_ALT_OLDEST", 0)
    _, off = run()
    assert np.median(grown) >= 40.0, np.median(grown)                 # the patch grew over them: background
    assert np.percentile(back, 90) <= 8.0 and np.median(off) >= 40.0, (np.percentile(back, 90), np.median(off))


def test_a_fast_blurred_mover_is_filled_in_where_its_flow_fails(monkeypatch):
    """A hand sweeps across in half a second (held-out semi-real clip, ``eval.clips`` seed 32, 15 fps): motion
    blur smears it, its flow fails inside, and the same spot shows the hand in consecutive frames, so its inside was
    held still. Those pixels differ from the remembered background and touch the hand's fast, measured pixels: they
    move with them (``_fill_movers``). Measured against the clip's true masks: recall 0.81 -> 0.93, IoU 0.69 -> 0.73,
    precision 0.83 -> 0.78 (the blur's fringe: the truth is the pixels the hand covers for half the exposure or
    more); the same clip with the rule off is the control. (Before session 13's flicker fix, ``PAIR_GAIN``: recall
    0.64 -> 0.80, IoU 0.58 -> 0.68, precision 0.87 -> 0.84.)"""
    from trace_anything_ros.eval.clips import make_clip, score_masks

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 32, (240, 320), 60, fps=15.0, split="holdout", sweep_s=0.5)
    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    monkeypatch.setattr(flow_field, "FILL", 0)
    masks, stamps = _clip_masks(clip)
    off = score_masks(masks, clip.masks, stamps)
    assert on["mover_windows"] >= 8 and on["empty_windows_with_mask"] == 0, on
    assert on["recall"] >= off["recall"] + 0.06 and on["iou"] >= off["iou"] + 0.04, (on, off)
    assert on["precision"] >= 0.75 and on["precision"] >= off["precision"] - 0.06, (on, off)


def test_fill_leaves_slow_movers_and_regions_without_a_mover_alone():
    """The fill's guards, on one synthetic pair: a foreground region whose only motion is slow (leaves in the
    wind, flow jitter) and one without any moving pixel (a ghost, a stopped object) stay still; a region with a
    fast mover is filled next to it, not far from it, and not where its pixels have shown the same for
    ``FILL_STILL`` frames."""
    h, w = 40, 60
    gv, gu = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = gu.copy(), gv.copy()
    fg = np.zeros((h, w), bool)
    fg[5:15, 5:15] = True                      # region A: slow movers only (1 px over 1 frame)
    u[5:15, 5:8] += 1.0
    fg[5:15, 25:35] = True                     # region B: no mover
    fg[20:35, 10:50] = True                    # region C: fast movers (6 px) in its left part
    u[20:35, 10:20] += 6.0
    still = np.zeros((h, w), np.int32)
    still[20:23, 20:25] = flow_field.FILL_STILL   # next to C's movers, unchanged for a while (an old ghost)
    fu, fv = flow_field._fill_movers(u, v, gu, gv, fg, 1, still)
    assert np.array_equal(fu[0:20], u[0:20]) and np.array_equal(fv, v)
    moved = fu - gu
    assert np.all(moved[23:35, 20:23] > 5.0) and np.all(moved[23:35, 20:23] < 6.0 + 1e-6), moved[23:35, 20:23]
    assert np.all(moved[20:35, 30:50] == 0.0)    # far from the movers: not extrapolated
    assert np.all(moved[20:23, 20:25] == 0.0)    # the old ghost


def _hand_held(seed, n, patch_from, gain=lambda t: 1.0):
    """``n`` frames of a hand-held camera (random walk of a few pixels and a fraction of a degree per frame) over a
    real photograph, a real-textured patch crossing it at 4 px per frame for 12 frames from ``patch_from``, the
    exposure of frame t ``gain(t)``."""
    import cv2
    img, tex, rng = _scene(seed)
    h, w = SIZE
    big = clips._cover(clips._read("fruits.jpg", clips.data_dir()), h, w, 12).astype(np.float32)
    frames, walk = [], np.zeros(3)
    for t in range(n):
        walk += rng.normal(0, 1, 3) * (1.5, 1.5, 0.25)
        walk[:2] = np.clip(walk[:2], -6, 6)
        M = cv2.getRotationMatrix2D((w / 2 + 12, h / 2 + 12), walk[2], 1.0)
        M[:, 2] += (walk[0] - 12, walk[1] - 12)
        f = cv2.warpAffine(big, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) * gain(t)
        if patch_from <= t < patch_from + 12:
            x = 10 + 4 * (t - patch_from)
            f[40:70, x:x + 20] = tex * gain(t)
        frames.append(np.clip(f + rng.normal(0, 2.0, f.shape), 0, 255).astype(np.uint8))
    return frames


def test_a_shaking_camera_remembers_its_background_on_a_canvas():
    """A hand-held camera (random walk of a few pixels and a fraction of a degree per frame) over a real photograph,
    a real-textured patch crossing it: the moving camera's memory, mapped back into the newest frame, is that
    frame's background (not the patch that passed), known over most of the view."""
    import cv2
    h, w = SIZE
    frames = _hand_held(2, 30, 8)
    est = FlowFieldEstimator(SIZE, camera="moving")
    _feed(est, frames)
    st = est._mbg
    assert st is not None and st["key"] == len(frames) - 1
    known = np.where(flow_field._px(st["age"] >= flow_field.BG_WARM, st["bg"]), st["bg"], np.nan).astype(np.float32)
    back = cv2.warpPerspective(known, st["C"], (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(float("nan"),) * 4)
    err = flow_field._chan(np.abs(back - flow_field._photo(frames[-1])))
    ok = np.isfinite(err)
    assert ok.mean() >= 0.8, ok.mean()
    err = err[ok]
    # measured: 90th percentile 4.7 levels; with the camera's motion ignored (identity homographies) 12.8
    assert np.median(err) <= 4.0 and np.percentile(err, 90) <= 8.0, (np.median(err), np.percentile(err, 90))


def test_a_shaking_cameras_canvas_follows_the_exposure(monkeypatch):
    """The hand-held camera of the test above, its exposure falling to 0.7 over 6 frames while the patch crosses:
    the canvas, mapped back into the newest frame, is that frame's background along the patch's path too
    (``BG_EXPOSURE`` on the moving camera's memory). The control (off) left the path 11 grey levels off (median),
    the rest of the view 4. The stream's own brightening (``EXPOSURE``) is off in both."""
    import cv2
    monkeypatch.setattr(flow_field, "EXPOSURE", 0)
    h, w = SIZE

    def run(seed):
        frames = _hand_held(seed, 32, 12, lambda t: 1.0 - 0.3 * min(max(t - 14, 0), 6) / 6.0)
        est = FlowFieldEstimator(SIZE, camera="moving")
        _feed(est, frames)
        st = est._mbg
        known = np.where(flow_field._px(st["age"] >= flow_field.BG_WARM, st["bg"]), st["bg"], np.nan)
        back = cv2.warpPerspective(known.astype(np.float32), st["C"], (w, h),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=(float("nan"),) * 4)
        path = flow_field._chan(np.abs(back - flow_field._photo(frames[-1])))[42:68, 20:70]
        return float(np.nanmedian(path)), float(np.nanpercentile(path, 90))

    for seed in (2, 3):
        med, p90 = run(seed)      # measured: median 1.8-2.2, 90th percentile 5.2-6.0
        assert med <= 4.0 and p90 <= 9.0, (seed, med, p90)
    monkeypatch.setattr(flow_field, "BG_EXPOSURE", 0)
    med, p90 = run(2)             # measured: 10.7, 17.2
    assert med >= 7.0, (med, p90)


def test_exposure_gain_brightens_a_dim_stream_only():
    """``FlowFieldEstimator._exposure``: a normally exposed stream is passed through untouched (the same array); a
    dim one (a photograph at a third of its brightness) is brought to a median grey level of about
    ``EXPOSURE_MEDIAN``; a bright lamp in view (its 99th percentile) limits the gain; a small change of the needed
    gain (a mover entering) keeps the stream's gain, a large one (the lights go on) replaces it; ``clear_cache``
    forgets it."""
    img, _, rng = _scene(3)
    normal = np.stack([_frame(img, None, None, rng) for _ in range(4)])
    est = FlowFieldEstimator(SIZE, camera="static")
    assert est._exposure(normal) is normal and est.last_stats["exposure_gain"] == 1.0
    dim = np.stack([_frame(img * 0.33, None, None, rng) for _ in range(4)])
    g = est._exposure(dim)
    gain = est.last_stats["exposure_gain"]
    assert 2.0 <= gain <= flow_field.EXPOSURE_MAX, gain
    grey = np.stack([flow_field._gray(f) for f in g])
    top = np.percentile(grey, 99)
    assert abs(np.median(grey) - flow_field.EXPOSURE_MEDIAN) < 10 or top >= flow_field.EXPOSURE_TOP - 8, top
    assert np.array_equal(g, np.clip(np.round(dim * gain), 0, 255).astype(np.uint8))
    est._exposure(np.clip(dim * 1.1, 0, 255).astype(np.uint8))          # within the hysteresis: kept
    assert est.last_stats["exposure_gain"] == gain
    est._exposure(normal)                                                # the lights go on: back to 1
    assert est.last_stats["exposure_gain"] == 1.0
    lamp = dim.copy()
    lamp[:, :20, :40] = 230                                              # 6 % of the view is a bright lamp
    est.clear_cache()
    est._exposure(lamp)
    assert est.last_stats["exposure_gain"] == 1.0, est.last_stats        # nothing to gain without clipping it


def test_a_hand_in_a_dim_room_is_segmented(monkeypatch):
    """A skin-coloured hand sweeps across a real photograph lit at 0.3 of a normal exposure (``eval.clips``
    ``brightness=0.3``: the same sensor noise, a third of the signal; held-out seed 78, 320x240, 15 fps). Every
    absolute grey-level constant of the flow field (the background's agreement floor, DIS's matching and its
    smoothing against the data term) sees a third of the contrast, and most of the hand was lost. With the stream's
    exposure gain (``FlowFieldEstimator._exposure``), against the clip's true masks: recall 0.48 -> 0.72, IoU 0.47
    -> 0.67, precision 0.96 -> 0.93; ``EXPOSURE`` off is the control. No mask without the hand."""
    from trace_anything_ros.eval.clips import make_clip, score_masks

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 78, (240, 320), 60, fps=15.0, split="holdout", occluder="skin", brightness=0.3)
    masks, stamps = _clip_masks(clip)
    on = score_masks(masks, clip.masks, stamps)
    monkeypatch.setattr(flow_field, "EXPOSURE", 0)
    masks, stamps = _clip_masks(clip)
    off = score_masks(masks, clip.masks, stamps)
    assert on["mover_windows"] >= 15 and on["empty_windows"] >= 20 and on["empty_windows_with_mask"] == 0, on
    assert on["recall"] >= off["recall"] + 0.15 and on["iou"] >= off["iou"] + 0.12, (on, off)
    assert on["precision"] >= 0.85, (on, off)


def test_flicker_between_two_frames_is_not_taken_for_noise():
    """``_motion_evidence`` compares two frames of the window pixel by pixel, and sets its noise level from their
    median difference. Real cameras flicker (mains light, auto exposure): two frames 8 % apart in brightness differ
    by ~9 grey levels everywhere, which read as noise raised every threshold four-fold, and a hand a quarter darker
    than the scene behind it vanished from that window (masks that blinked off in single windows of a sweep). The
    frames are compared after their global brightness ratio (``PAIR_GAIN``); off is the control."""
    img, _, rng = _scene(5)
    a = _frame(img, None, None, rng)
    hand = np.zeros(img.shape[:2], bool)
    hand[30:70, 40:75] = True
    moved = np.roll(hand, 3, axis=1)
    fi = a.astype(np.float32)
    tone = 0.75 * img[hand].mean(0)                         # a uniform hand, a quarter darker than the scene
    fi[hand] = tone                                         # (the scene darkened in place would be its shadow)
    fj = img.copy()
    fj[moved] = tone
    fj = np.clip(fj * 1.08 + rng.normal(0, 2.0, fj.shape), 0, 255)   # the next frame: 8 % brighter
    gi, gj = (np.clip(x, 0, 255).astype(np.uint8) for x in (fi, fj))
    h, w = hand.shape
    ub, vb = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    uf = ub + 3.0 * hand                                     # the flow: the hand moved 3 px right
    bg = a.astype(np.float32)
    found = {}
    for on in (1, 0):
        flow_field.PAIR_GAIN = on
        try:
            ev, changed, clearly, fg = flow_field._motion_evidence(gi, gj, uf, vb, ub, vb, background=bg)
        finally:
            flow_field.PAIR_GAIN = 1
        found[on] = (fg[hand].mean(), (fg & ~hand).mean())
    assert found[1][0] >= 0.9 and found[1][1] <= 0.01, found
    assert found[0][0] <= found[1][0] - 0.5, found


def test_a_hand_before_a_plain_wall_is_segmented(monkeypatch):
    """A skin-coloured hand sweeps across a painted wall with one poster (``eval.clips`` ``scene='wall'``, seed 102,
    320x240, 15 fps). On the wall DIS regularises noise into smooth flow of several pixels that passes the
    forward/backward check: most consistent pixels "moved", the camera was taken for moving from the first window,
    the remembered background never existed and the hand was lost. With the camera judged on its edges (``EDGES``:
    the flow across them) and a remembered background that holds while its visible textured pixels stay still
    (``BG_HOLDS``), against the clip's true masks: IoU 0.16 -> 0.81, precision 0.24 -> 0.81, windows without the
    hand that kept a mask 5 -> 0 of 33; both off is the control."""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 102, (240, 320), 60, fps=15.0, split="holdout", occluder="skin", scene="wall")
    on, off = _scores_with_rules_off(monkeypatch, clip, "EDGES", "BG_HOLDS")
    assert on["mover_windows"] >= 15 and on["empty_windows"] >= 20 and on["empty_windows_with_mask"] == 0, on
    assert on["iou"] >= 0.7 and on["iou"] >= off["iou"] + 0.3 and on["precision"] >= 0.75, (on, off)


def test_an_arm_raised_from_rest_leaves_no_ghost(monkeypatch):
    """An arm lies along the bottom of the view, still, while the background is learnt, then turns up about its
    wrist and waves there (``eval.clips`` kind 'raise', held-out seed 143, 320x240, 15 fps): a person signing, whose
    arms hung at rest when the recording began (intel-iot-devkit's ASL clips, README). Where it lay, what it
    uncovered differs from the remembered background and, joined to the waving arm, was a live mover: a ghost for
    the rest of the clip. With the background growing into a ghost from its edge (``GHOST``) and a pixel's earlier
    background kept (``BG_ALT``), against the clip's true masks: precision 0.63 -> 0.75, IoU 0.62 -> 0.73; with
    what the arm uncovers no longer live (``UNCOVER``, session 16) 0.79 / 0.77 -- that rule alone takes a part of
    the same ghost (0.73 / 0.72), so all three off is the control. Nothing is published while the arm rests."""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("raise", 143, (240, 320), 60, fps=15.0, split="holdout")
    on, off = _scores_with_rules_off(monkeypatch, clip, "GHOST", "BG_ALT", "UNCOVER")
    assert on["mover_windows"] >= 40 and on["empty_windows"] >= 10 and on["empty_windows_with_mask"] == 0, on
    assert on["precision"] >= 0.7 and on["precision"] >= off["precision"] + 0.07, (on, off)
    assert on["iou"] >= 0.68 and on["iou"] >= off["iou"] + 0.06, (on, off)


def test_an_arm_before_a_blank_wall_is_not_taken_for_the_camera(monkeypatch):
    """A skin-coloured arm rests in view before a nearly blank wall while the background is learnt, then turns up and
    waves (``eval.clips`` kind 'raise', ``scene='wall'``, held-out seed 142). Its edges are most of the view's
    texture: when it starts to move, the flow (and the remembered background's textured pixels, the resting arm's
    among them) say the camera moved, the background was forgotten, and with the arm always in view it never came
    back (IoU 0.03). Kept through up to ``BG_AWAY_WINDOWS`` 'moving' windows, the background holds the camera static
    again as soon as the arm has left its resting place (``_background_holds``), and is taken up only where its
    textured pixels in view still match it (``_background_matches``): IoU 0.03 -> 0.43; ``BG_AWAY`` off is the
    control."""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("raise", 142, (240, 320), 60, fps=15.0, split="holdout", occluder="skin", scene="wall")
    on, off = _scores_with_rules_off(monkeypatch, clip, "BG_AWAY")
    assert on["empty_windows_with_mask"] == 0 and on["iou"] >= 0.35 and on["iou"] >= off["iou"] + 0.25, (on, off)


def _camera_verdicts(frames):
    est = FlowFieldEstimator(SIZE)
    out = []
    for s in range(len(frames) - 3):
        pr = est.predict(np.stack(frames[s:s + 4]), frame_keys=list(range(s, s + 4)),
                         times=np.arange(4, dtype=np.float64) / 15.0)
        out.append(pr.extras["camera"])
    return out


def test_a_plain_wall_is_still_and_a_pan_is_not():
    """The camera judged on its edges: a quiet plain wall (its flow: regularised noise of several pixels) is a
    static camera in every window; a real photograph's view that pans 0.8 px per frame (at the input size) after
    20 still frames is a moving one from the pan's first windows on, although a remembered background exists (it
    must not hold the camera still: ``_background_holds``)."""
    import cv2

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    h, w = SIZE
    wall = clips.make_clip("quiet", 106, (240, 320), 40, split="holdout", scene="wall")
    small = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in wall.frames]
    assert _camera_verdicts(small) == ["static"] * (len(small) - 3)
    wide = clips.make_clip("quiet", 101, (240, 480), 45, split="holdout")
    pan = []
    for t, f in enumerate(wide.frames):
        x = 2 * max(0, t - 20)
        pan.append(cv2.resize(np.ascontiguousarray(f[:, x:x + 320]), (w, h), interpolation=cv2.INTER_AREA))
    cam = _camera_verdicts(pan)
    assert cam[:17] == ["static"] * 17, cam         # windows of frames 0-19
    assert cam[18:].count("moving") >= 0.9 * len(cam[18:]), cam


def _flow_of(H, h, w, rng, sigma):
    """The flow ``[h, w, 2]`` of the homography ``H`` at every pixel, plus Gaussian noise of ``sigma`` px."""
    import cv2
    gv, gu = np.mgrid[0:h, 0:w].astype(np.float32)
    p = np.stack([gu, gv], -1).reshape(1, -1, 2)
    q = cv2.perspectiveTransform(p, H).reshape(h, w, 2)
    return (q - np.stack([gu, gv], -1) + rng.normal(0, sigma, (h, w, 2))).astype(np.float32)


def test_a_sub_pixel_shake_is_a_moving_camera_and_a_slow_mover_is_not(monkeypatch):
    """The camera judged by its still pixels (``background_motion``, ``_jitter``): a view that turns by 0.2 deg and
    shifts by (0.25, -0.15) px between two frames -- a hand-held camera, a robot's mast -- moves every pixel by less
    than ``STATIC_PX``, and the still-pixel test alone took it for static. One similarity explains that shift: it is
    a moving camera, with that transform. A static camera's flow noise, and a slow mover holding 60 % of the view at
    0.4 or 1.5 px per frame (it fits a transform too, but leaves the background's pixels behind), stay static."""
    import cv2
    h, w = SIZE
    rng = np.random.default_rng(3)
    ok = np.ones((h, w), bool)
    shake = cv2.getRotationMatrix2D((w / 2 + 7, h / 2 - 5), 0.2, 1.0)
    shake = np.vstack([shake + [[0, 0, 0.25], [0, 0, -0.15]], [0, 0, 1]])
    fwd = _flow_of(shake, h, w, rng, 0.03)
    assert np.percentile(np.hypot(fwd[..., 0], fwd[..., 1]), 90) < flow_field.STATIC_PX
    H, moving, noise = flow_field.background_motion(fwd, ok)
    corners = np.float32([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]])[None]
    err = np.hypot(*(cv2.perspectiveTransform(corners, H) - cv2.perspectiveTransform(corners, shake))[0].T)
    assert moving and err.max() < 0.05 and noise < 0.05, (moving, err, noise)
    monkeypatch.setattr(flow_field, "JITTER", 0)
    assert not flow_field.background_motion(fwd, ok)[1]          # the control: static without the rule
    monkeypatch.setattr(flow_field, "JITTER", 1)
    # a static camera's flow noise
    assert not flow_field.background_motion(_flow_of(np.eye(3), h, w, rng, 0.05), ok)[1]
    # a slow mover on the left 60 % of the view
    for speed in (0.4, 1.5):
        fwd = _flow_of(np.eye(3), h, w, rng, 0.03)
        fwd[:, :int(0.6 * w)] += (speed, 0.0)
        H, moving, _ = flow_field.background_motion(fwd, ok)
        assert not moving and np.allclose(H, np.eye(3)), (speed, H)


def test_a_hand_before_a_slightly_shaking_camera_is_segmented(monkeypatch):
    """A skin-coloured hand sweeps across a real photograph (``eval.clips`` kind 'shake', held-out seed 169,
    320x240, 15 fps) seen by a hand-held camera that shakes by about a pixel per frame at 320x240 (``shake_px``
    1.0): 0.4 px at the input size, under ``STATIC_PX``. The still-pixel test took most windows for a static
    camera, and the remembered background, compared pixel by pixel with a view shifted by that much, was off at
    every edge: its noise level hid the hand (recall 0.48). With the shake found by the slow pixels' similarity
    transform (``JITTER``), against the clip's true masks: IoU 0.46 -> 0.74; ``JITTER`` off is the control."""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("shake", 169, (240, 320), 60, fps=15.0, split="holdout", occluder="skin", shake_px=1.0)
    on, off = _scores_with_rules_off(monkeypatch, clip, "JITTER")
    assert on["mover_windows"] >= 15 and on["empty_windows_with_mask"] <= 1, on
    assert on["iou"] >= 0.65 and on["iou"] >= off["iou"] + 0.2 and on["precision"] >= 0.85, (on, off)


def _wall_flow(h, w, rng, shake, hand=None):
    """The flow ``[h, w, 2]`` and ``gradient`` of a plain wall with a poster (rows 30-50, columns 90-115): the wall's
    flow is smooth noise of several pixels (DIS regularised over no texture); on the poster's edges the camera's
    ``shake`` (3 x 3) across them and the regularisation's guess along them (1 px noise: the aperture problem);
    ``hand`` (3 x 3): a textured mover over columns 20-60, rows 20-90."""
    import cv2
    img = np.full((h, w), 150.0, np.float32)
    img[30:50, 90:115] = 80.0
    if hand is not None:
        img[20:90, 20:60] = cv2.GaussianBlur(rng.uniform(0, 255, (70, 40)).astype(np.float32), (0, 0), 1.0)
    grad = flow_field.gradient(img)
    mag = np.hypot(grad[..., 0], grad[..., 1])
    fwd = cv2.resize(rng.normal(0, 4.0, (4, 5, 2)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    edge = mag >= flow_field.EDGE_GRAD
    along = np.stack([-grad[..., 1], grad[..., 0]], -1) / np.maximum(mag, 1e-6)[..., None]
    poster = _flow_of(shake, h, w, rng, 0.05) + along * rng.normal(0, 1.0, (h, w, 1))
    fwd[edge] = poster[edge]
    if hand is not None:
        fwd[20:90, 20:60] = _flow_of(hand, h, w, rng, 0.05)[20:90, 20:60]
    return fwd.astype(np.float32), grad


def test_a_poster_on_a_wall_gives_the_camera_motion_and_a_hand_before_it_the_second_one(monkeypatch):
    """A hand-held camera before a plain wall: only a poster's edges show the camera's motion (and only across
    them: along them the flow is a guess), the rest of the flow is noise of several pixels. Fitted on the textured
    pixels by a similarity refined and judged on the flow across the edges (``TEXTURED``, ``SIMILAR``, ``ACROSS``:
    a homography of a small patch extrapolates its perspective terms, fitted to the guesses, to the rest of the
    view), the camera's shake is found within 0.25 px at the view's corners (0.11 here); judged on the full flow
    (a homography: 54 px) or fitted over all consistent pixels (8.5 px), the controls, it is off by more than a
    pixel. With a textured hand on a sixth of the view moving 12 px, RANSAC's first motion is the hand's, and the
    second (``_second_motion``) is the poster's: the candidate that ``_choose_by_canvas`` checks."""
    import cv2
    h, w = SIZE
    rng = np.random.default_rng(5)
    ok = np.ones((h, w), bool)
    shake = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 0.3, 1.0) + [[0, 0, 0.6], [0, 0, -0.4]], [0, 0, 1]])
    corners = np.float32([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]])[None]

    def err(H):     # px: the worst of the view's corners
        d = cv2.perspectiveTransform(corners, H) - cv2.perspectiveTransform(corners, shake)
        return float(np.hypot(*d[0].T).max())

    fwd, grad = _wall_flow(h, w, rng, shake)
    H, moving, noise = flow_field.background_motion(fwd, ok, force="moving", grad=grad)
    assert err(H) < 0.25 and noise < 1.0, (err(H), noise)
    # the controls: judged on the full flow, whose guess along the edges a homography fits best; then also over
    # all consistent pixels (the wall's noise)
    monkeypatch.setattr(flow_field, "ACROSS", 0)
    assert err(flow_field.background_motion(fwd, ok, force="moving", grad=grad)[0]) > 1.0
    for rule in ("TEXTURED", "SIMILAR"):
        monkeypatch.setattr(flow_field, rule, 0)
    assert err(flow_field.background_motion(fwd, ok, force="moving", grad=grad)[0]) > 1.0
    for rule in ("TEXTURED", "SIMILAR", "ACROSS"):
        monkeypatch.setattr(flow_field, rule, 1)
    hand = np.array([[1.0, 0, 12.0], [0, 1.0, -3.0], [0, 0, 1]])
    fwd, grad = _wall_flow(h, w, rng, shake, hand)
    H1 = flow_field.background_motion(fwd, ok, force="moving", grad=grad)[0]
    assert err(H1) > 10, err(H1)                       # the largest consensus: the hand
    H2, noise2 = flow_field._second_motion(flow_field._textured(fwd, ok, grad), H1)
    assert err(H2) < 0.25 and noise2 < 1.0, (err(H2), noise2)


def test_a_hand_before_a_plain_wall_seen_by_a_hand_held_camera_is_segmented(monkeypatch):
    """A hand (a held-out photograph's texture) sweeps across a painted wall with one poster (``eval.clips`` kind
    'shake', ``scene='wall'``, held-out seed 175, 320x240, 15 fps) filmed by a hand-held camera (``shake_px`` 3).
    The camera's motion was fitted over the wall's regularised flow noise (off by several pixels where the shake
    was one), and with the hand in view RANSAC's largest consensus was the hand: it was taken for the background
    and went unmarked (IoU 0.11). Fitted on the textured pixels and checked against the remembered canvas
    (``TEXTURED``, ``SIMILAR``, ``CANVAS_CHOICE``), against the clip's true masks: IoU 0.80; all three off is the
    control."""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("shake", 175, (240, 320), 60, fps=15.0, split="holdout", occluder="photo", scene="wall",
                     shake_px=3.0, sweep_s=1.6)
    on, off = _scores_with_rules_off(monkeypatch, clip, "TEXTURED", "SIMILAR", "CANVAS_CHOICE")
    assert on["mover_windows"] >= 20, on
    assert on["iou"] >= 0.65 and on["iou"] >= off["iou"] + 0.4 and on["recall"] >= 0.8, (on, off)


def test_a_shadow_on_a_textured_background_is_explained_and_a_dark_mover_is_not(monkeypatch):
    """``flow_field._bg_residual``: the remembered background explains a pixel as itself in shadow only where its
    texture is kept. A real photograph (fruits.jpg) darkened to 0.6 with a bluish tint (the shadow of a person or a
    hand: light it blocks) is explained (its residual is the fit's, a few grey levels); a uniform patch of the shadow's
    mean colour (a dark, plain mover) is not, nor a textured mover (another photograph, as dark), nor a uniform dark
    patch over a uniform background (a backlit hand over the sky: nothing there tells it from a shadow). With
    ``SHADOW`` off (the control) the shadow is as far off as the movers."""
    import cv2

    img, _, rng = _scene()
    root = clips.data_dir()
    other = clips._cover(clips._read("messi5.jpg", root), SIZE[0], SIZE[1], 0).astype(np.float32)
    shade = img * np.array([0.62, 0.6, 0.55], np.float32)                       # the shadow: texture kept
    plain = np.broadcast_to(shade.reshape(-1, 3).mean(0), img.shape).astype(np.float32)  # a plain dark mover
    textured = other * (shade.mean() / other.mean())                             # a textured mover, as dark
    sky = np.full_like(img, 200.0)
    noise = rng.normal(0, 2.0, img.shape).astype(np.float32)
    # where the photograph has texture to keep: a mean absolute deviation of 8 grey levels over 5 x 5 (over half
    # of it; its smooth skins are a uniform background)
    tex = cv2.blur(np.abs(img - cv2.blur(img, (5, 5))).mean(-1), (5, 5)) >= 8.0
    tex[:8], tex[-8:], tex[:, :8], tex[:, -8:] = False, False, False, False
    assert tex.mean() > 0.3

    def far(a, b, where=tex):   # fraction of the pixels farther than 10 grey levels from the background
        return float(np.mean(flow_field._bg_residual(a + noise, b)[where] > 10.0))

    assert far(img, img) < 0.01
    assert far(shade, img) < 0.1
    assert far(plain, img) > 0.6 and far(textured, img) > 0.6
    assert far(sky * 0.7, sky, np.ones(SIZE, bool)) > 0.95              # uniform: not explained
    monkeypatch.setattr(flow_field, "SHADOW", 0)
    assert far(shade, img) > 0.6


def test_a_hands_shadow_is_not_segmented_with_it(monkeypatch):
    """A skin-coloured hand sweeps across a real photograph and casts a soft shadow beside it (``eval.clips``
    ``shadow=0.45``: 45 % of the light taken, a little more of the blue; held-out seed 214, not tuned on). Its shadow
    differs from the remembered background by tens of grey levels: joined to the hand, it was held as part of the
    mover and filled in with its motion. With the background explaining a pixel as itself in shadow where its
    texture is kept (``SHADOW``, ``_bg_residual``), against the clip's true masks (the hand only): precision 0.62 ->
    0.80, IoU 0.61 -> 0.78, recall 0.99 -> 0.98; ``SHADOW`` off is the control. (Seeds 206-209 and 210: IoU gains
    0.004-0.14; without a shadow, IoU within 0.000 / +0.013.)"""
    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    clip = make_clip("sweep", 214, (240, 320), 60, fps=15.0, split="holdout", occluder="skin", shadow=0.45)
    on, off = _scores_with_rules_off(monkeypatch, clip, "SHADOW")
    assert on["mover_windows"] >= 15 and on["empty_windows"] >= 20 and on["empty_windows_with_mask"] == 0, on
    assert on["precision"] >= off["precision"] + 0.1 and on["iou"] >= off["iou"] + 0.1, (on, off)
    assert on["recall"] >= off["recall"] - 0.03 and on["iou"] >= 0.7, (on, off)


def test_the_clips_shadow_darkens_the_scene_beside_the_hand_and_not_the_truth():
    """``eval.clips.make_clip(shadow=...)``: the same clip (same draws) with the occluder's shadow: the true masks
    are the same (a shadow is not a mover), the frames are darker only beside the hand, by up to the shadow's
    strength, and identical before it comes in."""
    import cv2

    from trace_anything_ros.eval.clips import make_clip

    if clips.data_dir() is None:
        pytest.skip("opencv-doc sample data not found (make bootstrap extracts it)")
    plain = make_clip("sweep", 214, (120, 160), 30, fps=15.0, split="holdout", occluder="skin")
    shade = make_clip("sweep", 214, (120, 160), 30, fps=15.0, split="holdout", occluder="skin", shadow=0.45)
    assert np.array_equal(plain.masks, shade.masks) and plain.masks.any()
    a, b = plain.frames.astype(np.float32).mean(-1), shade.frames.astype(np.float32).mean(-1)
    darker = (a - b) > 12.0
    # beside the hand, not on it (but at its motion-blurred edge: the mask takes pixels half covered)
    inside = np.stack([cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for m in plain.masks])
    assert darker.sum() > 500 and (darker & inside).sum() < 0.01 * darker.sum()
    assert np.array_equal(plain.frames[:3], shade.frames[:3])     # before the hand (and its shadow) come in
    assert float(np.percentile((a - b)[darker], 99)) <= 0.5 * 255
