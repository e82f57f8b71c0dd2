"""Spec + local paths + resume state → the exact DeepSpeech command lines of a run (pure functions).

Why the plan has the shape it has (docs/trainer.md, "How a run is planned"):
- Test and export always run as their own invocations with `--checkpoint_dir OWN` and an explicit load
  choice (best with a dev set, else last). Attached to training they would read `--load_checkpoint_dir`
  (the source of a fine-tune), miss the better best_dev of an earlier attempt that the trainer puts back
  between invocations, and on 0.6.x fail outright after `--load init` (its evaluate restores only for
  auto/best/last). Plateau detection also reads the load dir, so it is only enabled when load = save.
  When it is asked for on a first fine-tune run, that run trains one epoch from the source and a second
  invocation continues from OWN with the plateau logic on.
- DeepSpeech counts epochs per invocation and restores the learning rate from the checkpoint, so a resumed
  run passes the remaining epochs, `--load_train last`, `--drop_source_layers 0` and no learning rate.
- `--force_initialize_learning_rate` only on the first run from a source checkpoint, where the source's LR
  would otherwise silently win.
- 0.6.x has one `--checkpoint_dir` for load and save: a fine-tune there trains in OWN after the trainer has
  copied the source checkpoint into it (`seeds_own_from_source`).
- TFLite is always its own export invocation into its own directory (a `.tflite` export writes no `.pb`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from . import flags
from .spec import validate_spec

Purpose = Literal["train", "test", "export"]
LoadChoice = Literal["best", "last"]

DEFAULT_PYTHON: Final = "python3"
DEFAULT_DEEPSPEECH_DIR: Final = Path("/DeepSpeech")
# DeepSpeech's default is 600 s; preemption loses everything since the last save, so save more often.
CHECKPOINT_SECS: Final = 300
EXPORT_FILE_NAME: Final = "output_graph"


@dataclass(frozen=True)
class Invocation:
    purpose: Purpose
    argv: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "argv": list(self.argv)}


@dataclass(frozen=True)
class Runtime:
    """Where DeepSpeech lives in the image: the TF1 interpreter and the DeepSpeech checkout."""

    python: str = DEFAULT_PYTHON
    deepspeech_dir: Path = DEFAULT_DEEPSPEECH_DIR

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Runtime:
        return cls(
            python=env.get("DST_TF_PYTHON") or DEFAULT_PYTHON,
            deepspeech_dir=Path(env.get("DST_DEEPSPEECH_DIR") or DEFAULT_DEEPSPEECH_DIR),
        )


@dataclass(frozen=True)
class RunPaths:
    """Absolute local paths of everything a DeepSpeech invocation reads or writes."""

    train_files: tuple[Path, ...]
    dev_files: tuple[Path, ...]
    test_files: tuple[Path, ...]
    alphabet: Path
    checkpoint_dir: Path
    summary_dir: Path
    export_dir: Path
    tflite_export_dir: Path
    test_output_file: Path
    scorer: Path | None = None
    source_checkpoint: Path | None = None

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            for path in value if isinstance(value, tuple) else (value,):
                if path is not None and not Path(path).is_absolute():
                    raise ValueError(
                        f"RunPaths.{name}: {path} is not absolute (DeepSpeech resolves against CWD)"
                    )
                if path is not None and "," in str(path) and name.endswith("_files"):
                    raise ValueError(f"RunPaths.{name}: {path} contains a comma (DeepSpeech splits on ',')")

    def required_dirs(self) -> tuple[Path, ...]:
        """Directories that must exist before DeepSpeech runs: it opens `--test_output_file` without
        creating its parent. (It creates checkpoint, summary and export dirs itself; listed anyway so the
        caller can make them with the right owner.)"""
        return (self.checkpoint_dir, self.summary_dir, self.test_output_file.parent)

    @classmethod
    def in_pod(cls, spec: Mapping[str, Any], work_dir: Path) -> RunPaths:
        """The canonical layout under the work dir; staging downloads to exactly these paths.

        data/{train,dev,test}-<i>.csv (i = position in spec.data.*), data/alphabet.txt, data/kenlm.scorer,
        source-checkpoint/ (initFrom, unpacked, state files rewritten), checkpoints/ (OWN), summaries/,
        output/model/, output/tflite/, output/test_results.json.
        """
        work = Path(work_dir)
        data = spec.get("data") or {}
        init = spec.get("initFrom") or {}

        def csvs(kind: str) -> tuple[Path, ...]:
            return tuple(work / "data" / f"{kind}-{i}.csv" for i in range(len(data.get(kind) or [])))

        return cls(
            train_files=csvs("train"),
            dev_files=csvs("dev"),
            test_files=csvs("test"),
            alphabet=work / "data" / "alphabet.txt",
            scorer=work / "data" / "kenlm.scorer" if data.get("scorer") else None,
            source_checkpoint=work / "source-checkpoint" if init.get("checkpoint") else None,
            checkpoint_dir=work / "checkpoints",
            summary_dir=work / "summaries",
            export_dir=work / "output" / "model",
            tflite_export_dir=work / "output" / "tflite",
            test_output_file=work / "output" / "test_results.json",
        )


@dataclass(frozen=True)
class ResumeState:
    """What earlier attempts of this run left behind.

    epochs_done: epochs fully trained *and validated* (the end-of-epoch checkpoint is saved before
    validation, so an epoch interrupted during validation does not count). own_checkpoint: OWN holds a
    checkpoint of this run. best_dev_loss: best validation loss so far; DeepSpeech forgets it on restart, so
    the checkpoint sync uses it to keep the better best_dev (the command line cannot carry it).
    """

    epochs_done: int = 0
    own_checkpoint: bool = False
    best_dev_loss: float | None = None

    def __post_init__(self) -> None:
        if self.epochs_done < 0:
            raise ValueError(f"ResumeState.epochs_done: must be >= 0, got {self.epochs_done}")
        if self.epochs_done > 0 and not self.own_checkpoint:
            raise ValueError("ResumeState: epochs are done but there is no own checkpoint to resume from")


# ---------------------------------------------------------------------------------------------- helpers


def _opt(name: str, value: object) -> list[str]:
    text = _fmt(value)
    # An empty value must be glued to the flag or absl takes the next token as the value.
    return [f"--{name}="] if text == "" else [f"--{name}", text]


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        raise TypeError("booleans are emitted with _bool, never as a separate token")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _bool(name: str, on: bool = True, *, coqui: bool = False) -> list[str]:
    # absl reads a separate `true`/`false` token as a positional argument; Coqui STT's argparse needs it.
    if coqui:
        return [f"--{name}", "true" if on else "false"]
    return [f"--{name}" if on else f"--no{name}"]


def _files(name: str, paths: Sequence[Path], *, coqui: bool = False) -> list[str]:
    # DeepSpeech splits one value on commas; Coqui STT takes the files as separate tokens.
    if coqui:
        return [f"--{name}", *(str(p) for p in paths)]
    return [f"--{name}", ",".join(str(p) for p in paths)]


@dataclass(frozen=True)
class _Ctx:
    spec: Mapping[str, Any]
    paths: RunPaths
    runtime: Runtime
    version: str
    source_load: LoadChoice

    @property
    def legacy(self) -> bool:
        return flags.is_legacy(self.version)

    @property
    def coqui(self) -> bool:
        return flags.is_coqui(self.version)

    def switch(self, name: str, on: bool = True) -> list[str]:
        return _bool(name, on, coqui=self.coqui)

    def files(self, name: str, paths: Sequence[Path]) -> list[str]:
        return _files(name, paths, coqui=self.coqui)

    @property
    def training(self) -> Mapping[str, Any]:
        return self.spec["training"]

    @property
    def extra(self) -> list[str]:
        return list(self.training.get("extraArgs") or [])

    @property
    def evaluate_load(self) -> LoadChoice:
        # best_dev only exists when there was validation.
        return "best" if self.paths.dev_files else "last"

    def base(self) -> list[str]:
        if self.legacy:
            # 0.6.x imports util.* from its checkout; the runner also sets CWD to it.
            head = [self.runtime.python, "-u", str(self.runtime.deepspeech_dir / "DeepSpeech.py")]
        elif self.coqui:
            head = [self.runtime.python, "-u", "-m", "coqui_stt_training.train"]
        else:
            head = [self.runtime.python, "-u", "-m", "deepspeech_training.train"]
        # Two tokens: DeepSpeech reads the literal `--log_level` from sys.argv for TF's C++ log level.
        argv = [*head, "--log_level", "1", *self.switch("show_progressbar", False)]
        if self.coqui:
            # Coqui STT first runs one batch of a dummy pass through the model: minutes on a big model.
            argv += self.switch("skip_batch_test")
        return argv

    def decoder(self, testing: bool) -> list[str]:
        if self.legacy:
            # The defaults are Git-LFS pointers in the checkout: decode without an LM.
            return ["--lm_binary_path=", "--lm_trie_path="]
        if testing and self.paths.scorer is not None:
            return _opt("scorer_path", self.paths.scorer)
        # 0.7.4 loads its default (LFS pointer) scorer at start-up; training never needs one.
        return ["--scorer_path="]

    def own_evaluate(self) -> list[str]:
        # 0.6's evaluate restores only for --load auto|best|last, and auto means the newest, not the best.
        load = "load" if self.legacy else "load_evaluate"
        return [*_opt("checkpoint_dir", self.paths.checkpoint_dir), *_opt(load, self.evaluate_load)]

    def test_flags(self) -> list[str]:
        if not self.paths.test_files:
            return []
        return [
            *self.files("test_files", self.paths.test_files),
            *_opt("test_batch_size", self.training["batchSize"]["test"]),
            *_opt("test_output_file", self.paths.test_output_file),
        ]

    def export_flags(self, tflite: bool) -> list[str]:
        directory = self.paths.tflite_export_dir if tflite else self.paths.export_dir
        argv = _opt("export_dir", directory)
        if not self.legacy:
            argv += _opt("export_file_name", EXPORT_FILE_NAME)
        if tflite or self.coqui:
            # Coqui STT exports TFLite unless told otherwise (and then writes no .pb).
            argv += self.switch("export_tflite", tflite)
        return argv


Mode = Literal["fresh", "resume", "source"]


def _train(ctx: _Ctx, mode: Mode, epochs: int) -> Invocation:
    """One training invocation. It never tests or exports: see build_invocations."""
    t = ctx.training
    p = ctx.paths
    init = ctx.spec.get("initFrom") or {}
    argv = ctx.base()
    argv += ctx.files("train_files", p.train_files)
    if p.dev_files:
        argv += ctx.files("dev_files", p.dev_files)
    argv += _opt("alphabet_config_path", p.alphabet)

    if ctx.legacy:
        load = {"fresh": "init", "resume": "last", "source": ctx.source_load}[mode]
        argv += [*_opt("checkpoint_dir", p.checkpoint_dir), *_opt("load", load)]
    elif mode == "source":
        assert p.source_checkpoint is not None
        argv += _opt("load_checkpoint_dir", p.source_checkpoint)
        argv += _opt("save_checkpoint_dir", p.checkpoint_dir)
        argv += _opt("load_train", ctx.source_load)
        if init.get("dropSourceLayers", 0):
            argv += _opt("drop_source_layers", init["dropSourceLayers"])
    else:
        argv += [
            *_opt("checkpoint_dir", p.checkpoint_dir),
            *_opt("load_train", "init" if mode == "fresh" else "last"),
        ]
        if mode == "resume":
            # Otherwise a restart of a transfer-learning run would re-initialise layers of its own progress.
            argv += _opt("drop_source_layers", 0)

    argv += _opt("summary_dir", p.summary_dir)
    argv += _opt("n_hidden", t["nHidden"])
    if t["cudnn"]:
        argv += ctx.switch("use_cudnn_rnn" if ctx.legacy else "train_cudnn")
    elif mode == "source" and not ctx.legacy:
        # Release checkpoints are CuDNN checkpoints; loading one into the CPU-capable graph needs this
        # (harmless for a source without CuDNN variables).
        argv += ctx.switch("load_cudnn")

    # 0.6.x keeps no learning-rate variable in the checkpoint, so it needs the flag on every run.
    if ctx.legacy or mode != "resume":
        argv += _opt("learning_rate", float(t["learningRate"]))
    if mode == "source" and not ctx.legacy:
        argv += ctx.switch("force_initialize_learning_rate")

    argv += _opt("epochs", epochs)
    argv += _opt("train_batch_size", t["batchSize"]["train"])
    if p.dev_files:
        argv += _opt("dev_batch_size", t["batchSize"]["dev"])
    argv += _opt("dropout_rate", float(t["dropoutRate"]))
    argv += _opt("checkpoint_secs", CHECKPOINT_SECS)

    early = t.get("earlyStop")
    if ctx.legacy:
        # 0.6.0 stops early by default, which would cut the epoch count the user asked for.
        if early is not None:
            argv += [*_bool("early_stop"), *_opt("es_steps", early["epochs"])]
        else:
            argv += _bool("early_stop", False)
    elif early is not None:
        argv += [*ctx.switch("early_stop"), *_opt("es_epochs", early["epochs"])]
        argv += _opt("es_min_delta", float(early["minDelta"]))

    plateau = t.get("reduceLROnPlateau")
    if plateau is not None and not ctx.legacy and mode != "source":
        argv += ctx.switch("reduce_lr_on_plateau")
        argv += _opt("plateau_epochs", plateau["epochs"])
        argv += _opt("plateau_reduction", float(plateau["reduction"]))

    augmentations = list(t.get("augmentations") or [])
    if augmentations and ctx.coqui:
        argv += ["--augment", *augmentations]  # one list flag: a repeated one would keep only the last
    for aug in augmentations if not ctx.coqui else []:
        argv += _opt("augment", aug)
    if t.get("mixedPrecision"):
        argv += ctx.switch("automatic_mixed_precision")

    argv += ctx.decoder(testing=False)
    return Invocation("train", argv + ctx.extra)


def _evaluation_base(ctx: _Ctx) -> list[str]:
    """What test and export invocations share: they load the run's own best checkpoint."""
    argv = ctx.base()
    argv += _opt("alphabet_config_path", ctx.paths.alphabet)
    argv += ctx.own_evaluate()
    argv += _opt("summary_dir", ctx.paths.summary_dir)
    argv += _opt("n_hidden", ctx.training["nHidden"])
    return argv


