from __future__ import annotations

from pathlib import Path

import pytest
from deepspeech_trainer import flags
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.invocation import (
    CHECKPOINT_SECS,
    Invocation,
    ResumeState,
    RunPaths,
    Runtime,
    build_invocations,
    exports_tflite,
    remaining_epochs,
    seeds_own_from_source,
)

from tests.standin import standin_flags

from .conftest import make_spec

WORK = Path("/w")
OWN = "/w/checkpoints"
SRC = "/w/source-checkpoint"
FINETUNE = {"initFrom": {"checkpoint": "s3://models/release/deepspeech-0.9.3-checkpoint.tar.gz"}}
COQUI = {"deepspeech.engine": "coqui-stt", "deepspeech.version": "1.4.0"}

# Flags that only training may carry, and those that only test / export may carry. Test and export never
# ride on a training invocation: DeepSpeech 0.6.0's evaluate cannot restore after `--load init`
# (NameError: name 'sys' is not defined), and an attached test would miss the better best_dev of an
# earlier attempt that the trainer restores between invocations.
TRAIN_ONLY = frozenset(
    {
        "train_files",
        "dev_files",
        "epochs",
        "train_batch_size",
        "dev_batch_size",
        "load_train",
        "load_checkpoint_dir",
        "save_checkpoint_dir",
        "drop_source_layers",
        "learning_rate",
        "force_initialize_learning_rate",
        "augment",
        "early_stop",
        "reduce_lr_on_plateau",
        "train_cudnn",
        "use_cudnn_rnn",
        "load_cudnn",
    }
)
EVALUATE_ONLY = frozenset(
    {"test_files", "test_batch_size", "test_output_file", "export_dir", "export_tflite", "load_evaluate"}
)


def plan(resume: ResumeState | None = None, runtime: Runtime | None = None, **changes) -> list[Invocation]:
    spec = make_spec(**changes)
    invs = build_invocations(spec, RunPaths.in_pod(spec, WORK), resume, runtime)
    for inv in invs:
        check_invariants(spec["deepspeech"]["version"], inv)
    check_plan_shape(spec, invs)
    return invs


def check_plan_shape(spec: dict, invs: list[Invocation]) -> None:
    """Always: training (while epochs remain), then test (with data.test), then the .pb export, then the
    tflite export (output.tflite, or always on Coqui STT)."""
    purposes = [inv.purpose for inv in invs]
    n_train = purposes.count("train")
    tflite = exports_tflite(spec)
    assert tflite == (bool(spec["output"].get("tflite")) or flags.is_coqui(spec["deepspeech"]["version"]))
    expected = ["train"] * n_train + ["test"] * bool(spec["data"].get("test")) + ["export"] * (1 + tflite)
    assert purposes == expected
    pb, *rest = [inv for inv in invs if inv.purpose == "export"]
    assert value(pb, "export_dir") == "/w/output/model"
    assert not exports_tflite_flag(pb)
    for tfl in rest:
        assert value(tfl, "export_dir") == "/w/output/tflite" and exports_tflite_flag(tfl)


