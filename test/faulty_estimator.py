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

"""The analytic estimator with injected faults (for test_reliability_faults.py).

``TAR_FAULTY_FAIL_AT=k``: the k-th predict call (1-based, warm-up included) raises RuntimeError; the others work.
``TAR_ANALYTIC_DELAY`` as in analytic_estimator.
"""
from __future__ import annotations

import os

import analytic_estimator


class FaultyEstimator(analytic_estimator.AnalyticEstimator):
    def __init__(self, fail_at: int, **kw):
        super().__init__(**kw)
        self.fail_at = int(fail_at)
        self.n = 0

    def predict(self, frames, frame_keys=None, depth=None):
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError(f"injected model fault on window {self.n}")
        return super().predict(frames, frame_keys, depth)


def create(params=None):
    base = analytic_estimator.create(params)
    return FaultyEstimator(int(os.environ.get("TAR_FAULTY_FAIL_AT", "0")), input_size=base.input_size,
                           num_ctrl=base.num_ctrl, delay=base.delay)