def _test(ctx: _Ctx) -> Invocation:
    argv = _evaluation_base(ctx)
    argv += ctx.test_flags()
    argv += ctx.decoder(testing=True)
    return Invocation("test", argv + ctx.extra)


def _export(ctx: _Ctx, *, tflite: bool) -> Invocation:
    argv = _evaluation_base(ctx)
    argv += ctx.export_flags(tflite=tflite)
    argv += ctx.decoder(testing=False)
    return Invocation("export", argv + ctx.extra)


# ---------------------------------------------------------------------------------------------- public API


def exports_tflite(spec: Mapping[str, Any]) -> bool:
    """output.tflite asks for it; Coqui STT always exports it, since its runtime (`stt`) loads only TFLite."""
    return bool(spec["output"].get("tflite")) or flags.is_coqui(spec["deepspeech"]["version"])


def remaining_epochs(spec: Mapping[str, Any], resume: ResumeState) -> int:
    return max(0, int(spec["training"]["epochs"]) - resume.epochs_done)


def seeds_own_from_source(spec: Mapping[str, Any], resume: ResumeState) -> bool:
    """True when the trainer must copy the source checkpoint into OWN before the first 0.6.x run."""
    version = spec["deepspeech"]["version"]
    return (
        flags.is_legacy(version)
        and bool((spec.get("initFrom") or {}).get("checkpoint"))
        and not resume.own_checkpoint
        and remaining_epochs(spec, resume) > 0
    )


