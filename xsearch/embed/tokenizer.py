"""The model's tokenizer, run through the ``tokenizers`` library alone.

A model loaded through transformers brings a fast tokenizer whose Rust core
(``backend_tokenizer``) does all the work the encoder asks of it: pieces, ids, character
offsets, special-token marks and truncation. :class:`Tokenizer` wraps that core with the few
calls the encoder makes, so the same object serves a model loaded through transformers and
one read back from :meth:`Tokenizer.save`'s ``tokenizer.json`` without transformers (the
core as transformers built it, which may differ from the model folder's own file).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    import tokenizers

FILE = "tokenizer.json"


class Tokenizer:
    """A ``tokenizers.Tokenizer`` and the model's padding id. Safe to share between threads:
    calls that set truncation and tokenize are serialised."""

    def __init__(self, core: tokenizers.Tokenizer, pad_id: int) -> None:
        self._core = core
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
        """Read back what :meth:`save` wrote into ``folder``."""
        import tokenizers

        return cls(tokenizers.Tokenizer.from_file(str(folder / FILE)), pad_id)

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (the core, without truncation or padding) into ``folder``."""
        with self._lock:
            self._core.no_truncation()
            self._core.no_padding()
            self._core.save(str(folder / FILE))

    def encode(self, texts: Sequence[str], *, max_length: int | None = None) -> list[tokenizers.Encoding]:
        """Encodings of ``texts``; with ``max_length``, special tokens added and each cut to that
        many tokens (as transformers' ``truncation=True``), else bare and whole."""
        with self._lock:
            if max_length is None:
                self._core.no_truncation()
            else:
                self._core.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
            return self._core.encode_batch(list(texts), add_special_tokens=max_length is not None)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens not counted, nothing cut."""
        return [len(encoding.ids) for encoding in self.encode(texts)]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary piece of each id."""
        return [self._core.id_to_token(i) for i in ids]
