"""The files of a DeepSpeech checkpoint folder, other than the state files (see tf_state_file).

TensorFlow's saver writes each checkpoint as `<prefix>.index`, `<prefix>.meta` and the shards
`<prefix>.data-<i>-of-<n>`, where the prefix ends in the global step (`train-N`, `best_dev-N`).
DeepSpeech adds `flags.txt` (the flags it ran with) and the trainer adds `alphabet.txt` (the run's labels).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

FLAGS_TXT = "flags.txt"
ALPHABET_TXT = "alphabet.txt"

CHECKPOINT_FILE = re.compile(r"^(?P<prefix>(?:train|best_dev)-\d+)\.(?:index|meta|data-\d+-of-\d+)$")


def checkpoint_step(prefix: str) -> int:
    """The global step a checkpoint prefix ends in (`train-1234` → 1234)."""
    return int(prefix.rsplit("-", 1)[1])


def complete_prefixes(prefixes: Iterable[str], names: Iterable[str]) -> list[str]:
    """The checkpoints whose `.index` and `.data-*` files are all among `names`, newest (highest step)
    first."""
    present = set(names)
    out = []
    for prefix in prefixes:
        shards = [n for n in present if n.startswith(prefix + ".data-")]
        total = {n.rsplit("-of-", 1)[1] for n in shards if "-of-" in n}
        whole = len(total) == 1 and len(shards) == int(next(iter(total)))
        if prefix + ".index" in present and whole:
            out.append(prefix)
    return sorted(out, key=checkpoint_step, reverse=True)


def local_checkpoint_files(directory: Path, prefix: str) -> list[Path]:
    """`<prefix>.data-*`, `.index`, `.meta` present in `directory`, data first: the index names the
    shards, so a reader that sees the index must find them."""
    try:
        names = [p.name for p in directory.iterdir()]
    except OSError:
        return []
    data = sorted(n for n in names if n.startswith(prefix + ".data-"))
    rest = [n for n in (prefix + ".index", prefix + ".meta") if n in names]
    return [directory / n for n in data + rest]


def parse_flags_txt(text: str) -> dict[str, str]:
    """`--name=value` lines of DeepSpeech's flags.txt; other lines are ignored."""
    out = {}
    for line in text.splitlines():
        if line.startswith("--") and "=" in line:
            name, _, value = line[2:].partition("=")
            out[name.strip()] = value.strip()
    return out
