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

# What a real tool said about the variable, in the critic's and the one-call step's prompts
_EVALUATED = "A real tool evaluated it:\n<EVALUATION>\n{evaluation}\n</EVALUATION>\n"

BACKWARD_EVALUATION = Prompt(
    "backward_evaluation", "1",
    _CRITIC,
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n" + _EVALUATED + "\n"
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
    "tgd_step", "2",
    _OPTIMIZER,
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n"
    "Feedback on it:\n<FEEDBACK>\n{feedback}\n</FEEDBACK>\n{momentum}{examples}{constraints}\n"
    f"Write the improved variable inside <{TAG}></{TAG}>.",
)

ONE_CALL_STEP = Prompt(
    "one_call_step", "2",
    _OPTIMIZER + " Before the tags, write two or three sentences of critique.",
    "{context}The variable ({role}):\n<VARIABLE>\n{value}\n</VARIABLE>\n\n" + _EVALUATED +
    "{momentum}{examples}{constraints}\n"
    f"Critique the variable briefly, then write the improved variable inside <{TAG}></{TAG}>.",
)

REPAIR = Prompt(
    "repair", "1",
    _OPTIMIZER,
    "Your previous reply could not be used: {problem}\n\nPrevious reply:\n<REPLY>\n{reply}\n</REPLY>\n\n"
    f"Reply again with only the corrected complete value inside <{TAG}></{TAG}>.{{constraints}}",
)

# Re-asks append a note to the request's last user message instead of starting a new conversation: the task stays in
# view, and a local engine reuses the whole prompt prefix it has already processed.
REPEATED_NOTE = (
    "\n\nYour previous proposal was identical to {which}; it was already evaluated. Propose a "
    f"different value: change something else, guided by the feedback. Reply with the complete new value inside "
    f"<{TAG}></{TAG}>."
)

# Replaces a fenced block in the feedback that is a copy of a value already evaluated: the optimizer would copy it.
COPY_OMITTED_NOTE = "(a block omitted here: it was identical to {which}; the new value must differ from it)"

# Opens what the optimizer reads when earlier proposals from the same value were unusable: without it the request is
# byte-identical to the one that failed, and at temperature 0 the model writes the same unusable reply again.
UNUSABLE_NOTE = (
    "Note: {count} earlier proposal(s) from this value could not be used; the last one: {problem}. Write a "
    "different value that satisfies the required format and the constraints.\n\n"
)

CUT_OFF_NOTE = (
    "\n\nYour previous reply was cut off at the token limit ({limit}) before the value was complete; it ended "
    "with:\n{tail}\nWrite a shorter complete value (no explanation, no comments, no tests or examples) inside "
    f"<{TAG}></{TAG}>."
)

# The last re-ask after repeats: the value the model keeps handing back is left out of view (a small model copies a
# value it can see, whatever the note says), and only what its evaluation reported is shown. "Begin your reply with"
# because, asked to "put it inside" the tags, the 1.5B model wrote its program before the opening tag (2 of 2 code
# cases), where the reply grammar cuts it at the first "<"; told where to begin, 2 of 2 replies were well formed.
FRESH_VALUE = Prompt(
    "fresh_value", "1",
    _OPTIMIZER,
    "{context}Edits of the {role} kept returning it unchanged. Its evaluation:\n<EVALUATION>\n{evaluation}\n"
    "</EVALUATION>\n{constraints}\nFrom scratch, write a new {role}, different from that one, that fixes what "
    f"the evaluation reports. Begin your reply with <{TAG}>, then the value, then </{TAG}>.",
)

