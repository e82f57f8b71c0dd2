"""Source layouts: detection and parsing. Pure functions over file names and transcript text.

The shell lists SOURCE once (relative POSIX names) and reads the few text files a layout names; all
decisions (which layout, which audio belongs to which transcript, what is missing) are made here.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from deepspeech_trainer.exitcodes import InvalidInput

from .model import Drop, Item, Layout

# What soundfile's bundled libsndfile (1.2) decodes; checked at import time of `convert`.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
MANIFEST_EXTENSIONS: tuple[str, ...] = (".tsv", ".csv")
LIBRISPEECH_SUFFIX = ".trans.txt"
# Common Voice ships several TSVs over the same clips; validated.tsv is the superset of the usable ones.
PREFERRED_MANIFESTS: tuple[str, ...] = ("validated.tsv", "train.tsv")
PATH_COLUMNS: tuple[str, ...] = ("path", "wav_filename", "filename", "file", "audio")
TEXT_COLUMNS: tuple[str, ...] = ("sentence", "transcript", "text")
SPEAKER_COLUMNS: tuple[str, ...] = ("client_id", "speaker_id", "speaker")


def is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _stem(name: str) -> str:
    return posixpath.splitext(name)[0]


def detect_layout(names: Collection[str]) -> Layout:
    """LibriSpeech if any `*.trans.txt`, else a manifest at the top level, else audio/text pairs."""
    if any(n.endswith(LIBRISPEECH_SUFFIX) for n in names):
        return Layout.LIBRISPEECH
    if any("/" not in n and n.lower().endswith(MANIFEST_EXTENSIONS) for n in names):
        return Layout.MANIFEST
    if any(is_audio(n) for n in names) and any(n.lower().endswith(".txt") for n in names):
        return Layout.PAIRS
    audio = sum(1 for n in names if is_audio(n))
    raise InvalidInput(
        f"cannot detect the layout of SOURCE ({len(names)} files, {audio} audio): no *{LIBRISPEECH_SUFFIX}, "
        f"no top-level manifest ({'/'.join(MANIFEST_EXTENSIONS)}), no name.<audio> + name.txt pairs; "
        "pass --layout"
    )


def choose_manifest(names: Collection[str], explicit: str | None = None) -> str:
    """The manifest to read: `--manifest`, the only top-level one, or Common Voice's validated.tsv."""
    if explicit:
        if explicit not in names:
            raise InvalidInput(f"--manifest {explicit!r}: no such file in SOURCE")
        return explicit
    top = sorted(n for n in names if "/" not in n and n.lower().endswith(MANIFEST_EXTENSIONS))
    if len(top) == 1:
        return top[0]
    for preferred in PREFERRED_MANIFESTS:
        if preferred in top:
            return preferred
    if not top:
        raise InvalidInput("layout manifest: no .tsv or .csv file at the top of SOURCE; pass --manifest")
    raise InvalidInput(
        f"layout manifest: several manifests at the top of SOURCE ({', '.join(top)}); pass --manifest"
    )


def match_pairs(names: Iterable[str]) -> tuple[list[tuple[str, str]], list[Drop]]:
    """(audio, transcript file) pairs by shared stem; orphans on either side are reported drops."""
    audio: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for name in sorted(names):
        if is_audio(name):
            audio.setdefault(_stem(name), []).append(name)
        elif name.endswith(".txt"):
            texts[_stem(name)] = name
    pairs: list[tuple[str, str]] = []
    drops: list[Drop] = []
    for stem, files in sorted(audio.items()):
        text = texts.get(stem)
        if text is None:
            for f in files:
                drops.append(Drop(f, f, "missing_transcript", f"no {stem}.txt beside the audio"))
            continue
        if len(files) > 1:
            # Same recording in two formats: which one the transcript belongs to is ambiguous.
            for f in files:
                drops.append(
                    Drop(text, f, "ambiguous_audio", f"{text} matches several files: {', '.join(files)}")
                )
            continue
        pairs.append((files[0], text))
    for stem, text in sorted(texts.items()):
        if stem not in audio:
            drops.append(
                Drop(
                    text,
                    "",
                    "missing_audio",
                    f"no audio file named {stem}.<{'|'.join(e[1:] for e in AUDIO_EXTENSIONS)}>",
                )
            )
    return pairs, drops


def pair_item(audio: str, text_name: str, text: str) -> Item:
    return Item(audio=audio, transcript=text, origin=f"{text_name}:1")


@dataclass(frozen=True)
class ManifestColumns:
    """Column names; None = the first of the usual names found in the header (Common Voice's first)."""

    path: str | None = None
    text: str | None = None
    speaker: str | None = None  # "" = never split by speaker


