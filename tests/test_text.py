"""The shared character table: scripts, unspaced scripts and word characters."""

from __future__ import annotations

import re

import pytest

from xsearch.text import (
    CJK,
    KANA,
    SCRIPT_RANGES,
    UNSPACED,
    in_spaced_word,
    is_cjk,
    is_content_char,
    is_unspaced,
    is_word_char,
    script_class,
    script_of,
)


def test_script_ranges_are_sorted_and_disjoint() -> None:
    assert all(first <= last for first, last, _ in SCRIPT_RANGES)
    assert all(a[1] < b[0] for a, b in zip(SCRIPT_RANGES, SCRIPT_RANGES[1:]))
    names = {script for _, _, script in SCRIPT_RANGES}
    assert KANA <= CJK <= UNSPACED <= names


@pytest.mark.parametrize("char,script", [
    ("a", "latin"), ("é", "latin"), ("Ａ", "latin"), ("Ω", "greek"), ("ἀ", "greek"), ("Ж", "cyrillic"),
    ("ա", "armenian"), ("א", "hebrew"), ("ب", "arabic"), ("ﻻ", "arabic"), ("क", "devanagari"),
    ("ক", "bengali"), ("த", "tamil"), ("ก", "thai"), ("ລ", "lao"), ("ក", "khmer"), ("က", "myanmar"),
    ("ༀ", "tibetan"), ("ა", "georgian"), ("አ", "ethiopic"), ("あ", "hiragana"), ("カ", "katakana"),
    ("ｶ", "katakana"), ("ㇰ", "katakana"), ("ㄅ", "bopomofo"), ("한", "hangul"), ("ᄀ", "hangul"),
    ("中", "han"), ("々", "han"), ("𠀋", "han"), ("1", "other"), (" ", "other"), ("-", "other"),
    ("😀", "other"),
])
def test_script_of(char: str, script: str) -> None:
    assert script_of(char) == script


def test_cjk_and_unspaced_scripts() -> None:
    assert all(is_cjk(char) for char in "中あカ한ㄅ")
    assert not any(is_cjk(char) for char in ("a", "ก", "1", ""))
    assert all(is_unspaced(char) for char in "ภあ中한ລក")
    assert not any(is_unspaced(char) for char in "aЖبक1 ")


def test_word_characters() -> None:
    assert is_word_char("_") and not is_content_char("_")
    assert all(is_content_char(char) for char in "aß٣中\u0301\u093f")
    assert not any(is_word_char(char) for char in "-. ,。")


def test_in_spaced_word() -> None:
    assert in_spaced_word("a") and in_spaced_word("٣")
    assert in_spaced_word("\u0301") and in_spaced_word("\u093f")  # combining acute; Devanagari vowel sign i
    assert not in_spaced_word("\u0e31")  # a Thai mark: Thai is written without spaces
    assert not any(in_spaced_word(char) for char in "中あ-_ ")


def test_script_class() -> None:
    thai_lao = re.compile(script_class({"thai", "lao"}) + "+")
    assert thai_lao.fullmatch("ภาษาไทยພາສາລາວ")
    assert not thai_lao.search("abc 中文")
    for first, last, script in SCRIPT_RANGES:
        pattern = re.compile(script_class({script}))
        assert pattern.fullmatch(chr(first)) and pattern.fullmatch(chr(last))
