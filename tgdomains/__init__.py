"""tgdomains: instance optimization with textual gradients, scored by real tools.

    import tgdomains as tg
    result = tg.optimize("radiotherapy", {"case": "prostate-2d"}, engine=engine, run_dir="runs/plan1")
    result = tg.resume("runs/plan1", engine=engine, iterations=20)      # a killed run continues

    # TextGrad's graph, one piece at a time
    x = tg.Variable("def f(): ...", role_description="solution code", requires_grad=True)
    loss = tg.TextLoss("Critique the code for correctness.", engine=engine)(x)
    loss.backward(engine=engine)
    tg.TGD([x], engine=engine, constraints=["keep the signature"], momentum=3).step()
"""

from typing import Any

__version__ = "0.1.0"

from tgdomains import engines  # noqa: E402  (light: no third-party imports)
from tgdomains.domain import Domain, ParseError, Start, get_domain  # noqa: E402
from tgdomains.evaluation import Evaluation  # noqa: E402
from tgdomains.functions import FormattedLLMCall, LLMCall, sum_variables  # noqa: E402
from tgdomains.loss import TextLoss, evaluation_loss  # noqa: E402
from tgdomains.optimizer import TGD  # noqa: E402
from tgdomains.variable import Variable  # noqa: E402

_RUN_LOOP = ("optimize", "resume", "RunResult")  # tgdomains.run, imported on first use


def __getattr__(name: str) -> Any:
    if name in _RUN_LOOP:
        from tgdomains import run

        return getattr(run, name)
    raise AttributeError(f"module 'tgdomains' has no attribute {name!r}")


__all__ = [
    "Domain", "Evaluation", "FormattedLLMCall", "LLMCall", "ParseError", "RunResult", "Start", "TGD", "TextLoss",
    "Variable", "engines", "evaluation_loss", "get_domain", "optimize", "resume", "sum_variables",
]
