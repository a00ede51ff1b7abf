"""The Markdown report: results table, ratios, RSS table and threadline's targets."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

REFERENCE_KEY = "threadline-async"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass
class Outcome:
    """Everything measured for one contender, and why anything is missing."""

    key: str
    label: str
    overhead: dict[str, Any] | None = None
    rss: dict[str, Any] | None = None
    import_ms: float | None = None
    import_module: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """A threadline budget: the figure's name, how to read it, its upper bound."""

    name: str
    unit: str
    limit: float


TARGETS = {
    "hot_us": Target("hot path", "µs/span", 3.0),
    "cpu_us": Target("end-to-end CPU", "µs/span", 12.0),
    "disabled_us": Target("disabled", "µs/span", 0.3),
    "import_ms": Target("import", "ms", 30.0),
    "rss_growth_mb": Target("RSS growth over 10,000 traces", "MB", 20.0),
}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference <= 0:
        return "—"
    ratio = value / reference
    return f"{ratio:,.1f}{TIMES}" if ratio < 10 else f"{ratio:,.0f}{TIMES}"


def _complete(result: dict[str, Any]) -> bool:
    return (
        result["stored_traces"] == result["produced_traces"]
        and result["stored_spans"] == result["produced_spans"]
    )


def _stored(result: dict[str, Any] | None) -> str:
    if result is None:
        return "—"
    if result.get("count_error"):
        return f"**count failed** ({result['count_error']})"
    if _complete(result):
        verdict = "ok"
    elif result["stored_spans"] < result["produced_spans"]:
        verdict = "**LOST DATA**"
    else:
        verdict = "**MORE THAN PRODUCED**"
    return (
        f"{result['stored_traces']:,}/{result['produced_traces']:,} traces, "
        f"{result['stored_spans']:,}/{result['produced_spans']:,} spans {verdict}"
    )


def _main_table(outcomes: list[Outcome]) -> list[str]:
    ref = next((o.overhead for o in outcomes if o.key == REFERENCE_KEY and o.overhead), None)
    ref_hot = ref["hot_us"] if ref else None
    ref_cpu = ref["cpu_us"] if ref else None
    lines = [
        "| contender | hot µs/span | CPU µs/span end-to-end | disabled µs/span | import ms "
        "| stored/produced | hot ÷ threadline async | CPU ÷ threadline async "
        f"| baseline µs/span | traces {TIMES} reps |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for o in outcomes:
        r = o.overhead or {}
        shape = f"{r['traces_per_rep']:,} {TIMES} {r['reps']}" if r else "—"
        lines.append(
            f"| {o.label} | {_num(r.get('hot_us'))} | {_num(r.get('cpu_us'))} "
            f"| {_num(r.get('disabled_us'), 2)} | {_num(o.import_ms, 0)} | {_stored(o.overhead)} "
            f"| {_ratio(r.get('hot_us'), ref_hot)} | {_ratio(r.get('cpu_us'), ref_cpu)} "
            f"| {_num(r.get('baseline_us'), 2)} | {shape} |"
        )
    return lines


def _ratio_lines(outcomes: list[Outcome]) -> list[str]:
    ref = next((o.overhead for o in outcomes if o.key == REFERENCE_KEY and o.overhead), None)
    if ref is None:
        return ["No ratios: threadline async was not measured."]
    lines = []
    for o in outcomes:
        if o.key == REFERENCE_KEY or o.overhead is None:
            continue
        r = o.overhead
        lines.append(
            f"- {o.label}/threadline async = {_ratio(r['hot_us'], ref['hot_us'])} hot path, "
            f"{_ratio(r['cpu_us'], ref['cpu_us'])} end-to-end CPU, "
            f"{_ratio(r['disabled_us'], ref['disabled_us'])} disabled"
        )
    return lines


def _rss_table(outcomes: list[Outcome]) -> list[str]:
    rows = [o for o in outcomes if o.rss]
    if not rows:
        return ["No RSS measurement."]
    lines = [
        "| contender | traces | RSS before MB | RSS after MB | growth MB | stored/produced |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for o in rows:
        r = o.rss or {}
        lines.append(
            f"| {o.label} | {r['traces']:,} | {r['rss_before_mb']:.1f} | {r['rss_after_mb']:.1f} "
            f"| {r['rss_growth_mb']:.1f} | {_stored(r)} |"
        )
    return lines


def _target_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        if not o.key.startswith("threadline"):
            continue
        figures: dict[str, float | None] = {
            "hot_us": (o.overhead or {}).get("hot_us"),
            "cpu_us": (o.overhead or {}).get("cpu_us"),
            "disabled_us": (o.overhead or {}).get("disabled_us"),
            "import_ms": o.import_ms,
            "rss_growth_mb": (o.rss or {}).get("rss_growth_mb"),
        }
        for key, value in figures.items():
            t = TARGETS[key]
            verdict = "not measured" if value is None else "PASS" if value <= t.limit else "MISS"
            shown = "—" if value is None else f"{value:,.2f}"
            lines.append(
                f"- {o.label}: {t.name} {shown} {t.unit} (target ≤ {t.limit:g}): {verdict}"
            )
        for result, what in ((o.overhead, "overhead run"), (o.rss, "RSS run")):
            if result is not None:
                verdict = "PASS" if _complete(result) else "MISS"
                lines.append(f"- {o.label}: nothing dropped ({what}): {verdict}")
    return lines or ["threadline was not measured."]


def machine_line(outcomes: list[Outcome]) -> str:
    """CPU, cores, Python and the measured packages' versions."""
    versions: dict[str, str] = {}
    for o in outcomes:
        for result in (o.overhead, o.rss):
            if result:
                versions.update(result.get("versions", {}))
    python = versions.pop("python", platform.python_version())
    packages = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "none"
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; Python {python}; packages: {packages}."
    )


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = 1.0) -> str:
    """How many cores something else kept busy over ``seconds``: the machine's quietness."""
    try:
        busy0, total0 = _cpu_times()
        time.sleep(seconds)
        busy1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return "unknown"
    cores = os.cpu_count() or 1
    return f"{cores * (busy1 - busy0) / max(total1 - total0, 1):.2f}"


