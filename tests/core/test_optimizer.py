"""TGD: momentum and constraints in the prompt, the repair path, one-call mode, never raising."""

from arithmetic_domain import tagged

from tgdomains import TGD, ParseError, TextLoss, Variable
from tgdomains.engines import ScriptedEngine


def _prompt(engine: ScriptedEngine, i: int) -> str:
    return engine.requests[i]["messages"][-1]["content"]


def test_constraints_examples_and_momentum_reach_the_prompt():
    engine = ScriptedEngine([tagged("v1"), tagged("v2"), tagged("v3")])
    x = Variable("v0", "answer", requires_grad=True)
    opt = TGD([x], engine, constraints=["keep the signature"], examples=["EXAMPLE-VALUE"], momentum=2)
    for score, fb in [(0.1, "fb-a"), (0.2, "fb-b"), (0.3, "fb-c")]:
        x.gradients = [fb]
        opt.step(score=score)
    first, third = _prompt(engine, 0), _prompt(engine, 2)
    assert "keep the signature" in first and "EXAMPLE-VALUE" in first
    assert "Past attempts" not in first  # nothing to remember yet
    # momentum=2: the last two past values with their scores and feedback, one row each, the oldest one dropped
    assert "1. score 0.1 | v0 | fb-a" in third
    assert "2. score 0.2 | v1 | fb-b" in third
    assert "3. score" not in third
    assert x.value == "v3"


def test_momentum_zero_shows_no_history():
    engine = ScriptedEngine([tagged("v1"), tagged("v2")])
    x = Variable("v0", "answer", requires_grad=True)
    opt = TGD([x], engine, momentum=0)
    opt.step(score=1.0)
    opt.step(score=2.0)
    assert "Past attempts" not in _prompt(engine, 1)


def test_malformed_reply_gets_one_repair_request():
    engine = ScriptedEngine(["no tags here", tagged("fixed")])
    x = Variable("old", "answer", requires_grad=True)
    opt = TGD([x], engine, constraints=["be short"])
    x.gradients = ["fb"]
    opt.step()
    assert x.value == "fixed" and opt.report(x).status == "repaired"
    repair = _prompt(engine, 1)
    assert "no tags here" in repair and "no <IMPROVED_VARIABLE>" in repair and "be short" in repair


def test_failed_repair_keeps_the_last_good_value_and_records_why():
    engine = ScriptedEngine(["<IMPROVED_VARIABLE>cut off", "still nothing"])
    x = Variable("old", "answer", requires_grad=True)
    opt = TGD([x], engine)
    opt.step()
    report = opt.report(x)
    assert x.value == "old" and report.status == "failed"
    assert "not closed" in report.problem and "after repair" in report.problem


def test_domain_validation_failure_is_repaired_with_the_reason():
    def validate(raw: str) -> str:
        if not raw.isdigit():
            raise ParseError(f"{raw!r} is not a number")
        return str(int(raw))

    engine = ScriptedEngine([tagged("twelve"), tagged("0012")])
    x = Variable("1", "number", requires_grad=True)
    opt = TGD([x], engine, validate=validate)
    opt.step()
    assert x.value == "12"
    assert "'twelve' is not a number" in _prompt(engine, 1)


def test_engine_error_never_escapes_step():
    engine = ScriptedEngine([])  # raises ScriptExhausted on the first call
    x = Variable("old", "answer", requires_grad=True)
    opt = TGD([x], engine)
    opt.step()
    assert x.value == "old" and "engine error" in opt.report(x).problem


def test_one_call_mode_uses_the_evaluation_and_records_the_critique():
    engine = ScriptedEngine(["It is too long. " + tagged("short")])
    x = Variable("a very long value", "answer", requires_grad=True)
    opt = TGD([x], engine, one_call=True)
    opt.step(score=0.5, evaluation_text="LENGTH 17 > 5")
    assert len(engine.requests) == 1 and "LENGTH 17 > 5" in _prompt(engine, 0)
    assert x.value == "short" and opt.report(x).feedback == "It is too long."


def test_textgrad_style_api_end_to_end():
    engine = ScriptedEngine(["critique: off by one", "feedback: use <=", tagged("def f(n): return n <= 3")])
    x = Variable("def f(n): return n < 3", role_description="solution code", requires_grad=True)
    loss = TextLoss("Critique the code for correctness.", engine=engine)(x)
    loss.backward(engine=engine)
    opt = TGD([x], engine=engine, constraints=["keep the signature"], momentum=3)
    opt.step()
    assert x.value == "def f(n): return n <= 3"
    assert "feedback: use <=" in _prompt(engine, 2)


def test_an_untagged_reply_is_read_by_the_domain_parser_when_it_can():
    def validate(raw: str) -> str:
        digits = "".join(c for c in raw if c.isdigit())
        if not digits:
            raise ParseError("no number in the reply")
        return digits

    engine = ScriptedEngine(["The answer is 42", "I cannot answer", "still prose"])
    x = Variable("1", "number", requires_grad=True)
    opt = TGD([x], engine, validate=validate)
    opt.step()
    assert x.value == "42" and opt.report(x).status == "updated" and "no tags" in opt.report(x).problem
    opt.step()  # neither the reply nor the repair holds a number: the tag error is what the repair prompt names
    assert x.value == "42" and opt.report(x).status == "failed"
    assert "no <IMPROVED_VARIABLE>" in engine.requests[2]["messages"][-1]["content"]
