"""The model's tokenizer, run through the ``tokenizers`` library alone.

A model loaded through transformers brings a fast tokenizer whose Rust core
(``backend_tokenizer``) does all the work the encoder asks of it: pieces, ids, character
offsets, special-token marks and truncation. :class:`Tokenizer` wraps that core with the few
calls the encoder makes, so the same object serves a model loaded through transformers and
one read back from :meth:`Tokenizer.save`'s ``tokenizer.json`` without transformers (the
core as transformers built it, which may differ from the model folder's own file).

A core holds the model's whole vocabulary (250k pieces for XLM-R) in a trie of small
allocations: building it takes about half a second, holding Python's lock throughout, and
freeing it about as long. So:

- a file is read once per process (:meth:`Tokenizer.load` keeps what it read), and at exit
  those cores are left to the operating system, which takes a process's memory back at once
  (:func:`_leave_to_the_os`);
- a tokenizer read from a file builds its core only when it first needs it. A few short texts
  (queries) are tokenized by a core over just the pieces that occur in them (a
  :class:`PieceTable`, kept beside ``tokenizer.json`` and memory-mapped): a unigram model's
  best segmentation of a word uses only pieces that are substrings of it, so the result is
  the whole vocabulary's, at a thousandth of the cost.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    import tokenizers

FILE = "tokenizer.json"
FEW_CHARS = 2000
"""Texts of at most this many characters in all are tokenized through the piece table."""
TABLE_CHARS = 20_000
"""Characters a tokenizer takes through its piece table (a millisecond for a query, ten for
2,000 characters) before it builds its whole core (half a second, then a tenth of a
millisecond a query): a process that tokenizes more than a few queries, as indexing does, is
faster with the core."""
TABLE_VERSION = 1
"""Bumped whenever what a :class:`PieceTable` keeps changes."""
MAX_SPECIAL_ID = 15
"""Ids up to this one are in every small vocabulary, in place: the special tokens the
post-processor adds by id (``<s>``, ``</s>``) must keep theirs."""

_loaded: dict[tuple[str, int, int, int], Tokenizer] = {}
"""What :meth:`Tokenizer.load` read, by file (path, size, modification time) and padding id."""
_loading = threading.Lock()


@dataclass(frozen=True)
class Encoded:
    """What the encoder reads of a ``tokenizers.Encoding``, for an encoding made through a
    :class:`PieceTable` (whose ids are the whole vocabulary's)."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    special_tokens_mask: list[int]


class Tokenizer:
    """A ``tokenizers.Tokenizer`` and the model's padding id. Safe to share between threads:
    calls that set truncation and tokenize are serialised."""

    def __init__(self, core: tokenizers.Tokenizer | None, pad_id: int, *, file: Path | None = None,
                 table: PieceTable | None = None) -> None:
        self._core = core
        self._file = file
        """Where the core is read from when it is first needed (when built lazily)."""
        self._table = table
        self._table_chars = 0
        self.pad_id = pad_id
        self._lock = threading.Lock()

    @classmethod
    def from_transformers(cls, tokenizer: Any, name: str) -> Tokenizer:
        """The core of the transformers fast tokenizer of model ``name``."""
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(f"model {name!r} has no fast tokenizer (tokenizer.json), which xsearch needs")
        return cls(tokenizer.backend_tokenizer, tokenizer.pad_token_id or 0)

    @classmethod
    def load(cls, folder: Path, pad_id: int) -> Tokenizer:
        """Read back what :meth:`save` wrote into ``folder``: once per process while the file
        stays the same, later calls share the first one's tokenizer. The core is built when
        first needed, if the file's piece table can be read (it is written here when missing)."""
        path = (folder / FILE).resolve()
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, pad_id)
        with _loading:  # a second thread asking for the same file waits for the first one's
            tokenizer = _loaded.get(key)
            if tokenizer is None:
                table = PieceTable.read(path, stat)
                tokenizer = cls(None, pad_id, file=path, table=table)
                if table is None:
                    tokenizer._ensure_core()
                    PieceTable.write(path, stat)
                if not _loaded:
                    atexit.register(_leave_to_the_os)
                _loaded[key] = tokenizer
        return tokenizer

    def _ensure_core(self) -> tokenizers.Tokenizer:
        """The whole core, read from the file on first use (call with ``_lock`` held, or before
        the tokenizer is shared)."""
        if self._core is None:
            import tokenizers

            self._core = tokenizers.Tokenizer.from_file(str(self._file))
        return self._core

    def prepare(self) -> None:
        """Build the whole core now, for a process that is about to tokenize many texts (a
        server's queries): each then takes a tenth of a millisecond, instead of a millisecond
        through the piece table until :data:`TABLE_CHARS` and half a second for one of them."""
        with self._lock:
            self._ensure_core()

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (the core, without truncation or padding) into ``folder``."""
        with self._lock:
            core = self._ensure_core()
            core.no_truncation()
            core.no_padding()
            core.save(str(folder / FILE))

    def encode(self, texts: Sequence[str], *,
               max_length: int | None = None) -> Sequence[tokenizers.Encoding | Encoded]:
        """Encodings of ``texts``; with ``max_length``, special tokens added and each cut to that
        many tokens (as transformers' ``truncation=True``), else bare and whole."""
        texts = list(texts)
        chars = sum(map(len, texts))
        with self._lock:
            if (self._core is None and self._table is not None and chars <= FEW_CHARS
                    and self._table_chars + chars <= TABLE_CHARS):
                found = self._table.encode(texts, max_length=max_length)
                if found is not None:
                    self._table_chars += chars
                    return found
            core = self._ensure_core()
            _truncate(core, max_length)
            return core.encode_batch(texts, add_special_tokens=max_length is not None)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens not counted, nothing cut."""
        return [len(encoding.ids) for encoding in self.encode(texts)]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary piece of each id."""
        if self._core is None and self._table is not None:
            return self._table.pieces(ids)
        with self._lock:
            core = self._ensure_core()
        return [core.id_to_token(i) for i in ids]


def _truncate(core: tokenizers.Tokenizer, max_length: int | None) -> None:
    if max_length is None:
        core.no_truncation()
    else:
        core.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")


class PieceTable:
    """A unigram tokenizer's vocabulary as arrays, for tokenizing a few short texts without
    building the whole vocabulary's core.

    Kept beside ``tokenizer.json`` in ``pieces-v<version>-<size>-<mtime>/``: the pieces (UTF-8,
    fixed width) in id order and sorted (with the sorted order's ids), their scores, and the
    tokenizer file with a vocabulary of its first :data:`MAX_SPECIAL_ID` + 1 pieces (its
    normalizer, pre-tokenizer, post-processor and added tokens as they are). To tokenize, the
    pre-tokenized words' substrings are looked up; a core over the pieces found (in id order,
    the lowest ids in place), the piece with the lowest score (which sets the score of unknown
    characters) and the unknown token gives each word the segmentation the whole vocabulary
    gives it, and its ids are mapped back.
    """

    def __init__(self, folder: Path) -> None:
        import numpy as np
        import tokenizers

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.by_id = np.load(folder / "by_id.npy", mmap_mode="r")
        self.sorted = np.load(folder / "sorted.npy", mmap_mode="r")
        self.order = np.load(folder / "order.npy", mmap_mode="r")
        self.scores = np.load(folder / "scores.npy", mmap_mode="r")
        self.unk_id: int = meta["unk_id"]
        self.byte_fallback: bool = meta["byte_fallback"]
        self.always: list[int] = meta["always"]
        """Ids in every small vocabulary: the lowest ones, the unknown token, the lowest score."""
        self.added: list[str] = meta["added"]
        """The added tokens' texts: a text holding one goes through the whole core."""
        self._core = tokenizers.Tokenizer.from_file(str(folder / "shell.json"))

    @classmethod
    def read(cls, path: Path, stat: os.stat_result) -> PieceTable | None:
        """The table of the tokenizer file ``path``, or None when it is missing or unreadable."""
        try:
            return cls(_table_dir(path, stat))
        except Exception:  # missing, cut short or not a tokenizer (``tokenizers`` raises plain Exception)
            return None

    @staticmethod
    def write(path: Path, stat: os.stat_result) -> None:
        """Write the table of the tokenizer file ``path`` (atomically: a temporary folder renamed),
        unless its model is not a unigram one the table can stand in for. A folder that cannot
        be written is left without one."""
        import numpy as np

        spec = json.loads(path.read_text(encoding="utf-8"))
        model, post = spec.get("model") or {}, spec.get("post_processor") or {}
        vocab = model.get("vocab")
        if model.get("type") != "Unigram" or not vocab or post.get("type") != "TemplateProcessing":
            return
        pieces = [piece for piece, _ in vocab]
        try:
            encoded = [piece.encode("utf-8") for piece in pieces]
        except UnicodeEncodeError:  # a lone surrogate: no table, the whole core serves
            return
        special_ids = [i for token in post.get("special_tokens", {}).values() for i in token.get("ids", [])]
        unk_id = model.get("unk_id")
        if (len(set(pieces)) != len(pieces) or any(not b or b.endswith(b"\0") or b"\0" in b for b in encoded)
                or unk_id is None or any(i > MAX_SPECIAL_ID for i in special_ids)):
            return
        scores = np.array([score for _, score in vocab], dtype=np.float64)
        by_id = np.array(encoded, dtype=f"S{max(map(len, encoded))}")
        order = np.argsort(by_id, kind="stable").astype(np.int32)
        low = list(range(min(MAX_SPECIAL_ID + 1, len(vocab))))
        meta = {"unk_id": unk_id, "byte_fallback": bool(model.get("byte_fallback", False)),
                "always": sorted({*low, unk_id, int(np.argmin(scores))}),
                "added": [token["content"] for token in spec.get("added_tokens", [])]}
        shell = {**spec, "model": {**model, "vocab": [vocab[i] for i in low]}}
        folder = _table_dir(path, stat)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        except OSError:
            return
        try:
            for name, array in (("by_id", by_id), ("sorted", by_id[order]), ("order", order), ("scores", scores)):
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            (tmp / "shell.json").write_text(json.dumps(shell, ensure_ascii=False), encoding="utf-8")
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            os.chmod(tmp, 0o755)
            tmp.rename(folder)
        except OSError:
            pass  # another process wrote it first, or the folder is not writable
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def encode(self, texts: list[str], *, max_length: int | None) -> list[Encoded] | None:
        """The encodings the whole core gives ``texts``; None for a text holding an added
        token's text (the whole core takes those)."""
        import numpy as np
        import tokenizers

        core = self._core
        normalized = [core.normalizer.normalize_str(text) for text in texts]
        if any(token in text for text in texts + normalized for token in self.added):
            return None
        words = {word for text in normalized for word, _ in core.pre_tokenizer.pre_tokenize_str(text)}
        width = self.by_id.dtype.itemsize
        substrings = {word[i:j].encode("utf-8") for word in words for i in range(len(word))
                      for j in range(i + 1, min(len(word), i + width) + 1)}
        wanted = np.array([s for s in substrings if len(s) <= width], dtype=self.by_id.dtype)
        at = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        found = self.order[at[self.sorted[at] == wanted]]
        ids = np.unique(np.concatenate([found.astype(np.int64), np.asarray(self.always, dtype=np.int64)]))
        vocab = [(piece.decode("utf-8"), float(score)) for piece, score in zip(self.by_id[ids], self.scores[ids])]
        core.model = tokenizers.models.Unigram(vocab, int(np.searchsorted(ids, self.unk_id)), self.byte_fallback)
        _truncate(core, max_length)
        back = ids.tolist()
        return [Encoded([back[i] for i in encoding.ids], encoding.offsets, encoding.special_tokens_mask)
                for encoding in core.encode_batch(texts, add_special_tokens=max_length is not None)]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary piece of each id."""
        return [piece.decode("utf-8") for piece in self.by_id[list(ids)]]


def _table_dir(path: Path, stat: os.stat_result) -> Path:
    return path.parent / f"pieces-v{TABLE_VERSION}-{stat.st_size}-{stat.st_mtime_ns}"


def _leave_to_the_os() -> None:
    """At exit, before the interpreter frees its objects: one more reference to each core
    :meth:`Tokenizer.load` read, so that none is freed piece by piece (half a second for a
    250k-piece vocabulary); the operating system takes the memory back with the process's."""
    import ctypes

    for tokenizer in _loaded.values():
        if tokenizer._core is not None:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(tokenizer._core))
