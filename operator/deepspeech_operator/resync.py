"""The level-triggered resync, as pure rules: which CRs' reconcilers have not seen their children.

Child events wake a CR's reconciler through the observed-child annotation (handlers._poke). When that
write fails, or kopf's own patch after the reconcile does, nothing wakes it again: after a Job's last
event there is none. The resync loop looks, for every CR, at what its last successful reconcile decided
on (the children's digest and the observed-child value of that body) and at the CR now:

- the CR carries another observed-child value than that reconcile saw: a wake-up is pending in kopf
  (kopf calls the reconciler for it, and retries a failing one), so nothing to do;
- otherwise the children's digest moved since (a poke failed), or kopf's last-handled configuration
  lacks the value the reconcile saw (kopf's patch failed): behind.

A CR never reconciled by this process, or being reconciled now, is kopf's to deliver (create/resume). A
CR behind on two ticks in a row (so a poke in flight is not duplicated) is poked once more. In a steady
state nothing is behind and nothing is written.
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


@dataclasses.dataclass(frozen=True)
class Decided:
    """What the CR's last successful reconcile decided on."""

    digest: str  # of its children (observe.children_digest)
    carried: str | None  # the observed-child value of the body it decided on


def lag(
    digest: str, mark: Marks, decided: Decided | None, busy: bool, sent: str | None = None
) -> tuple[str, str | None] | None:
    """A key for what is behind (the children's digest and the carried value), or None when in step or
    when a wake-up is already on its way: kopf about to call the reconciler, or `sent` (the value this
    process last poked, recorded before the write) being this digest's poke that has not landed yet."""
    if mark.deleting or busy or decided is None or mark.carried != decided.carried:
        return None
    if sent == f"children/{digest}" and sent != mark.carried:
        return None
    if decided.digest == digest and mark.handled == mark.carried:
        return None
    return (digest, mark.carried)


def poke_for(digest: str, carried: str | None) -> str:
    """A value that differs from the carried one, so writing it is a change kopf delivers."""
    value = f"children/{digest}"
    return value if carried != value else f"resync/{digest}"
