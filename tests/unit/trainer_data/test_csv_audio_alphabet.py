from __future__ import annotations

import struct
from pathlib import Path

import pytest
from deepspeech_trainer.alphabet import derive_alphabet, format_alphabet, parse_alphabet
from deepspeech_trainer.audio import (
    WavHeaderError,
    feature_frames,
    parse_wav_header,
    read_wav_header,
    required_frames,
    wav_format_problems,
    window_problems,
)
from deepspeech_trainer.csvdata import parse_csv, resolve_wav, write_csv
from deepspeech_trainer.exitcodes import InvalidInput

from tests.unit.trainer_data.wavgen import wav_bytes

# ---------------------------------------------------------------------------------------------- CSV


def test_csv_bom_crlf_quoted_commas_and_multiline_lines() -> None:
    text = (
        "\ufeffwav_filename,wav_filesize,transcript\r\n"
        'a.wav,10,"hello, world"\r\n'
        'b.wav,20,"two\r\nlines"\r\n'
        "c.wav,30,plain\r\n"
    )
    table = parse_csv(text, "s3://b/x.csv")
    assert table.problems == []
    assert [(r.line, r.wav_filename, r.transcript) for r in table.rows] == [
        (2, "a.wav", "hello, world"),
        (3, "b.wav", "two\r\nlines"),
        (5, "c.wav", "plain"),
    ]


def test_csv_missing_column_is_one_problem_on_line_1() -> None:
    table = parse_csv("wav_filename,size\na.wav,1\n", "f.csv")
    assert [(p.line, p.code) for p in table.problems] == [(1, "csv_header")]
    assert "transcript" in table.problems[0].message
    assert table.rows == []


def test_csv_unquoted_comma_and_bad_filesize_name_their_lines() -> None:
    text = "wav_filename,wav_filesize,transcript\na.wav,1,ok\nb.wav,2,hello, world\nc.wav,x,ok\n\n"
    table = parse_csv(text, "f.csv")
    assert [(p.line, p.code) for p in table.problems] == [(3, "csv_columns"), (4, "csv_filesize")]
    assert [r.wav_filename for r in table.rows] == ["a.wav", "c.wav"]


def test_csv_empty_file() -> None:
    assert [p.code for p in parse_csv("", "f.csv").problems] == ["csv_header"]


def test_extra_columns_are_ignored_and_filesize_optional() -> None:
    table = parse_csv("client,transcript,wav_filename\nx,hi,a.wav\n", "f.csv")
    assert table.problems == [] and table.rows[0].wav_filename == "a.wav" and table.rows[0].wav_filesize == ""


@pytest.mark.parametrize(
    ("csv_key", "name", "expected"),
    [
        ("ds/train.csv", "clips/a.wav", "ds/clips/a.wav"),
        ("ds/train.csv", "./clips/../b.wav", "ds/b.wav"),
        ("train.csv", "a.wav", "a.wav"),
    ],
)
def test_resolve_relative_to_csv(csv_key: str, name: str, expected: str) -> None:
    assert resolve_wav(csv_key, name).key == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../secret.wav", "path_escape"),
        ("clips/../../x.wav", "path_escape"),
        ("/etc/passwd.wav", "path_absolute"),
        ("s3://other/a.wav", "path_absolute"),
        ("C:/a.wav", "path_absolute"),
        ("clips\\a.wav", "path_invalid"),
        ("a.mp3", "audio_extension"),
        ("", "path_empty"),
    ],
)
def test_resolve_rejects(name: str, code: str) -> None:
    resolved = resolve_wav("ds/train.csv", name)
    assert resolved.key is None and resolved.problem is not None and resolved.problem[0] == code


