"""DeepSpeech CSV files (`wav_filename,wav_filesize,transcript`): parse, resolve paths, write back.

Pure functions over text. Also home of `Problem`, the one record every data check reports with, so
that the lowest-level modules need not import validation.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

REQUIRED_COLUMNS = ("wav_filename", "transcript")
COLUMNS = ("wav_filename", "wav_filesize", "transcript")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. `line` is 1-based; 0 means the whole file (or no file)."""

    file: str
    line: int
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Row:
    line: int  # line where the record starts (a quoted transcript may span lines)
    wav_filename: str
    wav_filesize: str  # as written; recomputed when staged
    transcript: str


@dataclass
class CsvTable:
    source: str
    header: list[str]
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_csv(text: str, source: str) -> CsvTable:
    """Parse a whole DeepSpeech CSV held in memory (see `iter_csv`); small files and tests only."""
    if text.startswith("\ufeff"):
        text = text[1:]  # DeepSpeech would read the BOM into the first column name
    table = CsvTable(source=source, header=[])
    for item in iter_csv(io.StringIO(text, newline=""), source, header_out=table.header):
        if isinstance(item, Row):
            table.rows.append(item)
        else:
            table.problems.append(item)
    return table


def iter_csv(
    lines: Iterable[str],
    source: str,
    *,
    header_out: list[str] | None = None,
    pending: list[Problem] | None = None,
) -> Iterator[Row | Problem]:
    """Rows and problems of a DeepSpeech CSV, in file order; never raises on content, holds one record.

    Tolerates CRLF and quoted fields. Extra columns are ignored (as DeepSpeech does); a missing
    required column is one problem on line 1 and no rows. Rows with the wrong field count are problems
    naming their line. `pending`: problems found while reading lines (`csv_file_lines`), passed on in
    order. `header_out` receives the stripped header.
    """
    pending = [] if pending is None else pending
    reader = csv.reader(lines)

    def drained() -> Iterator[Problem]:
        while pending:
            yield pending.pop(0)

    try:
        header = next(reader)
    except StopIteration:
        yield from drained()
        yield Problem(source, 1, "csv_header", "file is empty: no header line")
        return
    except csv.Error as exc:
        yield from drained()
        yield Problem(source, 1, "csv_syntax", f"cannot parse header: {exc}")
        return
    yield from drained()
    header = [h.strip() for h in header]
    if header_out is not None:
        header_out[:] = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        yield Problem(
            source,
            1,
            "csv_header",
            f"header {','.join(header)!r} lacks column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}",
        )
        return
    i_wav = header.index("wav_filename")
    i_text = header.index("transcript")
    i_size = header.index("wav_filesize") if "wav_filesize" in header else -1
    width = len(header)
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            yield from drained()
            return
        except csv.Error as exc:
            yield from drained()
            yield Problem(source, start, "csv_syntax", str(exc))
            last_line = reader.line_num
            continue
        yield from drained()
        last_line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line: csv.DictReader skips these too
        if len(record) != width:
            yield Problem(
                source,
                start,
                "csv_columns",
                f"{len(record)} fields, header has {width} (an unquoted comma in the transcript?)",
            )
            continue
        size = record[i_size].strip() if i_size >= 0 else ""
        if size and not size.isdigit():
            yield Problem(
                source, start, "csv_filesize", f"wav_filesize {size!r} is not a non-negative integer"
            )
        yield Row(start, record[i_wav].strip(), size, record[i_text])


MAX_LINE_BYTES = 1024 * 1024  # far above any real row; csv's own field limit is 131 072 characters
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def csv_file_lines(fh: BinaryIO, source: str, pending: list[Problem]) -> Iterator[str]:
    """Decoded lines of a CSV file for `csv.reader`, one at a time (memory bounded by MAX_LINE_BYTES).

    A leading BOM is dropped; CR, LF and CRLF end lines. A longer line is a problem naming it and is
    passed on as a blank line (line numbers stay right); bytes that are not UTF-8 are a problem naming
    line and byte, and end the file. Problems go to `pending` (for `iter_csv`).
    """
    number = 0
    offset = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            skipped = len(raw)
            while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                skipped += len(rest)
            skipped += len(rest)
            pending.append(
                Problem(source, number, "csv_syntax", f"line is longer than {MAX_LINE_BYTES} bytes; not read")
            )
            offset += skipped
            yield "\n"
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, offset = raw[3:], 3  # DeepSpeech would read the BOM into the first column name
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            pending.append(
                Problem(
                    source, number, "csv_encoding", f"not UTF-8: {exc.reason} at byte {offset + exc.start}"
                )
            )
            return
        offset += len(raw)
        if "\r" in line[:-2]:
            yield from filter(None, _LONE_CR.split(line))  # old Mac line ends, as newline="" reads them
        else:
            yield line


def normalize_transcript(text: str) -> str:
    """NFC: canonically equal spellings become one label sequence (the alphabet is derived from it)."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Resolved:
    key: str | None  # object key / relative path below the bucket (or local root) when acceptable
    problem: tuple[str, str] | None  # (code, message) when not


def resolve_wav(csv_key: str, wav_filename: str) -> Resolved:
    """Resolve `wav_filename` against the CSV's folder (DeepSpeech's rule), staying inside it.

    The dataset root is the folder holding the CSV: absolute paths, URIs and `..` that climb out of
    it are refused, because staging mirrors only that tree and a CSV must not make the trainer read
    (or a user smuggle in) files from elsewhere in the bucket or on the pod.
    """
    name = wav_filename.strip()
    if not name:
        return Resolved(None, ("path_empty", "wav_filename is empty"))
    if "://" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return Resolved(
            None, ("path_absolute", f"wav_filename {name!r} is absolute; use a path relative to the CSV")
        )
    if "\\" in name:
        return Resolved(None, ("path_invalid", f"wav_filename {name!r} contains a backslash"))
    root = posixpath.dirname(csv_key)
    if "//" not in name and "/." not in "/" + name:
        # No empty or dot segments (the usual case, 10^7 times per preflight): nothing to normalise.
        joined, inside = (f"{root}/{name}" if root else name), True
    else:
        joined = posixpath.normpath(posixpath.join(root, name)) if root else posixpath.normpath(name)
        inside = joined.startswith(root + "/") if root else not (joined == ".." or joined.startswith("../"))
    if not inside or joined in (".", ""):
        return Resolved(
            None, ("path_escape", f"wav_filename {name!r} leaves the dataset folder {root or '/'!r}")
        )
    if not joined.lower().endswith(".wav"):
        return Resolved(
            None, ("audio_extension", f"wav_filename {name!r}: DeepSpeech 0.7+ loads only .wav files")
        )
    return Resolved(joined, None)


def write_csv(path: Path, rows: Iterable[tuple[str, int, str]]) -> int:
    """Write `(absolute wav path, size, transcript)` rows with LF endings; returns the row count.

    Paths with commas cannot be passed in DeepSpeech's comma-joined --*_files lists but are fine
    inside a CSV (the csv module quotes them).
    """
    n = 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for wav, size, transcript in rows:
            writer.writerow((wav, size, transcript))
            n += 1
    tmp.replace(path)
    return n
