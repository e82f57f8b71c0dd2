"""Pure status helpers: conditions with kstatus meaning, merge patches, history.

kstatus (and the Argo CD health check in charts/) read Ready/Reconciling/Stalled and observedGeneration;
KSTATUS below encodes, per situation, the conditions that make both tools say the right thing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import api

# phase -> (Ready, Reconciling, Stalled). Suspended is Current (Ready=True), like kstatus's batch/Job rule.
KSTATUS: dict[str, tuple[str, str, str]] = {
    api.PHASE_PENDING: ("False", "True", "False"),
    api.PHASE_VALIDATING: ("False", "True", "False"),
    api.PHASE_QUEUED: ("False", "True", "False"),
    api.PHASE_RUNNING: ("False", "True", "False"),
    api.PHASE_SUCCEEDED: ("True", "False", "False"),
    api.PHASE_FAILED: ("False", "False", "True"),
    api.PHASE_SUSPENDED: ("True", "False", "False"),
}

# Phase -> the domain condition that is True in it (the others are False).
_DOMAIN = {
    api.PHASE_QUEUED: "Queued",
    api.PHASE_RUNNING: "Running",
    api.PHASE_SUSPENDED: "Suspended",
    api.PHASE_SUCCEEDED: "Succeeded",
    api.PHASE_FAILED: "Failed",
}


def desired_conditions(
    phase: str,
    reason: str,
    message: str,
    generation: int,
    validated: tuple[str, str, str],
    blocked: bool = False,
) -> list[dict[str, Any]]:
    """All conditions for a phase; `validated` is (status, reason, message) of the Validated condition.

    `blocked`: the operator cannot make progress on its own (e.g. a same-named object it does not own):
    Stalled=True with `reason`, whatever the phase, so kstatus reports Failed and the reason is visible.
    """
    if phase not in KSTATUS:
        raise ValueError(f"status.phase {phase!r} is not one of {', '.join(api.PHASES)}")
    ready, reconciling, stalled = ("False", "False", "True") if blocked else KSTATUS[phase]
    conds: list[dict[str, Any]] = [
        {"type": "Ready", "status": ready, "reason": reason, "message": message},
        {
            "type": "Reconciling",
            "status": reconciling,
            "reason": reason if reconciling == "True" else "Idle",
            "message": message if reconciling == "True" else "",
        },
        {
            "type": "Stalled",
            "status": stalled,
            "reason": reason if stalled == "True" else "NotStalled",
            "message": message if stalled == "True" else "",
        },
        {"type": "Validated", "status": validated[0], "reason": validated[1], "message": validated[2]},
    ]
    for phase_name, ctype in _DOMAIN.items():
        on = phase == phase_name
        conds.append(
            {
                "type": ctype,
                "status": "True" if on else "False",
                "reason": reason if on else "Not" + ctype,
                "message": message if on else "",
            }
        )
    for cond in conds:
        cond["observedGeneration"] = generation
    return conds


def blocked_status(
    status: Mapping[str, Any], reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    """`status` (a decision's) with its conditions saying the run is stalled for `reason`."""
    out = copy.deepcopy(dict(status))
    old = {c.get("type"): c for c in status.get("conditions") or []}
    validated = old.get("Validated") or {}
    out["conditions"] = merge_conditions(
        status.get("conditions"),
        desired_conditions(
            status.get("phase") or api.PHASE_PENDING,
            reason,
            message,
            generation,
            (
                validated.get("status", "Unknown"),
                validated.get("reason", "PreflightPending"),
                validated.get("message", ""),
            ),
            blocked=True,
        ),
        now,
    )
    return out


def merge_conditions(
    old: list[Mapping[str, Any]] | None, new: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """New conditions keeping lastTransitionTime where the status did not change."""
    previous = {c.get("type"): c for c in old or []}
    merged = []
    for cond in new:
        cond = dict(cond)
        before = previous.get(cond["type"])
        if before and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now
        merged.append(cond)
    return merged


def merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning `old` into `new` (keys absent in `new` are removed); lists are whole.

    Only differing leaves are sent, so fields the trainer wrote meanwhile are not overwritten with the
    older values the operator saw.
    """
    old = old or {}
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value != before or key not in old:
            patch[key] = copy.deepcopy(value)
    return patch


def preflight_cause(result: Mapping[str, Any] | None) -> str:
    """The first problem of a failed preflight and how many there were, for condition messages: kubectl
    describe and Argo CD show only the message, so it must name the cause, not only the exit code."""
    if not result or result.get("kind") != api.STAGE_PREFLIGHT:
        return ""
    problems = [p for p in result.get("problems") or [] if isinstance(p, Mapping)]
    count = result.get("problemCount")
    if not isinstance(count, int) or isinstance(count, bool) or count < len(problems):
        count = len(problems)
    if not count:
        return ""
    text = f"preflight found {count} problem{'s' if count != 1 else ''}"
    if not problems:
        return text
    first = problems[0]
    where = str(first.get("file") or "")
    if isinstance(first.get("line"), int) and first["line"] > 0:
        where += f":{first['line']}"
    detail = " ".join(
        part
        for part in (
            where,
            f"[{first['code']}]" if first.get("code") else "",
            str(first.get("message") or ""),
        )
        if part
    )
    return f"{text}; first: {detail[:300]}" if detail else text


def progress_display(progress: Mapping[str, Any] | None) -> str | None:
    """`epoch/epochs` for the Epoch printer column (JSONPath cannot concatenate)."""
    if not progress or progress.get("epochs") is None:
        return None
    return f"{int(progress.get('epoch') or 0)}/{int(progress['epochs'])}"


def history_entry(status: Mapping[str, Any], now: str) -> dict[str, Any] | None:
    """The entry recording the run in `status` when a new run replaces it; None when there was none."""
    run = status.get("run") or {}
    if not run.get("id"):
        return None
    phase = status.get("phase")
    finished = phase in api.TERMINAL_PHASES
    entry: dict[str, Any] = {
        "id": run["id"],
        "generation": run.get("generation", 0),
        "phase": phase if finished else api.HISTORY_SUPERSEDED,
        "reason": condition(status, "Ready").get("reason", "") if finished else "SpecChanged",
        "completionTime": run.get("completionTime") if finished and run.get("completionTime") else now,
    }
    model = status.get("model") or {}
    if phase == api.PHASE_SUCCEEDED and model.get("runId") == run["id"] and model.get("uri"):
        entry["modelUri"] = model["uri"]
        wer = (status.get("metrics") or {}).get("wer")
        if wer is not None:
            entry["wer"] = wer
    return entry


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    """The status condition of that type, or {} when there is none."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


def append_history(
    history: list[Mapping[str, Any]] | None, entry: Mapping[str, Any] | None, limit: int
) -> list[dict[str, Any]]:
    """History with `entry` appended (newest last), at most `limit` entries, no duplicate run ids."""
    items = [dict(h) for h in history or [] if not entry or h.get("id") != entry.get("id")]
    if entry:
        items.append(dict(entry))
    return items[-limit:]


# status.model.smokeTest: field → (type, schema maxLength or None).
_SMOKE_FIELDS: dict[str, tuple[type, int | None]] = {
    "ok": (bool, None),
    "model": (str, 256),
    "file": (str, 256),
    "transcript": (str, 512),
    "seconds": (float, None),
    "message": (str, 1024),
}


def smoke_test_status(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's smoke-test report as status.model.smokeTest: known fields of the right type, cut to
    the schema's lengths (the termination message is the pod's word, not trusted to fit)."""
    out: dict[str, Any] = {}
    for key, (kind, limit) in _SMOKE_FIELDS.items():
        value = raw.get(key)
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        elif kind is not float and isinstance(value, kind):
            out[key] = value[:limit] if isinstance(value, str) and limit else value
    return out
