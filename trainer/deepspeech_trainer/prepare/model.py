"""Records passed between the stages of `prepare`. Plain frozen dataclasses, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layout(StrEnum):
    PAIRS = "pairs"  # name.wav + name.txt
    MANIFEST = "manifest"  # a TSV/CSV with path and sentence columns (Common Voice)
    LIBRISPEECH = "librispeech"  # <spk>/<chapter>/<spk>-<chapter>.trans.txt + <id>.flac


class Split(StrEnum):
    TRAIN = "train"
    DEV = "dev"
    TEST = "test"


SPLITS: tuple[Split, ...] = (Split.TRAIN, Split.DEV, Split.TEST)


@dataclass(frozen=True)
class Item:
    """One utterance found in the source: audio (relative to SOURCE) + raw transcript.

    `origin` is where the transcript came from ("file:line"), so every report names the exact line.
    """

    audio: str
    transcript: str
    origin: str
    speaker: str | None = None


@dataclass(frozen=True)
class Drop:
    """A row left out, with the reason code (grouped in the summary) and a human message."""

    origin: str
    audio: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Clip:
    """A converted WAV: where it is (relative to DEST) and what the decoder says it holds."""

    wav: str
    size: int
    n_samples: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class Row:
    """A finished CSV row with the facts the summary needs."""

    item: Item
    transcript: str  # normalised
    clip: Clip
    split: Split
