"""Turn a discovered file into text: one Document per file, or per record.

Each format has a small reader that gets the file's bytes and returns
Documents; the table of readers by suffix, at the end of this module, is
what :data:`SUPPORTED_SUFFIXES` lists. Failures raise
:class:`~xsearch.errors.ExtractionError` with a one-line reason;
:func:`extract_batch` turns those into :class:`~xsearch.types.Skipped`.
Nothing here keeps state between calls.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import os
import re
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from xsearch.errors import ExtractionError
from xsearch.types import Document, Skipped, SourceFile

__all__ = [
    "MAX_DOCX_PARAGRAPHS",
    "MAX_EXTRACT_CHARS",
    "MAX_EXTRACT_SECONDS",
    "MAX_JSON_DEPTH",
    "MAX_METADATA_BYTES",
    "SNIFF_BYTES",
    "SUPPORTED_SUFFIXES",
    "csv_to_text",
    "decode_text",
    "extract",
    "check_metadata",
    "extract_batch",
    "html_to_text",
    "json_value",
    "looks_like_text",
    "markdown_to_text",
    "rst_to_text",
]

LOGGER = logging.getLogger(__name__)


def extract(source: SourceFile) -> list[Document]:
    """The documents of one file: usually one, one per record for JSON Lines and record-style JSON.

    The format follows the file's suffix; a file with another suffix is read as
    plain text when it looks like text. Texts are decoded (see
    :func:`decode_text`), NFC-normalised, with ``\\n`` line ends. Records of a
    JSON Lines file that cannot be used are logged and left out.

    Raises:
        ExtractionError: the file cannot be read, decoded or parsed, or has no text.
    """
    documents, problems = _extract(source)
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        LOGGER.warning("%s: skipped %d record(s): %s", source.path, len(problems), shown)
    return documents


def extract_batch(sources: Iterable[SourceFile]) -> tuple[list[Document], list[Skipped]]:
    """:func:`extract` over many files: all their documents, and the files that failed with why."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for source in sources:
        try:
            documents.extend(extract(source))
        except ExtractionError as exc:
            skipped.append(Skipped(source.path, str(exc)))
    return documents, skipped


