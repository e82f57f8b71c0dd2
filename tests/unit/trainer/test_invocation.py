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
    remaining_epochs,
    seeds_own_from_source,
)

from tests.standin import standin_flags

from .conftest import make_spec

WORK = Path("/w")
OWN = "/w/checkpoints"
SRC = "/w/source-checkpoint"
FINETUNE = {"initFrom": {"checkpoint": "s3://models/release/deepspeech-0.9.3-checkpoint.tar.gz"}}


def plan(resume: ResumeState | None = None, runtime: Runtime | None = None, **changes) -> list[Invocation]:
    spec = make_spec(**changes)
    invs = build_invocations(spec, RunPaths.in_pod(spec, WORK), resume, runtime)
    for inv in invs:
        check_invariants(spec["deepspeech"]["version"], inv)
    return invs


def check_invariants(version: str, inv: Invocation) -> None:
    """What must hold for every command line, whatever the branch."""
    argv = inv.argv
    start = 3 if flags.is_legacy(version) else 4
    args = argv[start:]
    # A boolean never takes a separate token; every flag is known to this version (strict parser).
    flags.parse_args(version, args, "argv")
    # ... and to the stand-in's independent absl imitation.
    standin_flags.parse(version, args, check_files=False)
    assert args[:3] == ["--log_level", "1", "--noshow_progressbar"]
    assert "--log_level=1" not in argv
    for i, token in enumerate(args):
        if (
            token.startswith("--")
            and token.endswith(("_dir", "_path", "_file", "_files"))
            and "=" not in token
        ):
            for value in args[i + 1].split(","):
                assert Path(value).is_absolute(), (token, value)
    if version == "0.9.3":
        assert not any(a.startswith(("--remove_export", "--cache_for_epochs")) for a in args)
    assert any(a == "--summary_dir" for a in args)


def value(inv: Invocation, name: str) -> str | None:
    argv = inv.argv
    for i, token in enumerate(argv):
        if token == f"--{name}":
            return argv[i + 1]
        if token == f"--{name}=":
            return ""
    return None


def has(inv: Invocation, token: str) -> bool:
    return token in inv.argv


# ------------------------------------------------------------------------------------------- 0.7+ dialect


def test_modern_fresh_run_is_one_invocation_with_test_and_export():
    (train,) = plan()
    assert train.purpose == "train"
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
    assert value(train, "test_files") == "/w/data/test-0.csv"
    assert value(train, "test_output_file") == "/w/output/test_results.json"
    assert value(train, "load_evaluate") == "best"
    assert value(train, "export_dir") == "/w/output/model"
    assert value(train, "export_file_name") == "output_graph"
    assert not has(train, "--early_stop") and not has(train, "--reduce_lr_on_plateau")


def test_several_csvs_are_comma_joined():
    (train,) = plan(**{"data.train": ["s3://b/a.csv", "s3://b/b.csv"]})
    assert value(train, "train_files") == "/w/data/train-0.csv,/w/data/train-1.csv"


def test_without_dev_there_is_no_best_dev_to_evaluate():
    (train,) = plan(**{"data.dev": None})
    assert value(train, "dev_files") is None and value(train, "dev_batch_size") is None
    assert value(train, "load_evaluate") == "last"


def test_without_test_files_the_model_is_still_exported():
    (train,) = plan(**{"data.test": None})
    assert value(train, "test_files") is None and value(train, "test_output_file") is None
    assert value(train, "export_dir") == "/w/output/model"


def test_scorer_only_where_testing_happens():
    (train,) = plan(**{"data.scorer": "s3://b/kenlm.scorer"})
    assert value(train, "scorer_path") == "/w/data/kenlm.scorer"
    (train,) = plan(**{"data.scorer": "s3://b/kenlm.scorer", "data.test": None})
    assert value(train, "scorer_path") == ""


def test_batch_sizes_dropout_and_geometry():
    (train,) = plan(
        **{
            "training.batchSize": {"train": 32, "dev": 16, "test": 8},
            "training.dropoutRate": 0.25,
            "training.nHidden": 1024,
            "training.learningRate": 0.00001,
        }
    )
    assert (value(train, "train_batch_size"), value(train, "dev_batch_size")) == ("32", "16")
    assert value(train, "test_batch_size") == "8"
    assert value(train, "dropout_rate") == "0.25"
    assert value(train, "n_hidden") == "1024"
    assert value(train, "learning_rate") == "1e-05"


