"""The item kernel Φ (paper Eq. 2, 5, 6) and the inverse module h (average pooling over a slate)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ItemKernel(nn.Module):
    """Φ: item id -> a ``dim``-vector in the kernel space shared by states, hyper-actions and items.

    Φ(i) = W·features(i) (+ an id embedding when ``use_item_id``). The paper maps item features only;
    the id embedding lets datasets whose items share features (MovieLens genres) still tell items
    apart, as the authors' KuaiRand setup did with per-item random codes. Id 0 is padding: Φ(0) = 0.
    The feature table is a non-persistent buffer: it is data, not a weight, so it is neither
    checkpointed nor shipped with every weight sync.
    """

    def __init__(self, item_features: np.ndarray | torch.Tensor, dim: int = 32, *, use_item_id: bool = True):
        super().__init__()
        feats = torch.as_tensor(np.asarray(item_features), dtype=torch.float32)
        self.n_items = feats.shape[0] - 1
        self.dim = dim
        self.register_buffer("features", feats, persistent=False)
        self.feature_map = nn.Linear(feats.shape[1], dim) if feats.shape[1] > 0 else None
        self.id_embedding = nn.Embedding(self.n_items + 1, dim, padding_idx=0) if use_item_id else None
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.1)
            with torch.no_grad():
                self.id_embedding.weight[0].zero_()
        if self.feature_map is None and self.id_embedding is None:
            raise ValueError("the item kernel needs item features or use_item_id=True")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(...,) int ids -> (..., dim); padding ids map to the zero vector."""
        out = 0
        if self.feature_map is not None:
            out = self.feature_map(self.features[ids]) * (ids > 0).unsqueeze(-1)
        if self.id_embedding is not None:
            out = out + self.id_embedding(ids)
        return out

    def all_items(self) -> torch.Tensor:
        """(N, dim) embeddings of the candidate pool, items 1..N in order (row j is item j + 1)."""
        ids = torch.arange(1, self.n_items + 1, device=self.features.device)
        return self.forward(ids)


def inverse_pool(kernel_embeddings: torch.Tensor) -> torch.Tensor:
    """h(a): the hyper-action a slate implies, the mean of its items' kernel embeddings (Eq. 6).

    ``kernel_embeddings`` is (B, k, dim), i.e. Φ of the slate's items."""
    return kernel_embeddings.mean(dim=-2)


def score_items(hyper_action: torch.Tensor, candidate_embeddings: torch.Tensor) -> torch.Tensor:
    """score(i | Z) = Φ(i)ᵀZ for every candidate (Eq. 5): (B, dim) x (N, dim) -> (B, N)."""
    return hyper_action @ candidate_embeddings.T


def select_slate(
    scores: torch.Tensor,
    k: int,
    *,
    greedy_rate: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Effect action from scores: top-k, or (per row, with probability 1 - greedy_rate) k items sampled
    without replacement from softmax(scores) via the Gumbel-top-k trick. Returns (B, k) item ids (1-based)."""
    if greedy_rate >= 1.0:
        return torch.topk(scores, k, dim=-1).indices + 1
    gumbel = -torch.log(-torch.log(torch.rand(scores.shape, generator=generator, device=scores.device).clamp_(1e-20, 1.0)))
    sample_row = torch.rand(scores.shape[0], 1, generator=generator, device=scores.device) >= greedy_rate
    perturbed = torch.where(sample_row, scores + gumbel, scores)
    return torch.topk(perturbed, k, dim=-1).indices + 1
