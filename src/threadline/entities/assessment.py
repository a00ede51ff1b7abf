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
import math
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
MAX_NAME_CHARS = 250  # an assessment's name, a source id, an error code
MAX_TEXT_CHARS = 100_000  # a rationale, an error message or stack trace
MAX_VALUE_CHARS = 1_000_000  # a value as JSON text
MAX_METADATA_CHARS = 100_000  # the metadata as JSON text
MAX_DEPTH = 20  # nesting of lists and dicts in a value or the metadata
MAX_ID_CHARS = 256  # trace, span, run and assessment ids
_INT64 = 2**63
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
        _check_short_text(self.source_id, "source.source_id")

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
        _check_short_text(self.error_code, "error.error_code")
        for name in ("error_message", "stack_trace"):
            value = getattr(self, name)
            if value is not None:
                _check_text(value, f"error.{name}", MAX_TEXT_CHARS)

    @classmethod
    def from_exception(cls, exc: BaseException) -> AssessmentError:
        """The error of an exception: its type as the code, its text, its stack trace."""
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            error_code=type(exc).__name__[:MAX_NAME_CHARS],
            error_message=_storable(str(exc))[:MAX_TEXT_CHARS] or None,
            stack_trace=_storable(stack)[-MAX_TEXT_CHARS:] if exc.__traceback__ else None,
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
        self.name = _check_short_text(self.name, "name")
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
                _check_text(value, name, MAX_ID_CHARS, empty=False)
        if self.rationale is not None:
            _check_text(self.rationale, "rationale", MAX_TEXT_CHARS)
        self.metadata = _check_metadata(self.metadata)
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
            self.value = _check_value(self.value, "value")

    @property
    def value_json(self) -> str | None:
        """The value as JSON text (``None`` when there is none)."""
        return None if self.value is None else _dumps(self.value)

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


# --- checks ------------------------------------------------------------------------------


def _storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def _check_text(value: Any, what: str, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, got {type(value).__name__}.")
    if not empty and not value.strip():
        raise InvalidArgumentError(f"{what} must not be empty.")
    if len(value) > limit:
        raise InvalidArgumentError(f"{what} has {len(value)} characters; at most {limit} are kept.")
    if _UNSTORABLE.search(value):
        raise InvalidArgumentError(
            f"{what} contains a NUL character or an unpaired surrogate, which no store keeps."
        )
    return value


def _check_short_text(value: Any, what: str) -> str:
    return _check_text(value, what, MAX_NAME_CHARS, empty=False)


def _check_value(value: Any, what: str) -> Any:
    """``value`` as JSON keeps it (tuples become lists), or an error naming ``what``."""
    checked = _json_value(value, what, 0)
    size = len(_dumps(checked))
    if size > MAX_VALUE_CHARS:
        raise InvalidArgumentError(
            f"{what} is {size} characters as JSON; at most {MAX_VALUE_CHARS} are kept."
        )
    return checked


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(
            f"metadata must be a dict of JSON values, got {type(metadata).__name__}."
        )
    checked = _json_value(metadata, "metadata", 0)
    size = len(_dumps(checked))
    if size > MAX_METADATA_CHARS:
        raise InvalidArgumentError(
            f"metadata is {size} characters as JSON; at most {MAX_METADATA_CHARS} are kept."
        )
    return dict(checked)


def _json_value(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{where} is nested more than {MAX_DEPTH} levels deep.")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise InvalidArgumentError(f"{where} is a number too large to store.") from None
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{where} is {value!r}; numbers must be finite.")
        return float(value)
    if isinstance(value, str):
        return _check_text(value, where, MAX_VALUE_CHARS)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(
                    f"{where} has the key {key!r:.40}: keys of a dict must be strings."
                )
            _check_text(key, f"a key of {where}", MAX_NAME_CHARS)
            out[key] = _json_value(item, f"{where}[{key!r:.40}]", depth + 1)
        return out
    raise InvalidArgumentError(
        f"{where} must be a bool, a number, a string, or a list or dict of those; "
        f"got {type(value).__name__}."
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
