"""What `prepare` writes, computed without touching disk: WAV names, CSV rows, summary, YAML snippet."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from .model import SPLITS, Drop, Row, Split

WAV_DIR = "wav"
ALPHABET_FILE = "alphabet.txt"
SUMMARY_FILE = "summary.json"
DROPPED_FILE = "dropped.csv"
API_VERSION = "training.deepspeech.dev/v1alpha1"


def csv_name(split: Split) -> str:
    return f"{split.value}.csv"


def wav_names(audio: Iterable[str]) -> dict[str, str]:
    """Source audio → WAV path relative to DEST, unique: `a.mp3` → `wav/a.wav`.

    When two sources share a stem (`a.wav` and `a.flac`), each keeps its extension in the name
    (`wav/a.flac.wav`) so neither overwrites the other; the choice depends only on the set of names.
    """
    sources = sorted(set(audio))
    stems = Counter(posixpath.splitext(s)[0] for s in sources)
    out: dict[str, str] = {}
    for source in sources:
        stem, ext = posixpath.splitext(source)
        name = stem if stems[stem] == 1 else f"{stem}{ext}"
        out[source] = posixpath.join(WAV_DIR, name + ".wav")
    return out


def csv_rows(rows: Iterable[Row], split: Split) -> list[tuple[str, int, str]]:
    """`(wav_filename, wav_filesize, transcript)` of one split, relative to the CSV, sorted by name."""
    return sorted((r.clip.wav, r.clip.size, r.transcript) for r in rows if r.split is split)


def summarise(
    rows: Sequence[Row],
    drops: Sequence[Drop],
    *,
    layout: str,
    sample_rate: int,
    alphabet_size: int,
    alphabet_source: str,
    alphabet_added: Sequence[str] = (),
) -> dict[str, Any]:
    """Counts and hours per split and dropped rows by reason (the JSON written to summary.json)."""
    splits: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [r for r in rows if r.split is split]
        seconds = sum(r.clip.seconds for r in chosen)
        speakers = {r.item.speaker for r in chosen if r.item.speaker is not None}
        splits[split.value] = {
            "rows": len(chosen),
            "hours": round(seconds / 3600, 4),
            "seconds": round(seconds, 3),
            "speakers": len(speakers),
        }
    return {
        "layout": layout,
        "sampleRate": sample_rate,
        "splits": splits,
        "rows": len(rows),
        "dropped": dict(sorted(Counter(d.reason for d in drops).items())),
        "droppedRows": len(drops),
        "alphabet": {"labels": alphabet_size, "source": alphabet_source, "added": list(alphabet_added)},
    }


def summary_text(summary: Mapping[str, Any]) -> str:
    lines = [f"layout {summary['layout']}, {summary['sampleRate']} Hz mono 16-bit PCM"]
    for name, s in summary["splits"].items():
        spk = f", {s['speakers']} speakers" if s["speakers"] else ""
        lines.append(f"  {name:5} {s['rows']:7d} rows {s['hours']:9.3f} h{spk}")
    if summary["dropped"]:
        lines.append(f"  dropped {summary['droppedRows']} rows (details in {DROPPED_FILE}):")
        lines.extend(f"    {reason:20} {count}" for reason, count in summary["dropped"].items())
    else:
        lines.append("  dropped 0 rows")
    a = summary["alphabet"]
    added = f"; added {''.join(a['added'])!r}: the output layer changes" if a["added"] else ""
    lines.append(f"  alphabet {a['labels']} labels ({a['source']}{added})")
    return "\n".join(lines) + "\n"


def drops_rows(drops: Iterable[Drop]) -> list[tuple[str, str, str, str]]:
    return [(d.origin, d.audio, d.reason, d.detail) for d in drops]


def resource_name(dest: str) -> str:
    """A DNS-1123 name from the last part of DEST (`s3://b/cv-en/` → `cv-en`)."""
    last = dest.rstrip("/").rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", last).strip("-")[:50].strip("-")
    return name or "dataset"


def snippet(
    dest_uri: str,
    *,
    name: str,
    output_uri: str,
    endpoint: str | None,
    region: str | None,
    secret: str = "s3-credentials",
    splits_present: Iterable[Split] = SPLITS,
) -> str:
    """A DeepSpeechTraining (the CRD's field names) reading the uploaded CSVs and alphabet."""
    base = dest_uri.rstrip("/") + "/"
    present = set(splits_present)
    data: dict[str, Any] = {"train": [base + csv_name(Split.TRAIN)]}
    for split in (Split.DEV, Split.TEST):
        if split in present:
            data[split.value] = [base + csv_name(split)]
    data["alphabet"] = base + ALPHABET_FILE
    storage: dict[str, Any] = {}
    if endpoint:
        storage["endpoint"] = endpoint
    if region and region != "us-east-1":
        storage["region"] = region
    storage["secretRef"] = {"name": secret}
    doc = {
        "apiVersion": API_VERSION,
        "kind": "DeepSpeechTraining",
        "metadata": {"name": name},
        "spec": {"data": data, "output": {"uri": output_uri}, "storage": storage},
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
