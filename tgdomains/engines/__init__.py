"""Engines: how the core talks to an LLM. Nothing here imports `openai` or `llama_cpp` until a call needs it."""

from tgdomains.engines.base import BaseEngine, Completion, Engine, Message, Request, Usage, UsageMeter
from tgdomains.engines.budget import BudgetExceeded, RunEngine
from tgdomains.engines.cache import CachedEngine
from tgdomains.engines.cassette import CassetteMiss, RecordingEngine, ReplayEngine
from tgdomains.engines.openai_engine import PRICES_PER_MILLION, EngineError, OpenAIEngine, RetryPolicy
from tgdomains.engines.scripted import ScriptedEngine, ScriptExhausted

__all__ = [
    "BaseEngine", "BudgetExceeded", "CachedEngine", "CassetteMiss", "Completion", "Engine", "EngineError",
    "Message", "OpenAIEngine", "PRICES_PER_MILLION", "RecordingEngine", "ReplayEngine", "Request", "RetryPolicy",
    "RunEngine", "ScriptExhausted", "ScriptedEngine", "Usage", "UsageMeter",
]
