"""What a cold process loads: no torch, transformers or sentence-transformers once a model is
built, the language model from its uncompressed copy, a tokenizer file once.

The import checks run in a new Python process (so nothing this test session imported counts)
and report the modules the process ended with. The default model is built into the test cache
by the session's ``encoder`` fixture first; the time it all takes is measured in
``benchmarks/bench_startup.py``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tokenizers

from conftest import SAMPLE
from xsearch import Index
from xsearch.embed import tokenizer as tokenizer_module
from xsearch.embed.tokenizer import Tokenizer
from xsearch.ingest import lang

HEAVY = {"torch", "transformers", "sentence_transformers"}
QUERY = "wie wandeln Pflanzen Licht in Energie um?"

CLI = """
import json, sys
from xsearch.cli import main
try:
    main.main(args=sys.argv[2:], prog_name="xsearch")
    code = 0
except SystemExit as exit:
    code = exit.code or 0
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""

API = """
import json, sys
from xsearch import Index
with Index.open(sys.argv[2]) as index:
    index.warm()
    hits = index.search(sys.argv[3], k=3)
    hybrid = index.search_batch([sys.argv[3]], k=3, mode="hybrid")[0]
with open(sys.argv[1], "w") as out:
    json.dump({"code": 0 if hits and hybrid else 1, "modules": sorted(sys.modules)}, out)
"""


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    """An index of two topics of the sample corpus, made with the (built) default model."""
    path = tmp_path_factory.mktemp("startup") / "index"
    with Index.create(path, encoder=encoder) as index:
        index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes"])
    return path


def modules_after(script: str, tmp_path: Path, *args: str) -> set[str]:
    """The modules a new process running ``script`` with ``args`` has imported when it ends."""
    report = tmp_path / "modules.json"
    env = {key: value for key, value in os.environ.items() if key != "XSEARCH_BACKEND"}
    result = subprocess.run([sys.executable, "-c", script, str(report), *args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["code"] == 0, result.stderr
    return set(data["modules"])


@pytest.mark.parametrize("options", [(), ("--json", "--no-rerank"), ("--mode", "hybrid")])
def test_a_cold_search_imports_no_torch(small_index: Path, tmp_path: Path, options: tuple[str, ...]) -> None:
    modules = modules_after(CLI, tmp_path, "search", QUERY, "--index", str(small_index), *options)
    assert not modules & HEAVY
    assert {"openvino", "tokenizers"} <= modules  # the query was embedded


def test_embed_imports_no_torch(encoder, tmp_path: Path) -> None:
    modules = modules_after(CLI, tmp_path, "embed", "hallo", "--tokens", "--json")
    assert not modules & HEAVY and "openvino" in modules


def test_the_python_api_opens_warms_and_searches_without_torch(small_index: Path, tmp_path: Path) -> None:
    modules = modules_after(API, tmp_path, str(small_index), QUERY)
    assert not modules & HEAVY and "openvino" in modules


# the language model's uncompressed copy --------------------------------------------

TEXTS = [
    "Die Photosynthese wandelt Lichtenergie in chemische Energie um.",
    "La photosynthèse transforme l'énergie lumineuse en énergie chimique.",
    "La fotosíntesis convierte la energía de la luz en energía química.",
    "A fotossíntese converte a energia luminosa em energia química.",
    "La fotosintesi trasforma l'energia luminosa in energia chimica.",
    "Fotosynthese zet lichtenergie om in chemische energie.",
    "Fotosynteza przekształca energię światła w energię chemiczną.",
    "Fotosentez ışık enerjisini kimyasal enerjiye dönüştürür.",
    "Fotosyntesen omvandlar ljusenergi till kemisk energi.",
    "Quang hợp chuyển đổi năng lượng ánh sáng thành năng lượng hóa học.",
    "Fotosintesis mengubah energi cahaya menjadi energi kimia.",
    "Фотосинтез превращает энергию света в химическую энергию.",
    "Фотосинтез перетворює енергію світла на хімічну енергію.",
    "Η φωτοσύνθεση μετατρέπει την ενέργεια του φωτός σε χημική ενέργεια.",
    "הפוטוסינתזה הופכת אנרגיית אור לאנרגיה כימית.",
    "البناء الضوئي يحول طاقة الضوء إلى طاقة كيميائية.",
    "فتوسنتز انرژی نور را به انرژی شیمیایی تبدیل می‌کند.",
    "प्रकाश संश्लेषण प्रकाश ऊर्जा को रासायनिक ऊर्जा में बदलता है।",
    "光合作用将光能转化为化学能。", "光合成は光エネルギーを化学エネルギーに変える。",
    "광합성은 빛 에너지를 화학 에너지로 바꾼다.", "การสังเคราะห์ด้วยแสงเปลี่ยนพลังงานแสง",
    "WIE WANDELN PFLANZEN LICHT IN ENERGIE UM?", "ok", "", "12345 67 89", "🙂🙃 !!", "x" * 300,
    b"bytes: caf\xc3\xa9 cr\xc3\xa8me", b"\xff\xfe broken utf-8",
]


def sample_texts() -> list[str]:
    """Every paragraph of the sample corpus (seven languages and more) and its first 60 characters."""
    texts = []
    for path in sorted(SAMPLE.rglob("*")):
        if path.is_file():
            for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
                texts += [paragraph, paragraph[:60]]
    return texts


@pytest.fixture
def fresh_identifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The language model loaded as on a machine whose cache is ``tmp_path``."""
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path))
    lang._identifier.cache_clear()
    yield lambda: (lang._identifier.cache_clear(), lang._identifier())[1]
    lang._identifier.cache_clear()


def test_the_language_model_copy_ranks_as_py3langid_does(fresh_identifier, tmp_path: Path) -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    original = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    written = fresh_identifier()
    copies = list((tmp_path / "langid").iterdir())
    assert len(copies) == 1 and {p.name for p in copies[0].iterdir()} == {f"{n}.npy" for n in lang.MODEL_ARRAYS}
    mapped = fresh_identifier()  # a later process: read back from the copy, memory-mapped
    assert isinstance(mapped.nb_ptc.base, np.memmap) or isinstance(mapped.nb_ptc, np.memmap)
    texts = TEXTS + sample_texts()
    assert len(texts) > 300
    for text in texts:
        expected = original.rank(text)
        assert written.rank(text) == expected and mapped.rank(text) == expected, text
    detected = {lang.detect_language(t) for t in texts if isinstance(t, str)}
    assert {"de", "fr", "es", "ru", "ar", "hi", "ja", "zh", "ko", "en"} <= detected


def test_a_damaged_language_model_copy_is_not_used(fresh_identifier, tmp_path: Path) -> None:
    fresh_identifier()
    (copy,) = (tmp_path / "langid").iterdir()
    with open(copy / "ptc.npy", "r+b") as f:  # cut short, as by a full disk
        f.truncate(1000)
    identifier = fresh_identifier()
    assert lang.detect_language("Die Photosynthese wandelt Lichtenergie in chemische Energie um.") == "de"
    assert not isinstance(identifier.nb_ptc.base, np.memmap)


# the tokenizer -----------------------------------------------------------------------

def test_a_tokenizer_file_is_read_once_per_process(encoder, tmp_path: Path) -> None:
    encoder.tokenizer.save(tmp_path)
    first = Tokenizer.load(tmp_path, encoder.tokenizer.pad_id)
    assert Tokenizer.load(tmp_path, encoder.tokenizer.pad_id) is first
    ids = [e.ids for e in first.encode(TEXTS[:5], max_length=64)]
    assert ids == [e.ids for e in encoder.tokenizer.encode(TEXTS[:5], max_length=64)]
    encoder.tokenizer.save(tmp_path)  # written again: read again
    os.utime(tmp_path / tokenizer_module.FILE, ns=(0, 0))
    again = Tokenizer.load(tmp_path, encoder.tokenizer.pad_id)
    assert again is not first and [e.ids for e in again.encode(TEXTS[:5], max_length=64)] == ids


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Texts drawn from many scripts, spaces, marks, digits, symbols and full-width forms."""
    rng = np.random.default_rng(seed)
    alphabet = list("abcxyzäöüßéèçñ ЖжЯя αβγ אב عربي हिन्दी 日本語かなカナ 한국어 ไทย ✓🙂\u0301\u200b\u00a0\t\n"
                    ".,;:!?-_'\"()[]{}/\\0123456789ＡＢＣｱｲｳ①②ﬁ")
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 120))) for _ in range(n)]


