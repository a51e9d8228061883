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

"""worlds/*.sdf loaded by the real SDFormat parser (libsdformat, the library gz sim itself loads worlds with),
through a few lines of C++ compiled here against Debian 12's libsdformat-dev.

Version gap, stated: Debian 12 ships SDFormat 12 (12.3; SDF spec up to 1.9, the version our world declares);
Gazebo Harmonic uses SDFormat 14 (spec 1.11). SDFormat 14 reads 1.9 files, so a world SDFormat 12 loads without
errors is expected to load there; elements newer than 12 (e.g. the camera's ``<gz_frame_id>``, SDFormat 14) are
reported by 12 as unknown-element warnings, which this test lists rather than fails on. What it asserts is what the
static test (test_gazebo_assets.py) can only read from the XML: the DOM that the parser builds -- no errors, the
world, its models, the turntable joint, the RGB-D camera sensor with its topic and image size.
Skipped with a reason without g++ or libsdformat-dev (`make bootstrap` installs it).
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
WORLDS = sorted((REPO / "worlds").glob("*.sdf"))

LOADER = r"""
#include <iostream>
#include <sdf/sdf.hh>

int main(int argc, char **argv) {
  sdf::Root root;
  sdf::Errors errors = root.Load(argv[1]);
  for (const auto &e : errors) std::cout << "ERROR " << e.Message() << "\n";
  std::cout << "SDFORMAT " << SDF_VERSION_FULL << " SPEC " << root.Version() << "\n";
  for (uint64_t w = 0; w < root.WorldCount(); ++w) {
    const sdf::World *world = root.WorldByIndex(w);
    std::cout << "WORLD " << world->Name() << "\n";
    for (uint64_t m = 0; m < world->ModelCount(); ++m) {
      const sdf::Model *model = world->ModelByIndex(m);
      std::cout << "MODEL " << model->Name() << " static=" << model->Static() << "\n";
      for (uint64_t j = 0; j < model->JointCount(); ++j) {
        const sdf::Joint *joint = model->JointByIndex(j);
        std::cout << "JOINT " << model->Name() << " " << joint->Name() << " type="
                  << static_cast<int>(joint->Type()) << "\n";
      }
      for (uint64_t l = 0; l < model->LinkCount(); ++l) {
        const sdf::Link *link = model->LinkByIndex(l);
        for (uint64_t s = 0; s < link->SensorCount(); ++s) {
          const sdf::Sensor *sensor = link->SensorByIndex(s);
          std::cout << "SENSOR " << model->Name() << " " << sensor->Name() << " type=" << sensor->TypeStr()
                    << " topic=" << sensor->Topic() << " rate=" << sensor->UpdateRate();
          if (const sdf::Camera *cam = sensor->CameraSensor())
            std::cout << " size=" << cam->ImageWidth() << "x" << cam->ImageHeight();
          std::cout << "\n";
        }
      }
    }
  }
  return errors.empty() ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def loader(tmp_path_factory):
    if not shutil.which("g++") or not shutil.which("pkg-config"):
        pytest.skip("g++ / pkg-config not found (make bootstrap installs g++)")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sdformat12"], capture_output=True, text=True)
    if flags.returncode != 0:
        pytest.skip("libsdformat-dev (SDFormat 12) not installed (make bootstrap installs it): "
                    + flags.stderr.strip())
    d = tmp_path_factory.mktemp("sdformat")
    (d / "load.cc").write_text(LOADER)
    out = subprocess.run(["g++", "-O0", str(d / "load.cc"), "-o", str(d / "load")] + flags.stdout.split(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return d / "load"


@pytest.mark.parametrize("world", WORLDS, ids=[w.name for w in WORLDS])
def test_world_loads_in_the_real_sdformat_parser(loader, world):
    out = subprocess.run([str(loader), str(world)], capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    print(out.stdout, out.stderr[-2000:], sep="\n")  # the parser's warnings (elements newer than SDFormat 12)
    assert out.returncode == 0 and not [ln for ln in lines if ln.startswith("ERROR")], out.stdout + out.stderr
    assert any(ln.startswith("SDFORMAT 12") and ln.endswith("SPEC 1.9") for ln in lines), lines[:3]
    worlds = [ln.split()[1] for ln in lines if ln.startswith("WORLD ")]
    models = {ln.split()[1] for ln in lines if ln.startswith("MODEL ")}
    assert worlds == ["tabletop"]
    assert {"table", "turntable", "rgbd_camera"} <= models, models
    # the turntable turns: a revolute joint (sdf::JointType::REVOLUTE == 6 in SDFormat 12)
    joints = [ln.split() for ln in lines if ln.startswith("JOINT turntable ")]
    assert any(j[3] == "type=6" for j in joints), joints
    sensors = [ln for ln in lines if ln.startswith("SENSOR rgbd_camera ")]
    assert len(sensors) == 1 and "type=rgbd_camera" in sensors[0] and "topic=camera" in sensors[0], sensors
    assert sensors[0].split("size=")[1] == "320x240", sensors   # the sim camera's size (test_gazebo_assets)
