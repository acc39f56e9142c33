"""``UL4M4Imputer``: the fit/transform wrapper around the UL4M4 kernels in ``mmbench.functional.imputation``.

UL4M4 (Ismkhan & Bouchachia, arXiv 2606.15743; ``reference/ul4m4.md`` §1, §8) completes missing modalities in
embedding space: per-modality z-score and partial-modality k-means fitted on the *training* split's observed
embeddings, then greedy cluster-guided completion for any split. The imputer is not differentiable and is
never updated by gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmbench.functional.imputation import greedy_complete, partial_kmeans, zscore_fit

__all__ = ["UL4M4Imputer"]

_STATE = ("fitted", "dims", "mu", "sigma", "centres", "centre_mask")


class UL4M4Imputer(nn.Module):
    """UL4M4 cluster-guided imputation of missing modality embeddings.

    ``fit(X, mask)`` (training split only) computes the z-score statistics on observed entries and runs
    partial-modality k-means; ``transform(X, mask)`` completes any split with the frozen training state. The
    state lives in buffers, so it travels with ``state_dict`` and Lightning checkpoints; buffers are sized at
    fit time and resized on load, so a fresh module can load a fitted state.

    Layout of the state (``D = Σ_m d_m``, modalities concatenated in canonical order): ``mu``/``sigma``
    ``float[D]``, ``centres`` ``float[K, D]`` (raw space), ``centre_mask`` ``bool[K, M]``, ``dims`` ``long[M]``,
    ``fitted`` ``bool[]``.

    Args:
        num_clusters: K (default 16; 1 = mean-fill).
        max_iter: maximum number of Lloyd updates (default 50). Not an official value: the official MOSI/EDF
            scripts cap their loop at 100 iterations but exit after one update (see ``official_one_update``).
        tol: centre-shift tolerance, in units of the partial-modality distance D (default 1e-4; Lloyd only).
        seed: seed of the k-means++ draws (default 0).
        chunk_size: samples per chunk, bounds the memory of the intermediates (default 4096).
        official_one_update: ``False`` (default): exact Lloyd, the paper's algorithm. ``True``: one assignment to
            the k-means++ seeds and one centre update, then stop, which is what the official MOSI/EDF code
            computes (its first "Elkan" pass re-assigns against the unchanged seeds, finds no change and exits
            at iteration 1); empty clusters become dead centres as there. See
            ``mmbench.functional.imputation.partial_kmeans`` for this and the other differences from the
            official scripts.

    Example::

        >>> X = [torch.randn(40, 3), torch.randn(40, 2)]
        >>> mask = torch.rand(40, 2) < 0.7
        >>> mask[:, 0] |= ~mask.any(1)
        >>> out = UL4M4Imputer(num_clusters=4).fit(X, mask).transform(X, mask)
        >>> [tuple(o.shape) for o in out]
        [(40, 3), (40, 2)]
    """

    fitted: Tensor
    dims: Tensor
    mu: Tensor
    sigma: Tensor
    centres: Tensor
    centre_mask: Tensor

    def __init__(
        self,
        num_clusters: int = 16,
        max_iter: int = 50,
        tol: float = 1e-4,
        seed: int = 0,
        chunk_size: int = 4096,
        official_one_update: bool = False,
    ) -> None:
        super().__init__()
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        if max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {max_iter}")
        if not tol >= 0:
            raise ValueError(f"tol must be >= 0, got {tol}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.num_clusters = int(num_clusters)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.official_one_update = bool(official_one_update)
        self.num_iter: int | None = None
        """Lloyd updates run by the last ``fit`` (not part of the state)."""
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("dims", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mu", torch.zeros(0))
        self.register_buffer("sigma", torch.zeros(0))
        self.register_buffer("centres", torch.zeros(0, 0))
        self.register_buffer("centre_mask", torch.zeros(0, 0, dtype=torch.bool))

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"num_clusters={self.num_clusters}, max_iter={self.max_iter}, tol={self.tol}, seed={self.seed}, "
            f"chunk_size={self.chunk_size}, official_one_update={self.official_one_update}, "
            f"fitted={bool(self.fitted)}"
        )

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has run (or a fitted state was loaded)."""
        return bool(self.fitted)

    # ------------------------------------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, X: Sequence[Tensor], mask: Tensor) -> UL4M4Imputer:
        """Fit the z-score and the partial-modality k-means on training embeddings (ul4m4.md §1.6-1.7).

        Only ``X`` and ``mask`` are read, and only their observed entries. Call it on the training split.

        Args:
            X: per modality ``float[N, d_m]`` (unobserved slots are garbage and never read).
            mask: ``bool[N, M]``, ``True`` = observed.

        Returns:
            ``self``.

        Raises:
            ValueError: malformed inputs, a modality observed by no sample, or fewer samples with an observed
                modality than ``num_clusters``.
        """
        X = list(X)
        self._check_inputs(X, mask)
        counts = mask.sum(0)
        never = [m for m in range(mask.shape[1]) if int(counts[m]) == 0]
        if never:
            raise ValueError(f"modalities {never} are observed in no training sample; UL4M4 cannot impute them")
        usable = int(mask.any(1).sum())
        if usable < self.num_clusters:
            raise ValueError(
                f"num_clusters={self.num_clusters} exceeds the {usable} training samples with an observed modality"
            )
        mu, sigma = zscore_fit(X, mask, chunk_size=self.chunk_size)
        res = partial_kmeans(
            X,
            mask,
            self.num_clusters,
            mu,
            sigma,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=self.seed,
            chunk_size=self.chunk_size,
            official_one_update=self.official_one_update,
        )
        self.num_iter = res.num_iter
        dev = mask.device
        self.dims = torch.tensor([x.shape[1] for x in X], dtype=torch.long, device=dev)
        self.mu = torch.cat(mu)
        self.sigma = torch.cat(sigma)
        self.centres = torch.cat(res.centres, 1)
        self.centre_mask = res.centre_mask.clone()
        self.fitted = torch.tensor(True, device=dev)
        return self

    # ------------------------------------------------------------------------------------------ transform
    @torch.no_grad()
    def transform(self, X: Sequence[Tensor], mask: Tensor) -> list[Tensor]:
        """Complete the missing modalities with the fitted state (any split; the state is not changed).

        Args:
            X: per modality ``float[N, d_m]`` (unobserved slots are garbage and never read).
            mask: ``bool[N, M]``, ``True`` = observed.

        Returns:
            Per modality ``float[N, d_m]`` on the device and in the dtype of ``X``; observed entries are
            returned bit for bit, missing ones are imputed (raw embedding space).

        Raises:
            ValueError: ``transform`` before ``fit``, or inputs that do not match the fitted modalities.
        """
        if not self.is_fitted:
            raise ValueError("UL4M4Imputer.transform called before fit (or before loading a fitted state_dict)")
        X = list(X)
        self._check_inputs(X, mask)
        dims = self.dims.tolist()
        if len(X) != len(dims):
            raise ValueError(f"expected {len(dims)} modalities (as fitted), got {len(X)}")
        for m, (x, d) in enumerate(zip(X, dims, strict=True)):
            if x.shape[1] != d:
                raise ValueError(f"X[{m}] has {x.shape[1]} features, but the imputer was fitted with d_{m}={d}")
        return greedy_complete(
            X,
            mask,
            list(self.centres.split(dims, 1)),
            self.centre_mask.to(mask.device),
            list(self.mu.split(dims)),
            list(self.sigma.split(dims)),
            chunk_size=self.chunk_size,
        )

    def forward(self, X: Sequence[Tensor], mask: Tensor) -> list[Tensor]:
        """Alias of ``transform``."""
        return self.transform(X, mask)

    # ---------------------------------------------------------------------------------------------- helpers
    @staticmethod
    def _check_inputs(X: Sequence[Tensor], mask: Tensor) -> None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
            raise ValueError(f"mask must be a bool tensor [N, M], got {getattr(mask, 'dtype', type(mask))}")
        if len(X) != mask.shape[1]:
            raise ValueError(f"X has {len(X)} modalities but mask has M={mask.shape[1]} columns")
        for m, x in enumerate(X):
            if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != mask.shape[0]:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"X[{m}] must be a tensor [N={mask.shape[0]}, d_{m}], got {shape}")

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # buffers are sized at fit time: take the incoming shape and dtype before the copy
        for name in _STATE:
            src = state_dict.get(prefix + name)
            if isinstance(src, Tensor):
                setattr(self, name, torch.empty_like(src, device=getattr(self, name).device))
        super()._load_from_state_dict(
            dict(state_dict), prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
