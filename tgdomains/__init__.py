"""tgdomains: instance optimization with textual gradients.

    import tgdomains as tg
    x = tg.Variable("def f(): ...", role_description="solution code", requires_grad=True)
    loss = tg.TextLoss("Critique the code for correctness.", engine=engine)(x)
    loss.backward(engine=engine)
    tg.TGD([x], engine=engine, constraints=["keep the signature"], momentum=3).step()
"""

__version__ = "0.1.0"

from tgdomains import engines  # noqa: E402  (light: no third-party imports)
from tgdomains.domain import Domain, ParseError, Start, get_domain  # noqa: E402
from tgdomains.evaluation import Evaluation  # noqa: E402
from tgdomains.functions import FormattedLLMCall, LLMCall, aggregate, function_node, sum_variables  # noqa: E402
from tgdomains.loss import TextLoss, evaluation_loss  # noqa: E402
from tgdomains.optimizer import TGD  # noqa: E402
from tgdomains.variable import Variable  # noqa: E402

__all__ = [
    "Domain", "Evaluation", "FormattedLLMCall", "LLMCall", "ParseError", "Start", "TGD", "TextLoss", "Variable",
    "aggregate", "engines", "evaluation_loss", "function_node", "get_domain", "sum_variables",
]
