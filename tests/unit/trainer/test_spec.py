from __future__ import annotations

import json

import pytest
from deepspeech_trainer import spec as specmod
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.spec import apply_defaults, default_spec, load_spec, validate_spec

from .conftest import BASE_SPEC, make_spec

FIXTURE_SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "default": 1},
        "obj": {
            "type": "object",
            "default": {},
            "properties": {
                "x": {"type": "string", "default": "dx"},
                "inner": {
                    "type": "object",
                    "default": {},
                    "properties": {"y": {"type": "integer", "default": 7}},
                },
            },
        },
        "opt": {"type": "object", "properties": {"z": {"type": "integer", "default": 3}}},
        "nullable": {"type": "string", "nullable": True, "default": "n"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"k": {"type": "string", "default": "v"}}},
        },
        "map": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"m": {"type": "integer", "default": 5}},
            },
        },
    },
}


def test_defaulter_applies_scalar_and_nested_object_defaults():
    out = apply_defaults(FIXTURE_SCHEMA, {})
    assert out["a"] == 1
    assert out["obj"] == {"x": "dx", "inner": {"y": 7}}
    assert out["nullable"] == "n"


def test_defaulter_object_defaults_only_when_parent_exists():
    assert "opt" not in apply_defaults(FIXTURE_SCHEMA, {})
    assert apply_defaults(FIXTURE_SCHEMA, {"opt": {}})["opt"] == {"z": 3}


def test_defaulter_keeps_given_values_and_does_not_mutate_input():
    given = {"a": 5, "obj": {"x": "mine"}}
    out = apply_defaults(FIXTURE_SCHEMA, given)
    assert out["a"] == 5 and out["obj"] == {"x": "mine", "inner": {"y": 7}}
    assert given == {"a": 5, "obj": {"x": "mine"}}


def test_defaulter_null_is_absent_unless_nullable():
    out = apply_defaults(FIXTURE_SCHEMA, {"a": None, "nullable": None, "opt": None})
    assert out["a"] == 1
    assert out["nullable"] is None
    assert "opt" not in out


def test_defaulter_arrays_and_maps():
    out = apply_defaults(FIXTURE_SCHEMA, {"items": [{}, {"k": "w"}], "map": {"p": {}, "q": {"m": 1}}})
    assert out["items"] == [{"k": "v"}, {"k": "w"}]
    assert out["map"] == {"p": {"m": 5}, "q": {"m": 1}}


def test_crd_defaults_and_derived_values():
    spec = default_spec({"data": {"train": ["s3://bkt/t.csv"]}, "output": {"uri": "s3://bkt/out/"}})
    t = spec["training"]
    assert spec["deepspeech"]["version"] == "0.9.3"
    assert (t["epochs"], t["learningRate"], t["nHidden"], t["dropoutRate"]) == (75, 0.001, 2048, 0.05)
    assert t["batchSize"] == {"train": 1, "dev": 1, "test": 1}
    assert spec["resources"]["gpus"] == 1 and t["cudnn"] is True
    assert spec["output"]["checkpoints"] == "s3://bkt/out/checkpoints/"
    assert spec["output"]["tflite"] is False
    assert "earlyStop" not in t and "reduceLROnPlateau" not in t and "initFrom" not in spec


def test_cudnn_derived_from_gpus_unless_given():
    assert make_spec(**{"resources.gpus": 0})["training"]["cudnn"] is False
    assert make_spec(**{"resources.gpus": 2, "training.cudnn": False})["training"]["cudnn"] is False


def test_explicit_checkpoints_uri_kept():
    assert make_spec(**{"output.checkpoints": "s3://ckp/"})["output"]["checkpoints"] == "s3://ckp/"


def test_enabled_blocks_get_deepspeech_defaults():
    t = make_spec(**{"training.earlyStop": {}, "training.reduceLROnPlateau": {"epochs": 2}})["training"]
    assert t["earlyStop"] == {"epochs": 25, "minDelta": 0.05}
    assert t["reduceLROnPlateau"] == {"epochs": 2, "reduction": 0.1}


