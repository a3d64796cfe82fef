"""Cross-modal alignment into the shared latent, and representation metrics.

Different modalities of the same state should land on the same point of the shared latent, so
that the policy above it transfers. Paired data is free: render the same states in two
modalities (:mod:`metaxm.align.pairs`). The losses (:mod:`metaxm.align.losses`: InfoNCE;
:mod:`metaxm.align.vae`: a VAE with a shared latent) serve three ways:

* ``metaxm pretrain SPEC --out RUNDIR``: self-supervised pretraining of the encoders and
  adapters before any RL (:mod:`metaxm.align.pretrain`);
* an auxiliary loss in PPO, MAML and RL^2 training, weighted by ``align.weight``
  (:func:`~metaxm.align.losses.paired_infonce`, :class:`~metaxm.align.aux.AuxAlignment`);
* few-shot fitting of a new modality's adapter (and encoder) from k paired steps against the
  latent of a known modality (:mod:`metaxm.align.fewshot`).

The representation metrics (retrieval, NMI/AMI of k-means clusters, a linear probe) are in
:mod:`metaxm.align.metrics`.
"""

from __future__ import annotations

from metaxm.align.losses import AlignmentLoss, info_nce, multi_view_info_nce, paired_infonce
from metaxm.align.pairs import PairedBatch, PairedSampler, render_pairs, state_ids
from metaxm.config.align import AlignConfig

__all__ = [
    "AlignConfig",
    "AlignmentLoss",
    "PairedBatch",
    "PairedSampler",
    "info_nce",
    "multi_view_info_nce",
    "paired_infonce",
    "render_pairs",
    "state_ids",
]
