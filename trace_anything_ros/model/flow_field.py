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

"""A geometric field estimator: dense optical flow with forward/backward checks, chained over the window, the
camera's motion removed from the static background, lifted to 3D, fitted with the window's B-splines.

No learning, so nothing to generalise: it works on real video as on simulation, within what optical flow can see.
Per window of N frames at the input size:

1. DIS flow between consecutive frames, both directions (``model.geometry.optical_flow``), cached per pair of
   ``frame_keys`` so that overlapping windows of a stream compute each pair once.
2. Ego-motion from the static background, per consecutive pair: RGB only, a homography fitted with RANSAC to the
   forward/backward-consistent flow; when the flow of the background is below ``static_px`` (and the identity
   explains it as well as the homography does) the camera is taken as static and the homography is the identity
   (``camera`` in the prediction's extras: 'static' | 'moving'); so it is where most edges are still across them
   (a plain wall: its flow is regularised noise, only a poster's edges measure anything), and a static camera's
   remembered background holds while its visible textured pixels stay still (a hand before a plain wall drags the
   whole view's flow with it: ``_background_holds``); that background is kept through a few 'moving' windows
   (``BG_AWAY``: a mover holding most of a blank view's texture is taken for the camera when it starts to move) and
   taken up again only where it still matches the view. With depth, camera poses come from the caller
   (odometry) and the 3D chain of ``model.geometry.compute`` is used.
3. Each frame's pixels followed to every other frame of the window through the flows (a broken forward/backward
   check stops the chain: the pixel holds its last position), mapped into the reference (first) frame's image by
   the homographies, and lifted: with measured depth to metric 3D (``metric`` true); RGB only onto a fronto-parallel
   plane at depth 1 (``metric`` false: a scale-free 2.5D field, exact in the image, no depth motion).
4. A cubic B-spline per pixel fitted through its samples at the frames' times (``field.fit``); confidence = the
   fraction of the window the pixel was tracked.
5. Motion only where the images show it (``_motion_evidence``, in colour: a mover as bright as what is behind it
   differs in hue): the flow's position must explain the pixel clearly better than the background's, including a
   background remembered over the stream -- a static camera's in its image (``_remember``), a moving camera's on a
   canvas reached through the chained homographies (``_remember_moving``); each updated per pixel by what the pixel
   shows, so that movers do not enter it and the background they uncover is known (no trailing ghosts). What a
   mover that was there from the start uncovers (a person's arm, at rest when the stream began, raised) grows back
   into the static camera's background from its edge where it looks like the background beside it (``_ghosts``),
   and a pixel keeps the background it had before it absorbed a mover that stopped, to return to it when the
   mover leaves (``BG_ALT``: an arm held still, then lowered). A static
   camera's fast movers are filled in where their flow fails inside them (``_fill_movers``): pixels the remembered
   background does not explain move with the fast movers of their connected region.
6. The measured noise: the robust spread of the background's residual flow (after the homography), reported as
   ``motion_floor`` in extras -- the relative displacement over the window (``motion.mask`` units: displacement /
   depth) that flow noise alone reaches; ``motion.analyze`` uses it as its threshold floor for this field.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..field.camera import backproject_at, default_intrinsics
from ..field.fit import fit_field_from_samples
from .api import FieldPrediction
from .geometry import FB_TOL_PX, FB_TOL_REL, optical_flow

log = logging.getLogger(__name__)

STATIC_PX = 0.5         # flow (px per frame at the input size) below which a pixel is still
STILL_FRAC = 0.3        # the camera is static while at least this fraction of the consistent pixels is still
JITTER = 1              # ... unless the slow pixels shift together: a sub-pixel shake (one similarity transform)
JITTER_PX = 2.0         # ... those pixels: slower than this (px per frame at the input size; fast movers left out)
JITTER_MIN_PX = 0.15    # ... shifted: their median flow above this (px; a static camera's flow noise: 0.005-0.07)
JITTER_RATIO = 0.5      # ... explained: the transform's median residual below this fraction of that flow
JITTER_LEFT = 0.1       # ... and at most this fraction of them still but off the transform (a slow mover's)
TEXTURED = 1            # a moving camera's motion is fitted on the textured pixels (EDGE_GRAD; every other pixel) ...
TEXTURED_MIN = 32       # ... where at least this many (else the grid of all consistent pixels): a wall's flow is noise
SIMILAR = 1             # ... by a similarity where it explains them as well as the homography (_fit_motion) ...
SIMILAR_RATIO = 1.2     # ... within this factor of the homography's median residual
ACROSS = 1              # ... that similarity refined on the flow across the edges (_refine_across) ...
ACROSS_PX = 1.0         # ... of the pixels within this many px of it across their edge
CANVAS_CHOICE = 1       # a moving camera's motion checked against its remembered canvas (_choose_by_canvas) ...
SECOND_PX = 3.0         # ... the second motion: of the textured pixels the first leaves off by more than this (px)
SECOND_FRAC = 0.1       # ... at least this fraction of them
CANVAS_RATIO = 0.6      # ... another motion chosen where it leaves at most this fraction of the first's mismatches
CANVAS_MARGIN = 0.05    # ... and matches at least this fraction more of the canvas's known textured pixels
CANVAS_MIN = 20         # ... judged on at least this many of them (matched by either motion)
CANVAS_SLACK_PX = 1.0   # ... matched: within 2 x BG_AGREE_MIN grey levels plus this many px times the gradient
SAME_MIN_PX = 3.0       # ... a first motion rejected in the pair before is rejected again (a mover): this fast (px)
SAME_PX = 1.0           # ... and alike within this many px (median of 5 points in the view) ...
SAME_REL = 0.3          # ... or this fraction of it
EDGES = 1               # ... or while most consistent pixels on edges are still across them (0: that test off)
EDGE_GRAD = 4.0         # ... edges: grey levels per pixel at the input size
EDGE_STILL_PX = 0.25    # ... still: flow across the edge below this (px per frame at the input size)
MIN_FLOOR_PX = 0.35     # the motion floor never goes below this many pixels over the window
BG_WARM = 10            # frames before the remembered background is used
BG_STEP = 2.0           # remembered background: grey levels per frame it follows the pixels that agree with it
BG_SLOW = 0.5           # ... grey levels per frame it may move where it disagrees (a mover covers it)
BG_ABSORB = 10          # ... frames a disagreeing pixel must hold still to become background
BG_AGREE_K = 3.0        # ... agreement: within this many robust sigmas of the frame's differences
MOVING_BG = 1           # a moving camera remembers its background too (on a canvas, through the homographies)
MOVING_BG_OVERLAP = 0.5  # ... restarted when less than this fraction of the view is still on its canvas
BG_AGREE_MIN = 6.0      # ... and at least this many grey levels
BG_WIN = 1               # px: window of the comparison with the remembered background
BG_ONLY = 0
BG_HOLDS = 1             # a static camera's remembered background that still explains the view overrules the flow
BG_HOLDS_STILL = 0.5     # ... at least this fraction of its textured pixels in view are still in the flow
BG_SEEN_MIN = 0.25       # ... or, with fewer than this fraction of them in view, a mover hides at least
BG_COVERED = 0.3         # ... this fraction of them
BG_TEX_K = 4.0           # ... textured: a 1 px shift changes the pixel by this many noise sigmas (Sobel gradient)
BG_TEX_MIN = 0.01        # ... textured pixels on less than this fraction of the view: it holds
BG_HOLDS_CHANGED = 0.5   # ... never with more than this fraction of the view unlike the background
BG_AWAY = 1              # a static camera's background is kept through 'moving' windows (_remember) ...
BG_AWAY_WINDOWS = 15     # ... at most this many in a row
BG_AWAY_MATCH = 0.5      # ... and taken up again only where this fraction of its textured pixels in view match it
FILL = 1                 # a static camera's fast movers: unmeasured pixels of their foreground move with them
FILL_PX_STEP = 2.0       # ... movers: faster than this many px per frame (input size; slower ones' flow holds)
FILL_FRAC = 0.15         # ... a foreground region with at least this fraction of it moving
FILL_MIN_PX = 8          # ... and at least this many moving pixels
FILL_SIGMA = 2.0         # px: Gaussian reach of the movers' displacement into the unmeasured pixels
FILL_STILL = 4           # ... only pixels that changed within this many frames (not an old ghost in the background)
PERSIST = 1              # a static camera's movers that pause (or show nothing inside) stay movers (_live_movers)
PERSIST_FRAMES = 8       # ... for this many frames after their pixels last moved measurably (a ghost: as long)
PERSIST_FRAC = 0.15      # ... a foreground region with at least this fraction of it moved within that time
PERSIST_MIN_PX = 20      # ... movers: connected moving pixels (3 x 3 opened), at least this many (the mask's min_area)
PERSIST_MIN_FRAC = 0.04  # ... large movers only: a live region covers at least this fraction of the frame
PERSIST_HOLD = 60        # ... a live pixel still for this many frames is absorbed all the same (ghost next to a mover)
UNCOVER = 1              # ... not a pixel a mover uncovered since it last moved itself (what it shows is behind)
BG_EXPOSURE = 1          # the remembered background takes each frame's exposure ratio, where a mover covers it too
RATIO_MAX_RES = 10.0     # ... grey levels: consecutive frames that differ more at the median are not one view
BG_ALT = 1               # a pixel's background before it absorbed a stopped mover is kept, and returns when seen
BG_ALT_AGE = 30          # ... a background held this many frames (not a mover's absorbed and soon replaced)
BG_ALT_OLDEST = 1        # ... the older of the two kept (a mover absorbed twice keeps the background it covers)
SHADOW = 1               # the remembered background explains a pixel as itself in a mover's shadow (_bg_residual)
SHADOW_LO = 0.4          # ... darkened to at least this fraction of its brightness (a dark mover is darker still)
SHADOW_WIN = 5           # px: ... by one factor per channel over this window (the texture under it stays) ...
SHADOW_HUE = 0.15        # ... the three factors within this fraction of their mean of each other
SHADOW_FIT = 0.5         # ... leaving at most this fraction of the window's texture unexplained
GHOST = 1                # the background grows into a ghost (what a mover uncovered) from its edge (_ghosts)
GHOST_STILL = 3          # ... pixels that showed the same for this many frames
GHOST_PX = 2             # ... by up to this many pixels per frame
BOUNDARY_PX = 1          # published motion reaches this far past a small mover's edge (3 x 3 pooled evidence)
CHANGED_K = 2.0          # 'changed': the background's residual above this many times the noise level
FOLLOW_K = 2.0           # 'clearly changed' (x changed's level): a tracked pixel follows its flow (_lift_plane)
COLOUR = 1              # the photometric evidence and the remembered background in colour (0: grey)
EVIDENCE_WIN = 3         # px: window of the photometric motion test
PAIR_GAIN = 1            # ... after the two frames' global brightness ratio (else flicker reads as noise: see there)
NOISE_K = 6.0           # floor = NOISE_K * (background residual noise, px) * sqrt(steps), relative to the focal length
EXPOSURE = 1             # an under-exposed stream is brightened before anything is measured (_exposure)
EXPOSURE_MEDIAN = 110.0  # ... to a median grey level of about this (a normally exposed scene's)
EXPOSURE_TOP = 245.0     # ... without pushing its 99th percentile past this (a lamp, a window: kept unclipped)
EXPOSURE_MAX = 4.0       # ... by at most this factor (the noise grows with it)
EXPOSURE_HYST = 1.25     # ... the stream's gain changes only when the window's differs from it by more than this


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _photo(frame: np.ndarray) -> np.ndarray:
    """The image the photometric evidence compares: colour (float32 [H, W, 3]; a mover as bright as the background
    behind it differs in hue) or grey (``COLOUR`` 0)."""
    return np.ascontiguousarray(frame, dtype=np.float32) if COLOUR else _gray(frame).astype(np.float32)


def _chan(x: np.ndarray) -> np.ndarray:
    """Per-pixel mean over the colour channels of a difference image (grey: itself)."""
    return x.mean(-1) if x.ndim == 3 else x


def _chan_px(x: np.ndarray) -> np.ndarray:
    """``_chan`` for a list of pixels ``[M]`` (grey) or ``[M, 3]`` (colour)."""
    return x.mean(-1) if x.ndim == 2 else x


def _px(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A per-pixel mask broadcastable against ``like`` (grey or colour)."""
    return mask[..., None] if like.ndim == 3 and mask.ndim == 2 else mask


