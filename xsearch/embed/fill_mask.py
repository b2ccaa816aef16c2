"""Fill-mask with masked-LM checkpoints (xlm-roberta-large and friends)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError, UsageError
from .registry import resolve_model


@dataclass(frozen=True)
class Completion:
    """One candidate for the masked position."""

    token: str
    token_id: int
    score: float
    sequence: str

    def to_dict(self) -> dict:
        """The JSON shape of ``xsearch models fill-mask --json``."""
        return {"token": self.token, "token_id": self.token_id, "score": round(self.score, 6), "sequence": self.sequence}


class MaskFiller:
    """A masked-LM model and its tokenizer, loaded once."""

    def __init__(self, model: str) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from .transformer import quiet_transformers

        quiet_transformers()
        resolved = resolve_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
            self.model, loading = AutoModelForMaskedLM.from_pretrained(
                resolved.path, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load {model!r} as a masked LM: {exc}") from exc
        head_missing = [k for k in loading.get("missing_keys", []) if k.startswith(("lm_head", "cls."))]
        if head_missing:
            raise ModelError(f"model {model!r} has no masked-LM head (it is an encoder only); "
                             "use a fill-mask checkpoint such as xlm-roberta-large")
        self.model.eval()
        self.name = model

    def fill(self, text: str, top_k: int = 5) -> list[Completion]:
        """The ``top_k`` most likely tokens for the one ``<mask>`` in ``text``."""
        import torch

        mask = self.tokenizer.mask_token
        if text.count(mask) != 1:
            raise UsageError(f"the text must hold exactly one {mask}")
        encoded = self.tokenizer(text, return_tensors="pt", truncation=True)
        position = int((encoded["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()[0, 0])
        with torch.inference_mode():
            logits = self.model(**encoded).logits[0, position]
        probs = logits.softmax(-1)
        scores, ids = probs.topk(top_k)
        out = []
        for score, token_id in zip(scores.tolist(), ids.tolist()):
            piece = self.tokenizer.decode([token_id]).strip()
            out.append(Completion(piece, token_id, float(score), text.replace(mask, piece, 1)))
        return out
