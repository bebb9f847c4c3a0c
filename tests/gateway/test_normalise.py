"""Normalisation maps every position back as the character-by-character normalisation always has, on the
fast paths too (a few non-ASCII runs, dense non-ASCII text, characters that vanish or expand)."""

from __future__ import annotations

import random

from gateway import normalise as normalise_module
from gateway.normalise import normalise
from local import adversarial
from local.policy_reference import normalise as reference_normalise


def test_normalised_positions_map_back_as_character_by_character() -> None:
    rng = random.Random(7)
    alphabet = [
        "a",
        "4",
        " ",
        "\u200b",
        "ﬁ",
        "…",
        "½",
        "٤",
        "\uff10",
        "\u00a0",
        "é",
        "e\u0301",
        "\u2060",
        "\ufdd0",
        "Ⅻ",
        "😀",
    ]
    texts = [adversarial.generate(shape, 2000) for shape in ("unicode-digits", "zero-width-split", "mixed")]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(500)]
    texts.append("plain " * 200 + "ﬁ…" + "\u200b" * 3)  # mostly ASCII: the run-by-run path
    for text in texts:
        new, old = normalise(text), reference_normalise(text)
        assert new.text == old.text
        for position in range(len(new.text) + 1):
            assert new.original_start(position) == old.original_start(position)
            assert new.original_end(position) == old.original_end(position)


def test_a_few_distinct_characters_are_translated_one_replace_each() -> None:
    for text in (
        adversarial.generate("zero-width-split", 5000),
        "card \u200b4\u200b1ﬁ\u00a0٤\u2060 " * 50,
        "\u200b" * 100,
    ):
        few = normalise_module._translate_few(text)
        assert few is not None and few == text.translate(normalise_module._REPLACEMENTS)
        new, old = normalise(text), reference_normalise(text)
        assert new.text == old.text
        assert [new.original_start(p) for p in range(len(new.text) + 1)] == [
            old.original_start(p) for p in range(len(old.text) + 1)
        ]
        assert [new.original_end(p) for p in range(len(new.text) + 1)] == [
            old.original_end(p) for p in range(len(old.text) + 1)
        ]
    assert normalise_module._translate_few("½ " * 100) is None  # its replacement holds a non-ASCII character
    assert normalise_module._translate_few("".join(map(chr, range(0x0400, 0x0420))) * 10) is None  # too many


def test_dense_text_is_translated_by_a_list_of_every_bmp_character_as_by_the_dictionary() -> None:
    text = "".join(map(chr, range(0x80, 0x10000, 7))) + "٤\u200bﬁ"
    table = normalise_module._table(text)
    assert isinstance(table, list) and len(table) == 0x10000
    assert text.translate(table) == text.translate(normalise_module._REPLACEMENTS)
    # A character past U+FFFF is past the list's end: such a text is translated by the dictionary.
    assert normalise_module._table(text + "\U0001d7ce") is normalise_module._REPLACEMENTS
    assert normalise("\U0001d7ce٤").text == "04"
