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

"""ROS 2 message definitions as MCAP ``ros2msg`` schemas, built from the ``.msg`` files (ROS-free).

A ``ros2msg`` schema is the message's own ``.msg`` text followed by every type it uses (recursively), each
after a ``====`` separator line and ``MSG: pkg/Type`` (the format rosbag2 and Foxglove write). Definitions are
looked up in this checkout's ``msg/`` (our interfaces) and in ``share/<pkg>/msg/`` of the venv, of
``AMENT_PREFIX_PATH`` entries and of the interfaces build (the standard messages come with the ROS wheels).
"""
from __future__ import annotations

import functools
import os
import re
import sys
from typing import Dict, List, Optional

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
SEPARATOR = "=" * 80
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OWN_PACKAGE = "trace_anything_ros"


def search_roots() -> List[str]:
    """Prefixes whose ``share/<pkg>/msg`` may hold definitions, in lookup order."""
    roots = [sys.prefix, os.path.join(REPO_ROOT, "build", "interfaces", "install")]
    roots += [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    seen, out = set(), []
    for r in roots:
        if r and r not in seen and os.path.isdir(r):
            seen.add(r)
            out.append(r)
    return out


def normalize(type_name: str) -> str:
    """'pkg/msg/Type' | 'pkg/Type' -> 'pkg/msg/Type'."""
    parts = type_name.strip().split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return type_name.strip()
    raise ValueError(f"not a ROS 2 message type name: {type_name!r} (want pkg/msg/Type)")


def short(type_name: str) -> str:
    """'pkg/msg/Type' -> 'pkg/Type' (the name used after ``MSG:`` in schemas)."""
    pkg, _, name = normalize(type_name).split("/")
    return f"{pkg}/{name}"


@functools.lru_cache(maxsize=None)
def find_msg_file(type_name: str) -> str:
    pkg, kind, name = normalize(type_name).split("/")
    candidates = []
    if pkg == OWN_PACKAGE:
        candidates.append(os.path.join(REPO_ROOT, kind, name + ".msg"))
    candidates += [os.path.join(r, "share", pkg, kind, name + ".msg") for r in search_roots()]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(f"no definition for {type_name}: looked in {candidates}")


def _field_types(text: str, pkg: str) -> List[str]:
    """Complex (non-primitive) field types of a .msg text, as 'pkg/msg/Type'."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()[0]
        base = re.sub(r"\[.*\]$", "", tok)
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        if base == "Header":
            out.append("std_msgs/msg/Header")
        elif "/" in base:
            out.append(normalize(base))
        else:
            out.append(f"{pkg}/msg/{base}")
    return out


@functools.lru_cache(maxsize=None)
def msg_text(type_name: str) -> str:
    with open(find_msg_file(type_name), encoding="utf-8") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def schema_text(type_name: str) -> str:
    """The full ``ros2msg`` schema of a message type (its text + all dependencies)."""
    root = normalize(type_name)
    order: List[str] = []
    seen = {root}
    stack = [root]
    while stack:
        t = stack.pop(0)
        pkg = t.split("/")[0]
        for dep in _field_types(msg_text(t), pkg):
            if dep not in seen:
                seen.add(dep)
                order.append(dep)
                stack.append(dep)
    parts = [msg_text(root).rstrip("\n")]
    for dep in order:
        parts.append(f"{SEPARATOR}\nMSG: {short(dep)}\n{msg_text(dep).rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


def schemas(type_names) -> Dict[str, str]:
    return {normalize(t): schema_text(t) for t in type_names}


def try_schema_text(type_name: str) -> Optional[str]:
    try:
        return schema_text(type_name)
    except (FileNotFoundError, ValueError):
        return None
