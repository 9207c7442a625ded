"""What real-model runs showed, each fixed and held here with scripted replies:

- repeats: a proposal equal to the current value or to one already evaluated is re-asked (named, temperature above
  0, seeds from the step's), never evaluated again, inside the same LLM-call accounting;
- overshoot: after a worse step the chain steps from its best and says the last change made things worse;
- cut-off replies (finish_reason "length") are never trimmed into a value; the re-ask quotes only their tail;
- momentum is a compact table of past attempts, not the attempts verbatim;
- restarts: after an edit that did not beat the best, the chain writes a new value from the best's evaluation,
  then edits the best again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged

from tgdomains import TGD, Variable
from tgdomains.engines.base import BaseEngine, Completion, Usage, estimate_tokens
from tgdomains.engines.scripted import ScriptedEngine
from tgdomains.run import optimize


@dataclass(frozen=True)
class _Reply(Completion):
    finish_reason: str | None = None


class CutEngine(BaseEngine):
    """Scripted replies as (text, finish_reason) pairs; records every request like ScriptedEngine."""

    model = "cut"

    def __init__(self, replies: list[tuple[str, str | None]]) -> None:
        super().__init__()
        self.replies, self.requests = list(replies), []

    def _complete(self, request):
        self.requests.append(request.to_dict())
        text, reason = self.replies.pop(0)
        return _Reply(text, Usage(sum(estimate_tokens(c) for _, c in request.messages), estimate_tokens(text)),
                      finish_reason=reason)


def quiet() -> dict:
    return {"progress": False}


def last_user(request: dict) -> str:
    return request["messages"][-1]["content"]


# -- repeats -------------------------------------------------------------------------------------------------------


def test_a_repeat_of_the_current_value_is_re_asked_at_a_temperature_with_a_derived_seed():
    engine = ScriptedEngine([tagged("v0"), tagged("v1")])
    x = Variable("v0", "answer", requires_grad=True)
    opt = TGD([x], engine, seed=7)
    x.gradients = ["make it bigger"]
    opt.step()
    assert x.value == "v1" and opt.report(x).status == "updated"
    first, again = engine.requests
    assert first["temperature"] == 0.0 and again["temperature"] > 0
    assert again["seed"] not in (None, 7)
    # the same request with the repeat named at its end (the task and feedback stay in view)
    assert last_user(again).startswith(last_user(first))
    assert "identical to the current value" in last_user(again)
    assert "re-asked" in opt.report(x).problem


def test_no_iteration_evaluates_a_repeated_value_and_the_repeat_is_named_with_its_score(tmp_path):
    domain = ArithmeticDomain()
    # iteration 1 proposes 2 * 5; iteration 2 proposes 1 + 1 (step #0) first, then 3 * 8 when told
    engine = ScriptedEngine(["fb", tagged("2 * 5"), "fb", tagged("1 + 1"), tagged("3 * 8")])
    result = optimize(domain, Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=2, **quiet())
    assert domain.evaluated == ["1 + 1", "2 * 5", "3 * 8"]  # every iteration evaluated a new value
    assert [s.status for s in result.steps] == ["initial", "updated", "updated"] and result.passed
    re_ask = last_user(engine.requests[4])
    assert "identical to step #0 (score -22" in re_ask and "off by 22" in re_ask
    assert result.usage["llm_calls"] == 5  # the re-ask is counted like any other call


def test_a_repeat_of_the_current_value_is_named_with_what_it_scored(tmp_path):
    engine = ScriptedEngine(["fb", tagged("2 * 5"), "fb", tagged("2 * 5"), tagged("3 * 8")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=2,
                      **quiet())
    assert result.passed
    assert "identical to the current value, step #1 (score -14: " in last_user(engine.requests[4])


def test_the_last_re_ask_leaves_the_repeated_value_out_of_view(tmp_path):
    # the model hands the current value back twice; the last re-ask shows only the task and what the evaluation said
    engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("1 + 1"), tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=1,
                      **quiet())
    assert result.passed and result.usage["llm_calls"] == 4
    named, fresh = engine.requests[2], engine.requests[3]
    assert "<VARIABLE>\n1 + 1\n</VARIABLE>" in last_user(named) and "identical to the current value" in last_user(named)
    assert "1 + 1" not in last_user(fresh) and "off by 22" in last_user(fresh) and "From scratch" in last_user(fresh)
    assert (named["temperature"], fresh["temperature"]) == (0.7, 0.7) and named["seed"] != fresh["seed"]


def test_the_fresh_request_hides_the_value_where_the_evaluation_names_it():
    from tgdomains.optimizer import out_of_view

    assert out_of_view("CC(N)=O on DRD2: Vina -3.1", "CC(N)=O") == "(that value) on DRD2: Vina -3.1"
    assert out_of_view("CCC(N)=O scores 2", "C(N)=O") == "CCC(N)=O scores 2"  # only whole words


def test_an_unusable_re_ask_is_followed_by_the_fresh_request(tmp_path):
    engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("1 +"), tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=1,
                      **quiet())
    assert result.passed and "From scratch" in last_user(engine.requests[3])


def test_a_step_whose_last_re_ask_was_unusable_is_failed_not_a_repeat(tmp_path):
    engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("1 + 1"), tagged("1 +")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=1,
                      **quiet())
    step = result.steps[1]
    assert step.status == "failed" and step.value == "1 + 1" and "the new reply was unusable" in step.problem


def test_a_copy_of_a_seen_value_in_the_feedback_is_omitted_and_a_new_one_kept(tmp_path):
    # a small critic "rewrites" the value: once unchanged (the optimizer would copy it), once changed
    critique = "Here is the updated value:\n```\n1 + 1\n```\nOr try:\n```\n4 * 6\n```\n"
    engine = ScriptedEngine([critique, tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=1,
                      **quiet())
    step_prompt = last_user(engine.requests[1])
    assert "```\n1 + 1\n```" not in step_prompt and "```\n4 * 6\n```" in step_prompt
    assert "(a block omitted here: it was identical to the current value, step #0 (score -22" in step_prompt
    assert result.passed and result.steps[1].feedback == critique  # stored as the critic wrote it


def test_re_asks_are_deterministic(tmp_path):
    def run(path):
        engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("4 * 6")])
        optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=path, iterations=1, seed=3, **quiet())
        return [(r["seed"], r["temperature"], r["messages"]) for r in engine.requests]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_the_llm_call_budget_counts_re_asks(tmp_path):
    engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("1 + 1"), tagged("1 + 1"), "fb", tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=5,
                      llm_call_budget=4, **quiet())
    assert result.usage["llm_calls"] <= 4 and not result.passed


def test_reflexion_re_asks_a_repeated_reflection(tmp_path):
    domain = ArithmeticDomain()
    engine = ScriptedEngine([tagged("1 + 1", "It was too small. "), tagged("4 * 6", "Multiply. ")])
    result = optimize(domain, Target("t", 24), engine=engine, strategy="reflexion", run_dir=tmp_path / "r",
                      iterations=1, **quiet())
    assert result.passed and domain.evaluated == ["1 + 1", "4 * 6"]
    assert "identical to step #0" in last_user(engine.requests[1]) and engine.requests[1]["temperature"] > 0



def test_reflexion_samples_above_zero_after_unusable_replies(tmp_path):
    # two unusable replies whose problems alternate would otherwise make a cycle of two byte-identical requests
    engine = ScriptedEngine([tagged("2 *"), tagged("(2"), tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, strategy="reflexion", run_dir=tmp_path / "r",
                      iterations=3, **quiet())
    assert result.passed and [s.status for s in result.steps] == ["initial", "failed", "failed", "updated"]
    assert [r["temperature"] for r in engine.requests] == [0.0, 0.7, 1.0]


# -- overshoot -----------------------------------------------------------------------------------------------------


def test_after_a_worse_step_the_chain_steps_from_its_best_and_says_so(tmp_path):
    # iteration 2 edits #1 into the worse "1", iteration 3 restarts (also worse), iteration 4 edits the best again
    engine = ScriptedEngine(["fb of #0", tagged("20 + 3"), "fb of #1", tagged("1"), tagged("2"), tagged("5")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=4,
                      **quiet())
    step_prompt = last_user(engine.requests[5])
    # back at #1, its feedback from iteration 2 is reused: no second backward call on the same evaluation
    assert "fb of #1" in step_prompt and result.usage["llm_calls"] == 6
    assert "<VARIABLE>\n20 + 3\n</VARIABLE>" in step_prompt  # from the best, not from the worse "2"
    assert "the last change made things worse (step #3 scored -22, this value -1)" in step_prompt
    assert "| 1 |" in step_prompt  # the worse attempts are in the table of past attempts
    assert result.steps[4].parent == 1 and result.best_value == "20 + 3"


def test_the_chain_keeps_its_latest_value_while_it_improves(tmp_path):
    engine = ScriptedEngine(["fb", tagged("2 * 5"), "fb", tagged("3 * 5")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=2,
                      **quiet())
    assert result.steps[2].parent == 1 and "made things worse" not in last_user(engine.requests[3])


# -- cut-off replies -----------------------------------------------------------------------------------------------


def test_a_cut_off_reply_is_never_trimmed_into_a_value():
    cut = "Let me think about this carefully. " * 20 + "<IMPROVED_VARIABLE>def f(x):\n    return"
    engine = CutEngine([(cut, "length"), (tagged("short"), "stop")])
    x = Variable("old", "answer", requires_grad=True)
    opt = TGD([x], engine, validate=lambda v: v, max_tokens=64)
    x.gradients = ["fb"]
    opt.step()
    assert x.value == "short" and opt.report(x).status == "repaired"
    again = last_user(engine.requests[1])
    assert "cut off at the token limit (64 tokens)" in again and "shorter" in again
    assert "def f(x):\n    return" in again and again.count("Let me think") < 8  # its tail, not the whole reply
    assert again.startswith(last_user(engine.requests[0]))


def test_an_untagged_cut_off_reply_is_not_read_by_the_domain_parser():
    engine = CutEngine([("2 * 12 and then some more words that", "length"), ("1 + 2 +", "length")])
    x = Variable("1 + 1", "expression", requires_grad=True)
    domain = ArithmeticDomain()
    opt = TGD([x], engine, validate=lambda v: domain.parse(v, Target("t", 24)))
    x.gradients = ["fb"]
    opt.step()
    report = opt.report(x)
    assert x.value == "1 + 1" and report.status == "failed" and "cut off" in report.problem


def test_a_complete_block_before_the_cut_is_used():
    engine = CutEngine([(tagged("v1") + " and an explanation that runs on", "length")])
    x = Variable("v0", "answer", requires_grad=True)
    opt = TGD([x], engine)
    x.gradients = ["fb"]
    opt.step()
    assert x.value == "v1" and len(engine.requests) == 1


# -- prompt size ---------------------------------------------------------------------------------------------------


def test_momentum_is_one_row_per_attempt_and_long_values_show_only_what_differs():
    program = "\n".join(f"line_{i} = {i}" for i in range(60))
    changed = program.replace("line_30 = 30", "line_30 = 31")
    engine = ScriptedEngine([tagged(changed), tagged(program + "\nx = 1")])
    x = Variable(program, "program", requires_grad=True)
    opt = TGD([x], engine, momentum=3)
    x.gradients = ["long feedback. " * 100]
    opt.step(score=0.5)
    x.gradients = ["fb"]
    opt.step(score=0.6)
    prompt = last_user(engine.requests[1])
    row = next(line for line in prompt.splitlines() if line.startswith("1. score 0.5"))
    assert "line_30 = 30" in row and "line_0 = 0" not in row  # the line the current value lacks, not the program
    assert len(row) < 500


def test_reflexion_is_decoded_under_the_reply_grammar(tmp_path):
    engine = ScriptedEngine([tagged("4 * 6", "Multiply. ")])
    optimize(ArithmeticDomain(), Target("t", 24), engine=engine, strategy="reflexion", run_dir=tmp_path / "r",
             iterations=1, **quiet())
    assert "IMPROVED_VARIABLE" in engine.requests[0]["reply_format"]["grammar"]


# -- unusable proposals ----------------------------------------------------------------------------------------------


def test_after_an_unusable_proposal_the_chain_names_it_samples_above_zero_and_reuses_the_feedback(tmp_path):
    # iteration 1: feedback, then an unusable step reply and an unusable repair; iteration 2 must not send the request
    # that failed again (at temperature 0 the model would write the same reply) nor pay for the same feedback twice
    domain = ArithmeticDomain()
    # (iteration 2 is a restart, which does not beat the start; iteration 3 edits the start again)
    engine = ScriptedEngine(["make it 24", tagged("2 *"), tagged("2 * *"), tagged("1"), tagged("3 * 8")])
    result = optimize(domain, Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3, **quiet())
    assert [s.status for s in result.steps] == ["initial", "failed", "updated", "updated"] and result.passed
    first_step, _repair, _restart, second_step = engine.requests[1:]
    assert first_step["temperature"] == 0.0 and second_step["temperature"] > 0
    assert "1 earlier proposal(s) from this value could not be used" in last_user(second_step)
    assert "not an integer arithmetic expression" in last_user(second_step)
    assert "make it 24" in last_user(second_step)  # the reused feedback
    assert result.usage["llm_calls"] == 5 and result.steps[1].feedback == "make it 24"


def test_the_unusable_note_counts_every_unusable_proposal_from_the_parent(tmp_path):
    domain = ArithmeticDomain()
    # edit (and its repair) unusable, restart, edit (and its repair) unusable, restart, edit: the third edit hears of two
    engine = ScriptedEngine(["fb", tagged("("), tagged("("), tagged("1"), tagged(")"), tagged(")"), tagged("2"),
                             tagged("3 * 8")])
    result = optimize(domain, Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=5, **quiet())
    assert [s.status for s in result.steps] == ["initial", "failed", "updated", "failed", "updated", "updated"]
    third = engine.requests[-1]
    assert "2 earlier proposal(s) from this value could not be used" in last_user(third)
    assert third["temperature"] == 1.0  # the second retry samples hotter


def test_a_repaired_reply_that_gave_back_the_current_value_then_nothing_usable_fails_and_the_next_request_differs(tmp_path):
    # what Qwen2.5-Coder-1.5B did on longest-valid-parentheses: cut off, then the current value when asked for a
    # shorter reply, then an unusable reply when told it repeated itself (here the fresh request's reply too)
    engine = CutEngine([("fb", "stop"), ("<IMPROVED_VARIABLE>1 + 1 + 1 + 1 +", "length"), (tagged("1 + 1"), "stop"),
                        (tagged("1 +"), "stop"), (tagged("1 +"), "stop"), (tagged("1"), "stop"),
                        (tagged("3 * 8"), "stop")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3,
                      **quiet())  # iteration 2 restarts (no better than the start); iteration 3 edits again
    assert [s.status for s in result.steps] == ["initial", "failed", "updated", "updated"] and result.passed
    again = engine.requests[-1]
    assert "1 earlier proposal(s) from this value could not be used" in last_user(again) and again["temperature"] > 0


# -- restarts ------------------------------------------------------------------------------------------------------


def test_by_default_a_worse_edit_is_followed_by_a_restart_from_the_evaluation_then_an_edit_of_the_best(tmp_path):
    engine = ScriptedEngine(["fb of #0", tagged("2 + 2"), "fb of #1", tagged("1"), tagged("3"), tagged("20 + 4")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=4,
                      **quiet())  # the default chain: restart="evaluation"
    assert "restart from the evaluation" in result.steps[3].feedback
    assert [s.parent for s in result.steps] == [None, 0, 1, 1, 1] and result.passed
    restart_prompt = last_user(engine.requests[4])
    assert "stopped improving under edits" in restart_prompt and "2 + 2" not in restart_prompt  # best out of view
    assert "IMPROVED_VARIABLE" in engine.requests[4]["reply_format"]["grammar"]
    edit_prompt = last_user(engine.requests[5])
    # no second critique of #1: its feedback from the edit before the restart is reused
    assert result.usage["llm_calls"] == 6 and "fb of #1" in edit_prompt and "<VARIABLE>\n2 + 2\n" in edit_prompt


def test_a_restart_is_marked_in_its_step_and_read_back_from_steps_jsonl(tmp_path):
    import json

    from tgdomains.records import Step

    engine = ScriptedEngine(["fb of #0", tagged("2 + 2"), "fb of #1", tagged("1"), tagged("20 + 4")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3,
                      **quiet())
    assert [s.restart for s in result.steps] == [False, False, False, True]
    lines = [json.loads(line) for line in (tmp_path / "r" / "steps.jsonl").read_text().splitlines()]
    assert ["restart" in d for d in lines] == [False, False, False, True]  # only where true: old records read alike
    assert [Step.from_dict(d).restart for d in lines] == [False, False, False, True]
    # a step recorded before the mark existed says so only in its feedback: read back, it is a restart all the
    # same (resuming such a run counts it; its report draws it)
    old = dict(lines[3])
    del old["restart"]
    assert Step.from_dict(old).restart
    assert not Step.from_dict(lines[2]).restart


def test_the_report_tells_restarts_from_edits(tmp_path):
    pytest.importorskip("matplotlib")
    from tgdomains.report import write_report

    engine = ScriptedEngine(["fb of #0", tagged("2 + 2"), "fb of #1", tagged("1"), tagged("20 + 4")])
    optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3, **quiet())
    write_report(tmp_path / "r", tmp_path / "report")
    rows = [line for line in (tmp_path / "report" / "summary.md").read_text().splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[2] for r in rows[1:]] == ["initial", "updated", "updated", "updated (restart)"]


def test_an_unusable_restart_is_not_counted_against_the_next_edit(tmp_path):
    engine = ScriptedEngine(["fb of #0", tagged("1"), tagged("("), tagged("20 + 4")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3,
                      **quiet())
    assert [s.status for s in result.steps] == ["initial", "updated", "failed", "updated"] and result.passed
    edit = engine.requests[3]
    assert "could not be used" not in last_user(edit) and edit["temperature"] == 0.0
    assert result.usage["llm_calls"] == 4  # the feedback of #0 reused after the restart


def test_an_edit_that_gave_nothing_new_is_followed_by_a_restart(tmp_path):
    # an unusable step reply and an unusable repair: the chain restarts instead of editing the same value again
    engine = ScriptedEngine(["fb of #0", tagged("2 *"), tagged("2 * *"), tagged("20 + 4")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=2,
                      **quiet())
    assert [s.status for s in result.steps] == ["initial", "failed", "updated"] and result.passed
    assert "restart from the evaluation" in result.steps[2].feedback


