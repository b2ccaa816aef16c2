"""How hits are printed: the pure formatting shared by the CLI and the terminal UI."""

from __future__ import annotations

from xsearch.present import LANG_STYLE, MATCHED_SHOWN, also_in, explain_lines
from xsearch.types import Translation


def test_also_in_lists_languages_best_first_styled() -> None:
    versions = (Translation(1, "de", "/a/de.txt", score=0.9), Translation(2, "", "/a/x.txt", score=None),
                Translation(3, "ja", "/a/ja.txt", score=0.41234))
    line = also_in(versions)
    assert line.plain == "also in: de und ja"
    styled = {line.plain[span.start : span.end] for span in line.spans if span.style == LANG_STYLE}
    assert styled == {"de", "und", "ja"}
    assert also_in(versions, scores=True).plain == "also in: de 0.900 und ja 0.412"


def test_explain_lines_name_every_stage_then_the_rank_score() -> None:
    explain = {"rank_score": 0.4492, "dense": 0.3586, "maxsim": 0.4797, "cosine": 0.3586,
               "translation_of_best": 0.5168,
               "matched": [{"query": "Licht", "passage": "light", "span": [3, 8], "cosine": 0.6839},
                           {"query": "Energie", "passage": "energy\n", "span": [9, 15], "cosine": 0.6475}]}
    why, matched = explain_lines(explain)
    assert why == "why: dense 0.359 · maxsim 0.480 · cosine 0.359 · feedback 0.517 → rank 0.449"
    assert matched == "matched: Licht→light 0.68, Energie→energy 0.65"
    assert explain_lines({"rank_score": 3.7281, "lexical": 3.7281}) == ["why: lexical 3.728 → rank 3.728"]


def test_explain_lines_cut_long_alignments() -> None:
    words = [{"query": f"q{n}", "passage": f"p{n}", "span": [0, 1], "cosine": 0.5} for n in range(MATCHED_SHOWN + 3)]
    _, matched = explain_lines({"rank_score": 0.1, "matched": words})
    assert matched.count("→") == MATCHED_SHOWN and matched.endswith(", and 3 more")
