"""py-spy profiles of a benchmark command: where the CPU goes when a target is missed.

`profile(name, cmd, env)` runs `cmd` under `py-spy record --format raw` (collapsed stacks, idle threads
left out), keeps the raw file (git-ignored) and writes a short text summary to
bench/results/profiles/<name>.txt: the top frames by own samples and by inclusive samples.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.common import RESULTS, ensure_peer_venv, log, run

PROFILES = RESULTS / "profiles"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/trainer/", "/operator/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path}:{m.group('line') or '?'})"


def summarize(raw: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for f in set(frames[1:]):  # frames[0] is the process/thread label
            inclusive[f] += count
    lines = [f"{total} samples (active threads only)", "", "own samples (leaf frames):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive samples:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"


def profile(name: str, cmd: Sequence[str], env: Mapping[str, str], gil: bool = False) -> str:
    """`gil`: sample only the thread holding the GIL, i.e. where the CPU goes; without it, a pool of
    threads waiting on sockets shows as mostly `readinto`, whoever is actually running."""
    bin_dir = ensure_peer_venv()
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw = PROFILES / f"{name}.raw"
    flags = ["--gil"] if gil else []
    try:
        run(
            [bin_dir / "py-spy", "record", *flags, "--format", "raw", "--rate", "200", "-o", raw, "--", *cmd],
            env,
        )
    except RuntimeError as exc:
        log(f"profiling {name} failed: {exc}")
        return f"py-spy failed: {exc}"
    text = summarize(raw)
    mode = "GIL holder only (py-spy --gil)" if gil else "active threads"
    (PROFILES / f"{name}.txt").write_text(f"command: {' '.join(map(str, cmd))}\nsampled: {mode}\n\n{text}")
    log(f"profile of {name}: bench/results/profiles/{name}.txt")
    return text
