"""Pure: the overview's figures of a set of traces, mergeable (no SQL here).

``Figures`` accumulates traces and their feedback, merges with other ``Figures`` (hours into
days, days into the totals) and becomes an ``OverviewBucket``. It is stored per hour in
``trace_rollups`` as counts, sums and JSON texts.

Latency percentiles come from a histogram, so that they merge: a latency below 32 ms has
its own bin (exact), a longer one falls in a bin 5% wide and reads back as the geometric
middle of its bin, within 2.5% of the true value. p50 and p95 are nearest-rank percentiles
over those bins. The same bins serve every query, filtered or not, on both databases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from threadline import _json as fast_json
from threadline.entities.assessment import FeedbackSummary
from threadline.entities.overview import OverviewBucket

EXACT_BELOW_MS = 32
_RATIO = 1.05
_LOG_RATIO = math.log(_RATIO)
_INT64_MAX = 2**63 - 1
# Per feedback name: counts and sums that merge by addition.
_COUNT, _ERRORS, _NUMBERS, _SUM, _BOOLEANS, _TRUE = range(6)


def latency_bin(duration_ms: int) -> int:
    """The histogram bin of a latency (negative ones, from bad data, count as 0)."""
    if duration_ms < EXACT_BELOW_MS:
        return max(int(duration_ms), 0)
    return EXACT_BELOW_MS + int(math.log(duration_ms / EXACT_BELOW_MS) / _LOG_RATIO)


def bin_value(bin_: int) -> float:
    """The latency a bin stands for."""
    if bin_ < EXACT_BELOW_MS:
        return float(bin_)
    return EXACT_BELOW_MS * _RATIO ** (bin_ - EXACT_BELOW_MS + 0.5)


def percentile(histogram: Mapping[int, int], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in (0, 1]) of a histogram of latency bins."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for bin_ in sorted(histogram):
        seen += histogram[bin_]
        if seen >= rank:
            return round(bin_value(bin_), 3)
    return None  # unreachable: the last bin reaches the total


def trace_cost(text: str | None) -> float:
    """The total cost (USD) in a trace's ``cost`` metadata; 0 when absent or odd."""
    if not text:
        return 0.0
    try:
        value = fast_json.loads(text)
    except ValueError:
        return 0.0
    total = value.get("total_cost") if isinstance(value, dict) else None
    if isinstance(total, (int, float)) and not isinstance(total, bool) and math.isfinite(total):
        return float(total)
    return 0.0


class Figures:
    """Counts, sums, a latency histogram and per-name feedback figures of some traces."""

    __slots__ = (
        "cost",
        "error_count",
        "feedback",
        "input_tokens",
        "latencies",
        "output_tokens",
        "total_tokens",
        "trace_count",
    )

    def __init__(self) -> None:
        self.trace_count = 0
        self.error_count = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.total_tokens = 0
        self.cost = 0.0
        self.latencies: dict[int, int] = {}
        self.feedback: dict[str, list[float]] = {}

    def add_trace(
        self,
        state: str,
        duration_ms: int | None,
        input_tokens: int | None,
        output_tokens: int | None,
        total_tokens: int | None,
        cost_text: str | None,
    ) -> None:
        self.trace_count += 1
        if state == "ERROR":
            self.error_count += 1
        if duration_ms is not None:
            key = latency_bin(duration_ms)
            self.latencies[key] = self.latencies.get(key, 0) + 1
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0
        self.total_tokens += total_tokens or 0
        self.cost += trace_cost(cost_text)

    def add_feedback(self, name: str, value_type: str | None, number: float | None) -> None:
        figures = self.feedback.get(name)
        if figures is None:
            figures = self.feedback[name] = [0, 0, 0, 0.0, 0, 0]
        if value_type is None:
            figures[_ERRORS] += 1
            return
        figures[_COUNT] += 1
        if value_type == "number" and number is not None:
            figures[_NUMBERS] += 1
            figures[_SUM] += number
        elif value_type == "boolean" and number is not None:
            figures[_BOOLEANS] += 1
            figures[_TRUE] += 1 if number else 0

    def merge(self, other: Figures) -> None:
        self.trace_count += other.trace_count
        self.error_count += other.error_count
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cost += other.cost
        for key, count in other.latencies.items():
            self.latencies[key] = self.latencies.get(key, 0) + count
        for name, figures in other.feedback.items():
            mine = self.feedback.setdefault(name, [0, 0, 0, 0.0, 0, 0])
            for i, value in enumerate(figures):
                mine[i] += value

    def bucket(self, start_time_ms: int) -> OverviewBucket:
        count = self.trace_count
        return OverviewBucket(
            start_time_ms=start_time_ms,
            trace_count=count,
            error_count=self.error_count,
            error_rate=self.error_count / count if count else None,
            latency_p50_ms=percentile(self.latencies, 0.50),
            latency_p95_ms=percentile(self.latencies, 0.95),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
            cost=round(self.cost, 12),
            feedback={name: summary(name, self.feedback[name]) for name in sorted(self.feedback)},
        )

    # --- storage in trace_rollups --------------------------------------------------------

    def to_row(self, experiment_id: str, hour_ms: int) -> dict[str, Any]:
        return {
            "experiment_id": experiment_id,
            "hour_ms": hour_ms,
            "trace_count": self.trace_count,
            "error_count": self.error_count,
            "input_tokens": min(self.input_tokens, _INT64_MAX),
            "output_tokens": min(self.output_tokens, _INT64_MAX),
            "total_tokens": min(self.total_tokens, _INT64_MAX),
            "cost": self.cost,
            "latencies": json.dumps({str(k): v for k, v in sorted(self.latencies.items())}),
            "feedback": json.dumps(self.feedback, sort_keys=True, ensure_ascii=False),
        }

    @classmethod
    def from_row(
        cls,
        trace_count: int,
        error_count: int,
        input_tokens: int,
        output_tokens: int,
        total_tokens: int,
        cost: float,
        latencies: str,
        feedback: str,
    ) -> Figures:
        figures = cls()
        figures.trace_count = int(trace_count)
        figures.error_count = int(error_count)
        figures.input_tokens = int(input_tokens)
        figures.output_tokens = int(output_tokens)
        figures.total_tokens = int(total_tokens)
        figures.cost = float(cost)
        figures.latencies = {int(k): int(v) for k, v in json.loads(latencies).items()}
        figures.feedback = {str(k): list(v) for k, v in json.loads(feedback).items()}
        return figures


def summary(name: str, figures: list[float]) -> FeedbackSummary:
    """The ``FeedbackSummary`` of one name's merged counts and sums."""
    numbers, booleans = int(figures[_NUMBERS]), int(figures[_BOOLEANS])
    return FeedbackSummary(
        name=name,
        count=int(figures[_COUNT]),
        error_count=int(figures[_ERRORS]),
        mean=figures[_SUM] / numbers if numbers else None,
        share_true=figures[_TRUE] / booleans if booleans else None,
    )