def _extract(source: SourceFile) -> tuple[list[Document], list[str]]:
    try:
        with open(source.path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        raise ExtractionError(f"unreadable: {reason.lower()}") from exc
    if not data:
        raise ExtractionError("empty file")
    suffix = os.path.splitext(source.path)[1].lower()
    reader = _READERS.get(suffix)
    if reader is None:
        if not looks_like_text(data[:SNIFF_BYTES]):
            raise ExtractionError("binary file")
        reader = _read_plain
    documents, problems = reader(source.path, data)
    if not documents:
        raise ExtractionError("no text")
    _Budget().spend(sum(len(doc.text) for doc in documents))
    return documents, problems


MAX_EXTRACT_CHARS = 20_000_000
"""Most characters of text one file may give; a file with more is skipped."""
MAX_EXTRACT_SECONDS = 120.0
"""Longest a PDF or DOCX may take to read, checked between pages and paragraphs; a slower one is skipped."""


class _Budget:
    """What reading one file may cost: :data:`MAX_EXTRACT_CHARS` of text, :data:`MAX_EXTRACT_SECONDS`."""

    def __init__(self) -> None:
        self.chars = 0
        self.deadline = time.monotonic() + MAX_EXTRACT_SECONDS

    def spend(self, chars: int) -> None:
        """Count ``chars`` more characters read; raise :class:`ExtractionError` when over budget."""
        self.chars += chars
        if self.chars > MAX_EXTRACT_CHARS:
            raise ExtractionError(f"over the extraction budget: more than {MAX_EXTRACT_CHARS:,} characters of text")
        if time.monotonic() > self.deadline:
            raise ExtractionError(f"over the extraction budget: reading took more than {MAX_EXTRACT_SECONDS:g} s")


_Reader = Callable[[str, bytes], tuple[list[Document], list[str]]]
"""(path, file bytes) -> (documents, problems with single records)."""


def _single(path: str, text: str, title: str = "") -> tuple[list[Document], list[str]]:
    text = _clean_text(text)
    if not any(ch.isprintable() and not ch.isspace() for ch in text):  # blank, or only invisible marks
        raise ExtractionError("no text")
    return [Document(path=path, text=text, title=_clean_title(title))], []


# --- text decoding -----------------------------------------------------------

SNIFF_BYTES = 8192
"""How much of a file of unknown type is read to tell text from binary."""

_BOMS = (
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_ASCII = bytes(range(128))
_MAX_CHAOS = 0.1
"""charset-normalizer's mess ratio above which a guessed encoding is refused."""
_MIN_COHERENCE = 0.1
"""charset-normalizer's language coherence below which a guess needs a named language."""


def decode_text(data: bytes) -> str:
    """Decode the bytes of a text file and normalise the result (see :func:`_clean_text`).

    UTF-8 (BOM stripped) and BOM-marked UTF-16/32 are read as such. Bytes that
    are not UTF-8 but hold more valid multi-byte UTF-8 sequences than stray
    high bytes are corrupt UTF-8. Anything else (cp1252, Shift-JIS, ...) goes
    to charset-normalizer, whose guess is taken only when it is confident.

    Raises:
        ExtractionError: malformed UTF-8/16/32, or an encoding that cannot be told.
    """
    for bom, encoding, label in _BOMS:
        if data.startswith(bom):
            try:
                return _clean_text(data[len(bom) :].decode(encoding))
            except UnicodeDecodeError as exc:
                raise ExtractionError(f"malformed {label} at byte {exc.start + len(bom)}") from exc
    try:
        return _clean_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    n_valid = 0
    valid_bytes = 0
    for match in _UTF8_MULTIBYTE.finditer(data):
        n_valid += 1
        valid_bytes += len(match.group())
    stray_bytes = len(data.translate(None, _ASCII)) - valid_bytes
    if n_valid and n_valid >= stray_bytes:
        raise ExtractionError(f"malformed UTF-8 at byte {first_bad} (mostly UTF-8 with invalid bytes)")
    encoding = _guess_encoding(data)
    if encoding is None:
        raise ExtractionError("unknown text encoding: not UTF-8, and no confident guess")
    return _clean_text(data.decode(encoding, errors="replace"))


def looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file read as text: UTF-8 without NUL, or UTF-16/32 with a BOM.

    ``head`` may end in the middle of a character.
    """
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding = "utf-32"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in head:
        return False
    else:
        encoding = "utf-8"
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _guess_encoding(data: bytes) -> str | None:
    """charset-normalizer's best guess, if it is clean and recognises a language."""
    from charset_normalizer import from_bytes

    # without a BOM, UTF-16/32 guesses are noise for our purposes
    matches = [match for match in from_bytes(data) if not match.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    best = matches[0]
    if best.chaos > _MAX_CHAOS or (best.coherence < _MIN_COHERENCE and best.language == "Unknown"):
        return None
    for match in matches:  # among equally good guesses, the far more common cp1252
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return match.encoding
    return best.encoding


def _clean_text(text: str) -> str:
    """``\\n`` line ends, no NUL characters, NFC."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    return unicodedata.normalize("NFC", text.replace("\x00", ""))


def _clean_title(title: str) -> str:
    return " ".join(_clean_text(title).split())


def _tidy(text: str) -> str:
    """Strip trailing spaces from lines and keep at most one blank line in a row."""
    text = re.sub(r"[^\S\n]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _reason(exc: BaseException) -> str:
    """A one-line reason from a third-party exception."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --- plain text, Markdown, reStructuredText ----------------------------------


def _read_plain(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    text = decode_text(data)
    return _single(path, text, plain_title(text))


PLAIN_TITLE_CHARS = 120
"""Longest first line of a plain-text file that may be its title."""
_MARKDOWN_STYLE_TITLE = re.compile(r"#{1,6}[ \t]+(\S.*?)[ \t#]*")


def plain_title(text: str) -> str:
    """The title of a plain-text file: its first line when that looks like a heading, either
    Markdown-style (``# Title``) or short (at most :data:`PLAIN_TITLE_CHARS` characters), not
    ending a sentence (no final ``.``, ``!``, ``?``, ``:``, ``;`` or ``,``, in any script) and
    followed by a blank line; else no title."""
    lines = text.lstrip("\ufeff\n\r").splitlines()
    if not lines:
        return ""
    first = lines[0].strip()
    heading = _MARKDOWN_STYLE_TITLE.fullmatch(first)
    if heading:
        return heading.group(1)
    if not first or len(first) > PLAIN_TITLE_CHARS or first[-1] in ".!?:;,。！？：；，।۔" or len(lines) < 2:
        return ""
    return first if not lines[1].strip() else ""


_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
_THEMATIC_BREAK = re.compile(r"^\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$")
_LINK_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_BLOCKQUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_BULLET = re.compile(r"^(\s*)[*+](\s+)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_SPAN = 500
"""Longest emphasis, link text or tag that Markdown markup is removed from: a bound that keeps
the inline patterns linear in the line's length (longer spans keep their markup characters)."""
_MD_INLINE = (
    (re.compile(r"<!--.*?-->"), ""),
    (re.compile(r"!\[[^\]]{0,%d}\](?:\([^)]{0,%d}\)|\[[^\]]{0,%d}\])" % (_SPAN, _SPAN, _SPAN)), ""),
    (  # [text](url "title"), urls with one level of parentheses
        re.compile(r"\[([^\]]{0,%d})\]\((?:" % _SPAN + r"[^()\s]|\([^()\s]*\))*(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"),
        r"\1",
    ),
    (re.compile(r"\[([^\]]{1,%d})\]\[[^\]]{0,%d}\]" % (_SPAN, _SPAN)), r"\1"),
    (re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>"), r"\1"),
    (re.compile(r"</?[A-Za-z][^>\n]{0,%d}>" % _SPAN), ""),
    (re.compile(r"(?<!\\)(\*\*|__)(?=\S)(.{1,%d}?)(?<=\S)(?<!\\)\1" % _SPAN), r"\2"),
    (re.compile(r"(?<![\w*\\])\*(?=\S)(.{1,%d}?)(?<=[^\s\\])\*(?![\w*])" % _SPAN), r"\1"),
    (re.compile(r"(?<![\w\\])_(?=\S)(.{1,%d}?)(?<=[^\s\\])_(?!\w)" % _SPAN), r"\1"),
    (re.compile(r"~~(?=\S)(.{1,%d}?)(?<=\S)~~" % _SPAN), r"\1"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])"), r"\1"),
)
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)


def _read_markdown(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    text, title = markdown_to_text(decode_text(data))
    return _single(path, text, title)


def markdown_to_text(source: str) -> tuple[str, str]:
    """The readable text of Markdown and its title (front matter ``title:``, else the first heading).

    Drops heading hashes and underlines, emphasis markers, link targets (keeping
    link text), images, code fence lines (keeping the code), HTML tags and
    comments, reference definitions and table rules. Bullets become ``-``.
    """
    title = ""
    front = _FRONT_MATTER.match(source)
    if front:
        found = _FRONT_MATTER_TITLE.search(front.group(1))
        title = found.group(1).strip("\"'") if found else ""
        source = source[front.end() :]
    source = re.sub(r"<!--.*?-->", "", source, flags=re.DOTALL)
    out: list[str] = []
    fence = ""
    previous_is_text = False
    for line in source.split("\n"):
        opener = _FENCE.match(line)
        if fence:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = ""
                out.append("")
            else:
                out.append(line)
            continue
        if opener:
            fence = opener.group(1)
            previous_is_text = False
            continue
        if _SETEXT_UNDERLINE.match(line) and previous_is_text:
            title = title or out[-1].strip()
            out.append("")
            previous_is_text = False
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            text = _markdown_inline(heading.group(1) or "")
            title = title or text
            out.extend(["", text, ""])
            previous_is_text = False
            continue
        if _TABLE_RULE.match(line) and "|" in line:
            continue
        if _THEMATIC_BREAK.match(line) or _LINK_DEFINITION.match(line):
            out.append("")
            previous_is_text = False
            continue
        line = _BULLET.sub(r"\1-\2", _BLOCKQUOTE.sub("", line))
        if line.lstrip().startswith("|"):
            line = " | ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        line = _markdown_inline(line)
        out.append(line)
        previous_is_text = bool(line.strip()) and not line.lstrip().startswith("-")
    return _tidy("\n".join(out)), title


def _markdown_inline(line: str) -> str:
    parts = []
    position = 0
    for code in _CODE_SPAN.finditer(line):
        parts.append(_markdown_markup(line[position : code.start()]))
        parts.append(code.group(2).strip())
        position = code.end()
    parts.append(_markdown_markup(line[position:]))
    return "".join(parts)


def _markdown_markup(text: str) -> str:
    for pattern, replacement in _MD_INLINE:
        text = pattern.sub(replacement, text)
    return text


_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.(?:\s+([\w-]+)::\s*(.*))?")
_RST_OPTION = re.compile(r"^\s+:[\w -]+:")
_RST_ADMONITIONS = frozenset(
    """note warning tip important caution danger attention hint error admonition
    seealso topic sidebar rubric""".split()
)
_RST_INLINE = (
    (re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?"), r"\1"),
    (re.compile(r":[\w:+-]+:`([^`<]+?)\s*<[^`>]+>`"), r"\1"),
    (re.compile(r":[\w:+-]+:`([^`]+)`"), r"\1"),
    (re.compile(r"``(.+?)``"), r"\1"),
    (re.compile(r"`([^`]+)`__?"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"\1"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"\s*\[(?:#\w*|\*|\d+)\]_"), ""),
    (re.compile(r"\|([^|\s][^|]*)\|(?:__?)?"), r"\1"),
    (re.compile(r"\s*::$"), ":"),
)


def _read_rst(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    text, title = rst_to_text(decode_text(data))
    return _single(path, text, title)


def rst_to_text(source: str) -> tuple[str, str]:
    """A light cleanup of reStructuredText, and its title (the first underlined line).

    Drops section adornments, comments and directive lines with their options
    (an admonition keeps its text), and inline markup (roles, links, literals,
    emphasis, footnote references).
    """
    lines = source.split("\n")
    title = ""
    out: list[str] = []
    in_directive = False
    for index, line in enumerate(lines):
        if _RST_ADORNMENT.match(line):
            previous = lines[index - 1].strip() if index else ""
            underlines = previous and not _RST_ADORNMENT.match(previous) and len(line.strip()) >= len(previous)
            if underlines and not title:
                title = _rst_inline(previous)
            out.append("")
            continue
        directive = _RST_DIRECTIVE.match(line)
        if directive and line.lstrip().startswith(".."):
            name, argument = directive.group(1), directive.group(2)
            if name in _RST_ADMONITIONS and argument:
                out.append(_rst_inline(argument))
            in_directive = True
            continue
        if in_directive and _RST_OPTION.match(line):
            continue
        in_directive = False
        if line.strip() == "::":
            out.append("")
            continue
        out.append(_rst_inline(line))
    return _tidy("\n".join(out)), title


def _rst_inline(line: str) -> str:
    for pattern, replacement in _RST_INLINE:
        line = pattern.sub(replacement, line)
    return line


# --- HTML --------------------------------------------------------------------

_HTML_DROPPED = [
    "script", "style", "noscript", "nav", "header", "footer", "template",
    "svg", "iframe", "object", "embed", "canvas",
]
_HTML_LINE_BLOCKS = frozenset({"li", "tr", "dt", "dd", "option", "caption"})
_HTML_PARAGRAPH_BLOCKS = frozenset(
    """p div section article main aside h1 h2 h3 h4 h5 h6 blockquote pre table thead tbody tfoot
    ul ol dl figure figcaption form fieldset legend address details summary hr body""".split()
)
_HTML_CELLS = frozenset({"td", "th"})


HTML_MAX_DEPTH = 5_000
"""Elements open inside each other beyond which a page is skipped: an HTML parser checks the
stack of open elements at each tag, so its time grows with the square of the depth (50,000
nested ``<div>`` took 11.6 s). Browsers stop nesting at a few hundred."""
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>")
_HTML_UNNESTED = frozenset(
    """area base br col embed hr img input link meta param source track wbr
    p li dt dd tr td th option optgroup thead tbody tfoot colgroup rb rt rtc rp html head body""".split()
)
"""Void elements and those whose end tag may be left out: they do not count towards the depth."""


def _read_html(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    source = decode_text(data)
    if _html_depth(source) > HTML_MAX_DEPTH:
        raise ExtractionError(f"HTML nested deeper than {HTML_MAX_DEPTH:,} elements")
    text, title = html_to_text(source)
    return _single(path, text, title)


def _html_depth(source: str) -> int:
    """How deeply the page's elements nest, counted from its tags in one pass (an upper bound:
    an element left open counts as open)."""
    depth = deepest = 0
    for match in _HTML_TAG.finditer(source):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _HTML_UNNESTED:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def html_to_text(source: str) -> tuple[str, str]:
    """The visible text of an HTML page and its title (``<title>``, else the first ``<h1>``).

    Scripts, styles, navigation, headers, footers and templates are dropped;
    block elements become line breaks (a blank line around paragraphs,
    headings and tables; a single one around list items and table rows);
    whitespace collapses outside ``<pre>``.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(source)
    title = ""
    for selector in ("title", "h1"):
        node = tree.css_first(selector)
        if node is not None:
            title = " ".join(node.text(deep=True).split())
            if title:
                break
    tree.strip_tags(_HTML_DROPPED)
    root = tree.body or tree.root
    return (_tidy(_html_blocks(root)) if root is not None else ""), title


def _html_blocks(root: Any) -> str:
    """Depth-first text of ``root`` with line breaks for block elements (iterative: pages nest deeply)."""
    parts: list[str | int] = []  # text, or a break of 1 or 2 newlines
    in_pre = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        tag = node.tag
        if leaving:
            in_pre -= tag == "pre"
            _add_break(parts, tag)
        elif tag == "-text":
            text = node.text_content or ""
            # inside <pre> line ends are kept apart from block breaks until the end
            parts.append(text.replace("\n", _PRE_NEWLINE) if in_pre else re.sub(r"\s+", " ", text))
        elif tag == "br":
            _add_break(parts, "br")
        elif node.is_element_node:
            in_pre += tag == "pre"
            if tag not in _HTML_CELLS:  # a cell is set off from the next one as it closes
                _add_break(parts, tag)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(node.iter(include_text=True))))
    text = "".join("\n" * part if isinstance(part, int) else part for part in parts)
    return re.sub(r"[^\S\n]*\n[^\S\n]*", "\n", text).replace(_PRE_NEWLINE, "\n")


_PRE_NEWLINE = "\x00"
"""Stands for a line end inside ``<pre>`` while whitespace around breaks is trimmed (text has no NUL)."""


def _add_break(parts: list[str | int], tag: str) -> None:
    """Append the break a tag makes; adjacent breaks merge into the larger."""
    if tag in _HTML_CELLS:
        parts.append(" ")
        return
    size = 2 if tag in _HTML_PARAGRAPH_BLOCKS else 1 if tag in _HTML_LINE_BLOCKS or tag == "br" else 0
    if not size:
        return
    if parts and isinstance(parts[-1], int) and tag != "br":
        parts[-1] = max(parts[-1], size)
    else:
        parts.append(size)


# --- PDF, DOCX ---------------------------------------------------------------


def _read_pdf(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    from pypdf import PdfReader

    # pypdf raises many exception types on damaged files; all mean "unreadable".
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("unreadable PDF: encrypted")
        pages = list(reader.pages)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"unreadable PDF: {_reason(exc)}") from exc
    texts = []
    failures = []
    budget = _Budget()
    for page in pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:  # one damaged page should not lose the others
            failures.append(_reason(exc))
            continue
        budget.spend(len(texts[-1]))
    if failures and len(failures) == len(pages):
        raise ExtractionError(f"unreadable PDF: {failures[0]}")
    text = "\n\n".join(page_text.strip() for page_text in texts if page_text.strip())
    if not text:
        raise ExtractionError("no extractable text (a scanned or image-only PDF?)")
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:  # a damaged info dictionary only costs the title
        title = ""
    return _single(path, text, str(title))


MAX_DOCX_PARAGRAPHS = 200_000
"""Most paragraphs (empty ones included) a DOCX may hold; one with more is skipped unread."""
MAX_DOCX_XML_BYTES = 256 * 1024 * 1024
"""Largest uncompressed body (``word/document.xml``) a DOCX may have."""


def _read_docx(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    import docx
    from docx.table import Table

    _check_docx_size(data)
    budget = _Budget()
    # python-docx surfaces zip, XML and key errors from damaged files.
    try:
        document = docx.Document(io.BytesIO(data))
        title = document.core_properties.title or ""
        style_names: dict[str | None, str] = {}  # by style id: looking a style up is slow
        blocks = []
        for item in document.iter_inner_content():
            text = _docx_table(item) if isinstance(item, Table) else item.text.strip()
            budget.spend(len(text))
            if not text:
                continue
            if not title and not isinstance(item, Table):
                style_id = item._p.style
                if style_id not in style_names:
                    style_names[style_id] = item.style.name if item.style is not None else ""
                style = style_names[style_id]
                if style == "Title" or style.startswith("Heading"):
                    title = text
            blocks.append(text)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"unreadable DOCX: {_reason(exc)}") from exc
    return _single(path, "\n\n".join(blocks), title)



def _check_docx_size(data: bytes) -> None:
    """Skip a DOCX whose body is too large to parse: checked on the zip entry before python-docx reads it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML_BYTES:
                raise ExtractionError(f"DOCX body over {MAX_DOCX_XML_BYTES // 2**20} MB uncompressed")
            body = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError):
        return  # python-docx gives the reason
    paragraphs = sum(body.count(tag) for tag in (b"<w:p>", b"<w:p ", b"<w:p/>"))
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise ExtractionError(f"DOCX with {paragraphs:,} paragraphs, more than {MAX_DOCX_PARAGRAPHS:,}")


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = []
        previous = None
        for cell in row.cells:
            if previous is not None and cell._tc is previous._tc:
                continue  # a merged cell is repeated once per grid column
            previous = cell
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --- CSV, JSON, JSON Lines ----------------------------------------------------

_CSV_SAMPLE = 64 * 1024


def _read_csv(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    text = decode_text(data)
    tsv = path.lower().endswith(".tsv")
    return _single(path, csv_to_text(text, delimiter="\t" if tsv else None))


def csv_to_text(text: str, *, delimiter: str | None = None) -> str:
    """Rows of a CSV file, one per line with a blank line between them (rows stay separate sentences).

    With a header row each line reads ``header: value; header: value`` (empty
    values left out); without one, ``value; value``. The dialect is sniffed
    unless ``delimiter`` is given; the header is taken from :class:`csv.Sniffer`
    or, when it cannot tell, from a first row of distinct, short, non-numeric cells.

    Raises:
        ExtractionError: the rows cannot be parsed.
    """
    sample = text[:_CSV_SAMPLE]
    sniffer = csv.Sniffer()
    try:
        dialect: Any = sniffer.sniff(sample, delimiters=delimiter or ",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if delimiter == "\t" else csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ExtractionError(f"malformed CSV: {_reason(exc)}") from exc
    if not rows:
        return ""
    try:
        has_header = sniffer.has_header(sample)
    except csv.Error:
        has_header = False
    header = rows[0] if (has_header or _looks_like_header(rows)) and len(rows) > 1 else None
    lines = []
    for row in rows[1:] if header else rows:
        if header:
            pairs = [(name.strip(), value.strip()) for name, value in zip(header, row)]
            fields = [f"{name}: {value}" if name else value for name, value in pairs if value]
            fields += [value.strip() for value in row[len(header) :] if value.strip()]
        else:
            fields = [value.strip() for value in row if value.strip()]
        if fields:
            lines.append("; ".join(fields))
    return "\n\n".join(lines)


def _looks_like_header(rows: list[list[str]]) -> bool:
    first = [cell.strip() for cell in rows[0]]
    if len(rows) < 2 or not all(first) or len(set(first)) != len(first):
        return False
    return all(len(cell) <= 50 and not _is_number(cell) for cell in first)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON or JSON Lines value may have; deeper ones are skipped."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata of one document, as JSON."""


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets inside strings not counted)."""
    depth = deepest = 0
    for token in _JSON_BRACKETS.findall(text):
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


_JSON_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _finite(number: str) -> float | None:
    value = float(number)
    return value if math.isfinite(value) else None


def json_value(text: str) -> Any:
    """Parse JSON ``text`` with NaN and infinities read as null (they are not JSON and no filter
    can compare them). Raises ValueError (``json.JSONDecodeError`` when malformed) with a reason."""
    if _nesting(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, parse_constant=lambda _: None, parse_float=_finite)


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` made safe to store and filter on: non-finite numbers become null.

    Raises ValueError when it cannot be stored as JSON (a lone surrogate included), nests
    deeper than :data:`MAX_JSON_DEPTH` or is larger than :data:`MAX_METADATA_BYTES`.
    """
    try:
        text = json.dumps(dict(metadata), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"metadata is not JSON: {_reason(exc)}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("metadata holds a lone surrogate, which is not valid Unicode") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
    value = json_value(text)
    return value if isinstance(value, dict) else {}


def _read_json(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    text = decode_text(data)
    try:
        value = json_value(text)
    except json.JSONDecodeError as exc:
        raise ExtractionError(f"malformed JSON: {exc.msg} at line {exc.lineno}") from exc
    except ValueError as exc:
        raise ExtractionError(f"unusable JSON: {exc}") from exc
    if isinstance(value, list) and any(_has_text(item) for item in value):
        return _records(path, [(index, f"item {index}", item) for index, item in enumerate(value)])
    title = value.get("title") if isinstance(value, dict) else None
    strings = [string.strip() for string in _json_strings(value)]
    text = "\n\n".join(string for string in strings if string)
    return _single(path, text, title if isinstance(title, str) else "")


def _has_text(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("text"), str)


def _json_strings(value: Any) -> Iterator[str]:
    """Every string value (not key) inside a JSON value, in document order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


class _Malformed(NamedTuple):
    """A JSON Lines line that did not parse."""

    reason: str


def _read_jsonl(path: str, data: bytes) -> tuple[list[Document], list[str]]:
    records: list[tuple[int, str, Any]] = []
    for index, line in enumerate(decode_text(data).split("\n")):
        if not line.strip():
            continue
        try:
            record = json_value(line)
        except json.JSONDecodeError as exc:
            record = _Malformed(f"malformed JSON ({exc.msg})")
        except ValueError as exc:
            record = _Malformed(f"unusable JSON ({exc})")
        records.append((index, f"line {index + 1}", record))
    return _records(path, records)


def _records(path: str, records: list[tuple[int, str, Any]]) -> tuple[list[Document], list[str]]:
    """One Document per record with a non-empty string ``text``.

    A string ``title`` field is the title; every other field goes into ``metadata``.

    ``records`` holds (index, where, record): the index becomes
    ``Document.record``; ``where`` names the record in problems.

    Raises:
        ExtractionError: no record is usable; the reason names the first problem.
    """
    documents = []
    problems = []
    for index, where, record in records:
        text = record.get("text") if isinstance(record, dict) else None
        if isinstance(record, _Malformed):
            problems.append(f"{where}: {record.reason}")
        elif not isinstance(text, str):
            problems.append(f'{where}: no string "text" field')
        elif not text.strip():
            problems.append(f"{where}: empty text")
        else:
            title = record.get("title")
            titled = isinstance(title, str)
            try:
                metadata = check_metadata({
                    key: value for key, value in record.items() if key != "text" and not (titled and key == "title")
                })
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            documents.append(
                Document(
                    path=path,
                    text=_clean_text(text),
                    title=_clean_title(title) if titled else "",
                    record=index,
                    metadata=metadata,
                )
            )
    if not documents:
        if not problems:
            raise ExtractionError("no records")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ExtractionError(f"no usable records: {problems[0]}{more}")
    return documents, problems


_READERS: dict[str, _Reader] = {
    ".txt": _read_plain,
    ".text": _read_plain,
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".rst": _read_rst,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_READERS)
"""Suffixes (lower case) that extraction reads by format; other files are sniffed."""
