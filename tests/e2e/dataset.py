"""A small real speech dataset for the end-to-end tests and `make demo`: espeak-ng speaks sentences into
WAV files next to their transcripts, and `deepspeech-trainer prepare` converts, splits and uploads them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SENTENCES = (
    "hello world",
    "the quick brown fox jumps over the lazy dog",
    "speech recognition on kubernetes",
    "deep speech learns from examples",
    "one two three four five",
    "good morning and good night",
    "training needs data and patience",
    "the model listens to every word",
    "checkpoints survive preemption",
    "a small corpus for a quick test",
    "graphics cards make training fast",
    "the operator watches the cluster",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")


def speak_pairs(folder: Path, sentences: Sequence[str] = SENTENCES) -> Path:
    """`name.wav` + `name.txt` pairs (the `pairs` layout of `prepare`), one voice per speaker folder."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (make system-deps installs it)")
    for index, text in enumerate(sentences):
        speaker = folder / f"speaker{index % len(VOICES)}"
        speaker.mkdir(parents=True, exist_ok=True)
        wav = speaker / f"utt{index:03d}.wav"
        voice = VOICES[index % len(VOICES)]
        subprocess.run(
            [espeak, "-v", voice, "-s", "170", "-w", str(wav), text], check=True, capture_output=True
        )
        wav.with_suffix(".txt").write_text(text + "\n")
    return folder


def prepare_to_s3(source: Path, destination: str, s3_env: Mapping[str, str], trainer: Path) -> str:
    """Runs the real `deepspeech-trainer prepare`; returns its output (summary and YAML snippet)."""
    result = subprocess.run(
        [str(trainer), "prepare", str(source), destination, "--split", "0.5,0.25,0.25", "--seed", "7"],
        env={**os.environ, **s3_env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"prepare failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout
