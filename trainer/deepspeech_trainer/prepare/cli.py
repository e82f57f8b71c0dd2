"""`deepspeech-trainer prepare` argument parsing. The audio libraries load only when a run starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deepspeech_trainer.exitcodes import TrainerError

from .layouts import ManifestColumns
from .model import Layout
from .split import parse_ratios
from .text import Policy

PROG = "deepspeech-trainer prepare"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Turn a folder (or s3:// prefix) of recordings with transcripts into DeepSpeech "
        "train/dev/test CSVs, 16-bit mono WAVs and an alphabet; upload them when DEST is s3://.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="local folder or s3://bucket/prefix with audio + transcripts"
    )
    p.add_argument("dest", metavar="DEST", help="local folder or s3://bucket/prefix for CSVs, WAVs, alphabet")
    p.add_argument("--layout", choices=[x.value for x in Layout], help="input layout (default: detected)")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,dev,test ratios (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--alphabet", help="alphabet file (local or s3://); default: derived from the transcripts")
    p.add_argument(
        "--policy",
        choices=[x.value for x in Policy],
        help="characters outside the alphabet: keep (extend the alphabet), map (fold/strip, drop rest), "
        "drop (drop the row); default map with --alphabet, keep without",
    )
    p.add_argument("--keep-case", action="store_true", help="do not lower-case transcripts")
    p.add_argument("--sample-rate", type=int, default=16000, help="output rate in Hz (default 16000)")
    p.add_argument(
        "--max-seconds", type=float, default=0.0, help="drop clips longer than this (default: no cap)"
    )
    p.add_argument("--manifest", help="manifest file inside SOURCE (default: the only one, or validated.tsv)")
    p.add_argument("--path-column", help="manifest audio column (default: path or wav_filename ...)")
    p.add_argument("--text-column", help="manifest transcript column (default: sentence or transcript ...)")
    p.add_argument(
        "--speaker-column",
        help="manifest speaker column (default: client_id/speaker_id/speaker if present; '' = none)",
    )
    p.add_argument("--jobs", type=int, default=2, help="parallel conversions (default 2)")
    p.add_argument("--work-dir", type=Path, help="local staging folder for an s3:// DEST")
    p.add_argument("--name", help="metadata.name in the printed DeepSpeechTraining (default: from DEST)")
    p.add_argument(
        "--output-uri", help="spec.output.uri in the snippet (default s3://<bucket>/models/<name>/)"
    )
    p.add_argument("--secret", default="s3-credentials", help="spec.storage.secretRef.name in the snippet")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="bar", action="store_true", default=None, help="always draw a bar")
    bar.add_argument("--no-progress", dest="bar", action="store_false", help="plain progress lines")
    return p


def options(argv: Sequence[str]):  # noqa: ANN201 - returns pipeline.Options (imported lazily)
    from .pipeline import Options

    a = build_parser().parse_args(list(argv))
    return Options(
        source=a.source,
        dest=a.dest,
        layout=Layout(a.layout) if a.layout else None,
        ratios=parse_ratios(a.split),
        seed=a.seed,
        alphabet=a.alphabet,
        policy=Policy(a.policy) if a.policy else None,
        lowercase=not a.keep_case,
        sample_rate=a.sample_rate,
        manifest=a.manifest,
        columns=ManifestColumns(a.path_column, a.text_column, a.speaker_column),
        max_seconds=a.max_seconds,
        jobs=a.jobs,
        work_dir=a.work_dir,
        name=a.name,
        output_uri=a.output_uri,
        secret=a.secret,
        progress_bar=a.bar,
    )


def run(argv: Sequence[str]) -> int:
    """Entry for `python -m deepspeech_trainer.prepare` and the trainer CLI hook."""
    from .pipeline import Interrupted
    from .pipeline import run as run_pipeline

    try:
        run_pipeline(options(argv))
    except Interrupted as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Interrupted.exit_code
    except TrainerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Called by `deepspeech-trainer prepare` with the parent's namespace (`prepare_argv`), or argv."""
    if isinstance(args, argparse.Namespace):
        return run(args.prepare_argv)
    return run(sys.argv[1:] if args is None else args)
