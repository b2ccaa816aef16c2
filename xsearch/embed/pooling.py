"""Pooling: how a sequence of token vectors becomes one sentence vector.

Pure functions over padded batches. Shapes: ``hidden`` is ``(batch, tokens, dim)`` and
``mask`` is ``(batch, tokens)`` with 1 for real tokens (special tokens included, as
sentence-transformers does) and 0 for padding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import POOLINGS

if TYPE_CHECKING:
    import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden`` over its real tokens into ``(batch, dim)``."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(weights == 0, float("-inf")).amax(dim=1)
    summed = (hidden * weights).sum(dim=1)
    lengths = weights.sum(dim=1).clamp(min=1.0)
    if mode == "mean":
        return summed / lengths
    if mode == "mean_sqrt_len":
        return summed / lengths.sqrt()
    raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLINGS)}")
