"""How an LLM is named and reached: `provider/model` ids (Inspect AI style) resolved to one config object."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from logitdiff.core.errors import UserError

OPENROUTER_URL = "https://openrouter.ai/api/v1"
OFFLINE_ID = "offline"
# Long enough for a reasoning model's 1k-token answer, short enough that a server which never answers
# gives up within minutes (see worst_case_s).
DEFAULT_TIMEOUT_S = 90.0
DEFAULT_RETRIES = 3
# The LLMs a run uses unless told otherwise; every other default (RunSettings, the CLI, the judge
# factory) refers to these.
DEFAULT_AGENT_LLM = "openrouter/openai/gpt-5"
DEFAULT_GRADER_LLM = "openrouter/openai/gpt-5-mini"
DEFAULT_JUDGE_LLM = "openrouter/openai/gpt-5-mini"


class LLMSpec(BaseModel):
    """Everything needed to reach one model; the API key itself is never stored here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # 'openrouter/openai/gpt-5-mini': provider prefix + model, used in result keys
    base_url: str = OPENROUTER_URL
    model: str  # the provider's name for it, e.g. 'openai/gpt-5-mini'
    api_key_env: str = "OPENROUTER_API_KEY"
    api_key_file: str | None = "openrouter_api_key.txt"
    # Local servers (vLLM) accept any key; a missing key is then not an error.
    api_key_required: bool = True
    max_connections: int = Field(default=16, gt=0)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)  # per attempt
    max_retries: int = Field(default=DEFAULT_RETRIES, ge=0)
    # Exponential backoff with full jitter, U(0, min(max, initial * 2**attempt)), raised to the server's
    # Retry-After when it sends one, never above backoff_max_s.
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    temperature: float | None = None
    max_tokens: int | None = None

    def with_limits(self, timeout_s: float, retries: int) -> LLMSpec:
        return self.model_copy(update={"timeout_s": timeout_s, "max_retries": retries})

    def worst_case_s(self) -> float:
        """Longest one request can take when no attempt is answered and no Retry-After is sent: every
        attempt runs into the timeout, the k-th backoff waits its jitter ceiling initial * 2**(k-1)."""
        backoff = sum(min(self.backoff_max_s, self.backoff_initial_s * 2**k) for k in range(self.max_retries))
        return (self.max_retries + 1) * self.timeout_s + backoff

    @property
    def provider(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def is_offline(self) -> bool:
        return self.provider == OFFLINE_ID


def parse_llm_id(text: str, base_url: str | None = None) -> LLMSpec:
    """Resolve an LLM id given on the command line or in a config.

    - 'openrouter/<org>/<model>'   OpenRouter (key OPENROUTER_API_KEY or openrouter_api_key.txt)
    - '<org>/<model>'              shorthand for 'openrouter/<org>/<model>'
    - 'vllm/<model>@<base url>'    a local OpenAI-compatible server (key VLLM_API_KEY, optional)
    - 'offline'                    the offline judge (no network); only judges accept it
    `base_url` overrides the provider's URL (e.g. a proxy or a test server).
    """
    text = text.strip()
    if not text:
        raise UserError("empty LLM id: use e.g. 'openrouter/openai/gpt-5-mini', 'vllm/<model>@http://host:port/v1' or 'offline'")
    if text == OFFLINE_ID or text.startswith(OFFLINE_ID + "/"):
        return LLMSpec(id=text, base_url="", model=text, api_key_file=None, api_key_required=False)
    if text.startswith("vllm/"):
        model, sep, url = text[len("vllm/"):].partition("@")
        url = base_url or url
        if not model or not url:
            raise UserError(f"bad vLLM id {text!r}: write 'vllm/<model>@http://host:port/v1'")
        return LLMSpec(
            id=f"vllm/{model}", base_url=url, model=model, api_key_env="VLLM_API_KEY",
            api_key_file=None, api_key_required=False,
        )
    model = text[len("openrouter/"):] if text.startswith("openrouter/") else text
    if "/" not in model or any(not part for part in model.split("/")):
        raise UserError(f"bad LLM id {text!r}: write 'openrouter/<org>/<model>' (e.g. openrouter/openai/gpt-5-mini)")
    return LLMSpec(id=f"openrouter/{model}", base_url=base_url or OPENROUTER_URL, model=model)
