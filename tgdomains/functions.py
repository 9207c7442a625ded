"""Graph ops: each makes a new Variable and knows how to send the feedback it receives back to its inputs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from tgdomains import prompts
from tgdomains.variable import Variable

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine


def _pick_engine(call_engine: Engine | None, op_engine: Engine | None) -> Engine:
    engine = call_engine or op_engine
    if engine is None:
        raise ValueError("backward needs an engine: pass backward(engine=...) or give the op an engine")
    return engine


def feedback_for_input(engine: Engine, x: Variable, output: Variable, seed: int | None,
                       context: str = "") -> str:
    """One LLM call: the chain rule for one edge x -> output.

    A root output (the loss) has no feedback of its own: its value *is* the critique, so it is used as the
    evaluation. Any other output passes on the feedback it received.
    """
    if not output.gradients:
        messages = prompts.BACKWARD_EVALUATION.messages(
            context=prompts.task_section(context), role=x.role_description, value=x.value, evaluation=output.value)
    else:
        messages = prompts.BACKWARD_LLM_CALL.messages(
            role=x.role_description, value=x.value, output_role=output.role_description, output=output.value,
            feedback=output.feedback())
    return engine.generate(messages, seed=seed).text


class LLMCall:
    """y = LLM(system_prompt, x): the input's value is the user message."""

    def __init__(self, engine: Engine, system_prompt: str | None = None) -> None:
        self.engine = engine
        self.system_prompt = system_prompt

    def __call__(self, x: Variable, output_role: str = "LLM response", seed: int | None = None) -> Variable:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": x.value})
        return _llm_node(self.engine, messages, [x], output_role, seed)


class FormattedLLMCall:
    """y = LLM(template.format(**inputs)): several named variables fill one prompt."""

    def __init__(self, engine: Engine, template: str, system_prompt: str | None = None) -> None:
        self.engine = engine
        self.template = template
        self.system_prompt = system_prompt

    def __call__(self, inputs: dict[str, Variable], output_role: str = "LLM response",
                 seed: int | None = None) -> Variable:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": self.template.format(**{k: v.value for k, v in inputs.items()})})
        return _llm_node(self.engine, messages, list(inputs.values()), output_role, seed)


def _llm_node(engine: Engine, messages: list[dict], inputs: list[Variable], output_role: str,
              seed: int | None) -> Variable:
    y = Variable(engine.generate(messages, seed=seed).text, output_role, predecessors=inputs)

    def _backward(call_engine: Engine | None, call_seed: int | None) -> None:
        use = _pick_engine(call_engine, engine)
        for x in inputs:
            if x.needs_grad:
                x.add_gradient(feedback_for_input(use, x, y, call_seed))

    y._backward = _backward
    return y


def sum_variables(variables: list[Variable], output_role: str = "combined text") -> Variable:
    """Concatenation; each input receives the output's feedback exactly once."""
    y = Variable("\n".join(v.value for v in variables), output_role, predecessors=variables)

    def _backward(call_engine: Engine | None, call_seed: int | None) -> None:
        for x in dict.fromkeys(variables):  # an input listed twice still gets the feedback once
            if x.needs_grad:
                for g in y.gradients:
                    x.add_gradient(g)

    y._backward = _backward
    return y


def aggregate(variables: list[Variable], engine: Engine, output_role: str = "summary",
              seed: int | None = None) -> Variable:
    """One summarising LLM call over all inputs; its backward is one call that gives feedback to every input."""
    listing = "\n".join(f"<INPUT_{i} role=\"{v.role_description}\">\n{v.value}\n</INPUT_{i}>"
                        for i, v in enumerate(variables))
    summary = engine.generate(prompts.AGGREGATE.messages(output_role=output_role, inputs=listing), seed=seed).text
    y = Variable(summary, output_role, predecessors=variables)

    def _backward(call_engine: Engine | None, call_seed: int | None) -> None:
        use = _pick_engine(call_engine, engine)
        feedback = y.feedback() or "(the summary is itself the final output; improve what it says)"
        reply = use.generate(prompts.BACKWARD_AGGREGATE.messages(
            inputs=listing, output_role=output_role, output=y.value, feedback=feedback), seed=call_seed).text
        for i, x in enumerate(variables):
            if x.needs_grad:
                m = re.search(rf"<FEEDBACK_{i}>(.*?)</FEEDBACK_{i}>", reply, re.S)
                # A reply that skips an input must not starve it: that input gets the whole reply.
                x.add_gradient(m.group(1).strip() if m else reply)

    y._backward = _backward
    return y


def function_node(fn: Callable[..., str], inputs: list[Variable], *, description: str,
                  output_role: str = "function output", engine: Engine | None = None) -> Variable:
    """Wrap a Python function as a graph node (how tools and evaluators enter the graph)."""
    y = Variable(str(fn(*[v.value for v in inputs])), output_role, predecessors=inputs)

    def _backward(call_engine: Engine | None, call_seed: int | None) -> None:
        use = _pick_engine(call_engine, engine)
        for x in inputs:
            if not x.needs_grad:
                continue
            if not y.gradients:
                x.add_gradient(feedback_for_input(use, x, y, call_seed))
                continue
            x.add_gradient(use.generate(prompts.BACKWARD_FUNCTION.messages(
                function=getattr(fn, "__name__", "function"), description=description, role=x.role_description,
                value=x.value, output_role=output_role, output=y.value, feedback=y.feedback()),
                seed=call_seed).text)

    y._backward = _backward
    return y
