"""Command line of the trainer image: `deepspeech-trainer {plan,preflight,train,gpucheck,prepare}`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import pid1
from .exitcodes import OK, InvalidInput, TrainerError

DEFAULT_SPEC = Path("/etc/deepspeech/spec.json")
PROG = "deepspeech-trainer"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC, help=f"spec file, YAML or JSON (default {DEFAULT_SPEC})"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(os.environ.get("DST_WORK_DIR") or "/work"),
        help="scratch space (default $DST_WORK_DIR or /work)",
    )
    parser.add_argument(
        "--run-id",
        default=os.environ.get("DST_RUN_ID") or "local",
        help="run id (default $DST_RUN_ID or local)",
    )


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Runs Mozilla DeepSpeech training for the operator."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="print the DeepSpeech invocations this spec would run")
    _common(plan)
    plan.add_argument(
        "--epochs-done", type=_non_negative, default=0, help="plan a resume after N completed epochs"
    )
    plan.set_defaults(handler=cmd_plan)

    preflight = sub.add_parser("preflight", help="validate spec and data before any GPU is requested")
    _common(preflight)
    preflight.set_defaults(handler=_lazy("deepspeech_trainer.preflight"))

    train = sub.add_parser("train", help="stage, train, export and publish")
    _common(train)
    train.set_defaults(handler=_lazy("deepspeech_trainer.train"))

    gpu = sub.add_parser(
        "gpucheck", help="check that the requested GPUs are usable by the image's TensorFlow"
    )
    _common(gpu)
    gpu.set_defaults(handler=cmd_gpucheck)

    # prepare parses its own options (docs/prepare.md): '+' as prefix passes every argument through.
    prepare = sub.add_parser(
        "prepare", help="build DeepSpeech CSVs from recordings", add_help=False, prefix_chars="+"
    )
    prepare.add_argument("prepare_argv", nargs="*")
    prepare.set_defaults(handler=_lazy("deepspeech_trainer.prepare.cli"))
    return parser


def _lazy(module: str):  # noqa: ANN202 - returns a handler with the cmd_* signature
    """Import the sub-command's module only when it runs, so `plan` works without its dependencies."""

    def handler(args: argparse.Namespace) -> int:
        return int(importlib.import_module(module).main(args))

    return handler


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import make_plan
    from .spec import load_spec

    spec = load_spec(args.spec)
    try:
        result = make_plan(spec, work_dir=args.work_dir, epochs_done=args.epochs_done)
    except ValueError as exc:  # e.g. a work dir that is not absolute
        raise InvalidInput(str(exc)) from exc
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.to_text(), end="")
    return OK


def cmd_gpucheck(args: argparse.Namespace) -> int:
    from .gpucheck import verify
    from .spec import load_spec

    gpus = verify(load_spec(args.spec), {**os.environ, "DST_GPU_CHECK": "on"})
    for gpu in gpus:
        print(f"{gpu.name}: compute capability {gpu.capability[0]}.{gpu.capability[1]}, {gpu.memory_mib} MiB")
    print("GPU check passed" if gpus else "no GPU requested")
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TrainerError as exc:
        # Anything else is a bug: let it crash with a traceback and a generic exit code (retried).
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code


def entrypoint() -> int:
    """The `deepspeech-trainer` console script: the container's PID 1 in a Job (see pid1)."""
    pid1.reap_orphans_if_pid1()
    return main()


if __name__ == "__main__":
    sys.exit(entrypoint())