def render(outcomes: list[Outcome], *, started: str, command: str, busy_before: str) -> str:
    """The whole report as Markdown."""
    parts = [
        f"# threadline overhead benchmark — {started}",
        "",
        f"`{command}`",
        "",
        machine_line(outcomes),
        f"Cores kept busy by other processes in the second before the run: {busy_before} "
        "(more than ~0.1 makes the figures noisy).",
        "",
        "Per span (a trace is a root and 9 children). Hot path and disabled: wall time on the "
        "calling thread, median of the repetitions, minus the undecorated baseline. End-to-end "
        "CPU: process CPU from the start of the loop until the flush returned, minus the "
        "baseline's CPU. Import: best of 5 fresh interpreters.",
        "",
        *_main_table(outcomes),
        "",
        *_ratio_lines(outcomes),
        "",
        "## RSS",
        "",
        *_rss_table(outcomes),
        "",
        "## threadline targets",
        "",
        *_target_lines(outcomes),
    ]
    missing = [o for o in outcomes if o.problems]
    if missing:
        parts += ["", "## Missing or incomplete", ""]
        parts += [f"- {o.label}: " + p.replace("\n", "\n    ") for o in missing for p in o.problems]
    noted = [o for o in outcomes if o.notes]
    if noted:
        parts += ["", "## Notes", ""]
        parts += [f"- {o.label}: {n}" for o in noted for n in o.notes]
    details = [o for o in outcomes if o.overhead]
    if details:
        parts += ["", "## Repetitions (µs/span)", ""]
        for o in details:
            r = o.overhead or {}
            hot = ", ".join(f"{v:,.1f}" for v in r["hot_us_reps"])
            cpu = ", ".join(f"{v:,.1f}" for v in r["cpu_us_reps"])
            parts.append(f"- {o.label}: hot {hot}; CPU {cpu}; warm-up {r['warmup']:,} traces")
    return "\n".join(parts) + "\n"
