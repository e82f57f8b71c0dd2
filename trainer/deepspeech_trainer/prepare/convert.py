"""Audio conversion: any format libsndfile decodes → mono 16-bit PCM WAV at the target rate.

soundfile (libsndfile: WAV of any width, FLAC, Ogg Vorbis/Opus, MP3) decodes, soxr resamples; both are
maintained C libraries, so nothing here does signal processing by hand beyond the channel mean.
The WAV is written to a `.part` file and renamed, so a file under its final name is always complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

# soxr "HQ" (20-bit precision, 95% passband) is the quality sox itself uses by default; VHQ costs more
# CPU for differences far below what 16-bit output can hold.
RESAMPLE_QUALITY = "HQ"


class AudioError(Exception):
    """The file cannot be turned into a clip; `reason` is the drop reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Converted:
    size: int
    n_samples: int
    sample_rate: int


def convert(source: Path, target: Path, sample_rate: int) -> Converted:
    """Decode `source`, down-mix, resample and write `target` atomically."""
    try:
        data, rate = soundfile.read(str(source), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as exc:
        raise AudioError("unreadable_audio", f"cannot decode {source.name}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError("empty_audio", f"{source.name} holds no samples")
    # Mean of the channels: a stereo recording of one speaker keeps its level, no channel is preferred.
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality=RESAMPLE_QUALITY)
    # Resampling can overshoot full scale by a hair; clip instead of letting int16 wrap around.
    mono = np.clip(mono, -1.0, 1.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    soundfile.write(str(part), mono, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(part, target)
    return Converted(size=target.stat().st_size, n_samples=int(mono.shape[0]), sample_rate=sample_rate)
