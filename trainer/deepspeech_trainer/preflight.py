"""`deepspeech-trainer preflight`: stage CSVs + audio headers, validate everything, report.

Exit 0 when the data and spec are usable, 65 when not (never retried), 75 on storage trouble. The
same checks run again inside `train` (on the fully staged files) through `check_data`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepspeech_trainer import s3
from deepspeech_trainer import spec as spec_mod
from deepspeech_trainer.alphabet import format_alphabet, parse_alphabet
from deepspeech_trainer.archive import ArchiveLimits
from deepspeech_trainer.checkpoint_inspect import compatibility_problems, inspect_init_checkpoint
from deepspeech_trainer.csvdata import Problem
from deepspeech_trainer.exitcodes import INVALID, OK, RETRY, InvalidInput, TransientError
from deepspeech_trainer.report import StatusReporter, write_termination_message
from deepspeech_trainer.staging import (
    Mode,
    StagedCsv,
    StageResult,
    StageStats,
    spec_csvs,
    stage,
    stream_headers,
)
from deepspeech_trainer.validation import Report, Validator, settings_from_spec
from deepspeech_trainer.writeprobe import probe_writes

log = logging.getLogger(__name__)


def setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    # botocore logs every retry at INFO/DEBUG; our own lines say what matters.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class LoadedSpec:
    spec: dict[str, Any] | None  # defaulted; None when unusable even for data checks
    problems: list[Problem] = field(default_factory=list)


def load_spec_for_checks(path: Path) -> LoadedSpec:
    """The defaulted spec plus its problems: a spec error (e.g. one bad extraArg) is reported together
    with the data's problems instead of hiding them."""
    try:
        return LoadedSpec(spec_mod.load_spec(path))
    except InvalidInput as exc:
        problem = Problem(str(path), 0, "spec_invalid", str(exc))
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        spec = spec_mod.default_spec(spec_mod.extract_spec(document, str(path)))
        if not isinstance((spec.get("data") or {}).get("train"), list):
            return LoadedSpec(None, [problem])
        return LoadedSpec(spec, [problem])
    except Exception:  # unreadable or not a mapping: the problem above already says so
        return LoadedSpec(None, [problem])


@dataclass
class DataCheck:
    report: Report
    staged: StageResult


def check_data(
    spec: Mapping[str, Any],
    storage: s3.Storage,
    work_dir: Path,
    *,
    mode: Mode,
    spec_problems: list[Problem] | None = None,
    checkpoint_flags: Mapping[str, str] | None = None,
    checkpoint_alphabet: list[str] | None = None,
    inspect_checkpoint: bool = True,
    run_alphabet: list[str] | None = None,
) -> DataCheck:
    """Stage (headers or full), pick the alphabet, validate; TransientError propagates."""
    settings = settings_from_spec(spec)
    extra = list(spec_problems or [])
    notes: list[str] = []
    data = spec.get("data") or {}
    init = spec.get("initFrom") or {}

    alphabet: list[str] | None = None
    source = "derived"
    if data.get("alphabet"):
        uri = data["alphabet"]
        try:
            parsed = s3.parse_s3_uri(uri, "spec.data.alphabet")
            with s3.s3_errors(uri, "spec.data.alphabet"):
                text = s3.get_bytes(storage, parsed).decode("utf-8")
            alphabet = parse_alphabet(text, uri)
            source = "spec"
        except (InvalidInput, UnicodeDecodeError) as exc:
            extra.append(Problem(uri, 0, "alphabet_invalid", str(exc)))

    ckpt_uri = init.get("checkpoint")
    if ckpt_uri and inspect_checkpoint:
        facts = inspect_init_checkpoint(storage, ckpt_uri, ArchiveLimits.for_work_dir(work_dir))
        extra += facts.problems
        notes += facts.notes
        checkpoint_flags, checkpoint_alphabet = facts.flags, facts.alphabet
    drop = int(init.get("dropSourceLayers", 0) or 0)
    if run_alphabet is not None:
        # A resumed run keeps the alphabet its first attempt trained with (saved beside its checkpoint).
        alphabet, source = run_alphabet, "run"
    elif alphabet is None and checkpoint_alphabet is not None and drop == 0:
        # Fine-tuning without dropping layers keeps the source's output layer: its alphabet rules.
        alphabet, source = checkpoint_alphabet, "checkpoint"

    def compatibility(labels: list[str]) -> tuple[list[Problem], list[str]]:
        if not ckpt_uri or run_alphabet is not None:
            return [], []
        if checkpoint_flags is None and checkpoint_alphabet is None:
            return [], []
        return compatibility_problems(ckpt_uri, checkpoint_flags or {}, checkpoint_alphabet, spec, labels)

    if alphabet is not None:
        problems, ck_notes = compatibility(alphabet)
        extra += problems
        notes += ck_notes
    validator = Validator(settings, alphabet=alphabet, alphabet_source=source, extra=extra, notes=notes)
    if mode == "headers":
        # Streamed: a dataset of any size is checked in bounded memory (the CPU pod's limit).
        stats = StageStats()
        for chunk in stream_headers(spec, storage, work_dir, stats):
            validator.add(chunk)
        staged = StageResult(
            [StagedCsv(split, i, uri, f"spec.data.{split}[{i}]") for split, i, uri in spec_csvs(spec)], stats
        )
    else:
        staged = stage(spec, storage, work_dir, mode=mode)
        for csv_part in staged.csvs:
            validator.add(csv_part)
    if alphabet is None:
        problems, ck_notes = compatibility(validator.alphabet())
        validator.add_first(problems)
        validator.notes += ck_notes
    report = validator.report()
    return DataCheck(report, staged)


