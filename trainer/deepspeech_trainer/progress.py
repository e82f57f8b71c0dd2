"""Parser of DeepSpeech's console output: lines in, typed events out. Pure."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Literal

Phase = Literal["train", "dev", "metrics"]

_PHASES: dict[str, Phase] = {"Training": "train", "Validation": "dev", "Metrics": "metrics"}
_NUM = r"nan|-?inf|-?\d+(?:\.\d*)?(?:e[-+]?\d+)?"


@dataclass(frozen=True)
class EpochProgress:
    """A progress-bar line: `loss` is the running mean of the epoch so far."""

    epoch: int
    phase: Phase
    steps: int
    loss: float
    elapsed: str
    dataset: str | None


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    phase: Phase
    dataset: str | None


@dataclass(frozen=True)
class EpochFinished:
    epoch: int
    phase: Phase
    loss: float
    dataset: str | None


@dataclass(frozen=True)
class BestModelSaved:
    loss: float
    path: str


@dataclass(frozen=True)
class CheckpointLoaded:
    """`source` is `best`, `last` or `init` (fresh variables); `step` only on 0.6.x."""

    source: Literal["best", "last", "init"]
    path: str | None
    step: int | None = None


@dataclass(frozen=True)
class EarlyStop:
    message: str


@dataclass(frozen=True)
class LearningRateReduced:
    learning_rate: float


@dataclass(frozen=True)
class OptimizationStarted:
    pass


@dataclass(frozen=True)
class OptimizationFinished:
    duration: str


@dataclass(frozen=True)
class TestStarted:
    dataset: str


@dataclass(frozen=True)
class TestProgress:
    steps: int
    elapsed: str


@dataclass(frozen=True)
class TestResult:
    dataset: str
    wer: float
    cer: float
    loss: float


@dataclass(frozen=True)
class ModelExported:
    directory: str


@dataclass(frozen=True)
class NonFiniteLoss:
    files: tuple[str, ...]


@dataclass(frozen=True)
class ErrorLine:
    """An error the program reported (`E …`, absl `FATAL …`, TensorFlow's C++ `E`/`F` lines, `Could not
    load checkpoint`, a command the shell did not find) or, with `cause` False, the last line of a Python
    traceback, which often only reports the consequence: kept for the failure reason."""

    message: str
    cause: bool = True


Event = (
    EpochProgress
    | EpochStarted
    | EpochFinished
    | BestModelSaved
    | CheckpointLoaded
    | EarlyStop
    | LearningRateReduced
    | OptimizationStarted
    | OptimizationFinished
    | TestStarted
    | TestProgress
    | TestResult
    | ModelExported
    | NonFiniteLoss
    | ErrorLine
)


def _f(text: str) -> float:
    return float(text)


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Event]]] = [
    (
        re.compile(
            rf"^Epoch (\d+) \|\s*(Training|Validation|Metrics) \| Elapsed Time: ([^|]+?) \| Steps: (\d+)"
            rf" \| Loss: ({_NUM})(?: \| Dataset: (.+))?$"
        ),
        lambda m: EpochProgress(int(m[1]), _PHASES[m[2]], int(m[4]), _f(m[5]), m[3].strip(), m[6]),
    ),
    (re.compile(r"^I Training epoch (\d+)\.\.\.$"), lambda m: EpochStarted(int(m[1]), "train", None)),
    (
        re.compile(rf"^I Finished training epoch (\d+) - loss: ({_NUM})$"),
        lambda m: EpochFinished(int(m[1]), "train", _f(m[2]), None),
    ),
    (re.compile(r"^I Validating epoch (\d+) on (.+)\.\.\.$"), lambda m: EpochStarted(int(m[1]), "dev", m[2])),
    (
        re.compile(rf"^I Finished validating epoch (\d+) on (.+) - loss: ({_NUM})$"),
        lambda m: EpochFinished(int(m[1]), "dev", _f(m[3]), m[2]),
    ),
    (
        re.compile(rf"^I Metrics for epoch (\d+) on (.+) - loss: ({_NUM})$"),
        lambda m: EpochFinished(int(m[1]), "metrics", _f(m[3]), m[2]),
    ),
    (
        re.compile(r"^I Metrics for epoch (\d+) on (.+)\.\.\.$"),
        lambda m: EpochStarted(int(m[1]), "metrics", m[2]),
    ),
    (
        re.compile(rf"^I Saved new best validating model with loss ({_NUM}) to: (.+)$"),
        lambda m: BestModelSaved(_f(m[1]), m[2]),
    ),
    (
        re.compile(r"^I Loading (best validating|most recent) checkpoint from (.+)$"),
        lambda m: CheckpointLoaded("best" if m[1].startswith("best") else "last", m[2]),
    ),
    (
        re.compile(
            r"^I Restored variables from (best validation|most recent) checkpoint at (.+), step (\d+)$"
        ),
        lambda m: CheckpointLoaded("best" if m[1].startswith("best") else "last", m[2], int(m[3])),
    ),
    (
        re.compile(r"^I (?:Initializing all variables\.|Initializing variables\.\.\.)$"),
        lambda m: CheckpointLoaded("init", None),
    ),
    (re.compile(r"^I (Early stop triggered.*)$"), lambda m: EarlyStop(m[1])),
    (
        re.compile(rf"^I Encountered a plateau, reducing learning rate to ({_NUM})$"),
        lambda m: LearningRateReduced(_f(m[1])),
    ),
    (re.compile(r"^I STARTING Optimization$"), lambda m: OptimizationStarted()),
    (re.compile(r"^I FINISHED optimization in (.+)$"), lambda m: OptimizationFinished(m[1])),
    (re.compile(r"^Testing model on (.+)$"), lambda m: TestStarted(m[1])),
    (
        re.compile(r"^Test epoch \| Steps: (\d+) \| Elapsed Time: (.+)$"),
        lambda m: TestProgress(int(m[1]), m[2].strip()),
    ),
    (
        re.compile(rf"^Test on (.+) - WER: ({_NUM}), CER: ({_NUM}), loss: ({_NUM})$"),
        lambda m: TestResult(m[1], _f(m[2]), _f(m[3]), _f(m[4])),
    ),
    (re.compile(r"^I Models exported at (.+)$"), lambda m: ModelExported(m[1])),
    (
        re.compile(r"^E The following files caused an infinite \(or NaN\) loss: (.*)$"),
        lambda m: NonFiniteLoss(tuple(f for f in m[1].split(",") if f)),
    ),
    (re.compile(r"^(?:E |FATAL )(.+)$"), lambda m: ErrorLine(m[0])),
    # TensorFlow's C++ log: `2026-12-02 16:39:47.117489: E tensorflow/...` (F = fatal).
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [EF] (.+)$"), lambda m: ErrorLine(m[0])),
    # absl's Python log format: `E1202 16:39:47.117489 140708 file.py:145] message`.
    (re.compile(r"^[EF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\] (.+)$"), lambda m: ErrorLine(m[0])),
    # 0.6 evaluate/export after a failed restore (it then dies of a NameError).
    (re.compile(r"^Could not load checkpoint from (.+)$"), lambda m: ErrorLine(m[0])),
    # TFLite export runs `toco_from_protos` through the shell: `/bin/sh: 1: toco_from_protos: not found`.
    (re.compile(r"^/bin/\w*sh: (?:\d+: )?\S+: (?:not found|command not found)$"), lambda m: ErrorLine(m[0])),
    # The last line of a Python traceback names the exception that killed DeepSpeech.
    (
        re.compile(r"^((?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exhausted\w*)(?::.*)?)$"),
        lambda m: ErrorLine(m[1], cause=False),
    ),
]


def parse_line(line: str) -> Event | None:
    """The event one complete output line carries, or None for lines of no interest."""
    text = line.rstrip("\r\n")
    for pattern, make in _RULES:
        match = pattern.match(text)
        if match:
            return make(match)
    return None


def text_lines(binary: IO[bytes]) -> Iterator[str]:
    """The lines of a UTF-8 byte stream as they arrive, cut at `\\n`, `\\r\\n` and lone `\\r` (progress-bar
    redraws) by the standard library's universal newlines; undecodable bytes become U+FFFD."""
    text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=None)
    for line in text:
        yield line.removesuffix("\n")


def parse_stream(lines: Iterator[str]) -> Iterator[Event]:
    for line in lines:
        event = parse_line(line)
        if event is not None:
            yield event
