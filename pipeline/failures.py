"""Why a request failed (``results.error_class``): each class says whether a rerun may fix it and what the
user should do. The client assigns them; the eval's exit code, its closing line, ``medsweep status`` and the
sweep's retry decisions all read them from here."""

from __future__ import annotations

from enum import StrEnum

_RETRY_FIX = "transient; raise --timeout or --max-attempts if it persists"


class FailureClass(StrEnum):
    CONTEXT_LENGTH = "context_length"  # HTTP 400 naming the context length
    BAD_REQUEST = "bad_request"  # any other 4xx
    AUTH = "auth"  # 401 / 403
    NOT_FOUND = "not_found"  # 404
    RATE_LIMITED = "rate_limited"  # 429, after the retries
    SERVER_ERROR = "server_error"  # 5xx, after the retries
    TIMEOUT = "timeout"  # no answer in time (or 408), after the retries
    CONNECTION = "connection"  # refused, reset, no healthy replica
    INVALID_RESPONSE = "invalid_response"  # an unparseable or schema-invalid body, after the retries

    @property
    def transient(self) -> bool:
        """Whether a rerun may succeed unchanged (the server was down, slow or overloaded); the other
        classes end the same way until the user fixes something, and make the eval exit 1."""
        return self not in _MUST_FIX

    @property
    def fix(self) -> str:
        """What the user should do about it, one clause."""
        return _MUST_FIX.get(self) or _TRANSIENT_CAUSES.get(self, _RETRY_FIX)

    @classmethod
    def of_status(cls, status: int, message: str = "") -> FailureClass:
        """The class of an HTTP error answer; ``message`` is the server's error text (an over-long prompt
        is a 400 that names the context length)."""
        if status >= 500:
            return cls.SERVER_ERROR
        return _BY_STATUS.get(status) or (
            cls.CONTEXT_LENGTH if status == 400 and "context length" in message.lower() else cls.BAD_REQUEST
        )

    @classmethod
    def parse(cls, text: str) -> FailureClass | None:
        """The class stored as ``text``; ``None`` for one this version does not know."""
        try:
            return cls(text)
        except ValueError:
            return None


_BY_STATUS = {
    401: FailureClass.AUTH,
    403: FailureClass.AUTH,
    404: FailureClass.NOT_FOUND,
    408: FailureClass.TIMEOUT,
    429: FailureClass.RATE_LIMITED,
}
_MUST_FIX: dict[FailureClass, str] = {
    FailureClass.CONTEXT_LENGTH: "the prompt plus max_tokens is longer than the served context; serve the "
    "model with a larger --max-model-len",
    FailureClass.AUTH: "the endpoint rejected the API key; set OPENAI_API_KEY to the key the server was "
    "started with",
    FailureClass.NOT_FOUND: "the endpoint does not serve the model under the name sent; check --model "
    "against GET /v1/models",
    FailureClass.BAD_REQUEST: "the server rejected the request (HTTP 4xx); see results.error_message in the "
    "store",
}
# Transient classes whose cause is worth naming: retried like the rest, and never a non-zero exit.
_TRANSIENT_CAUSES: dict[FailureClass, str] = {
    FailureClass.INVALID_RESPONSE: f"the server's answer was not a valid OpenAI response; {_RETRY_FIX}",
}


def is_transient(stored: str) -> bool:
    """``FailureClass.transient`` for a class as stored; one this version does not know counts as
    transient (retried, never a non-zero exit)."""
    known = FailureClass.parse(stored)
    return known is None or known.transient


def fix_for(stored: str) -> str:
    """``FailureClass.fix`` for a class as stored (the retry advice for an unknown one)."""
    known = FailureClass.parse(stored)
    return _RETRY_FIX if known is None else known.fix