def termination_payload(report: Report) -> dict[str, Any]:
    return {
        "kind": "preflight",
        "ok": report.ok,
        "rows": report.rows,
        "problemCount": report.problem_count,
        "problems": [p.as_dict() for p in report.problems],
        "alphabetSize": len(report.alphabet),
    }


def summary_text(report: Report, plan: Mapping[str, Any] | None = None) -> str:
    lines = [
        f"preflight: {'OK' if report.ok else 'FAILED'} — {report.rows} rows "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.rows_by_split.items()))
        + f", {report.hours:.2f} h of audio",
        f"alphabet ({report.alphabet_source}): {len(report.alphabet)} labels {''.join(report.alphabet)!r}",
    ]
    if report.problem_count:
        by_code = ", ".join(f"{code} {n}" for code, n in sorted(report.counts.items()))
        lines.append(f"{report.problem_count} problem(s): {by_code}")
        for p in report.problems:
            where = f"{p.file}:{p.line}" if p.line else p.file
            lines.append(f"  {where}: [{p.code}] {p.message}")
        if len(report.problems) < report.problem_count:
            lines.append(f"  … {report.problem_count - len(report.problems)} more not listed")
    for note in report.notes:
        lines.append(f"note: {note}")
    if plan is not None:
        lines.append(f"dry run: {len(plan['invocations'])} DeepSpeech invocation(s) planned")
        for inv in plan["invocations"]:
            lines.append(f"  [{inv['purpose']}] {' '.join(inv['argv'])}")
    return "\n".join(lines) + "\n"


def _fail(kind_error: str, code: int, as_json: bool, problems: list[Problem]) -> int:
    payload = {
        "kind": "preflight",
        "ok": False,
        "rows": 0,
        "problemCount": len(problems),
        "problems": [p.as_dict() for p in problems],
        "alphabetSize": 0,
    }
    if code == RETRY:
        payload["error"] = kind_error
    write_termination_message(payload)
    if as_json:
        print(
            json.dumps(
                {"ok": False, "rows": 0, "problems": payload["problems"], "alphabet": [], "error": kind_error}
            )
        )
    else:
        print(f"preflight: FAILED — {kind_error}")
    return code


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # As PID 1 in a container the default action (terminate) does not apply: without a handler the pod
    # would sit out its whole grace period. Nothing to save: the next attempt checks again.
    raise SystemExit(RETRY)


def main(args: argparse.Namespace) -> int:
    setup_logging()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    as_json = bool(getattr(args, "json", False))
    work_dir = Path(args.work_dir)
    loaded = load_spec_for_checks(Path(args.spec))
    if loaded.spec is None:
        return _fail(loaded.problems[0].message, INVALID, as_json, loaded.problems)
    spec = loaded.spec
    try:
        storage = s3.Storage(s3.StorageConfig.from_spec(spec))
    except InvalidInput as exc:
        return _fail(str(exc), INVALID, as_json, [Problem("spec", 0, "spec_invalid", str(exc))])
    try:
        with storage:
            writable = probe_writes(spec, storage)
            result = check_data(
                spec, storage, work_dir, mode="headers", spec_problems=[*loaded.problems, *writable]
            )
    except TransientError as exc:
        log.error("storage trouble: %s", exc)
        return _fail(str(exc), RETRY, as_json, [])
    except InvalidInput as exc:
        return _fail(str(exc), INVALID, as_json, [Problem("spec", 0, "spec_invalid", str(exc))])
    report = result.report

    if report.alphabet:
        target = work_dir / "data" / "alphabet.txt"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(format_alphabet(report.alphabet), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write %s: %s", target, exc)

    plan_json = None
    if spec.get("dryRun") and not loaded.problems:
        from deepspeech_trainer.plan import make_plan

        try:
            plan_json = make_plan(spec, work_dir=work_dir).to_json()
            StatusReporter.from_env(args.run_id).plan(plan_json)
        except (InvalidInput, ValueError) as exc:
            report.problems.append(Problem("spec", 0, "plan_invalid", str(exc)))
            report.problem_count += 1
            report.ok = False

    write_termination_message(termination_payload(report))
    if as_json:
        out = {
            "ok": report.ok,
            "rows": report.rows,
            "problems": [p.as_dict() for p in report.problems],
            "alphabet": report.alphabet,
            "problemCount": report.problem_count,
            "problemCounts": report.counts,
            "notes": report.notes,
        }
        if plan_json is not None:
            out["plan"] = plan_json
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(summary_text(report, plan_json))
    return OK if report.ok else INVALID
