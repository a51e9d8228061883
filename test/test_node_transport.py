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

"""The opt-in Fast DDS profile for large messages (config/fastdds_large_messages.xml): the runner hands it to its
nodes, and two processes using it exchange serialized fields intact over real DDS."""
import argparse
import os
import pathlib

import pytest

pytestmark = pytest.mark.ros

REPO = pathlib.Path(__file__).resolve().parent.parent
PROFILE = REPO / "config" / "fastdds_large_messages.xml"


def _args(*argv):
    from trace_anything_ros.ros import runner
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    return p.parse_args(list(argv))


def test_runner_sets_the_profile_only_when_asked(monkeypatch):
    from trace_anything_ros.ros import runner
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in runner.node_env(_args())
    env = runner.node_env(_args("--large-messages"))
    assert pathlib.Path(env["FASTRTPS_DEFAULT_PROFILES_FILE"]) == PROFILE and PROFILE.is_file()
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/my/own.xml")  # the user's choice wins
    assert runner.node_env(_args("--large-messages"))["FASTRTPS_DEFAULT_PROFILES_FILE"] == "/my/own.xml"


def test_fields_cross_processes_with_the_profile():
    from trace_anything_ros.ros.node_bench import bench_field_xproc
    r = bench_field_xproc(reps=4, profile=str(PROFILE), ctrl=2)
    assert r["xml_errors"] == 0, "Fast DDS rejected the profile"
    assert r["received"] == 4 and r["intact"], r
    assert os.path.basename(str(PROFILE)) == r["profile"]
