"""Assessments: judgements attached to a trace (or one of its spans).

A ``Feedback`` says how good something was (a thumbs up, a score, a label) or that judging it
failed (``error``); an ``Expectation`` says what the right answer was (ground truth). Both
name their ``source``: a person (``HUMAN``), an LLM judge (``LLM_JUDGE``) or code (``CODE``).
A feedback can be overridden: the new one names the old in ``overrides`` and the old one is
kept with ``valid=False``, so the history of a judgement stays readable.

Values are checked when an assessment is made, so a bad one fails at the call that made it,
with a message naming the field, and never reaches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from threadline.entities._assessment_checks import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    check_metadata,
    check_short_text,
    check_text,
    check_value,
    dumps,
)
from threadline.entities.assessment_source import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
)
from threadline.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_FEEDBACK_NAME",
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Expectation",
    "Feedback",
    "FeedbackSummary",
]

DEFAULT_FEEDBACK_NAME = "feedback"
_INT64 = 2**63


@dataclass(eq=True)
class Assessment:
    """What ``Feedback`` and ``Expectation`` share; ``kind`` tells them apart.

    ``assessment_id``, ``create_time_ms`` and ``last_update_time_ms`` are set by the store;
    ``valid`` is ``False`` once another feedback ``overrides`` this one.
    """

    name: str
    value: Any = None
    error: AssessmentError | None = None
    source: AssessmentSource = field(default_factory=AssessmentSource)
    trace_id: str | None = None
    run_id: str | None = None
    rationale: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    span_id: str | None = None
    create_time_ms: int | None = None
    last_update_time_ms: int | None = None
    assessment_id: str | None = None
    overrides: str | None = None
    valid: bool = True

    kind: ClassVar[str] = ""

    def _check(self) -> None:
        """Check and normalise every field (raises ``InvalidArgumentError`` naming it)."""
        if self.kind not in ("feedback", "expectation"):
            raise InvalidArgumentError(
                "Make a Feedback or an Expectation; Assessment itself has no kind."
            )
        self.name = check_short_text(self.name, "name")
        self._check_value_and_error()
        if self.source is None:
            self.source = AssessmentSource()
        elif isinstance(self.source, dict):
            self.source = AssessmentSource.from_dict(self.source)
        elif not isinstance(self.source, AssessmentSource):
            raise InvalidArgumentError(
                f"source must be an AssessmentSource, got {type(self.source).__name__}."
            )
        for name in ("trace_id", "run_id", "span_id", "assessment_id", "overrides"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, name, MAX_ID_CHARS, empty=False)
        if self.rationale is not None:
            check_text(self.rationale, "rationale", MAX_TEXT_CHARS)
        self.metadata = check_metadata(self.metadata)
        for name in ("create_time_ms", "last_update_time_ms"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value < _INT64):
                raise InvalidArgumentError(
                    f"{name} must be milliseconds since the epoch (an int), got {value!r}."
                )
        if type(self.valid) is not bool:
            raise InvalidArgumentError(f"valid must be True or False, got {self.valid!r}.")

    def _check_value_and_error(self) -> None:
        label = f"{self.kind.capitalize()} {self.name!r:.80}"
        if self.kind == "expectation":
            if self.value is None:
                raise InvalidArgumentError(f"{label} needs a value (not None).")
            if self.error is not None:
                raise InvalidArgumentError(f"{label} cannot hold an error; use a Feedback.")
        elif (self.value is None) == (self.error is None):
            raise InvalidArgumentError(
                f"{label} needs a value or an error: give exactly one of them "
                f"({'both were given' if self.value is not None else 'neither was given'})."
            )
        elif self.error is not None and not isinstance(self.error, AssessmentError):
            raise InvalidArgumentError(
                f"error must be an AssessmentError, got {type(self.error).__name__}."
            )
        if self.value is not None:
            self.value = check_value(self.value, "value")

    @property
    def value_json(self) -> str | None:
        """The value as JSON text (``None`` when there is none)."""
        return None if self.value is None else dumps(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment_id": self.assessment_id,
            "trace_id": self.trace_id,
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "error": None if self.error is None else self.error.to_dict(),
            "source": self.source.to_dict(),
            "rationale": self.rationale,
            "metadata": dict(self.metadata),
            "span_id": self.span_id,
            "run_id": self.run_id,
            "overrides": self.overrides,
            "valid": self.valid,
            "create_time_ms": self.create_time_ms,
            "last_update_time_ms": self.last_update_time_ms,
        }

    def to_json(self, pretty: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=2 if pretty else None, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Assessment:
        """A ``Feedback`` or an ``Expectation``, as its ``kind`` says."""
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"An assessment is a JSON object, got {data!r:.80}.")
        kind = data.get("kind")
        common = {
            "name": data.get("name"),
            "source": AssessmentSource.from_dict(data["source"]) if data.get("source") else None,
            "trace_id": data.get("trace_id"),
            "run_id": data.get("run_id"),
            "metadata": data.get("metadata") or {},
            "span_id": data.get("span_id"),
            "create_time_ms": data.get("create_time_ms"),
            "last_update_time_ms": data.get("last_update_time_ms"),
            "assessment_id": data.get("assessment_id"),
            "overrides": data.get("overrides"),
            "valid": data.get("valid", True),
        }
        if kind == "feedback":
            error = data.get("error")
            return Feedback(
                value=data.get("value"),
                error=None if error is None else AssessmentError.from_dict(error),
                rationale=data.get("rationale"),
                **common,
            )
        if kind == "expectation":
            if data.get("error") is not None or data.get("rationale") is not None:
                raise InvalidArgumentError("An expectation has neither an error nor a rationale.")
            return Expectation(value=data.get("value"), **common)
        raise InvalidArgumentError(f"kind must be 'feedback' or 'expectation', got {kind!r:.80}.")

    @classmethod
    def from_json(cls, text: str) -> Assessment:
        return cls.from_dict(json.loads(text))


class Feedback(Assessment):
    """A judgement: ``value`` (bool, number, string, or a list/dict of those) or ``error``."""

    kind: ClassVar[str] = "feedback"

    def __init__(
        self,
        name: str = DEFAULT_FEEDBACK_NAME,
        value: Any = None,
        error: AssessmentError | BaseException | None = None,
        source: AssessmentSource | None = None,
        trace_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
        create_time_ms: int | None = None,
        last_update_time_ms: int | None = None,
        rationale: str | None = None,
        overrides: str | None = None,
        valid: bool = True,
        run_id: str | None = None,
        assessment_id: str | None = None,
    ) -> None:
        if isinstance(error, BaseException):
            error = AssessmentError.from_exception(error)
        elif error is not None and not isinstance(error, AssessmentError):
            raise InvalidArgumentError(
                f"error must be an AssessmentError or an exception, got {type(error).__name__}."
            )
        super().__init__(
            name=name,
            value=value,
            error=error,
            source=source or AssessmentSource(),
            trace_id=trace_id,
            run_id=run_id,
            rationale=rationale,
            metadata=metadata or {},
            span_id=span_id,
            create_time_ms=create_time_ms,
            last_update_time_ms=last_update_time_ms,
            assessment_id=assessment_id,
            overrides=overrides,
            valid=valid,
        )
        self._check()


class Expectation(Assessment):
    """The expected outcome (ground truth): any JSON value."""

    kind: ClassVar[str] = "expectation"

    def __init__(
        self,
        name: str,
        value: Any,
        source: AssessmentSource | None = None,
        trace_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        span_id: str | None = None,
        create_time_ms: int | None = None,
        last_update_time_ms: int | None = None,
        run_id: str | None = None,
        assessment_id: str | None = None,
        overrides: str | None = None,
        valid: bool = True,
    ) -> None:
        super().__init__(
            name=name,
            value=value,
            source=source or AssessmentSource(),
            trace_id=trace_id,
            run_id=run_id,
            metadata=metadata or {},
            span_id=span_id,
            create_time_ms=create_time_ms,
            last_update_time_ms=last_update_time_ms,
            assessment_id=assessment_id,
            overrides=overrides,
            valid=valid,
        )
        self._check()


def stored_assessment(kind: str, source_type: str, source_id: str, **fields: Any) -> Assessment:
    """An assessment as a store reads it back, made without checking its fields again: a
    store only holds what was checked when it was written (a page of traces may carry
    hundreds of them). ``fields`` are every field but ``source`` (missing ones default)."""
    cls: type[Assessment] = Expectation if kind == "expectation" else Feedback
    made = cls.__new__(cls)
    source = AssessmentSource.__new__(AssessmentSource)
    object.__setattr__(source, "source_type", source_type)
    object.__setattr__(source, "source_id", source_id)
    made.__dict__.update(_STORED_DEFAULTS, source=source, **fields)
    return made


_STORED_DEFAULTS: dict[str, Any] = {
    "value": None,
    "error": None,
    "trace_id": None,
    "run_id": None,
    "rationale": None,
    "metadata": {},
    "span_id": None,
    "create_time_ms": None,
    "last_update_time_ms": None,
    "assessment_id": None,
    "overrides": None,
    "valid": True,
}


@dataclass(frozen=True)
class FeedbackSummary:
    """The valid feedback of one name over some traces (a session, a time bucket …).

    ``count`` feedbacks had a value and ``error_count`` an error; ``mean`` is the mean of the
    numeric values and ``share_true`` the share of ``True`` among the boolean values (each
    ``None`` when there were none).
    """

    name: str
    count: int = 0
    error_count: int = 0
    mean: float | None = None
    share_true: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "error_count": self.error_count,
            "mean": self.mean,
            "share_true": self.share_true,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackSummary:
        return cls(
            name=data["name"],
            count=int(data.get("count") or 0),
            error_count=int(data.get("error_count") or 0),
            mean=data.get("mean"),
            share_true=data.get("share_true"),
        )