def check_invariants(version: str, inv: Invocation) -> None:
    """What must hold for every command line, whatever the branch."""
    argv = inv.argv
    coqui = flags.is_coqui(version)
    legacy = flags.is_legacy(version)
    start = 3 if legacy else 4
    args = argv[start:]
    # Every flag is known to this version and takes its value the way the version's parser wants it
    # (absl: a boolean never takes a separate token; Coqui STT's argparse: it always does).
    parsed = flags.parse_args(version, args, "argv")
    if coqui:
        assert argv[1:4] == ["-u", "-m", "coqui_stt_training.train"]
        assert args[:6] == ["--log_level", "1", "--show_progressbar", "false", "--skip_batch_test", "true"]
        for arg in parsed:
            if arg.flag.type is flags.FlagType.BOOL and "=" not in args[arg.index]:
                assert args[arg.index + 1] in ("true", "false"), arg
        # No absl `--noflag` negation: every `--no…` token is a real Coqui STT flag name.
        for token in args:
            if token.startswith("--no"):
                assert flags.lookup(version, token[2:].partition("=")[0]) is not None, token
    else:
        # ... and to the stand-in's independent absl imitation (it knows only DeepSpeech's versions).
        _, leftovers = standin_flags.parse(version, args, check_files=False)
        assert leftovers == []
        assert args[:3] == ["--log_level", "1", "--noshow_progressbar"]
        assert not any(token in ("true", "false") for token in args)
    assert "--log_level=1" not in argv
    for arg in parsed:
        if arg.flag.name.endswith(("_dir", "_path", "_file", "_files")) and arg.value != "":
            for path in str(arg.value).split(" " if coqui else ","):
                assert Path(path).is_absolute(), (arg.spelled, path)
    if version == "0.9.3":
        assert not any(a.startswith(("--remove_export", "--cache_for_epochs")) for a in args)
    assert any(a == "--summary_dir" for a in args)
    assert value(inv, "n_hidden") is not None  # the evaluation graph must match the trained geometry

    names = {arg.flag.name for arg in parsed}
    if inv.purpose == "train":
        assert not names & EVALUATE_ONLY, names & EVALUATE_ONLY
        assert "train_files" in names and "epochs" in names
        if legacy:
            assert has(inv, "--lm_binary_path=") and has(inv, "--lm_trie_path=")
        else:
            assert has(inv, "--scorer_path=")
    else:
        assert not names & TRAIN_ONLY, names & TRAIN_ONLY
        assert value(inv, "checkpoint_dir") == OWN
        assert value(inv, "load" if legacy else "load_evaluate") in ("best", "last")
        assert ("test_files" in names) == (inv.purpose == "test")
        assert ("export_dir" in names) == (inv.purpose == "export")


def value(inv: Invocation, name: str) -> str | None:
    argv = inv.argv
    for i, token in enumerate(argv):
        if token == f"--{name}":
            return argv[i + 1]
        if token == f"--{name}=":
            return ""
    return None


def values(inv: Invocation, name: str) -> list[str]:
    """Coqui STT's list flags: every token after `--name` up to the next flag."""
    argv = inv.argv
    i = argv.index(f"--{name}") + 1
    out = []
    while i < len(argv) and not argv[i].startswith("--"):
        out.append(argv[i])
        i += 1
    return out


def has(inv: Invocation, token: str) -> bool:
    return token in inv.argv


def exports_tflite_flag(inv: Invocation) -> bool:
    return has(inv, "--export_tflite") and value(inv, "export_tflite") != "false"


# ------------------------------------------------------------------------------------------- 0.7+ dialect


def test_modern_fresh_run_trains_then_tests_then_exports_separately():
    train, test, export = plan()
    assert (train.purpose, test.purpose, export.purpose) == ("train", "test", "export")
    assert train.argv[:4] == ["python3", "-u", "-m", "deepspeech_training.train"]
    assert value(train, "train_files") == "/w/data/train-0.csv"
    assert value(train, "dev_files") == "/w/data/dev-0.csv"
    assert value(train, "checkpoint_dir") == OWN
    assert value(train, "load_train") == "init"
    assert value(train, "load_checkpoint_dir") is None and value(train, "drop_source_layers") is None
    assert value(train, "learning_rate") == "0.001"
    assert not has(train, "--force_initialize_learning_rate")
    assert value(train, "epochs") == "3"
    assert has(train, "--train_cudnn") and not has(train, "--load_cudnn")
    assert value(train, "checkpoint_secs") == str(CHECKPOINT_SECS)
    assert value(train, "scorer_path") == ""
    assert not has(train, "--early_stop") and not has(train, "--reduce_lr_on_plateau")
    # Training carries no test and no export (0.6's evaluate cannot restore after --load init, and an
    # attached test would miss the better best_dev of an earlier attempt).
    for name in ("test_files", "test_output_file", "load_evaluate", "export_dir", "export_file_name"):
        assert value(train, name) is None, name
    assert value(test, "test_files") == "/w/data/test-0.csv"
    assert value(test, "test_output_file") == "/w/output/test_results.json"
    assert value(test, "scorer_path") == ""
    assert value(export, "export_dir") == "/w/output/model"
    assert value(export, "export_file_name") == "output_graph"
    for inv in (test, export):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load_evaluate") == "best"
        assert value(inv, "train_files") is None and value(inv, "epochs") is None


def test_several_csvs_are_comma_joined():
    train, test, _ = plan(
        **{
            "data.train": ["s3://bkt/a.csv", "s3://bkt/b.csv"],
            "data.test": ["s3://bkt/t.csv", "s3://bkt/u.csv"],
        }
    )
    assert value(train, "train_files") == "/w/data/train-0.csv,/w/data/train-1.csv"
    assert value(test, "test_files") == "/w/data/test-0.csv,/w/data/test-1.csv"


