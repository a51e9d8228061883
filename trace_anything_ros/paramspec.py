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

"""Parameter metadata of the core dataclasses (ROS-free): one source for defaults, ranges, choices and descriptions.

A core parameter dataclass (``PipelineParams``, ``PlannerParams``, ``SceneConfig``, ...) declares each field with
:func:`param`::

    max_linear_velocity: float = param(0.25, "EE linear velocity limit (m/s)", range=(0.0, 5.0), open="lo")

* the dataclass's ``validate()`` checks the field with :func:`check_fields` (range, open ends, choices, finiteness);
* ``ros/params.py`` builds the node's ``Spec`` from the same field (``field_spec``): the ROS descriptor's
  ``FloatingPointRange`` / ``IntegerRange``, the description and the default all come from this metadata, and the
  node's set-parameters callback runs the same check, so a value the node accepts is a value the core accepts.

Ranges are inclusive unless ``open`` names an end ("lo", "hi" or "both"); a ROS range cannot say "open", so the
descriptor carries the closed interval and the check refuses the open end with the reason.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

T = TypeVar("T")

_OPEN = {None: (False, False), "": (False, False), "lo": (True, False), "hi": (False, True), "both": (True, True)}


def param(default: Any = dataclasses.MISSING, doc: str = "", *, range: Optional[Tuple[float, float]] = None,
          open: Optional[str] = None, choices: Optional[Sequence[str]] = None,
          default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its documentation and its valid values (see the module doc)."""
    if open not in _OPEN:
        raise ValueError(f"open must be one of lo, hi, both, got {open!r}")
    meta = {"doc": doc, "range": tuple(range) if range is not None else None, "open": _OPEN[open],
            "choices": tuple(choices) if choices is not None else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def meta(cls_or_obj, name: str) -> Dict[str, Any]:
    """The metadata of field ``name`` (doc, range, open, choices); KeyError when it has none."""
    for f in dataclasses.fields(cls_or_obj):
        if f.name == name:
            if "doc" not in f.metadata:
                raise KeyError(f"{getattr(cls_or_obj, '__name__', type(cls_or_obj).__name__)}.{name} has no "
                               f"param() metadata")
            return dict(f.metadata)
    raise KeyError(f"no field {name!r} in {getattr(cls_or_obj, '__name__', type(cls_or_obj).__name__)}")


def default_of(cls, name: str) -> Any:
    """The default value of field ``name`` of dataclass ``cls`` (default_factory called)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"no field {name!r} in {cls.__name__}")


def range_text(rng: Tuple[float, float], open: Tuple[bool, bool] = (False, False)) -> str:
    """``[lo, hi]`` with ``(`` / ``)`` at an open end."""
    return f"{'(' if open[0] else '['}{rng[0]}, {rng[1]}{')' if open[1] else ']'}"


def check_value(name: str, value: Any, *, range: Optional[Tuple[float, float]] = None,
                open: Tuple[bool, bool] = (False, False), choices: Optional[Sequence[str]] = None,
                doc: str = "") -> Optional[str]:
    """None when ``value`` is acceptable, else the reason (naming the parameter, the value and the valid ones)."""
    if range is not None:
        lo, hi = range
        try:
            v = float(value)
            bad = not math.isfinite(v) or (v <= lo if open[0] else v < lo) or (v >= hi if open[1] else v > hi)
        except (TypeError, ValueError):
            return f"{name} must be a number, got {value!r}"
        if bad:
            return f"{name}={value!r} is out of range {range_text(range, open)}" + (f": {doc}" if doc else "")
    if choices is not None and value not in choices:
        return f"{name}={value!r} is not one of {', '.join(choices)}"
    return None


def check_fields(obj, names: Optional[Iterable[str]] = None) -> List[str]:
    """The reasons why ``obj``'s fields with param() metadata (all, or ``names``) are out of their ranges/choices."""
    errors = []
    wanted = set(names) if names is not None else None
    for f in dataclasses.fields(obj):
        if "doc" not in f.metadata or (wanted is not None and f.name not in wanted):
            continue
        m = f.metadata
        e = check_value(f.name, getattr(obj, f.name), range=m["range"], open=m["open"], choices=m["choices"])
        if e:
            errors.append(e)
    return errors


def validate_fields(obj: T, names: Optional[Iterable[str]] = None) -> T:
    """``obj`` when every field with param() metadata is valid, else ValueError with every reason."""
    errors = check_fields(obj, names)
    if errors:
        raise ValueError("; ".join(errors))
    return obj


def from_dict(cls: Type[T], d: Dict[str, Any], what: str = "") -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls`` (named, sorted); the caller validates.
    ``what``: how the error names them ("planner" -> "unknown planner parameters: [...]")."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {what + ' ' if what else ''}parameters: {sorted(unknown)}")
    return cls(**d)
