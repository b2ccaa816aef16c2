"""The HTTP service for real: uvicorn on a free loopback port, driven with httpx."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api_corpus import add_corpus
from xsearch import Index
from xsearch.config import GROUPINGS, MAX_K, MODES
from xsearch.errors import UnknownLanguageError
from xsearch.server import create_app

BODY_LIMIT = 64 * 1024


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, encoder) -> Iterator[tuple[httpx.Client, Index]]:
    """The corpus texts served by uvicorn in a thread (with a small body limit), and a client."""
    index = Index.create(tmp_path_factory.mktemp("served") / "index", encoder=encoder)
    add_corpus(index)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(index, max_body_bytes=BODY_LIMIT), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    port = sock.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client, index
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    index.close()


def test_health_info_and_docs(served) -> None:
    client, index = served
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["documents"] == index.info().documents and info["texts"] == info["documents"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/documents", "/documents/{doc_id}", "/info", "/health"} <= set(schema["paths"])
    schemas = schema["components"]["schemas"]
    search_options = schemas["SearchRequest"]["properties"]
    assert search_options["mode"]["enum"] == list(MODES) and search_options["k"]["maximum"] == MAX_K
    assert search_options["feedback"]["default"] is True and search_options["explain"]["default"] is False
    assert search_options["min_score"]["minimum"] == 0 and search_options["min_score"]["maximum"] == 1
    assert {"enum": list(GROUPINGS), "type": "string"} in search_options["group_by"]["anyOf"]
    hit = schemas["HitModel"]["properties"]
    assert {"$ref": "#/components/schemas/ExplainModel"} in hit["explain"]["anyOf"]
    assert hit["translations"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/TranslationModel"}
    assert set(schemas["TranslationModel"]["properties"]) == {"chunk_id", "lang", "path", "id", "score"}
    assert {"rank_score", "maxsim", "translation_of_best", "matched"} <= set(schemas["ExplainModel"]["properties"])
    assert info["translations"] == index.info().translations > 0


def test_search_is_cross_lingual_and_filtered(served) -> None:
    client, _ = served
    answer = client.post("/search", json={"query": "¿Cómo convierten las plantas la luz en azúcar?", "k": 5,
                                          "filters": {"topic": "photosynthesis"}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    hits = body["hits"]
    assert len(hits) == 5 and body["took_ms"] > 0
    assert {h["lang"] for h in hits} == {"en", "de", "es", "ja", "zh"}
    assert set(hits[0]) >= {"id", "score", "text", "path", "lang", "start", "end", "metadata", "highlights"}
    only_ja = client.post("/search", json={"query": "volcano", "k": 2, "filters": {"lang": ["ja"]},
                                           "rerank": False}).json()["hits"]
    assert [h["id"] for h in only_ja][:1] == ["volcano-ja"] and all(h["lang"] == "ja" for h in only_ja)
    batch = client.post("/search/batch", json={"queries": ["Mondlandung", "lava"], "k": 1, "mode": "hybrid"}).json()
    assert [r["hits"][0]["metadata"]["topic"] for r in batch["results"]] == ["moon", "volcanoes"]


def test_search_options_translations_and_explain(served) -> None:
    client, _ = served
    question = "How does a volcano erupt?"
    grouped = client.post("/search", json={"query": question, "k": 3, "group_by": "translation",
                                           "explain": True}).json()["hits"]
    first = grouped[0]
    assert first["id"].startswith("volcano-") and first["translations"]
    langs = [t["lang"] for t in first["translations"]]
    assert {first["lang"], *langs} == {"en", "fr", "ru", "ja"} and len(langs) == 3
    assert all(t["id"] == f"volcano-{t['lang']}" and 0 <= t["score"] <= 1 for t in first["translations"])
    assert first["explain"]["rank_score"] and first["explain"]["matched"]
    assert "more" not in first and all("translations" not in h or h["translations"] for h in grouped)

    plain = client.post("/search", json={"query": question, "k": 4}).json()["hits"]
    assert all(set(h) == set(plain[0]) for h in plain) and not {"translations", "explain", "more"} & set(plain[0])
    apart = client.post("/search", json={"query": question, "k": 4, "feedback": False, "explain": True}).json()["hits"]
    assert not any("translation_of_best" in h["explain"] for h in apart)
    scores = {h["id"]: h["score"] for h in plain}
    assert sum(scores.values()) > sum(h["score"] for h in apart if h["id"] in scores)  # feedback lifted them

    floor = plain[1]["score"] - 0.001
    batch = client.post("/search/batch", json={"queries": [question, question], "k": 4, "min_score": floor}).json()
    assert [[h["id"] for h in r["hits"]] for r in batch["results"]] == [[h["id"] for h in plain[:2]]] * 2
    lexical = client.post("/search", json={"query": "volcan", "mode": "lexical", "k": 1,
                                           "group_by": "translation"}).json()["hits"]
    unmatched = {t["lang"]: t["score"] for t in lexical[0]["translations"] if t["lang"] in ("ru", "ja")}
    assert unmatched == {"ru": None, "ja": None}  # keyword search does not score what it did not find


def test_add_then_delete_a_document(served) -> None:
    client, _ = served
    added = client.post("/documents", json={"documents": [
        {"text": "Le café est arrivé en Europe par Venise au XVIIe siècle.", "metadata": {"topic": "coffee"},
         "id": "coffee/fr"},
        {"text": "Kaffee wird aus den gerösteten Samen der Kaffeepflanze gebrüht.", "metadata": {"topic": "coffee"}},
    ]})
    assert added.status_code == 200, added.text
    ids = added.json()["ids"]
    assert ids[0] == "coffee/fr" and len(ids) == 2 and ids[1]
    found = client.post("/search", json={"query": "How did coffee reach Europe?", "k": 2,
                                         "filters": {"topic": "coffee"}}).json()["hits"]
    assert {h["id"] for h in found} == set(ids)
    for doc_id in ids:
        assert client.delete(f"/documents/{doc_id}").json() == {"deleted": [doc_id]}
    assert client.delete("/documents/coffee/fr").status_code == 404
    assert client.post("/search", json={"query": "coffee", "filters": {"topic": "coffee"}}).json()["hits"] == []


@pytest.mark.parametrize("path,body", [
    ("/search", {}),
    ("/search", {"query": ""}),
    ("/search", {"query": "x", "k": 0}),
    ("/search", {"query": "x", "k": "many"}),
    ("/search", {"query": "x", "mode": "fuzzy"}),
    ("/search", {"query": "x", "limit": 3}),
    ("/search", {"query": "x", "filters": {"lang": []}}),
    ("/search", {"query": "x", "filters": {"topic": {"like": "bio%"}}}),
    ("/search", {"query": "x", "min_score": 2}),
    ("/search", {"query": "x", "min_score": -0.1}),
    ("/search", {"query": "x", "group_by": "sentence"}),
    ("/search", {"query": "x", "feedback": "maybe"}),
    ("/search/batch", {"queries": ["x"], "explain": "very"}),
    ("/search/batch", {"queries": []}),
    ("/documents", {"documents": []}),
    ("/documents", {"documents": [{"text": ""}]}),
    ("/documents", {"documents": [{"text": "x", "metadata": ["not", "a", "dict"]}]}),
])
def test_bad_bodies_get_422(served, path: str, body: dict) -> None:
    client, _ = served
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_malformed_json_k_over_the_limit_and_oversize_bodies(served) -> None:
    client, index = served
    before = index.info().generation
    assert client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"}).status_code == 422
    over = client.post("/search", json={"query": "x", "k": MAX_K + 1})
    assert over.status_code == 422 and str(MAX_K) in str(over.json()["detail"])
    big = {"documents": [{"text": "word " * (BODY_LIMIT // 5)}]}
    assert client.post("/documents", json=big).status_code == 413

    def streamed() -> Iterator[bytes]:  # no Content-Length: the limit applies as the body arrives
        yield b'{"documents": [{"text": "'
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    answer = client.post("/documents", content=streamed(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert index.info().generation == before


def test_xsearch_serve_command(tmp_path: Path, encoder) -> None:
    index_dir = tmp_path / "index"
    with Index.create(index_dir, encoder=encoder) as index:
        index.add_texts(["Der Mond umkreist die Erde in etwa 27 Tagen."], ids=["mond"])
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    exe = Path(sys.executable).with_name("xsearch")
    process = subprocess.Popen([str(exe), "serve", "--index", str(index_dir), "--port", str(port)],
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, process.stderr.read()
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "xsearch serve did not come up"
                time.sleep(0.25)
            hits = client.post("/search", json={"query": "How long does the Moon take to orbit Earth?"}).json()["hits"]
            assert [h["id"] for h in hits] == ["mond"]
        # a request still in flight (its body half sent) does not hold up Ctrl+C
        with socket.create_connection(("127.0.0.1", port)) as stalled:
            stalled.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n{\"query\"")
            time.sleep(0.3)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
            assert time.monotonic() - started < 3  # about one second, with room for a busy machine
        assert "Traceback" not in process.stderr.read()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_api_docs_need_no_network(served) -> None:
    client, _ = served
    for page in ("/docs", "/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", answer.text)
        assert "/openapi.json" in urls and len(urls) >= 3
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        assert "http://" not in answer.text and "https://" not in answer.text
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url


def test_a_language_the_index_lacks_gets_422(served) -> None:
    client, index = served
    answer = client.post("/search", json={"query": "volcano", "filters": {"lang": ["ja", "sw"]}})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "filters", "lang"] and "'sw'" in error["msg"]
    assert ", ".join(sorted(index.languages())) in error["msg"]
    named = client.post("/search", json={"query": "volcano", "k": 2, "filters": {"lang": "Japanese"}})
    assert named.status_code == 200 and {h["lang"] for h in named.json()["hits"]} == {"ja"}
    with pytest.raises(UnknownLanguageError, match="this index holds"):
        index.search("volcano", langs=["sw"])


def test_a_port_in_use_is_one_line_before_the_index_opens(tmp_path: Path) -> None:
    with _free_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        exe = Path(sys.executable).with_name("xsearch")
        result = subprocess.run([str(exe), "serve", "--index", str(tmp_path / "index"), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (choose another --port or --host)"]
    assert not (tmp_path / "index").exists()
