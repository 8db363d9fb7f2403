"""Charts laid out in Python and drawn by templates as inline SVG: no chart library, no script.

Every chart's numbers are also in a table or CSV beside it; the SVG is for the eye."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from app.schemas.agreement import AgreementPoint
from app.schemas.queues import QueueProgress


@dataclass(frozen=True)
class Chart:
    """A polyline chart of agreement over time."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: list[tuple[float, float, str]]  # x, y, tooltip
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


def over_time_chart(points: list[AgreementPoint], width: int = 720, height: int = 240) -> Chart:
    left, right, top, bottom = 48, width - 16, 12, height - 32
    days = [point.start.toordinal() for point in points]
    first, last = (min(days), max(days)) if days else (0, 0)
    span = max(last - first, 1)

    def x_of(day: int) -> float:
        if first == last:
            return (left + right) / 2
        return left + (day - first) / span * (right - left)

    def y_of(rate: float) -> float:
        return bottom - rate * (bottom - top)

    plotted = [
        (
            x_of(day),
            y_of(point.pairwise_agreement or 0.0),
            f"{point.start.isoformat()}: {(point.pairwise_agreement or 0.0):.0%} of "
            f"{point.labeler_pairs} labeler pairs",
        )
        for day, point in zip(days, points, strict=True)
    ]
    x_days = sorted({first, last, (first + last) // 2}) if days else []
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        points=plotted,
        y_ticks=[(y_of(rate), f"{rate:.0%}") for rate in (0.0, 0.25, 0.5, 0.75, 1.0)],
        x_ticks=[(x_of(day), date.fromordinal(day).isoformat()) for day in x_days],
    )


# Labels are drawn at 11px beside their bar; a longer one is cut (its tooltip keeps it whole).
LABEL_CHARS = 40


def short_label(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Segment:
    part: str  # done, in-progress, left
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ProgressRow:
    label: str  # as shown; the summary names the queue whole
    y: float
    summary: str  # also the row's tooltip
    segments: list[Segment]  # empty for a queue without tasks


@dataclass(frozen=True)
class ProgressChart:
    """One bar per queue: its labels done, in progress and left, as shares of those required."""

    width: int
    height: int
    left: int
    right: int
    bar_height: int
    rows: list[ProgressRow]


def progress_chart(
    rows: Sequence[tuple[str, QueueProgress]],
    *,
    width: int = 720,
    label_width: int = 260,
    row_height: int = 26,
) -> ProgressChart:
    left, right = label_width, width - 16
    drawn = []
    for index, (label, progress) in enumerate(rows):
        segments = []
        if progress.required:
            x = float(left)
            # done can pass required when a task's overlap was lowered after its labels came.
            done = min(progress.done, progress.required)
            busy = min(progress.in_progress, progress.required - done)
            for part, count in (("done", done), ("in-progress", busy), ("left", progress.left)):
                share = count / progress.required * (right - left)
                segments.append(Segment(part=part, count=count, x=x, width=share))
                x += share
        drawn.append(
            ProgressRow(
                label=short_label(label),
                y=4 + index * row_height,
                summary=f"{label}: {progress.done} done, {progress.in_progress} in progress, "
                f"{progress.left} left of {progress.required}",
                segments=segments,
            )
        )
    return ProgressChart(
        width=width,
        height=len(rows) * row_height + 8,
        left=left,
        right=right,
        bar_height=row_height - 8,
        rows=drawn,
    )


# Series colours, in order; drawn as SVG presentation attributes (not style attributes, which
# the CSP forbids), so a chart may hold any number of series without a CSS rule for each.
SERIES_COLOURS = ("#2f6f4f", "#3d6fb6", "#b8642b", "#7a4fa3", "#a4312a", "#5b636e")
# A long run logs thousands of rows; more points than pixels only slow the page that polls.
MAX_LINE_POINTS = 300


@dataclass(frozen=True)
class LineSeries:
    name: str
    colour: str
    points: list[tuple[float, float, str]]  # x, y, tooltip

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


@dataclass(frozen=True)
class LineChart:
    """Lines of (x, y) values sharing both axes. The key naming each line is HTML beside the
    chart (runs/macros.html), where long names wrap instead of running off the drawing."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    series: list[LineSeries]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]


def number_label(value: float) -> str:
    """Short tick and tooltip text: 3 significant digits, no trailing zeros."""
    return f"{value:.3g}"


def thinned(points: Sequence[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most `limit` points, evenly spaced, always keeping the first and the last."""
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    picks = sorted({round(index * last / (limit - 1)) for index in range(limit)})
    return [points[index] for index in picks]


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    width: int = 720,
    height: int = 240,
    max_points: int = MAX_LINE_POINTS,
) -> LineChart:
    """Series as (name, [(x, y), ...]) on shared axes; y spans the values seen, padded a
    little so a flat line does not sit on the frame."""
    top = 12
    left, right, bottom = 64, width - 16, height - 32
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 0.0)
    y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if y_low == y_high:
        pad = abs(y_low) * 0.1 or 1.0
        y_low, y_high = y_low - pad, y_high + pad

    def x_of(x: float) -> float:
        if x_low == x_high:
            return (left + right) / 2
        return left + (x - x_low) / (x_high - x_low) * (right - left)

    def y_of(y: float) -> float:
        return bottom - (y - y_low) / (y_high - y_low) * (bottom - top)

    drawn = [
        LineSeries(
            name=name,
            colour=SERIES_COLOURS[index % len(SERIES_COLOURS)],
            points=[
                (x_of(x), y_of(y), f"{name} at step {x:g}: {number_label(y)}")
                for x, y in thinned(points, max_points)
            ],
        )
        for index, (name, points) in enumerate(series)
    ]
    steps = sorted({x_low, x_high, round((x_low + x_high) / 2)}) if xs else []
    return LineChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        series=drawn,
        y_ticks=[
            (y_of(y_low + share * (y_high - y_low)), number_label(y_low + share * (y_high - y_low)))
            for share in (0.0, 0.25, 0.5, 0.75, 1.0)
        ],
        x_ticks=[(x_of(x), f"{x:g}") for x in steps],
    )
