"""The order in which one decision's writes reach the API server: waves, each sent concurrently.

Pure: decide() says what to create or delete; this says in which order, and what this process may skip.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .reconcile import Action, CreateJob, DeleteJob


@dataclasses.dataclass(frozen=True)
class EnsureObject:
    """Create, adopt or patch back one of the trainer's objects (ServiceAccount, Role, RoleBinding)."""

    obj: Mapping[str, Any]


Write = EnsureObject | CreateJob | DeleteJob
Wave = tuple[Write, ...]


def rbac_fingerprint(objects: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(objects), sort_keys=True)


def plan_waves(actions: Sequence[Action], ensured: str | None) -> list[Wave]:
    """The waves of `actions`, in their order. `ensured` is the fingerprint of the trainer objects this
    process last ensured for the CR: the same objects again are not re-sent (a later run or resume).

    A Job comes with the trainer objects its pods use, in two waves: the ServiceAccount and Role first,
    then the RoleBinding together with the Job. The binding must wait for its Role: the apiserver's
    escalation check reads the referenced Role, so binding one not yet created is Forbidden for an operator
    without the `bind` verb. The Job need not wait for the binding: its pods need only the ServiceAccount
    at admission, and the trainer needs the binding only once its pod runs.
    """
    waves: list[Wave] = []
    for action in actions:
        if (
            isinstance(action, CreateJob)
            and action.trainer_objects
            and (rbac_fingerprint(action.trainer_objects) != ensured)
        ):
            bindings = [o for o in action.trainer_objects if o.get("kind") == "RoleBinding"]
            others = [o for o in action.trainer_objects if o.get("kind") != "RoleBinding"]
            waves.append(tuple(EnsureObject(o) for o in others))
            waves.append((*(EnsureObject(o) for o in bindings), action))
        else:
            waves.append((action,))
    return [wave for wave in waves if wave]


def ensured_after(actions: Sequence[Action], ensured: str | None) -> str | None:
    """The fingerprint to remember once every wave of `actions` went through."""
    for action in actions:
        if isinstance(action, CreateJob) and action.trainer_objects:
            ensured = rbac_fingerprint(action.trainer_objects)
    return ensured
