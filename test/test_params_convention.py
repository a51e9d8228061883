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

"""One parameter convention: a node's parameter that is a core dataclass field (PipelineParams, PlannerParams,
SceneConfig) is declared from the field's metadata, so the node's check, the ROS descriptor and the dataclass's
validate() accept exactly the same values; the shared from_dict refuses unknown keys by name."""
import dataclasses
import math

import pytest

from trace_anything_ros.paramspec import from_dict, meta
from trace_anything_ros.pipeline.perception import PipelineParams
from trace_anything_ros.planning.planner import PlannerParams
from trace_anything_ros.ros import params as P


def _derived():
    """(spec, dataclass, field) for every declared parameter that comes from a dataclass field."""
    from trace_anything_ros.ros.manipulation_planner_node import PARAMS as PLANNER
    from trace_anything_ros.ros.sim_camera_node import PARAMS as CAMERA
    from trace_anything_ros.sim.scene import SceneConfig

    out = [(P.BY_NAME[n], PipelineParams, f) for n, f in P.PIPELINE_PARAMETERS.items()]
    out += [(s, PlannerParams, s.name[len("planner."):]) for s in PLANNER if s.name.startswith("planner.")]
    out += [(s, SceneConfig, {"scene": "preset"}.get(s.name, s.name)) for s in CAMERA
            if s.name in ("seed", "scene", "width", "height", "fovy")]
    return out


def _probes(spec):
    """Values at, just inside and just outside each end of the range (ints: +-1; floats: relative 1e-9)."""
    lo, hi = spec.range
    if isinstance(spec.default, int):
        return [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]
    eps = lambda v: max(abs(v), 1.0) * 1e-9  # noqa: E731
    return [lo - eps(lo), lo, lo + eps(lo), hi - eps(hi), hi, hi + eps(hi), math.nan, math.inf]


def test_every_dataclass_parameter_is_declared_from_its_field():
    derived = _derived()
    assert len(derived) == len(P.PIPELINE_PARAMETERS) + len(dataclasses.fields(PlannerParams)) + 5
    for spec, cls, field in derived:
        m = meta(cls, field)
        assert (spec.range, spec.open, spec.choices) == (m["range"], m["open"], m["choices"]), spec.name
        assert spec.description == m["doc"], spec.name


def test_node_check_and_dataclass_validate_agree_at_every_bound():
    checked = 0
    for spec, cls, field in _derived():
        if spec.range is None:
            continue
        for v in _probes(spec):
            node_ok = P.check(spec, v) is None
            try:
                cls(**{field: v}).validate()
                core_ok = True
            except ValueError:
                core_ok = False
            assert node_ok == core_ok, (spec.name, v, P.check(spec, v))
            checked += 1
    assert checked > 150


def test_open_ends_are_refused_by_both_and_named():
    spec = next(s for s, c, f in _derived() if s.name == "planner.max_linear_velocity")
    assert spec.open == (True, False)
    assert "(0.0, 5.0]" in P.check(spec, 0.0)
    with pytest.raises(ValueError, match=r"max_linear_velocity=0.0 is out of range \(0.0, 5.0\]"):
        PlannerParams(max_linear_velocity=0.0).validate()
    assert P.check(spec, 5.0) is None and P.check(spec, 1e-12) is None


def test_choices_come_from_the_field():
    from trace_anything_ros.ros.sim_camera_node import PARAMS
    from trace_anything_ros.sim.scene import PRESETS, SceneConfig

    scene = next(s for s in PARAMS if s.name == "scene")
    assert tuple(scene.choices) == PRESETS
    assert "not one of" in P.check(scene, "nosuch")
    with pytest.raises(ValueError, match="preset='nosuch' is not one of"):
        SceneConfig(preset="nosuch").validate()


def test_descriptor_carries_the_same_numbers():
    pytest.importorskip("rcl_interfaces.msg", reason="rcl_interfaces (ROS wheels) not installed")
    from trace_anything_ros.ros.manipulation_planner_node import BY_NAME

    d = P.descriptor(BY_NAME["planner.degenerate_ratio"])
    r = d.floating_point_range[0]
    assert (r.from_value, r.to_value) == (0.0, 1.0) and "(valid: [0.0, 1.0))" in d.description
    d = P.descriptor(BY_NAME["planner.num_waypoints"])
    r = d.integer_range[0]
    assert (r.from_value, r.to_value) == meta(PlannerParams, "num_waypoints")["range"]
    d = P.descriptor(P.BY_NAME["tracks.stride"])
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == meta(PipelineParams, "track_stride")[
        "range"]


