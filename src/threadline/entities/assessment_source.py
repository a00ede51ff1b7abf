"""Where an assessment comes from (``AssessmentSource``) and why a feedback has no value
(``AssessmentError``); both re-exported by ``threadline.entities.assessment``."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, ClassVar

from threadline.entities._assessment_checks import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    check_short_text,
    check_text,
    storable,
)
from threadline.errors import InvalidArgumentError

__all__ = ["AssessmentError", "AssessmentSource", "AssessmentSourceType"]


class AssessmentSourceType:
    """Who made an assessment. ``AI_JUDGE`` is another name for ``LLM_JUDGE``."""

    HUMAN = "HUMAN"
    LLM_JUDGE = "LLM_JUDGE"
    CODE = "CODE"
    AI_JUDGE = "LLM_JUDGE"

    ALL = ("HUMAN", "LLM_JUDGE", "CODE")
    ALIASES: ClassVar[dict[str, str]] = {"AI_JUDGE": "LLM_JUDGE"}

    @classmethod
    def normalize(cls, value: Any) -> str:
        """The canonical type for ``value`` (any case; ``AI_JUDGE`` → ``LLM_JUDGE``)."""
        if isinstance(value, str):
            upper = value.strip().upper()
            upper = cls.ALIASES.get(upper, upper)
            if upper in cls.ALL:
                return upper
        raise InvalidArgumentError(
            f"source_type {value!r} is not a source type: use one of "
            f"{', '.join(cls.ALL)} (AI_JUDGE is accepted for LLM_JUDGE)."
        )


@dataclass(frozen=True)
class AssessmentSource:
    """Where an assessment came from: a type and an id (a user, a judge model, a scorer)."""

    source_type: str = AssessmentSourceType.CODE
    source_id: str = "default"

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_type", AssessmentSourceType.normalize(self.source_type))
        check_short_text(self.source_id, "source.source_id")

    def to_dict(self) -> dict[str, str]:
        return {"source_type": self.source_type, "source_id": self.source_id}

    @classmethod
    def from_dict(cls, data: Any) -> AssessmentSource:
        if not isinstance(data, dict):
            raise InvalidArgumentError(
                f"source must be an object with source_type and source_id, got {data!r:.80}."
            )
        return cls(
            data.get("source_type", AssessmentSourceType.CODE), data.get("source_id", "default")
        )


@dataclass(frozen=True)
class AssessmentError:
    """Why a feedback has no value (the judge timed out, the scorer raised …)."""

    error_code: str
    error_message: str | None = None
    stack_trace: str | None = None

    def __post_init__(self) -> None:
        check_short_text(self.error_code, "error.error_code")
        for name in ("error_message", "stack_trace"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, f"error.{name}", MAX_TEXT_CHARS)

    @classmethod
    def from_exception(cls, exc: BaseException) -> AssessmentError:
        """The error of an exception: its type as the code, its text, its stack trace."""
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            error_code=type(exc).__name__[:MAX_NAME_CHARS],
            error_message=storable(str(exc))[:MAX_TEXT_CHARS] or None,
            stack_trace=storable(stack)[-MAX_TEXT_CHARS:] if exc.__traceback__ else None,
        )

    def to_dict(self) -> dict[str, str | None]:
        return {
            "error_code": self.error_code,
            "error_message": self.error_message,
            "stack_trace": self.stack_trace,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AssessmentError:
        if not isinstance(data, dict) or "error_code" not in data:
            raise InvalidArgumentError(
                f"error must be an object with an error_code, got {data!r:.80}."
            )
        return cls(data["error_code"], data.get("error_message"), data.get("stack_trace"))
