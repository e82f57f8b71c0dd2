"""Pre-flight validation (reference §4.9): every problem a training could trip over, all at once.

Pure: takes staged rows (with their WAV headers already read) and settings, returns a Report. Each
check exists because DeepSpeech would otherwise crash hours in, or train silently on bad data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepspeech_trainer import flags
from deepspeech_trainer.alphabet import derive_alphabet
from deepspeech_trainer.audio import feature_frames, required_frames, wav_format_problems, window_problems
from deepspeech_trainer.csvdata import Problem
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.staging import StagedCsv

DEFAULT_PROBLEM_CAP = 200
LONG_CLIP_S = 20.0  # maintainer advice: clips over 10-20 s risk GPU OOM (mozilla/DeepSpeech#2026)


@dataclass(frozen=True)
class Settings:
    """What the checks depend on, derived once from the spec (incl. extraArgs overrides)."""

    version: str = "0.9.3"
    sample_rate: int = 16000
    win_len_ms: int = 32
    win_step_ms: int = 20
    bytes_mode: bool = False
    batch: Mapping[str, int] = field(default_factory=lambda: {"train": 1, "dev": 1, "test": 1})
    gpus: int = 1

    @property
    def legacy(self) -> bool:
        return flags.is_legacy(self.version)


def settings_from_spec(spec: Mapping[str, Any]) -> Settings:
    """Version, batch sizes and GPUs from the spec; rate/window/bytes mode from extraArgs if set there."""
    version = str((spec.get("deepspeech") or {}).get("version") or "0.9.3")
    training = spec.get("training") or {}
    values: dict[str, Any] = {}
    try:
        parsed = flags.parse_args(version, list(training.get("extraArgs") or []), "spec.training.extraArgs")
    except InvalidInput:
        parsed = []  # reported by check_extra_args; validate the rest with DeepSpeech's defaults
    for arg in parsed:
        values[arg.flag.name] = arg.value
    batch = training.get("batchSize") or {}

    def as_int(name: str, default: int) -> int:
        try:
            return int(values.get(name, default))
        except (TypeError, ValueError):
            return default

    return Settings(
        version=version,
        sample_rate=as_int("audio_sample_rate", 16000),
        win_len_ms=as_int("feature_win_len", 32),
        win_step_ms=as_int("feature_win_step", 20),
        bytes_mode=bool(values.get("bytes_output_mode") or values.get("utf8")),
        batch={k: int(batch.get(k) or 1) for k in ("train", "dev", "test")},
        gpus=int((spec.get("resources") or {}).get("gpus", 1) or 0),
    )


@dataclass
class Report:
    ok: bool
    rows: int
    problems: list[Problem]  # capped
    problem_count: int
    counts: dict[str, int]  # by code, uncapped
    alphabet: list[str]
    alphabet_source: str  # "spec", "checkpoint" or "derived"
    notes: list[str] = field(default_factory=list)
    hours: float = 0.0
    rows_by_split: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "problemCount": self.problem_count,
            "problemCounts": self.counts,
            "problems": [p.as_dict() for p in self.problems],
            "alphabet": self.alphabet,
            "alphabetSource": self.alphabet_source,
            "rowsBySplit": self.rows_by_split,
            "hours": round(self.hours, 4),
            "notes": self.notes,
        }


class ProblemSink:
    """Keeps the first `cap` problems and counts all of them by code: nothing is silently lost."""

    def __init__(self, cap: int = DEFAULT_PROBLEM_CAP) -> None:
        self.cap = cap
        self.kept: list[Problem] = []
        self.count = 0
        self.by_code: Counter[str] = Counter()

    def add(self, problem: Problem) -> None:
        self.count += 1
        self.by_code[problem.code] += 1
        if len(self.kept) < self.cap:
            self.kept.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.add(p)


def _describe(chars: Iterable[str]) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def validate(
    csvs: list[StagedCsv],
    settings: Settings,
    *,
    alphabet: list[str] | None = None,
    alphabet_source: str = "spec",
    extra: Iterable[Problem] = (),
    notes: Iterable[str] = (),
    cap: int = DEFAULT_PROBLEM_CAP,
) -> Report:
    """Check every row of every CSV; `alphabet` None = derive it from all transcripts."""
    sink = ProblemSink(cap)
    sink.extend(extra)
    out_notes = list(notes)
    for message in window_problems(settings.sample_rate, settings.win_len_ms, settings.win_step_ms):
        sink.add(Problem("spec", 0, "audio_windows", f"{message}: DeepSpeech exits at start"))

    if alphabet is None:
        labels = derive_alphabet(row.transcript for c in csvs for row in c.rows)
        alphabet_source = "derived"
    else:
        labels = list(alphabet)
    label_set = frozenset(labels)
    check_alphabet = not settings.bytes_mode

    rate = settings.sample_rate
    seen: dict[Any, tuple[str, int, str, str]] = {}  # audio → (file, line, split, transcript)
    valid_by_csv: dict[tuple[str, int], int] = {}
    total_samples = 0
    long_clips = 0
    for staged in csvs:
        sink.extend(staged.problems)
        source = staged.uri
        valid = 0
        for row in staged.rows:
            before = sink.count
            line = row.line
            text = row.transcript
            if row.problem is not None:
                sink.add(Problem(source, line, row.problem[0], f"{row.wav_filename}: {row.problem[1]}"))
            if not text.strip():
                sink.add(Problem(source, line, "transcript_empty", "transcript is empty"))
            elif not text.isprintable():
                bad = sorted({c for c in text if not c.isprintable() and c != " "})
                sink.add(
                    Problem(
                        source,
                        line,
                        "transcript_control",
                        f"transcript contains invisible/control {_describe(bad)}",
                    )
                )
            elif check_alphabet and not label_set.issuperset(text):
                missing = sorted(set(text) - label_set)
                sink.add(
                    Problem(
                        source,
                        line,
                        "transcript_alphabet",
                        f"characters not in the alphabet ({alphabet_source}): {_describe(missing)}",
                    )
                )
            info = row.info
            if info is not None:
                for code, message in wav_format_problems(info, rate):
                    sink.add(Problem(source, line, code, f"{row.wav_filename}: {message}"))
                frames = feature_frames(info.n_samples, rate, settings.win_len_ms, settings.win_step_ms)
                n = len(text.encode("utf-8")) if settings.bytes_mode else len(text)
                # R ≤ L-1, so only count repeats when the plain length is close (saves time at 100k rows).
                if text.strip() and frames < 2 * n - 1:
                    need = required_frames(text, settings.bytes_mode)
                    if frames < need:
                        sink.add(
                            Problem(
                                source,
                                line,
                                "audio_too_short",
                                f"{row.wav_filename}: {info.duration_s:.2f} s gives {frames} feature frames, "
                                f"the transcript needs {need} (CTC: labels + repeated labels)",
                            )
                        )
                total_samples += info.n_samples
                if info.duration_s > LONG_CLIP_S:
                    long_clips += 1
            audio = row.uri if row.uri is not None else row.local
            if audio is not None:
                first = seen.get(audio)
                if first is None:
                    seen[audio] = (source, line, staged.split, text)
                else:
                    f_src, f_line, f_split, f_text = first
                    kind = "the same row" if f_text == text else "the same audio"
                    where = (
                        "" if f_split == staged.split else f" (leaks between {f_split} and {staged.split})"
                    )
                    sink.add(Problem(source, line, "duplicate_row", f"{kind} as {f_src}:{f_line}{where}"))
            if sink.count == before:
                valid += 1
        valid_by_csv[(staged.split, staged.index)] = valid
        if not staged.rows and not staged.problems:
            sink.add(Problem(source, 0, "csv_empty", "CSV has a header but no rows"))

    rows_by_split: dict[str, int] = {}
    for staged in csvs:
        rows_by_split[staged.split] = rows_by_split.get(staged.split, 0) + len(staged.rows)
    _split_checks(csvs, settings, valid_by_csv, sink)
    if long_clips:
        out_notes.append(f"{long_clips} clip(s) longer than {LONG_CLIP_S:.0f} s: GPU out-of-memory risk")
    rows = sum(len(c.rows) for c in csvs)
    return Report(
        ok=sink.count == 0,
        rows=rows,
        problems=sink.kept,
        problem_count=sink.count,
        counts=dict(sink.by_code),
        alphabet=labels,
        alphabet_source=alphabet_source,
        notes=out_notes,
        hours=total_samples / rate / 3600 if rate else 0.0,
        rows_by_split=rows_by_split,
    )


def _split_checks(
    csvs: list[StagedCsv], settings: Settings, valid: Mapping[tuple[str, int], int], sink: ProblemSink
) -> None:
    """Sets too small train 0 steps (loss 0.0) or divide by zero in dev/test (pitfall 26)."""
    by_split: dict[str, list[StagedCsv]] = {}
    for staged in csvs:
        by_split.setdefault(staged.split, []).append(staged)
    train = by_split.get("train", [])
    need = settings.batch["train"] * max(1, settings.gpus)
    n_train = sum(valid[(c.split, c.index)] for c in train)
    if train and n_train < need:
        sink.add(
            Problem(
                train[0].uri,
                0,
                "split_too_small",
                f"train has {n_train} usable row(s), needs at least train batch size × GPUs = {need} "
                "(otherwise 0 steps per epoch)",
            )
        )
    for split in ("dev", "test"):
        parts = by_split.get(split, [])
        if not parts:
            continue
        n = sum(valid[(c.split, c.index)] for c in parts)
        if n == 0:
            sink.add(
                Problem(
                    parts[0].uri, 0, "split_empty", f"{split} has no usable rows (dev/test loss divides by 0)"
                )
            )
        elif settings.legacy:
            batch = settings.batch[split]
            for c in parts:  # 0.6.x drops the remainder of every set, per CSV
                if valid[(c.split, c.index)] < batch:
                    sink.add(
                        Problem(
                            c.uri,
                            0,
                            "split_too_small",
                            f"{valid[(c.split, c.index)]} usable row(s) < {split} batch size {batch}: "
                            f"DeepSpeech {settings.version} runs 0 steps and divides by zero",
                        )
                    )
