"""TensorFlow's checkpoint state file: the text CheckpointState proto DeepSpeech keeps as `checkpoint`
(train checkpoints) and `best_dev_checkpoint` (the best validated one).

    model_checkpoint_path: "/job/ckpt/train-30"
    all_model_checkpoint_paths: "/job/ckpt/train-20"
    all_model_checkpoint_paths: "/job/ckpt/train-30"

TensorFlow resolves the paths as written, so a folder moved to another pod or path needs them rewritten.
Other fields (timestamps) are kept as they are. This is the only module that reads or writes the format.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from deepspeech_trainer.checkpoint_files import checkpoint_step

TRAIN_STATE = "checkpoint"
BEST_DEV_STATE = "best_dev_checkpoint"
STATE_FILES = (TRAIN_STATE, BEST_DEV_STATE)

_PATH_LINE = re.compile(
    r'^(\s*(?:model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*)"((?:[^"\\]|\\.)*)"\s*$'
)


def state_paths(text: str) -> list[str]:
    """All checkpoint paths a CheckpointState text names, newest (model_checkpoint_path) first."""
    newest: list[str] = []
    others: list[str] = []
    for line in text.splitlines():
        m = _PATH_LINE.match(line)
        if not m:
            continue
        value = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
        (newest if "model_checkpoint_path" in m.group(1) and "all_" not in m.group(1) else others).append(
            value
        )
    out: list[str] = []
    for p in newest + others:
        if p not in out:
            out.append(p)
    return out


def state_prefixes(text: str) -> list[str]:
    """The checkpoint prefixes (basenames) a CheckpointState text names, newest first."""
    return [PurePosixPath(p).name for p in state_paths(text)]


def state_text(prefixes: list[str]) -> str:
    """A CheckpointState text naming `prefixes`; `prefixes[0]` becomes the newest."""
    if not prefixes:
        return ""
    lines = [f'model_checkpoint_path: "{prefixes[0]}"']
    lines += [f'all_model_checkpoint_paths: "{p}"' for p in sorted(prefixes, key=checkpoint_step)]
    return "\n".join(lines) + "\n"


def rewrite_state(text: str, directory: str | None) -> str:
    """Every path → its basename (directory None: the form kept in S3, valid for any pod) or
    `<directory>/<basename>` (the form TensorFlow needs locally)."""
    lines = []
    for line in text.splitlines():
        m = _PATH_LINE.match(line)
        if m:
            base = PurePosixPath(m.group(2).replace("\\\\", "\\")).name
            new = base if directory is None else f"{directory.rstrip('/')}/{base}"
            line = f'{m.group(1)}"{new}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def read_prefixes(directory: Path, state_name: str) -> list[str]:
    """The prefixes the state file `state_name` in `directory` names, newest first; [] without one."""
    try:
        return state_prefixes((directory / state_name).read_text(encoding="utf-8"))
    except OSError:
        return []


def newest_train_checkpoint(directory: Path) -> str | None:
    """Basename of the newest checkpoint TensorFlow's state file names (it replaces that file atomically
    after the checkpoint's files are written), or None before the first save."""
    return next(iter(read_prefixes(directory, TRAIN_STATE)), None)


def write_local_state(directory: Path, state_name: str, text: str) -> None:
    """Write a state file into `directory` with its paths pointing there."""
    (directory / state_name).write_text(rewrite_state(text, str(directory)), encoding="utf-8")


def rewrite_local_state_files(directory: Path) -> None:
    """Point the state files in `directory` at `directory` (a folder fetched or unpacked from elsewhere)."""
    for name in STATE_FILES:
        path = directory / name
        if path.is_file():
            write_local_state(directory, name, path.read_text(encoding="utf-8"))