def test_resume_passes_remaining_epochs_last_and_no_learning_rate():
    (train,) = plan(ResumeState(epochs_done=4, own_checkpoint=True), **{"training.epochs": 10})
    assert value(train, "epochs") == "6"
    assert value(train, "checkpoint_dir") == OWN
    assert value(train, "load_train") == "last"
    assert value(train, "drop_source_layers") == "0"
    assert value(train, "learning_rate") is None
    assert not has(train, "--force_initialize_learning_rate")
    assert value(train, "export_dir") == "/w/output/model"


def test_resume_with_checkpoint_but_no_finished_epoch_trains_all_epochs():
    (train,) = plan(ResumeState(epochs_done=0, own_checkpoint=True), **{"training.epochs": 10})
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


def test_source_with_only_a_last_checkpoint():
    spec = make_spec(**FINETUNE)
    (train, *_) = build_invocations(spec, RunPaths.in_pod(spec, WORK), source_load="last")
    assert value(train, "load_train") == "last"


def test_transfer_learning_drops_layers_once():
    changes = {**FINETUNE, "initFrom.dropSourceLayers": 2}
    (first, *_) = plan(**changes)
    assert value(first, "drop_source_layers") == "2"
    (again,) = plan(ResumeState(epochs_done=1, own_checkpoint=True), **changes)
    assert value(again, "drop_source_layers") == "0"
    assert value(again, "checkpoint_dir") == OWN and value(again, "load_checkpoint_dir") is None
    assert not has(again, "--force_initialize_learning_rate")


def test_cpu_finetune_loads_cudnn_checkpoint_into_cpu_graph():
    train, *_ = plan(**FINETUNE, **{"resources.gpus": 0})
    assert has(train, "--load_cudnn") and not has(train, "--train_cudnn")
    (fresh,) = plan(**{"resources.gpus": 0})
    assert not has(fresh, "--load_cudnn") and not has(fresh, "--train_cudnn")
    (resumed,) = plan(ResumeState(1, True), **FINETUNE, **{"resources.gpus": 0})
    assert not has(resumed, "--load_cudnn")


def test_plateau_on_fresh_run():
    (train,) = plan(**{"training.reduceLROnPlateau": {"epochs": 4, "reduction": 0.5}})
    assert has(train, "--reduce_lr_on_plateau")
    assert (value(train, "plateau_epochs"), value(train, "plateau_reduction")) == ("4", "0.5")


def test_plateau_never_while_loading_from_source_so_first_finetune_is_split():
    first, rest = plan(**FINETUNE, **{"training.reduceLROnPlateau": {}, "training.epochs": 5})
    assert value(first, "epochs") == "1" and not has(first, "--reduce_lr_on_plateau")
    assert value(first, "load_checkpoint_dir") == SRC and has(first, "--force_initialize_learning_rate")
    assert value(rest, "epochs") == "4" and has(rest, "--reduce_lr_on_plateau")
    assert value(rest, "checkpoint_dir") == OWN and value(rest, "load_train") == "last"
    assert value(rest, "drop_source_layers") == "0" and value(rest, "learning_rate") is None
    assert value(rest, "test_files") is not None and value(rest, "export_dir") is not None


def test_plateau_with_one_epoch_finetune_is_dropped():
    train, *evaluate = plan(**FINETUNE, **{"training.reduceLROnPlateau": {}, "training.epochs": 1})
    assert [i.purpose for i in evaluate] == ["test", "export"]
    assert not has(train, "--reduce_lr_on_plateau")


def test_early_stop_modern():
    (train,) = plan(**{"training.earlyStop": {"epochs": 3, "minDelta": 0.1}})
    assert has(train, "--early_stop")
    assert (value(train, "es_epochs"), value(train, "es_min_delta")) == ("3", "0.1")


def test_augmentations_repeat_the_flag_and_amp():
    augs = ["volume[p=0.1,dbfs=-10:-40]", "pitch[p=0.1,pitch=1~0.2]"]
    (train,) = plan(**{"training.augmentations": augs, "training.mixedPrecision": True})
    pairs = [train.argv[i + 1] for i, t in enumerate(train.argv) if t == "--augment"]
    assert pairs == augs
    assert has(train, "--automatic_mixed_precision")


def test_extra_args_close_every_invocation():
    extra = ["--max_to_keep", "3", "--export_language=en-US"]
    invs = plan(**FINETUNE, **{"training.extraArgs": extra, "output.tflite": True})
    assert len(invs) == 4
    for inv in invs:
        assert inv.argv[-3:] == extra


