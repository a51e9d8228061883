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

"""pipeline.Products -> the perception node's output messages: the one home of that mapping.

The node publishes the serialized messages ``publishable`` yields, and everything that records the node's outputs
offline (``process``'s MCAP, tests, tools) writes ``serialized_products`` of the same products: a recording is
byte-identical to the live topic. Serialized, not message objects, because rclpy's own serialization leaves the CDR
alignment padding uninitialised (two serializations of one message differ): every output here has one canonical
form (``conversions.serialize_canonical``: padding zeroed). Image / stamp / field-blob / CDR conversions live in
``conversions`` (this module composes them); nothing here keeps state.

Two outputs are written as CDR directly, because rclpy's message path costs more than the node's budget for them:
the dense field (``conversions.field_to_cdr``: each blob copied once) and the tracks (``conversions.tracks_to_cdr``:
no geometry_msgs/Point objects). ``tracks_message`` / ``field_message`` build the same content as message objects
(the reference the direct forms are tested against, and what a Python caller that wants objects uses).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Tuple

import numpy as np

from . import conversions as conv

# output key (graph.PERCEPTION_OUTPUTS: the keys' topic names) -> message type name
TYPES = {
    "mask": "sensor_msgs/msg/Image",
    "objects": "trace_anything_ros/msg/DynamicObjectArray",
    "field": "trace_anything_ros/msg/TrajectoryField",
    "tracks": "trace_anything_ros/msg/TrajectoryArray",
    "markers": "visualization_msgs/msg/MarkerArray",
}
# publish order: the cheap outputs first (mask, objects), then the dense field, then the Python-heavy tracks / markers
ORDER = ("mask", "objects", "field", "tracks", "markers")


@dataclass(frozen=True)
class OutputOptions:
    """How the products become messages (the node's parameters of the same names)."""

    frame_id: str = ""             # frame_id: override of the outputs' frame id ("" = the images')
    float16: bool = False          # field.float16
    mask_labels: bool = False      # mask.encoding == "16UC1" (instance labels; else mono8 0/255)
    mask_source: bool = True       # mask.resolution == "source" (else the model grid)
    markers_max_tracks: int = 200  # markers.max_tracks

    @classmethod
    def from_params(cls, v: dict) -> "OutputOptions":
        return cls(frame_id=v["frame_id"], float16=bool(v["field.float16"]),
                   mask_labels=v["mask.encoding"] == "16UC1", mask_source=v["mask.resolution"] == "source",
                   markers_max_tracks=int(v["markers.max_tracks"]))


def window_header(pr, frame_id: str = ""):
    """Header of a window's outputs: the newest frame's stamp, the window's reference frame (frame 0's id)."""
    from std_msgs.msg import Header

    return Header(stamp=conv.ns_to_time(pr.stamps_ns[-1]), frame_id=frame_id or pr.frame_ids[0])


def _stamps(stamps_ns) -> list:
    return [conv.ns_to_time(s) for s in stamps_ns]


# ----------------------------------------------------------------------------------------------- mask
def mask_array(pr, labels: bool, source: bool) -> np.ndarray:
    """The newest frame's dynamic mask as published: uint16 object ids (``labels``) or uint8 0/1, on the model grid
    or (``source``) at the source image's size through the inverse of the arrival preprocessing (resize + crop,
    ``model.preprocess.grid_to_source``: 0 outside the crop)."""
    from trace_anything_ros.model.preprocess import grid_to_source

    img = pr.labels if labels else pr.mask.astype(np.uint8)
    if source and pr.source_size[0] > 0:
        img = grid_to_source(img, pr.source_size)
    return img


def mask_message(pr, header, opts: OutputOptions = OutputOptions()):
    """sensor_msgs/Image of the dynamic mask (mono8 0/255 or 16UC1 labels) with the source frame's header (the
    newest frame's id unless overridden)."""
    from std_msgs.msg import Header

    mh = Header(stamp=header.stamp, frame_id=opts.frame_id or pr.frame_ids[-1])
    return conv.mask_to_image(mask_array(pr, opts.mask_labels, opts.mask_source), mh, labels=opts.mask_labels)


# -------------------------------------------------------------------------------------------- objects
def objects_message(pr, header):
    """DynamicObjectArray of the window's objects (trajectory over the window's stamps, forecast past it)."""
    from geometry_msgs.msg import Vector3
    from sensor_msgs.msg import RegionOfInterest

    from trace_anything_ros.msg import DynamicObject, DynamicObjectArray

    m = DynamicObjectArray(header=header, metric=bool(pr.field.metric))
    tst = _stamps(pr.stamps_ns)
    objs = []
    for o in pr.objects:
        x, y, w, h = (int(max(0, a)) for a in o.roi)
        d = DynamicObject(id=int(o.id), pixel_count=int(o.pixel_count), confidence=float(o.confidence),
                          roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
                          centroid=conv.points(o.centroid)[0],
                          velocity=Vector3(x=float(o.velocity[0]), y=float(o.velocity[1]), z=float(o.velocity[2])))
        d.trajectory, d.trajectory_stamps = conv.points(o.trajectory), tst
        d.forecast = conv.points(o.forecast)
        d.forecast_stamps = _stamps(o.forecast_stamps_ns)
        d.forecast_confidences = np.asarray(o.forecast_conf, np.float32).tolist()
        objs.append(d)
    m.objects = objs
    return m


# --------------------------------------------------------------------------------------------- tracks
def tracks_serialized(pr, header) -> bytes:
    """The TrajectoryArray of ``pr.tracks`` in its serialized form (what the node publishes; = ``serialize`` of
    ``tracks_message``, tested)."""
    return conv.tracks_to_cdr(pr.tracks, header, pr.field.metric, pr.stamps_ns, pr.forecast_stamps_ns)


def tracks_message(pr, header):
    """TrajectoryArray of ``pr.tracks`` as message objects: every Point of every track made in one pass per array
    (``conv.points``), the float arrays sliced from one ``array.array``; the loop only assembles the tracks."""
    from trace_anything_ros.msg import Trajectory, TrajectoryArray

    tr = pr.tracks
    m = TrajectoryArray(header=header, metric=bool(pr.field.metric))
    m.frame_stamps = _stamps(pr.stamps_ns)
    n_tr, d = tr.ctrl.shape[:2]
    n, f = tr.positions.shape[1], tr.forecast.shape[1]
    fst = _stamps(pr.forecast_stamps_ns)[:f]
    ctrl, pos, fc = conv.points(tr.ctrl), conv.points(tr.positions), conv.points(tr.forecast)
    cc, fcc = conv.floats(tr.ctrl_conf), conv.floats(tr.forecast_conf)
    ids, src = tr.ids.tolist(), int(tr.source_frame)
    uv, oid = tr.uv.astype(np.float64).tolist(), tr.object_id.tolist()
    dyn, conf = tr.dynamic.tolist(), tr.confidence.astype(np.float64).tolist()
    stamps = m.frame_stamps
    m.trajectories = [
        Trajectory(id=ids[i], source_frame=src, u=uv[i][0], v=uv[i][1], object_id=oid[i], dynamic=dyn[i],
                   confidence=conf[i], control_points=ctrl[i * d:(i + 1) * d],
                   control_confidences=cc[i * d:(i + 1) * d], positions=pos[i * n:(i + 1) * n],
                   position_stamps=stamps, forecast=fc[i * f:(i + 1) * f], forecast_stamps=fst,
                   forecast_confidences=fcc[i * f:(i + 1) * f])
        for i in range(n_tr)]
    return m


# ---------------------------------------------------------------------------------------------- field
def field_serialized(pr, header, float16: bool = False) -> bytes:
    """The dense TrajectoryField message, serialized (numpy -> CDR bytes, one copy per blob: rclpy's message path
    would copy each blob twice more). float16 saturates to inf beyond 65504 (not an error here: the output gate
    decides what is plausible)."""
    with np.errstate(over="ignore"):
        return conv.field_to_cdr(pr.field, header, float16=float16, scale=pr.scale, stamps_ns=pr.stamps_ns)


def field_message(pr, header, float16: bool = False):
    """The same content as ``field_serialized``, as a message object."""
    with np.errstate(over="ignore"):
        return conv.field_to_msg(pr.field, header, float16=float16, scale=pr.scale, stamps_ns=pr.stamps_ns)


# -------------------------------------------------------------------------------------------- markers
def _line_list(header, ns: str, mid: int, rgba, pts):
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker

    mk = Marker(header=header, ns=ns, id=mid, type=Marker.LINE_LIST, action=Marker.ADD)
    mk.pose.orientation.w = 1.0
    mk.scale.x = 0.01
    mk.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    mk.points = conv.points(pts)
    return mk


def _segments(path: np.ndarray) -> np.ndarray:
    """``[..., K, 3]`` polylines -> LINE_LIST point pairs ``[M * (K - 1) * 2, 3]``."""
    return np.stack([path[..., :-1, :], path[..., 1:, :]], axis=-2).reshape(-1, 3)


def markers_message(pr, header, max_tracks: int = 200):
    """MarkerArray for RViz: DELETEALL, the first ``max_tracks`` trajectories and their forecasts (line lists),
    each object's centroid (sphere) and path (trajectory + forecast)."""
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    ma = MarkerArray()
    ma.markers.append(Marker(header=header, action=Marker.DELETEALL))
    tr = pr.tracks
    if tr is not None and len(tr) and max_tracks > 0:
        sel = np.arange(len(tr))[: max_tracks]
        pos = tr.positions[sel]                                     # [M, N, 3]
        ma.markers.append(_line_list(header, "trajectories", 0, (0.2, 0.6, 1.0, 0.8), _segments(pos)))
        if tr.forecast.shape[1]:
            fc = np.concatenate([pos[:, -1:], tr.forecast[sel]], axis=1)
            ma.markers.append(_line_list(header, "forecasts", 0, (1.0, 0.5, 0.0, 0.8), _segments(fc)))
    for o in pr.objects:
        sp = Marker(header=header, ns="objects", id=int(o.id), type=Marker.SPHERE, action=Marker.ADD)
        sp.pose.position = conv.points(o.centroid)[0]
        sp.pose.orientation.w = 1.0
        sp.scale.x = sp.scale.y = sp.scale.z = 0.05
        sp.color = ColorRGBA(r=1.0, g=0.1, b=0.1, a=0.9)
        ma.markers.append(sp)
        if len(o.forecast):
            path = np.concatenate([o.trajectory, o.forecast], axis=0)
            ma.markers.append(_line_list(header, "object_paths", int(o.id), (1.0, 0.1, 0.1, 0.9), _segments(path)))
    return ma


# ------------------------------------------------------------------------------------------ all outputs
def available(pr) -> Tuple[str, ...]:
    """Output keys the products can fill (in publish order)."""
    have = {"field": True, "markers": True, "tracks": pr.tracks is not None,
            "mask": pr.mask is not None, "objects": pr.mask is not None}
    return tuple(k for k in ORDER if have[k])


def publishable(pr, opts: OutputOptions = OutputOptions(), keys: Iterable[str] = ORDER) -> Iterator[Tuple[str, bytes]]:
    """``(key, serialized message)`` for each of ``keys`` the products fill, in publish order, each built when the
    caller asks for the next (the node publishes one before the next is built; ``Publisher.publish`` sends bytes as
    they are, subscribers get ordinary messages)."""
    keys = set(keys)
    header = window_header(pr, opts.frame_id)
    for key in available(pr):
        if key not in keys:
            continue
        if key == "mask":
            yield key, serialize(mask_message(pr, header, opts))
        elif key == "objects":
            yield key, serialize(objects_message(pr, header))
        elif key == "field":
            yield key, field_serialized(pr, header, opts.float16)
        elif key == "tracks":
            yield key, tracks_serialized(pr, header)
        else:
            yield key, serialize(markers_message(pr, header, opts.markers_max_tracks))


def serialize(msg) -> bytes:
    """The canonical serialized form of a message (CDR, padding zeroed; bytes pass through)."""
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return bytes(msg)
    return conv.serialize_canonical(msg)


def serialized_products(pr, opts: OutputOptions = OutputOptions(), keys: Iterable[str] = ORDER) -> Dict[str, bytes]:
    """{key: the serialized message the node publishes for these products}: what a recorder writes."""
    return dict(publishable(pr, opts, keys))


def type_name(key: str) -> str:
    return TYPES[key]


# ------------------------------------------------------------------------------- camera and pose messages
def _time(stamp):
    """builtin_interfaces/Time from a Time or from integer nanoseconds."""
    return conv.ns_to_time(stamp) if isinstance(stamp, (int, np.integer)) else stamp


# image_transport's 'compressed' topic of each camera input (depth: its compressedDepth plugin)
COMPRESSED_TRANSPORT = {"image": "compressed", "depth": "compressedDepth"}


def camera_input(node, name: str, compressed: bool):
    """``(message type, topic)`` a node subscribes to for camera input ``name`` ('image' or 'depth'): the raw
    sensor_msgs/Image on ``name``, or with ``compressed`` image_transport's CompressedImage on
    ``<name>/compressed`` (depth: ``<name>/compressedDepth``) of the remapped name, as image_transport resolves it."""
    from sensor_msgs.msg import CompressedImage, Image

    if compressed:
        return CompressedImage, node.resolve_topic_name(name) + "/" + COMPRESSED_TRANSPORT[name]
    return Image, name


def image_message(arr, stamp, frame_id: str = "", encoding: str = "rgb8"):
    """An image array as sensor_msgs/Image (``encoding`` as in ``conversions.ENCODINGS``; ``stamp``: Time or ns)."""
    from std_msgs.msg import Header

    return conv.array_to_image(arr, encoding, Header(stamp=_time(stamp), frame_id=frame_id))


def camera_info_message(K, width: int, height: int, stamp, frame_id: str = ""):
    """sensor_msgs/CameraInfo of an ideal pinhole camera (no distortion, identity rectification, P = [K | 0])."""
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    m = CameraInfo()
    m.header.stamp, m.header.frame_id = _time(stamp), frame_id
    m.width, m.height = int(width), int(height)
    m.distortion_model = "plumb_bob"
    m.d = [0.0] * 5
    m.k = K.reshape(9).tolist()
    m.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    m.p = np.concatenate([K, np.zeros((3, 1))], axis=1).reshape(12).tolist()
    return m


def pose_message(T):
    """A 4x4 rigid transform as geometry_msgs/Pose (quaternion by ``planning.se3``)."""
    from geometry_msgs.msg import Point, Pose, Quaternion

    from trace_anything_ros.planning import se3

    xyz, q = se3.pose_to_xyz_quat(T)
    return Pose(position=Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def pose_stamped(T, stamp, frame_id: str):
    """geometry_msgs/PoseStamped of a 4x4 rigid transform (``stamp``: Time or ns)."""
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import Header

    return PoseStamped(header=Header(stamp=_time(stamp), frame_id=frame_id), pose=pose_message(T))


def pose_matrix(p) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4 rigid transform; ValueError for a zero quaternion (not a rotation)."""
    from trace_anything_ros.planning import se3

    q = [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
    if not np.linalg.norm(q) > 1e-9:
        raise ValueError("pose orientation quaternion is zero")
    return se3.pose_from_xyz_quat([p.position.x, p.position.y, p.position.z], q)