def test_without_dev_there_is_no_best_dev_to_evaluate():
    train, test, export = plan(**{"data.dev": None})
    assert value(train, "dev_files") is None and value(train, "dev_batch_size") is None
    assert value(test, "load_evaluate") == "last" and value(export, "load_evaluate") == "last"


def test_without_test_files_the_model_is_still_exported():
    train, export = plan(**{"data.test": None})
    assert (train.purpose, export.purpose) == ("train", "export")
    for inv in (train, export):
        assert value(inv, "test_files") is None and value(inv, "test_output_file") is None
    assert value(export, "export_dir") == "/w/output/model"


def test_scorer_only_where_testing_happens():
    train, test, export = plan(**{"data.scorer": "s3://bkt/kenlm.scorer"})
    assert value(test, "scorer_path") == "/w/data/kenlm.scorer"
    assert value(train, "scorer_path") == "" and value(export, "scorer_path") == ""
    train, export = plan(**{"data.scorer": "s3://bkt/kenlm.scorer", "data.test": None})
    assert value(train, "scorer_path") == "" and value(export, "scorer_path") == ""


def test_batch_sizes_dropout_and_geometry():
    invs = plan(
        **{
            "training.batchSize": {"train": 32, "dev": 16, "test": 8},
            "training.dropoutRate": 0.25,
            "training.nHidden": 1024,
            "training.learningRate": 0.00001,
        }
    )
    train, test, _ = invs
    assert (value(train, "train_batch_size"), value(train, "dev_batch_size")) == ("32", "16")
    assert value(test, "test_batch_size") == "8" and value(train, "test_batch_size") is None
    assert value(train, "dropout_rate") == "0.25"
    assert [value(inv, "n_hidden") for inv in invs] == ["1024"] * 3
    assert value(train, "learning_rate") == "1e-05"


def test_resume_passes_remaining_epochs_last_and_no_learning_rate():
    train, test, export = plan(ResumeState(epochs_done=4, own_checkpoint=True), **{"training.epochs": 10})
    assert value(train, "epochs") == "6"
    assert value(train, "checkpoint_dir") == OWN
    assert value(train, "load_train") == "last"
    assert value(train, "drop_source_layers") == "0"
    assert value(train, "learning_rate") is None
    assert not has(train, "--force_initialize_learning_rate")
    assert value(export, "export_dir") == "/w/output/model"
    for inv in (test, export):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load_evaluate") == "best"


def test_resume_with_checkpoint_but_no_finished_epoch_trains_all_epochs():
    train, *_ = plan(ResumeState(epochs_done=0, own_checkpoint=True), **{"training.epochs": 10})
    assert value(train, "epochs") == "10" and value(train, "load_train") == "last"


def test_all_epochs_done_leaves_test_and_export_from_own():
    test, export = plan(ResumeState(epochs_done=3, own_checkpoint=True))
    assert (test.purpose, export.purpose) == ("test", "export")
    for inv in (test, export):
        assert value(inv, "checkpoint_dir") == OWN
        assert value(inv, "load_evaluate") == "best"
        assert value(inv, "train_files") is None and value(inv, "epochs") is None
        assert not has(inv, "--train_cudnn")
    assert value(test, "test_files") == "/w/data/test-0.csv" and value(test, "export_dir") is None
    assert value(export, "export_dir") == "/w/output/model" and value(export, "test_files") is None


def test_more_epochs_done_than_asked_is_zero_remaining():
    spec = make_spec()
    assert remaining_epochs(spec, ResumeState(epochs_done=7, own_checkpoint=True)) == 0


def test_first_finetune_loads_source_saves_own_and_tests_separately():
    train, test, export = plan(**FINETUNE, **{"training.learningRate": 0.0001})
    assert value(train, "load_checkpoint_dir") == SRC
    assert value(train, "save_checkpoint_dir") == OWN
    assert value(train, "checkpoint_dir") is None
    assert value(train, "load_train") == "best"
    assert value(train, "drop_source_layers") is None
    assert value(train, "learning_rate") == "0.0001"
    assert has(train, "--force_initialize_learning_rate")
    assert value(train, "test_files") is None and value(train, "export_dir") is None
    assert value(train, "load_evaluate") is None
    assert value(test, "checkpoint_dir") == OWN and value(export, "checkpoint_dir") == OWN
    assert value(test, "load_checkpoint_dir") is None
    assert value(test, "load_evaluate") == "best" and value(export, "load_evaluate") == "best"