def build_invocations(
    spec: Mapping[str, Any],
    paths: RunPaths,
    resume: ResumeState | None = None,
    runtime: Runtime | None = None,
    *,
    source_load: LoadChoice = "best",
) -> list[Invocation]:
    """The ordered DeepSpeech invocations of a run. `spec` must be defaulted (see spec.default_spec).

    source_load: which state file the source checkpoint has (`best` → best_dev_checkpoint, `last` →
    checkpoint); the release tarballs carry both.
    """
    resume = resume or ResumeState()
    runtime = runtime or Runtime()
    validate_spec(spec)
    if source_load not in ("best", "last"):
        raise ValueError(f"source_load: must be 'best' or 'last', got {source_load!r}")
    init = spec.get("initFrom") or {}
    if init.get("checkpoint") and paths.source_checkpoint is None:
        raise ValueError("RunPaths.source_checkpoint: required when spec.initFrom is given")
    if (spec["data"].get("scorer") is None) != (paths.scorer is None):
        raise ValueError("RunPaths.scorer: must be set exactly when spec.data.scorer is")
    for kind in ("train", "dev", "test"):
        if len(spec["data"].get(kind) or []) != len(getattr(paths, f"{kind}_files")):
            raise ValueError(f"RunPaths.{kind}_files: one local file per spec.data.{kind} entry")

    ctx = _Ctx(spec, paths, runtime, spec["deepspeech"]["version"], source_load)
    remaining = remaining_epochs(spec, resume)
    mode: Mode = "resume" if resume.own_checkpoint else ("source" if init.get("checkpoint") else "fresh")
    plateau = spec["training"].get("reduceLROnPlateau") is not None

    plan: list[Invocation] = []
    if remaining > 0:
        if ctx.legacy or mode != "source":
            # 0.6.x fine-tunes inside OWN (seeded), so load = save there too.
            plan.append(_train(ctx, mode, remaining))
        elif plateau and remaining > 1:
            plan.append(_train(ctx, "source", 1))
            plan.append(_train(ctx, "resume", remaining - 1))
        else:
            plan.append(_train(ctx, "source", remaining))
    # Test and export are never attached to training: the trainer first puts back the best best_dev of all
    # attempts (DeepSpeech forgets it on restart), and 0.6's evaluate cannot restore after `--load init`.
    if paths.test_files:
        plan.append(_test(ctx))
    plan.append(_export(ctx, tflite=False))
    if exports_tflite(spec):
        plan.append(_export(ctx, tflite=True))
    return plan


__all__ = [
    "Invocation",
    "ResumeState",
    "RunPaths",
    "Runtime",
    "build_invocations",
    "exports_tflite",
    "remaining_epochs",
    "seeds_own_from_source",
]
