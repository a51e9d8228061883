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

"""Parameters of the nodes: one convention, a ``Spec`` table per node (name, default, range/choices, description,
dynamic).

A table drives declaration (ParameterDescriptor with ranges), validation at configure time and at runtime
(add_on_set_parameters_callback), and the documentation check of ``config/<node>.yaml``. A parameter that is a
field of a core dataclass (``pipeline.PipelineParams``, ``planning.planner.PlannerParams``,
``sim.scene.SceneConfig``) is built from that field with ``field_spec``: its default, range (open ends included),
choices and description are the field's ``paramspec.param`` metadata, the numbers the dataclass's ``validate()``
checks -- never repeated here. The tables do not import rclpy; ``descriptor`` and ``declare_parameters`` (shared
by every node) import it when called.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from trace_anything_ros.paramspec import check_value, default_of, meta, range_text
from trace_anything_ros.pipeline.perception import PipelineParams


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None   # inclusive, unless ``open`` says otherwise
    choices: Optional[Sequence[str]] = None
    dynamic: bool = False                          # may change while active (else: only when unconfigured)
    open: Tuple[bool, bool] = (False, False)       # (lower end excluded, upper end excluded)


def _ros_default(value: Any) -> Any:
    """A dataclass default as a ROS parameter value: tuples -> list of floats, None (unset vector) -> []."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return [float(x) for x in value]
    return value


def field_spec(cls, field: str, name: Optional[str] = None, *, dynamic: bool = False,
               description: Optional[str] = None) -> Spec:
    """The Spec of parameter ``name`` (default: the field's name) from field ``field`` of dataclass ``cls``:
    default, range, open ends, choices and description (unless ``description``) from its param() metadata."""
    m = meta(cls, field)
    return Spec(name or field, _ros_default(default_of(cls, field)), description or m["doc"], range=m["range"],
                choices=m["choices"], dynamic=dynamic, open=m["open"])


def dataclass_specs(cls, prefix: str = "", *, dynamic: bool = False) -> List[Spec]:
    """One Spec per field of ``cls`` (in field order), named ``prefix + field``."""
    return [field_spec(cls, f.name, prefix + f.name, dynamic=dynamic) for f in dataclasses.fields(cls)]


# perception parameter -> PipelineParams field (use_depth also sets metric_from_depth: see the node)
PIPELINE_PARAMETERS: Dict[str, str] = {
    "camera_pose.max_gap": "pose_max_gap",
    "tracks.stride": "track_stride",
    "tracks.source_frame": "track_source_frame",
    "tracks.per_object": "tracks_per_object",
    "forecast.horizon": "forecast_horizon",
    "forecast.samples": "forecast_samples",
    "forecast.history": "forecast_history",
    "forecast.tolerance": "forecast_tolerance",
    "motion.enabled": "compute_motion",
    "motion.threshold": "motion_threshold",
    "motion.min_object_pixels": "min_object_pixels",
}


def _pipe(name: str) -> Spec:
    """A dynamic perception parameter that is a PipelineParams field."""
    return field_spec(PipelineParams, PIPELINE_PARAMETERS[name], name, dynamic=True)


def pipeline_params(values: Dict[str, Any]) -> PipelineParams:
    """PipelineParams from the perception node's parameter values (validated)."""
    return PipelineParams(metric_from_depth=bool(values["use_depth"]),
                          **{f: values[n] for n, f in PIPELINE_PARAMETERS.items()}).validate()


# camera input reliability, one rule for every node that subscribes to a camera (ros/qos.py applies it)
QOS_RELIABILITY = Spec("qos.reliability", "auto", "camera input QoS: auto (follows the publishers: reliable when "
                       "every publisher offers reliable, else sensor_data; re-checked every second), sensor_data "
                       "(best effort, volatile), reliable, best_effort",
                       choices=("auto", "sensor_data", "reliable", "best_effort"))

