"""The calibration texts shipped with xsearch: short questions and paragraphs in 24 languages
and scripts (``calibration.txt``), on which the int8 OpenVINO model measures its activation
scales and each model's token codec is trained."""

from __future__ import annotations

from importlib import resources


def calibration_texts() -> list[str]:
    """The shipped texts, one per non-empty line that is not a ``#`` comment."""
    lines = resources.files(__package__).joinpath("calibration.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
