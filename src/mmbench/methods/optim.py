"""Learning-rate schedules that are stepped per optimiser step, for LightningCLI's ``--lr_scheduler``.

LightningCLI steps a scheduler once per epoch. A scheduler with an ``interval`` attribute of ``"step"`` is stepped
after every optimiser step instead (``MMBenchCLI.configure_optimizers`` passes it on as Lightning's scheduler
``interval``). ``PolyLR`` is the BraTS "poly" schedule of the ShaSpec/RFNet code,
``lr = base_lr · (1 − iteration / total_iters) ** power`` per iteration::

    optimizer:
      class_path: torch.optim.SGD
      init_args: {lr: 0.01, momentum: 0.99, nesterov: true}
    lr_scheduler:
      class_path: mmbench.methods.optim.PolyLR
      init_args: {total_iters: 180000, power: 0.9}   # interval: step (default)

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = PolyLR(opt, total_iters=4, power=1.0)
    >>> for _ in range(2):
    ...     opt.step()
    ...     sched.step()
    >>> opt.param_groups[0]["lr"], sched.interval
    (0.5, 'step')
"""

from __future__ import annotations

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import PolynomialLR

__all__ = ["Interval", "PolyLR"]

Interval = Literal["step", "epoch"]
"""When Lightning steps a scheduler: after every optimiser step or once per epoch."""


class PolyLR(PolynomialLR):
    """Polynomial decay to 0 over ``total_iters`` scheduler steps, stepped per optimiser step by default.

    Args:
        optimizer: the optimiser (given by LightningCLI).
        total_iters: steps until the learning rate reaches 0 (e.g. ``trainer.max_steps``).
        power: exponent (0.9 in the BraTS code).
        interval: ``"step"`` (default) or ``"epoch"``.
        last_epoch: index of the last step (resuming), ``-1`` to start.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_iters: int = 1000,
        power: float = 0.9,
        interval: Interval = "step",
        last_epoch: int = -1,
    ) -> None:
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        if total_iters < 1:
            raise ValueError(f"total_iters must be >= 1, got {total_iters}")
        self.interval: Interval = interval
        super().__init__(optimizer, total_iters=total_iters, power=power, last_epoch=last_epoch)
