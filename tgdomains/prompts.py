"""Every prompt the core sends, once, each with a version (recorded in run.json so results name their prompts).

Domains never copy these: they add their text through `Domain.context`, role descriptions and `Evaluation.text`.
Prompts are short on purpose: prompt tokens are most of a run's cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from tgdomains.engines.base import Message

TAG = "IMPROVED_VARIABLE"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str  # str.format template

    def messages(self, **fields: str) -> list[Message]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user.format(**fields)}]


_CRITIC = ("You give feedback that improves one variable of a system. Be specific and actionable: name what is "
           "wrong and what to change. Do not rewrite the variable itself.")

BACKWARD_EVALUATION = Prompt(
    "backward_evaluation", "1",
    _CRITIC,
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "A real tool evaluated it:\n<EVALUATION>\n{evaluation}\n</EVALUATION>\n\n"
    "Give concise feedback on how to change the variable so the evaluation improves.",
)

BACKWARD_LLM_CALL = Prompt(
    "backward_llm_call", "1",
    _CRITIC,
    "An LLM was given this input ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "and produced this output ({output_role}):\n<OUTPUT>\n{output}\n</OUTPUT>\n\n"
    "The output received this feedback:\n<FEEDBACK>\n{feedback}\n</FEEDBACK>\n\n"
    "Give concise feedback on how to change the input so the output improves in that direction.",
)

BACKWARD_FUNCTION = Prompt(
    "backward_function", "1",
    _CRITIC,
    "The function `{function}` ({description}) took this input ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "and returned ({output_role}):\n<OUTPUT>\n{output}\n</OUTPUT>\n\n"
    "The output received this feedback:\n<FEEDBACK>\n{feedback}\n</FEEDBACK>\n\n"
    "Give concise feedback on how to change the input.",
)

BACKWARD_AGGREGATE = Prompt(
    "backward_aggregate", "1",
    _CRITIC,
    "These inputs were summarised together:\n{inputs}\n\nThe summary ({output_role}):\n<OUTPUT>\n{output}\n</OUTPUT>\n\n"
    "received this feedback:\n<FEEDBACK>\n{feedback}\n</FEEDBACK>\n\n"
    "Give feedback for EVERY input, each inside <FEEDBACK_i>...</FEEDBACK_i> with i its number.",
)

AGGREGATE = Prompt(
    "aggregate", "1",
    "You summarise several texts into one, keeping every concrete point.",
    "Summarise these into one {output_role}:\n{inputs}",
)

TEXT_LOSS = Prompt(
    "text_loss", "1",
    "You are a strict evaluator. Point out concrete problems; do not praise.",
    "{instruction}\n\n<VARIABLE role=\"{role}\">\n{value}\n</VARIABLE>",
)

_OPTIMIZER = (f"You improve one variable of a system from feedback. Reply with the complete new value between "
              f"<{TAG}> and </{TAG}>, and nothing else inside those tags.")

TGD_STEP = Prompt(
    "tgd_step", "1",
    _OPTIMIZER,
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "Feedback on it:\n<FEEDBACK>\n{feedback}\n</FEEDBACK>\n{momentum}{examples}{constraints}\n"
    f"Write the improved variable inside <{TAG}></{TAG}>.",
)

ONE_CALL_STEP = Prompt(
    "one_call_step", "1",
    _OPTIMIZER + " Before the tags, write two or three sentences of critique.",
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "A real tool evaluated it:\n<EVALUATION>\n{evaluation}\n</EVALUATION>\n{momentum}{examples}{constraints}\n"
    f"Critique the variable briefly, then write the improved variable inside <{TAG}></{TAG}>.",
)

REPAIR = Prompt(
    "repair", "1",
    _OPTIMIZER,
    "Your previous reply could not be used: {problem}\n\nPrevious reply:\n<REPLY>\n{reply}\n</REPLY>\n\n"
    f"Reply again with only the corrected complete value inside <{TAG}></{TAG}>.{{constraints}}",
)

SOLVE = Prompt(
    "solve", "1",
    _OPTIMIZER,
    f"{{context}}Write the {{role}}.{{constraints}}\nPut it inside <{TAG}></{TAG}>.",
)

REFLECT = Prompt(
    "reflect", "1",
    "You reflect on a failed attempt and write a better one.",
    "{context}Attempt:\n<VARIABLE>\n{value}\n</VARIABLE>\n\nIts evaluation:\n<EVALUATION>\n{evaluation}\n"
    f"</EVALUATION>\n\nIn a few sentences, say why it failed; then write a corrected attempt inside <{TAG}></{TAG}>.",
)

ALL = [BACKWARD_EVALUATION, BACKWARD_LLM_CALL, BACKWARD_FUNCTION, BACKWARD_AGGREGATE, AGGREGATE, TEXT_LOSS,
       TGD_STEP, ONE_CALL_STEP, REPAIR, SOLVE, REFLECT]
VERSIONS = {p.name: p.version for p in ALL}


def task_section(context: str) -> str:
    """The task statement that opens a prompt, or nothing when the caller has none."""
    return f"Task:\n{context.strip()}\n\n" if context and context.strip() else ""


def bullet_section(title: str, items: list[str]) -> str:
    """An optional prompt section; empty when there is nothing to say, so no tokens are spent on it."""
    if not items:
        return ""
    return f"\n{title}:\n" + "\n".join(f"- {item}" for item in items) + "\n"


def solve_messages(context: str, role_description: str, constraints: list[str] | None = None) -> list[Message]:
    """A zero-shot request for a first value (used by domains' `initial` and the zero-shot baselines)."""
    return SOLVE.messages(context=task_section(context), role=role_description,
                          constraints=bullet_section("Constraints", constraints or []))


def reflect_messages(context: str, value: str, evaluation_text: str) -> list[Message]:
    """A Reflexion-style request: explain the failure, then propose a corrected value."""
    return REFLECT.messages(context=task_section(context), value=value, evaluation=evaluation_text)
