"""Losses: a real tool's Evaluation as a graph node, or an LLM judge (TextLoss)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tgdomains import prompts
from tgdomains.functions import feedback_for_input
from tgdomains.variable import Variable

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine
    from tgdomains.evaluation import Evaluation


def evaluation_loss(x: Variable, evaluation: Evaluation, context: str = "") -> Variable:
    """The loss node for a domain evaluator's verdict on `x`; backward asks for feedback from its text."""
    loss = Variable(evaluation.text, f"evaluation of the {x.role_description}", predecessors=[x])

    def _backward(engine: Engine | None, seed: int | None) -> None:
        if engine is None:
            raise ValueError("evaluation_loss.backward needs an engine: call loss.backward(engine=...)")
        x.add_gradient(feedback_for_input(engine, x, loss, seed, context))

    loss._backward = _backward
    return loss


class TextLoss:
    """An LLM judge: `TextLoss("Critique the code for correctness.", engine)(x)` -> loss Variable."""

    def __init__(self, instruction: str, engine: Engine) -> None:
        self.instruction = instruction
        self.engine = engine

    def __call__(self, x: Variable, seed: int | None = None) -> Variable:
        critique = self.engine.generate(prompts.TEXT_LOSS.messages(
            instruction=self.instruction, role=x.role_description, value=x.value), seed=seed).text
        loss = Variable(critique, f"critique of the {x.role_description}", predecessors=[x])

        def _backward(engine: Engine | None, call_seed: int | None) -> None:
            x.add_gradient(feedback_for_input(engine or self.engine, x, loss, call_seed, self.instruction))

        loss._backward = _backward
        return loss