def test_write_csv_roundtrip(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    assert write_csv(target, [("/data/a,b.wav", 44, 'say "hi", then')]) == 1
    table = parse_csv(target.read_text(encoding="utf-8"), str(target))
    assert table.rows[0].wav_filename == "/data/a,b.wav" and table.rows[0].transcript == 'say "hi", then'
    assert b"\r" not in target.read_bytes()


# ---------------------------------------------------------------------------------------------- WAV


def test_wav_header_of_real_file(tmp_path: Path) -> None:
    data = wav_bytes(seconds=0.5)
    info = parse_wav_header(data[:4096], len(data))
    assert (info.format_tag, info.channels, info.sample_rate, info.bits_per_sample) == (1, 1, 16000, 16)
    assert info.n_samples == 8000 and info.duration_s == pytest.approx(0.5)
    assert wav_format_problems(info, 16000) == []
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    assert read_wav_header(path) == info


@pytest.mark.parametrize(
    ("kwargs", "codes"),
    [
        ({"rate": 8000}, ["wav_rate"]),
        ({"channels": 2}, ["wav_channels"]),
        ({"width": 1}, ["wav_width"]),
    ],
)
def test_wav_format_problems(kwargs: dict, codes: list[str]) -> None:
    data = wav_bytes(seconds=0.1, **kwargs)
    assert [c for c, _ in wav_format_problems(parse_wav_header(data), 16000)] == codes


def test_wav_extensible_and_float_are_not_pcm() -> None:
    data = bytearray(wav_bytes(seconds=0.1))
    struct.pack_into("<H", data, 20, 0xFFFE)
    problems = wav_format_problems(parse_wav_header(bytes(data)), 16000)
    assert problems[0][0] == "wav_format" and "EXTENSIBLE" in problems[0][1]


@pytest.mark.parametrize("cut", [0, 5, 11, 20, 30])
def test_truncated_header_is_an_error_not_a_crash(cut: int) -> None:
    data = wav_bytes(seconds=0.1)[:cut]
    with pytest.raises(WavHeaderError) as info:
        parse_wav_header(data)
    assert info.value.code == "wav_truncated"


def test_not_riff() -> None:
    with pytest.raises(WavHeaderError) as info:
        parse_wav_header(b"ID3\x03" + b"\0" * 100)
    assert info.value.code == "wav_not_riff"


def test_truncated_data_is_measured_by_what_is_there() -> None:
    data = wav_bytes(seconds=1.0)
    info = parse_wav_header(data[:1044], 1044)
    assert info.data_bytes == 1000 and info.n_samples == 500


def test_list_chunk_before_data_and_odd_padding() -> None:
    data = wav_bytes(seconds=0.1)
    fmt_end = 12 + 8 + 16
    extra = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"
    patched = data[:fmt_end] + extra + data[fmt_end:]
    info = parse_wav_header(patched)
    assert info.n_samples == 1600


def test_data_chunk_far_away_needs_a_longer_read() -> None:
    data = wav_bytes(seconds=0.1)
    fmt_end = 12 + 8 + 16
    junk = b"junk" + struct.pack("<I", 10000) + b"\0" * 10000
    patched = data[:fmt_end] + junk + data[fmt_end:]
    with pytest.raises(WavHeaderError) as info:
        parse_wav_header(patched[:4096], len(patched))
    assert info.value.code == "wav_header_long"
    assert parse_wav_header(patched).n_samples == 1600


# ---------------------------------------------------------------------------------------------- frames


def test_frame_formula_reference_values() -> None:
    assert feature_frames(16000, 16000) == 1 + (16000 - 512) // 320 == 49
    assert feature_frames(511, 16000) == 0
    assert feature_frames(512, 16000) == 1
    assert feature_frames(8000, 8000) == 49  # same windows in ms at 8 kHz


def test_required_frames_counts_repeats() -> None:
    assert required_frames("hello") == 6
    assert required_frames("aaa") == 5
    assert required_frames("") == 0
    assert required_frames("é", bytes_mode=True) == 2


def test_window_divisibility() -> None:
    assert window_problems(16000) == []
    assert len(window_problems(22050)) == 1  # 20 ms × 22050 Hz = 441 samples
    assert len(window_problems(11025)) == 2


# ---------------------------------------------------------------------------------------------- alphabet


def test_alphabet_roundtrip_with_hash_and_space() -> None:
    labels = [" ", "#", "a", "b", "'"]
    text = format_alphabet(labels)
    assert text.endswith("\n") and "\r" not in text and "\\#\n" in text
    assert parse_alphabet(text) == labels


def test_alphabet_accepts_crlf_and_missing_final_newline() -> None:
    assert parse_alphabet("# c\r\n \r\na\r\nb") == [" ", "a", "b"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [("\ufeffa\nb\n", "BOM"), ("a\nab\n", ":2:"), ("a\na\n", "repeats"), ("# only\n", "no labels")],
)
def test_alphabet_rejects(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_alphabet(text, "alpha.txt")


def test_derive_alphabet_is_sorted_and_has_space() -> None:
    assert derive_alphabet(["bca", "ä'"]) == [" ", "'", "a", "b", "c", "ä"]
    assert derive_alphabet([]) == [" "]
    assert "\t" not in derive_alphabet(["a\tb"])