def test_a_few_short_texts_are_tokenized_as_the_whole_vocabulary_does(encoder, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    encoder.tokenizer.save(tmp_path)
    Tokenizer.load(tmp_path, encoder.tokenizer.pad_id)  # the first process writes the piece table
    tokenizer_module._loaded.clear()  # a later process
    monkeypatch.setattr(tokenizer_module, "TABLE_CHARS", 10**9)
    quick = Tokenizer.load(tmp_path, encoder.tokenizer.pad_id)
    whole = Tokenizer(tokenizers.Tokenizer.from_file(str(tmp_path / tokenizer_module.FILE)), encoder.tokenizer.pad_id)
    texts = [t for t in TEXTS if isinstance(t, str)] + sample_texts() + random_texts(300)
    texts += ["query: " + t for t in texts[:50]] + ["x" * tokenizer_module.FEW_CHARS]
    texts = [t for t in texts if len(t) <= tokenizer_module.FEW_CHARS]  # longer ones: the whole core
    for max_length in (None, 512, 8):
        for text in texts:
            got, expected = quick.encode([text], max_length=max_length)[0], whole.encode([text], max_length=max_length)[0]
            assert (list(got.ids), list(got.offsets), list(got.special_tokens_mask)) == \
                   (expected.ids, expected.offsets, expected.special_tokens_mask), (text, max_length)
    assert quick._core is None  # all through the piece table
    ids = sorted({i for text in texts[:100] for i in whole.encode([text])[0].ids} | {0, 1, 2, 3})
    assert quick.pieces(ids) == whole.pieces(ids)
    assert quick.encode(["a <mask> b"], max_length=16)[0].ids == whole.encode(["a <mask> b"], max_length=16)[0].ids
    assert quick._core is not None  # an added token's text: the whole core, built when needed

    monkeypatch.setattr(tokenizer_module, "TABLE_CHARS", 100)
    tokenizer_module._loaded.clear()
    busy = Tokenizer.load(tmp_path, encoder.tokenizer.pad_id)
    busy.encode(["a" * 60])
    assert busy._core is None
    busy.encode(["b" * 60])
    assert busy._core is not None  # past its budget: the whole core, faster for many texts


def test_tokenizers_loaded_from_files_are_left_to_the_os_at_exit(encoder, tmp_path: Path) -> None:
    encoder.tokenizer.save(tmp_path)
    script = f"""
import atexit, sys
from pathlib import Path
from xsearch.embed import tokenizer
core = tokenizer.Tokenizer.load(Path({str(tmp_path)!r}), 1)._core
before = sys.getrefcount(core)
atexit._run_exitfuncs()
print(sys.getrefcount(core) - before)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]  # one reference more: never freed piece by piece