def _pick(
    header: Sequence[str], explicit: str | None, usual: Sequence[str], what: str, source: str
) -> str | None:
    if explicit:
        if explicit not in header:
            raise InvalidInput(f"{source}:1: no {what} column {explicit!r} in header {', '.join(header)}")
        return explicit
    for name in usual:
        if name in header:
            return name
    return None


def resolve_audio(manifest: str, value: str, names: Collection[str]) -> str | None:
    """A manifest path relative to the manifest's folder, or its `clips/` folder (Common Voice)."""
    base = posixpath.dirname(manifest)
    value = value.strip().replace("\\", "/")
    if not value or value.startswith("/") or "://" in value:
        return None
    for candidate in (posixpath.join(base, value), posixpath.join(base, "clips", value)):
        norm = posixpath.normpath(candidate)
        if norm in names:
            return norm
    return None


def parse_manifest(
    text: str, source: str, names: Collection[str], columns: ManifestColumns = ManifestColumns()
) -> tuple[list[Item], list[Drop]]:
    """Rows of a TSV (tab, no quoting: Common Voice) or CSV (comma, quoted) manifest."""
    if text.startswith("\ufeff"):
        text = text[1:]
    tsv = source.lower().endswith(".tsv")
    reader = (
        csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
        if tsv
        else csv.reader(io.StringIO(text, newline=""))
    )
    records = _records(reader, source)
    try:
        header = [h.strip() for h in next(records)[1]]
    except StopIteration:
        raise InvalidInput(f"{source}:1: manifest is empty") from None
    path_col = _pick(header, columns.path, PATH_COLUMNS, "path", source)
    text_col = _pick(header, columns.text, TEXT_COLUMNS, "sentence", source)
    if path_col is None or text_col is None:
        raise InvalidInput(
            f"{source}:1: header {', '.join(header)} has no "
            f"{'path' if path_col is None else 'sentence'} column; pass --path-column/--text-column"
        )
    speaker_col = (
        None if columns.speaker == "" else _pick(header, columns.speaker, SPEAKER_COLUMNS, "speaker", source)
    )
    i_path, i_text = header.index(path_col), header.index(text_col)
    i_spk = header.index(speaker_col) if speaker_col else -1
    items: list[Item] = []
    drops: list[Drop] = []
    for line, record in records:
        origin = f"{source}:{line}"
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) < len(header):
            drops.append(
                Drop(origin, "", "bad_manifest_row", f"{len(record)} fields, header has {len(header)}")
            )
            continue
        value = record[i_path]
        audio = resolve_audio(source, value, names)
        if audio is None:
            drops.append(
                Drop(
                    origin, value, "missing_audio", f"audio {value!r} not found beside {source} or in clips/"
                )
            )
            continue
        speaker = (record[i_spk].strip() or None) if i_spk >= 0 else None
        items.append(Item(audio=audio, transcript=record[i_text], origin=origin, speaker=speaker))
    return items, drops


def _records(reader: Any, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields); a line the csv module cannot read (a field over its
    limit, a stray quote) is an input error naming file and line, not a traceback."""
    line_num = reader.line_num
    while True:
        start = line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"{source}:{start}: cannot read this manifest line: {exc}") from None
        line_num = reader.line_num
        yield start, record


def parse_librispeech(text: str, source: str, names: Collection[str]) -> tuple[list[Item], list[Drop]]:
    """`ID transcript` lines; the audio is `ID.<ext>` beside the file, the speaker the ID's first field."""
    folder = posixpath.dirname(source)
    items: list[Item] = []
    drops: list[Drop] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        origin = f"{source}:{number}"
        utt, _, transcript = line.strip().partition(" ")
        audio = next(
            (c for ext in AUDIO_EXTENSIONS if (c := posixpath.join(folder, utt + ext)) in names),
            None,
        )
        if audio is None:
            drops.append(
                Drop(origin, utt, "missing_audio", f"no audio file {utt}.<flac|wav|...> in {folder or '.'}")
            )
            continue
        items.append(Item(audio=audio, transcript=transcript, origin=origin, speaker=utt.split("-", 1)[0]))
    return items, drops


def librispeech_files(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(LIBRISPEECH_SUFFIX))


def dedupe(items: Iterable[Item]) -> tuple[list[Item], list[Drop]]:
    """One row per audio file: a second transcript for the same clip would be a train/test leak."""
    seen: dict[str, Item] = {}
    kept: list[Item] = []
    drops: list[Drop] = []
    for item in items:
        first = seen.get(item.audio)
        if first is not None:
            drops.append(Drop(item.origin, item.audio, "duplicate_audio", f"same audio as {first.origin}"))
            continue
        seen[item.audio] = item
        kept.append(item)
    return kept, drops