def _gain(a: np.ndarray, b: np.ndarray, where: Optional[np.ndarray] = None) -> float:
    """The global brightness ratio of image ``a`` to image ``b`` (flicker, auto exposure): the median of the
    per-pixel ratios of their brightness (over ``where``; pixels darker than 8 grey levels in ``b``, or clipped at 245
    and above in either image, carry no exposure ratio). Not the ratio of the medians, which a large mover shifts by
    itself: a skin-coloured hand covering a fifth of a photograph moved it by a third, and the whole remembered
    background with it (the scene no longer matched it: ghosts as large as the hand)."""
    ga, gb, ok = _ratio_pixels(a, b, where)
    if not ok.any():
        return 1.0
    return float(np.median(ga[ok] / gb[ok]))


def _ratio_pixels(a: np.ndarray, b: np.ndarray, where: Optional[np.ndarray] = None):
    """``(a, b, ok)``: the two images' brightness (``_chan``) and the pixels that carry an exposure ratio (``_gain``:
    not darker than 8 grey levels in ``b``, not clipped at 245 in either; within ``where``)."""
    ga, gb = _chan(a), _chan(b)
    ok = (gb > 8.0) & (ga < 245.0) & (gb < 245.0)
    if where is not None:
        ok &= where
    return ga, gb, ok


def _frame_ratio(a: np.ndarray, b: np.ndarray, where: Optional[np.ndarray] = None) -> float:
    """The exposure ratio of frame ``a`` to frame ``b`` (the one before it; over ``where``): ``_gain``'s median of
    per-pixel ratios, refined over the pixels it explains (within 3 robust sigmas + 1 grey level), three times, so
    that a mover's pixels, whose ratios spread to one side, do not shift it (a bright patch on a quarter of the view
    moved the plain median by 0.6 %, every frame). 1.0 where the two are not one view at two exposures: fewer than
    half of the usable pixels explained, or their median residual above ``RATIO_MAX_RES`` grey levels."""
    ga, gb, ok = _ratio_pixels(a, b, where)
    n = ok.size if where is None else int(where.sum())
    if n == 0 or ok.sum() < 0.5 * n:
        return 1.0
    sel = ok
    for _ in range(3):
        r = float(np.median(ga[sel] / gb[sel]))
        res = np.abs(ga - r * gb)
        spread = float(np.median(res[ok]))
        sel = ok & (res <= 3.0 * 1.4826 * spread + 1.0)
        if sel.sum() < 0.5 * ok.sum() or spread > RATIO_MAX_RES:
            return 1.0
    return float(np.median(ga[sel] / gb[sel]))


