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

"""Ground-truth trajectory fields of the MuJoCo scenes: re-projection and cross-frame segmentation checks."""
import numpy as np
import pytest

pytestmark = pytest.mark.sim
pytest.importorskip("mujoco", reason="MuJoCo is needed for the simulation tests")

from trace_anything_ros.field.types import TrajectoryField  # noqa: E402
from trace_anything_ros.field.camera import project  # noqa: E402
from trace_anything_ros.sim.ground_truth import evaluate_field, load_window, render_window, save_window  # noqa: E402
from trace_anything_ros.sim.scene import Scene, SceneConfig, inv_T  # noqa: E402

W, H, N = 128, 96, 5


@pytest.fixture(scope="module", params=["tabletop", "moving_camera"])
def window(request):
    scene = Scene(SceneConfig.from_preset(request.param, seed=4, width=W, height=H))
    frames, gt = render_window(scene, num_frames=N, dt=0.15, start=1.0, num_ctrl=10)
    yield scene, frames, gt
    scene.close()


def _to_cam(points_ref, gt, j):
    T = inv_T(gt.cam_poses[j]) @ gt.cam_poses[0]
    return points_ref @ T[:3, :3].T + T[:3, 3]


def test_field_type_and_masks(window):
    scene, frames, gt = window
    f = gt.field
    assert isinstance(f, TrajectoryField) and f.metric
    assert f.ctrl_pts.shape == (N, 10, H, W, 3)
    assert f.frame_times[0] == 0.0 and abs(f.frame_times[-1] - 1.0) < 1e-6
    assert gt.valid.mean() > 0.99                      # the room encloses the camera: every pixel sees geometry
    assert gt.dynamic_bodies, "the presets move objects and the gripper"
    assert gt.dynamic_mask.any() and not gt.dynamic_mask.all()
    assert set(np.unique(gt.instance_ids[gt.dynamic_mask])) <= set(gt.dynamic_bodies)
    # static pixels: their curve is constant in the reference camera frame
    samples = evaluate_field(f, np.linspace(0, 1, 7))
    stat = gt.valid & ~gt.dynamic_mask
    spread = np.linalg.norm(samples - samples[:, :1], axis=-1).max(axis=1)[stat]
    assert spread.max() < 1e-4
    dyn_spread = np.linalg.norm(samples - samples[:, :1], axis=-1).max(axis=1)[gt.dynamic_mask]
    assert np.median(dyn_spread) > 0.005


def test_reprojection_at_own_frame(window):
    scene, frames, gt = window
    S = evaluate_field(gt.field)                       # spline samples at the frame times [N, N, H, W, 3]
    v, u = np.mgrid[0:H, 0:W]
    errs = []
    for i in range(N):
        uv, z = project(_to_cam(S[i, i], gt, i), gt.K)
        e = np.hypot(uv[..., 0] - u, uv[..., 1] - v)[gt.valid[i]]
        errs.append(e.mean())
        assert np.all(z[gt.valid[i]] > 0)
    assert max(errs) <= 0.5, errs


def test_other_frames_land_on_same_body(window):
    scene, frames, gt = window
    S = evaluate_field(gt.field)
    agree, total = 0, 0
    for i in range(N):
        for j in range(N):
            if i == j:
                continue
            m = gt.visibility[i, j] & gt.valid[i]
            uv, _ = project(_to_cam(S[i, j], gt, j), gt.K)
            ui = np.clip(np.rint(uv[..., 0][m]).astype(int), 0, W - 1)
            vi = np.clip(np.rint(uv[..., 1][m]).astype(int), 0, H - 1)
            agree += int((frames[j]["seg_body"][vi, ui] == gt.body_ids[i][m]).sum())
            total += int(m.sum())
    assert total > 0.8 * N * (N - 1) * H * W * 0.9    # most points stay visible in these short windows
    assert agree / total >= 0.99, agree / total
    # dynamic pixels specifically (where a wrong pose chain would show)
    i, j = 0, N - 1
    m = gt.visibility[i, j] & gt.dynamic_mask[i]
    if m.sum() > 20:
        uv, _ = project(_to_cam(S[i, j], gt, j), gt.K)
        ui = np.clip(np.rint(uv[..., 0][m]).astype(int), 0, W - 1)
        vi = np.clip(np.rint(uv[..., 1][m]).astype(int), 0, H - 1)
        assert (frames[j]["seg_body"][vi, ui] == gt.body_ids[i][m]).mean() >= 0.97


def test_intrinsics_match_renderer():
    """A sphere's projected centre must coincide with the centroid of its segmentation (K, pose conventions)."""
    scene = Scene(SceneConfig(seed=0, width=W, height=H, num_objects=4, num_moving=0, gripper=False))
    fr = scene.render()
    checked = 0
    for o in scene.objects:
        if o.shape != "sphere":
            continue
        b = scene.body_id(o.name)
        mask = fr["seg_body"] == b
        if mask.sum() < 30:
            continue
        c = inv_T(fr["world_T_cam"]) @ np.append(fr["body_poses"][b][:3, 3], 1.0)
        uv, _ = project(c[:3], fr["K"])
        vv, uu = np.nonzero(mask)
        # a perspective sphere's silhouette centroid is close to (not exactly at) its projected centre
        assert np.hypot(uu.mean() - uv[0], vv.mean() - uv[1]) < 1.0
        checked += 1
    assert checked >= 2                                # seed 0 has three spheres on the table
    scene.close()


def test_save_load_roundtrip(window, tmp_path):
    scene, frames, gt = window
    p = tmp_path / "w.npz"
    save_window(p, frames, gt)
    fr2, gt2 = load_window(p)
    assert fr2["rgb"].shape == (N, H, W, 3) and fr2["rgb"].dtype == np.uint8
    assert np.array_equal(gt2.visibility, gt.visibility)
    assert np.array_equal(gt2.dynamic_mask, gt.dynamic_mask)
    assert np.abs(gt2.field.ctrl_pts - gt.field.ctrl_pts).max() < 5e-3      # float16 storage
    assert p.stat().st_size < 0.5 * (gt.field.ctrl_pts.nbytes + gt.positions.nbytes)


def test_reproducible():
    a = Scene(SceneConfig.from_preset("busy", seed=9, width=64, height=48))
    b = Scene(SceneConfig.from_preset("busy", seed=9, width=64, height=48))
    assert a.xml == b.xml
    a.set_time(1.3)
    b.set_time(1.3)
    assert np.array_equal(a.render()["rgb"], b.render()["rgb"])
    c = Scene(SceneConfig.from_preset("busy", seed=10, width=64, height=48))
    assert c.xml != a.xml
    for s in (a, b, c):
        s.close()
