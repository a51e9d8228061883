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

"""ros/graph.py is the one home of node names, topic names and config paths, and ``effective_parameters`` gives
the values a node really starts with (checked against rcl's own parsing in a started node)."""
import pathlib
import re

import pytest

from trace_anything_ros.ros import graph as g

REPO = pathlib.Path(__file__).resolve().parent.parent
PKG = REPO / "trace_anything_ros"


def test_topic_names_are_the_public_ones():
    # the contract users subscribe to (README, launch files, recordings): pinned here literally
    assert g.TOPICS["tracks"] == "/trajectory_field_node/tracks"
    assert g.TOPICS["field"] == "/trajectory_field_node/trajectory_field"
    assert g.TOPICS["mask"] == "/trajectory_field_node/dynamic_mask"
    assert g.TOPICS["objects"] == "/trajectory_field_node/dynamic_objects"
    assert g.TOPICS["markers"] == "/trajectory_field_node/markers"
    assert g.TOPICS["plan"] == "/manipulation_planner_node/plan"
    assert g.TOPICS["ee_path"] == "/manipulation_planner_node/ee_path"
    assert g.TOPICS["image"] == "/camera/image_raw" and g.relative(g.TOPICS["image"]) == "camera/image_raw"
    assert g.node_topic("trajectory_field_node", "tracks", "/robot1/") == "/robot1/trajectory_field_node/tracks"
    assert g.PLANNER_NODE.remaps["tracks"] == g.TOPICS["tracks"]
    assert g.PLANNER_NODE.remaps["dynamic_objects"] == g.TOPICS["objects"]
    assert "/trajectory_field_node/tracks" in (REPO / "README.md").read_text()


# spellings that belong to graph.py only
_PATTERNS = [r'"/trajectory_field_node[/"]', r'"/manipulation_planner_node[/"]', r'"~/(tracks|dynamic_mask|'
             r'dynamic_objects|trajectory_field|markers|plan|ee_path)"', r'"/camera/(image_raw|camera_info|pose|'
             r'depth/image_raw)"', r'"camera/(image_raw|camera_info|pose|depth/image_raw)"']


def test_no_package_module_spells_topic_names_itself():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "graph.py" and path.parent.name == "ros":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if any(re.search(p, line) for p in _PATTERNS):
                offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not offenders, "topic names spelled outside ros/graph.py:\n" + "\n".join(offenders)


def test_config_paths():
    assert pathlib.Path(g.config_file("planner.yaml")).is_file()
    assert g.config_file("planner.yaml", "/opt/share/trace_anything_ros") == \
        "/opt/share/trace_anything_ros/config/planner.yaml"
    with pytest.raises(KeyError, match="has no node"):
        g.node_spec("perception", g.PLANNER_NAME)


def test_effective_parameters_follow_the_documented_order(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("manipulation_planner_node:\n  ros__parameters:\n    stale_timeout: 3.0\n    dry_run: true\n"
                    "/**:\n  ros__parameters:\n    base_frame: from_wildcard\n"
                    "other_node:\n  ros__parameters:\n    check_period: 9.0\n")
    spec = g.node_spec("manipulation", g.PLANNER_NAME)
    p = g.effective_parameters(spec, user_files=[str(user)], param_strings=["dry_run:=false",
                                                                            "planner.seed:=7"])
    assert p["use_sim_time"] is True                 # the graph's override
    assert p["stale_timeout"] == 3.0                 # the user's file over config/planner.yaml (1.0)
    assert p["base_frame"] == "from_wildcard"        # '/**' applies to every node
    assert p["check_period"] == 0.1                  # another node's entry does not
    assert p["dry_run"] is False and p["planner.seed"] == 7   # --param rules last
    assert p["planner.workspace_min"] == [-0.8, -0.8, 0.0]    # config/planner.yaml
    cam = g.effective_parameters(g.node_spec("manipulation", g.SIM_CAMERA_NAME), param_strings=["seed:=3"])
    assert (cam["scene"], cam["seed"], cam["width"], cam["fovy"]) == ("tabletop", 3, 320, 55.0)


RULES = ["a_int:=3", "a_float:=2.5", "a_exp:=1e-3", "a_bool:=true", "a_str:=hello", "a_list:=[0.1, -0.2, 3.0]",
         "a_ilist:=[1, 2]", "a_word_list:=[a, b]", "a_neg:=-4", "a_quoted:='5'"]


@pytest.mark.ros
def test_parse_param_string_reads_values_as_rcl_does(ros_context):
    import rclpy

    args = ["--ros-args"] + [x for r in RULES for x in ("-p", r)]
    node = rclpy.create_node("param_parse_probe", context=ros_context, cli_args=args,
                             automatically_declare_parameters_from_overrides=True)
    try:
        for rule in RULES:
            name, value = g.parse_param_string(rule)
            got = node.get_parameter(name).value
            got = list(got) if not isinstance(got, (str, bytes, bool, int, float)) else got
            assert got == value and type(got) is type(value), (rule, got, value)
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_effective_parameters_are_what_a_started_planner_node_gets(ros_context, tmp_path):
    from trace_anything_ros.ros.manipulation_planner_node import ManipulationPlannerNode

    user = tmp_path / "user.yaml"
    user.write_text("manipulation_planner_node:\n  ros__parameters:\n    stale_timeout: 3.0\n"
                    "    planner.workspace_max: [0.5, 0.5, 0.9]\n")
    spec = g.node_spec("manipulation", g.PLANNER_NAME)
    rules = ["dry_run:=true", "planner.seed:=7", "planner.workspace_min:=[-0.4, -0.4, 0.1]"]
    args = ["--ros-args"]
    for f in g.node_parameter_files(spec, user_files=[str(user)], directory=str(tmp_path)):
        args += ["--params-file", f]
    for r in rules:
        args += ["-p", r]
    node = ManipulationPlannerNode(context=ros_context, cli_args=args)
    try:
        expected = g.effective_parameters(spec, user_files=[str(user)], param_strings=rules)
        assert len(expected) > 40
        for name, value in expected.items():
            got = node.get_parameter(name).value
            got = [float(x) for x in got] if isinstance(value, list) else got
            assert got == value, (name, got, value)
        assert list(node.get_parameter("planner.workspace_min").value) == [-0.4, -0.4, 0.1]
    finally:
        node.destroy_node()
