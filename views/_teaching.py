"""Teaching blocks the Data, Model and Learn pages call: the domain distance on a scale, the suggested strategy with
its reasons, and the user's own structure-vs-parameter evidence. The logic is in segcore (domain, advice, evidence);
here only widgets and a plotly chart."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from segcore import STRATEGIES, SegcoreError, TrainConfig
from segcore.teaching.domain import DomainDistance
from views._shared import error_text, escape_md, finished_runs, plot_text, queue, session_owner, visible_runs

MEASURED = "domain_distance"  # session key: {(source, backbone): DomainDistance}
LOOKED_UP = "domain_distance_looked_up"  # session key: the (source, backbone) already sought in the disk cache


def _measured() -> dict:
    return st.session_state.setdefault(MEASURED, {})


def measured_distance(data, backbone: str) -> DomainDistance | None:
    """The distance measured for this dataset and backbone: in this session, or before by anyone (read from the
    disk cache once per session, so a reload or a classmate's measurement counts); None: not measured yet."""
    from segcore.teaching.domain import stored_distance

    measured, key = _measured(), (data.source, backbone)
    looked_up = st.session_state.setdefault(LOOKED_UP, set())
    if key not in measured and key not in looked_up:
        looked_up.add(key)
        stored = stored_distance(data, backbone)
        if stored is not None:
            measured[key] = stored
    return measured.get(key)


def distance_chart(distance: DomainDistance, dataset_label: str) -> go.Figure:
    """A horizontal scale: the reference points as grey marks, this dataset as a coloured one. Labels are arrows
    at staggered heights (references above, this dataset below), so points close together stay readable."""
    figure = go.Figure()
    names = sorted(distance.reference_points, key=distance.reference_points.get)
    figure.add_trace(
        go.Scatter(
            x=[distance.reference_points[n] for n in names],
            y=[0] * len(names),
            mode="markers",
            marker=dict(size=14, color="#94a3b8"),
            text=[plot_text(n) for n in names],
            name="reference points",
            hovertemplate="%{text}: %{x:.2f}<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[distance.value],
            y=[0],
            mode="markers",
            marker=dict(size=18, color="#d97706", symbol="diamond"),
            text=[plot_text(dataset_label)],
            name="your data",
            hovertemplate="%{text}: %{x:.2f}<extra></extra>",
        )
    )
    labels = [(n, distance.reference_points[n], -26 - 24 * (i % 2), "#475569") for i, n in enumerate(names)]
    labels.append((dataset_label, distance.value, 32, "#b45309"))
    for text, value, rise, colour in labels:
        figure.add_annotation(
            x=value,
            y=0,
            text=plot_text(f"{text} {value:.2f}" if value or text != dataset_label else text),
            showarrow=True,
            arrowhead=0,
            arrowcolor="#cbd5e1",
            ax=0,
            ay=rise,
            font=dict(size=12, color=colour),
        )
    # labels are centred on their points: room on both sides so the outermost ones are not cut at the plot's edge
    furthest = max([distance.value, *distance.reference_points.values()], default=1.0) or 1.0
    figure.update_layout(
        height=210,
        showlegend=False,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(
            title=plot_text(f"distance from ImageNet ({distance.backbone}, {distance.size} px)"),
            range=[-0.15 * furthest, 1.3 * furthest],
        ),
        yaxis=dict(visible=False, range=[-1, 1.4]),
    )
    return figure


def domain_block(data, backbone: str = TrainConfig.backbone) -> None:
    """Data page: measure (on demand, cached on disk) how far these images are from ImageNet, and show it."""
    from segcore.teaching.domain import domain_distance

    st.subheader("How far are these images from ImageNet?")
    distance = measured_distance(data, backbone)
    if distance is None:
        st.caption(
            "The pretrained encoder learnt from ImageNet photos. This measures how unlike them your images "
            "look to it (up to 100 training images; a few seconds the first time, then cached)."
        )
        if st.button("📏 Measure the domain distance", key="measure_domain"):
            try:
                with st.spinner("Running the frozen ImageNet encoder over your images…"):
                    _measured()[(data.source, backbone)] = domain_distance(data, backbone)
            except SegcoreError as exc:
                st.error(error_text(exc))
                return
            st.rerun()  # the result replaces the button and its caption
    if distance is None:
        return
    st.plotly_chart(distance_chart(distance, "your data"), key="domain_scale")
    st.caption(
        escape_md(distance.sentence()) + ". 0 means the encoder's layers see these images the way they saw "
        "ImageNet's."
        + (
            f" Reference data not on this machine: {escape_md(', '.join(distance.missing_references))}."
            if distance.missing_references
            else ""
        )
    )


def matching_source_runs(data, backbone: str) -> list:
    """Finished runs on the source task that matches this dataset, with this backbone: what structure transfer needs."""
    from segcore.jobs.planning import matching_source_task

    wanted = matching_source_task(data.source)
    return [r for r in finished_runs() if r.config.get("data") == wanted and r.config.get("backbone") == backbone]


def suggested_strategy_box(data, config: TrainConfig, train_images: int, source_run: str | None) -> None:
    """Model page: the advised strategy, why, and a button that queues the comparison that tests it."""
    from segcore.jobs.planning import queue_all_strategies
    from segcore.models.device import pick_device
    from segcore.teaching.advice import advise

    with st.container(border=True):
        st.markdown("**💡 Suggested strategy**")
        budget_min = st.number_input(
            "Time you have for one run (minutes, 0: no limit)", 0.0, 600.0, 0.0, 1.0, key="advice_budget"
        )
        has_source = bool(source_run) or bool(matching_source_runs(data, config.backbone))
        advice = advise(
            train_images,
            measured_distance(data, config.backbone),
            budget_min * 60 or None,
            pick_device(config.device).type,
            source_run_available=has_source,
            base=config,
            finished=finished_runs(),
            unlabelled_images=len(data.unlabelled),
        )
        st.markdown(f"**{escape_md(STRATEGIES[advice.strategy].title)}**")
        for reason in advice.reasons:
            st.markdown(f"- {escape_md(reason)}")
        test = advice.comparison_to_run
        if st.button(f"▶▶ Test it: {test.title}", key="queue_advice", help=test.why):
            try:
                runs = queue_all_strategies(
                    queue(), config, source_run=source_run, owner=session_owner(), data=data, strategies=test.strategies
                )
            except SegcoreError as exc:
                st.error(error_text(exc))
                return
            st.session_state["watch_group"] = runs[-1].config.get("group")
            st.success("Queued " + ", ".join(f"**{escape_md(r.run_id)}**" for r in runs) + ".")


def structure_evidence_block() -> None:
    """Learn page: the user's own structure-vs-parameter comparisons, if any."""
    from segcore.teaching.evidence import structure_vs_parameter

    rows = structure_vs_parameter(visible_runs())
    if not rows:
        st.caption(
            "No finished comparison of yours holds both a structure and a parameter run yet: start the lesson "
            "*When does structure transfer win?* and the one *Why transfer learning?*, then come back."
        )
        return
    st.markdown("**Your own runs** (same group, same data, same settings):")
    st.dataframe(
        [
            {
                "comparison": r.group,
                "data": r.data,
                "source task": r.source_task,
                "structure mIoU": round(r.structure_miou, 3),
                "parameter mIoU": round(r.parameter_miou, 3),
                "structure won?": "yes" if r.structure_won else "no",
            }
            for r in rows
        ],
        hide_index=True,
    )


def reference_scale_block(backbone: str = TrainConfig.backbone) -> None:
    """Learn page: the reference datasets on the distance scale, measured on demand."""
    from segcore.teaching.domain import reference_points

    key = ("__references__", backbone)
    if key not in _measured():
        if not st.button("📏 Measure the reference datasets", key="measure_references"):
            return
        with st.spinner("Running the frozen ImageNet encoder over the reference datasets…"):
            _measured()[key] = reference_points(backbone)
        st.rerun()  # the scale replaces the button
    points, missing = _measured()[key]
    if not points:
        st.caption("No reference dataset is on this machine.")
        return
    figure = distance_chart(DomainDistance(0.0, points, backbone), "ImageNet (0)")
    st.plotly_chart(figure, key="reference_scale")
    if missing:
        st.caption(f"Not on this machine: {escape_md(', '.join(missing))}.")
