"""Multilingual retrieval for a RAG app: index texts in several languages, retrieve the
context for a question asked in another one, and assemble the prompt a language model would
get. No language model is called; print the prompt or hand it to the one you use.

    python examples/rag.py ["your question, in any language"]
"""

from __future__ import annotations

import sys
import tempfile

from xsearch import Hit, Index

DOCUMENTS = [
    ("de/photosynthese", ("Bei der Fotosynthese wandeln Pflanzen Lichtenergie in chemische Energie um: "
                          "Aus Kohlendioxid und Wasser entsteht Zucker, Sauerstoff wird frei."), {"topic": "biology"}),
    ("ja/kougousei", "光合成では、植物が光のエネルギーを使って二酸化炭素と水からブドウ糖を作り、酸素を放出する。",
     {"topic": "biology"}),
    ("es/clorofila", ("La clorofila de las hojas absorbe sobre todo la luz roja y azul del sol; "
                      "esa energía impulsa la fabricación de azúcares en la planta."), {"topic": "biology"}),
    ("fr/volcans", ("Un volcan entre en éruption lorsque le magma, moins dense que la roche qui l'entoure, "
                    "remonte vers la surface."), {"topic": "geology"}),
    ("ar/qahwa", "يعود أصل القهوة إلى إثيوبيا، ومنها انتقلت زراعتها إلى اليمن في القرن الخامس عشر.",
     {"topic": "history"}),
    ("ru/luna", "20 июля 1969 года Нил Армстронг первым из людей ступил на поверхность Луны.", {"topic": "history"}),
    ("zh/yimiao", "疫苗让免疫系统接触无害的病原体成分，从而学会识别真正的病原体。", {"topic": "medicine"}),
]
QUESTION = "How do plants turn sunlight into food?"


def build_prompt(question: str, hits: list[Hit]) -> str:
    """The prompt for a language model: numbered sources, then the question."""
    sources = "\n".join(f"[{n}] ({hit.lang}, {hit.id}) {hit.text}" for n, hit in enumerate(hits, 1))
    return ("Answer the question from the sources below, in the language of the question. "
            "Cite sources by number.\n\n"
            f"Sources:\n{sources}\n\nQuestion: {question}\nAnswer:")


def main() -> None:
    question = sys.argv[1] if len(sys.argv) > 1 else QUESTION
    with tempfile.TemporaryDirectory() as folder, Index.create(f"{folder}/index") as index:
        index.add_texts([text for _, text, _ in DOCUMENTS], metadata=[meta for *_, meta in DOCUMENTS],
                        ids=[doc_id for doc_id, *_ in DOCUMENTS])
        hits = index.search(question, k=3)
        print(build_prompt(question, hits))


if __name__ == "__main__":
    main()
