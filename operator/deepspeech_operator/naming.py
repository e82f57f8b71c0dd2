"""Deterministic names, label values and the run-defining spec hash.

Deterministic names are what make creation idempotent: after an operator restart the same input gives the
same Job name, so a second create answers 409 instead of starting a duplicate run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from . import api

MAX_NAME = 63  # Job names end up in the pod label batch.kubernetes.io/job-name: a 63-character label value
_HASH_LEN = 8
_UID_LEN = 8
_RUN_ID = re.compile(r"^g([1-9][0-9]*)$")


def _digest(text: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def shorten(base: str, suffix: str = "", limit: int = MAX_NAME) -> str:
    """`base + suffix` if it fits in `limit`, else a cut `base`, a hash of the full `base`, and `suffix`.

    The suffix is kept whole because it carries the meaning (run id, stage); the hash keeps two long CR
    names with the same prefix apart.
    """
    if len(suffix) + _HASH_LEN + 2 > limit:
        raise ValueError(f"name suffix {suffix!r} leaves no room for a name within {limit} characters")
    if len(base) + len(suffix) <= limit:
        return base + suffix
    room = limit - len(suffix) - _HASH_LEN - 1
    head = base[:room].rstrip("-.")
    return f"{head}-{_digest(base)}{suffix}" if head else f"{_digest(base)}{suffix}"


def label_value(cr_name: str) -> str:
    """The value of the `training.deepspeech.dev/training` label for a CR (label values: 63 characters)."""
    return shorten(cr_name)


def run_id(generation: int) -> str:
    """Run id of a run started at `generation` (docs/contract.md: `g<generation>`)."""
    if generation < 1:
        raise ValueError(f"metadata.generation must be >= 1, got {generation}")
    return f"g{generation}"


def run_path(cr_name: str, uid: str, rid: str) -> str:
    """The run's folder below output.uri and output.checkpoints: `<cr name>/<run id>-<uid[:8]>`.

    Readable (the CR and its run), and unique per CR incarnation: a CR deleted and created again with the
    same name starts at g1 again, and must neither restore nor overwrite the old g1's files. The trainer
    records the full identity (run_identity) next to its checkpoints and refuses any other's.
    """
    if not uid:
        raise ValueError("metadata.uid is empty: a run path needs the CR's UID")
    return f"{cr_name}/{rid}-{uid[:_UID_LEN]}"


def run_generation(rid: str) -> int:
    """Inverse of run_id; 0 for anything that is not a run id (foreign or hand-made labels)."""
    match = _RUN_ID.match(rid or "")
    return int(match.group(1)) if match else 0


def job_name(cr_name: str, rid: str, stage: str, resumes: int = 0) -> str:
    """`<cr>-<run id>-<stage>` plus `-s<N>` after the N-th resume, at most 63 characters."""
    if stage not in (api.STAGE_PREFLIGHT, api.STAGE_TRAIN):
        raise ValueError(f"unknown stage {stage!r}")
    if resumes < 0:
        raise ValueError(f"status.run.resumes must be >= 0, got {resumes}")
    suffix = f"-{rid}-{stage}" + (f"-s{resumes}" if resumes else "")
    return shorten(cr_name, suffix)


def trainer_account_name(cr_name: str) -> str:
    """Name of the per-CR ServiceAccount, Role and RoleBinding of the trainer: `<cr>-trainer`."""
    return shorten(cr_name, "-trainer")


def run_defining_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Everything in the spec that defines a run: all of it except `suspend` (suspending pauses a run; it is not a new one)."""
    return {key: value for key, value in spec.items() if key != "suspend"}


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Stable hash of the run-defining spec; key order and `suspend` do not change it."""
    canonical = json.dumps(run_defining_spec(spec), sort_keys=True, separators=(",", ":"))
    return _digest(canonical, 16)
