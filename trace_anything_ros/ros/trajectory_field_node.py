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

"""trajectory_field_node: camera stream -> trajectory field, tracks, dynamic mask, objects, markers (lifecycle node).

Lifecycle: configure (read + validate parameters, create publishers/subscriptions), activate (load the model
through the estimator factory, warm it up, start the worker), deactivate (stop the worker, free the model),
cleanup, shutdown. Callbacks only convert + resize + enqueue (pipeline.FrameIngest); the worker thread
(pipeline.WindowWorker) runs the model and publishes.

Subscribes: image, camera_info, depth (when use_depth), camera_pose (when camera_pose.enabled). Publishes:
~/trajectory_field, ~/tracks, ~/dynamic_mask, ~/dynamic_objects, ~/markers (each only when subscribed), /diagnostics.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from trace_anything_ros.msg import DynamicObjectArray, TrajectoryArray, TrajectoryField as TrajectoryFieldMsg
from trace_anything_ros.pipeline import (DropCounter, Frame, FrameIngest, PerceptionPipeline, PipelineParams,
                                         Products, WindowSpec, WindowWorker, frame_intrinsics, load_estimator,
                                         preprocess_depth, preprocess_rgb)
from trace_anything_ros.pipeline import frames as F
from trace_anything_ros.pipeline import gates, sync
from trace_anything_ros.model.preprocess import PreprocessBudgetError, aspect_grid, check_cost, crop_fraction
from trace_anything_ros.pipeline.freshness import LatencyFirstWindows
from trace_anything_ros.pipeline.poses import PoseBuffer, pose_matrix
from trace_anything_ros.pipeline.threads import default_model_threads, limit_threads, tune_malloc

from . import conversions as conv
from . import messages

try:  # tf2 is not available as wheels; on a ROS install it is.
    import tf2_ros  # type: ignore
except Exception:  # noqa: BLE001
    tf2_ros = None
from . import diagnostics as diag
from .graph import PERCEPTION_NAME, PERCEPTION_OUTPUTS as OUT, private
from .node_main import spin_node
from .params import BY_NAME, PERCEPTION, check, check_all, declare_parameters, pipeline_params
from .qos import InputSubscriptions, publisher_reliability

NODE_NAME = PERCEPTION_NAME
VIEW_WARN = 0.95  # warn when the model grid sees less than this share of the camera image (its aspect's crop)


class TrajectoryFieldNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._override_errors = declare_parameters(self, PERCEPTION)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.lc_state = "unconfigured"
        self.drops = DropCounter()
        # named warnings (input used, but adapted): camera_info_rescaled, depth_rescaled ...
        self.warned = DropCounter()
        self._drop_lock = threading.Lock()
        self._drop_logged = {}      # reason -> monotonic time of its last log line (one throttle per reason)
        self._drop_quiet = {}       # reason -> lines suppressed since
        self._last_drop = ("", "", None)  # (reason, text, monotonic time)
        # camera messages lost before the image callback (DDS transport, subscription queue): gaps in the DDS
        # publication sequence numbers while ONE publisher sends images (several: not attributable, not counted)
        self.lost_before_node = 0
        self._seq_last = None
        self._inputs: Optional[InputSubscriptions] = None  # camera input subscriptions (qos.reliability)
        self._image_sub_of = lambda: None                  # -> the image subscription (auto QoS recreates it)
        self._loss_mark = (0, 0)  # (frames_in, lost) at the previous diagnostics status
        self.in_rate, self.out_rate = diag.RateMeter(), diag.RateMeter()
        self.latency, self.model_time, self.overhead = diag.Stat(), diag.Stat(), diag.Stat()
        # overhead = queue wait (newest frame arrived while the worker was busy) + processing (post + publish)
        self.queue_wait, self.processing_overhead = diag.Stat(), diag.Stat()
        # processing overhead split: pipeline post-processing (motion, tracks) and building + publishing messages
        self.post_time, self.publish_stat = diag.Stat(), diag.Stat()
        self._malloc_tuned = False
        self.model_state = "unloaded"
        self.model_error = ""
        self.qos_events = 0
        self.qos_event_text = ""
        self.estimator_regime = ""  # input regime of the newest window (model.regimes), in diagnostics
        self.exposure_gain = 1.0    # the estimator's brightening of a dim stream (model.flow_field), in diagnostics
        self.warnings = {}          # current warnings shown in diagnostics (the worker sets "camera_pose")
        self._view_hw, self.view_fraction = None, 1.0  # image size last checked; share of it the model grid sees
        self._view_warned = set()                       # image sizes whose view (grid, crop) was logged
        self._grid_follows = False                      # the camera's aspect sets the grid (on_activate)
        self._grid_base = (96, 128)                     # ... of about this grid's pixel count
        self._lock = threading.Lock()  # depth/image sync queues: input callbacks vs lifecycle transitions
        self._estimator = None
        self._worker: Optional[WindowWorker] = None
        self._ingest: Optional[FrameIngest] = None
        self._subs = []
        self._pubs = {}
        self._infos = deque(maxlen=10)
        self._distortion = gates.DistortionCheck()     # the newest camera_info's distortion, judged once per one
        self._depths = deque(maxlen=10)
        self._pending = deque(maxlen=10)
        self._last_info_warn = False
        self._poses: Optional[PoseBuffer] = None  # camera poses (camera_pose.enabled)
        self._tf_buffer = self._tf_listener = None  # camera_pose.source: tf
        self._camera_frame = ""
        self.windows_without_pose = 0
        self.camera_motion = ""
        self._cfg = {}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics.period").value),
                                             self._publish_diagnostics)

    # ---------------------------------------------------------------------------------------------- params
    def _values(self) -> dict:
        return {s.name: self.get_parameter(s.name).value for s in PERCEPTION}

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            spec = BY_NAME.get(p.name)
            if spec is None:
                continue
            err = check(spec, p.value)
            if err:
                return SetParametersResult(successful=False, reason=f"rejected: {err}")
            self._override_errors = [e for e in self._override_errors if not e.startswith(p.name + ":")]
            if not spec.dynamic and self.lc_state != "unconfigured":
                return SetParametersResult(
                    successful=False,
                    reason=f"rejected: {p.name} is read on configure; it cannot change while {self.lc_state} "
                           "(deactivate and clean up first)")
        # apply the dynamic ones after the set succeeded (values are read from the node then)
        self._apply_dynamic_later = True
        return SetParametersResult(successful=True)

    def _pipeline_params(self, v: dict) -> PipelineParams:
        return pipeline_params(v)

    # ------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values()
        errors = list(self._override_errors) + check_all(v)
        if v["camera_pose.enabled"] and v["camera_pose.source"] == "tf" and tf2_ros is None:
            errors.append("camera_pose.source: tf needs tf2_ros, which is not importable here (use 'topic' with a "
                          "PoseStamped source)")
        if errors:
            for e in errors:
                self.get_logger().error(f"configure rejected: {e}")
            self.model_error = "; ".join(errors)
            return TransitionCallbackReturn.FAILURE
        self._cfg = v
        self._spec = WindowSpec(length=v["window.length"], stride=v["window.stride"],
                                min_spacing=v["window.min_spacing"], max_age=v["window.max_age"])
        qsize = v["sync.queue_size"]
        self._infos, self._depths, self._pending = deque(maxlen=qsize), deque(maxlen=qsize), deque(maxlen=qsize)
        out_q = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "field": self.create_lifecycle_publisher(TrajectoryFieldMsg, private(OUT["field"]), out_q),
            "tracks": self.create_lifecycle_publisher(TrajectoryArray, private(OUT["tracks"]), out_q),
            "mask": self.create_lifecycle_publisher(Image, private(OUT["mask"]), out_q),
            "objects": self.create_lifecycle_publisher(DynamicObjectArray, private(OUT["objects"]), out_q),
            "markers": self.create_lifecycle_publisher(MarkerArray, private(OUT["markers"]), out_q),
        }
        ev = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        # camera inputs: qos.reliability (auto: follows the publishers, re-checked every second -- ros/qos.py)
        self._inputs = InputSubscriptions(self, v["qos.reliability"], v["qos.depth"], v["qos.history"],
                                          on_switch=self._on_input_qos_switch)
        # every input callback runs through _guarded: no exception leaves it (counted + logged as callback_error)
        packed = v["image_transport"] == "compressed"
        img_type, img_topic = messages.camera_input(self, "image", packed)
        self._image_sub_of = self._inputs.add(img_type, img_topic, self._guarded(self._on_image, "image", seq=True),
                                              event_callbacks=ev)
        self._seq_last = None
        self._inputs.add(CameraInfo, "camera_info", self._guarded(self._on_info, "camera_info"), event_callbacks=ev)
        if v["use_depth"]:
            d_type, d_topic = messages.camera_input(self, "depth", packed)
            self._inputs.add(d_type, d_topic, self._guarded(self._on_depth, "depth"), event_callbacks=ev)
        self._subs = []
        self._poses = PoseBuffer() if v["camera_pose.enabled"] else None
        self._tf_buffer = self._tf_listener = None
        if self._poses is not None and v["camera_pose.source"] == "tf":
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
            self._poses.fetch = self._tf_pose_at  # looked up by the worker at each window's stamps
        elif self._poses is not None:  # sensor-data QoS: matches best-effort and reliable publishers
            self._subs.append(self.create_subscription(PoseStamped, "camera_pose",
                                                       self._guarded(self._on_camera_pose, "camera_pose"),
                                                       qos_profile_sensor_data, event_callbacks=ev))
        self.model_error = ""
        self.lc_state = "inactive"
        self.get_logger().info(
            f"configured: window {self._spec.length} (stride {self._spec.stride}, min spacing "
            f"{self._spec.min_spacing} s), qos {v['qos.reliability']}/{v['qos.depth']}, depth "
            f"{'on' if v['use_depth'] else 'off'}, image transport {v['image_transport']} ({img_topic})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values()
        params = {"engine": v["model.engine"], "preset": v["model.preset"], "weights": v["model.weights"],
                  "device": v["model.device"], "dtype": v["model.dtype"], "window": v["window.length"],
                  "regime": v["estimator.regime"]}  # input regimes (model.regimes); other factories ignore it
        for key, name in (("onnx_path", "model.onnx_path"), ("onnx_cache_dir", "model.cache_dir"),
                          ("threads", "model.threads")):
            if v[name]:
                params[key] = v[name]
        # inference threads set deliberately: model.threads, or every core but one (the receiving thread's)
        params.setdefault("threads", default_model_threads())
        if v["input_height"] > 0:
            params["input_size"] = [v["input_height"], v["input_width"]]
        self.model_state = "loading"
        self._publish_diagnostics()  # the executor is single-threaded: the periodic ones pause while the model loads
        t0 = time.perf_counter()
        try:
            est = load_estimator(v["estimator.factory"], params)
            pipeline = PerceptionPipeline(est, self._pipeline_params(v), poses=self._poses)
            warm = pipeline.warmup(self._spec.length) if v["model.warmup"] else 0.0
        except Exception as e:  # noqa: BLE001 - any load failure is reported, the node stays up
            self.model_state = "failed"
            self.model_error = f"{type(e).__name__}: {e}"
            self.get_logger().error(f"model failed to load: {self.model_error}")  # one line; details at debug
            self.get_logger().debug(traceback.format_exc(limit=5))
            return TransitionCallbackReturn.FAILURE
        self._estimator = est
        self.input_size = tuple(int(x) for x in est.input_size)
        self._view_hw, self.view_fraction, self._view_warned = None, 1.0, set()
        # RGB only, no grid configured, an estimator that works on any grid (the geometric flow field): the grid
        # follows the camera's aspect, as `process` does (README, 'Model grid and camera aspect')
        self._grid_follows = v["input_height"] == 0 and not v["use_depth"] \
            and bool(getattr(est, "any_grid_without_depth", lambda: False)())
        self._grid_base = self.input_size
        cap = v["buffer.capacity"] or self._spec.ring_capacity()
        cap = max(cap, self._spec.length)
        self._ingest = FrameIngest(cap, time_reset_threshold=v["time_reset_threshold"], drops=self.drops,
                                   on_event=self._on_stream_event, window=self._spec,
                                   switch_frames=v["stream.switch_frames"], max_future=v["stamp.max_future"])
        source = LatencyFirstWindows(self._ingest) if v["window.policy"] == "latency" else self._ingest
        self._worker = WindowWorker(source, pipeline, self._publish_products, self._on_worker_error,
                                    products=self._wanted_products).start()
        self.model_state = "ready"
        self.model_error = ""
        self.lc_state = "active"
        self.get_logger().info(f"activated: model loaded in {time.perf_counter() - t0:.2f} s (warm-up {warm:.2f} s),"
                               f" input {self.input_size[1]}x{self.input_size[0]}, ring {cap} frames; "
                               f"{getattr(est, 'description', type(est).__name__)}")
        return super().on_activate(state)

    def _release(self):
        if self._worker is not None:
            self._ingest.close()
            self._worker.stop()
            self._worker = None
        self._ingest = None
        if self._estimator is not None:
            try:
                self._estimator.close()
            except Exception as e:  # noqa: BLE001
                self.get_logger().warn(f"estimator close failed: {e}")
            self._estimator = None
        with self._lock:
            self._pending.clear()
            self._depths.clear()
        if self.model_state != "failed":
            self.model_state = "unloaded"

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lc_state = "inactive"
        self._release()
        self.get_logger().info("deactivated: model freed")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self._inputs is not None:
            self._inputs.destroy()
        self._inputs, self._image_sub_of = None, lambda: None
        for p in self._pubs.values():
            self.destroy_lifecycle_publisher(p)
        self._pubs = {}
        self._infos.clear()
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._tf_buffer = self._tf_listener = None
        self._poses = None
        self.lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lc_state = "finalized"
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------------------------------- callbacks
    # Hostile input (issue 14): every callback bounds its cost from the message's declared fields before converting
    # anything, every rejection is a counted drop with one log throttle per reason, and no exception leaves a
    # callback (_guarded). Policies (drop = the message is not used; warning = used, adapted, and named):
    #   image    invalid_frame_id, zero/duplicate/non_monotonic/future_stamp, size_change/time_reset/time_jump (until
    #            stream.switch_frames consistent frames confirm it), extreme_aspect (resize budget), the
    #            conversion's reasons (unsupported_encoding, too_large, wrong_step, truncated, oversized_data)
    #   depth    the same message checks, future_stamp, invalid_depth (no pixel within depth.min/max_range),
    #            depth_size_mismatch (another aspect ratio than its image); warning depth_rescaled (same aspect)
    #   camera_info  invalid_frame_id, invalid_camera_info (gates.intrinsics_problem), camera_info_size_mismatch
    #            (another aspect ratio than the image stream); warnings camera_info_rescaled (same aspect, other
    #            size) and camera_info_size_mismatch (no camera_info fits an image: it runs without intrinsics)
    #   camera_pose  invalid_frame_id, invalid_camera_pose
    #   outputs  implausible_output: a window with a non-finite number or a point beyond 2 x depth.max_range
    DROP_LOG_PERIOD = 5.0  # s between two log lines of one drop reason

    def _guarded(self, fn, what: str, seq: bool = False):
        """``fn(msg)`` wrapped so that no exception leaves it; ``seq``: the callback takes rclpy's MessageInfo too
        (two parameters) and counts the messages lost before it (``_note_sequence``)."""
        def cb(msg):
            try:
                fn(msg)
            except Exception as e:  # noqa: BLE001 - a callback never lets an exception reach the executor
                self._drop("callback_error", f"{what} callback failed: {type(e).__name__}: "
                                             f"{gates.clip(str(e), 200)}")

        def cb_info(msg, info):
            try:
                self._note_sequence(info)
            except Exception as e:  # noqa: BLE001
                self._drop("callback_error", f"{what} message info: {type(e).__name__}: {gates.clip(str(e), 200)}")
            cb(msg)
        return cb_info if seq else cb

    def _note_sequence(self, info):
        seq = info.get("publication_sequence_number") if info else None
        sub = self._image_sub_of()
        if seq is None or sub is None:
            return
        if sub.get_publisher_count() != 1:  # several writers: their sequence numbers interleave
            self._seq_last = None
            return
        last, self._seq_last = self._seq_last, int(seq)
        if last is not None and seq > last + 1:
            self.lost_before_node += int(seq) - last - 1

    def _drop(self, reason: str, message: str):
        self.drops.add(reason)
        self._note_drop(reason, message)

    def _note_drop(self, reason: str, message: str):
        """Log a drop already counted: at most one line per reason every DROP_LOG_PERIOD s (with the number of
        lines suppressed since), remembered for /diagnostics (last reason and text, WARN window)."""
        now = time.monotonic()
        self.drops.seen(reason, now)
        with self._drop_lock:
            self._last_drop = (reason, message[:300], now)
            t = self._drop_logged.get(reason)
            if t is not None and now - t < self.DROP_LOG_PERIOD:
                self._drop_quiet[reason] = self._drop_quiet.get(reason, 0) + 1
                return
            self._drop_logged[reason] = now
            quiet = self._drop_quiet.pop(reason, 0)
        more = f" [{quiet} more since the last such line]" if quiet else ""
        self.get_logger().warn(f"dropped input ({reason}): {message}{more}")

    def _on_stream_event(self, kind: str, message: str):
        """A confirmed size / time-base change of the image stream (FrameIngest): logged; the frames that announced
        it were the camera's, not hostile input, so they no longer hold /diagnostics at WARN."""
        self.drops.forget(kind)
        self.get_logger().warn(message)

    def _warn_input(self, key: str, message: str):
        """A named warning: the input is used, adapted; counted and shown in /diagnostics until it stops."""
        self.warned.add(key)
        if key not in self.warnings:
            self.get_logger().warn(message)
        self.warnings[key] = message

    def _check_view(self, hw):
        """How much of a camera image of size ``hw`` the model grid sees (``/diagnostics`` model_view_fraction); a
        camera of another aspect loses part of its image to the grid's crop (a wider one its right-hand side): logged
        once per image size. With ``_grid_follows`` the grid follows every size the stream accepts (the first, and a
        confirmed change: a stray first frame does not fix it): frames are prepared on it from here on, and the
        estimator, which runs in the worker, follows their grid by itself (``RegimeEstimator.predict``); the ingest
        clears the ring at a size change, so no window mixes grids."""
        self._view_hw = hw
        followed = False
        if self._grid_follows:
            try:
                g = aspect_grid(hw, self._grid_base)
            except ValueError:
                g = self.input_size
            followed, self.input_size = g != self.input_size, g
        try:
            self.view_fraction = 1.0 - crop_fraction(hw, self.input_size)
        except ValueError:  # a grid the preprocessing refuses: reported where the frame is prepared
            return
        if hw in self._view_warned or len(self._view_warned) >= 16:  # once per camera size (a flapping camera:
            return                                                    # not per switch)
        low = self.view_fraction < VIEW_WARN
        if followed:
            g = self.input_size
            text = (f"model grid {g[1]}x{g[0]} (follows the {hw[1]}x{hw[0]} camera's aspect; sees "
                    f"{100 * self.view_fraction:.0f} %): RGB only, the geometric flow field works on any grid; set "
                    f"input_height / input_width to fix one")
            if low:  # one severity per call site (rclpy)
                self.get_logger().warn(text)
            else:
                self.get_logger().info(text)
            self._view_warned.add(hw)
        elif low:
            self._view_warned.add(hw)
            g = aspect_grid(hw, self.input_size)
            self.get_logger().warn(
                f"the model grid {self.input_size[1]}x{self.input_size[0]} sees {100 * self.view_fraction:.0f} % of "
                f"the {hw[1]}x{hw[0]} camera image (another aspect ratio: the grid's top-left crop drops the rest). "
                f"The geometric RGB estimator works on any grid: input_height: {g[0]}, input_width: {g[1]} sees "
                f"{100 * (1 - crop_fraction(hw, g)):.0f} %. The embedded depth-aware network was trained on 96x128 "
                f"and degrades on other grids (README, 'Model grid and camera aspect').")

    def _now_ns(self) -> int:
        """The node clock for the ``stamp.max_future`` check. Under sim time it is extrapolated at the wall clock's
        rate since /clock last advanced: a simulator publishes /clock and then its images with the same stamp, and
        the executor may take an image before the /clock messages queued ahead of it (the manipulation graph
        dropped ~13 depth frames in 20 s as future_stamp under load without this)."""
        clock = self.get_clock()
        now = int(clock.now().nanoseconds)
        if not getattr(clock, "ros_time_is_active", False) or now <= 0:
            return now
        mono = time.monotonic_ns()
        last = getattr(self, "_sim_clock_seen", None)
        if last is None or last[0] != now:
            self._sim_clock_seen = (now, mono)
            return now
        return now + (mono - last[1])

    def input_subscriptions(self) -> list:
        """Every input subscription now; the camera's follow their publishers' QoS and may be recreated (rclpy's
        ``Node.subscriptions`` is another thing: the executor's list)."""
        return (self._inputs.subscriptions() if self._inputs is not None else []) + list(self._subs)

    def _on_input_qos_switch(self, topic: str, reliable: bool):
        """qos.reliability auto resubscribed ``topic``: the image's sequence-number gap across it is no loss."""
        self._seq_last = None

    def _on_incompatible_qos(self, event):
        if self._inputs is not None and self._inputs.mode == "auto":
            # a best-effort publisher joined a reliable subscription that follows the publishers: the next check
            # (within a second) resubscribes best effort; nothing to fix, so no error and no count
            self.get_logger().info("a camera publisher with another QoS joined: following it (qos.reliability: "
                                   "auto)", throttle_duration_sec=5.0)
            return
        self.qos_events = int(event.total_count)
        self.qos_event_text = (f"incompatible QoS requested by a subscription (policy id {event.last_policy_kind}, "
                               f"{event.total_count} events): check the publisher's QoS vs qos.reliability")
        self.get_logger().error(self.qos_event_text, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo):
        if self._ingest is None:
            return
        bad = conv.header_problem(msg.header, self._cfg["max_frame_id_length"])
        hw = (int(msg.height), int(msg.width))
        if bad is None:
            bad = gates.intrinsics_problem(msg.k, hw)
        cur = self._ingest.size  # the image stream's size: camera_info of another aspect cannot describe it
        if bad is None and cur is not None and not gates.same_aspect(cur, hw):
            bad = ("camera_info_size_mismatch", f"{hw[1]}x{hw[0]}, another aspect ratio than the {cur[1]}x{cur[0]} "
                                                "images")
        if bad is not None:
            self._drop(bad[0], f"camera_info: {bad[1]}")
            return
        self._infos.append((conv.stamp_to_ns(msg.header.stamp), np.asarray(msg.k, np.float64).reshape(3, 3), hw))
        self._check_distortion(msg, hw)

    def _check_distortion(self, msg: CameraInfo, hw):
        """A named warning (``camera_info_distorted``) while the camera_info describes an image that is not
        rectified: the node lifts pixels with K alone (as image_proc's ``image_rect`` is meant to be used), so
        a raw image's distortion would bend the 3D field towards its edges. Judged once per distortion."""
        text, _ = self._distortion(msg.k, msg.d, msg.distortion_model, hw)
        if text is None:
            self._clear_warning("camera_info_distorted")
        else:
            self._warn_input("camera_info_distorted", text)

    def _intrinsics_for(self, stamp_ns: int, image_hw):
        if not self._infos:
            if not self._last_info_warn:
                self._last_info_warn = True
                self.warnings["camera_info"] = "no camera_info: running without intrinsics (up to scale)"
                self.get_logger().warn(self.warnings["camera_info"])
            return None
        self.warnings.pop("camera_info", None)
        self._last_info_warn = False
        got = sync.pick_camera_info(self._infos, stamp_ns, image_hw, int(self._cfg["sync.slop"] * 1e9),
                                    self._warn_input, self._clear_warning)
        if got is None:
            return None
        k = frame_intrinsics(got[0], tuple(image_hw), self.input_size, info_hw=got[1])
        return k if np.isfinite(k).all() else None

    def _clear_warning(self, key: str):
        self.warnings.pop(key, None)

    def _admit(self, msg, what: str, encodings):
        """Checks of a message's declared fields, before any conversion (a zero-copy view validates shape, step,
        encoding and data length): (stamp_ns, (h, w)) or None (dropped)."""
        bad = conv.header_problem(msg.header, self._cfg["max_frame_id_length"])
        if bad is not None:
            self._drop(bad[0], f"{what}: {bad[1]}")
            return None
        try:
            if conv.is_compressed(msg):  # the size its header declares, before anything is decoded
                hw = conv.compressed_image_size(msg, self._cfg["max_image_pixels"], depth=what == "depth")
            else:
                conv.image_to_array(msg, self._cfg["max_image_pixels"], encodings)
                hw = (int(msg.height), int(msg.width))
        except conv.ImageError as e:
            self._drop(e.reason, f"{what}: {e}")
            return None
        try:
            check_cost(hw, self.input_size)  # the resize to the model grid stays within budget for this shape
        except PreprocessBudgetError as e:
            self._drop(e.reason, f"{what}: {e}")
            return None
        return conv.stamp_to_ns(msg.header.stamp), hw

    def _on_image(self, msg):  # sensor_msgs/Image, or CompressedImage (image_transport: compressed)
        ingest = self._ingest
        if ingest is None:
            return
        self.in_rate.tick()
        got = self._admit(msg, "image", conv.COLOR_ENCODINGS)
        if got is None:
            return
        stamp_ns, hw = got
        now_ns = self._now_ns()
        reason = ingest.admit(stamp_ns, hw, now_ns, candidates=not self._cfg["use_depth"])  # counted there
        if reason is not None:  # before any conversion work (push decides again under its lock)
            self._note_drop(reason, f"image stamp {stamp_ns * 1e-9:.9f} s, {hw[1]}x{hw[0]}"
                            + (f" (node clock {now_ns * 1e-9:.3f} s)" if reason == F.FUTURE_STAMP else ""))
            return
        if hw != self._view_hw:  # a size the stream accepted (a lone odd-size frame was dropped above)
            self._check_view(hw)
        try:
            rgb = conv.to_rgb(msg, self._cfg["max_image_pixels"], target=self.input_size)
        except conv.ImageError as e:
            self._drop(e.reason, str(e))
            return
        self._camera_frame = msg.header.frame_id
        frame = Frame(stamp_ns=stamp_ns, rgb=preprocess_rgb(rgb, self.input_size), frame_id=msg.header.frame_id,
                      intrinsics=self._intrinsics_for(stamp_ns, hw), source_size=hw)
        if self._cfg["use_depth"]:
            with self._lock:
                self._pending.append(frame)
                self._match_depth(ingest)
        else:
            self._push(ingest, frame, now_ns)

    def _push(self, ingest: FrameIngest, frame: Frame, now_ns=None):
        reason = ingest.push(frame, now_ns)
        if reason is not None:  # counted by the ingest
            self._note_drop(reason, f"image stamp {frame.stamp_ns * 1e-9:.9f} s")

    def _on_depth(self, msg):  # sensor_msgs/Image, or CompressedImage (compressedDepth)
        if self._ingest is None:
            return
        got = self._admit(msg, "depth", conv.DEPTH_ENCODINGS)
        if got is None:
            return
        stamp_ns, hw = got
        now_ns, fut = self._now_ns(), self._cfg["stamp.max_future"]
        if now_ns > 0 and stamp_ns - now_ns > fut * 1e9:
            self._drop(F.FUTURE_STAMP, f"depth stamp {stamp_ns * 1e-9:.9f} s is ahead of the node clock "
                                       f"{now_ns * 1e-9:.3f} s")
            return
        try:
            d, valid = conv.to_depth_metres(msg, self._cfg["max_image_pixels"], self._cfg["depth.min_range"],
                                            self._cfg["depth.max_range"])
        except conv.ImageError as e:
            self._drop(e.reason, f"depth: {e}")
            return
        if not valid.any():
            self._drop(F.BAD_DEPTH, f"depth image has no valid pixel (zero / NaN / inf / outside "
                                    f"[{self._cfg['depth.min_range']}, {self._cfg['depth.max_range']}] m)")
            return
        item = (stamp_ns, preprocess_depth(d, self.input_size), hw)
        with self._lock:
            ingest = self._ingest
            if ingest is None:
                return
            self._depths.append(item)
            self._match_depth(ingest)

    def _on_camera_pose(self, msg: PoseStamped):
        if self._poses is None:
            return
        bad = conv.header_problem(msg.header, self._cfg["max_frame_id_length"])
        if bad is not None:
            self._drop(bad[0], f"camera_pose: {bad[1]}")
            return
        p, q = msg.pose.position, msg.pose.orientation
        try:
            T = pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError as e:
            self._drop("invalid_camera_pose", f"camera_pose: {e}")
            return
        self._poses.add(conv.stamp_to_ns(msg.header.stamp), T, msg.header.frame_id)

    def _tf_pose_at(self, stamp_ns: int):
        """camera_pose.source tf: fixed_frame <- the camera's frame at ``stamp_ns`` (None while tf2 has none)."""
        import rclpy.time
        tr = self._tf_buffer.lookup_transform(self._cfg["camera_pose.fixed_frame"], self._camera_frame,
                                              rclpy.time.Time(nanoseconds=int(stamp_ns)))
        t, q = tr.transform.translation, tr.transform.rotation
        return pose_matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    def _match_depth(self, ingest: FrameIngest):
        """Pair pending images with depth images (called with ``self._lock`` held): pipeline.sync.match_depth."""
        sync.match_depth(self._pending, self._depths, self._cfg["sync.slop"], lambda fr: self._push(ingest, fr),
                         self._drop, self._warn_input, self._clear_warning)

    def _on_worker_error(self, exc: BaseException):
        if not self.context.ok():
            # shutdown (Ctrl-C) while a window was in flight: its publish failed on the invalid context -- not a
            # model failure, and rosout cannot take a log line any more
            return
        self.drops.add("model_error")
        self.model_error = f"{type(exc).__name__}: {exc}"
        win = self._worker.last_window if self._worker is not None else None
        ctx = (f"{len(win)} frames, stamps {win[0].stamp_ns * 1e-9:.3f}..{win[-1].stamp_ns * 1e-9:.3f} s"
               if win else "no window")
        # one line per failed window (context included); the node goes on with the next window
        self.get_logger().error(f"window dropped, model failed ({ctx}; failure "
                                f"{self.drops['model_error']}): {self.model_error}")

    # -------------------------------------------------------------------------------------------- outputs
    def _wanted_products(self) -> set:
        """Products somebody subscribes to now (the worker skips the work for the others)."""
        pubs = self._pubs
        return {k for k, p in pubs.items() if p.get_subscription_count() > 0}

    def _note_camera_motion(self, status: str):
        """Per window: were the camera poses there (camera_pose.enabled)? Missing ones are a warning."""
        self.camera_motion = status
        if self._poses is None:
            return
        if status != "poses":
            self.windows_without_pose += 1
            why = status or "the model does not take camera poses (not depth-aware)"
            self.warnings["camera_pose"] = f"window run as if the camera were static: {why}"
            self.get_logger().warn(self.warnings["camera_pose"], throttle_duration_sec=5.0)
        else:
            self.warnings.pop("camera_pose", None)

    def _publish_products(self, pr: Products):
        if not self.context.ok():  # shutting down: the publishers' context is gone (a failure is caught above)
            return
        t_pub0 = time.perf_counter()
        v = self._values() if getattr(self, "_apply_dynamic_later", False) else self._cfg
        if getattr(self, "_apply_dynamic_later", False):
            self._apply_dynamic_later = False
            self._cfg = v
            if self._worker is not None:
                self._worker.pipeline.params = self._pipeline_params(v)
        self._note_camera_motion(pr.camera_motion)
        self.estimator_regime = pr.regime or self.estimator_regime  # the input regime of the newest window
        self.exposure_gain = float(pr.field.extras.get("exposure_gain", 1.0))
        if pr.estimator_warnings:  # inputs the estimator missed, named (e.g. no camera_info for the depth lifting)
            self.warnings["estimator"] = "; ".join(pr.estimator_warnings)
        else:
            self.warnings.pop("estimator", None)
        bad = gates.products_problem(pr, 2.0 * v["depth.max_range"])  # nothing non-finite / absurd is published
        if bad is not None:
            self._drop(bad[0], f"window {pr.stamps_ns[0] * 1e-9:.3f}..{pr.stamps_ns[-1] * 1e-9:.3f} s withheld: "
                               f"{bad[1]}")
            return
        pubs = self._pubs
        if not pubs:
            return
        wanted = [k for k, p in pubs.items() if p.get_subscription_count() > 0]
        if "field" in wanted and not self._malloc_tuned:  # 21 MB buffers from now on: keep them in the heap
            self._malloc_tuned = True
            tune_malloc(force=True)
        # the one products -> messages mapping (ros/messages.py), each output published before the next is built
        for key, msg in messages.publishable(pr, messages.OutputOptions.from_params(v), wanted):
            pubs[key].publish(msg)
        now = time.monotonic()
        self.out_rate.tick(now)
        self.latency.add(now - pr.arrival)
        self.model_time.add(pr.timings.get("model", 0.0))
        self.overhead.add((now - pr.arrival) - pr.timings.get("model", 0.0))
        if "start_mono" in pr.timings:
            self.queue_wait.add(pr.timings["start_mono"] - pr.arrival)
            self.processing_overhead.add(now - pr.timings["start_mono"] - pr.timings.get("model", 0.0))
        self.publish_time = time.perf_counter() - t_pub0
        self.publish_stat.add(self.publish_time)
        if "post" in pr.timings:
            self.post_time.add(pr.timings["post"])

    # -------------------------------------------------------------------------------------------- diagnostics
    def diagnostic_status(self):
        now = time.monotonic()
        since = (now - self.in_rate.last) if self.in_rate.last is not None else float("inf")
        stats = {k: s.summary() for k, s in (
            ("latency_s", self.latency), ("model_time_s", self.model_time), ("overhead_s", self.overhead),
            ("queue_wait_s", self.queue_wait), ("processing_overhead_s", self.processing_overhead),
            ("post_s", self.post_time), ("publish_s", self.publish_stat))}
        win = self._cfg.get("diagnostics.drop_warn_window", 2.0)
        recent = self.drops.recent(win, now)
        with self._drop_lock:
            last_reason, last_text, last_t = self._last_drop
        lost, n_in = self.lost_before_node, self.in_rate.count
        d_lost, d_in = lost - self._loss_mark[1], n_in - self._loss_mark[0]
        self._loss_mark = (n_in, lost)
        ingest, poses = self._ingest, self._poses
        ingest_st = None if ingest is None else dict(ingest.stats(), switches=ingest.switches)
        snap = diag.PerceptionSnapshot(
            lc_state=self.lc_state, model_state=self.model_state, model_error=self.model_error,
            input_rate_hz=self.in_rate.rate(now), output_rate_hz=self.out_rate.rate(now),
            frames_in=n_in, windows_out=self.out_rate.count, since_input_s=since,
            drops=self.drops.snapshot(), warned=self.warned.snapshot(), stats=stats,
            qos_events=self.qos_events, qos_event_text=self.qos_event_text,
            last_drop=(last_reason, last_text, None if last_t is None else now - last_t), recent_drops=recent,
            drop_warn_window=win, stale_after=self._cfg.get("diagnostics.stale_after", 2.0), ingest=ingest_st,
            lost_before_node=lost, lost_since_last=d_lost, in_since_last=d_in,
            camera_pose=None if poses is None else (self.camera_motion, self.windows_without_pose, len(poses)),
            estimator_regime=self.estimator_regime, exposure_gain=self.exposure_gain, view_fraction=self.view_fraction,
            sync_queues=(len(self._pending), len(self._depths), len(self._infos), self._pending.maxlen or 0),
            warnings=list(self.warnings.values()),  # a snapshot: the worker thread may change it meanwhile
            input_qos=self._input_qos(), image_publishers=self._image_publishers())
        level, message, values, loss = diag.perception_report(snap)
        if loss is not None:
            self.get_logger().warn(loss, throttle_duration_sec=5.0)
        return diag.status(f"{self.get_name()}: perception", self.get_fully_qualified_name(), level, message,
                           values)

    def _input_qos(self) -> str:
        """The image subscription's reliability (``reliable`` | ``best_effort``; ``""`` unconfigured)."""
        sub = self._image_sub_of()
        if sub is None:
            return ""
        return "reliable" if sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE else "best_effort"

    def _image_publishers(self) -> tuple:
        """(reliable, best effort): the QoS the image topic's publishers offer (diagnosing input loss)."""
        sub = self._image_sub_of()
        return (0, 0) if sub is None else publisher_reliability(self, sub.topic_name)

    def _publish_diagnostics(self):
        try:
            self._diag_pub.publish(diag.array(self.get_clock().now().to_msg(), [self.diagnostic_status()]))
        except Exception as e:  # noqa: BLE001 - diagnostics must never take the node down
            self.get_logger().warn(f"diagnostics failed: {e}", throttle_duration_sec=10.0)


def main(args=None) -> int:
    # The worker's post-processing must not starve the thread that receives the camera stream: single-threaded
    # BLAS / OpenCV (small matrices; BLAS threads also spin after each call), a 1 ms GIL switch interval (a thread
    # waiting for the GIL gets it within 1 ms instead of 5 ms: the executor needs it several times per message)
    # and a single-threaded executor: the callbacks only convert and enqueue (the model and post-processing run in
    # the worker thread), and rclpy's MultiThreadedExecutor cost several times the node CPU per window with fewer
    # frames received (README, "Latency of the node"; `trace-anything-ros bench node`).
    # TAR_MALLOC_TUNE=1: large buffers stay in the malloc heap from the start (threads.tune_malloc; otherwise from
    # the first published field on; TAR_MALLOC_TUNE=0: never).
    limit_threads(blas=1, cv=1)
    tune_malloc()
    sys.setswitchinterval(0.001)
    return spin_node(TrajectoryFieldNode, args, cleanup=lambda node: node._release())


if __name__ == "__main__":
    sys.exit(main())
