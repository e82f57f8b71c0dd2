from __future__ import annotations

from deepspeech_trainer.prepare.text import (
    ENGLISH_ALPHABET,
    Policy,
    apply_policy,
    extend_alphabet,
    map_to_alphabet,
    normalise,
)

EN = frozenset(ENGLISH_ALPHABET)


def test_normalise_case_unicode_forms_and_invisible_characters():
    assert normalise("\ufeffHello\u200b  World\t\n") == "hello world"
    assert normalise("ﬁne ＡＢＣ") == "fine abc"  # ligature and full-width forms (NFKC)
    assert normalise("Cafe\u0301") == "café"  # composed: one label, not two
    assert normalise("MiXeD", lowercase=False) == "MiXeD"


def test_keep_accepts_everything_but_empty():
    assert apply_policy("Ça va? 42", EN, Policy.KEEP).text == "ça va? 42"
    out = apply_policy(" \u200b ", EN, Policy.KEEP)
    assert out.text is None and out.reason == "empty_transcript"


def test_map_folds_accents_typography_and_punctuation():
    assert map_to_alphabet("don’t—stop, «naïve» café!", EN) == "don't stop naive cafe"
    assert apply_policy("Straße & Co.", EN, Policy.MAP).text == "strasse and co"


def test_map_drops_what_it_cannot_place_with_the_characters_named():
    out = apply_policy("Room 101", EN, Policy.MAP)
    assert out.text is None and out.reason == "outside_alphabet"
    assert "'0' '1'" in out.detail and "room 101" in out.detail


def test_map_that_leaves_nothing_is_an_empty_drop():
    assert apply_policy("?!…", EN, Policy.MAP).reason == "empty_transcript"


def test_drop_rejects_any_outside_character():
    assert apply_policy("Hello there", EN, Policy.DROP).text == "hello there"
    out = apply_policy("Hello, there", EN, Policy.DROP)
    assert out.text is None and out.reason == "outside_alphabet" and "','" in out.detail


def test_no_alphabet_means_keep():
    assert apply_policy("A,b", None, Policy.DROP).text == "a,b"


def test_extend_alphabet_keeps_existing_indices():
    labels, added = extend_alphabet([" ", "b", "a"], ["abc", "é a"])
    assert labels == [" ", "b", "a", "c", "é"] and added == ["c", "é"]
