"""Spec fields the operator reads, with the CRD's own default when a field is absent.

The apiserver defaults every CR it stores, but a CR stored before a default was added, or a spec built by
hand (dry runs, tests), can lack one. The fallback is read out of schema.py, where each default is written
once; the trainer reads the same defaults from the generated crd_schema.json.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from . import schema


@functools.cache
def _defaults() -> Mapping[str, Any]:
    found: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            if "default" in sub:
                found[prefix + key] = sub["default"]
            walk(sub, f"{prefix}{key}.")

    walk(schema.spec_schema(), "")
    return found


def default(path: str) -> Any:
    """The CRD default of a dotted spec field, e.g. `resources.gpus`."""
    return _defaults()[path]


def field(spec: Mapping[str, Any], path: str) -> Any:
    """The value of a dotted spec field, or its CRD default when it or an object above it is absent."""
    node: Any = spec
    for key in path.split("."):
        if not isinstance(node, Mapping) or node.get(key) is None:
            return default(path)
        node = node[key]
    return node


def gpus(spec: Mapping[str, Any]) -> int:
    return int(field(spec, "resources.gpus"))
