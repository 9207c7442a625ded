"""Backward: topological order and the chain rule's content through LLM calls."""

from tgdomains import LLMCall, TextLoss, Variable, sum_variables
from tgdomains.engines import ScriptedEngine
from tgdomains.functions import aggregate, function_node


def test_backward_visits_in_topological_order_and_carries_feedback_upstream():
    # x -> y = LLM(x) -> loss = TextLoss(y): loss's feedback on y must appear in the prompt that criticises x.
    engine = ScriptedEngine(["Y-ANSWER", "LOSS-CRITIQUE", "FEEDBACK-FOR-Y", "FEEDBACK-FOR-X"])
    x = Variable("What is 2+2?", "question", requires_grad=True)
    y = LLMCall(engine)(x, output_role="answer")
    loss = TextLoss("Check the answer.", engine)(y)
    loss.backward(engine)

    assert y.gradients == ["FEEDBACK-FOR-Y"]
    assert x.gradients == ["FEEDBACK-FOR-X"]
    backward_to_y, backward_to_x = engine.requests[2]["messages"][-1]["content"], engine.requests[3]["messages"][-1]["content"]
    assert "LOSS-CRITIQUE" in backward_to_y and "Y-ANSWER" in backward_to_y
    # The chain rule: x's prompt carries the feedback its output received, and the output itself.
    assert "FEEDBACK-FOR-Y" in backward_to_x and "Y-ANSWER" in backward_to_x and "What is 2+2?" in backward_to_x


def test_constant_inputs_get_no_feedback():
    engine = ScriptedEngine(["OUT", "CRIT", "FB-Y", "FB-SUM"])
    system = Variable("be brief", "instruction", requires_grad=False)
    x = Variable("draft", "draft", requires_grad=True)
    y = LLMCall(engine)(sum_variables([system, x]))
    TextLoss("judge", engine)(y).backward(engine)
    # forward, judge, loss -> y, y -> sum node; the sum hands its feedback to x without a call, to `system` not at all
    assert len(engine.requests) == 4
    assert x.gradients == ["FB-SUM"] and system.gradients == []


def test_sum_passes_each_gradient_exactly_once():
    engine = ScriptedEngine(["CRIT", "FB-SUM"])
    a = Variable("a", "part a", requires_grad=True)
    b = Variable("b", "part b", requires_grad=True)
    s = sum_variables([a, b, a])
    TextLoss("judge", engine)(s).backward(engine)
    assert a.gradients == ["FB-SUM"] and b.gradients == ["FB-SUM"]


def test_aggregate_backward_reaches_every_input_even_when_the_reply_skips_one():
    engine = ScriptedEngine(["SUMMARY", "CRIT", "FB-AGG",
                             "<FEEDBACK_0>for zero</FEEDBACK_0> (nothing for input 1)"])
    xs = [Variable("first", "note", requires_grad=True), Variable("second", "note", requires_grad=True)]
    s = aggregate(xs, engine)
    TextLoss("judge", engine)(s).backward(engine)
    assert xs[0].gradients == ["for zero"]
    assert xs[1].gradients and "nothing for input 1" in xs[1].gradients[0]


def test_function_node_enters_the_graph():
    engine = ScriptedEngine(["CRIT", "FB-Y", "FB-X"])
    x = Variable("3", "number", requires_grad=True)
    y = function_node(lambda v: str(int(v) ** 2), [x], description="squares its input")
    assert y.value == "9"
    TextLoss("Is it above 10?", engine)(y).backward(engine)
    assert y.gradients == ["FB-Y"] and x.gradients == ["FB-X"]
    last = engine.requests[-1]["messages"][-1]["content"]
    assert "squares its input" in last and "FB-Y" in last