def test_defaults_come_from_the_shipped_crd_schema():
    raw = {
        "data": {"train": ["s3://bkt/t.csv"]},
        "output": {"uri": "s3://bkt/out/"},
        "training": {"earlyStop": {}},
    }
    from_crd = apply_defaults(specmod.crd_schema(), raw)
    t = from_crd["training"]
    # The version's default depends on the engine, so the schema leaves it to default_spec.
    assert from_crd["deepspeech"] == {"engine": "deepspeech"}
    assert default_spec(raw)["deepspeech"] == {"engine": "deepspeech", "version": "0.9.3"}
    assert default_spec({**raw, "deepspeech": {"engine": "coqui-stt"}})["deepspeech"]["version"] == "1.4.0"
    assert (t["epochs"], t["learningRate"], t["nHidden"], t["dropoutRate"]) == (75, 0.001, 2048, 0.05)
    assert t["batchSize"] == {"train": 1, "dev": 1, "test": 1}
    assert t["earlyStop"] == {"epochs": 25, "minDelta": 0.05}
    assert from_crd["resources"]["gpus"] == 1


def test_the_shipped_schema_is_the_operators_crd_schema():
    from deepspeech_operator import schema as operator_schema

    assert specmod.crd_schema() == json.loads(json.dumps(operator_schema.spec_schema()))


def test_every_schema_violation_is_reported_at_once():
    with pytest.raises(InvalidInput) as err:
        validate_spec(make_spec(**{"training.epochs": 0, "resources.gpus": 17, "training.nHidden": "wide"}))
    assert str(err.value) == (
        "spec.resources.gpus: must be between 0 and 16, got 17; "
        "spec.training.epochs: must be between 1 and 10000, got 0; "
        "spec.training.nHidden: must be an integer, got 'wide'"
    )


def test_load_spec_bare_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("data: {train: [s3://bkt/t.csv]}\noutput: {uri: s3://bkt/o/}\n")
    assert load_spec(path)["training"]["epochs"] == 75


