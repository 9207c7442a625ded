"""Engines: how the core talks to an LLM. Nothing here imports `openai` or `llama_cpp` until a call needs it."""

from tgdomains.engines.base import BaseEngine, Completion, Engine, Message, Request, Usage, UsageMeter
from tgdomains.engines.budget import BudgetExceeded, RunEngine
from tgdomains.engines.cache import CachedEngine
from tgdomains.engines.cassette import CassetteMiss, RecordingEngine, ReplayEngine
from tgdomains.engines.openai_engine import PRICES_PER_MILLION, EngineError, OpenAIEngine, RetryPolicy
from tgdomains.engines.scripted import ScriptedEngine, ScriptExhausted
from tgdomains.engines.select import NoEngineError, choose_engine

__all__ = [
    "BaseEngine", "BudgetExceeded", "CachedEngine", "CassetteMiss", "Completion", "Engine", "EngineError",
    "Message", "OpenAIEngine", "PRICES_PER_MILLION", "RecordingEngine", "ReplayEngine", "Request", "RetryPolicy",
    "RunEngine", "ScriptExhausted", "ScriptedEngine", "Usage", "UsageMeter",
    "LocalEngine", "LocalEngineError", "NoEngineError", "choose_engine",
]


def __getattr__(name: str) -> object:
    # LocalEngine is exported lazily: `tgdomains.engines.LocalEngine` works, yet `import tgdomains` never loads the
    # local module (and llama_cpp is imported only when a LocalEngine answers its first request).
    if name in ("LocalEngine", "LocalEngineError"):
        from tgdomains.engines import local

        return getattr(local, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