def test_source_with_only_a_last_checkpoint():
    spec = make_spec(**FINETUNE)
    train, test, export = build_invocations(spec, RunPaths.in_pod(spec, WORK), source_load="last")
    assert value(train, "load_train") == "last"
    # The run's own checkpoint has a best_dev whatever the source had.
    assert value(test, "load_evaluate") == "best" and value(export, "load_evaluate") == "best"


def test_transfer_learning_drops_layers_once():
    changes = {**FINETUNE, "initFrom.dropSourceLayers": 2}
    (first, *_) = plan(**changes)
    assert value(first, "drop_source_layers") == "2"
    again, *_ = plan(ResumeState(epochs_done=1, own_checkpoint=True), **changes)
    assert value(again, "drop_source_layers") == "0"
    assert value(again, "checkpoint_dir") == OWN and value(again, "load_checkpoint_dir") is None
    assert not has(again, "--force_initialize_learning_rate")


def test_cpu_finetune_loads_cudnn_checkpoint_into_cpu_graph():
    train, *evaluate = plan(**FINETUNE, **{"resources.gpus": 0})
    assert has(train, "--load_cudnn") and not has(train, "--train_cudnn")
    # Test and export read OWN, which the CPU graph wrote: nothing to convert there.
    assert not any(has(inv, "--load_cudnn") for inv in evaluate)
    fresh, *_ = plan(**{"resources.gpus": 0})
    assert not has(fresh, "--load_cudnn") and not has(fresh, "--train_cudnn")
    resumed, *_ = plan(ResumeState(1, True), **FINETUNE, **{"resources.gpus": 0})
    assert not has(resumed, "--load_cudnn")


def test_plateau_on_fresh_run():
    train, *_ = plan(**{"training.reduceLROnPlateau": {"epochs": 4, "reduction": 0.5}})
    assert has(train, "--reduce_lr_on_plateau")
    assert (value(train, "plateau_epochs"), value(train, "plateau_reduction")) == ("4", "0.5")


def test_plateau_never_while_loading_from_source_so_first_finetune_is_split():
    first, rest, test, export = plan(**FINETUNE, **{"training.reduceLROnPlateau": {}, "training.epochs": 5})
    assert value(first, "epochs") == "1" and not has(first, "--reduce_lr_on_plateau")
    assert value(first, "load_checkpoint_dir") == SRC and has(first, "--force_initialize_learning_rate")
    assert value(rest, "epochs") == "4" and has(rest, "--reduce_lr_on_plateau")
    assert value(rest, "checkpoint_dir") == OWN and value(rest, "load_train") == "last"
    assert value(rest, "drop_source_layers") == "0" and value(rest, "learning_rate") is None
    assert value(rest, "test_files") is None and value(rest, "export_dir") is None
    assert value(test, "test_files") is not None and value(export, "export_dir") is not None
    assert value(test, "checkpoint_dir") == OWN and value(export, "checkpoint_dir") == OWN


def test_plateau_with_one_epoch_finetune_is_dropped():
    train, *evaluate = plan(**FINETUNE, **{"training.reduceLROnPlateau": {}, "training.epochs": 1})
    assert [i.purpose for i in evaluate] == ["test", "export"]
    assert not has(train, "--reduce_lr_on_plateau")


def test_early_stop_modern():
    train, *_ = plan(**{"training.earlyStop": {"epochs": 3, "minDelta": 0.1}})
    assert has(train, "--early_stop")
    assert (value(train, "es_epochs"), value(train, "es_min_delta")) == ("3", "0.1")


def test_augmentations_repeat_the_flag_and_amp():
    augs = ["volume[p=0.1,dbfs=-10:-40]", "pitch[p=0.1,pitch=1~0.2]"]
    train, *evaluate = plan(**{"training.augmentations": augs, "training.mixedPrecision": True})
    pairs = [train.argv[i + 1] for i, t in enumerate(train.argv) if t == "--augment"]
    assert pairs == augs
    assert has(train, "--automatic_mixed_precision")
    assert not any(has(inv, "--augment") for inv in evaluate)


