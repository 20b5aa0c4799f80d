"""NEAT's hyper-parameters: hhc1997/NEAT's ``src/params.py`` TTA defaults, except
``batch_size`` 256 (the paper's rows; ``--tta-total-bs`` defaults to 64)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class NEATConfig:
    """Test-time adaptation settings; defaults are the reference's flags (``--tta-init-lr``,
    ``--tta-wd``, ``--tta-steps``, ``--tta-temperature{,2}``), torch's AdamW betas/eps and
    ``train_TTA.py``'s triplet weights; ``pre_caption`` normalises texts as its loader does.
    """

    lr: float = 2e-4
    weight_decay: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    steps: int = 3
    batch_size: int = 256
    temperature: float = 0.03
    temperature2: float = 0.07
    pos_weight: float = 5.0
    inv_margin: float = 2.0
    pairwise_eps: float = 1e-6
    pre_caption: bool = True

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(
                f"NEATConfig.steps must be >= 1 (scores come from a step), got {self.steps}"
            )
        if self.batch_size < 2:
            raise ValueError(
                f"NEATConfig.batch_size must be >= 2 (the losses compare captions within a batch), "
                f"got {self.batch_size}"
            )
        for name in ("lr", "temperature", "temperature2"):
            if not getattr(self, name) > 0:
                raise ValueError(f"NEATConfig.{name} must be > 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, for run records."""
        return dataclasses.asdict(self)
