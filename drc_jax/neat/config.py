"""NEAT's hyper-parameters, defined once (recorded per run by the launcher).

Defaults are the reference's (github hhc1997/NEAT, ``src/params.py`` TTA flags and the
``torch.optim.AdamW`` built in ``src/main_TTA.py``), except ``batch_size``: 256 captions per batch
as issue 11 specifies for the paper's rows (``--tta-total-bs``, whose default in ``params.py`` is
64).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class NEATConfig:
    """Test-time adaptation settings.

    Attributes:
      lr: AdamW learning rate (``--tta-init-lr`` 2e-4).
      weight_decay: AdamW decoupled weight decay (``--tta-wd`` 1e-3), applied to every adapted
        parameter as ``torch.optim.AdamW`` does with one parameter group.
      b1, b2, eps: AdamW moments and epsilon; ``main_TTA.py`` passes none, so torch's defaults.
      steps: adaptation steps per batch (``--tta-steps`` 3).
      batch_size: captions per batch (``--tta-total-bs``).
      temperature: entropy temperature (``--tta-temperature`` 0.03).
      temperature2: semantics-reversion divisor (``--tta-temperature2`` 0.07).
      pos_weight: weight of ``|t - pos|`` in the textual triplet loss (5 in ``train_TTA.py``).
      inv_margin: the triplet's ``margin - |t - inv|`` (2, the largest distance of unit vectors).
      pairwise_eps: ``torch.nn.PairwiseDistance``'s eps, added to the difference before the norm.
      pre_caption: lower-case and strip ``.!"()*#:;~`` from all four texts first, as the
        reference's data loader does (``src/data/utils.py:pre_caption``).
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
