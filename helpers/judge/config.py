"""JudgeConfig: how to judge (backend, judge model, mode, metrics, concurrency, the dollar cap), and its backend.

Without an OpenAI key or base_url the default backend is the offline distilled judge (helpers/judge/distilled/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from helpers.env import load_env, secret
from helpers.judge.backends import DistilledBackend, LocalBackend, OpenAIBackend
from helpers.judge.prompted import JudgeBudgetError
from helpers.judge.rubrics import METRICS, RUBRIC_SETS, RUBRICS

__all__ = ["JudgeBudgetError", "JudgeConfig", "make_backend", "openai_configured", "weak_judge_warning"]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_LOCAL_MODEL = "smollm2-135m"
DEFAULT_DISTILLED_MODEL = "kit-distilled"  # the committed judge in helpers/judge/distilled/data
BACKENDS = ("auto", "distilled", "openai", "local")
# USD per million tokens (input, output); a model missing here is priced at the dearest row unless it is local.
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1": (2.00, 8.00),
          "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40)}
_WEAK_JUDGES = ("smollm2-135m", "tiny-random-llama", "huggingfacetb/smollm2-135m")


@dataclass
class JudgeConfig:
    """How to judge: backend, judge model, scoring mode, metrics, concurrency, retries, the dollar cap, the cache."""

    backend: str = "auto"  # "auto": openai when a key or base_url is set, else distilled; "distilled" (offline,
    #                         learned from GPT-4o judgments), "openai" (any OpenAI-compatible server), "local" (an LLM)
    judge_model: str | None = None  # None -> "gpt-4o-mini" (openai), "smollm2-135m" (local), "kit-distilled"
    base_url: str | None = None  # None -> $OPENAI_BASE_URL or OpenAI itself
    mode: str = "logprob"  # "logprob" (EM papers) or "parse" (endpoints without logprobs)
    temperature: float = 0.0  # the judge's sampling temperature (openai backend; the course grades at 0.2)
    metrics: tuple = METRICS
    rubrics: str = "kit"  # "kit" (our wording) or "paper" (the EM paper's prompts, fetched: helpers.paper)
    paper_commit: str | None = None  # rubrics="paper": pin the paper's file to this commit
    concurrency: int = 16
    max_retries: int = 5  # attempts after the first on 429, 5xx, timeouts; each attempt is held under the cap
    timeout: float = 30.0
    max_dollars: float = 2.0
    cache_path: str | None = None  # None -> <run>/judge_cache.sqlite (judge_run) or the kit cache (judge_table)
    prices: dict = field(default_factory=lambda: dict(PRICES), repr=False)
    max_answer_chars: int = 20_000  # a longer answer is cut to this for the judge (column `cut_for_judge`)
    local_batch_size: int = 16
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"JudgeConfig.backend={self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.backend == "auto":
            self.backend = "openai" if openai_configured(self.base_url) else "distilled"
        if self.mode not in ("logprob", "parse"):
            raise ValueError(f"JudgeConfig.mode={self.mode!r}: use 'logprob' or 'parse'")
        self.metrics = tuple(self.metrics)
        bad = [m for m in self.metrics if m not in RUBRICS]
        if bad or not self.metrics:
            raise ValueError(f"JudgeConfig.metrics has {bad or 'nothing'}: pick from {', '.join(METRICS)}")
        if self.rubrics not in RUBRIC_SETS:
            raise ValueError(f"JudgeConfig.rubrics={self.rubrics!r}: use one of {', '.join(RUBRIC_SETS)}")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"JudgeConfig.temperature={self.temperature!r}: use a value from 0 to 2 (0 = greedy)")
        if self.concurrency < 1 or self.max_dollars < 0 or self.max_retries < 0 or self.max_answer_chars < 100:
            raise ValueError("JudgeConfig.concurrency must be >= 1, max_dollars and max_retries >= 0, "
                             "max_answer_chars >= 100")
        defaults = {"openai": DEFAULT_OPENAI_MODEL, "local": DEFAULT_LOCAL_MODEL, "distilled": DEFAULT_DISTILLED_MODEL}
        self.judge_model = self.judge_model or defaults[self.backend]


def openai_configured(base_url: str | None = None) -> bool:
    """True when an OpenAI key (not a placeholder) or an OpenAI-compatible base_url is set (.env counts)."""
    if base_url:
        return True
    load_env()
    return any(value and not placeholder for value, placeholder in map(secret, ("OPENAI_API_KEY", "OPENAI_BASE_URL")))


def make_backend(config: JudgeConfig):
    """The backend object for a config (a local model is only loaded when it first judges)."""
    if config.backend == "distilled":
        return DistilledBackend(config.judge_model)
    if config.backend == "local":
        return LocalBackend(config.judge_model, device=config.device, batch_size=config.local_batch_size)
    return OpenAIBackend(config.judge_model, config.base_url, config.max_retries, config.timeout, config.temperature)


def weak_judge_warning(config: JudgeConfig) -> str | None:
    """A warning when the judge is a tiny local model whose scores only exercise the pipeline."""
    if config.backend == "local" and str(config.judge_model).lower().rstrip("/").endswith(_WEAK_JUDGES):
        return (f"The local judge {config.judge_model!r} is tiny: its scores mean little and only exercise the "
                "pipeline. For real scores use JudgeConfig(backend='openai') (gpt-4o-mini) or a larger local judge.")
    return None
