"""How hits are printed: the pure formatting shared by the CLI and the terminal UI."""

from __future__ import annotations

import io

from rich.console import Console
from rich.style import Style

from xsearch.present import INDENT, LANG_STYLE, MATCHED_SHOWN, also_in, explain_lines, file_link, hit_block, hit_line
from xsearch.types import Hit, Translation


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


def _hit(tmp_path, repeat: int = 4, **fields) -> Hit:
    doc = tmp_path / "notes.txt"
    doc.write_text("Heading\n\nfirst line\nThe passage about light and sugar in green leaves.\n", encoding="utf-8")
    text = " ".join(["The passage about light and sugar in green leaves."] * repeat)
    return Hit(chunk_id=1, score=0.8123, text=text, path=str(doc), lang="en", start=0, end=len(text),
               title="A title that is long enough to wrap at forty columns", highlights=((18, 23),), **fields)


def test_wrapped_lines_stay_indented_under_their_hit(tmp_path) -> None:
    out = Console(width=40, file=io.StringIO(), color_system=None)
    hit = _hit(tmp_path, translations=(Translation(2, "de", "/a/de.txt", score=0.7),))
    for row in hit_block(3, hit):
        out.print(row)
    lines = out.file.getvalue().splitlines()
    assert lines[0].startswith(" 3. 0.812 [en]") and len(lines) > 4
    assert all(line.startswith(" " * INDENT) and not line[INDENT].isspace() for line in lines[1:]), lines
    assert all(len(line) <= 40 and line == line.rstrip() for line in lines), lines
    words = " ".join(line.strip() for line in lines)
    assert "light and sugar in green leaves" in words and "also in: de" in words


def test_a_piped_hit_is_one_line_per_row(tmp_path) -> None:
    out = Console(width=40, file=io.StringIO(), color_system=None, soft_wrap=True)
    for row in hit_block(1, _hit(tmp_path), wrap=False):
        out.print(row)
    lines = out.file.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith(" " * INDENT + "The passage") and len(lines[1]) > 40


def test_compact_line_and_hyperlink_to_the_passage(tmp_path) -> None:
    hit = _hit(tmp_path, repeat=1)
    line = hit_line(1, hit, link=True)
    assert "\n" not in line.plain and line.plain.startswith(" 1. 0.812 [en] ") and "light and sugar" in line.plain
    links = {span.style.link for span in line.spans if isinstance(span.style, Style) and span.style.link}
    assert links == {file_link(hit.path, hit.text)}
    link = links.pop()
    assert link.startswith("file://") and link.endswith(f"{tmp_path}/notes.txt#4")  # the passage's line
    assert not [span for span in hit_line(1, hit).spans if isinstance(span.style, Style) and span.style.link]


def test_a_file_without_lines_is_linked_whole(tmp_path) -> None:
    link = file_link(str(tmp_path / "report.pdf"), "some passage")
    assert link.startswith("file://") and link.endswith(f"{tmp_path}/report.pdf")
