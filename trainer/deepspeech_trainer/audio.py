"""WAV header parsing and the CTC length rule. Pure functions over bytes.

Only the header is needed: format, channels, width and rate come from the `fmt ` chunk and the
duration from the `data` chunk's length (clipped to what the file really holds), so a 4 KiB read per
file is enough to validate any dataset. A broken header is reported, never raised past the caller.
Hand-written because the standard library's `wave` refuses WAVE_FORMAT_EXTENSIBLE headers before Python 3.12.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

# Enough for RIFF + fmt + the usual LIST/INFO chunks before `data`; `read_wav_header` reads more
# from local files when the data chunk starts later.
HEADER_BYTES = 4096

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class WavHeaderError(ValueError):
    """The bytes are not a readable WAV header. `code` is the problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int
    data_bytes: int  # bytes of sample data actually present

    @property
    def n_samples(self) -> int:
        """Sample frames (per channel)."""
        return self.data_bytes // self.block_align if self.block_align else 0

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0


def parse_wav_header(head: bytes, file_size: int | None = None) -> WavInfo:
    """Parse RIFF/WAVE from the first bytes of a file.

    `file_size`: the full size when `head` is only a prefix; the data length is clipped to it so a
    truncated file is measured by what DeepSpeech can actually read.
    """
    total = len(head) if file_size is None else file_size
    if len(head) < 12:
        raise WavHeaderError("wav_truncated", f"file is {total} bytes: too short for a RIFF header")
    if head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        kind = "RIFF but not WAVE" if head[0:4] == b"RIFF" else "not a RIFF/WAVE file"
        raise WavHeaderError("wav_not_riff", f"{kind} (starts with {head[:4]!r})")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while True:
        if pos + 8 > len(head):
            if pos + 8 > total:
                raise WavHeaderError(
                    "wav_truncated",
                    "header ends before the data chunk" if fmt else "header ends before the fmt chunk",
                )
            raise WavHeaderError("wav_header_long", f"no data chunk within the first {len(head)} bytes")
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise WavHeaderError("wav_truncated", f"fmt chunk is cut short ({size} bytes declared)")
            tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", head, body)
            fmt = (tag, channels, rate, align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavHeaderError("wav_no_fmt", "data chunk comes before any fmt chunk")
            # 0xFFFFFFFF / oversized lengths come from streaming writers: trust the file size.
            data_bytes = max(0, min(size, total - body))
            tag, channels, rate, align, bits = fmt
            return WavInfo(tag, channels, rate, bits, align, data_bytes)
        # RIFF chunks are word-aligned: an odd size has one pad byte.
        pos = body + size + (size & 1)


def wav_format_problems(info: WavInfo, expected_rate: int) -> list[tuple[str, str]]:
    """What DeepSpeech (or the model) cannot use: not PCM, not mono, not 16-bit, other rate."""
    out: list[tuple[str, str]] = []
    if info.format_tag != WAVE_FORMAT_PCM:
        name = (
            "WAVE_FORMAT_EXTENSIBLE"
            if info.format_tag == WAVE_FORMAT_EXTENSIBLE
            else f"tag {info.format_tag}"
        )
        out.append(("wav_format", f"audio format is {name}, need PCM (tag 1)"))
    if info.channels != 1:
        out.append(("wav_channels", f"{info.channels} channels, need mono"))
    if info.bits_per_sample != 16:
        out.append(("wav_width", f"{info.bits_per_sample}-bit samples, need 16-bit"))
    if info.sample_rate != expected_rate:
        out.append(("wav_rate", f"sample rate {info.sample_rate} Hz, expected {expected_rate} Hz"))
    if info.data_bytes == 0:
        out.append(("wav_empty", "no audio samples"))
    return out


def read_wav_header(path: Path) -> WavInfo:
    """Read a local file's header (the first 4 KiB, more only when the data chunk starts later)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(HEADER_BYTES)
        try:
            return parse_wav_header(head, size)
        except WavHeaderError as exc:
            if exc.code != "wav_header_long":
                raise
            fh.seek(0)
            return parse_wav_header(fh.read(min(size, 16 * 1024 * 1024)), size)


def feature_frames(n_samples: int, sample_rate: int, win_len_ms: int = 32, win_step_ms: int = 20) -> int:
    """MFCC frames DeepSpeech computes for a clip (32 ms windows every 20 ms at 16 kHz by default)."""
    win = sample_rate * win_len_ms // 1000
    step = sample_rate * win_step_ms // 1000
    if step <= 0 or n_samples < win:
        return 0
    return 1 + (n_samples - win) // step


def required_frames(transcript: str, bytes_mode: bool = False) -> int:
    """CTC needs L + R frames: L labels, R adjacent repeats (a blank must separate them)."""
    labels: bytes | str = transcript.encode("utf-8") if bytes_mode else transcript
    repeats = sum(1 for a, b in itertools.pairwise(labels) if a == b)
    return len(labels) + repeats


def window_problems(sample_rate: int, win_len_ms: int = 32, win_step_ms: int = 20) -> list[str]:
    """DeepSpeech exits 1 at start unless both windows are whole samples at the rate."""
    out = []
    if (win_len_ms * sample_rate) % 1000:
        out.append(f"feature_win_len {win_len_ms} ms × {sample_rate} Hz is not a whole number of samples")
    if (win_step_ms * sample_rate) % 1000:
        out.append(f"feature_win_step {win_step_ms} ms × {sample_rate} Hz is not a whole number of samples")
    return out
