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

"""The demo's report (``trace-anything-ros demo``), without ROS: the recording read back into overlays and the
numbers of ``summary.json`` / ``summary.md``, and the closed loop scored per perception window.

* ``summarize(mcap, out, ...)``: one pass over ``demo.mcap`` (``io.bag``): the overlay video and PNGs (one frame
  per perception window: its newest camera frame, tracks, masks, objects, the plan status then), rates, latency,
  drops, objects, plans, the perception node's last diagnostics.
* ``window_statuses`` / ``closed_loop_summary``: every perception window received while the goal was active gets
  the status of the plan that answered it (the planner's ``~/plan_windows`` record of that window) and the
  object's visibility in the window's newest frame (the simulator's ground truth, from the executor): the planner
  is scored on the windows in which the goal object is visible.
* ``summary_markdown``: ``summary.md``.
"""
from __future__ import annotations

import json
import os
from collections import Counter, deque
from typing import Dict, List, Optional

import numpy as np

from .planning.planner import PlanStatus
from .ros.graph import TOPICS  # rclpy-free: the one home of the graph's topic names

VISIBLE_FRACTION = 0.5   # a window's goal object is "visible" when at least this share of it shows (not hidden)


def status_name(status: int) -> str:
    try:
        return PlanStatus(int(status)).name
    except ValueError:
        return str(status)


def level_name(level) -> str:
    """A DiagnosticStatus level (int or the message's byte) by its name in the message definition."""
    lvl = level if isinstance(level, int) else int.from_bytes(bytes(level), "little")
    try:
        from diagnostic_msgs.msg import DiagnosticStatus
    except ImportError:   # no ROS message packages: the number
        return str(lvl)
    names = {int.from_bytes(bytes(getattr(DiagnosticStatus, n)), "little"): n for n in ("OK", "WARN", "ERROR",
                                                                                        "STALE")}
    return names.get(lvl, str(lvl))


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _rate(stamps: List[int]) -> float:
    if len(stamps) < 2:
        return 0.0
    span = (max(stamps) - min(stamps)) * 1e-9
    return (len(stamps) - 1) / span if span > 0 else 0.0


