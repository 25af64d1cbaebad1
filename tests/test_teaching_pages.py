"""The teaching blocks on the Data, Model and Learn pages (views/_teaching.py): nothing is computed before a click,
the suggested strategy is shown with its reasons, and its button queues the comparison that tests it."""

from __future__ import annotations

from tests.test_app import open_page


def test_data_page_measures_the_domain_distance_only_when_asked(runs_dir, monkeypatch):  # noqa: F811
    from segcore.teaching import domain

    calls = []
    monkeypatch.setattr(domain, "reference_points", lambda *a, **k: calls.append(a) or ({domain.STREET: 0.3}, ()))
    app = open_page("data")
    assert not calls and not app.get("plotly_chart")[1:]  # the first render draws only the pixel-share chart
    next(b for b in app.button if b.key == "measure_domain").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert calls and len(app.get("plotly_chart")) == 2
    assert any("distance" in c.value and "ImageNet" in c.value for c in app.caption)


def test_model_page_suggests_a_strategy_and_queues_its_test(runs_dir):  # noqa: F811
    app = open_page("model")
    assert any("Suggested strategy" in m.value for m in app.markdown)
    # built-in shapes, 96 images, no distance measured: the rules say parameter transfer, and why
    assert any("Parameter transfer" in m.value for m in app.markdown)
    assert any("not measured" in m.value for m in app.markdown)
    next(b for b in app.button if b.key == "queue_advice").click().run()
    assert not app.exception, [e.value for e in app.exception]
    from segcore.runs.run import list_runs

    queued = sorted(r.config["strategy"] for r in list_runs(runs_dir))
    assert queued == ["feature", "parameter"]


def test_learn_page_explains_when_structure_wins_without_measuring_anything(runs_dir):  # noqa: F811
    app = open_page("learn")
    assert any("When does each strategy win" in h.value for h in app.header)
    assert any("No finished comparison of yours" in c.value for c in app.caption)
