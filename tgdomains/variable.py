"""Variable: a piece of text in a computation graph, and backward() — the chain rule through LLM calls.

Like micrograd's Value: each op that makes a Variable gives it a `_backward` closure that turns the feedback the
Variable received (`gradients`) into feedback for its predecessors. `backward()` runs those closures in reverse
topological order, so every node has all its feedback before it passes any on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine


class Variable:
    def __init__(self, value: str, role_description: str = "", requires_grad: bool = False,
                 predecessors: Iterable[Variable] = ()) -> None:
        self.value = value
        self.role_description = role_description
        self.requires_grad = requires_grad
        self.predecessors: tuple[Variable, ...] = tuple(predecessors)
        self.gradients: list[str] = []
        self._backward: Callable[[Engine | None, int | None], None] = lambda engine, seed: None

    @property
    def needs_grad(self) -> bool:
        """True when this variable, or anything upstream of it, is being optimized."""
        return self.requires_grad or any(p.needs_grad for p in self.predecessors)

    def add_gradient(self, feedback: str) -> None:
        if self.requires_grad or self.predecessors:
            self.gradients.append(feedback)

    def feedback(self) -> str:
        return "\n\n".join(self.gradients)

    def topological_order(self) -> list[Variable]:
        order: list[Variable] = []
        seen: set[int] = set()

        def visit(v: Variable) -> None:
            if id(v) in seen:
                return
            seen.add(id(v))
            for p in v.predecessors:
                visit(p)
            order.append(v)

        visit(self)
        return order

    def backward(self, engine: Engine | None = None, seed: int | None = None) -> None:
        """Propagate feedback from this node (the loss) to every upstream variable that needs it."""
        for node in reversed(self.topological_order()):
            if node.predecessors and node.needs_grad:
                node._backward(engine, seed)

    def __repr__(self) -> str:
        short = self.value if len(self.value) < 40 else self.value[:37] + "..."
        return f"Variable({short!r}, role={self.role_description!r}, requires_grad={self.requires_grad})"
