"""The level-triggered resync, as pure rules: which CRs' reconcilers have not seen their children.

Child events wake a CR's reconciler through the observed-child annotation (handlers._poke). When that
write fails, or kopf's own patch after the reconcile does, nothing wakes it again: after a Job's last
event there is none. The resync loop compares, for every CR, the digest of its children now with the one
its reconciler last decided on, and the annotation the CR carries with the one kopf's last handled
configuration records. A CR lagging on either for two ticks in a row (so a poke in flight is not
duplicated) is poked once more. In a steady state both agree and nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from . import api

# kopf's diff base (handlers.startup): the essence of the body as of the last successfully handled change.
DIFFBASE_ANNOTATION = f"{api.KOPF_PREFIX}/last-handled-configuration"


@dataclasses.dataclass(frozen=True)
class Marks:
    """What the resync reads from a CR (kept in a kopf index)."""

    carried: str | None  # the observed-child annotation now
    handled: str | None  # its value when kopf last handled the CR successfully
    deleting: bool = False


def marks(body: Mapping[str, Any]) -> Marks:
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    handled = None
    try:
        essence = json.loads(annotations.get(DIFFBASE_ANNOTATION) or "{}")
        handled = ((essence.get("metadata") or {}).get("annotations") or {}).get(api.ANNOTATION_OBSERVED)
    except (ValueError, AttributeError):
        handled = None  # not kopf's JSON: treated as never handled, so the next tick pokes
    return Marks(annotations.get(api.ANNOTATION_OBSERVED), handled, bool(meta.get("deletionTimestamp")))


def lag(digest: str, mark: Marks, decided: str | None) -> tuple[str, str | None] | None:
    """A key for what is behind (the children's digest and the carried value), or None when in step."""
    if mark.deleting or (decided == digest and mark.handled == mark.carried):
        return None
    return (digest, mark.carried)


def poke_for(digest: str, carried: str | None) -> str:
    """A value that differs from the carried one, so writing it is a change kopf delivers."""
    value = f"children/{digest}"
    return value if carried != value else f"resync/{digest}"