def test_extra_args_close_every_invocation():
    extra = ["--max_to_keep=3", "--export_language=en-US"]
    invs = plan(**FINETUNE, **{"training.extraArgs": extra, "output.tflite": True})
    assert [inv.purpose for inv in invs] == ["train", "test", "export", "export"]
    for inv in invs:
        assert inv.argv[-2:] == extra


def test_tflite_is_its_own_export_into_its_own_dir():
    train, test, pb_export, tflite = plan(**{"output.tflite": True})
    assert value(train, "export_dir") is None and value(test, "export_dir") is None
    assert pb_export.purpose == "export"
    assert value(pb_export, "export_dir") == "/w/output/model" and not has(pb_export, "--export_tflite")
    assert tflite.purpose == "export" and has(tflite, "--export_tflite")
    assert value(tflite, "export_dir") == "/w/output/tflite"
    assert value(tflite, "checkpoint_dir") == OWN and value(tflite, "train_files") is None


def test_runtime_from_env():
    runtime = Runtime.from_env({"DST_TF_PYTHON": "/opt/tf1/bin/python", "DST_DEEPSPEECH_DIR": "/src/ds"})
    invs = plan(runtime=runtime)
    assert [inv.argv[0] for inv in invs] == ["/opt/tf1/bin/python"] * 3
    legacy = plan(runtime=runtime, **{"deepspeech.version": "0.6.0"})
    for inv in legacy:
        assert inv.argv[:3] == ["/opt/tf1/bin/python", "-u", "/src/ds/DeepSpeech.py"]
    assert Runtime.from_env({}) == Runtime("python3", Path("/DeepSpeech"))


# ------------------------------------------------------------------------------------------- 0.6.x dialect


def test_legacy_fresh_run_tests_and_exports_on_their_own_with_load_best():
    """0.6.0's evaluate cannot restore after `--load init` (NameError: name 'sys' is not defined), so test
    and export never ride on the training invocation and load OWN's best_dev explicitly."""
    train, test, export = plan(**{"deepspeech.version": "0.6.0", "training.learningRate": 0.0001})
    assert train.argv[:3] == ["python3", "-u", "/DeepSpeech/DeepSpeech.py"]
    assert value(train, "checkpoint_dir") == OWN
    assert value(train, "load") == "init"
    assert has(train, "--use_cudnn_rnn") and has(train, "--noearly_stop")
    assert value(train, "learning_rate") == "0.0001"
    assert value(train, "test_files") is None and value(train, "export_dir") is None
    assert value(test, "test_files") == "/w/data/test-0.csv"
    assert value(export, "export_dir") == "/w/output/model"
    for inv in (train, test, export):
        assert value(inv, "lm_binary_path") == "" and value(inv, "lm_trie_path") == ""
        for name in ("load_train", "load_evaluate", "export_file_name", "scorer_path", "es_epochs"):
            assert value(inv, name) is None, (inv.purpose, name)
        assert not has(inv, "--force_initialize_learning_rate")
    for inv in (test, export):
        assert inv.argv[:3] == ["python3", "-u", "/DeepSpeech/DeepSpeech.py"]
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load") == "best"


def test_legacy_without_dev_evaluates_the_last_checkpoint():
    _, test, export = plan(**{"deepspeech.version": "0.6.0", "data.dev": None})
    assert value(test, "load") == "last" and value(export, "load") == "last"


def test_legacy_early_stop_uses_es_steps():
    train, *_ = plan(**{"deepspeech.version": "0.6.1", "training.earlyStop": {"epochs": 6}})
    assert has(train, "--early_stop") and value(train, "es_steps") == "6"
    assert not has(train, "--noearly_stop")


def test_legacy_resume_keeps_learning_rate():
    train, test, export = plan(ResumeState(2, True), **{"deepspeech.version": "0.6.0", "training.epochs": 5})
    assert value(train, "load") == "last" and value(train, "epochs") == "3"
    assert value(train, "learning_rate") == "0.001"
    assert value(train, "drop_source_layers") is None
    assert value(test, "load") == "best" and value(export, "load") == "best"


def test_legacy_finetune_trains_in_seeded_own_dir():
    changes = {"deepspeech.version": "0.6.0", **FINETUNE}
    spec = make_spec(**changes)
    assert seeds_own_from_source(spec, ResumeState())
    assert not seeds_own_from_source(spec, ResumeState(1, True))
    assert not seeds_own_from_source(make_spec(**{"deepspeech.version": "0.9.3", **FINETUNE}), ResumeState())
    train, test, export = plan(**changes)
    assert value(train, "checkpoint_dir") == OWN and value(train, "load") == "best"
    for inv in (test, export):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load") == "best"