# A chain whose edits stopped improving writes a new value from the task and the best value's evaluation, with the
# best value out of view (a small model copies a value it can see): edits of one program kept the approach the model
# chose first, while independent samples (zero-shot) solved more problems at the same budget.
RESTART = Prompt(
    "restart", "1",
    _OPTIMIZER,
    "{context}The best variable so far ({role}) stopped improving under edits. Its evaluation:\n<EVALUATION>\n"
    "{evaluation}\n</EVALUATION>\n{constraints}\nFrom scratch, write a new variable of the same kind, different "
    f"from that one, that fixes what the evaluation reports. Begin your reply with <{TAG}>, then the value, then "
    f"</{TAG}>.",
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

# Inputs, never expected outputs: the programs that pass the visible tests are run on them and grouped by what they
# return (CodeT, AlphaCode), so a model that cannot say the right answer can still ask a question that splits them.
TEST_INPUTS = Prompt(
    "test_inputs", "1",
    "You write test inputs for a function. Reply with calls only, one per line, between <CALLS> and </CALLS>: no "
    "expected values, no asserts, no explanation.",
    "{context}Write {count} different calls of `{entry_point}` with valid arguments for this task: edge cases first "
    "(smallest inputs, empty or single elements, repeated values), then larger typical cases. One call per line, "
    "such as {example}, literal arguments only.",
)

RE_ASK_VERSIONS = {"repeated_note": "2", "cut_off_note": "1", "copy_omitted_note": "1"}
ALL = [BACKWARD_EVALUATION, BACKWARD_LLM_CALL, BACKWARD_FUNCTION, BACKWARD_AGGREGATE, AGGREGATE, TEXT_LOSS,
       TGD_STEP, ONE_CALL_STEP, REPAIR, FRESH_VALUE, RESTART, SOLVE, REFLECT, TEST_INPUTS]
VERSIONS = {**{p.name: p.version for p in ALL}, **RE_ASK_VERSIONS}


def task_section(context: str) -> str:
    """The task statement that opens a prompt, or nothing when the caller has none."""
    return f"Task:\n{context.strip()}\n\n" if context and context.strip() else ""


def bullet_section(title: str, items: list[str]) -> str:
    """An optional prompt section; empty when there is nothing to say, so no tokens are spent on it."""
    if not items:
        return ""
    return f"\n{title}:\n" + "\n".join(f"- {item}" for item in items) + "\n"


def constraints_section(constraints: list[str]) -> str:
    """The constraints as every request for a new value shows them (TGD steps, fresh re-asks, restarts)."""
    return bullet_section("Constraints the new value must satisfy", constraints)


def solve_messages(context: str, role_description: str, constraints: list[str] | None = None) -> list[Message]:
    """A zero-shot request for a first value (used by domains' `initial` and the zero-shot baselines)."""
    return SOLVE.messages(context=task_section(context), role=role_description,
                          constraints=bullet_section("Constraints", constraints or []))


def reflect_messages(context: str, value: str, evaluation_text: str) -> list[Message]:
    """A Reflexion-style request: explain the failure, then propose a corrected value."""
    return REFLECT.messages(context=task_section(context), value=value, evaluation=evaluation_text)


def re_ask(messages: list[Message], note: str) -> list[Message]:
    """The same request with `note` appended to its last user message (a repeat or a cut-off reply re-asked)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return [*messages[:last], {**messages[last], "content": messages[last]["content"] + note}, *messages[last + 1:]]


_SUMMARY_CHARS = 400  # a value this short (once on one line) is shown whole in the table of past attempts
_GIST_CHARS = 200  # of each past attempt's feedback or evaluation


def attempts_section(attempts: list[tuple[float | None, str, str]], current: str) -> str:
    """Momentum as a compact table, oldest first: each past attempt's score, the value (whole when short, else the
    lines where it differs from the current value) and the gist of what its feedback said. Repeating whole past
    values and reports verbatim made prompt processing most of a local run's time."""
    if not attempts:
        return ""
    rows = [f"{i}. score {'n/a' if score is None else f'{score:.4g}'} | {value_summary(value, current)} | "
            f"{gist(feedback)}" for i, (score, value, feedback) in enumerate(attempts, 1)]
    return ("\nPast attempts, oldest first (score | value | what its feedback said); do not repeat them:\n"
            + "\n".join(rows) + "\n")


def value_summary(value: str, current: str) -> str:
    """One line for a past value: the value itself when short, else its lines that the current value lacks."""
    if value == current:
        return "the current value"
    flat = " ".join(value.split())
    if len(flat) <= _SUMMARY_CHARS:
        return flat
    now = set(current.splitlines())
    changed = [line.strip() for line in value.splitlines() if line.strip() and line not in now]
    shown = "; ".join(line[:100] for line in changed[:4])
    more = f" (+{len(changed) - 4} more lines)" if len(changed) > 4 else ""
    return f"{len(value.splitlines())} lines; differs from the current value in: {shown}{more}"


def gist(text: str) -> str:
    """The first sentences of a feedback or evaluation text, on one line."""
    flat = " ".join((text or "").split())
    if len(flat) <= _GIST_CHARS:
        return flat or "(none)"
    cut = flat[:_GIST_CHARS]
    end = cut.rfind(". ")
    return (cut[:end + 1] if end > _GIST_CHARS // 2 else cut) + " ..."
