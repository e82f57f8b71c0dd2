"""Preflight's streamed path: line reader, bounded duplicate index, chunked validation = whole validation."""

from __future__ import annotations

import io
import random

import pytest
from deepspeech_trainer.audio import parse_wav_header
from deepspeech_trainer.csvdata import MAX_LINE_BYTES, Problem, Row, csv_file_lines, iter_csv, parse_csv
from deepspeech_trainer.firstseen import FirstSeen
from deepspeech_trainer.s3 import S3Uri
from deepspeech_trainer.staging import StagedCsv, StagedRow
from deepspeech_trainer.validation import Settings, Validator, validate

from tests.unit.trainer_data.wavgen import wav_bytes

ONE_SECOND = parse_wav_header(wav_bytes(seconds=1.0))


def items(data: bytes) -> list[Row | Problem]:
    pending: list[Problem] = []
    return list(iter_csv(csv_file_lines(io.BytesIO(data), "f.csv", pending), "f.csv", pending=pending))


def test_file_lines_match_the_in_memory_parser() -> None:
    text = '\ufeffwav_filename,wav_filesize,transcript\r\na.wav,1,"two\r\nlines"\r\nb.wav,x,hi\nc.wav,1,a,b\n'
    table = parse_csv(text, "f.csv")
    streamed = items(text.encode())
    assert [i for i in streamed if isinstance(i, Row)] == table.rows
    assert [i for i in streamed if isinstance(i, Problem)] == table.problems


def test_lone_carriage_returns_end_lines() -> None:
    rows = [i for i in items(b"wav_filename,transcript\ra.wav,x\rb.wav,y\r") if isinstance(i, Row)]
    assert [(r.line, r.wav_filename) for r in rows] == [(2, "a.wav"), (3, "b.wav")]


def test_overlong_line_is_a_problem_and_the_rest_is_read() -> None:
    data = b"wav_filename,transcript\na.wav,x\n" + b"j" * (MAX_LINE_BYTES * 3) + b"\nb.wav,y\n"
    got = items(data)
    assert [(i.line, i.code) for i in got if isinstance(i, Problem)] == [(3, "csv_syntax")]
    assert [(r.line, r.wav_filename) for r in got if isinstance(r, Row)] == [(2, "a.wav"), (4, "b.wav")]


def test_50_mb_field_in_a_quoted_transcript_is_a_csv_syntax_problem() -> None:
    data = b'wav_filename,transcript\na.wav,"' + b"x" * 200_000 + b'"\nb.wav,y\n'
    got = items(data)
    assert [(i.line, i.code) for i in got if isinstance(i, Problem)] == [(2, "csv_syntax")]
    assert "b.wav" in [r.wav_filename for r in got if isinstance(r, Row)]


def test_bad_utf8_names_line_and_byte_and_keeps_the_rows_before() -> None:
    data = b"wav_filename,transcript\na.wav,x\nb.wav,\xff\n"
    got = items(data)
    problems = [i for i in got if isinstance(i, Problem)]
    assert [(p.line, p.code) for p in problems] == [(3, "csv_encoding")]
    assert "at byte 38" in problems[0].message and data[38:39] == b"\xff"
    assert [r.wav_filename for r in got if isinstance(r, Row)] == ["a.wav"]


def test_first_seen_agrees_with_a_dict_and_stops_adding_when_full() -> None:
    rng = random.Random(7)
    index, truth = FirstSeen(capacity=50_000), {}
    for n in range(60_000):
        key = rng.randrange(1 << 64) if n % 3 else rng.choice(list(truth) or [1])
        got = index.first(key, n)
        assert got == truth.get(key), n
        truth.setdefault(key, n)
    small = FirstSeen(capacity=10)
    for k in range(1, 20):
        small.first(k, k)
    assert small.full and small.count == 10
    assert small.first(5, 99) == 5 and small.first(15, 99) is None


def _rows(n: int, seed: int) -> list[StagedRow]:
    rng = random.Random(seed)
    out = []
    for line in range(2, n + 2):
        name = f"c{rng.randrange(n // 2)}.wav"  # about a third are duplicates
        text = rng.choice(["hello", "hi there", "", "ünknown", "ok\x07"])
        info = ONE_SECOND if rng.random() > 0.1 else None
        problem = None if info else ("file_missing", "gone")
        out.append(StagedRow(line, name, text, uri=S3Uri("b", f"ds/{name}"), info=info, problem=problem))
    return out


@pytest.mark.parametrize("alphabet", [None, list(" abcdefghijklmnopqrstuvwxyz")])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_validation_gives_the_whole_report(alphabet, chunk: int) -> None:
    train, dev = _rows(300, 1), _rows(40, 2)
    whole = validate(
        [
            StagedCsv("train", 0, "s3://b/ds/t.csv", "f", train),
            StagedCsv("dev", 0, "s3://b/ds/d.csv", "f", dev),
        ],
        Settings(),
        alphabet=alphabet,
        cap=10_000,
    )
    validator = Validator(Settings(), alphabet=alphabet, cap=10_000)
    for split, uri, rows in (("train", "s3://b/ds/t.csv", train), ("dev", "s3://b/ds/d.csv", dev)):
        for i in range(0, len(rows), chunk):
            validator.add(StagedCsv(split, 0, uri, "f", rows[i : i + chunk]))
    streamed = validator.report()
    assert streamed.to_json() == whole.to_json()
    assert whole.counts["duplicate_row"] > 50 and "leaks between" in str(whole.to_json())
