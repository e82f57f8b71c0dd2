"""Pre-flight validation: every problem a training could trip over, all at once.

Pure: takes staged rows (with their WAV headers already read) and settings, returns a Report. Each
check exists because DeepSpeech would otherwise crash hours in, or train silently on bad data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepspeech_trainer import firstseen, flags
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
    validator = Validator(
        settings, alphabet=alphabet, alphabet_source=alphabet_source, extra=extra, notes=notes, cap=cap
    )
    for staged in csvs:
        validator.add(staged)
    return validator.report()


@dataclass
class _CsvTally:
    split: str
    index: int
    uri: str
    rows: int = 0
    valid: int = 0
    file_problems: int = 0


class Validator:
    """The checks of `validate`, fed part by part: a CSV may come as many StagedCsv chunks (same split
    and index), so preflight can stream a dataset of any size. State is bounded: counts per CSV, the
    capped problem list, the characters seen (when deriving the alphabet) and a bounded duplicate index.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        alphabet: list[str] | None = None,
        alphabet_source: str = "spec",
        extra: Iterable[Problem] = (),
        notes: Iterable[str] = (),
        cap: int = DEFAULT_PROBLEM_CAP,
        duplicate_capacity: int = firstseen.DEFAULT_CAPACITY,
    ) -> None:
        self.settings = settings
        self.sink = ProblemSink(cap)
        self.sink.extend(extra)
        self.notes = list(notes)
        for message in window_problems(settings.sample_rate, settings.win_len_ms, settings.win_step_ms):
            self.sink.add(Problem("spec", 0, "audio_windows", f"{message}: DeepSpeech exits at start"))
        # Deriving: every printable character of every transcript is a label, so no row can miss one
        # (control characters are reported as such); the labels are known once all rows are seen.
        self.derive = alphabet is None
        self.labels = [] if alphabet is None else list(alphabet)
        self.alphabet_source = "derived" if alphabet is None else alphabet_source
        self.label_set = frozenset(self.labels)
        self.chars: set[str] = set()
        self.check_alphabet = not settings.bytes_mode and not self.derive
        self.seen = firstseen.FirstSeen(duplicate_capacity)
        self.tallies: dict[tuple[str, int], _CsvTally] = {}
        self.ordinals: list[tuple[str, int]] = []
        self.total_samples = 0
        self.long_clips = 0

    def add(self, staged: StagedCsv) -> None:
        """Check one CSV, or the next chunk of one."""
        key = (staged.split, staged.index)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = _CsvTally(staged.split, staged.index, staged.uri)
            self.ordinals.append(key)
        ordinal = self.ordinals.index(key)
        sink = self.sink
        sink.extend(staged.problems)
        tally.file_problems += len(staged.problems)
        tally.rows += len(staged.rows)
        settings = self.settings
        rate = settings.sample_rate
        source = staged.uri
        label_set, check_alphabet, alphabet_source = self.label_set, self.check_alphabet, self.alphabet_source
        for row in staged.rows:
            before = sink.count
            line = row.line
            text = row.transcript
            if self.derive:
                self.chars.update(text)
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
                self.total_samples += info.n_samples
                if info.duration_s > LONG_CLIP_S:
                    self.long_clips += 1
            audio = row.uri if row.uri is not None else row.local
            if audio is not None:
                self._check_duplicate(audio, ordinal, staged, line, text)
            if sink.count == before:
                tally.valid += 1

    def _check_duplicate(self, audio: object, ordinal: int, staged: StagedCsv, line: int, text: str) -> None:
        here = (ordinal << _ORDINAL_SHIFT) | (min(line, _LINE_MASK) << _TEXT_BITS) | (hash(text) & _TEXT_MASK)
        first = self.seen.first(hash(audio), here)
        if first is None:
            return
        f_split, _ = self.ordinals[first >> _ORDINAL_SHIFT]
        f_line = (first >> _TEXT_BITS) & _LINE_MASK
        f_src = self.tallies[self.ordinals[first >> _ORDINAL_SHIFT]].uri
        kind = "the same row" if (first & _TEXT_MASK) == (here & _TEXT_MASK) else "the same audio"
        where = "" if f_split == staged.split else f" (leaks between {f_split} and {staged.split})"
        self.sink.add(Problem(staged.uri, line, "duplicate_row", f"{kind} as {f_src}:{f_line}{where}"))

    def add_first(self, problems: Iterable[Problem]) -> None:
        """Problems found after the rows (e.g. against the derived alphabet), listed before them."""
        for p in reversed(list(problems)):
            self.sink.add(p)
            if p in self.sink.kept:
                self.sink.kept.remove(p)
            self.sink.kept.insert(0, p)
        del self.sink.kept[self.sink.cap :]

    def alphabet(self) -> list[str]:
        return derive_alphabet(self.chars) if self.derive else self.labels

    def report(self) -> Report:
        sink = self.sink
        for tally in self.tallies.values():
            if not tally.rows and not tally.file_problems:
                sink.add(Problem(tally.uri, 0, "csv_empty", "CSV has a header but no rows"))
        _split_checks(list(self.tallies.values()), self.settings, sink)
        notes = list(self.notes)
        if self.long_clips:
            notes.append(f"{self.long_clips} clip(s) longer than {LONG_CLIP_S:.0f} s: GPU out-of-memory risk")
        if self.seen.full:
            notes.append(
                f"duplicate check: the first {self.seen.count} distinct audio files were indexed; later "
                "rows were compared with those only"
            )
        rows_by_split: dict[str, int] = {}
        for tally in self.tallies.values():
            rows_by_split[tally.split] = rows_by_split.get(tally.split, 0) + tally.rows
        rate = self.settings.sample_rate
        return Report(
            ok=sink.count == 0,
            rows=sum(rows_by_split.values()),
            problems=sink.kept,
            problem_count=sink.count,
            counts=dict(sink.by_code),
            alphabet=self.alphabet(),
            alphabet_source=self.alphabet_source,
            notes=notes,
            hours=self.total_samples / rate / 3600 if rate else 0.0,
            rows_by_split=rows_by_split,
        )


# Where a first occurrence was: CSV ordinal, line and a 16-bit transcript hash in one 64-bit slot.
_TEXT_BITS = 16
_TEXT_MASK = (1 << _TEXT_BITS) - 1
_ORDINAL_SHIFT = 56
_LINE_MASK = (1 << (_ORDINAL_SHIFT - _TEXT_BITS)) - 1


def _split_checks(tallies: list[_CsvTally], settings: Settings, sink: ProblemSink) -> None:
    """Sets too small train 0 steps (loss 0.0) or divide by zero in dev/test (fewer clips than the batch size)."""
    by_split: dict[str, list[_CsvTally]] = {}
    for tally in tallies:
        by_split.setdefault(tally.split, []).append(tally)
    train = by_split.get("train", [])
    need = settings.batch["train"] * max(1, settings.gpus)
    n_train = sum(c.valid for c in train)
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
        n = sum(c.valid for c in parts)
        if n == 0:
            sink.add(
                Problem(
                    parts[0].uri, 0, "split_empty", f"{split} has no usable rows (dev/test loss divides by 0)"
                )
            )
        elif settings.legacy:
            batch = settings.batch[split]
            for c in parts:  # 0.6.x drops the remainder of every set, per CSV
                if c.valid < batch:
                    sink.add(
                        Problem(
                            c.uri,
                            0,
                            "split_too_small",
                            f"{c.valid} usable row(s) < {split} batch size {batch}: "
                            f"DeepSpeech {settings.version} runs 0 steps and divides by zero",
                        )
                    )
