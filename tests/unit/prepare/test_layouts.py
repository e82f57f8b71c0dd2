from __future__ import annotations

import pytest
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.prepare import layouts
from deepspeech_trainer.prepare.layouts import ManifestColumns
from deepspeech_trainer.prepare.model import Layout
from deepspeech_trainer.prepare.outputs import wav_names


def test_detect_each_layout():
    assert layouts.detect_layout(["19/198/19-198.trans.txt", "19/198/19-198-0001.flac"]) is Layout.LIBRISPEECH
    assert layouts.detect_layout(["validated.tsv", "clips/a.mp3"]) is Layout.MANIFEST
    assert layouts.detect_layout(["x/a.wav", "x/a.txt"]) is Layout.PAIRS


def test_detect_nothing_names_what_was_looked_for():
    with pytest.raises(InvalidInput, match=r"cannot detect the layout.*2 files, 1 audio.*--layout"):
        layouts.detect_layout(["a.wav", "readme.md"])


def test_choose_manifest_prefers_validated_and_asks_when_ambiguous():
    assert layouts.choose_manifest(["validated.tsv", "train.tsv", "dev.tsv"]) == "validated.tsv"
    assert layouts.choose_manifest(["only.csv", "sub/x.csv"]) == "only.csv"
    with pytest.raises(InvalidInput, match=r"a\.csv, b\.csv"):
        layouts.choose_manifest(["a.csv", "b.csv"])
    with pytest.raises(InvalidInput, match="no such file"):
        layouts.choose_manifest(["a.csv"], "missing.csv")


def test_match_pairs_reports_orphans_on_both_sides():
    pairs, drops = layouts.match_pairs(
        ["a.wav", "a.txt", "b.flac", "c.txt", "d.wav", "d.mp3", "d.txt", "notes.md"]
    )
    assert pairs == [("a.wav", "a.txt")]
    reasons = sorted((d.reason, d.audio or d.origin) for d in drops)
    assert reasons == [
        ("ambiguous_audio", "d.mp3"),
        ("ambiguous_audio", "d.wav"),
        ("missing_audio", "c.txt"),
        ("missing_transcript", "b.flac"),
    ]


CV_TSV = (
    "client_id\tpath\tsentence\tup_votes\n"
    'spk1\tone.mp3\tHello "there"\t2\n'
    "spk2\tgone.mp3\tLost clip\t1\n"
    "\n"
    "spk1\ttwo.mp3\tSecond one\t3\n"
    "short\n"
)


def test_common_voice_tsv_resolves_clips_and_speakers():
    names = {"validated.tsv", "clips/one.mp3", "clips/two.mp3"}
    items, drops = layouts.parse_manifest(CV_TSV, "validated.tsv", names)
    assert [(i.audio, i.transcript, i.speaker, i.origin) for i in items] == [
        ("clips/one.mp3", 'Hello "there"', "spk1", "validated.tsv:2"),
        ("clips/two.mp3", "Second one", "spk1", "validated.tsv:5"),
    ]
    assert [(d.origin, d.reason) for d in drops] == [
        ("validated.tsv:3", "missing_audio"),
        ("validated.tsv:6", "bad_manifest_row"),
    ]


def test_manifest_columns_configurable_and_speaker_can_be_disabled():
    text = 'file,words,who\nsub/a.wav,"hi, you",x\n'
    names = {"m/sub/a.wav"}
    items, _ = layouts.parse_manifest(text, "m/list.csv", names, ManifestColumns("file", "words", "who"))
    assert items[0].audio == "m/sub/a.wav" and items[0].transcript == "hi, you" and items[0].speaker == "x"
    items, _ = layouts.parse_manifest(text, "m/list.csv", names, ManifestColumns("file", "words", ""))
    assert items[0].speaker is None


def test_manifest_missing_column_names_file_and_header():
    with pytest.raises(InvalidInput, match=r"list.csv:1: no sentence column 'text' in header a, b"):
        layouts.parse_manifest("a,b\n", "list.csv", set(), ManifestColumns(text="text"))
    with pytest.raises(InvalidInput, match=r"list.csv:1: header a, b has no path column"):
        layouts.parse_manifest("a,b\n", "list.csv", set())


def test_manifest_path_may_not_escape():
    items, drops = layouts.parse_manifest("path,sentence\n/etc/passwd,x\n", "m.csv", {"/etc/passwd"})
    assert not items and drops[0].reason == "missing_audio"


def test_librispeech_lines():
    text = "19-198-0000 NORTHANGER ABBEY\n\n19-198-0001 THIS LITTLE WORK\n19-198-0002 GONE\n"
    names = {"19/198/19-198-0000.flac", "19/198/19-198-0001.wav"}
    items, drops = layouts.parse_librispeech(text, "19/198/19-198.trans.txt", names)
    assert [(i.audio, i.transcript, i.speaker, i.origin) for i in items] == [
        ("19/198/19-198-0000.flac", "NORTHANGER ABBEY", "19", "19/198/19-198.trans.txt:1"),
        ("19/198/19-198-0001.wav", "THIS LITTLE WORK", "19", "19/198/19-198.trans.txt:3"),
    ]
    assert [(d.origin, d.reason) for d in drops] == [("19/198/19-198.trans.txt:4", "missing_audio")]


def test_dedupe_keeps_first_and_reports_second():
    items, _ = layouts.parse_manifest("path,sentence\na.wav,x\na.wav,y\n", "m.csv", {"a.wav"})
    kept, drops = layouts.dedupe(items)
    assert [i.transcript for i in kept] == ["x"]
    assert drops[0].reason == "duplicate_audio" and "m.csv:2" in drops[0].detail


def test_wav_names_are_unique_and_deterministic():
    names = wav_names(["b/a.flac", "b/a.wav", "c.mp3"])
    assert names == {"b/a.flac": "wav/b/a.flac.wav", "b/a.wav": "wav/b/a.wav.wav", "c.mp3": "wav/c.wav"}
    assert wav_names(["c.mp3", "b/a.wav", "b/a.flac"]) == names


@pytest.mark.parametrize("name", ["validated.tsv", "metadata.csv"])
def test_manifest_line_over_the_csv_field_limit_names_file_and_line(name):
    sep = "\t" if name.endswith(".tsv") else ","
    text = f"path{sep}sentence\none.wav{sep}fine\ntwo.wav{sep}" + "x" * 200_000 + "\n"
    with pytest.raises(InvalidInput, match=rf"^{name}:3: .*field larger than field limit"):
        layouts.parse_manifest(text, name, {"one.wav", "two.wav"})