def test_legacy_tflite_and_evaluate_only_invocations():
    test, export, tflite = plan(
        ResumeState(3, True), **{"deepspeech.version": "0.6.0", "output.tflite": True}
    )
    for inv in (test, export, tflite):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load") == "best"
        assert value(inv, "lm_binary_path") == ""
    assert value(export, "export_dir") == "/w/output/model" and not has(export, "--export_tflite")
    assert has(tflite, "--export_tflite") and value(tflite, "export_dir") == "/w/output/tflite"


# ------------------------------------------------------------------------------------------- Coqui STT


def test_coqui_fresh_run_uses_argparse_booleans_and_always_ends_with_tflite():
    train, test, export, tflite = plan(**COQUI)
    for inv in (train, test, export, tflite):
        assert inv.argv[:4] == ["python3", "-u", "-m", "coqui_stt_training.train"]
        assert value(inv, "show_progressbar") == "false" and value(inv, "skip_batch_test") == "true"
        assert not any(token.startswith("--no") for token in inv.argv), inv.argv
    assert value(train, "train_files") == "/w/data/train-0.csv"
    assert value(train, "dev_files") == "/w/data/dev-0.csv"
    assert value(train, "checkpoint_dir") == OWN and value(train, "load_train") == "init"
    assert value(train, "train_cudnn") == "true" and not has(train, "--load_cudnn")
    assert value(train, "learning_rate") == "0.001" and value(train, "epochs") == "3"
    assert value(train, "scorer_path") == ""
    assert not has(train, "--force_initialize_learning_rate")
    assert value(test, "test_files") == "/w/data/test-0.csv"
    assert value(test, "test_output_file") == "/w/output/test_results.json"
    for inv in (test, export, tflite):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load_evaluate") == "best"
    # Coqui STT exports TFLite unless told otherwise, and then writes no .pb.
    assert value(export, "export_dir") == "/w/output/model" and value(export, "export_tflite") == "false"
    assert value(tflite, "export_dir") == "/w/output/tflite" and value(tflite, "export_tflite") == "true"
    assert value(export, "export_file_name") == "output_graph"


def test_coqui_file_lists_are_separate_tokens():
    train, test, *_ = plan(
        **COQUI,
        **{
            "data.train": ["s3://bkt/a.csv", "s3://bkt/b.csv"],
            "data.dev": ["s3://bkt/d.csv", "s3://bkt/e.csv"],
        },
    )
    assert values(train, "train_files") == ["/w/data/train-0.csv", "/w/data/train-1.csv"]
    assert values(train, "dev_files") == ["/w/data/dev-0.csv", "/w/data/dev-1.csv"]
    assert values(test, "test_files") == ["/w/data/test-0.csv"]
    assert not any("," in token for token in train.argv if token.startswith("/w/data/"))


def test_coqui_resume():
    train, test, export, tflite = plan(ResumeState(2, True), **COQUI, **{"training.epochs": 5})
    assert value(train, "epochs") == "3"
    assert value(train, "checkpoint_dir") == OWN and value(train, "load_train") == "last"
    assert value(train, "drop_source_layers") == "0"
    assert value(train, "learning_rate") is None
    assert not has(train, "--force_initialize_learning_rate")
    assert [value(inv, "load_evaluate") for inv in (test, export, tflite)] == ["best"] * 3


def test_coqui_all_epochs_done_still_exports_tflite():
    test, export, tflite = plan(ResumeState(3, True), **COQUI)
    assert [inv.purpose for inv in (test, export, tflite)] == ["test", "export", "export"]
    assert value(tflite, "export_tflite") == "true"
    _, tflite_only = plan(ResumeState(3, True), **COQUI, **{"data.test": None})
    assert value(tflite_only, "export_tflite") == "true"


def test_coqui_output_tflite_does_not_add_a_second_tflite_export():
    invs = plan(**COQUI, **{"output.tflite": True})
    assert [value(inv, "export_tflite") for inv in invs] == [None, None, "false", "true"]


