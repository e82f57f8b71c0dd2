"""Real WAV files for tests, written with the stdlib `wave` module (tones + a little noise)."""

from __future__ import annotations

import io
import math
import random
import struct
import wave


def wav_bytes(
    seconds: float = 1.0,
    rate: int = 16000,
    channels: int = 1,
    width: int = 2,
    freq: float = 440.0,
    seed: int = 0,
) -> bytes:
    """A sine tone with noise; `width` bytes per sample (1 = unsigned 8-bit, 2 = 16-bit)."""
    rng = random.Random(seed)
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        value = 0.5 * math.sin(2 * math.pi * freq * i / rate) + 0.05 * (rng.random() - 0.5)
        for _ in range(channels):
            if width == 1:
                frames += struct.pack("<B", int(128 + 127 * value))
            else:
                frames += struct.pack("<h", int(32767 * value))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buf.getvalue()


def silence_wav(seconds: float, rate: int = 16000) -> bytes:
    """Fast to make for bulk datasets: zeros (plus the header)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()
