from __future__ import annotations

import random
from collections import Counter

import pytest
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.prepare.model import Split
from deepspeech_trainer.prepare.split import assign, group_key, parse_ratios


def test_parse_ratios():
    assert parse_ratios("0.8,0.1,0.1") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_ratios("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_ratios("1,0,0") == (1.0, 0.0, 0.0)
    for bad in ("0.8,0.2", "a,b,c", "0,0.5,0.5", "0.9,-0.1,0.2", "nan,1,1"):
        with pytest.raises(InvalidInput, match="--split"):
            parse_ratios(bad)


def test_same_seed_same_split_whatever_the_order():
    groups = {f"clip:{i:04d}.wav": 1 for i in range(500)}
    first = assign(groups, (0.8, 0.1, 0.1), seed=7)
    shuffled = list(groups.items())
    random.Random(1).shuffle(shuffled)
    assert assign(dict(shuffled), (0.8, 0.1, 0.1), seed=7) == first
    assert assign(groups, (0.8, 0.1, 0.1), seed=8) != first


def test_ratios_are_met_on_rows():
    groups = {f"clip:{i}": 1 for i in range(1000)}
    counts = Counter(assign(groups, (0.8, 0.1, 0.1), seed=0).values())
    assert counts[Split.TRAIN] == pytest.approx(800, abs=2)
    assert counts[Split.DEV] == pytest.approx(100, abs=2)
    assert counts[Split.TEST] == pytest.approx(100, abs=2)


def test_speakers_weighted_by_rows_and_never_split():
    speakers = {f"speaker:s{i}": 1 + (i * 7) % 13 for i in range(60)}
    result = assign(speakers, (0.8, 0.1, 0.1), seed=3)
    rows = Counter()
    for spk, split in result.items():
        rows[split] += speakers[spk]
    total = sum(speakers.values())
    assert rows[Split.TRAIN] / total == pytest.approx(0.8, abs=0.08)
    assert set(result) == set(speakers)  # one split per speaker by construction of the mapping


def test_small_data_still_fills_dev_and_test():
    for seed in range(20):
        result = assign({"a": 1, "b": 1, "c": 1}, (0.8, 0.1, 0.1), seed)
        assert sorted(result.values()) == sorted([Split.TRAIN, Split.DEV, Split.TEST])


def test_zero_ratio_split_stays_empty():
    result = assign({f"c{i}": 1 for i in range(30)}, (0.9, 0.1, 0.0), seed=1)
    assert Split.TEST not in result.values() and Split.DEV in result.values()


def test_group_key():
    assert group_key("a.wav", "s1") == "speaker:s1"
    assert group_key("a.wav", None) == "clip:a.wav"
