"""Charts two pages draw alike."""

from __future__ import annotations

import plotly.graph_objects as go

from segcore.compare.curves import RunCurves, load_slowdown, time_axis
from views._text import plot_text

BUSY = 1.5  # wall-clock time this many times the compute time: the machine's load, not the strategy, set the pace


def time_to_accuracy_figure(curves: list[RunCurves], height: int = 320, legend: bool = True) -> go.Figure:
    """Validation mIoU against the runs' own compute seconds (wall-clock seconds for runs that did not record it):
    how soon each strategy is good, not how busy the server was or how long a run waited. The legend sits under the
    plot, so long run names can never cover the title."""
    figure = go.Figure()
    kinds = set()
    for run in curves:
        times, kind = time_axis(run)
        if times:
            kinds.add(kind)
            figure.add_trace(
                go.Scatter(
                    x=times,
                    y=[e["miou"] for e in run.epochs],
                    mode="lines+markers",
                    name=plot_text(run.label),
                    line=dict(color=run.colour, dash="dash" if run.is_source else None),
                )
            )
    axis = "compute seconds (the training process's own work)" if kinds == {"compute"} else "seconds of training"
    figure.update_layout(
        title=dict(text="Time to accuracy: validation mIoU against compute time", y=0.97, yanchor="top"),
        height=height + (60 if legend else 0),
        xaxis=dict(title=axis, rangemode="tozero"),
        yaxis=dict(title="mIoU", range=[0, 1]),
        showlegend=legend,
        legend=dict(orientation="h", yanchor="top", y=-0.28, x=0, font=dict(size=11)),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return figure


def busy_note(curves: list[RunCurves]) -> str | None:
    """A sentence when the machine's load stretched some run's wall-clock time more than BUSY times its compute."""
    stretched = [(run, ratio) for run in curves if (ratio := load_slowdown(run)) and ratio > BUSY]
    if not stretched:
        return None
    worst = max(ratio for _, ratio in stretched)
    return (
        f"The server was busy while {len(stretched)} of these runs trained: wall-clock time was up to {worst:.1f}× "
        "their own compute time. Compare strategies by compute time (this chart), not by when they finished."
    )
