"""The core tests' domain: the template domain (domains/template.py), recording what it evaluated."""

from __future__ import annotations

from domains import template
from domains.template import Target

__all__ = ["ArithmeticDomain", "Target", "tagged"]


class ArithmeticDomain(template.ArithmeticDomain):
    """The template's arithmetic domain; `evaluated` lists every value it scored, in order."""

    def __init__(self) -> None:
        self.evaluated: list[str] = []

    def evaluate(self, value, instance):
        self.evaluated.append(value)
        return super().evaluate(value, instance)


def tagged(value: str, critique: str = "") -> str:
    return f"{critique}<IMPROVED_VARIABLE>{value}</IMPROVED_VARIABLE>"
