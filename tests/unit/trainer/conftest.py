"""Shared fixtures of the trainer's invocation tests: specs, a tiny dataset, the DeepSpeech stand-in."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `tests.standin` must import however pytest was started
    sys.path.insert(0, str(REPO))

from deepspeech_trainer.invocation import ResumeState, RunPaths, Runtime  # noqa: E402
from deepspeech_trainer.spec import default_spec  # noqa: E402

STANDIN_DIR = REPO / "tests" / "standin"
GOLDEN_DIR = Path(__file__).parent / "golden"

BASE_SPEC: dict[str, Any] = {
    "deepspeech": {"version": "0.9.3"},
    "data": {
        "train": ["s3://corpus/train.csv"],
        "dev": ["s3://corpus/dev.csv"],
        "test": ["s3://corpus/test.csv"],
    },
    "training": {"epochs": 3},
    "output": {"uri": "s3://models/run/"},
}


def make_spec(**changes: Any) -> dict[str, Any]:
    """BASE_SPEC with dotted-path changes (`**{"training.epochs": 5}`); None deletes; then defaulted."""
    spec = copy.deepcopy(BASE_SPEC)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)
    return default_spec(spec)


@pytest.fixture
def spec_factory():
    return make_spec


def write_csv(path: Path, transcripts: list[str]) -> None:
    lines = ["wav_filename,wav_filesize,transcript"]
    for i, text in enumerate(transcripts):
        wav = path.parent / f"{path.stem}-{i}.wav"
        wav.write_bytes(b"RIFF stand-in")
        lines.append(f"{wav},{44 + 3200 * (i + 1)},{text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_alphabet(path: Path, labels: str = " abcdefghijklmnopqrstuvwxyz'") -> None:
    path.write_text("# alphabet\n" + "".join(f"{c}\n" for c in labels), encoding="utf-8")


def local_paths(spec: dict[str, Any], work: Path) -> RunPaths:
    """RunPaths.in_pod under `work`, with the data files the stand-in reads actually present."""
    paths = RunPaths.in_pod(spec, work)
    (work / "data").mkdir(parents=True, exist_ok=True)
    for directory in paths.required_dirs():
        directory.mkdir(parents=True, exist_ok=True)
    sentences = ["hello world", "the quick brown fox", "a test sentence here", "one two three", "yes no"]
    for p in (*paths.train_files, *paths.dev_files, *paths.test_files):
        write_csv(p, sentences)
    write_alphabet(paths.alphabet)
    if paths.scorer is not None:
        paths.scorer.write_bytes(b"stand-in scorer\n")
    return paths


def standin_runtime() -> Runtime:
    return Runtime(python=sys.executable, deepspeech_dir=STANDIN_DIR)


__all__ = ["GOLDEN_DIR", "STANDIN_DIR", "ResumeState", "local_paths", "make_spec", "standin_runtime"]
