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

"""The demo's per-window scoring (``demo_report.window_statuses`` / ``closed_loop_summary``), ROS-free: which
windows count (goal active: frames taken after the goal was sent, until DONE or the cancel), which status each
gets (the planner's own record by window stamp), and the visibility join. The live run: test_demo.py."""
from types import SimpleNamespace

from trace_anything_ros import demo_report as dr

S = 1_000_000_000


def _loop():
    # windows: newest-frame stamp (ns) and arrival here (s); the goal was sent at t=10.0
    windows = [dict(stamp_ns=int(t * S), arrival=t + 1.0, phase=ph) for t, ph in
               [(9.5, "wait"), (10.5, "look"), (11.5, "look"), (12.5, "act"), (13.5, "act"), (14.5, "act"),
                (15.5, "settle")]]
    answers = {int(10.5 * S): {"status": "OK"}, int(11.5 * S): {"status": "SKIPPED"},
               int(12.5 * S): {"status": "OK"}, int(13.5 * S): {"status": "REFUSED", "reason": "occluded"},
               int(14.5 * S): {"status": "DONE"}}
    visibility = {int(t * S): {"fraction": f} for t, f in [(9.5, 1.0), (10.5, 1.0), (11.5, 1.0), (12.5, 0.9),
                                                           (13.5, 0.2), (14.5, 0.8)]}
    plans = [dict(stamp=t, arrival=t + 0.1, status=s, reason="", phase=ph) for t, s, ph in
             [(11.6, "OK", "look"), (13.6, "OK", "act"), (14.6, "REFUSED", "act"), (15.6, "DONE", "settle")]]
    return windows, answers, plans, visibility


def test_window_statuses_count_the_goal_active_windows_and_join_visibility():
    windows, answers, plans, visibility = _loop()
    rows = dr.window_statuses(windows, answers, plans, visibility, goal_from=10.0)
    # the window of a frame taken before the goal does not count; nor does one arriving after DONE (15.7)
    assert [r["stamp_ns"] for r in rows] == [int(t * S) for t in (10.5, 11.5, 12.5, 13.5, 14.5)]
    assert [r["status"] for r in rows] == ["OK", "SKIPPED", "OK", "REFUSED", "DONE"]
    assert [r["visible"] for r in rows] == [True, True, True, False, True]
    # a cancel before DONE ends the goal there; a window the planner never reported is "none"
    del answers[int(12.5 * S)]
    rows = dr.window_statuses(windows, answers, plans, visibility, goal_from=10.0, goal_until=13.6)
    assert [r["status"] for r in rows] == ["OK", "SKIPPED", "none"]
    # a window whose goal was dropped while it was planned (NONE) is not scored
    answers[int(12.5 * S)] = {"status": "NONE"}
    rows = dr.window_statuses(windows, answers, plans, visibility, goal_from=10.0)
    assert int(12.5 * S) not in [r["stamp_ns"] for r in rows]


def test_closed_loop_summary_scores_visible_windows_before_the_goal_was_reached():
    windows, answers, plans, visibility = _loop()
    c = SimpleNamespace(result={"executed": True, "grasped": True, "success": True, "translation_error_cm": 0.07,
                                "rotation_error_deg": 0.6}, plans=plans, windows=windows, answers=answers,
                        visibility=visibility, sim_goal=10.0, sim_cancel=None, seed=1, translation_cm=10.9,
                        yaw_deg=-8.2, t_act=None, t_goal=None, t_result=None)
    s = dr.closed_loop_summary(c)
    assert s["windows_goal_active"] == 5 and s["windows_visible"] == 4
    assert s["window_status_visible"] == {"OK": 2, "SKIPPED": 1, "DONE": 1}
    assert s["ok_fraction_visible_windows"] == round(2 / 3, 3)   # OK of the visible windows before DONE
    assert s["ok_or_done_fraction_visible_windows"] == 0.75
    md = dr._closed_loop_rows(s)
    assert "**SUCCESS**" in md[0] and "**OK in 67%**" in md[1]