def test_load_spec_whole_object_json(tmp_path):
    path = tmp_path / "s.json"
    doc = {"apiVersion": "training.deepspeech.dev/v1alpha1", "kind": "DeepSpeechTraining", "spec": BASE_SPEC}
    path.write_text(json.dumps(doc))
    assert load_spec(path)["training"]["epochs"] == 3


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("{not json", ".json", "not valid JSON"),
        ("a: [", ".yaml", "not valid YAML"),
        ("- 1\n", ".yaml", "expected a mapping"),
        ("kind: Pod\nspec: {}\n", ".yaml", "kind is 'Pod'"),
        ("output: {uri: s3://bkt/o/}\n", ".yaml", r"spec\.data: required"),
    ],
)
def test_load_spec_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"s{suffix}"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        load_spec(path)


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read spec file"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"deepspeech.version": "0.5.1"},
            r"spec\.deepspeech\.version: must be one of 0\.6\.0, .*got '0\.5\.1'",
        ),
        ({"data.train": []}, r"spec\.data\.train: needs at least 1 item"),
        ({"data.train": "s3://x"}, r"spec\.data\.train: must be a list"),
        ({"data.dev": [""]}, r"spec\.data\.dev\[0\]: '' does not match"),
        (
            {"data.dev": ["s3://bucket/a//b.csv"]},
            r"spec\.data\.dev\[0\]: 's3://bucket/a//b\.csv' has an empty",
        ),
        ({"training.epochs": 0}, r"spec\.training\.epochs: must be between 1 and 10000, got 0"),
        ({"training.epochs": 2.5}, r"spec\.training\.epochs: must be an integer"),
        ({"training.learningRate": 0}, r"spec\.training\.learningRate: must be > 0"),
        ({"training.dropoutRate": 1.5}, r"spec\.training\.dropoutRate"),
        ({"training.batchSize": {"train": 0, "dev": 1, "test": 1}}, r"spec\.training\.batchSize\.train"),
        ({"training.cudnn": True, "resources.gpus": 0}, r"spec\.training\.cudnn: the cuDNN LSTM needs a GPU"),
        ({"resources.gpus": 17}, r"spec\.resources\.gpus: must be between 0 and 16"),
        ({"training.earlyStop": {}, "data.dev": None}, r"spec\.training\.earlyStop: needs spec\.data\.dev"),
        (
            {"training.reduceLROnPlateau": {"reduction": 1}},
            r"reduceLROnPlateau\.reduction: must be > 0 and < 1",
        ),
        (
            {"deepspeech.version": "0.6.0", "training.reduceLROnPlateau": {}},
            r"spec\.training\.reduceLROnPlateau: needs DeepSpeech 0\.7\.4",
        ),
        ({"deepspeech.version": "0.6.0", "data.scorer": "s3://bkt/s"}, r"spec\.data\.scorer: .*0\.7\.4"),
        (
            {"deepspeech.version": "0.6.1", "initFrom": {"checkpoint": "s3://bkt/c/", "dropSourceLayers": 1}},
            r"spec\.initFrom\.dropSourceLayers: needs DeepSpeech 0\.7\.4",
        ),
        (
            {"initFrom": {"checkpoint": "s3://bkt/c/", "dropSourceLayers": 6}},
            r"dropSourceLayers: must be between 0 and 5",
        ),
        ({"initFrom": {"dropSourceLayers": 1}}, r"spec\.initFrom\.checkpoint: required"),
        (
            {"deepspeech.version": "0.6.0", "training.augmentations": ["volume"]},
            r"spec\.training\.augmentations: needs DeepSpeech 0\.7\.4",
        ),
        ({"training.augmentations": ["louder[p=1]"]}, r"augmentations\[0\]: unknown augmentation 'louder'"),
        (
            {"deepspeech.version": "0.7.4", "training.augmentations": ["warp"]},
            r"augmentations\[0\]: .*'warp' needs.*0\.8\.2",
        ),
        (
            {"training.augmentations": ["volume[p=0.1"]},
            r"augmentations\[0\]: 'volume\[p=0\.1' does not match",
        ),
        ({"output.uri": None}, r"spec\.output\.uri: required"),
        ({"output.tflite": "yes"}, r"spec\.output\.tflite: must be true or false"),
        (
            {"training.extraArgs": ["--foo"]},
            r"spec\.training\.extraArgs\[0\]: unknown flag '--foo' for DeepSpeech 0\.9\.3",
        ),
        (
            {"deepspeech.version": "0.6.0", "training.extraArgs": ["--max_to_keep=2", "--es_epochs=3"]},
            r"spec\.training\.extraArgs\[1\]: unknown flag '--es_epochs' for DeepSpeech 0\.6\.0",
        ),
        (
            {"training.extraArgs": ["--epochs=3"]},
            r"extraArgs\[0\]: --epochs is set by the trainer; use training\.epochs",
        ),
        ({"training.extraArgs": ["--noshow_progressbar"]}, r"--show_progressbar is set by the trainer"),
        ({"training.extraArgs": ["--scorer=/x"]}, r"use data\.scorer"),
        (
            {"training.extraArgs": ["--remove_export"]},
            r"extraArgs\[0\]: --remove_export crashes DeepSpeech 0\.9\.3",
        ),
        ({"training.extraArgs": ["--cache_for_epochs=2"]}, r"--cache_for_epochs crashes"),
        ({"training.extraArgs": ["--max_to_keep", "3"]}, r"extraArgs\[1\]: '3' does not match"),
        ({"output.checkpoints": "s3://models/run/"}, r"spec\.output\.checkpoints: must differ"),
        ({"dryRun": True, "preflight": False}, r"spec\.dryRun: needs spec\.preflight"),
        (
            {"training.batchSize": {"train": 1, "dev": 2, "test": 1}, "data.dev": None},
            r"batchSize\.dev is above 1",
        ),
        ({"training.mixedPrecision": True, "resources.gpus": 0}, r"spec\.training\.mixedPrecision: needs"),
        (
            {"training.extraArgs": ["--early_stop=true"]},
            r"extraArgs\[0\]: --early_stop is set by the trainer",
        ),
        (
            {"training.augmentations": ["volume"], "training.extraArgs": ["--feature_cache=/tmp/c"]},
            r"--feature_cache with training\.augmentations",
        ),
    ],
)
def test_validation_names_the_field(changes, message):
    with pytest.raises(InvalidInput, match=message):
        validate_spec(make_spec(**changes))


@pytest.mark.parametrize(
    "extra",
    [
        ["--max_to_keep=3", "--export_language=en-US", "--layer_norm"],
        ["--checkpoint_secs=120", "--noreverse_train", "--audio_sample_rate=8000"],
    ],
)
def test_valid_extra_args(extra):
    validate_spec(make_spec(**{"training.extraArgs": extra}))


def test_cache_for_epochs_fine_before_09():
    validate_spec(
        make_spec(**{"deepspeech.version": "0.8.2", "training.extraArgs": ["--cache_for_epochs=2"]})
    )
