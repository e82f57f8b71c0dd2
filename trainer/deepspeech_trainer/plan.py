"""`deepspeech-trainer plan`: the invocations a run would execute, for humans, dry runs and golden tests."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .invocation import Invocation, ResumeState, RunPaths, Runtime, build_invocations

DEFAULT_WORK_DIR = Path("/work")


@dataclass(frozen=True)
class Plan:
    version: str
    invocations: list[Invocation]

    def to_json(self) -> dict[str, Any]:
        """The shape the trainer also patches into status.plan on a dry run."""
        return {"version": self.version, "invocations": [i.to_json() for i in self.invocations]}

    def to_text(self) -> str:
        width = max((len(inv.purpose) for inv in self.invocations), default=0)
        return "".join(f"{inv.purpose:<{width}}  {shlex.join(inv.argv)}\n" for inv in self.invocations)


def work_dir_from_env(env: Mapping[str, str]) -> Path:
    return Path(env.get("DST_WORK_DIR") or DEFAULT_WORK_DIR)


def make_plan(
    spec: Mapping[str, Any],
    *,
    work_dir: Path,
    epochs_done: int = 0,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Plan with the canonical in-pod paths; `epochs_done > 0` means OWN holds a checkpoint."""
    env = os.environ if env is None else env
    resume = ResumeState(epochs_done=epochs_done, own_checkpoint=epochs_done > 0)
    invocations = build_invocations(spec, RunPaths.in_pod(spec, work_dir), resume, Runtime.from_env(env))
    return Plan(spec["deepspeech"]["version"], invocations)