def test_coqui_finetune_from_source_checkpoint():
    train, test, export, tflite = plan(
        **COQUI, **FINETUNE, **{"initFrom.dropSourceLayers": 1, "resources.gpus": 0}
    )
    assert value(train, "load_checkpoint_dir") == SRC
    assert value(train, "save_checkpoint_dir") == OWN
    assert value(train, "checkpoint_dir") is None
    assert value(train, "load_train") == "best"
    assert value(train, "drop_source_layers") == "1"
    assert value(train, "force_initialize_learning_rate") == "true"
    assert value(train, "load_cudnn") == "true" and not has(train, "--train_cudnn")
    assert value(train, "learning_rate") == "0.001"
    for inv in (test, export, tflite):
        assert value(inv, "checkpoint_dir") == OWN and value(inv, "load_checkpoint_dir") is None
        assert value(inv, "load_evaluate") == "best"


def test_coqui_plateau_finetune_is_split_like_deepspeech():
    first, rest, *_ = plan(**COQUI, **FINETUNE, **{"training.reduceLROnPlateau": {}, "training.epochs": 4})
    assert value(first, "epochs") == "1" and not has(first, "--reduce_lr_on_plateau")
    assert value(rest, "epochs") == "3" and value(rest, "reduce_lr_on_plateau") == "true"
    assert value(rest, "checkpoint_dir") == OWN and value(rest, "load_train") == "last"


def test_coqui_augmentations_are_one_list_flag_and_booleans_take_a_value():
    augs = ["volume[p=0.1,dbfs=-10:-40]", "pitch[p=0.1,pitch=1~0.2]"]
    train, *evaluate = plan(
        **COQUI,
        **{
            "training.augmentations": augs,
            "training.mixedPrecision": True,
            "training.earlyStop": {"epochs": 3, "minDelta": 0.1},
        },
    )
    # One `--augment a b`: a repeated list flag would keep only the last.
    assert train.argv.count("--augment") == 1
    assert values(train, "augment") == augs
    assert value(train, "automatic_mixed_precision") == "true"
    assert value(train, "early_stop") == "true" and value(train, "es_epochs") == "3"
    assert not any(has(inv, "--augment") for inv in evaluate)


def test_coqui_extra_args_close_every_invocation():
    extra = ["--max_to_keep=3", "--export_language=en-US"]
    invs = plan(**COQUI, **{"training.extraArgs": extra})
    assert len(invs) == 4
    for inv in invs:
        assert inv.argv[-2:] == extra


# ------------------------------------------------------------------------------------------- bad inputs


def test_resume_state_rejects_epochs_without_checkpoint():
    with pytest.raises(ValueError, match="no own checkpoint"):
        ResumeState(epochs_done=2, own_checkpoint=False)
    with pytest.raises(ValueError, match="epochs_done"):
        ResumeState(epochs_done=-1)


def test_run_paths_must_be_absolute_and_comma_free():
    good = RunPaths.in_pod(make_spec(), WORK)
    with pytest.raises(ValueError, match=r"RunPaths\.alphabet: .* not absolute"):
        RunPaths(**{**good.__dict__, "alphabet": Path("data/alphabet.txt")})
    with pytest.raises(ValueError, match="comma"):
        RunPaths(**{**good.__dict__, "train_files": (Path("/a,b.csv"),)})


def test_build_rejects_paths_that_do_not_fit_the_spec():
    spec = make_spec(**FINETUNE)
    with pytest.raises(ValueError, match="source_checkpoint"):
        build_invocations(spec, RunPaths.in_pod(make_spec(), WORK))
    with pytest.raises(ValueError, match="scorer"):
        build_invocations(make_spec(**{"data.scorer": "s3://bkt/s"}), RunPaths.in_pod(make_spec(), WORK))
    with pytest.raises(ValueError, match="train_files"):
        build_invocations(
            make_spec(**{"data.train": ["s3://bkt/1", "s3://bkt/2"]}), RunPaths.in_pod(make_spec(), WORK)
        )
    with pytest.raises(ValueError, match="source_load"):
        build_invocations(spec, RunPaths.in_pod(spec, WORK), source_load="auto")  # type: ignore[arg-type]


def test_build_validates_the_spec():
    with pytest.raises(InvalidInput, match=r"extraArgs\[0\]"):
        plan(**{"training.extraArgs": ["--bogus"]})


def test_to_json_shape():
    invs = plan()
    assert [inv.to_json() for inv in invs] == [{"purpose": i.purpose, "argv": i.argv} for i in invs]
    assert invs[0].to_json()["purpose"] == "train"
