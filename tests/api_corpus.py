"""A small multilingual corpus of texts with metadata, shared by the API, HTTP and LangChain tests."""

from __future__ import annotations

from typing import Any

# (id, text, metadata): three topics, each in several languages and years.
TEXTS: list[tuple[str, str, dict[str, Any]]] = [
    ("photo-en", "Plants capture sunlight with chlorophyll and turn it into chemical energy stored in sugar.",
     {"topic": "photosynthesis", "year": 2021, "source": "encyclopedia"}),
    ("photo-de", "Pflanzen nutzen das Sonnenlicht, um aus Wasser und Kohlendioxid Zucker und Sauerstoff herzustellen.",
     {"topic": "photosynthesis", "year": 2022, "source": "lexikon"}),
    ("photo-es", "Las plantas transforman la luz del sol en energía química gracias a la clorofila de sus hojas.",
     {"topic": "photosynthesis", "year": 2023, "source": "enciclopedia"}),
    ("photo-ja", "植物は葉緑素で太陽の光を吸収し、水と二酸化炭素から糖と酸素を作り出す。",
     {"topic": "photosynthesis", "year": 2021, "source": "jiten"}),
    ("photo-zh", "植物利用叶绿素吸收阳光，把水和二氧化碳转化为葡萄糖并释放氧气。",
     {"topic": "photosynthesis", "year": 2024, "source": "baike"}),
    ("volcano-en", "A volcano erupts when molten rock rises through cracks in the crust and bursts out as lava.",
     {"topic": "volcanoes", "year": 2020, "source": "encyclopedia"}),
    ("volcano-fr", "Un volcan entre en éruption quand le magma remonte à travers la croûte et jaillit sous forme de lave.",
     {"topic": "volcanoes", "year": 2022, "source": "encyclopédie"}),
    ("volcano-ru", "Вулкан извергается, когда расплавленная порода поднимается по трещинам в коре и вытекает лавой.",
     {"topic": "volcanoes", "year": 2023, "source": "энциклопедия"}),
    ("volcano-ja", "火山は、溶けた岩石が地殻の割れ目を上昇し、溶岩として噴き出すときに噴火する。",
     {"topic": "volcanoes", "year": 2021, "source": "jiten"}),
    ("moon-en", "In July 1969 Neil Armstrong became the first person to walk on the Moon.",
     {"topic": "moon", "year": 2019, "source": "encyclopedia"}),
    ("moon-de", "Im Juli 1969 betrat Neil Armstrong als erster Mensch den Mond.",
     {"topic": "moon", "year": 2020, "source": "lexikon"}),
    ("moon-ar", "في يوليو 1969 أصبح نيل أرمسترونغ أول إنسان يمشي على سطح القمر.",
     {"topic": "moon", "year": 2022, "source": "mawsua"}),
]


def add_corpus(index: Any) -> list[str]:
    """Add :data:`TEXTS` to ``index`` and return the ids it gave back."""
    return index.add_texts([text for _, text, _ in TEXTS], metadata=[meta for *_, meta in TEXTS],
                           ids=[doc_id for doc_id, *_ in TEXTS])


def meta(doc_id: str) -> dict[str, Any]:
    """The metadata :data:`TEXTS` gives ``doc_id``."""
    return next(m for key, _, m in TEXTS if key == doc_id)
