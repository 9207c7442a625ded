"""`check_domain`: does a domain keep the contract the core relies on? (In the spirit of scikit-learn's
`check_estimator`: run it in a test of every domain.)

    from tgdomains.checks import check_domain
    check_domain(MyDomain(), {"number": 24})        # the args `load` takes; raises DomainCheckError naming the rule

It evaluates real candidates (the initial value, and a few that must be refused), so it takes as long as a handful
of evaluations.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

from tgdomains.domain import Domain, ParseError, Start
from tgdomains.evaluation import Evaluation

# Replies no domain may accept as a candidate: empty, prose, a cut-off tag, control characters.
UNUSABLE = ["", "   \n", "I am not sure what to write here, sorry.", "<IMPROVED_VARIABLE>unfinished", "\x00\x01\x02"]


class DomainCheckError(AssertionError):
    """A domain broke a rule of the contract; the message names the rule and what was found."""


def check_domain(domain: Domain, args: dict[str, Any], *, engine: Any = None) -> list[str]:
    """Check `domain` on the instance `domain.load(args)`; returns the names of the checks that passed."""
    passed: list[str] = []

    def check(name: str, ok: bool, found: Any = "") -> None:
        if not ok:
            raise DomainCheckError(f"{type(domain).__name__}: {name}" + (f" (found: {found!r})" if found != "" else ""))
        passed.append(name)

    check("is a tgdomains.domain.Domain (a subclass of it)", isinstance(domain, Domain), type(domain).__mro__)
    check("name is a non-empty identifier-like string", isinstance(domain.name, str) and domain.name.strip() != ""
          and " " not in domain.name, domain.name)
    check("default_iterations is a positive int", isinstance(domain.default_iterations, int)
          and domain.default_iterations >= 1, domain.default_iterations)
    instance = domain.load(args)
    check("the instance has a str id", isinstance(getattr(instance, "id", None), str), getattr(instance, "id", None))
    check("the instance pickles and unpickles to the same id (batches, resume)",
          getattr(pickle.loads(pickle.dumps(instance)), "id", None) == instance.id)
    check("load_many returns a list of instances", isinstance(domain.load_many(args), list))
    context = domain.context(instance)
    check("context(instance) is non-empty text", isinstance(context, str) and context.strip() != "", context)
    start = domain.initial(instance, engine)
    check("initial(instance, engine) returns a Start with a text value", isinstance(start, Start)
          and isinstance(start.value, str) and isinstance(start.role_description, str), start)
    check("the initial value is canonical: parse(value) == value", _parse(domain, start.value, instance) == start.value,
          _parse(domain, start.value, instance))
    evaluation = domain.evaluate(start.value, instance)
    _check_evaluation(check, "evaluate(initial value)", evaluation)
    check("the initial value is valid", evaluation.valid, evaluation.text[:200])
    for reply in UNUSABLE:
        check(f"parse refuses the unusable reply {reply[:20]!r} with ParseError",
              isinstance(_parse(domain, reply, instance), ParseError))
        try:
            refused = domain.evaluate(reply, instance)
        except Exception as exc:  # noqa: BLE001 - the rule is exactly that nothing escapes
            check(f"evaluate({reply[:20]!r}) does not raise", False, f"{type(exc).__name__}: {exc}")
        _check_evaluation(check, f"evaluate({reply[:20]!r})", refused)
        check(f"evaluate({reply[:20]!r}) is not valid and not passed", not refused.valid and not refused.passed,
              refused.to_dict())
    objectives = domain.objectives(instance)
    check("objectives(instance) maps metric names to 'max' or 'min'", isinstance(objectives, dict) and
          all(isinstance(k, str) and v in ("max", "min") for k, v in objectives.items()), objectives)
    missing = [k for k in objectives if k != "score" and k not in evaluation.metrics]
    check("every objective is a metric of a valid evaluation of this instance", not missing, missing)
    final = domain.finalize(start.value, instance)
    check("finalize returns a JSON-able dict", isinstance(final, dict) and _jsonable(final), final)
    try:
        candidate: Any = domain.candidate_from_args(args, instance)
    except ValueError as exc:  # args that name no candidate may be refused, with a message that says what to give
        candidate = str(exc) or None
    check("candidate_from_args returns text (or refuses with a ValueError that says why)", isinstance(candidate, str))
    strategies = domain.strategies()
    check("strategies() maps names to Strategy classes of that name", isinstance(strategies, dict) and all(
        _is_strategy(cls) and cls.name == name for name, cls in strategies.items()), strategies)
    return passed


def _parse(domain: Domain, raw: str, instance: Any) -> str | ParseError | Exception:
    try:
        return domain.parse(raw, instance)
    except ParseError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported by the check that expected a ParseError
        return exc


def _check_evaluation(check, what: str, evaluation: Any) -> None:
    check(f"{what} returns an Evaluation", isinstance(evaluation, Evaluation), type(evaluation))
    check(f"{what}: score is a float, finite when valid", isinstance(evaluation.score, float) and
          (math.isfinite(evaluation.score) or not evaluation.valid), evaluation.score)
    check(f"{what}: text says something", evaluation.text.strip() != "" or evaluation.passed)
    check(f"{what}: to_dict is JSON-able and round-trips",
          _jsonable(evaluation.to_dict()) and Evaluation.from_dict(evaluation.to_dict()).to_dict() == evaluation.to_dict())


def _jsonable(data: Any) -> bool:
    try:
        json.dumps(data, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def _is_strategy(cls: Any) -> bool:
    from tgdomains.strategies import Strategy

    return isinstance(cls, type) and issubclass(cls, Strategy)
