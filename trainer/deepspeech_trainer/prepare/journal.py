"""Resume journal: one JSON line per finished item, appended and flushed as each item completes.

A second run after Ctrl-C (or a crash) trusts an entry only if the source fingerprint and target rate
match and the WAV on disk still has the recorded size; everything else is converted again. A torn
last line (killed mid-write) is ignored, which at worst redoes that one item.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

JOURNAL_FILE = ".prepare-journal.jsonl"


@dataclass(frozen=True)
class Entry:
    audio: str
    key: str  # fingerprint + rate
    wav: str = ""
    size: int = 0
    n_samples: int = 0
    sample_rate: int = 0
    reason: str = ""  # set when the source could not be converted
    detail: str = ""


def entry_key(fingerprint: str, sample_rate: int) -> str:
    return f"{fingerprint}@{sample_rate}"


class Journal:
    def __init__(self, dest: Path) -> None:
        self.path = dest / JOURNAL_FILE
        self.entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    data: dict[str, Any] = json.loads(line)
                    entry = Entry(**data)
                except (ValueError, TypeError):
                    continue  # torn or foreign line
                self.entries[entry.audio] = entry

    def done(self, audio: str, key: str, dest: Path) -> Entry | None:
        """The journal entry if `audio` was finished with this fingerprint and its WAV is intact."""
        entry = self.entries.get(audio)
        if entry is None or entry.key != key:
            return None
        if entry.reason:
            return entry
        wav = dest / entry.wav
        try:
            return entry if wav.stat().st_size == entry.size else None
        except FileNotFoundError:
            return None

    def record(self, entry: Entry) -> None:
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(json.dumps(entry.__dict__, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.entries[entry.audio] = entry

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
