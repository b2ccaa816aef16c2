"""Checkboxes, radio buttons and check lists whose state reads in text as well as colour:
``[x]``/``[ ]`` and ``(•)``/``( )``, so it shows on any terminal and to anyone."""

from __future__ import annotations

from rich.segment import Segment
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, RadioButton, SelectionList


def _mark(left: str, on: str, right: str, value: bool, style: object) -> Content:
    return Content.assemble((left + (on if value else " ") + right, style))


class Check(Checkbox):
    """A checkbox drawn ``[x]`` when ticked and ``[ ]`` when not."""

    @property
    def _button(self) -> Content:
        return _mark("[", "x", "]", self.value, self.get_visual_style("toggle--button"))


class Radio(RadioButton):
    """A radio button drawn ``(•)`` when chosen and ``( )`` when not."""

    @property
    def _button(self) -> Content:
        return _mark("(", "•", ")", self.value, self.get_visual_style("toggle--button"))


class CheckList(SelectionList[str]):
    """A selection list whose rows start ``[x]`` when selected and ``[ ]`` when not."""

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        segments = list(line)
        index = self.scroll_offset.y + y
        if len(segments) < 4 or not 0 <= index < self.option_count:
            return line
        selected = self.get_option_at_index(index).value in self.selected
        style = segments[1].style
        box = [Segment("[", style), Segment("x" if selected else " ", style), Segment("]", style)]
        return Strip([*box, *segments[3:]], line.cell_length)