def test_pipeline_params_from_node_values():
    v = {s.name: s.default for s in P.PERCEPTION}
    v.update({"tracks.stride": 8, "motion.enabled": False, "use_depth": True, "camera_pose.max_gap": 0.2})
    pp = P.pipeline_params(v)
    assert (pp.track_stride, pp.compute_motion, pp.metric_from_depth, pp.pose_max_gap) == (8, False, True, 0.2)
    assert P.pipeline_params({s.name: s.default for s in P.PERCEPTION}) == dataclasses.replace(
        PipelineParams(), metric_from_depth=False)
    v["tracks.stride"] = 2000
    with pytest.raises(ValueError, match="track_stride=2000 is out of range"):
        P.pipeline_params(v)


@pytest.mark.parametrize("cls,what", [("trace_anything_ros.planning.planner:PlannerParams", "planner"),
                                      ("trace_anything_ros.motion.analyze:MotionParams", "motion"),
                                      ("trace_anything_ros.planning.goal_pair:GoalPairParams", "goal-pair")])
def test_from_dict_refuses_unknown_keys_by_name(cls, what):
    import importlib

    mod, name = cls.split(":")
    C = getattr(importlib.import_module(mod), name)
    with pytest.raises(ValueError, match=rf"unknown {what} parameters: \['nosuch', 'other'\]"):
        C.from_dict({"other": 1, "nosuch": 2, "seed": 3})
    assert C.from_dict({"seed": 3}).seed == 3
    with pytest.raises(ValueError, match="unknown parameters"):
        from_dict(PipelineParams, {"x": 1})


def test_rate_alias_is_deprecated_and_still_applied():
    from trace_anything_ros.ros.sim_camera_node import rate_from

    said = []
    assert rate_from({"rate": 0.0, "rate_hz": 10.0}, said.append) == 10.0 and not said
    assert rate_from({"rate": 4.0, "rate_hz": 10.0}, said.append) == 4.0
    assert len(said) == 1 and "deprecated" in said[0] and "rate_hz:=4" in said[0]


def _sim_camera(*params, timeout=120):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "trace_anything_ros.ros.sim_camera_node", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.ros
@pytest.mark.sim
def test_sim_camera_node_refuses_out_of_range_values_and_warns_on_rate():
    bad = _sim_camera("width:=8", "qos.reliability:=sometimes")
    assert bad.returncode != 0
    assert "width" in bad.stderr and "out of range" in bad.stderr, bad.stderr[-2000:]
    assert "qos.reliability='sometimes' is not one of reliable, best_effort" in bad.stderr, bad.stderr[-2000:]
    ok = _sim_camera("rate:=20.0", "duration:=0.2", "real_time:=false", "publish_gt:=false", "width:=64",
                     "height:=48")
    out = ok.stdout + ok.stderr
    assert ok.returncode == 0, out[-2000:]
    assert "parameter 'rate' is deprecated: use rate_hz:=20" in out and "at 20 Hz" in out, out[-2000:]


@pytest.mark.ros
def test_planner_node_refuses_an_open_end_with_the_dataclass_reason(ros_context):
    from rclpy.parameter import Parameter

    from trace_anything_ros.ros.manipulation_planner_node import ManipulationPlannerNode

    node = ManipulationPlannerNode(context=ros_context)
    try:
        desc = node.describe_parameter("planner.max_linear_velocity")
        r = desc.floating_point_range[0]
        assert (r.from_value, r.to_value) == meta(PlannerParams, "max_linear_velocity")["range"]
        res = node.set_parameters([Parameter("planner.max_linear_velocity", Parameter.Type.DOUBLE, 0.0)])[0]
        assert not res.successful and "(0.0, 5.0]" in res.reason, res.reason
        res = node.set_parameters([Parameter("planner.max_linear_velocity", Parameter.Type.DOUBLE, 5.5)])[0]
        assert not res.successful, res.reason                       # the descriptor's own range
        res = node.set_parameters([Parameter("planner.max_linear_velocity", Parameter.Type.DOUBLE, 1e-7)])[0]
        assert res.successful, res.reason                          # PlannerParams accepts it, so does the node
        assert node.get_parameter("planner.max_linear_velocity").value == 1e-7
    finally:
        node.destroy_node()


@pytest.mark.ros
@pytest.mark.sim
def test_sim_camera_parameters_are_read_only_after_start(ros_context):
    from rclpy.parameter import Parameter

    from trace_anything_ros.ros.sim_camera_node import SimCameraNode

    node = SimCameraNode(context=ros_context, parameter_overrides=[Parameter("width", Parameter.Type.INTEGER, 64),
                                                                   Parameter("height", Parameter.Type.INTEGER, 48)])
    try:
        assert node.scene.config.width == 64                       # the override applied at start-up
        d = node.describe_parameter("width")
        assert d.read_only and "[read at start-up]" in d.description
        res = node.set_parameters([Parameter("rate_hz", Parameter.Type.DOUBLE, 20.0)])[0]
        assert not res.successful                                   # was accepted and silently ignored
        assert node.get_parameter("rate_hz").value == 10.0
    finally:
        node.scene.close()
        node.destroy_node()
