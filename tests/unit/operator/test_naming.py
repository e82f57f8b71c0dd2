from __future__ import annotations

import pytest
from deepspeech_operator import naming


def test_short_names_are_plain():
    assert naming.job_name("en", "g3", "train") == "en-g3-train"
    assert naming.job_name("en", "g3", "preflight", 2) == "en-g3-preflight-s2"
    assert naming.trainer_account_name("en") == "en-trainer"
    assert naming.label_value("en") == "en"


def test_long_names_are_cut_hashed_and_deterministic():
    long_a = "a" * 80
    long_b = "a" * 79 + "b"
    name_a = naming.job_name(long_a, "g12", "preflight", 3)
    assert len(name_a) <= 63 and name_a.endswith("-g12-preflight-s3")
    assert name_a == naming.job_name(long_a, "g12", "preflight", 3)
    assert name_a != naming.job_name(long_b, "g12", "preflight", 3)
    assert len(naming.label_value(long_a)) == 63


def test_shorten_strips_separators_and_rejects_huge_suffix():
    assert not naming.shorten("x-" * 40, "-y")[-11:].startswith("-" * 2)
    assert naming.shorten("-" * 70).count("-") < 70
    with pytest.raises(ValueError, match="no room"):
        naming.shorten("x", "-" * 60)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: naming.job_name("x", "g1", "eval"),
        lambda: naming.job_name("x", "g1", "train", -1),
        lambda: naming.run_id(0),
    ],
)
def test_bad_inputs_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_run_id_round_trip():
    assert naming.run_id(7) == "g7"
    assert naming.run_generation("g7") == 7
    assert naming.run_generation("r7") == 0
    assert naming.run_generation("") == 0


def test_spec_hash_ignores_suspend_and_key_order():
    a = {"data": {"train": ["s3://b/k"]}, "suspend": False, "output": {"uri": "s3://b/o"}}
    b = {"output": {"uri": "s3://b/o"}, "suspend": True, "data": {"train": ["s3://b/k"]}}
    assert naming.spec_hash(a) == naming.spec_hash(b)
    assert naming.spec_hash(a) != naming.spec_hash({**a, "dryRun": True})
    assert len(naming.spec_hash(a)) == 16
