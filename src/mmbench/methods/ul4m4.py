"""UL4M4: task-independent cluster-guided imputation in embedding space (Ismkhan & Bouchachia, arXiv 2606.15743).

UL4M4 completes missing modalities *before* any supervised model, in the space of frozen per-modality encoders,
with an imputer fitted without labels on the training split (``reference/ul4m4.md`` §1, official code
h-ismkhan/Multimodal-Learning-with-Missing-Modalities-via-Unsupervised-Learning @ 0f84e8f). In mmbench:

1. **Frozen encoders** (``fit_unsupervised``, step a). A ``(D,)`` vector modality (feature datasets) is its own
   embedding (identity). A raw modality (image, sequence, volume) gets an autoencoder trained with MSE for
   ``ae_epochs`` on the *observed* training inputs only (rows whose training mask is True for that modality; the
   official EDF script pretrains on unmasked data, ul4m4.md §6.5, which we do not copy), then frozen
   (``requires_grad=False`` from construction, so never in the supervised optimiser). Vector tasks use
   ``make_encoder`` (LeNet convs for images, 1-D convs for MFCC frames) to ``embed_dim`` and an MLP decoder, as the
   EDF script's conv autoencoder; segmentation uses one ``UNet3DEncoder`` per modality with a skip-free decoder,
   and the embedding is the flattened bottleneck map ``[C_b·d·h·w]``. The AE decoders exist only during this
   step and are discarded.
2. **Imputer fit** (step b). The training split is embedded under its training masks (epoch 0) and a
   ``UL4M4Imputer`` (per-modality z-score, partial-modality k-means with the D of paper Eq. 2, centres of Eq. 3)
   is fitted on the observed embeddings. Which training rows it sees is ``imputer_fit``:

   * ``"observed"`` (default): every observed embedding of every training row under the training masks, as the
     official **Sleep-EDF** (``ul4m4-edf.py``) and **MM-IMDb** (``mmimdb_ul4m4.py``) scripts do; the supervised
     part trains on the masked, imputed training data, as there. The official **CMU-MOSI** script
     (``mosi-ul4m4.py``, ``TrainOnComplete=True``, ul4m4.md §6.1) loads the training split *unmasked*: clustering
     and the head both see complete training data and only val/test are masked. In mmbench that is a data-module
     setting, not a method one (the method never reads masked-out inputs): train with full-modality training masks
     (``missingness: null``, i.e. every training modality observed) and test under the evaluation protocols; with
     ``imputer_fit="observed"`` the imputer is then fitted on the unmasked training split, exactly as MOSI.
   * ``"complete_rows"``: only the training rows that observe every modality *under the training masks* (about
     12.5 % of them at 50 % missing per modality of three), while the head still trains on masked, imputed rows.
     This was mmbench's earlier default; it mirrors **no** official script and is kept as a named option. It
     raises if no training row is complete.

   ``imputer_official_one_update=True`` stops the k-means after the single update the official MOSI/EDF code
   performs (its first "Elkan" pass re-assigns against the unchanged seeds and exits); the default is exact Lloyd
   (see ``mmbench.functional.imputation.partial_kmeans``). Validation and test data are never read.
3. **Forward** (pure per sample). Zero-fill masked-out inputs, embed every modality with the frozen encoders
   (no gradient), complete the missing embeddings with the fitted imputer (greedy completion of paper
   Algorithm 2: observed embeddings returned bit for bit, missing ones copied from centres), then the supervised
   part: vector tasks follow paper Eqs. 4-8 (per-modality ``LayerNorm`` + linear projection to ``d_model``, plus a
   learned modality embedding; ``num_layers`` ``TransformerEncoder`` layers of self-attention over the M tokens,
   no attention mask as nothing is missing any more; mean pooling; Linear-ReLU + task head). Segmentation
   reshapes the completed bottlenecks to maps, concatenates them ``[B, M·C_b, d, h, w]`` and a trainable 3-D
   decoder predicts the ET/TC/WT logits at input resolution; with ``seg_skips="observed_mean"`` (default) the
   decoder's skips are the per-sample mean of the frozen encoders' skip features over *observed* modalities
   (HeMIS-style, never from a missing modality), with ``"none"`` it reads the completed bottlenecks only.

**No caching.** The imputation runs at forward time on each batch. It is cheap (the K centres and the M
modalities are small), and it stays correct where a per-(split, index) cache would not: masks resampled every
epoch, BraTS training patches that change with the epoch under the same index, evaluation protocols that show one
test sample under several masks, and sliding-window evaluation.

**K.** ``num_clusters = 1`` is exactly per-modality mean-fill of the embeddings (ul4m4.md §4.1). If fewer usable
training rows than K exist (tiny data), K is lowered to that number with a warning; ``variant()`` records the
configured K.

State (frozen encoder weights, imputer buffers, the ``fitted`` flag) is in ``state_dict``, so checkpoints carry
it, and ``fit_unsupervised`` does nothing when ``fitted`` is already set (resuming from a checkpoint).
``fit_unsupervised`` needs no Trainer (it runs on the module's device); under Trainer DDP, rank 0's state is
broadcast to every rank.

Deviations from the official code: frozen encoders are small autoencoders trained here (official: pretrained
BERT/WavLM/CLIP, or the EDF conv AE); k-means is exact Lloyd by default (no Elkan pruning; the official code's
single update is ``imputer_official_one_update``) and empty clusters are re-seeded (see
``mmbench.functional.imputation``); the fusion adds a per-modality ``LayerNorm`` before the projection and a
learned modality embedding (the tokens are otherwise order-free after pooling); segmentation is not in the paper.

Example:
    >>> from mmbench.data.synthetic import SyntheticDataModule
    >>> dm = SyntheticDataModule(input_shapes={"a": [6], "b": [4]}, num_samples=(32, 8, 8))
    >>> model = UL4M4(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, num_clusters=4)
    >>> model.fit_unsupervised(dm)
    >>> x = {"a": torch.randn(2, 6), "b": torch.randn(2, 4)}
    >>> out = model(x, torch.tensor([[True, False], [False, True]]))
    >>> tuple(out.logits.shape), tuple(out.aux["completed_b"].shape)
    ((2, 3), (2, 4))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from mmbench.functional.fusion import masked_mean
from mmbench.masks import zero_fill
from mmbench.methods.base import MissingModalityMethod
from mmbench.nn.imputer import UL4M4Imputer
from mmbench.registry import METHODS
from mmbench.types import MethodOutput

if TYPE_CHECKING:
    from mmbench.data.base import MultimodalDataModule

__all__ = ["UL4M4", "ImputerFit", "SegSkips"]

ImputerFit = Literal["observed", "complete_rows"]
"""Training rows the imputer is fitted on: every observed embedding (EDF / MM-IMDb scripts; MOSI with unmasked
training data) or only rows complete under the training masks (no official script)."""

SegSkips = Literal["observed_mean", "none"]
"""Segmentation decoder skips: per-sample mean over observed modalities of the frozen skip features, or none."""


@METHODS.register("ul4m4")
class UL4M4(MissingModalityMethod):
    """UL4M4-style imputation in frozen-encoder embedding space, then a supervised fusion model (module docstring).

    The frozen encoders, the autoencoder decoders and the supervised decoder come from the task's backbone
    (``mmbench.nn.backbones``: ``embedder``, ``reconstructor``, ``token_decoder``).

    Args:
        num_clusters: K of the partial-modality k-means (16; 1 = mean-fill of the embeddings).
        imputer_fit: ``"observed"`` (default: every observed training embedding, the official EDF / MM-IMDb
            scripts, and MOSI when the training data are unmasked) or ``"complete_rows"`` (rows complete under the
            training masks only; no official script). See the module docstring.
        imputer_max_iter: maximum Lloyd updates (100). The official MOSI/EDF scripts cap their loop at 100
            iterations and a drift of 1e-6, but the loop exits after one update (``imputer_official_one_update``),
            so these caps are not what the official code does.
        imputer_tol: centre-shift tolerance in units of D (1e-6).
        imputer_official_one_update: stop the k-means after the official code's single update (False: exact
            Lloyd, the paper's algorithm).
        seed: seed of the unsupervised stage: AE decoder init and batch order, k-means++ draws (0).
        embed_dim: embedding width of the raw-input autoencoders of vector tasks (128).
        ae_epochs: autoencoder epochs over the observed training inputs (10; 0 keeps the random encoders).
        ae_lr: autoencoder Adam learning rate (1e-3).
        ae_hidden: hidden width of the autoencoders' MLP decoders (256).
        d_model: token width of the fusion transformer (64).
        num_heads: attention heads (4).
        num_layers: transformer encoder layers (1).
        dropout: dropout in the transformer and the head (0.1).
        seg_widths: segmentation: channels per level of the frozen 3-D encoders (``(8, 16, 32, 32)``; the
            embedding of a modality is ``seg_widths[-1]·(D/2^(L−1))·(H/2^(L−1))·(W/2^(L−1))`` for a ``D×H×W``
            patch).
        seg_skips: segmentation decoder skips, ``"observed_mean"`` (default) or ``"none"``.
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings); for
            segmentation ``roi_size`` must be the training patch (the default), since the embeddings have its shape.
    """

    fitted: Tensor  # bool[]: the unsupervised stage has run (or a fitted state was loaded)

    def __init__(
        self,
        *args: Any,
        num_clusters: int = 16,
        imputer_fit: ImputerFit = "observed",
        imputer_max_iter: int = 100,
        imputer_tol: float = 1e-6,
        imputer_official_one_update: bool = False,
        seed: int = 0,
        embed_dim: int = 128,
        ae_epochs: int = 10,
        ae_lr: float = 1e-3,
        ae_hidden: int = 256,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        dropout: float = 0.1,
        seg_widths: tuple[int, ...] = (8, 16, 32, 32),
        seg_skips: SegSkips = "observed_mean",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        if ae_epochs < 0:
            raise ValueError(f"ae_epochs must be >= 0, got {ae_epochs}")
        if seg_skips not in get_args(SegSkips):
            raise ValueError(f"seg_skips must be one of {list(get_args(SegSkips))}, got {seg_skips!r}")
        if imputer_fit not in get_args(ImputerFit):
            raise ValueError(f"imputer_fit must be one of {list(get_args(ImputerFit))}, got {imputer_fit!r}")
        patch = self.input_shapes[self.modalities[0]][1:]
        if self.task.dense and self.roi_size != tuple(patch):
            raise ValueError(
                f"UL4M4: roi_size {self.roi_size} must equal the training patch {tuple(patch)} (leave it null): "
                "its imputer works on embeddings of the training patch's shape, so windows must have that shape"
            )
        self.num_clusters, self.imputer_fit = int(num_clusters), imputer_fit
        self.imputer_max_iter, self.imputer_tol, self.seed = int(imputer_max_iter), float(imputer_tol), int(seed)
        self.imputer_official_one_update = bool(imputer_official_one_update)
        self.ae_epochs, self.ae_lr, self.ae_hidden = int(ae_epochs), float(ae_lr), int(ae_hidden)
        self.seg_skips: SegSkips = seg_skips
        self.imputer = self._new_imputer(self.num_clusters)
        self.register_buffer("fitted", torch.tensor(False))

        self.backbone = self.make_backbone(embed_dim, seg_widths)
        self.encoders = nn.ModuleDict()
        self.embedding_shapes: list[tuple[int, ...]] = []  # per modality: the embedding map (vector: (d_m,))
        for m in self.modalities:
            self.encoders[m], shape = self.backbone.embedder(self.input_shapes[m], embed_dim)
            self.embedding_shapes.append(shape)
        self.embed_dims = [math.prod(s) for s in self.embedding_shapes]
        # modalities whose input is not already its embedding get an autoencoder
        self.raw = [m for m, e in zip(self.modalities, self.embedding_shapes, strict=True) if self.input_shapes[m] != e]
        self.decoder = self.backbone.token_decoder(
            self.embedding_shapes, self.num_classes, d_model, num_heads, num_layers, dropout, seg_skips != "none"
        )
        self.encoders.requires_grad_(False)  # frozen: trained only inside fit_unsupervised, never by the optimiser

    # ------------------------------------------------------------------------------------------ embeddings
    def _encode(self, modality: str, x: Tensor) -> list[Tensor]:
        """Frozen encoder levels of ``x`` ``[B, *input_shapes[modality]]`` (the embedding map last)."""
        if tuple(x.shape[1:]) != self.input_shapes[modality]:
            raise ValueError(
                f"UL4M4 embeds inputs of the training shape {self.input_shapes[modality]}, got {tuple(x.shape[1:])}; "
                "use predict_logits (sliding windows) for whole volumes"
            )
        return self.encoders[modality](self.pad_spatial(x))

    @torch.no_grad()
    def embed(self, inputs: Mapping[str, Tensor], mask: Tensor) -> list[Tensor]:
        """Frozen per-modality embeddings, masked-out inputs zero-filled first.

        Args:
            inputs: ``{name: Tensor[B, *input_shapes[name]]}``.
            mask: ``bool[B, M]``.

        Returns:
            Per modality ``float[B, d_m]`` (segmentation: the flattened bottleneck map); rows of masked-out
            modalities hold the embedding of a zero input and are never read by the imputer.
        """
        x = zero_fill(inputs, mask, self.modalities)
        return [self._encode(m, x[m])[-1].flatten(1) for m in self.modalities]

    @torch.no_grad()
    def impute(self, embeddings: Sequence[Tensor], mask: Tensor) -> list[Tensor]:
        """Complete missing embeddings with the fitted imputer: ``[B, d_m]`` per modality in and out."""
        if not self.is_fitted:
            raise RuntimeError(
                "UL4M4 is not fitted: call fit_unsupervised(datamodule) first (Trainer.fit does it in on_fit_start)"
                " or load a checkpoint of a fitted model"
            )
        return self.imputer.transform(list(embeddings), mask)

    @property
    def is_fitted(self) -> bool:
        """Whether the unsupervised stage has run (or a fitted state was loaded)."""
        return bool(self.fitted)

    # ----------------------------------------------------------------------------------- unsupervised stage
    def fit_unsupervised(self, datamodule: MultimodalDataModule) -> None:
        """Train the autoencoders on observed training inputs, freeze them, fit the imputer (train split only).

        Does nothing when ``fitted`` is set (e.g. the state came from a checkpoint). Reads only
        ``self.train_batches(datamodule)`` (masked, zero-filled training batches, epoch-0 masks).

        Raises:
            ValueError: ``imputer_fit="complete_rows"`` and no training row observes every modality, or (from the
                imputer) a modality observed in no training row.
        """
        if self.is_fitted:
            rank_zero_info("UL4M4: unsupervised stage already fitted (e.g. loaded from a checkpoint); not re-run")
            return
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seeded, and the supervised RNG stream is left untouched
            torch.manual_seed(self.seed)
            self._train_autoencoders(datamodule)
            X, mask = self._embed_train_split(datamodule)
        self._fit_imputer(X, mask)
        self.fitted.fill_(True)
        self._sync_ranks()

    def _embedding_shape(self, modality: str) -> tuple[int, ...]:
        return self.embedding_shapes[self.modalities.index(modality)]

    def _ae_batch_limit(self) -> int | None:
        """Batches per autoencoder epoch: all, or ``fast_dev_run`` batches of one epoch under a fast dev run."""
        fast = getattr(self._trainer, "fast_dev_run", False) if self._trainer is not None else False
        return int(fast) if fast else None

    def _train_autoencoders(self, datamodule: MultimodalDataModule) -> None:
        if not self.raw or self.ae_epochs == 0:
            return
        limit = self._ae_batch_limit()
        decoders = {
            m: self.backbone.reconstructor(self._embedding_shape(m), self.input_shapes[m], self.ae_hidden).to(
                self.device
            )
            for m in self.raw
        }
        params = [p for m in self.raw for p in (*self.encoders[m].parameters(), *decoders[m].parameters())]
        optimizer = torch.optim.Adam(params, lr=self.ae_lr)
        totals = dict.fromkeys(self.raw, 0.0)
        counts = dict.fromkeys(self.raw, 0)
        self.encoders.requires_grad_(True)
        try:
            with torch.enable_grad():
                for _ in range(1 if limit is not None else self.ae_epochs):
                    totals, counts = dict.fromkeys(self.raw, 0.0), dict.fromkeys(self.raw, 0)
                    for batch in self.train_batches(datamodule, max_batches=limit):
                        mask = batch["mask"]
                        for m in self.raw:
                            rows = mask[:, self.modalities.index(m)]
                            if rows.any():  # the autoencoder of m sees the rows that observe m, and only those
                                x = batch["inputs"][m][rows]
                                loss = self._autoencoder_step(m, x, decoders[m], optimizer)
                                totals[m] += float(loss) * x.shape[0]
                                counts[m] += x.shape[0]
        finally:
            self.encoders.requires_grad_(False)
        summary = ", ".join(f"{m}={totals[m] / max(counts[m], 1):.4g}" for m in self.raw)
        rank_zero_info(
            f"UL4M4: autoencoders trained ({self.ae_epochs} epochs), last-epoch reconstruction MSE {summary}"
        )

    def _autoencoder_step(
        self, modality: str, x: Tensor, decoder: nn.Module, optimizer: torch.optim.Optimizer
    ) -> Tensor:
        """One MSE reconstruction step of ``modality``'s autoencoder on observed inputs ``x`` ``[n, *shape]``."""
        z = self._encode(modality, x)[-1]
        recon = self.crop_spatial(decoder(z), x.shape)  # volumes: crop the padding
        loss = F.mse_loss(recon, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def _embed_train_split(self, datamodule: MultimodalDataModule) -> tuple[list[Tensor], Tensor]:
        """Frozen embeddings ``[N, d_m]`` of the whole training split and its training masks ``bool[N, M]``."""
        parts: list[list[Tensor]] = [[] for _ in self.modalities]
        masks = []
        for batch in self.train_batches(datamodule):
            mask = batch["mask"]
            for i, e in enumerate(self.embed(batch["inputs"], mask)):
                parts[i].append(torch.where(mask[:, i, None], e, 0.0))
            masks.append(mask)
        return [torch.cat(p) for p in parts], torch.cat(masks)

    def _fit_imputer(self, X: list[Tensor], mask: Tensor) -> None:
        n_train = mask.shape[0]
        never = [m for i, m in enumerate(self.modalities) if not mask[:, i].any()]
        if never:
            raise ValueError(
                f"UL4M4 cannot impute modalities {never}: no training sample observes them under the training masks"
                " (dedicated training on a fixed pattern?)"
            )
        if self.imputer_fit == "complete_rows":
            complete = mask.all(1)
            if not complete.any():
                raise ValueError(
                    f"UL4M4 imputer_fit='complete_rows', but none of the {n_train} training samples observes every "
                    f"modality {list(self.modalities)} under the training masks; use imputer_fit='observed' to fit "
                    "the imputer on the observed embeddings of every training sample"
                )
            X, mask = [x[complete] for x in X], mask[complete]
        usable = int(mask.any(1).sum())
        k = min(self.num_clusters, usable)
        if k < self.num_clusters:
            rank_zero_warn(
                f"UL4M4: only {usable} usable training samples; num_clusters lowered from {self.num_clusters} to {k}"
            )
        if k != self.imputer.num_clusters:
            self.imputer = self._new_imputer(k).to(self.device)
        self.imputer.fit(X, mask)
        rank_zero_info(
            f"UL4M4: imputer fitted on {mask.shape[0]} of {n_train} training samples "
            f"({'complete rows only' if self.imputer_fit == 'complete_rows' else 'observed embeddings'}), K={k}, "
            f"{self.imputer.num_iter} Lloyd updates"
        )

    def _new_imputer(self, k: int) -> UL4M4Imputer:
        return UL4M4Imputer(
            k,
            self.imputer_max_iter,
            self.imputer_tol,
            self.seed,
            official_one_update=self.imputer_official_one_update,
        )

    def _sync_ranks(self) -> None:
        """Under DDP, give every rank rank 0's frozen encoders and imputer (GPU AE training is not bit-exact)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return
        keep = ("encoders.", "imputer.", "fitted")
        state = {k: v.detach().cpu() for k, v in self.state_dict().items() if k.startswith(keep)}
        state = trainer.strategy.broadcast(state, src=0)
        self.load_state_dict({k: v.to(self.device) for k, v in state.items()}, strict=False)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:
        """Embed, impute, fuse.

        Args:
            inputs: ``{name: Tensor[B, *input_shapes[name]]}``; masked-out entries are never read.
            mask: ``bool[B, M]``, True = observed.

        Returns:
            ``logits`` ``[B, C]`` (segmentation ``[B, C, D, H, W]``) and ``aux["completed_<modality>"]``, the
            completed embedding ``[B, d_m]`` of each modality (observed ones unchanged).
        """
        B = mask.shape[0]
        x = zero_fill(inputs, mask, self.modalities)  # masked-out inputs become zeros before any encoder
        with torch.no_grad():
            levels = [self._encode(m, x[m]) for m in self.modalities]  # M lists of L levels
        completed = self.impute([lv[-1].flatten(1).float() for lv in levels], mask)  # M × [B, d_m], fp32
        aux = {f"completed_{m}": c for m, c in zip(self.modalities, completed, strict=True)}
        maps = [c.reshape(B, *e) for c, e in zip(completed, self.embedding_shapes, strict=True)]  # [B, *E_m]
        skips = []  # volumes: per level the mean of the frozen skip features over observed modalities only
        if self.seg_skips == "observed_mean":
            skips = [masked_mean(torch.stack(level, 1), mask) for level in list(zip(*levels, strict=True))[:-1]]
        logits = self.decoder(maps, skips)  # vectors: attention over modality tokens; volumes: U-Net decoder
        return MethodOutput(logits=self.crop_spatial(logits, x[self.modalities[0]].shape), aux=aux)

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {
            "K": self.num_clusters,
            "imputer_fit": self.imputer_fit,
            "kmeans": "official_one_update" if self.imputer_official_one_update else "lloyd",
        }
