"""The training and validation loss curves as inline SVG, drawn on the server (no chart library).

Only numbers go into the markup, and every one passes through format_html.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 260
# Margins for the tick labels at the largest font size joe.css gives them (on a phone, where the
# plot is drawn at half its size or less, its labels get twice the units or more to stay
# readable). The legend and the axis name are HTML under the plot, at the page's own size.
LEFT, RIGHT, TOP, BOTTOM = 68, 36, 16, 44
SERIES = (
    ("train_loss", "Training", "var(--accent)", ""),
    ("val_loss", "Validation", "var(--warn)", "6 4"),
)


@dataclass(frozen=True)
class _Scale:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, step: float) -> float:
        span = self.x1 - self.x0 or 1
        return LEFT + (step - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, loss: float) -> float:
        span = self.y1 - self.y0 or 1
        return TOP + (self.y1 - loss) / span * (HEIGHT - TOP - BOTTOM)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _n(value: float) -> str:
    """A coordinate for the markup (format_html turns arguments into strings before formatting)."""
    return f"{value:.1f}"


def _points(history: Sequence[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [
        (float(h["step"]), float(h[key]))
        for h in history
        if isinstance(h.get(key), int | float) and math.isfinite(h[key])
    ]


def loss_plot_svg(history: Sequence[dict[str, Any]]) -> SafeString:
    """An SVG of train and validation loss against step; empty when there is nothing to draw."""
    series = [(_points(history, key), label, colour, dash) for key, label, colour, dash in SERIES]
    values = [p for pts, *_ in series for p in pts]
    if not values:
        return mark_safe("")  # noqa: S308 - a constant empty string
    steps = [s for s, _ in values]
    losses = [v for _, v in values]
    low, high = min(losses), max(losses)
    pad = (high - low) * 0.05 or 0.5
    scale = _Scale(min(steps), max(max(steps), min(steps) + 1), max(0.0, low - pad), high + pad)

    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="var(--line)"/>'
        '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
        (
            (
                LEFT,
                _n(scale.y(t)),
                WIDTH - RIGHT,
                _n(scale.y(t)),
                LEFT - 6,
                _n(scale.y(t)),
                f"{t:g}",
            )
            for t in nice_ticks(scale.y0, scale.y1)
        ),
    )
    x_ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" dominant-baseline="hanging">{}</text>',
        (
            (_n(scale.x(t)), HEIGHT - BOTTOM + 14, f"{t:g}")
            for t in nice_ticks(scale.x0, scale.x1)
            if t == int(t)
        ),
    )
    lines = format_html_join(
        "",
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>{}',
        (
            (
                " ".join(f"{scale.x(s):.1f},{scale.y(v):.1f}" for s, v in pts),
                colour,
                dash,
                format_html_join(
                    "",
                    '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {} at step {}'
                    "</title></circle>",
                    (
                        (_n(scale.x(s)), _n(scale.y(v)), colour, label, f"{v:.4f}", f"{s:g}")
                        for s, v in pts
                    ),
                ),
            )
            for pts, label, colour, dash in series
            if pts
        ),
    )
    return format_html(
        '<svg class="loss-plot" viewBox="0 0 {} {}" role="img" aria-labelledby="loss-plot-title">'
        '<title id="loss-plot-title">Training and validation loss by step</title>'
        "{}{}{}</svg>"
        '<p class="loss-plot-legend" aria-hidden="true">Loss by step:'
        ' <span><span class="key training"></span>training</span>'
        ' <span><span class="key validation"></span>validation</span></p>',
        WIDTH,
        HEIGHT,
        grid,
        x_ticks,
        lines,
    )
