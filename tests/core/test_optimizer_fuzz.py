"""Malformed optimizer replies, generated: 10,000 through `extract_tagged` and `TGD.step` (4,500 steps).

Each must give a value or a ParseError naming what is wrong (extract_tagged), and `TGD.step()` must never raise:
random text, partial, nested and mis-cased tags, huge replies, unicode, validators that raise, engines that fail.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from arithmetic_domain import ArithmeticDomain, Target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgdomains.domain import ParseError
from tgdomains.engines import ScriptedEngine
from tgdomains.optimizer import TGD, extract_tagged
from tgdomains.run import optimize
from tgdomains.variable import Variable

OPEN, CLOSE = "<IMPROVED_VARIABLE>", "</IMPROVED_VARIABLE>"
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example, HealthCheck.function_scoped_fixture])

PIECES = st.sampled_from([
    OPEN, CLOSE, OPEN.lower(), CLOSE.lower(), "<Improved_Variable>", "</IMPROVED_VARIABLE", "<IMPROVED_VARIABLE",
    "<IMPROVED_VARIABLE >", "< /IMPROVED_VARIABLE>", "<VARIABLE>", "</FEEDBACK>", "</>", "<", ">", "\n", "\r\n", " ",
    "\t", "4 * 6", "2 + 2", "```python\n", "```", "{", "}", "{value}", "%s", "\\", "\x00", "é", "🙂", "\u202e",
    "\ufeff", "ß", "İ", "ﬁ", "𝟒", "٤", "\u0085", "\u2028",
])
FRAGMENTS = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=40).map("".join)
HUGE = st.builds(lambda head, value, tail, n, m: head * n + OPEN + value + CLOSE + tail * m,
                 st.sampled_from(["x", "é", "🙂", "<", "\n", "<IMPROVED_VARIABLE"]), st.text(max_size=50),
                 st.sampled_from(["y", "</IMPROVED_VARIABLE>", "\n"]), st.integers(0, 50_000), st.integers(0, 5_000))
MANY_TAGS = st.builds(lambda unit, n: unit * n, st.sampled_from([OPEN, CLOSE, OPEN + "a", OPEN + CLOSE, CLOSE + OPEN,
                                                                 OPEN + OPEN + "v" + CLOSE]), st.integers(0, 300))
REPLIES = st.one_of(st.text(max_size=400), FRAGMENTS, FRAGMENTS, HUGE, MANY_TAGS)


def _no_tag_text(max_size: int = 60):
    return st.text(max_size=max_size).filter(lambda s: "improved_variable" not in s.lower())


@pytest.mark.slow
@settings(FUZZ, max_examples=4000)
@given(reply=REPLIES)
def test_extract_tagged_gives_a_clean_value_or_a_parse_error(reply):
    try:
        value = extract_tagged(reply)
    except ParseError as exc:
        assert "IMPROVED_VARIABLE" in str(exc)
        return
    assert value.strip() and value in reply
    assert CLOSE.lower() not in value.lower()  # never reads past a closing tag


@settings(FUZZ, max_examples=1500)
@given(prefix=_no_tag_text(), value=_no_tag_text(), suffix=st.one_of(_no_tag_text(), st.just(CLOSE + " trailing")),
       earlier=st.booleans())
def test_extract_tagged_finds_the_last_block(prefix, value, suffix, earlier):
    reply = prefix + (OPEN + "an earlier draft" + CLOSE if earlier else "") + OPEN + value + CLOSE + suffix
    if value.strip():
        assert extract_tagged(reply) == value.strip("\n")
    else:
        with pytest.raises(ParseError, match="empty"):
            extract_tagged(reply)


class Boom(Exception):
    pass


def _validator(kind: str):
    domain, target = ArithmeticDomain(), Target("t", 24)

    def validate(raw: str) -> str:
        if kind == "identity":
            return raw
        if kind == "arithmetic":
            return domain.parse(raw, target)
        if kind == "upper":
            return raw.upper()
        if kind == "parse_error":
            raise ParseError(f"not acceptable: {raw[:20]!r}")
        if kind == "bug":  # a domain bug of any kind is an unusable reply, not a crash
            raise [Boom("validator bug"), KeyError("k"), ZeroDivisionError(), RecursionError(), TypeError("t"),
                   UnicodeError("u")][len(raw) % 6]
        raise AssertionError(kind)

    return validate


ENGINE_ERRORS = [ConnectionError("endpoint down"), TimeoutError("slow"), RuntimeError("5xx"), ValueError("json")]


@pytest.mark.slow
@settings(FUZZ, max_examples=2250)
@given(first=REPLIES, second=REPLIES, value=st.text(max_size=80), validator=st.sampled_from(
       ["identity", "arithmetic", "upper", "parse_error", "bug", None]), one_call=st.booleans(),
       momentum=st.integers(0, 3), fail_at=st.sampled_from([None, None, None, 0, 1]),
       score=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), feedback=st.text(max_size=80))
def test_tgd_step_never_raises(first, second, value, validator, one_call, momentum, fail_at, score, feedback):
    calls = []

    def respond(messages):
        calls.append(messages)
        if fail_at == len(calls) - 1:
            raise ENGINE_ERRORS[len(value) % len(ENGINE_ERRORS)]
        return first if len(calls) == 1 else second

    x = Variable(value, "an arithmetic expression", requires_grad=True)
    x.gradients = [feedback]
    validate = _validator(validator) if validator else None
    opt = TGD([x], ScriptedEngine(respond), constraints=["{keep} braces"], examples=["1 + 1"], momentum=momentum,
              context="Reach {24}.", validate=validate, one_call=one_call)
    for _ in range(2):  # a second step exercises momentum built from the first
        old = x.value
        calls.clear()
        opt.step(score=score, evaluation_text=feedback)
        report = opt.report(x)
        assert report.status in ("updated", "repaired", "failed")
        if report.repeats:  # the reply repeated the current value: re-asked, up to two more calls
            assert len(report.repeats) <= 2 and len(calls) <= 2 + len(report.repeats)
            assert x.value != old or report.problem  # still the old value: the problem says why
            first, second = second, first
            continue
        if report.status == "failed":
            assert x.value == old and report.problem
            if "after repair" in report.problem:  # two unusable replies
                assert len(calls) == 2
            else:  # the engine raised on its last call
                assert report.problem.startswith("engine error") and fail_at == len(calls) - 1
        else:
            reply = first if report.status == "updated" else second
            try:
                expected = extract_tagged(reply)
                assert x.value == (validate(expected) if validate else expected)
            except ParseError:  # no tags: the domain's parser read the whole reply
                assert validate is not None and x.value == validate(reply) and "no tags" in report.problem
            assert len(calls) == (1 if report.status == "updated" else 2)
        if report.status == "repaired":
            assert report.problem
        assert len(calls) <= 2 and len(report.replies) <= 2
        first, second = second, first
    assert len(opt.memory[id(x)]) == min(2, momentum)


@settings(FUZZ, max_examples=150)
@given(replies=st.lists(st.one_of(st.text(max_size=200), FRAGMENTS, st.sampled_from([
    OPEN + "4 * 6" + CLOSE, OPEN + "3 * 7" + CLOSE, OPEN + "1 +" + CLOSE, "", OPEN])), min_size=1, max_size=12),
    strategy=st.sampled_from(["chain", "reflexion"]))
def test_a_run_on_garbage_replies_finishes_and_keeps_the_best(tmp_path_factory, replies, strategy):
    it = iter(replies * 3)
    engine = ScriptedEngine(lambda messages: next(it, OPEN + "2 * 2" + CLOSE))
    d = tmp_path_factory.mktemp("fz")
    result = optimize(ArithmeticDomain(), Target("t", 21), engine=engine, run_dir=d, iterations=4,
                      strategy=strategy, progress=False)
    scores = [s.score for s in result.steps]
    best = max(-math.inf if v is None else v for v in scores)
    assert result.best_evaluation.score == best
    assert result.stop_reason in ("passed", "iteration budget (4) reached")


def test_a_huge_reply_of_unclosed_tags_does_not_hang():
    code = ("from tgdomains.optimizer import extract_tagged\n"
            "from tgdomains.domain import ParseError\n"
            "try:\n    extract_tagged('<IMPROVED_VARIABLE>x' * 50_000)\nexcept ParseError as e:\n    print(e)\n")
    try:  # a subprocess: a regex stuck in C cannot be interrupted in-process
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        pytest.fail("extract_tagged on a 1 MB reply of 50,000 unclosed opening tags ran past 5 s")
    assert "not closed" in done.stdout, done.stderr
