"""The user's own finished runs as evidence for the lesson: where structure transfer beat parameter transfer on the
same data with the same settings (one comparison group), and where it did not."""

from __future__ import annotations

from dataclasses import dataclass

from ..runs.run import Run
from ..settings.strategies import STRATEGIES


@dataclass(frozen=True)
class StructureEvidence:
    group: str
    data: str
    source_task: str  # what the carried-over run was trained on ("?" when its folder is gone)
    structure_miou: float
    parameter_miou: float

    @property
    def margin(self) -> float:
        return self.structure_miou - self.parameter_miou

    @property
    def structure_won(self) -> bool:
        return self.margin > 0


def _miou(run: Run) -> float | None:
    value = run.summary().get("miou")
    return float(value) if isinstance(value, (int, float)) else None


def structure_vs_parameter(runs: list[Run]) -> list[StructureEvidence]:
    """One row per comparison group holding a finished structure-transfer run and a finished run of the strategy it is
    measured against (StrategyInfo.measured_against: parameter transfer) on the same data."""
    challenger = next(name for name, info in STRATEGIES.items() if info.measured_against)
    rival = STRATEGIES[challenger].measured_against
    by_path = {str(run.path): run for run in runs}
    groups: dict[tuple[str, str], dict[str, Run]] = {}
    for run in runs:
        config = run.config
        group, strategy = config.get("group"), config.get("strategy")
        if run.state != "done" or not isinstance(group, str) or strategy not in (challenger, rival):
            continue
        groups.setdefault((group, str(config.get("data"))), {})[strategy] = run
    rows = []
    for (group, data), pair in sorted(groups.items()):
        if len(pair) < 2:
            continue
        structure, parameter = pair[challenger], pair[rival]
        scores = _miou(structure), _miou(parameter)
        if None in scores:
            continue
        source = by_path.get(str(structure.config.get("source_run")))
        rows.append(StructureEvidence(group, data, str(source.config.get("data")) if source else "?", *scores))
    return rows
