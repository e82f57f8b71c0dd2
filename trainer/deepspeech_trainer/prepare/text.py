"""Transcript normalisation and the character policy. Pure functions.

Order matters and is fixed: Unicode compatibility form (NFKC: ligatures, full-width forms, composed
accents become one spelling), lower-case, invisible characters to spaces, whitespace collapsed; then
the policy decides what happens to characters outside the alphabet.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# The alphabet of the English release checkpoints: space, a-z, apostrophe.
ENGLISH_ALPHABET: tuple[str, ...] = (" ", *"abcdefghijklmnopqrstuvwxyz", "'")

# `map` policy: typographic variants to their plain form. Anything else outside the alphabet is
# accent-folded when that lands inside the alphabet, dropped when it is punctuation, and otherwise
# makes the row a reported drop (digits, other scripts: spelling them out is language-specific).
DEFAULT_MAP: Mapping[str, str] = {
    "\u2019": "'",  # right single quotation mark, the usual apostrophe of word processors
    "\u2018": "'",
    "\u02bc": "'",
    "`": "'",
    "\u00b4": "'",
    "-": " ",  # "well-known" reads as two words
    "\u2010": " ",
    "\u2011": " ",
    "\u2013": " ",
    "\u2014": " ",
    "/": " ",
    "_": " ",
    "&": " and ",
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
}


class Policy(StrEnum):
    KEEP = "keep"  # keep every character; the alphabet grows to cover them
    MAP = "map"  # map/fold/strip to the alphabet; rows still outside it are dropped
    DROP = "drop"  # drop rows with any character outside the alphabet


def normalise(text: str, lowercase: bool = True) -> str:
    """The canonical spelling of a transcript (before the character policy)."""
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.lower()
    # Control/format characters (BOM, zero-width space, tabs, newlines) would be invisible labels.
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _fold(char: str, alphabet: frozenset[str]) -> str | None:
    """é → e when the base letter is in the alphabet (NFKD, combining marks removed)."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and all(c in alphabet for c in base):
        return base
    return None


def map_to_alphabet(text: str, alphabet: frozenset[str], table: Mapping[str, str] = DEFAULT_MAP) -> str:
    """Apply the `map` policy; characters it cannot place are left in (the caller drops the row)."""
    out: list[str] = []
    for char in text:
        if char in alphabet:
            out.append(char)
        elif char in table and all(c in alphabet for c in table[char]):
            out.append(table[char])
        elif (folded := _fold(char, alphabet)) is not None:
            out.append(folded)
        elif unicodedata.category(char)[0] == "P" or unicodedata.category(char) in ("Sk", "Sm", "So"):
            # Punctuation and symbols carry no sound: removing "," "." "?" "«" is what every importer does.
            out.append(" " if char in "()[]{}<>|\\" else "")
        else:
            out.append(char)
    return " ".join("".join(out).split())


@dataclass(frozen=True)
class Outcome:
    """A normalised transcript, or why the row is dropped (reason code + detail)."""

    text: str | None
    reason: str = ""
    detail: str = ""


def apply_policy(
    raw: str,
    alphabet: frozenset[str] | None,
    policy: Policy,
    lowercase: bool = True,
    table: Mapping[str, str] = DEFAULT_MAP,
) -> Outcome:
    """Normalise `raw` and apply the policy against `alphabet` (None: every character is allowed)."""
    text = normalise(raw, lowercase)
    if not text:
        return Outcome(None, "empty_transcript", f"transcript {raw!r} is empty after normalisation")
    if alphabet is None or policy is Policy.KEEP:
        return Outcome(text)
    if policy is Policy.MAP:
        text = map_to_alphabet(text, alphabet, table)
        if not text:
            return Outcome(
                None, "empty_transcript", f"transcript {raw!r} is empty after mapping to the alphabet"
            )
    missing = sorted(set(text) - alphabet)
    if missing:
        return Outcome(
            None,
            "outside_alphabet",
            f"characters not in the alphabet: {' '.join(repr(c) for c in missing)} in {text!r}",
        )
    return Outcome(text)


def extend_alphabet(labels: list[str], transcripts: list[str]) -> tuple[list[str], list[str]]:
    """`keep` with a given alphabet: its labels in their order, then new characters sorted (indices stay)."""
    known = set(labels)
    extra = sorted({c for t in transcripts for c in t} - known)
    return [*labels, *extra], extra