PERCEPTION: List[Spec] = [
    Spec("estimator.factory", "", "FieldEstimator factory 'module:function' (empty: "
         "trace_anything_ros.model.engine:create_estimator)"),
    Spec("estimator.regime", "auto", "input regime of the default estimator (model.regimes): auto (per window from "
         "the inputs: RGB network weights -> official; depth -> rgbd_poses / rgbd (camera poses or not); RGB only -> "
         "rgb_static / rgb_moving, a geometric flow field) or one forced; a forced regime's missing input (depth, "
         "camera poses, RGB network weights) fails the window with its name; reported in /diagnostics "
         "(estimator_regime)", choices=("auto", "official", "rgbd_poses", "rgbd", "rgb_static", "rgb_moving",
                                        "goal_pair")),
    Spec("model.engine", "torch", "inference engine", choices=("torch", "onnx")),
    Spec("model.preset", "compact", "architecture preset when no weights are given (compact, official)"),
    Spec("model.weights", "embedded", "checkpoint path (official trace_anything.pt or ours); 'embedded': the "
         "project's compact model shipped in the package (model/weights/compact_sim.safetensors, simulation-trained); "
         "empty: model.preset with random weights (plumbing tests only, meaningless output)"),
    Spec("model.device", "cpu", "device: cpu, cuda, cuda:0, tensorrt"),
    Spec("model.dtype", "fp32", "inference precision", choices=("fp32", "fp16", "bf16")),
    Spec("model.warmup", True, "run one window of black frames on activate"),
    Spec("model.onnx_path", "", "engine onnx: an exported model to load (empty: export the preset/weights once into "
         "model.cache_dir and reuse that file)"),
    Spec("model.cache_dir", "", "where ONNX exports are cached, keyed by preset, weights, window and input size "
         "(empty: ~/.cache/trace_anything_ros)"),
    Spec("model.threads", 0, "CPU threads of the inference engine (0: the engine's default)", range=(0, 256)),
    Spec("input_height", 0, "model input height in pixels (0: the estimator's default, 96x128 for the embedded model; "
         "RGB only (use_depth false) with the embedded default, 0 makes the grid follow the camera's aspect: "
         "16:9 -> 80x144; a camera wider than a fixed grid's aspect loses its right-hand side to the crop: "
         "/diagnostics model_view_fraction)", range=(0, 4096)),
    Spec("input_width", 0, "model input width in pixels (0: the estimator's default)", range=(0, 4096)),
    Spec("window.length", 4, "frames per window (N; the embedded model is trained on 4, the official one on 2-8+)",
         range=(2, 64)),
    Spec("window.stride", 1, "take every stride-th buffered frame, counted back from the newest", range=(1, 100)),
    Spec("window.min_spacing", 0.0, "minimum seconds between consecutive frames of a window", range=(0.0, 10.0)),
    Spec("window.max_age", 2.0, "a window whose newest frame is older than this (s) when the worker is free is "
         "dropped as stale (0: never)", range=(0.0, 60.0)),
    Spec("window.policy", "latency", "which window the free worker takes: latency (wait up to 2.5 frame periods for a "
         "window whose newest frame has just arrived, when the pending one has already waited: lower latency, up to "
         "one frame period of idle worker per window) or throughput (the pending window at once)",
         choices=("latency", "throughput")),
    Spec("buffer.capacity", 0, "frames in the ring (0: just enough for one window with stride)", range=(0, 10000)),
    Spec("use_depth", False, "subscribe to 'depth' and recover metric scale from it"),
    Spec("image_transport", "raw", "how 'image' and 'depth' arrive: raw (sensor_msgs/Image on 'image' / 'depth') or "
         "compressed (image_transport's sensor_msgs/CompressedImage on '<image>/compressed' (JPEG / PNG) and "
         "'<depth>/compressedDepth' (PNG), after remapping, decoded in the node; a robot that streams or records "
         "only compressed images)", choices=("raw", "compressed")),
    Spec("camera_pose.enabled", False, "subscribe to 'camera_pose' (geometry_msgs/PoseStamped: the camera optical "
         "frame in a fixed frame, e.g. from odometry / TF) and give a depth-aware model each window's camera motion; "
         "needed for a moving camera"),
    Spec("camera_pose.source", "topic", "where camera poses come from: topic ('camera_pose') or tf (camera_pose."
         "fixed_frame <- the image's frame_id at each image stamp; needs tf2_ros)", choices=("topic", "tf")),
    Spec("camera_pose.fixed_frame", "odom", "fixed frame of the tf lookups (camera_pose.source: tf)"),
    _pipe("camera_pose.max_gap"),
    Spec("sync.slop", 0.02, "approximate-time sync: max stamp difference (s) image<->depth/camera_info",
         range=(0.0, 1.0)),
    Spec("sync.queue_size", 10, "images / depth images kept while waiting for a partner", range=(1, 1000)),
    QOS_RELIABILITY,
    Spec("qos.depth", 5, "input QoS history depth", range=(1, 1000)),
    Spec("qos.history", "keep_last", "input QoS history policy", choices=("keep_last", "keep_all")),
    Spec("max_image_pixels", 4096 * 4096, "images declaring more pixels are rejected before allocation",
         range=(1, 1 << 30)),
    Spec("max_frame_id_length", 256, "images / depth / camera_info whose header.frame_id is longer are dropped "
         "(invalid_frame_id): a frame id is copied into every output", range=(1, 65536)),
    Spec("stamp.max_future", 0.25, "images / depth whose stamp is more than this many seconds ahead of the node's "
         "clock are dropped (future_stamp; not checked while a sim clock has no time yet)", range=(0.0, 1e9)),
    Spec("stream.switch_frames", 3, "a change of the image size or time base (a stamp time_reset_threshold behind, "
         "or ahead by more than the time that passed) must hold for this many consecutive frames before the node "
         "switches to it; until then those frames are dropped (size_change / time_reset / time_jump), so a second "
         "publisher interleaving such frames cannot reset the buffer (1: switch at once)", range=(1, 100)),
    Spec("depth.min_range", 0.05, "depth pixels nearer than this (m) are invalid (no return)", range=(0.0, 100.0)),
    Spec("depth.max_range", 20.0, "depth pixels farther than this (m) are invalid; a depth image without a valid "
         "pixel is dropped; outputs with a point farther than 2x this from the camera (or a non-finite number) are "
         "withheld (implausible_output)", range=(0.01, 100000.0)),
    Spec("time_reset_threshold", 1.0, "a backwards stamp jump of at least this many seconds is a time reset "
         "(buffers cleared); smaller ones are dropped as non-monotonic", range=(0.0, 3600.0), dynamic=True),
    _pipe("tracks.stride"),
    _pipe("tracks.source_frame"),
    _pipe("tracks.per_object"),
    _pipe("forecast.horizon"),
    _pipe("forecast.samples"),
    _pipe("forecast.history"),
    _pipe("forecast.tolerance"),
    _pipe("motion.enabled"),
    _pipe("motion.threshold"),
    _pipe("motion.min_object_pixels"),
    Spec("field.float16", False, "publish ~/trajectory_field blobs as float16 (half the bytes)", dynamic=True),
    Spec("mask.encoding", "mono8", "~/dynamic_mask: mono8 (0/255) or 16UC1 (instance labels)",
         choices=("mono8", "16UC1"), dynamic=True),
    Spec("mask.resolution", "source", "~/dynamic_mask size: source image or model grid",
         choices=("source", "model"), dynamic=True),
    Spec("markers.max_tracks", 200, "most trajectories drawn in ~/markers (0: no track markers)",
         range=(0, 100000), dynamic=True),
    Spec("diagnostics.period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    Spec("diagnostics.drop_warn_window", 2.0, "/diagnostics is WARN, naming the reasons, while input was rejected "
         "within the last this many seconds", range=(0.0, 3600.0), dynamic=True),
    Spec("diagnostics.stale_after", 2.0, "WARN when no input arrived for this many seconds", range=(0.01, 3600.0),
         dynamic=True),
    Spec("frame_id", "", "override the frame id of the outputs (empty: the images' frame_id)", dynamic=True),
]