def test_tflite_is_its_own_export_into_its_own_dir():
    *_, pb_carrier, tflite = plan(**{"output.tflite": True})
    assert value(pb_carrier, "export_dir") == "/w/output/model" and not has(pb_carrier, "--export_tflite")
    assert tflite.purpose == "export" and has(tflite, "--export_tflite")
    assert value(tflite, "export_dir") == "/w/output/tflite"
    assert value(tflite, "checkpoint_dir") == OWN and value(tflite, "train_files") is None


def test_runtime_from_env():
    runtime = Runtime.from_env({"DST_TF_PYTHON": "/opt/tf1/bin/python", "DST_DEEPSPEECH_DIR": "/src/ds"})
    (train,) = plan(runtime=runtime)
    assert train.argv[0] == "/opt/tf1/bin/python"
    legacy = plan(runtime=runtime, **{"deepspeech.version": "0.6.0"})[0]
    assert legacy.argv[:3] == ["/opt/tf1/bin/python", "-u", "/src/ds/DeepSpeech.py"]
    assert Runtime.from_env({}) == Runtime("python3", Path("/DeepSpeech"))


# ------------------------------------------------------------------------------------------- 0.6.x dialect


def test_legacy_fresh_run():
    (train,) = plan(**{"deepspeech.version": "0.6.0", "training.learningRate": 0.0001})
    assert train.argv[:3] == ["python3", "-u", "/DeepSpeech/DeepSpeech.py"]
    assert value(train, "checkpoint_dir") == OWN
    assert value(train, "load") == "init"
    assert has(train, "--use_cudnn_rnn") and has(train, "--noearly_stop")
    assert value(train, "lm_binary_path") == "" and value(train, "lm_trie_path") == ""
    assert value(train, "learning_rate") == "0.0001"
    assert value(train, "test_files") == "/w/data/test-0.csv"
    assert value(train, "export_dir") == "/w/output/model"
    for name in ("load_train", "load_evaluate", "export_file_name", "scorer_path", "es_epochs"):
        assert value(train, name) is None, name
    assert not has(train, "--force_initialize_learning_rate")


def test_legacy_early_stop_uses_es_steps():
    (train,) = plan(**{"deepspeech.version": "0.6.1", "training.earlyStop": {"epochs": 6}})
    assert has(train, "--early_stop") and value(train, "es_steps") == "6"
    assert not has(train, "--noearly_stop")


def test_legacy_resume_keeps_learning_rate():
    (train,) = plan(ResumeState(2, True), **{"deepspeech.version": "0.6.0", "training.epochs": 5})
    assert value(train, "load") == "last" and value(train, "epochs") == "3"
    assert value(train, "learning_rate") == "0.001"
    assert value(train, "drop_source_layers") is None


def test_legacy_finetune_trains_in_seeded_own_dir():
    changes = {"deepspeech.version": "0.6.0", **FINETUNE}
    spec = make_spec(**changes)
    assert seeds_own_from_source(spec, ResumeState())
    assert not seeds_own_from_source(spec, ResumeState(1, True))
    assert not seeds_own_from_source(make_spec(**{"deepspeech.version": "0.9.3", **FINETUNE}), ResumeState())
    (train,) = plan(**changes)
    assert value(train, "checkpoint_dir") == OWN and value(train, "load") == "best"


def test_legacy_tflite_and_evaluate_only_invocations():
    test, export, tflite = plan(
        ResumeState(3, True), **{"deepspeech.version": "0.6.0", "output.tflite": True}
    )
    assert value(test, "checkpoint_dir") == OWN and value(test, "load") is None
    assert value(test, "lm_binary_path") == ""
    assert value(export, "export_dir") == "/w/output/model" and not has(export, "--export_tflite")
    assert has(tflite, "--export_tflite") and value(tflite, "export_dir") == "/w/output/tflite"


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
        build_invocations(make_spec(**{"data.scorer": "s3://b/s"}), RunPaths.in_pod(make_spec(), WORK))
    with pytest.raises(ValueError, match="train_files"):
        build_invocations(
            make_spec(**{"data.train": ["s3://b/1", "s3://b/2"]}), RunPaths.in_pod(make_spec(), WORK)
        )
    with pytest.raises(ValueError, match="source_load"):
        build_invocations(spec, RunPaths.in_pod(spec, WORK), source_load="auto")  # type: ignore[arg-type]


def test_build_validates_the_spec():
    with pytest.raises(InvalidInput, match=r"extraArgs\[0\]"):
        plan(**{"training.extraArgs": ["--bogus"]})


def test_to_json_shape():
    (train,) = plan()
    assert train.to_json() == {"purpose": "train", "argv": train.argv}
