from __future__ import annotations

import io

import pytest
import yaml
from deepspeech_trainer.prepare import outputs
from deepspeech_trainer.prepare.model import Clip, Drop, Item, Row, Split
from deepspeech_trainer.prepare.progress import Progress


def _row(name: str, split: Split, seconds: float, speaker: str | None = None) -> Row:
    clip = Clip(f"wav/{name}.wav", 44 + int(seconds * 32000), int(seconds * 16000), 16000)
    return Row(Item(f"{name}.flac", name, f"{name}.txt:1", speaker), name, clip, split)


def test_csv_rows_are_per_split_and_sorted():
    rows = [_row("b", Split.TRAIN, 1), _row("a", Split.TRAIN, 2), _row("c", Split.DEV, 1)]
    assert outputs.csv_rows(rows, Split.TRAIN) == [("wav/a.wav", 64044, "a"), ("wav/b.wav", 32044, "b")]
    assert outputs.csv_rows(rows, Split.TEST) == []


def test_summary_hours_and_drop_reasons():
    rows = [
        _row("a", Split.TRAIN, 1800, "s1"),
        _row("b", Split.TRAIN, 1800, "s2"),
        _row("c", Split.TEST, 360),
    ]
    drops = [
        Drop("x:1", "x.wav", "too_short", ""),
        Drop("y:1", "", "missing_audio", ""),
        Drop("z:1", "", "too_short", ""),
    ]
    s = outputs.summarise(
        rows, drops, layout="pairs", sample_rate=16000, alphabet_size=28, alphabet_source="derived"
    )
    assert s["splits"]["train"] == {"rows": 2, "hours": 1.0, "seconds": 3600.0, "speakers": 2}
    assert s["splits"]["test"]["hours"] == pytest.approx(0.1)
    assert s["splits"]["dev"]["rows"] == 0
    assert s["dropped"] == {"missing_audio": 1, "too_short": 2} and s["droppedRows"] == 3
    text = outputs.summary_text(s)
    assert "train       2 rows     1.000 h, 2 speakers" in text and "too_short            2" in text


def test_snippet_is_a_deepspeechtraining_with_api_field_names():
    text = outputs.snippet(
        "s3://corpus/cv-en/",
        name="cv-en",
        output_uri="s3://corpus/models/cv-en/",
        endpoint="http://127.0.0.1:8333",
        region="us-east-1",
        splits_present=[Split.TRAIN, Split.DEV],
    )
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "training.deepspeech.dev/v1alpha1" and doc["kind"] == "DeepSpeechTraining"
    assert doc["spec"]["data"] == {
        "train": ["s3://corpus/cv-en/train.csv"],
        "dev": ["s3://corpus/cv-en/dev.csv"],
        "alphabet": "s3://corpus/cv-en/alphabet.txt",
    }
    assert doc["spec"]["output"] == {"uri": "s3://corpus/models/cv-en/"}
    assert doc["spec"]["storage"] == {
        "endpoint": "http://127.0.0.1:8333",
        "secretRef": {"name": "s3-credentials"},
    }


def test_resource_name():
    assert outputs.resource_name("s3://b/Corpora/CV_en 2024/") == "cv-en-2024"
    assert outputs.resource_name("s3://b/") == "b"
    assert outputs.resource_name("///") == "dataset"


def test_plain_progress_lines_are_sparse():
    clock = iter(float(i * 10) for i in range(1000))
    stream = io.StringIO()
    p = Progress("convert", 100, stream=stream, bar=False, clock=lambda: next(clock))
    for i in range(100):
        p.advance(skipped=i < 10)
    lines = stream.getvalue().splitlines()
    assert 15 <= len(lines) <= 21
    assert lines[-1].startswith("convert: 100/100 (100%, 10 already done")