BY_NAME: Dict[str, Spec] = {s.name: s for s in PERCEPTION}


def descriptor(spec: Spec, lifecycle: bool = True):
    """The ParameterDescriptor of ``spec``: description (+ "[configure-time only]"), typed range, choices, and a
    fixed double-array type for list defaults. ``lifecycle=False`` (a plain node that reads its parameters once, at
    start-up): a non-dynamic parameter is read-only ("[read at start-up]"), so that setting it later is refused
    instead of silently doing nothing."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    text = spec.description
    if spec.range is not None and any(spec.open):  # a ROS range is closed: say which end is excluded
        text += f" (valid: {range_text(spec.range, spec.open)})"
    note = "" if spec.dynamic else " [configure-time only]" if lifecycle else " [read at start-up]"
    d = ParameterDescriptor(description=text + note, read_only=not (spec.dynamic or lifecycle))
    if isinstance(spec.default, list):
        d.type = ParameterType.PARAMETER_DOUBLE_ARRAY
        d.dynamic_typing = False
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    if spec.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    return d


def declare_parameters(node, specs: Sequence[Spec], lifecycle: bool = True) -> List[str]:
    """Declare every spec on ``node``. An override (parameter file / command line) that rclpy rejects (out of the
    descriptor's range) does not abort construction: the parameter falls back to its default, the error is logged
    and returned (``"name: reason"``) so that configure can refuse with it."""
    from rclpy.exceptions import InvalidParameterValueException

    errors: List[str] = []
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec, lifecycle))
        except InvalidParameterValueException as e:
            errors.append(f"{spec.name}: {e}")
            node.declare_parameter(spec.name, spec.default, descriptor(spec, lifecycle), ignore_override=True)
    for e in errors:
        node.get_logger().error(f"rejected parameter override: {e}")
    return errors


def check(spec: Spec, value) -> Optional[str]:
    """None when ``value`` is acceptable for ``spec``, else a clear reason."""
    d = spec.default
    if isinstance(d, bool):
        if not isinstance(value, bool):
            return f"{spec.name} must be a bool, got {value!r}"
    elif isinstance(d, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{spec.name} must be an integer, got {value!r}"
    elif isinstance(d, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{spec.name} must be a number, got {value!r}"
    elif isinstance(d, str) and not isinstance(value, str):
        return f"{spec.name} must be a string, got {value!r}"
    return check_value(spec.name, value, range=spec.range, open=spec.open, choices=spec.choices,
                       doc=spec.description)


def check_all(values: Dict[str, Any]) -> List[str]:
    errors = [e for name, v in values.items() if name in BY_NAME for e in [check(BY_NAME[name], v)] if e]
    # cross-parameter rules
    h, w = values.get("input_height", 0), values.get("input_width", 0)
    if (h == 0) != (w == 0):
        errors.append("input_height and input_width must both be 0 (estimator default) or both be set")
    lo, hi = values.get("depth.min_range", 0.0), values.get("depth.max_range", 1.0)
    if lo >= hi:
        errors.append(f"depth.min_range ({lo}) must be below depth.max_range ({hi})")
    return errors
