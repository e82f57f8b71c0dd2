from __future__ import annotations

import pytest
from deepspeech_trainer import flags
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.flags import FlagType

from tests.standin import standin_flags

STANDIN_TYPES = {
    "bool": FlagType.BOOL,
    "int": FlagType.INT,
    "float": FlagType.FLOAT,
    "str": FlagType.STRING,
    "multi": FlagType.MULTISTRING,
}


@pytest.mark.parametrize("version", flags.VERSIONS)
def test_table_matches_the_independent_standin_lists(version):
    ours = {name: f.type for name, f in flags.flags_for(version).items()}
    theirs = {name: STANDIN_TYPES[kind] for name, kind in standin_flags.flag_types(version).items()}
    assert sorted(set(ours) - set(theirs)) == []
    assert sorted(set(theirs) - set(ours)) == []
    assert ours == theirs


def test_093_has_the_91_flags_of_the_reference():
    assert len(flags.flags_for("0.9.3")) == 91


@pytest.mark.parametrize(
    ("name", "present_in"),
    [
        ("load", {"0.6.0", "0.6.1"}),
        ("load_train", {"0.7.4", "0.8.2", "0.9.3"}),
        ("use_cudnn_rnn", {"0.6.0", "0.6.1"}),
        ("train_cudnn", {"0.7.4", "0.8.2", "0.9.3"}),
        ("lm_binary_path", {"0.6.0", "0.6.1"}),
        ("scorer_path", {"0.7.4", "0.8.2", "0.9.3"}),
        ("utf8", {"0.6.0", "0.6.1", "0.7.4", "0.8.2"}),
        ("bytes_output_mode", {"0.9.3"}),
        ("es_steps", {"0.6.0", "0.6.1"}),
        ("es_epochs", {"0.7.4", "0.8.2", "0.9.3"}),
        ("reverse_train", {"0.8.2", "0.9.3"}),
        ("layer_norm", {"0.9.3"}),
        ("augment", {"0.7.4", "0.8.2", "0.9.3"}),
        ("augmentation_speed_up_std", {"0.6.0", "0.6.1"}),
        ("export_language", set(flags.VERSIONS)),
        ("drop_source_layers", {"0.7.4", "0.8.2", "0.9.3"}),
    ],
)
def test_renamed_and_replaced_flags(name, present_in):
    assert {v for v in flags.VERSIONS if name in flags.flags_for(v)} == present_in


def test_aliases_resolve_per_version():
    assert flags.lookup("0.9.3", "scorer").name == "scorer_path"
    assert flags.lookup("0.6.0", "lm").name == "lm_binary_path"
    assert flags.lookup("0.6.0", "trie").name == "lm_trie_path"
    assert flags.lookup("0.6.0", "scorer") is None
    assert flags.lookup("0.9.3", "lm") is None


def test_unknown_version_names_the_field():
    with pytest.raises(InvalidInput, match=r"spec\.deepspeech\.version: unsupported version '1\.0'"):
        flags.flags_for("1.0")


def test_is_legacy_and_at_least():
    assert flags.is_legacy("0.6.1") and not flags.is_legacy("0.7.4")
    assert flags.at_least("0.8.2", "0.8.2") and not flags.at_least("0.7.4", "0.8.2")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--early_stop"], [("early_stop", True)]),
        (["--noearly_stop"], [("early_stop", False)]),
        (["--early_stop=false"], [("early_stop", False)]),
        (["--early_stop=T"], [("early_stop", True)]),
        (["--es_epochs", "3"], [("es_epochs", "3")]),
        (["--es_epochs=3", "--scorer=/x"], [("es_epochs", "3"), ("scorer_path", "/x")]),
        (["--export_language="], [("export_language", "")]),
    ],
)
def test_parse_args_accepts(args, expected):
    parsed = flags.parse_args("0.9.3", args, "f")
    assert [(p.flag.name, p.value) for p in parsed] == expected


@pytest.mark.parametrize(
    ("version", "args", "message"),
    [
        ("0.6.0", ["--es_epochs=3", "--foo"], r"f\[0\]: unknown flag '--es_epochs' for DeepSpeech 0\.6\.0"),
        ("0.9.3", ["--max_to_keep", "3", "--foo"], r"f\[2\]: unknown flag '--foo' for DeepSpeech 0\.9\.3"),
        ("0.9.3", ["--early_stop", "false"], r"f\[1\]: .*--early_stop=false"),
        ("0.9.3", ["es_epochs=3"], r"f\[0\]: expected a flag starting with '--'"),
        ("0.9.3", ["-early_stop"], r"f\[0\]: expected a flag"),
        ("0.9.3", ["--es_epochs"], r"f\[0\]: --es_epochs needs a value"),
        ("0.9.3", ["--es_epochs=x"], r"f\[0\]: --es_epochs: 'x' is not a valid int"),
        ("0.9.3", ["--es_min_delta=abc"], r"not a valid float"),
        ("0.9.3", ["--early_stop=maybe"], r"not a boolean"),
        ("0.9.3", ["--noearly_stop=true"], r"takes no value"),
        ("0.9.3", ["--noes_epochs"], r"unknown flag '--noes_epochs'"),
        ("0.9.3", [3], r"f\[0\]: must be a string"),
    ],
)
def test_parse_args_rejects(version, args, message):
    with pytest.raises(InvalidInput, match=message):
        flags.parse_args(version, args, "f")