# ------------------------------------------------------------------------------------------ recording -> overlays
class _Overlays:
    """One overlay frame per perception window, on its newest recorded camera frame (or the closest older one)."""

    def __init__(self, out: str, n_windows: int, pngs: int):
        from .eval import overlay as ov

        self.ov, self.out, self.max_pngs = ov, out, pngs
        self.every = max(1, n_windows // max(pngs, 1))
        self.video = ov.VideoOut(os.path.join(out, "overlay.mp4"), 2.0)
        self.images: deque = deque(maxlen=64)   # (stamp_ns, rgb)
        self.K = None
        self.saved: List[str] = []
        self.rendered = 0
        self.on_older = 0      # windows drawn on an older frame (the recorder missed the window's own frame)
        self.stamps: List[int] = []

    def render(self, st: int, parts: dict, plan_line: str) -> None:
        img, s = None, None
        for s, im in reversed(self.images):  # the window's newest frame; else the closest older recorded one
            if s <= st and st - s <= 500_000_000:
                img = im
                break
        if img is None:
            return
        if s != st:
            self.on_older += 1
        data = self.ov.from_messages(parts.get("tracks"), parts.get("objects"), parts.get("mask"), self.K)
        n_obj = len(parts["objects"].objects) if parts.get("objects") is not None else 0
        lines = [f"sim t={st * 1e-9:6.2f}s  window {self.rendered}  objects {n_obj}", f"plan: {plan_line}"[:80]]
        frame = self.ov.render(img, data, lines)
        self.video.write(frame)
        if self.rendered % self.every == 0 and len(self.saved) < self.max_pngs:
            p = os.path.join(self.out, f"overlay_{self.rendered:04d}.png")
            self.ov.save_png(p, frame)
            self.saved.append(p)
        self.rendered += 1
        self.stamps.append(st)

    def close(self) -> float:
        """Close the video, re-timed to the window rate (sim time) when it differs much; returns that rate."""
        self.video.fps = 2.0
        self.video.close()
        w_rate = _rate(self.stamps)
        if self.video.frames and w_rate > 0 and abs(w_rate - 2.0) > 0.5:
            retime(self.video.path, w_rate)
        return w_rate


def retime(path: str, fps: float) -> None:
    """Rewrite the mp4 at ``fps`` (the window rate in sim time, so it plays in real time)."""
    import cv2

    from .io.video import read_video

    frames = [np.ascontiguousarray(f.rgb[:, :, ::-1]) for f in read_video(path)]  # back to BGR for the writer
    if not frames:
        return
    tmp = path + ".tmp.mp4"
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), max(fps, 0.5), (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    os.replace(tmp, path)


class _Reader:
    """The numbers of one pass over the recording (see ``summarize``)."""

    PARTS = {TOPICS["tracks"]: "tracks", TOPICS["objects"]: "objects", TOPICS["mask"]: "mask"}

    def __init__(self, overlays: _Overlays):
        self.ovl = overlays
        self.pending: Dict[int, dict] = {}
        self.stamps: Dict[str, List[int]] = {}
        self.log_times: Dict[str, List[int]] = {}
        self.objects_per_window: List[int] = []
        self.object_ids: set = set()
        self.moving_px: List[int] = []
        self.plans, self.plan_reasons = Counter(), Counter()
        self.plan_lines: List[str] = []
        self.last_plan = "-"
        self.diag_last: Dict[str, str] = {}
        self.diag_level = Counter()

    def add(self, r) -> None:
        from .io import bag

        if r.topic != TOPICS["diagnostics"]:
            self.stamps.setdefault(r.topic, []).append(bag.stamp_ns(r.msg.header.stamp))
        self.log_times.setdefault(r.topic, []).append(r.log_time)
        if r.topic == TOPICS["image"]:
            self.ovl.images.append((bag.stamp_ns(r.msg.header.stamp), bag.image_rgb(r.msg)))
        elif r.topic == TOPICS["info"]:
            k = np.asarray(r.msg.k, np.float64).reshape(3, 3)
            if k[0, 0] > 0:
                self.ovl.K = k
        elif r.topic in self.PARTS:
            self._window_part(r, self.PARTS[r.topic])
        elif r.topic == TOPICS["plan"]:
            self._plan(r.msg)
        elif r.topic == TOPICS["diagnostics"]:
            for s in r.msg.status:
                if "trajectory_field_node" in s.hardware_id or "perception" in s.name:
                    self.diag_last = {kv.key: kv.value for kv in s.values}
                    self.diag_last["_message"] = s.message
                    self.diag_level[level_name(s.level)] += 1

    def _window_part(self, r, key: str) -> None:
        from .io import bag

        st = bag.stamp_ns(r.msg.header.stamp)
        self.pending.setdefault(st, {})[key] = r.msg
        if key == "objects":
            self.objects_per_window.append(len(r.msg.objects))
            self.object_ids.update(int(o.id) for o in r.msg.objects)
        if key == "mask":
            self.moving_px.append(int(np.count_nonzero(bag.image_array(r.msg))))
        for s in sorted(self.pending):
            if len(self.pending[s]) == 3 or s < st:
                self.ovl.render(s, self.pending.pop(s), self.last_plan)

    def _plan(self, m) -> None:
        from .io import bag

        s = status_name(m.status)
        self.plans[s] += 1
        self.plan_reasons[f"{s}: {m.reason}"] += 1
        self.last_plan = s + (f" #{m.object_id}" if m.object_id >= 0 else "") + \
            (f" {m.reason}" if m.reason else "") + (f" ({len(m.path.poses)} waypoints)" if len(m.path.poses) else "")
        self.plan_lines.append(f"{bag.stamp_ns(m.header.stamp) * 1e-9:.2f}s {self.last_plan}")

    def finish(self) -> None:
        for s in sorted(self.pending):
            self.ovl.render(s, self.pending.pop(s), self.last_plan)


def summarize(mcap_path: str, out: str, live_stats: dict, planner: bool = True, weights: str = "",
              pngs: int = 6) -> dict:
    """Read the recording back: overlays (one per window) and the numbers of summary.json."""
    from .io import bag

    topics = bag.list_topics(mcap_path)
    counts = {t: n for t, (_, n) in sorted(topics.items())}
    ovl = _Overlays(out, counts.get(TOPICS["tracks"], 0), pngs)
    rd = _Reader(ovl)
    want = [TOPICS[k] for k in ("image", "info", "tracks", "objects", "mask", "plan", "diagnostics")]
    for r in bag.iter_messages(mcap_path, [t for t in want if t in topics]):
        rd.add(r)
    rd.finish()
    w_rate = ovl.close()
    d = rd.diag_last or live_stats.get("diagnostics", {})
    return dict(
        mcap=dict(path=mcap_path, bytes=os.path.getsize(mcap_path), messages=sum(counts.values()), topics=counts),
        camera=_camera_numbers(rd, ovl.K), perception=_perception_numbers(rd, d),
        objects=_object_numbers(rd),
        planner=dict(enabled=planner, goal=live_stats.get("goal", ""), goal_result=live_stats.get("goal_result", ""),
                     statuses=dict(rd.plans), reasons=dict(rd.plan_reasons.most_common(8)),
                     timeline=rd.plan_lines[:5] + (["..."] + rd.plan_lines[-5:] if len(rd.plan_lines) > 10
                                                   else rd.plan_lines[5:10])),
        overlay=dict(video=ovl.video.path if ovl.video.frames else None, frames=ovl.video.frames,
                     on_older_frame=ovl.on_older, video_fps=round(w_rate, 3) if w_rate > 0 else 2.0,
                     pngs=ovl.saved),
        model=dict(weights=weights or "(node default)"))


def _camera_numbers(rd: _Reader, K) -> dict:
    img_st = rd.stamps.get(TOPICS["image"], [])
    return dict(frames=len(img_st), rate_hz_sim=round(_rate(img_st), 3),
                rate_hz_wall=round(_rate(rd.log_times.get(TOPICS["image"], [])), 3),
                sim_span_s=round((max(img_st) - min(img_st)) * 1e-9, 3) if img_st else 0.0,
                intrinsics=K.tolist() if K is not None else None)


def _perception_numbers(rd: _Reader, d: dict) -> dict:
    dn = {k: _num(v) for k, v in d.items()}
    tr_st = rd.stamps.get(TOPICS["tracks"], [])
    return dict(
        windows=len(tr_st), output_rate_hz_sim=round(_rate(tr_st), 3),
        output_rate_hz_wall=round(_rate(rd.log_times.get(TOPICS["tracks"], [])), 3),
        input_rate_hz=dn.get("input_rate_hz"), output_rate_hz=dn.get("output_rate_hz"),
        frames_in=dn.get("frames_in"), windows_out=dn.get("windows_out"), frames_dropped=dn.get("dropped_total"),
        drops={k[len("dropped."):]: dn[k] for k in dn if k.startswith("dropped.")},
        latency_mean_s=dn.get("latency_s_mean"), latency_max_s=dn.get("latency_s_max"),
        model_time_mean_s=dn.get("model_time_s_mean"), model_time_max_s=dn.get("model_time_s_max"),
        diagnostics_levels=dict(rd.diag_level), diagnostics_message=d.get("_message", ""),
        diagnostics_last={k: v for k, v in d.items() if not k.startswith("_")})


def _object_numbers(rd: _Reader) -> dict:
    opw = rd.objects_per_window
    return dict(ids=sorted(rd.object_ids), count=len(rd.object_ids), max_per_window=max(opw) if opw else 0,
                mean_per_window=round(float(np.mean(opw)), 2) if opw else 0.0,
                moving_pixels_mean=round(float(np.mean(rd.moving_px)), 1) if rd.moving_px else 0.0)


# ------------------------------------------------------------------------------------------ closed loop
def window_statuses(windows: List[dict], answers: Dict[int, dict], plans: List[dict], visibility: Dict[int, dict],
                    goal_from: float, goal_until: Optional[float] = None,
                    min_visible: float = VISIBLE_FRACTION) -> List[dict]:
    """Per perception window that arrived while the goal was active: the status of the plan that answered it
    (``answers``: the planner's ``~/plan_windows`` records by window stamp; "none" when the planner reported
    nothing for it; a window whose goal the planner dropped while planning it, NONE, is not counted) and whether
    the goal object was visible in its newest frame (``visibility[stamp_ns]['fraction'] >= min_visible``; None
    when unknown). ``windows``: dicts with stamp_ns
    and arrival (sim s, here); the goal counts as active for the windows whose newest frame was taken at or after
    ``goal_from`` (sim s: the goal was sent) and that arrived before ``goal_until`` or the first DONE plan (the
    planner drops a goal that is reached), whichever is first."""
    done = [p["arrival"] for p in plans if p["status"] == "DONE" and p["arrival"] >= goal_from]
    end = min([t for t in [goal_until] + done[:1] if t is not None], default=np.inf)
    out = []
    for w in windows:
        if not (w["stamp_ns"] * 1e-9 >= goal_from and w["arrival"] <= end):
            continue
        v = visibility.get(int(w["stamp_ns"]))
        a = answers.get(int(w["stamp_ns"]))
        if a is not None and a["status"] == "NONE":
            continue   # the goal was dropped (cancelled, reached) while this window was being planned
        out.append(dict(stamp_ns=int(w["stamp_ns"]), arrival=round(w["arrival"], 3), phase=w.get("phase", ""),
                        status=a["status"] if a else "none", reason=(a or {}).get("reason", ""),
                        compute_s=(a or {}).get("compute_s"), track=(a or {}).get("track", ""),
                        planner_seen=(a or {}).get("windows_seen"),
                        visible=None if v is None else bool(v["fraction"] >= min_visible),
                        visible_fraction=None if v is None else float(v["fraction"])))
    return out


def closed_loop_summary(c) -> dict:
    """The closed-loop scenario in numbers (``c``: the demo client's ``ClosedLoop``): the executor's result, the
    plan statuses per phase and per window (all windows with the goal active, and those where the object shows)."""
    res = c.result or {}
    phases: Dict[str, Counter] = {}
    for p in c.plans:
        phases.setdefault(p["phase"], Counter())[p["status"]] += 1
    look = phases.get("look", Counter())
    n_look = sum(v for k, v in look.items() if k != "IDLE")
    reasons = Counter(f"{p['phase']}: {p['status']}: {p['reason']}" for p in c.plans
                      if p["reason"] and p["status"] != "OK")
    rows = window_statuses(c.windows, c.answers, c.plans, c.visibility,
                           c.sim_goal if c.sim_goal is not None else np.inf, c.sim_cancel)
    vis = [r for r in rows if r["visible"]]
    by_vis = Counter(r["status"] for r in vis)
    n_open = len(vis) - by_vis.get("DONE", 0)   # visible windows before the goal was reached
    return dict(
        episode=c.seed, goal=dict(translation_cm=round(c.translation_cm, 2), yaw_deg=round(c.yaw_deg, 2)),
        executed=bool(res.get("executed", False)), grasped=bool(res.get("grasped", False)),
        grasp_note=res.get("grasp_note", ""), success=bool(res.get("success", False)),
        translation_error_cm=res.get("translation_error_cm"), rotation_error_deg=res.get("rotation_error_deg"),
        plans_by_phase={k: dict(v) for k, v in phases.items()},
        ok_fraction_look=round(look.get("OK", 0) / n_look, 3) if n_look else None,
        windows_goal_active=len(rows), windows_visible=len(vis),
        window_status_all=dict(Counter(r["status"] for r in rows)), window_status_visible=dict(by_vis),
        ok_fraction_visible_windows=round(by_vis.get("OK", 0) / n_open, 3) if n_open else None,
        ok_or_done_fraction_visible_windows=round((by_vis.get("OK", 0) + by_vis.get("DONE", 0)) / len(vis), 3)
        if vis else None,
        windows=rows, planner_windows=len(c.answers), reasons=dict(reasons.most_common(6)),
        seconds=dict(look=round(c.t_act - c.t_goal, 2) if c.t_act and c.t_goal else None,
                     act=round(c.t_result - c.t_act, 2) if c.t_result and c.t_act else None))


# ------------------------------------------------------------------------------------------ markdown
def _f(v, fmt="{:.3g}"):
    return fmt.format(v) if isinstance(v, (int, float)) else ("-" if v in (None, "") else str(v))


def _table(s: dict) -> List[str]:
    p, c, o, pl, r = s["perception"], s["camera"], s["objects"], s["planner"], s.get("run", {})
    statuses = ", ".join(f"{k} {v}" for k, v in pl["statuses"].items()) or "no plan"
    lines = [
        "| | |", "|---|---|",
        f"| run | {_f(r.get('status'))}: {_f(r.get('duration_sim_s'))} s sim time after the first window, "
        f"{_f(r.get('total_wall_s'))} s wall (start-up until the first window {_f(r.get('first_window_s'))} s, "
        f"overlays {_f(r.get('postprocess_s'))} s) |",
        f"| camera | {c['frames']} frames, {_f(c['rate_hz_sim'])} Hz (sim time), {_f(c['rate_hz_wall'])} Hz (wall) |",
        f"| perception | {p['windows']} windows, {_f(p['output_rate_hz_sim'])} Hz (sim), "
        f"{_f(p['output_rate_hz_wall'])} Hz (wall); node: in {_f(p['input_rate_hz'])} Hz, out "
        f"{_f(p['output_rate_hz'])} Hz |",
        f"| latency | mean {_f(p['latency_mean_s'])} s, max {_f(p['latency_max_s'])} s (arrival -> published) |",
        f"| model time | mean {_f(p['model_time_mean_s'])} s, max {_f(p['model_time_max_s'])} s per window |",
        f"| frames | {_f(p['frames_in'])} received, {_f(p['frames_dropped'])} dropped "
        f"({', '.join(f'{k} {_f(v)}' for k, v in p['drops'].items()) or 'none'}) |",
        f"| objects | {o['count']} ids seen {o['ids'][:12]}{'...' if o['count'] > 12 else ''}, up to "
        f"{o['max_per_window']} per window (mean {o['mean_per_window']}) |",
        f"| planner | {'off' if not pl['enabled'] else statuses} |",
    ]
    cl = s.get("closed_loop")
    if cl:
        lines += _closed_loop_rows(cl)
    lines.append(f"| recording | {s['mcap']['messages']} messages on {len(s['mcap']['topics'])} topics, "
                 f"{s['mcap']['bytes'] / 1e6:.1f} MB |")
    return lines


def _closed_loop_rows(cl: dict) -> List[str]:
    counts = lambda d: ", ".join(f"{k} {v}" for k, v in d.items()) or "none"  # noqa: E731
    return [
        f"| closed loop | episode {cl['episode']} (object to move {cl['goal']['translation_cm']} cm, yaw "
        f"{cl['goal']['yaw_deg']} deg): **{'SUCCESS' if cl['success'] else 'FAILURE'}**, final error "
        f"{_f(cl['translation_error_cm'], '{:.2f}')} cm / {_f(cl['rotation_error_deg'], '{:.2f}')} deg (tolerance "
        f"2 cm / 10 deg), grasped {cl['grasped']} |",
        f"| plan per window | goal object visible in {cl['windows_visible']} of the {cl['windows_goal_active']} "
        f"windows with the goal active: {counts(cl['window_status_visible'])}; **OK in "
        f"{_f(cl['ok_fraction_visible_windows'], '{:.0%}')}** of those before the goal was reached (DONE: at the "
        f"goal), OK or DONE in {_f(cl['ok_or_done_fraction_visible_windows'], '{:.0%}')}; all goal-active windows: "
        f"{counts(cl['window_status_all'])} |",
        "| plans per phase | " + "; ".join(f"{ph}: {counts(c)}" for ph, c in cl["plans_by_phase"].items()) + " |",
    ]


def _details(s: dict) -> List[str]:
    p, pl = s["perception"], s["planner"]
    lines = ["", "## Planner", "", f"- goal: {pl['goal'] or '-'}", f"- response: {pl['goal_result'] or '-'}"]
    lines += [f"- {k}: {v}x" for k, v in pl["reasons"].items()]
    cl = s.get("closed_loop")
    if cl:
        lines += ["", f"Per window (goal active; visible = at least {VISIBLE_FRACTION:.0%} of the object shows in "
                  "the window's newest frame, simulator ground truth):", "", "    phase  visible  status"]
        lines += [f"    {r['phase']:<6} {_f(r['visible_fraction'], '{:.2f}'):>7}  {r['status']}" for r in cl["windows"]]
    if pl["timeline"]:
        lines += ["", "Plan timeline (stamp, status):", ""] + [f"    {t}" for t in pl["timeline"]]
    lines += ["", "## Recorded topics", "", "| topic | messages |", "|---|---|"]
    lines += [f"| `{t}` | {n} |" for t, n in s["mcap"]["topics"].items()]
    rec = s.get("recorder", {})
    if rec.get("skipped"):
        lines += ["", f"Throttled (not recorded, by design): {rec['skipped']}"]
    lines += ["", "## Overlays", "", f"`overlay.mp4` ({s['overlay']['frames']} frames, one per window, "
              f"{s['overlay']['video_fps']} fps = the window rate in sim time) and:", ""]
    lines += [f"![{os.path.basename(x)}]({os.path.basename(x)})" for x in s["overlay"]["pngs"]]
    lines += ["", "Tracks are coloured by time (dark blue = oldest frame of the window, yellow = newest), forecasts "
              "are dashed magenta, the dynamic mask is coloured by object id with a box and `#id` per object.", "",
              "## Perception diagnostics (last)", "", f"{p['diagnostics_message']}", "",
              "```", json.dumps(p["diagnostics_last"], indent=1), "```", "",
              f"Model: {s['model']['weights']}. Logs of every process: `logs/`.", ""]
    return lines + _video_section(s.get("video"))


def _video_section(v: Optional[dict]) -> List[str]:
    if not v:
        return []
    lines = ["## Real video", ""]
    if "error" in v:
        return lines + [f"`{v['input']}`: failed ({v['error']})", ""]
    ref = v["reference"]
    lines += [f"`{v['input']}`, {v['frames']} frames through the same pipeline (`trace-anything-ros process "
              f"--stride 3 --hop 3`: windows of 4 frames spanning 0.9 s, no depth): {v['windows']} windows, "
              f"model {_f(v['model_time_mean_s'])} s per window, {v['objects_seen']} object ids, "
              f"{_f(v['wall_s'])} s. Against OpenCV MOG2 background subtraction (`eval-video`): precision "
              f"{_f(ref['precision'])} (our moving pixels on moving things), recall {_f(ref['recall'])} "
              f"(moving blobs we touch), a mask in {ref['windows_with_mask']} of {ref['windows']} scored "
              "windows. Overlays and the MCAP: `video/`.", ""]
    return lines + [f"![{os.path.basename(x)}]({x})" for x in v["pngs"]] + [""]


def summary_markdown(s: dict, short: bool = False) -> str:
    """``summary.md`` (``short``: the table only, for the terminal)."""
    head = [] if short else [
        "# trace-anything-ros demo", "",
        "Simulated RGB-D camera (MuJoCo) -> trajectory_field_node -> manipulation_planner_node, each a separate ROS "
        "2 process over DDS (localhost, private domain), recorded to `demo.mcap`.", ""]
    body = _table(s)
    if short:
        return "\n".join(body) + "\n"
    return "\n".join(head + body + _details(s))
