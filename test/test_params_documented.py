"""config/*.yaml list every parameter the nodes declare, with the declared default and a comment above it."""
import pathlib

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent


def _documented(path, node):
    text = (REPO / "config" / path).read_text().splitlines()
    values = yaml.safe_load("\n".join(text))[node]["ros__parameters"]
    commented, examples = set(), set()
    for prev, line in zip(text, text[1:]):
        key = line.strip().split(":", 1)[0]
        if key in values and prev.strip().startswith("#"):
            commented.add(key)
        elif line.strip().startswith("# ") and line.strip().endswith("]") and ": [" in line:
            examples.add(line.strip()[2:].split(":", 1)[0])  # an empty-list default, shown as a commented example
    return values, commented, examples


@pytest.mark.parametrize("path,node,module,attr", [
    ("perception.yaml", "trajectory_field_node", "trace_anything_ros.ros.params", "PERCEPTION"),
    ("planner.yaml", "manipulation_planner_node", "trace_anything_ros.ros.manipulation_planner_node", "PARAMS"),
])
def test_every_parameter_is_in_its_yaml_with_its_default(path, node, module, attr):
    import importlib
    specs = getattr(importlib.import_module(module), attr)
    values, commented, examples = _documented(path, node)
    names = [s.name for s in specs]
    assert sorted(set(values) | examples) == sorted(names), (set(values) | examples) ^ set(names)
    assert commented | examples == set(names), set(names) - commented - examples
    for s in specs:
        if s.name in values:
            assert values[s.name] == s.default, (s.name, values[s.name], s.default)
        else:
            assert s.default in (None, []), s.name
