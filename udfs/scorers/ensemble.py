"""The `ensemble` backend: a weighted mean, per label, of other backends' scores."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from udfs.scorers.base import BackendParams, LabelScores, Scorer, build_scorer, register


class Gate(BackendParams):
    label: str
    min: float = Field(ge=0, le=1)


class MemberSpec(BackendParams):
    backend: str
    params: dict = {}
    weight: float = Field(default=1.0, gt=0)
    labels: dict[str, str] = Field(default={}, description="member label -> ensemble label (unmapped keep their name)")
    gate: Gate | None = Field(
        default=None,
        description="run only on texts whose `label`, as the members before "
        "score it, is at least `min` (a cheap-first cascade)",
    )

    def build(self) -> Scorer:
        return build_scorer(self.backend, self.params)


class EnsembleParams(BackendParams):
    members: list[MemberSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _members_valid(self) -> EnsembleParams:
        for member in self.members:
            member.build()  # unknown backends and bad params fail at config time
        return self


@register
class Ensemble(Scorer):
    """Each label is the weighted mean over the members that score it; a gated member runs only where
    the members before it see enough signal, so an expensive model sees a fraction of the traffic."""

    backend = "ensemble"
    Params = EnsembleParams

    def open(self, device: str = "cpu") -> None:
        self._members = []
        for spec in self.params.members:
            scorer = spec.build()
            scorer.open(device)
            self._members.append((scorer, spec))
        self.labels = tuple(
            dict.fromkeys(spec.labels.get(label, label) for scorer, spec in self._members for label in scorer.labels)
        )

    def score(self, texts: Sequence[str]) -> list[LabelScores]:
        sums: list[dict[str, float]] = [{} for _ in texts]
        weights: list[dict[str, float]] = [{} for _ in texts]
        for scorer, spec in self._members:
            idx = list(range(len(texts)))
            if spec.gate is not None:
                label, low = spec.gate.label, spec.gate.min
                idx = [i for i in idx if weights[i].get(label) and sums[i][label] / weights[i][label] >= low]
            for i, scores in zip(idx, scorer.score([texts[i] for i in idx]) if idx else []):
                for label, value in scores.items():
                    label = spec.labels.get(label, label)
                    sums[i][label] = sums[i].get(label, 0.0) + spec.weight * value
                    weights[i][label] = weights[i].get(label, 0.0) + spec.weight
        return [{label: total[label] / weight[label] for label in total} for total, weight in zip(sums, weights)]
