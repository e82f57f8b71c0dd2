"""Preflight proves the run can write where it will write: one small object put and deleted under
spec.output.uri and spec.output.checkpoints. Without it, AccessDenied on the output bucket surfaced only at
the final checkpoint sync, after the GPU work, with nothing left to resume from."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from . import s3
from .exitcodes import InvalidInput
from .validation import Problem

PROBE_PREFIX = ".deepspeech-trainer-write-probe-"


def output_targets(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(URI, field) of every prefix the run writes under; the same prefix is probed once."""
    output = spec.get("output") or {}
    targets = [(str(output.get("uri") or ""), "spec.output.uri")]
    checkpoints = output.get("checkpoints")
    if checkpoints and checkpoints.rstrip("/") != targets[0][0].rstrip("/"):
        targets.append((str(checkpoints), "spec.output.checkpoints"))
    return [(uri, field) for uri, field in targets if uri]


def probe_writes(spec: Mapping[str, Any], storage: s3.Storage) -> list[Problem]:
    """A problem naming the field for each prefix the credentials cannot write and delete under.
    Storage trouble (TransientError) propagates: preflight is then retried."""
    problems: list[Problem] = []
    refused: list[str] = []
    for uri, field in output_targets(spec):
        if any(uri.startswith(prefix) for prefix in refused):
            continue  # the default checkpoints folder under a refused output.uri: the same fix, said once
        probe = s3.parse_s3_uri(uri, field).folder.child(PROBE_PREFIX + secrets.token_hex(6))
        try:
            with s3.s3_errors(uri, field):
                s3.put_bytes(storage, probe, b"deepspeech-trainer preflight write probe\n", "text/plain")
                storage.client.delete_object(Bucket=probe.bucket, Key=probe.key)
        except InvalidInput as exc:
            problems.append(
                Problem(uri, 0, "output_not_writable", f"{field}: cannot write and delete there: {exc}")
            )
            refused.append(uri.rstrip("/") + "/")
    return problems
