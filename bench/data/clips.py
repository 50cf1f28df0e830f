"""Training clips as a Y-decoder sees them: a model's inputs (clips and queries) and every reference
caption of each clip, from whichever training source a run reads (shapes world, manifest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CaptionClips:
    """Clip i of `visuals` (a bench.eval.sets.kinds.Visuals), asked `queries[i]`, is described by
    `references[i]`. Only the first len(references) clips of visuals are used: visuals may be a whole
    split, so that its cached X features are the training run's own."""

    visuals: Any
    queries: list[str]
    references: list[list[str]]

    def __post_init__(self):
        if len(self.queries) != len(self.references):
            raise ValueError(f"{len(self.queries)} queries for {len(self.references)} clips")
        if len(self.references) > len(self.visuals):
            raise ValueError(f"{len(self.references)} clips asked of visuals holding {len(self.visuals)}")
