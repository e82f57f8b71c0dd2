"""Deterministic train/dev/test split. Pure functions.

Groups (a speaker, or one clip when there is no speaker) are ordered by a keyed hash of their name and
the seed, then laid out along the ratio line by their rows. The order depends only on names and
seed, never on listing order or on other groups, so adding recordings moves few others, and a group
(speaker) is never cut across two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from deepspeech_trainer.exitcodes import InvalidInput

from .model import SPLITS, Split


def parse_ratios(text: str) -> tuple[float, float, float]:
    """`0.8,0.1,0.1` (or `80,10,10`): three non-negative numbers, train > 0, normalised to sum 1."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise InvalidInput(f"--split {text!r}: need three numbers train,dev,test (e.g. 0.8,0.1,0.1)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput(f"--split {text!r}: not numbers") from None
    if any(v < 0 or v != v for v in values) or values[0] <= 0:
        raise InvalidInput(f"--split {text!r}: ratios must be >= 0 and train > 0")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def _rank(key: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def assign(groups: dict[str, int], ratios: Sequence[float], seed: int) -> dict[str, Split]:
    """Map each group (name → row count) to a split.

    A group goes to the split whose ratio interval holds the middle of its rows on the cumulative
    line. Afterwards a split with a positive ratio that got nothing takes one group from the largest
    split, when there are enough groups, so dev/test are never empty by bad luck on small data.
    """
    order = sorted(groups, key=lambda g: _rank(g, seed))
    total = sum(groups.values()) or 1
    bounds = [sum(ratios[: i + 1]) for i in range(len(SPLITS))]
    result: dict[str, Split] = {}
    done = 0
    for group in order:
        middle = (done + groups[group] / 2) / total
        index = next((i for i, b in enumerate(bounds) if middle < b), len(SPLITS) - 1)
        result[group] = SPLITS[index]
        done += groups[group]
    wanted = [s for s, r in zip(SPLITS, ratios, strict=True) if r > 0]
    if len(order) >= len(wanted):
        for split in wanted:
            if split in result.values():
                continue
            members = {s: [g for g in order if result[g] is s] for s in SPLITS}
            donor = max(
                (s for s in SPLITS if len(members[s]) > 1), key=lambda s: len(members[s]), default=None
            )
            if donor is None:
                break
            # The donor's smallest group, last in hash order among equals: deterministic, and cheap
            # for the donor's share.
            moved = min(reversed(members[donor]), key=lambda g: groups[g])
            result[moved] = split
    return result


def group_key(audio: str, speaker: str | None) -> str:
    return f"speaker:{speaker}" if speaker is not None else f"clip:{audio}"
