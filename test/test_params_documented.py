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

"""config/*.yaml list every parameter the nodes declare, with the declared default and a comment above it that
is the declared description and states the declared range (open ends included) and choices."""
import importlib
import pathlib

import pytest
import yaml

from trace_anything_ros.paramspec import range_text

REPO = pathlib.Path(__file__).resolve().parent.parent

NODES = [
    ("perception.yaml", "trajectory_field_node", "trace_anything_ros.ros.params", "PERCEPTION"),
    ("planner.yaml", "manipulation_planner_node", "trace_anything_ros.ros.manipulation_planner_node", "PARAMS"),
    ("sim_camera.yaml", "sim_camera_node", "trace_anything_ros.ros.sim_camera_node", "PARAMS"),
    ("sim_executor.yaml", "sim_executor_node", "trace_anything_ros.ros.sim_executor_node", "PARAMS"),
]


def _documented(path, node):
    """(values, {name: comment text above it}, names shown only as a commented example)."""
    text = (REPO / "config" / path).read_text().splitlines()
    values = yaml.safe_load("\n".join(text))[node]["ros__parameters"] or {}
    comments, examples, block = {}, set(), []
    for line in text:
        s = line.strip()
        if s.startswith("# ") and s.endswith("]") and ": [" in s and s[2:].split(":", 1)[0] in values.keys() | {
                "planner.closing_axis"}:
            examples.add(s[2:].split(":", 1)[0])  # an empty-list default, shown as a commented example
            comments[s[2:].split(":", 1)[0]] = " ".join(block)
            block = []
        elif s.startswith("#"):
            block.append(s.lstrip("# "))
        else:
            key = s.split(":", 1)[0]
            if key in values and block:
                comments[key] = " ".join(block)
            block = []
    return values, comments, examples


@pytest.mark.parametrize("path,node,module,attr", NODES, ids=[n[1] for n in NODES])
def test_every_parameter_is_in_its_yaml_with_its_default(path, node, module, attr):
    specs = getattr(importlib.import_module(module), attr)
    values, comments, examples = _documented(path, node)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), "a parameter is declared twice"
    assert sorted(set(values) | examples) == sorted(names), (set(values) | examples) ^ set(names)
    assert set(comments) == set(names), set(names) - set(comments)
    for s in specs:
        if s.name in values:
            assert values[s.name] == s.default, (s.name, values[s.name], s.default)
            assert type(values[s.name]) is type(s.default), (s.name, "a YAML 1 for 1.0 declares an int")
        else:
            assert s.default in (None, []), s.name
        # the comment is the declared description (the dataclass field's doc for dataclass parameters) ...
        said = " ".join(comments[s.name].split())
        assert said.startswith(" ".join(s.description.split()).rstrip(".")), (s.name, said, s.description)
        # ... and states the declared range and choices
        if s.range is not None:
            assert f"Range {range_text(s.range, s.open)}" in comments[s.name], (s.name, comments[s.name])
        if s.choices is not None:
            assert "One of: " + ", ".join(s.choices) in comments[s.name], (s.name, comments[s.name])
