"""Helpers of the device tests: the device/precision parameters, autocast as Lightning does it, a host-sync probe.

* ``DEVICES``: ``cpu`` (runs in ``make test``) and ``cuda`` (marked ``gpu``; skipped without CUDA, run by
  ``make test-gpu``). The same test body runs on both.
* ``autocast(device, precision)``: the forward context of Lightning's precision plugin for ``precision``
  (``"32-true"``: none; ``"bf16-mixed"``: ``torch.autocast(device, bfloat16, cache_enabled=False)``), so a test
  step runs under exactly what ``Trainer(precision=...)`` wraps ``training_step`` in.
* ``no_host_sync(device)``: fails the test if the block synchronises with the host. On CUDA this is
  ``torch.cuda.set_sync_debug_mode("error")`` (PyTorch raises at the synchronising call: ``.item()``, ``.cpu()``,
  ``nonzero``, boolean indexing, ``torch.tensor(list, device=cuda)``, ...). Everywhere, a ``TorchDispatchMode``
  probe also records the aten ops that would synchronise on a GPU (``HOST_SYNC_OPS``: reading a value to Python,
  data-dependent output shapes, tensors made from host data), so the CPU run in CI finds the same bugs except
  plain ``.cpu()``/numpy round trips, which are no-ops on CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils._python_dispatch import TorchDispatchMode

HAS_CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")]
    ),
]
PRECISIONS = ["32-true", "bf16-mixed"]

aten = torch.ops.aten

# ops that read device values on the host or whose output shape depends on the data: each one is a host sync on CUDA
HOST_SYNC_OPS = {
    aten._local_scalar_dense,  # .item(), bool(t), float(t), int(t), if t: ...
    aten.nonzero,
    aten.nonzero_static,
    aten.masked_select,
    aten._unique,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.unique_dim_consecutive,
    aten.bincount,
    aten.equal,
    aten.is_nonzero,
    aten.lift_fresh,  # torch.tensor(host data, device=...): a blocking host-to-device copy
}


def _has_bool_index(args: tuple[Any, ...]) -> bool:
    """``x[bool_mask]`` (aten.index / index_put with a boolean index): a nonzero inside, so a sync."""
    indices = args[1] if len(args) > 1 else None
    if not isinstance(indices, list | tuple):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


class HostSyncProbe(TorchDispatchMode):
    """Records every dispatched op in ``HOST_SYNC_OPS`` (and boolean indexing) as ``events``.

    ``F.one_hot(x, num_classes)`` is exempt: on CPU it range-checks ``x`` with ``.item()``, on CUDA it does not
    (ATen ``Onehot.cpp`` leaves that to the device-side asserts of ``scatter``), so it is no sync where it matters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.paused = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        hit = packet in HOST_SYNC_OPS or (
            packet in (aten.index, aten.index_put, aten.index_put_) and _has_bool_index(args)
        )
        if hit and not self.paused:
            self.events.append(str(func))
        return func(*args, **(kwargs or {}))


@contextmanager
def _exempt_one_hot(probe: HostSyncProbe) -> Iterator[None]:
    original = torch.nn.functional.one_hot

    def one_hot(tensor: torch.Tensor, num_classes: int = -1) -> torch.Tensor:
        if num_classes < 1:  # without num_classes it reads max() on every device: a real sync
            return original(tensor, num_classes)
        probe.paused += 1
        try:
            return original(tensor, num_classes)
        finally:
            probe.paused -= 1

    torch.nn.functional.one_hot = one_hot
    try:
        yield
    finally:
        torch.nn.functional.one_hot = original


@contextmanager
def no_host_sync(device: str) -> Iterator[HostSyncProbe]:
    """Fail if the block synchronises with the host (see the module docstring)."""
    probe = HostSyncProbe()
    previous = torch.cuda.get_sync_debug_mode() if device == "cuda" else None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        with probe, _exempt_one_hot(probe):
            yield probe
    finally:
        if previous is not None:
            torch.cuda.set_sync_debug_mode(previous)
    assert not probe.events, f"host-synchronising ops in the hot path: {sorted(set(probe.events))}"


def autocast(device: str, precision: str) -> AbstractContextManager[Any]:
    """The forward context ``Trainer(accelerator=device, precision=precision)`` uses around a step."""
    if precision == "32-true":
        return nullcontext()
    if precision != "bf16-mixed":
        raise ValueError(f"unsupported precision {precision!r}")
    return MixedPrecision("bf16-mixed", device).forward_context()


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    """A collated batch with every tensor (also inside ``inputs``) on ``device``."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out[key] = {k: v.to(device) for k, v in value.items()}
        elif isinstance(value, torch.Tensor):
            out[key] = value.to(device)
        else:
            out[key] = value
    return out