def _remap(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return cv2.remap(img, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def fb_error(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """Forward/backward inconsistency ``[H, W]`` (px) of the forward flow ``fwd`` given the backward ``bwd``."""
    h, w = fwd.shape[:2]
    gu, gv = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    b = _remap(bwd, gu + fwd[..., 0], gv + fwd[..., 1])
    return np.hypot(fwd[..., 0] + b[..., 0], fwd[..., 1] + b[..., 1])


def fb_ok(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    return fb_error(fwd, bwd) <= FB_TOL_PX + FB_TOL_REL * np.hypot(fwd[..., 0], fwd[..., 1])


def _uncovered(pair, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Frame b's pixels that frame a did not show (``pair``: flows a -> b): the backward flow fails its fb check
    there and the image changed clearly (a mover's trailing edge uncovered them; a uniform area's flow noise does not
    change the image)."""
    fwd, bwd, _ = pair
    a, b = np.asarray(ga, np.float32), np.asarray(gb, np.float32)
    d = _chan(np.abs(b - _gain(b, a) * a))
    return ~fb_ok(bwd, fwd) & (d > 3.0 * 1.4826 * float(np.median(d)) + 2.0)


def gradient(image: np.ndarray) -> np.ndarray:
    """The image's grey-level gradient per pixel, ``[H, W, 2]`` float32 (x, y; Sobel 3 x 3 / 8)."""
    g = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    g = np.ascontiguousarray(g, np.float32)
    return np.stack([cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)], -1) / 8.0


def _across(fwd: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The flow's component across the image's edges (px): the only one an edge measures (along it, the flow is
    the regularisation's guess -- on a plain wall, noise of several pixels)."""
    return np.abs(fwd[..., 0] * grad[..., 0] + fwd[..., 1] * grad[..., 1]) / np.maximum(
        np.hypot(grad[..., 0], grad[..., 1]), 1e-6)


def background_motion(fwd: np.ndarray, ok: np.ndarray, static_px: float = STATIC_PX, force: str = "auto",
                      step: int = 4, grad: Optional[np.ndarray] = None) -> Tuple[np.ndarray, bool, float]:
    """``(H 3x3 frame a -> frame b, moving, residual noise px)`` of the static background for the flow ``fwd``.

    ``force``: 'auto' (identity while >= ``STILL_FRAC`` of the consistent pixels move less than ``static_px``, or
    while most consistent pixels on edges -- ``grad``: frame a's ``gradient``, at least ``EDGE_GRAD`` -- move less
    than ``EDGE_STILL_PX`` across them: on a plain wall the consistent pixels' flow is regularised noise of several
    pixels, and only its edges measure anything; but moving where the slow pixels shift together by a similarity:
    a sub-pixel shake, ``_jitter``), 'static' (always the identity) or 'moving' (always the RANSAC motion,
    ``_fit_motion``). With ``grad``, a moving camera's motion is fitted on the textured consistent pixels
    (``TEXTURED``; refined and judged on the flow across the edges, ``ACROSS``): on a plain wall the other pixels'
    flow is regularised noise, and a RANSAC fit of the whole view was off by several pixels where the shake was one.
    The noise is the robust spread (Rayleigh sigma from the median) of the fitted pixels' residual flow under the
    chosen model (the still edge pixels' where only they said 'static') -- movers are a minority of pixels."""
    h, w = fwd.shape[:2]
    gv, gu = np.mgrid[step // 2:h:step, step // 2:w:step]
    sel = ok[gv, gu]
    src = np.stack([gu[sel], gv[sel]], -1).astype(np.float32)
    f = fwd[gv[sel], gu[sel]]
    if src.shape[0] < 8:
        return np.eye(3), False, 0.0
    mag = np.hypot(f[:, 0], f[:, 1])
    identity_res = float(np.median(mag))
    H = np.eye(3)
    moving = False
    # static unless too few pixels are still: a large close mover can hold most of the textured (consistent)
    # pixels, so the median flow is no test; a shaking camera leaves almost none still
    still_frac = float(np.mean(mag <= static_px))
    r = mag
    if grad is not None and force == "auto" and still_frac < STILL_FRAC:
        ev, eu = np.mgrid[0:h:2, 0:w:2]     # every other pixel: a poster's edges are few
        esel = (ok & (np.hypot(grad[..., 0], grad[..., 1]) >= EDGE_GRAD))[ev, eu]
        emag = _across(fwd[ev[esel], eu[esel]], grad[ev[esel], eu[esel]])
        if emag.size < 8:      # no edge in view: nothing could show the camera's motion
            still_frac, r = 1.0, np.zeros(1)
        elif float(np.mean(emag <= EDGE_STILL_PX)) >= 0.5:
            still_frac, r = 1.0, emag[emag <= EDGE_STILL_PX]
    if JITTER and force == "auto" and still_frac >= STILL_FRAC and r is mag:
        Hj = _jitter(src, f, mag)
        if Hj is not None:
            H, moving = Hj, True
    nrm = None
    if TEXTURED and grad is not None and (force == "moving" or (force == "auto" and still_frac < STILL_FRAC)):
        tex = _textured(fwd, ok, grad)
        if tex is not None:
            src, f, nrm = tex
            identity_res = _residual(np.eye(3), src, f, nrm if ACROSS else None)
    if not moving and (force == "moving" or (force == "auto" and still_frac < STILL_FRAC)):
        Hf, res = _fit_motion(src, f, nrm if ACROSS else None)
        if Hf is not None:
            if force == "moving" or res < identity_res:
                H, moving = Hf, True
    if moving:
        r = np.hypot(*(src + f - cv2.perspectiveTransform(src[None], H)[0]).T)
    elif r is mag and force == "auto" and identity_res > static_px:
        # judged static with most pixels moving (a mover, a wall's noise): the still ones' spread (forced static,
        # whatever moves is noise)
        r = mag[mag <= static_px]
    return H, moving, float(np.median(r) / 1.1774)


def _textured(fwd: np.ndarray, ok: np.ndarray, grad: np.ndarray):
    """``(src [M, 2], flow [M, 2], unit gradient [M, 2])`` of the consistent pixels on texture (``EDGE_GRAD``; every
    other pixel), or None where fewer than ``TEXTURED_MIN``."""
    h, w = fwd.shape[:2]
    tv, tu = np.mgrid[0:h:2, 0:w:2]
    mag = np.hypot(grad[..., 0], grad[..., 1])
    tsel = (ok & (mag >= EDGE_GRAD))[tv, tu]
    if int(tsel.sum()) < TEXTURED_MIN:
        return None
    g = grad[tv[tsel], tu[tsel]]
    return (np.stack([tu[tsel], tv[tsel]], -1).astype(np.float32), fwd[tv[tsel], tu[tsel]],
            g / np.maximum(mag[tv[tsel], tu[tsel]], 1e-6)[:, None])


def _fit_motion(src: np.ndarray, f: np.ndarray, nrm: Optional[np.ndarray] = None):
    """(H 3x3, median residual px) of the RANSAC homography of ``src -> src + f``, or the similarity where that
    explains them as well (within ``SIMILAR_RATIO``): a few textured pixels in one part of the view (a poster on a
    wall) leave the homography's perspective terms free, and its extrapolation to the rest of the view is off by
    tens of pixels; (None, inf) where neither could be fitted. With ``nrm`` (the pixels' unit gradients) the
    similarity is refined on the flow across the edges (``_refine_across``) and both are judged there
    (``_residual``)."""
    d = src + f
    best, best_res = None, float("inf")
    Hf, _ = cv2.findHomography(src, d, cv2.RANSAC, 1.0, maxIters=500, confidence=0.99)
    if Hf is not None and np.all(np.isfinite(Hf)):
        best, best_res = Hf, _residual(Hf, src, f, nrm)
    if SIMILAR and src.shape[0] >= 4:
        A, _ = cv2.estimateAffinePartial2D(src, d, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=500,
                                           confidence=0.99)
        if A is not None and np.all(np.isfinite(A)):
            Hs = np.vstack([A, [0.0, 0.0, 1.0]])
            if nrm is not None:
                Hs = _refine_across(Hs, src, f, nrm)
            rs = _residual(Hs, src, f, nrm)
            if best is None or rs <= SIMILAR_RATIO * best_res:
                best, best_res = Hs, rs
    return best, best_res


def _residual(H: np.ndarray, src: np.ndarray, f: np.ndarray, nrm: Optional[np.ndarray] = None) -> float:
    """Median residual (px) of the flow ``f`` at ``src`` under the motion ``H``; with ``nrm`` (unit gradients) across
    the edges only, where the flow is measured (along an edge it is the regularisation's guess, and a homography's
    extra freedom fits that guess better than a similarity does)."""
    e = src + f - cv2.perspectiveTransform(src[None], H)[0]
    return float(np.median(np.abs(np.sum(e * nrm, 1)) if nrm is not None else np.hypot(e[:, 0], e[:, 1])))


def _refine_across(H: np.ndarray, src: np.ndarray, f: np.ndarray, nrm: np.ndarray) -> np.ndarray:
    """The similarity ``H`` refined by robust least squares on the flow across the edges (the normal flow): along a
    straight edge the flow is the regularisation's guess (the aperture problem), and a fit to the full flow of a
    poster's edges misregisters them by a fraction of a pixel. Pixels within ``ACROSS_PX`` of ``H`` across their
    edge; Cauchy weights (0.3 px); a weak pull to ``H`` where the edges leave a direction unmeasured."""
    c = src.mean(0).astype(np.float64)
    x, y = (src - c).T.astype(np.float64)
    nx, ny = nrm[:, 0].astype(np.float64), nrm[:, 1].astype(np.float64)
    # about c: p' - c = [[a, -b], [b, a]] (p - c) + t; unknowns (a - 1, b, tx, ty), linear in the normal flow
    A = np.stack([nx * x + ny * y, ny * x - nx * y, nx, ny], -1)
    t0 = H[:2, :2] @ c + H[:2, 2] - c
    th0 = th = np.array([H[0, 0] - 1.0, H[1, 0], t0[0], t0[1]])
    b = nx * f[:, 0] + ny * f[:, 1]
    use = np.abs(A @ th - b) <= ACROSS_PX
    if use.sum() < TEXTURED_MIN:
        return H
    prior = 1e-2 * np.sqrt(use.sum()) * (np.sqrt(np.mean(A[use] ** 2, 0)) + 1e-9)
    for _ in range(3):
        wgt = np.sqrt(1.0 / (1.0 + ((A[use] @ th - b[use]) / 0.3) ** 2))
        M = np.vstack([A[use] * wgt[:, None], np.diag(prior)])
        th = np.linalg.lstsq(M, np.concatenate([b[use] * wgt, prior * th0]), rcond=None)[0]
    R = np.array([[1.0 + th[0], -th[1]], [th[1], 1.0 + th[0]]])
    out = np.eye(3)
    out[:2, :2] = R
    out[:2, 2] = c + th[2:] - R @ c
    return out if np.all(np.isfinite(out)) else H


def _second_motion(tex, H: np.ndarray):
    """(H 3x3, noise px) of the largest motion among the textured pixels (``tex``: ``_textured``'s, or None) that
    ``H`` leaves unexplained, or None: the background's, where a large textured mover holds most of the textured
    pixels (a hand before a plain wall)."""
    if tex is None:
        return None
    src, f, nrm = tex
    r = np.hypot(*(src + f - cv2.perspectiveTransform(src[None], H)[0]).T)
    out = r > SECOND_PX
    if out.sum() < max(TEXTURED_MIN, SECOND_FRAC * src.shape[0]):
        return None
    H2, _ = _fit_motion(src[out], f[out], nrm[out] if ACROSS else None)
    if H2 is None:
        return None
    r2 = np.hypot(*(src[out] + f[out] - cv2.perspectiveTransform(src[out][None], H2)[0]).T)
    inl = r2 <= 1.0
    if inl.sum() < TEXTURED_MIN:
        return None
    return H2, float(np.median(r2[inl]) / 1.1774)


def _canvas_texture(st):
    """``(gradient magnitude, known textured pixels)`` of the moving camera's canvas ``st``, or None where fewer than
    ``CANVAS_MIN`` of its pixels are known (``BG_WARM``) and textured (``EDGE_GRAD``)."""
    gr = gradient(st["bg"])
    mag = np.hypot(gr[..., 0], gr[..., 1])
    sel = (st["age"] >= BG_WARM) & (mag >= EDGE_GRAD)
    return (mag, sel) if sel.sum() >= CANVAS_MIN else None


def _canvas_match(st, tex, g, C) -> Optional[np.ndarray]:
    """Which of the moving canvas's known, textured pixels (``tex``: ``_canvas_texture(st)``) frame ``g``, mapped by
    ``C`` (frame -> canvas), matches (bool, one per such pixel; out of view: no), or None where ``tex`` is None."""
    if tex is None:
        return None
    mag, sel = tex
    h, w = g.shape[:2]
    gw = cv2.warpPerspective(g.astype(np.float32), C, (w, h), flags=cv2.INTER_LINEAR)
    inview = cv2.warpPerspective(np.ones((h, w), np.float32), C, (w, h), flags=cv2.INTER_LINEAR) > 0.999
    d = _chan(np.abs(gw - st["bg"]))
    return (inview & (d <= 2 * BG_AGREE_MIN + CANVAS_SLACK_PX * mag))[sel]


def _same_motion(A: np.ndarray, B: np.ndarray, h: int, w: int) -> bool:
    """Whether two frame motions move the view's pixels alike (a mover that keeps its pace from frame to frame)."""
    P = np.array([[[w / 2, h / 2], [w / 4, h / 4], [3 * w / 4, h / 4], [w / 4, 3 * h / 4], [3 * w / 4, 3 * h / 4]]],
                 np.float32)
    da = cv2.perspectiveTransform(P, A)[0] - P[0]
    db = cv2.perspectiveTransform(P, B)[0] - P[0]
    dd = float(np.median(np.hypot(*(da - db).T)))
    ma = float(np.median(np.hypot(*da.T)))
    return ma >= SAME_MIN_PX and dd <= max(SAME_PX, SAME_REL * ma)


def _jitter(src: np.ndarray, f: np.ndarray, mag: np.ndarray) -> Optional[np.ndarray]:
    """The motion (3 x 3) of a shaking camera that the still-pixel test took for static, or None. A hand-held camera, a
    robot's mast or a tripod on a vibrating floor shifts the view by about a pixel or less between frames: enough
    pixels count as still, and the remembered background, compared pixel by pixel, is off by that shift. On a
    textured view that is tens of grey levels at every edge, and the background's noise level rose above a hand's
    contrast (held-out shake clips: recall 0.48). The test, on the pixels slower than ``JITTER_PX`` (fast movers
    left out): they shift by more than ``JITTER_MIN_PX`` at the median, and one similarity transform explains that
    shift (its median residual below ``JITTER_RATIO`` of it). A static camera's flow noise is not one transform
    (real static clips: residual / flow 0.9-6, no pair taken). A large slow mover fits one too: it is not taken
    where more than ``JITTER_LEFT`` of those pixels stood still (below ``JITTER_RATIO`` of the shift) and the
    transform moves them -- the background it leaves behind."""
    slow = mag <= JITTER_PX
    if slow.sum() < 8:
        return None
    shift = float(np.median(mag[slow]))
    if shift <= JITTER_MIN_PX:
        return None
    s, d = src[slow], src[slow] + f[slow]
    # a similarity (turn, zoom, shift): a shake of a fraction of a pixel has no measurable perspective, and a
    # homography's perspective terms bend to fit a mover and the background at once
    A, _ = cv2.estimateAffinePartial2D(s, d, method=cv2.RANSAC, ransacReprojThreshold=JITTER_RATIO * shift,
                                       maxIters=500, confidence=0.99)
    if A is None or not np.all(np.isfinite(A)):
        return None
    Hj = np.vstack([A, [0.0, 0.0, 1.0]])
    res = np.hypot(*(d - cv2.perspectiveTransform(s[None], Hj)[0]).T)
    # the transform must also explain the pixels that stood still: a slow mover holding most of them (a person at
    # 1 px per frame close to the lens) fits one too, and leaves the background's pixels behind it
    left = float(np.mean((mag[slow] < JITTER_RATIO * shift) & (res > JITTER_RATIO * shift)))
    return Hj if float(np.median(res)) < JITTER_RATIO * shift and left <= JITTER_LEFT else None


def _motion_evidence(gi: np.ndarray, gj: np.ndarray, uf, vf, ub, vb, win: Optional[int] = None,
                     background=None) -> Tuple[np.ndarray, ...]:
    """``(evidence, changed, clearly, fg)`` ``[H, W]`` bool. evidence: frame i's pixels for which the flow's position in
    frame j explains the image clearly better than the background's (local mean absolute difference over ``win`` x
    ``win``). Where both explain it as well (flow that bled from a mover onto the background next to it, textureless
    areas, noise), the pixel is taken to follow the background: motion must be seen in the images, not only in the
    regularised flow. changed: the background's hypothesis (and the remembered background) is far off -- something
    else is there now; clearly: ``FOLLOW_K`` times farther off (a mover's texture, not the milder difference a ghost
    in the remembered background leaves); fg: the remembered background alone is far off (``CHANGED_K``; all False
    without a remembered background). Frame j is compared at frame i's global brightness (``PAIR_GAIN``): the noise
    level is the pair's median difference, and flicker between the two (mains light, auto exposure: 8 % is ~9 grey
    levels everywhere) read as noise raised every threshold four-fold -- a hand blinked out of single windows.
    ``background``: the remembered background (an image, NaN where not known), its ``_bg_fit`` to frame i, or None."""
    win = int(win or EVIDENCE_WIN)
    a = gi.astype(np.float32)
    fg = None
    b = gj.astype(np.float32)
    if PAIR_GAIN:
        b = b * _gain(a, b)      # the two frames' global brightness (flicker, auto exposure) is not motion
    rf = cv2.blur(_chan(np.abs(a - _remap(b, uf, vf))), (win, win))
    rb = cv2.blur(_chan(np.abs(a - _remap(b, ub, vb))), (win, win))
    tau = 2.0 * float(np.median(rb)) + 2.0   # grey levels: the images' noise (most pixels are background)
    changed_k = CHANGED_K if background is not None else 2 * CHANGED_K
    if background is not None:  # the remembered background explains the pixel too: not moving
        rbg, changed_k = background if isinstance(background, tuple) else _bg_fit(a, background)
        fin = np.isfinite(rbg)
        tau_bg = max(tau, 2.0 * float(np.median(rbg[fin])) + 2.0) if fin.any() else tau  # its own noise level
        fg = rbg > changed_k * tau_bg
        rb = rbg if BG_ONLY else np.minimum(rb, rbg)
    # without a remembered background (start of a stream, a view the moving camera has just uncovered) "changed"
    # also fires where the camera uncovered or sheared the view: it needs more
    if fg is None:
        fg = np.zeros(a.shape[:2], bool)
    return rb > np.maximum(1.5 * rf, rf + tau), rb > changed_k * tau, rb > FOLLOW_K * changed_k * tau, fg


def _bg_fit(a: np.ndarray, background: np.ndarray):
    """``(residual, changed_k)``: frame ``a`` (float) against the remembered background at its global brightness
    (``_bg_residual``), and the 'changed' factor per pixel: ``CHANGED_K``, twice that where a moving camera's
    background is not known (NaN: the view was not seen long enough; residual inf there). The same for every frame
    the pixel is compared with: ``_motion_evidence`` takes it precomputed."""
    known = np.isfinite(background if background.ndim == 2 else background[..., 0])
    if known.all():
        gain = _gain(a, background)   # global brightness changes
        return cv2.blur(_bg_residual(a, gain * background), (int(BG_WIN), int(BG_WIN))), CHANGED_K
    gain = _gain(a, np.where(_px(known, background), background, 0.0), known)
    rbg = np.where(known, _bg_residual(a, gain * np.where(_px(known, a), background, 0.0)), np.inf).astype(np.float32)
    return rbg, np.where(known, CHANGED_K, 2 * CHANGED_K)


def _bg_residual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, how far frame ``a`` is from the remembered background ``b`` (at the frame's brightness; mean over
    the colour channels), where the background also explains a pixel as itself in shadow (``SHADOW``, colour only).
    A mover's shadow on the floor beside it (light it blocks: tens of grey levels over a large soft region) was taken
    for the mover: joined to it, it was held as part of one live mover and filled in with its motion (a person
    walking out of a static camera's view: masks reaching over the floor she shaded). In a shadow the background's
    texture stays and darkens: over the ``SHADOW_WIN`` x ``SHADOW_WIN`` window around the pixel, each channel of
    the frame is the background's times one factor (least squares), between ``SHADOW_LO`` and 1, the three within
    ``SHADOW_HUE`` of each other (the light filling a shadow is bluer), and the fit leaves at most ``SHADOW_FIT`` of
    the window's texture (its mean absolute deviation, darkened) unexplained. Then the residual is the fit's. A
    mover keeps its own texture, or none: a uniform one over a textured background leaves the texture itself as the
    residual (ratio ~1). Over a uniform background (a wall, the sky, a dark trunk) nothing tells a shadow from a
    uniform mover of its hue: it is not explained (tree.avi's dark hand over the trunk was lost with that)."""
    d = _chan(np.abs(a - b))
    if not SHADOW or a.ndim != 3:
        return d
    k = (int(SHADOW_WIN), int(SHADOW_WIN))
    bb = cv2.blur(b * b, k)
    rc = cv2.blur(a * b, k) / np.maximum(bb, 1e-3)                  # [H, W, 3]: per channel
    r = rc.mean(-1)
    res = cv2.blur(_chan(np.abs(a - rc * b)), k)
    tex = cv2.blur(_chan(np.abs(b - cv2.blur(b, k))), k) * r
    shade = (rc.min(-1) >= SHADOW_LO) & (rc.max(-1) <= 1.0) & (rc.max(-1) - rc.min(-1) <= SHADOW_HUE * r) \
        & (res <= SHADOW_FIT * tex)
    return np.where(shade, np.minimum(d, res), d).astype(np.float32)


def _fill_movers(u, v, ub, vb, fg, steps: int, still=None):
    """Frame i's positions ``u, v`` in frame j (``steps`` frames away; ``ub, vb``: the background's hypothesis) with
    the unmeasured inside of fast movers filled in. A fast mover is blurred and often uniform inside: flow fails
    there, and the same spot shows the mover in both frames, so the pair explains it as background and it is held
    still (holes; a blurred hand's palm missed whole). The remembered background does not explain those pixels
    (``fg``). A connected region of such pixels and moving ones (faster than ``FILL_PX_STEP`` px per frame), at
    least ``FILL_FRAC`` of it and ``FILL_MIN_PX`` pixels moving, is one mover: its still pixels near the movers take
    their displacement (Gaussian-weighted, ``FILL_SIGMA``: gaps and holes, up to ~5 px; a large unmeasured inside
    is not extrapolated -- with the region's median there, tree.avi's hand gained recall against MOG2 but fell below
    0.8 precision, the acceptance line, as MOG2 loses that inside). Regions without
    a fast mover (a ghost, a stopped object, a lighting change, leaves in the wind) stay still, and so do pixels that
    have shown the same for ``FILL_STILL`` frames (``still``: the stream's newest frame; an old ghost next to a
    mover)."""
    du, dv = u - ub, v - vb
    mov = np.hypot(du, dv) > max(1.0, FILL_PX_STEP * steps)
    cand = fg & ~mov
    if still is not None and still.shape == cand.shape:
        cand &= still < FILL_STILL
    if not cand.any() or not mov.any():
        return u, v
    nlab, lab = cv2.connectedComponents((cand | mov).astype(np.uint8), connectivity=8)
    nm = np.bincount(lab[mov], minlength=nlab)
    tot = np.bincount(lab.ravel(), minlength=nlab)
    ok = (nm >= FILL_MIN_PX) & (nm >= FILL_FRAC * tot)
    ok[0] = False
    if not ok.any():
        return u, v
    src = (mov & ok[lab]).astype(np.float32)
    den = cv2.GaussianBlur(src, (0, 0), FILL_SIGMA)
    nu = cv2.GaussianBlur((du * src).astype(np.float32), (0, 0), FILL_SIGMA)
    nv = cv2.GaussianBlur((dv * src).astype(np.float32), (0, 0), FILL_SIGMA)
    tgt = cand & ok[lab] & (den > 1e-3)   # within ~2.7 FILL_SIGMA of a mover: motion is not carried farther
    fu, fv = np.zeros_like(u), np.zeros_like(v)
    fu[tgt], fv[tgt] = nu[tgt] / den[tgt], nv[tgt] / den[tgt]
    return np.where(tgt, ub + fu, u), np.where(tgt, vb + fv, v)


class FlowFieldEstimator:
    """The geometric estimator (see the module docstring). ``camera``: 'auto' | 'static' | 'moving' (RGB only:
    how the background's motion is modelled). ``needs_intrinsics``: it receives K, the frames' times and, where
    known, camera poses (used with depth)."""

    needs_intrinsics = True

    def __init__(self, input_size: Tuple[int, int] = (96, 128), num_ctrl: int = 10, camera: str = "auto",
                 cache_size: int = 128, smooth: float = 1e-6, static_px: float = STATIC_PX):
        if camera not in ("auto", "static", "moving"):
            raise ValueError(f"camera must be auto, static or moving, got {camera!r}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_ctrl = int(num_ctrl)
        self.camera = camera
        self.smooth = float(smooth)
        self.static_px = float(static_px)
        self.cache_size = int(cache_size)
        self._flows: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._bg, self._bg_n, self._bg_key = None, 0, None
        self._away = 0       # 'moving' windows in a row while a static camera's background is kept (BG_AWAY)
        self._moved_at, self._live = None, None
        self._expo = None
        self._hold = None    # (flow noise px, image noise grey levels) when the camera was last seen static
        self._chosen: "OrderedDict[tuple, Optional[tuple]]" = OrderedDict()   # _choose_by_canvas, per key pair
        self._last_noise = None
        self.last_stats: Dict[str, float] = {}
        self.description = f"geometric flow field (DIS, fb-checked, camera {camera})"

    # -- flows ------------------------------------------------------------------------------------------------
    def _pair(self, ga, gb, ka, kb):
        """(fwd a->b, bwd b->a, fb-consistent mask of fwd), cached under (ka, kb) when both keys are given."""
        key = (ka, kb) if ka is not None and kb is not None else None
        if key is not None and key in self._flows:
            self._flows.move_to_end(key)
            self.last_stats["flow_hits"] = self.last_stats.get("flow_hits", 0) + 1
            return self._flows[key]
        fwd = optical_flow(ga, gb)
        bwd = optical_flow(gb, ga)
        out = (fwd, bwd, fb_ok(fwd, bwd))
        if key is not None and self.cache_size > 0:
            self._flows[key] = out
            while len(self._flows) > self.cache_size:
                self._flows.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        self._flows.clear()
        self._bg, self._bg_n, self._bg_key, self._away = None, 0, None, 0
        self._moved_at, self._live = None, None
        self._mbg = None
        self._chosen.clear()
        self._last_noise = None
        self._expo = None
        self._hold = None

    def _exposure(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` brightened by the stream's exposure gain (``EXPOSURE``; 1 for a normally exposed stream).

        Every threshold downstream is either relative to the measured noise or an absolute grey level tuned on
        normally exposed images (the background's agreement floor, DIS's patch matching and its variational
        refinement, whose data term shrinks with the square of the contrast). A dim room at a fixed exposure gives
        a third of the contrast: a skin-coloured hand then differs from the fruit behind it by less than the floors,
        and the flow smooths it away. So the window's median grey level is brought to ``EXPOSURE_MEDIAN`` (its 99th
        percentile kept below ``EXPOSURE_TOP``, at most ``EXPOSURE_MAX``x, never darkened, a stream that needs less
        than ``EXPOSURE_HYST`` left as it is) -- one gain per stream,
        changed only when a window needs one more than ``EXPOSURE_HYST`` away from it (a mover entering shifts the
        median; the remembered background follows smaller changes through its brightness ratio, ``_gain``)."""
        if not EXPOSURE:
            return frames
        g = _gray(frames[-1]) if len(frames) == 1 else cv2.cvtColor(
            np.ascontiguousarray(frames[:: max(1, len(frames) // 3)].reshape(-1, frames.shape[2], 3)),
            cv2.COLOR_RGB2GRAY)
        med, top = (float(x) for x in np.percentile(g, (50, 99)))
        want = float(np.clip(min(EXPOSURE_MEDIAN / max(med, 1.0), EXPOSURE_TOP / max(top, 1.0)), 1.0, EXPOSURE_MAX))
        want = want if want >= EXPOSURE_HYST else 1.0      # within that of normal: left as it is
        if self._expo is None or max(want / self._expo, self._expo / want) > EXPOSURE_HYST:
            self._expo = want
        self.last_stats["exposure_gain"] = self._expo
        if self._expo == 1.0:
            return frames
        lut = np.clip(np.round(np.arange(256) * self._expo), 0, 255).astype(np.uint8)
        return lut[frames]

    def _remember(self, gray, keys, moving: bool):
        """The static camera's background (grey, input size) remembered over the stream, updated with this window's
        new frames (by ``frame_keys``; none: no memory): the median of the first ``BG_WARM`` frames, then updated per
        pixel by what the pixel shows (``_bg_update``). Not updated while the camera is taken for moving, and
        forgotten after ``BG_AWAY_WINDOWS`` such windows in a row, when the camera is static again but the view no
        longer matches it (``_background_matches``: it did move), or when the keys restart. None until ``BG_WARM``
        frames were seen."""
        if keys is None or any(k is None for k in keys) or moving:
            if moving:
                # kept (not updated) through a few 'moving' windows: a mover that holds most of a nearly blank
                # view's texture (an arm in view from the start) is taken for the camera when it starts to move
                self._away += 1
                if not BG_AWAY or self._bg is None or self._bg_n < BG_WARM or self._away > BG_AWAY_WINDOWS:
                    self._bg, self._bg_n, self._bg_key, self._away = None, 0, None, 0
            return None
        if self._bg_key is not None and keys[-1] < self._bg_key:
            self._bg, self._bg_n, self._bg_key = None, 0, None
        if self._away and self._bg is not None and not self._background_matches(gray[-1].astype(np.float32)):
            self._bg, self._bg_n, self._bg_key = None, 0, None    # back static elsewhere: the camera did move
        self._away = 0
        for g, k in zip(gray, keys):
            if self._bg_key is not None and k <= self._bg_key:
                continue
            g = g.astype(np.float32)
            if self._bg is None or self._bg.shape != g.shape:
                self._bg, self._bg_n, self._bg_first = g.copy(), 1, [g]
                self._bg_prev, self._bg_still = g, np.zeros(g.shape[:2], np.int32)
                self._bg_alt = np.full_like(g, np.nan)   # the background a pixel had before it absorbed a stop
                # when (``_bg_n``) the pixel's background, and the one it keeps, began (the start: one learnt then)
                self._bg_since = np.full(g.shape[:2], -(1 << 40), np.int64)
                self._alt_since = np.full(g.shape[:2], 1 << 40, np.int64)    # none kept: later than any
                self._ghost_ref = np.full_like(g, np.nan)   # the background value a ghost's pixel was grown from
            elif self._bg_n < BG_WARM:
                self._bg_n += 1
                self._bg_first.append(g)
                self._bg = np.median(np.stack(self._bg_first), axis=0)   # movers pass, the median stays
                if self._bg_n == BG_WARM:
                    self._bg_first = []
                self._bg_track_still(g)
            else:
                self._bg_n += 1
                self._bg_update(g)
            self._bg_key = k
        return self._bg if self._bg_n >= BG_WARM else None

    def _background_holds(self, gray, keys, pairs) -> bool:
        """Whether a static camera's remembered background still holds although the flow says the camera moved:
        the background's textured pixels in view (not where a mover covers them, nor within 3 pixels of it: the
        regularised flow bleeds) are still in the newest pair's flow across their edges (at least
        ``BG_HOLDS_STILL`` of them move less than ``EDGE_STILL_PX``), or, with fewer than ``BG_SEEN_MIN`` of them
        in view (next to a fast mover they take up its dragged flow), a mover hides the texture (at least
        ``BG_COVERED`` of the textured pixels lie where the untextured ones around them do not match the background
        either; a camera's motion changes only the textured ones). Textured: Sobel
        gradient of at least ``BG_TEX_K`` noise sigmas per pixel, the noise (grey levels) measured against the
        background in the last window the camera was seen static; a match: within 3 sigmas + 2 grey levels at the
        global brightness ratio. A view with textured pixels on less than ``BG_TEX_MIN`` of it shows no camera
        motion: it holds; a view that matches the background on less than half of it (``BG_HOLDS_CHANGED``) does
        not. False without a background (start of a stream, a camera that moved, keys restarting).
        Selecting the pixels by whether they match the background would keep a pan static: those that still match
        after a shift are the ones whose edges lie along it, and their flow across is ~0."""
        bg = self._bg
        if bg is None or self._bg_n < BG_WARM or keys is None or any(k is None for k in keys) \
                or (self._bg_key is not None and keys[-1] < self._bg_key) or gray[-2].shape != bg.shape \
                or self._hold is None or self._hold[1] is None:
            return False
        gxy, d, tex, tol, covered = self._bg_view(gray[-2])
        if float(np.mean(d > tol)) > BG_HOLDS_CHANGED:
            return False     # the view is no longer the remembered one (a camera panning off a plain wall)
        if tex.mean() < BG_TEX_MIN:
            return True
        fwd, _, ok = pairs[-1]
        # (and keep clear of it: the regularised flow bleeds a few pixels from a mover)
        seen = tex & ~cv2.dilate(covered.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ok
        if seen.sum() >= 8:
            still = float(np.mean(_across(fwd, gxy)[seen] <= EDGE_STILL_PX)) >= BG_HOLDS_STILL
            if still or seen.sum() >= BG_SEEN_MIN * tex.sum():
                return still
        # few in view (next to a mover, they take up its dragged flow): it holds where a mover hides the texture
        return float(covered[tex].mean()) >= BG_COVERED

    def _bg_view(self, g):
        """The frame ``g`` against the static camera's remembered background: ``(gradient of the background, the
        difference d, its textured pixels, the tolerance of a match, the pixels a mover covers)``. Textured: Sobel
        gradient of at least ``BG_TEX_K`` noise sigmas per pixel, the noise (grey levels) measured against the
        background in the last window the camera was seen static; a match: within 3 sigmas + 2 grey levels at the
        global brightness ratio. Covered: where a mover covers the texture, the untextured pixels around it do not
        match the background either (a camera's motion changes the textured ones only)."""
        bg = self._bg
        gxy = gradient(_chan(bg))
        d = _chan(np.abs(g - _gain(g, bg) * bg))
        sigma = max(self._hold[1], 1.0)      # measured while the camera was seen static
        tex = np.hypot(gxy[..., 0], gxy[..., 1]) >= BG_TEX_K * sigma
        tol = 3.0 * sigma + 2.0
        plain = (~tex).astype(np.float32)
        near = cv2.blur(plain, (9, 9))
        covered = (cv2.blur(plain * (d > tol), (9, 9)) >= 0.5 * np.maximum(near, 1e-6)) & (near >= 0.25)
        return gxy, d, tex, tol, covered

    def _background_matches(self, g) -> bool:
        """Whether the remembered background still explains the view after windows the flow called 'moving'
        (``BG_AWAY``): at least ``BG_AWAY_MATCH`` of its textured pixels in view (``_bg_view``) match it. A camera
        that moved and stopped leaves them off by its motion; a mover that was taken for the camera covers some,
        and the rest match. A view with too little texture in sight cannot tell: it matches."""
        if self._hold is None or self._hold[1] is None or g.shape != self._bg.shape:
            return False
        _, d, tex, tol, covered = self._bg_view(g)
        seen = tex & ~cv2.dilate(covered.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        if float(np.mean(d > tol)) > BG_HOLDS_CHANGED:
            return False
        if seen.sum() < 8 or tex.mean() < BG_TEX_MIN:
            return True
        return float(np.mean(d[seen] <= tol)) >= BG_AWAY_MATCH

    def _bg_track_still(self, g):
        """Count, per pixel, the frames for which it has stayed as it is (within the images' noise): a pixel that
        holds still for ``BG_ABSORB`` frames shows the background (or an object that stopped: background too)."""
        d = _chan(np.abs(g - self._bg_prev * _gain(g, self._bg_prev)))
        tol = max(BG_AGREE_MIN, BG_AGREE_K * 1.4826 * float(np.median(d)))
        self._bg_still = np.where(d <= tol, self._bg_still + 1, 0)
        self._bg_prev = g
        return tol

    def _bg_update(self, g):
        """One frame into the remembered background, by what each pixel shows: where it agrees with the background
        (within the images' noise) it follows by up to ``BG_STEP`` grey levels (an approximate running median:
        noise, lighting); where it does not (a mover covers it) it moves at most ``BG_SLOW``, so a mover that passes
        slowly does not drag the background along (behind it the background would then be wrong: a trailing ghost);
        where a pixel has held still for ``BG_ABSORB`` frames while disagreeing (a mover that was there when the
        background was learnt and left, an object that stopped) it becomes the background."""
        if BG_EXPOSURE:
            self._follow_exposure(g)
        still_tol = self._bg_track_still(g)
        gain = _gain(g, self._bg)   # global brightness (flicker)
        dn = _chan(np.abs(g - gain * self._bg))
        tol = max(still_tol, BG_AGREE_K * 1.4826 * float(np.median(dn)))
        agree = dn <= tol
        if BG_ALT:
            # a pixel showing again what it showed before a stopped mover was absorbed there (an arm held still,
            # then lowered: the shirt behind it) returns to that background, and keeps the mover's as the other
            alt = self._bg_alt
            ys, xs = np.nonzero(~agree & np.isfinite(_chan(alt)))      # few pixels: compared sparsely
            back = _chan_px(np.abs(g[ys, xs] - gain * alt[ys, xs])) <= tol
            if back.any():
                ys, xs = ys[back], xs[back]
                was = self._bg[ys, xs].copy()
                self._bg[ys, xs] = alt[ys, xs]
                alt[ys, xs] = was
                since = self._bg_since[ys, xs].copy()
                self._bg_since[ys, xs] = self._alt_since[ys, xs]
                self._alt_since[ys, xs] = since
                self._ghost_ref[ys, xs] = np.nan
                agree[ys, xs] = True
        d = g - self._bg
        step = np.where(_px(agree, d), np.clip(d, -BG_STEP, BG_STEP), np.clip(d, -BG_SLOW, BG_SLOW))
        absorb = ~agree & (self._bg_still >= BG_ABSORB)
        if self._live is not None and self._live.shape == absorb.shape:
            # a live mover's region (its uniform inside, a short pause) is not background: neither absorbed nor
            # drifted towards (a hand waving for seconds would otherwise leave its colour behind when it goes) --
            # for PERSIST_HOLD still frames: a wrong background next to a mover that keeps moving (a person present
            # while it was learnt) would otherwise never be corrected
            hold = self._live & (self._bg_still < PERSIST_HOLD)
            absorb &= ~hold
            step = np.where(_px(hold & ~agree, step), 0.0, step)
        self._bg += step
        if BG_ALT:
            self._keep_alt(absorb, self._bg_n)
        self._bg[absorb] = g[absorb]
        self._ghost_ref[absorb] = np.nan
        if GHOST:
            self._ghosts(g, agree | absorb, tol)

    def _keep_alt(self, replaced, since) -> None:
        """Before the background of the pixels ``replaced`` is replaced by one that began at ``since`` (``_bg_n``;
        per pixel or one), keep it (``BG_ALT``) where it was established (held ``BG_ALT_AGE`` frames: not a mover's
        absorbed and soon replaced) and, with ``BG_ALT_OLDEST``, where it is older than the one kept already. A
        person who stood still for seconds was absorbed; shifting her weight, absorbed again: that replaced the
        wall kept behind her by her own first image, and when she walked off the wall was a ghost held with her."""
        age = self._bg_n - self._bg_since
        keep = replaced & (age >= BG_ALT_AGE)
        if BG_ALT_OLDEST:
            keep &= self._bg_since <= self._alt_since
        self._bg_alt[keep] = self._bg[keep]
        self._alt_since[keep] = self._bg_since[keep]
        self._bg_since[replaced] = since if np.isscalar(since) else since[replaced]

    def _follow_exposure(self, g) -> None:
        """The remembered background follows the camera's exposure as a whole: scaled by the brightness ratio of
        frame ``g`` to the frame before it (``_frame_ratio``), covered pixels and kept backgrounds (``BG_ALT``,
        ``_ghost_ref``) too. Per pixel the background follows the frame only where they agree (``BG_STEP``) and
        barely where a mover covers it (``BG_SLOW``), so a change of exposure while a mover covers part of the view
        (auto exposure reacting to the mover: a white car entering a parking lot's view darkened the asphalt by a
        third) left the covered part at the old exposure; uncovered, it did not match: the car's path behind it,
        joined to the car, was held as a live mover. The ratio is taken between consecutive frames, not against
        the background: nothing feeds back, so a mover that biases it cannot make the background drift."""
        r = _frame_ratio(g, self._bg_prev)
        if abs(r - 1.0) < 1e-4:
            return
        self._bg *= r
        for kept in (self._bg_alt, self._ghost_ref):
            kept *= r       # NaN where none is kept: stays NaN

    def _ghosts(self, g, agree, tol):
        """The remembered background grows into what a mover uncovered: a pixel that disagrees with it, has shown
        the same for ``GHOST_STILL`` frames, has not moved within ``PERSIST_FRAMES`` and looks like (within ``tol``,
        the images' noise) the background of a neighbour that agrees with it, is background (up to ``GHOST_PX``
        pixels deep per frame). A person present while the background was learnt leaves a ghost where an arm hung
        when it rises; joined to the moving arm, the ghost was a live mover (``_live_movers``) and never absorbed.
        A mover (a hand at rest) does not look like the background next to it. The background grown so carries the
        value it matched (``_ghost_ref``), and the next pixel must match that, not the one before it: a chain of
        small steps (a shaded hand) cannot walk away from the background it started at."""
        cand = ~agree & (self._bg_still >= GHOST_STILL)
        if self._moved_at is not None and self._moved_at.shape == cand.shape:
            cand &= (self._bg_n - self._moved_at) > PERSIST_FRAMES
        if not cand.any():
            return
        h, w = cand.shape
        bg, ref = self._bg, self._ghost_ref
        grown_from = np.where(_px(np.isfinite(_chan(ref)), ref), ref, bg)
        known = agree.copy()
        for _ in range(int(GHOST_PX)):
            # only the candidates next to the known background (its edge: few pixels) are compared
            ys, xs = np.nonzero(cand & (cv2.dilate(known.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0))
            if ys.size == 0:
                break
            gv = g[ys, xs]
            hit = np.zeros(ys.size, bool)
            new_ref = np.zeros_like(gv)
            new_since = np.zeros(ys.size, np.int64)
            for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
                ny, nx = ys + dy, xs + dx
                inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
                ny, nx = np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)
                r = grown_from[ny, nx]
                m = ~hit & inside & known[ny, nx] & (_chan_px(np.abs(gv - r)) <= tol)
                new_ref[m] = r[m]
                new_since[m] = self._bg_since[ny[m], nx[m]]
                hit |= m
            if not hit.any():
                break
            hy, hx = ys[hit], xs[hit]
            if BG_ALT and BG_ALT_OLDEST:
                # grown from a neighbour whose background is newer (a stopped mover absorbed there, spreading over
                # its own pixels): this pixel's older background is kept (``_keep_alt``); one as old is not (what
                # a mover there from the start uncovers replaces the mover's image learnt at the start)
                newer = new_since[hit] > self._bg_since[hy, hx]
                if newer.any():
                    rep = np.zeros((h, w), bool)
                    rep[hy[newer], hx[newer]] = True
                    since = np.zeros((h, w), np.int64)
                    since[hy[newer], hx[newer]] = new_since[hit][newer]
                    self._keep_alt(rep, since)
            bg[hy, hx] = g[hy, hx]
            ref[hy, hx] = grown_from[hy, hx] = new_ref[hit]
            known[hy, hx] = True
            cand[hy, hx] = False

    def _choose_by_canvas(self, pairs, grads, gray, keys, Hs, noise):
        """In place: each new pair's background motion (``Hs[k]``, ``noise[k]``) checked against the moving camera's
        remembered canvas (``_remember_moving``). Before a plain wall the background's only texture is a poster or
        a door frame, and a large textured mover in front of it (a hand) holds most of the textured pixels: RANSAC's
        largest consensus is the hand, the hand was taken for the background and went unmarked (held-out hand-held
        clips before a wall: IoU 0.11-0.38). The candidates: the second motion of the textured pixels
        (``_second_motion``: the poster's) and none (a shake of a pixel, where the mover hides all texture). One
        replaces the first where it maps the new frame onto the canvas's known, textured pixels clearly better
        (``CANVAS_RATIO``, ``CANVAS_MARGIN``); the choice is by the canvas, never by the smaller motion (a camera
        panning after a person would choose the person). Where the mover hides the whole canvas texture, a first
        motion like the one rejected in the pair before (``_same_motion``, at least ``SAME_MIN_PX``) is the same
        mover: none is taken. Chosen once per pair of frame keys, when its newer frame is first seen, and
        remembered: the window's later pairs repeat what the canvas was built from."""
        cache = self._chosen
        st = getattr(self, "_mbg", None)
        n = len(gray)
        h, w = gray[0].shape[:2]
        C = None        # the canvas <- frame k, through the pairs chosen so far
        canvas = None   # its known textured pixels (_canvas_texture): the canvas does not change in here
        for k in range(n - 1):
            key = (keys[k], keys[k + 1]) if keys[k] is not None and keys[k + 1] is not None else None
            if key is not None and key in cache:
                if cache[key] is not None:
                    Hs[k], noise[k] = cache[key][:2]
            elif key is not None and st is not None and (C is not None or keys[k] == st["key"]):
                C = st["C"] if C is None else C
                alt = _second_motion(_textured(pairs[k][0], pairs[k][2], grads[k]), Hs[k])
                cands = [(np.eye(3), self._last_noise if self._last_noise is not None else noise[k])]
                if alt is not None:
                    cands.append(alt)
                if canvas is None:
                    canvas = _canvas_texture(st)
                m1 = _canvas_match(st, canvas, gray[k + 1], C @ np.linalg.inv(Hs[k]))
                pick = None
                for Hc, nc in cands if m1 is not None else []:
                    mc = _canvas_match(st, canvas, gray[k + 1], C @ np.linalg.inv(Hc))
                    seen = m1 | mc      # matched by one of the two: the canvas's texture not hidden by a mover
                    if seen.sum() < CANVAS_MIN:
                        continue
                    s1, sc = float(np.mean(m1[seen])), float(np.mean(mc[seen]))
                    if sc >= s1 + CANVAS_MARGIN and 1.0 - sc <= CANVAS_RATIO * (1.0 - s1) and (
                            pick is None or sc - s1 > pick[2]):
                        pick = (Hc, nc, sc - s1, Hs[k])
                prev = cache.get((keys[k - 1], keys[k])) if k > 0 else None
                if pick is None and prev is not None and _same_motion(prev[3], Hs[k], h, w):
                    pick = (np.eye(3), prev[1], None, Hs[k])
                if pick is not None:
                    Hs[k], noise[k] = pick[:2]
                    self._last_noise = pick[1]
                else:
                    self._last_noise = noise[k]
                cache[key] = pick
                while len(cache) > self.cache_size:
                    cache.popitem(last=False)
            if C is not None:
                C = C @ np.linalg.inv(Hs[k])

    def _remember_moving(self, gray, keys, Hs):
        """A moving camera's remembered background, per frame of the window in that frame's image (NaN where not
        known), or None. Kept on a canvas in the image of the frame it was started with: each new frame is mapped
        onto it by the chained background homographies (one resampling per frame, none of the memory), updated by
        the same per-pixel rule as a static camera's (``_bg_update``; pixels newly in view start there), and read
        back through the window's homographies. A pixel is known once ``BG_WARM`` frames covered it; the memory
        restarts when the keys jump or less than ``MOVING_BG_OVERLAP`` of the view is still on the canvas."""
        n = len(gray)
        if keys is None or any(k is None for k in keys):
            self._mbg = None
            return None
        st = getattr(self, "_mbg", None)
        if st is not None and (keys[-1] < st["key"] or st["key"] < keys[0] - 1 or st["key"] > keys[-1]):
            st = None
        h, w = gray[0].shape[:2]
        for idx, (g, k) in enumerate(zip(gray, keys)):
            if st is not None and k <= st["key"]:
                continue
            g = g.astype(np.float32)
            if st is not None and idx > 0 and keys[idx - 1] == st["key"]:
                C = st["C"] @ np.linalg.inv(Hs[idx - 1])        # frame idx -> canvas
                ones = cv2.warpPerspective(np.ones((h, w), np.float32), C, (w, h), flags=cv2.INTER_LINEAR)
                inview = ones > 0.999
                if inview.mean() < MOVING_BG_OVERLAP:
                    st = None
            elif st is not None:
                st = None
            if st is None:
                st = {"bg": g.copy(), "age": np.ones((h, w), np.int32), "still": np.zeros((h, w), np.int32),
                      "prev": g.copy(), "C": np.eye(3), "key": k}
                continue
            gw = cv2.warpPerspective(g, C, (w, h), flags=cv2.INTER_LINEAR)
            new = inview & (st["age"] == 0)
            old = inview & (st["age"] > 0)
            bg, prev = st["bg"], st["prev"]
            ref = old   # pixels the canvas already knew: the brightness and noise references
            if BG_EXPOSURE and ref.any():   # the whole canvas follows the exposure (_follow_exposure)
                r = _frame_ratio(gw, prev, ref)
                bg = bg * r if abs(r - 1.0) >= 1e-4 else bg
            d_prev = _chan(np.abs(gw - prev * (_gain(gw, prev, ref) if ref.any() else 1.0)))
            tol = max(BG_AGREE_MIN, BG_AGREE_K * 1.4826 * float(np.median(d_prev[ref]))) if ref.any() \
                else BG_AGREE_MIN
            st["still"] = np.where(inview & (d_prev <= tol), st["still"] + 1, 0)
            gain = _gain(gw, bg, ref) if ref.any() else 1.0
            dn = _chan(np.abs(gw - gain * bg))
            agree = dn <= max(tol, BG_AGREE_K * 1.4826 * float(np.median(dn[ref])) if ref.any() else tol)
            d = gw - bg
            step = np.where(_px(agree, d), np.clip(d, -BG_STEP, BG_STEP), np.clip(d, -BG_SLOW, BG_SLOW))
            bg = np.where(_px(old, bg), bg + step, bg)
            absorb = old & ~agree & (st["still"] >= BG_ABSORB)
            bg = np.where(_px(absorb | new, bg), gw, bg)
            st["age"] = np.where(inview, st["age"] + 1, st["age"])
            st["prev"] = np.where(_px(inview, gw), gw, prev)
            st["bg"], st["C"], st["key"] = bg.astype(np.float32), C, k
        self._mbg = st
        if st is None or st["key"] != keys[-1]:
            return None
        known = np.where(_px(st["age"] >= BG_WARM, st["bg"]), st["bg"], np.nan).astype(np.float32)
        out = []
        T = np.eye(3)                                           # frame i -> the newest frame
        for i in range(n - 1, -1, -1):
            if i < n - 1:
                T = T @ Hs[i]
            out.append(cv2.warpPerspective(known, st["C"] @ T, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=(float("nan"),) * 4))
        out = out[::-1]
        return out if any(np.isfinite(b).any() for b in out) else None

    def close(self) -> None:
        self.clear_cache()

    # -- the field --------------------------------------------------------------------------------------------
    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None,
                intrinsics: Optional[np.ndarray] = None, cam_poses: Optional[np.ndarray] = None) -> FieldPrediction:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
        if tuple(frames.shape[1:3]) != self.input_size:
            raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]}, estimator input size is "
                             f"{self.input_size[0]}x{self.input_size[1]}")
        n, h, w = frames.shape[:3]
        if frame_keys is not None and len(frame_keys) != n:
            raise ValueError("frame_keys must have one key per frame")
        t0 = time.perf_counter()
        self.last_stats = {"flow_hits": 0}
        K = default_intrinsics(h, w) if intrinsics is None else np.asarray(intrinsics, np.float64)
        t = (np.arange(n, dtype=np.float64) / max(n - 1, 1)) if times is None else np.asarray(times, np.float64)
        keys = list(frame_keys) if frame_keys is not None else [None] * n
        frames = self._exposure(frames)
        gray = [_gray(f) for f in frames]
        pairs = [self._pair(gray[k], gray[k + 1], keys[k], keys[k + 1]) for k in range(n - 1)]
        t1 = time.perf_counter()
        if depth is not None:
            samples, alive_frac, camera, noise_px = self._lift_depth(frames, depth, K, cam_poses, pairs)
        else:
            samples, alive_frac, camera, noise_px = self._lift_plane(pairs, [_photo(f) for f in frames], K, n, h, w,
                                                                     keys)
        t2 = time.perf_counter()
        ctrl = fit_field_from_samples(t, samples, self.num_ctrl, smooth=self.smooth)      # [N, D, H, W, 3]
        conf = (0.1 + 0.9 * alive_frac).astype(np.float32)                               # [N, H, W]
        conf = np.repeat(conf[:, None], self.num_ctrl, axis=1)
        f = float(max(K[0, 0], K[1, 1]))
        floor_px = max(MIN_FLOOR_PX, NOISE_K * noise_px * np.sqrt(max(n - 1, 1)))
        t3 = time.perf_counter()
        self.last_stats.update(flow_s=t1 - t0, lift_s=t2 - t1, fit_s=t3 - t2, total_s=t3 - t0)
        extras = {"camera": camera, "flow_noise_px": float(noise_px), "motion_floor": float(floor_px / f),
                  "estimator": "flow", "exposure_gain": float(self.last_stats.get("exposure_gain", 1.0))}
        if depth is None and BOUNDARY_PX:  # motion pooled over EVIDENCE_WIN x EVIDENCE_WIN reaches past the edge
            extras["boundary_px"] = int(BOUNDARY_PX)
        if depth is None and self._live is not None and self._live.any():
            extras["moving_foreground"] = self._live.copy()   # the newest frame's live movers (_live_movers)
        return FieldPrediction(ctrl_pts=ctrl, ctrl_conf=conf, frame_times=t.astype(np.float32),
                               metric=depth is not None, extras=extras)

    def _chains(self, pairs, n, h, w):
        """For every frame i and every frame j: pixel coordinates ``u, v [N, N, H, W]`` of frame i's pixels in
        frame j, whether the chain held (``alive [N, N, H, W]``; a broken chain holds its last position), and the
        raw chain ``ur, vr`` that follows the flow whatever its checks say (kept inside the image)."""
        gu, gv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        U = np.empty((n, n, h, w))
        V = np.empty((n, n, h, w))
        UR = np.empty((n, n, h, w))
        VR = np.empty((n, n, h, w))
        A = np.ones((n, n, h, w), bool)
        for i in range(n):
            U[i, i], V[i, i] = gu, gv
            UR[i, i], VR[i, i] = gu, gv
            for step in (1, -1):
                u, v = gu.copy(), gv.copy()
                ur, vr = gu.copy(), gv.copy()
                alive = np.ones((h, w), bool)
                j = i
                while 0 <= j + step < n:
                    k = j if step == 1 else j - 1
                    fwd, bwd, _ = pairs[k]
                    fl, back = (fwd, bwd) if step == 1 else (bwd, fwd)
                    f = _remap(fl, u, v).astype(np.float64)
                    un, vn = u + f[..., 0], v + f[..., 1]
                    b = _remap(back, un, vn).astype(np.float64)
                    ok = (np.hypot(f[..., 0] + b[..., 0], f[..., 1] + b[..., 1])
                          <= FB_TOL_PX + FB_TOL_REL * np.hypot(f[..., 0], f[..., 1]))
                    ok &= (un >= 0) & (un <= w - 1) & (vn >= 0) & (vn <= h - 1)
                    alive &= ok
                    u, v = np.where(alive, un, u), np.where(alive, vn, v)
                    fr = _remap(fl, ur, vr).astype(np.float64)
                    ur, vr = np.clip(ur + fr[..., 0], 0, w - 1), np.clip(vr + fr[..., 1], 0, h - 1)
                    j += step
                    U[i, j], V[i, j], A[i, j] = u, v, alive
                    UR[i, j], VR[i, j] = ur, vr
        return U, V, A, UR, VR

    def _lift_plane(self, pairs, gray, K, n, h, w, keys=None):
        """RGB only: chains mapped into the first frame's image by the background homographies, lifted onto the
        plane z = 1."""
        force = {"auto": "auto", "static": "static", "moving": "moving"}[self.camera]
        Hs, moving, noise = [], [], []
        grads = [gradient(g) if EDGES else None for g in gray[:len(pairs)]]   # pair k: frame k -> k + 1
        for (fwd, _, ok), gr in zip(pairs, grads):
            H, mv, nz = background_motion(fwd, ok, self.static_px, force, grad=gr)
            Hs.append(H)
            moving.append(mv)
            noise.append(nz)
        any_moving = any(moving)
        if self.camera == "auto" and not any_moving:
            # the background is where it was: the flow's noise on it, the images' (grey levels) against it
            sig = None
            if self._bg is not None and self._bg.shape == gray[-1].shape:
                sig = 1.4826 * float(np.median(_chan(np.abs(gray[-1] - _gain(gray[-1], self._bg) * self._bg))))
            self._hold = (float(np.max(noise) if noise else 0.0), sig)
        elif self.camera == "auto" and BG_HOLDS and self._background_holds(gray, keys, pairs):
            # the flow said 'moving', but the camera's motion does not explain the remembered background: a large
            # mover in front of a weakly textured background (a hand before a plain wall) drags the regularised
            # flow of the whole view with it -- taken for a camera pan, the background was forgotten, the hand lost
            # (the noise: the last static window's; the wall's flow is regularised noise, the textured pixels are
            # mostly the mover's)
            Hs, moving, any_moving = [np.eye(3)] * len(Hs), [False] * len(moving), False
            noise = [self._hold[0]] * len(pairs)
        if self.camera == "auto" and any_moving and not all(moving):
            # one window, one camera model: a camera that moved in one pair is moving for the window
            Hs, noise = [], []
            for (fwd, _, ok), gr in zip(pairs, grads):
                H, _, nz = background_motion(fwd, ok, self.static_px, "moving", grad=gr)
                Hs.append(H)
                noise.append(nz)
        if CANVAS_CHOICE and any_moving and TEXTURED and grads and grads[0] is not None:
            # a large textured mover before a weakly textured background: RANSAC's largest consensus is the mover
            self._choose_by_canvas(pairs, grads, gray, keys, Hs, noise)
        U, V, A, UR, VR = self._chains(pairs, n, h, w)
        background = self._remember(gray, keys, any_moving)
        # kept through static windows too (identity homographies): a hand-held camera's windows alternate
        moving_bg = self._remember_moving(gray, keys, Hs) if MOVING_BG else None
        # G[j]: frame j's image -> frame 0's image (background-stabilised coordinates)
        G = [np.eye(3)]
        for H in Hs:
            G.append(G[-1] @ np.linalg.inv(H))
        gu, gv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        samples = np.empty((n, n, h, w, 3), np.float32)
        newest = None   # static camera with a remembered background: (newest frame's displacement, its foreground)
        # each frame against its remembered background: the same whichever frame it is compared with
        bgs = [(moving_bg[i] if moving_bg is not None else None) if any_moving else background for i in range(n)]
        bgs = [None if b is None else _bg_fit(gray[i].astype(np.float32), b) for i, b in enumerate(bgs)]
        for j in range(n):
            u, v = U[:, j].copy(), V[:, j].copy()
            hyp = {}
            for i in range(n):
                if i == j:
                    continue
                # the background's hypothesis for frame i's pixels in frame j (identity for a static camera)
                M = np.linalg.inv(G[j]) @ G[i]
                d = M[2, 0] * gu + M[2, 1] * gv + M[2, 2]
                ub, vb = (M[0, 0] * gu + M[0, 1] * gv + M[0, 2]) / d, (M[1, 0] * gu + M[1, 1] * gv + M[1, 2]) / d
                evidence, changed, clearly, fg = _motion_evidence(gray[i], gray[j], U[i, j], V[i, j], ub, vb,
                                                                  background=bgs[i])
                # a tracked pixel moves where the images show it, or where it is clearly not the background (a
                # fast textured mover: its flow passes the checks but is too imprecise to explain the pixel better
                # than the background does -- holes inside a hand otherwise); one whose chain broke (a fast, blurred
                # mover: flow fails its checks) follows the raw flow where the pixel changed, else the background
                broken = ~A[i, j]
                follow = evidence | clearly
                u[i] = np.where(broken, np.where(changed, UR[i, j], ub), np.where(follow, u[i], ub))
                v[i] = np.where(broken, np.where(changed, VR[i, j], vb), np.where(follow, v[i], vb))
                hyp[i] = (ub, vb, fg)
            # a static camera only: with a moving one's remembered background (a canvas through the homographies)
            # the same rule lost precision (held-out shaking clips: mask IoU 0.60 / 0.52 -> 0.55 / 0.47)
            if FILL and not any_moving and background is not None:
                for i, (ub, vb, fg) in hyp.items():
                    u[i], v[i] = _fill_movers(u[i], v[i], ub, vb, fg, abs(i - j), self._bg_still)
                if j == 0 and n > 1:
                    newest = (np.hypot(u[n - 1] - gu, v[n - 1] - gv), hyp[n - 1][2])
            if any_moving:
                g = G[j]
                d = g[2, 0] * u + g[2, 1] * v + g[2, 2]
                u, v = (g[0, 0] * u + g[0, 1] * v + g[0, 2]) / d, (g[1, 0] * u + g[1, 1] * v + g[1, 2]) / d
            samples[:, j] = backproject_at(u, v, np.ones_like(u), K).astype(np.float32)
        alive_frac = A.mean(axis=1)
        noise_px = float(np.max(noise) if noise else 0.0)
        self._live = None
        if newest is None:
            self._moved_at = None
        elif PERSIST:
            self._live = self._live_movers(*newest, max(MIN_FLOOR_PX, NOISE_K * noise_px * np.sqrt(max(n - 1, 1))),
                                           _uncovered(pairs[-1], gray[-2], gray[-1]) if UNCOVER else None, n)
        return samples, alive_frac, ("moving" if any_moving else "static"), noise_px

    def _live_movers(self, disp: np.ndarray, fg: np.ndarray, floor_px: float,
                     uncovered: Optional[np.ndarray] = None, span: int = 1) -> np.ndarray:
        """The newest frame's pixels that belong to a mover although the field holds them still: a motion-based
        mask loses a hand that waves in place where it turns (it stops for a few frames) and the uniform inside of a
        hand (it shows no motion), and the remembered background absorbed them after ``BG_ABSORB`` still frames.

        Each pixel's last measured motion is remembered: ``disp`` (over the window) above ``floor_px`` (the motion
        floor), in a connected mover of at least ``PERSIST_MIN_PX`` pixels after a 3 x 3 opening (not a leaf's
        jitter). A connected region of pixels that the remembered background does not explain (``fg``), covering at
        least ``PERSIST_MIN_FRAC`` of the frame (a hand close to the lens, not a walker far away), of which at least
        ``PERSIST_FRAC`` (and ``PERSIST_MIN_PX``) pixels moved within ``PERSIST_FRAMES`` frames, is one live mover.
        Its pixels are neither absorbed into the background nor drifted towards (for up to ``PERSIST_HOLD`` still
        frames), and are reported
        (``extras['moving_foreground']``) for the dynamic mask. A mover that stays still longer becomes background
        as before (an object that stopped); regions without recent motion (a ghost, a lighting change) are never
        live. ``uncovered`` (``UNCOVER``; ``_uncovered``: the newest frame's pixels a mover's trailing edge just
        uncovered) are no longer live until they move themselves: for ``span`` frames (the window) their motion over
        the window is the mover's that covered them; a shirt's print joined to a signer's moving arms was held as
        part of the arm for 8 frames after the hands left it."""
        now = self._bg_n
        if self._moved_at is None or self._moved_at.shape != disp.shape:
            self._moved_at = np.full(disp.shape, -(1 << 30), np.int64)
            self._uncov_at = np.full(disp.shape, -(1 << 30), np.int64)
            self._own_at = np.full(disp.shape, -(1 << 30), np.int64)
        moved = cv2.morphologyEx((disp > floor_px).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        nm, lm, st, _ = cv2.connectedComponentsWithStats(moved, connectivity=8)
        big = st[:, cv2.CC_STAT_AREA] >= PERSIST_MIN_PX
        big[0] = False
        self._moved_at[big[lm]] = now      # a mover, not a pixel's jitter (leaves in the wind)
        if uncovered is not None:
            # a pixel a mover uncovered shows what was behind it: over the windows that still reach back to when
            # it was covered (``span`` frames), its broken chain's motion is the mover's, not its own
            self._uncov_at[uncovered] = now
            self._own_at[big[lm] & ((now - self._uncov_at) >= span)] = now
        recent = (now - self._moved_at) <= PERSIST_FRAMES
        if not (fg & recent).any():
            return np.zeros(fg.shape, bool)
        nlab, lab = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        nr = np.bincount(lab[fg & recent], minlength=nlab)
        tot = np.bincount(lab[fg], minlength=nlab)
        ok = (nr >= PERSIST_MIN_PX) & (nr >= PERSIST_FRAC * np.maximum(tot, 1)) & (tot >= PERSIST_MIN_FRAC * fg.size)
        ok[0] = False
        if uncovered is None:
            return ok[lab] & fg
        return ok[lab] & fg & (self._uncov_at <= self._own_at)

    def _lift_depth(self, frames, depth, K, cam_poses, pairs):
        """RGB-D: the metric 3D chain of ``model.geometry.compute`` (measured depth along the flow; camera poses
        from the caller, else a static camera)."""
        from . import geometry
        g = geometry.compute(frames, depth, K, cam_poses)
        valid = np.isfinite(depth) & (depth > 0)
        noise = [background_motion(fwd, ok & valid[k], self.static_px, "static")[2]
                 for k, (fwd, _, ok) in enumerate(pairs)]
        return g.samples, valid.astype(np.float64), ("poses" if cam_poses is not None else "static"), \
            float(np.max(noise) if noise else 0.0)
