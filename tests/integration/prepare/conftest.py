"""Real audio for the prepare tests: espeak-ng speech and numpy tones, converted to every input format.

Small on purpose (a few seconds of audio in total): the machine is shared.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

SENTENCES = (
    "hello world",
    "the quick brown fox",
    "jumps over the lazy dog",
    "speech to text",
    "good morning",
    "one more sample",
)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: the prepare tests need it (make system-deps installs it)")
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    """espeak-ng clips (22.05 kHz mono 16-bit WAV) with the sentence each one says."""
    espeak = _need("espeak-ng")
    folder = tmp_path_factory.mktemp("speech")
    out = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"s{i}.wav"
        subprocess.run([espeak, "-s", "190", "-w", str(path), text], check=True, capture_output=True)
        out.append((path, text))
    return out


def sox(src: Path, dst: Path, *args: str) -> Path:
    """Re-encode with sox (an independent tool, so inputs are not made by the code under test)."""
    subprocess.run([_need("sox"), str(src), *args, str(dst)], check=True, capture_output=True)
    return dst


def encode(src: Path, dst: Path, fmt: str, subtype: str | None = None, rate: int | None = None) -> Path:
    """Formats sox lacks here (MP3, Opus) through libsndfile's encoders."""
    data, sr = soundfile.read(str(src), dtype="float32")
    if rate and rate != sr:
        tmp = dst.with_suffix(".rate.wav")
        sox(src, tmp, "-r", str(rate))
        data, sr = soundfile.read(str(tmp), dtype="float32")
        tmp.unlink()
    soundfile.write(str(dst), data, sr, format=fmt, subtype=subtype)
    return dst


def tone(
    path: Path, seconds: float, rate: int, freqs: tuple[float, ...] = (440.0,), subtype: str = "PCM_16"
) -> Path:
    """One sine per channel at 0.5 full scale."""
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs], axis=1)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


# name → how to make it from a 22.05 kHz speech WAV
FORMATS: dict[str, Callable[[Path, Path], Path]] = {
    "wav8k.wav": lambda s, d: sox(s, d, "-r", "8000"),
    "wav44k_stereo_24bit.wav": lambda s, d: sox(s, d, "-r", "44100", "-c", "2", "-b", "24"),
    "wav48k_float.wav": lambda s, d: sox(s, d, "-r", "48000", "-e", "floating-point", "-b", "32"),
    "wav_u8.wav": lambda s, d: sox(s, d, "-e", "unsigned-integer", "-b", "8"),
    "wav16k.wav": lambda s, d: sox(s, d, "-r", "16000"),
    "flac44k.flac": lambda s, d: sox(s, d, "-r", "44100"),
    "vorbis.ogg": lambda s, d: encode(s, d, "OGG", "VORBIS"),
    "opus.opus": lambda s, d: encode(s, d, "OGG", "OPUS", rate=48000),
    "mpeg.mp3": lambda s, d: encode(s, d, "MP3", "MPEG_LAYER_III", rate=44100),
}
