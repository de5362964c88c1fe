"""The user response model Ψ (paper Appendix A.2), its trainer, checkpoint and fidelity report.

Ψ scores a slate for a user state (user id + static features + history of positive items):

* **item embedding**, shared by history and slate items: ``id_embedding(i) + Linear(features_i)``,
  of width ``dim + 1``; the last coordinate is the item's bias (its popularity), the first ``dim``
  coordinates are what histories and the dot product use;
* **history encoder**, two multi-head attention layers: (1) self-attention over the history
  (``LayerNorm(item) + position``, positions counted from the most recent item, key-padding mask, with
  a residual connection); (2) the user embedding (``id_embedding(u) + MLP(features_u)``) attends over
  that sequence, and ``Linear([interest ; user])`` gives the user state;
* **score**: ``logit_i = <item_i, state> + bias_i + b`` for each slate item, and the probability of a
  positive is ``sigmoid(logit)`` (a single sigmoid; the authors' code applies two, see
  reference-code-spec §9 B5 — we follow the paper).

Training is BCE-with-logits on the logged slate feedback, AdamW, the last ``val_fraction`` of the
chosen records (by time) held out for early stopping, and a fidelity report (AUC, log-loss, decile
calibration) on those held-out records — and on the test split too when Ψ was fit on ``train``.

A simulator checkpoint is one self-contained file (written atomically): Ψ's config and weights, the
item and user feature matrices, the logged start states the environment draws users from, k, the
history length, the dataset name, per-item positive counts (for the popularity baseline) and the
training / fidelity info. :func:`load_response_model` reads it back without the dataset directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.data.errors import DataError

CHECKPOINT_FORMAT = "hac-rllib/simulator"
CHECKPOINT_VERSION = 1


class SimulatorFileError(DataError):
    """A simulator checkpoint that is missing, not ours, or from an incompatible version."""


# ================================================================================================
# The model
# ================================================================================================


@dataclass
class ResponseModelConfig:
    """Sizes of Ψ; stored in the checkpoint so the model can be rebuilt without the dataset."""

    n_items: int
    n_users: int
    item_feature_dim: int
    user_feature_dim: int
    max_history: int = 50
    dim: int = 32
    n_heads: int = 2
    user_hidden: int = 64
    dropout: float = 0.1
    use_item_ids: bool = True  # False: items known only by their features (cold items generalise)
    use_user_ids: bool = True

    def validate(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if not self.use_item_ids and self.item_feature_dim == 0:
            raise ValueError("items need ids or features (use_item_ids=False and no item features)")
        if min(self.n_items, self.n_users, self.max_history, self.dim) < 1:
            raise ValueError(f"sizes must be positive: {self}")


def _key_bias(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask (0 for real keys, -inf for padding): cheaper than a boolean one on CPU."""
    return torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device).masked_fill_(~key_mask, float("-inf"))


class ResponseModel(nn.Module):
    """Ψ: P(positive | user, history, item) for every item of a slate (see the module docstring).

    The layers are written so that a frozen Ψ can be evaluated from precomputed tables
    (:meth:`inference_tables`): the sequence input is ``LayerNorm(item) + position``, so the first
    attention layer's query/key/value projections are per-item and per-position table look-ups; the
    second layer has a single query (the user), so its key and value projections are folded onto
    that query instead of being applied to every position. The result is the same function, several
    times cheaper per simulator step. There is no dropout on attention weights (it cost a fifth of
    the training time, cf. reference-speed.md), only on the sequence inputs and the user MLP.

    The feature matrices are non-persistent buffers: the checkpoint stores them once, beside the
    weights, so RL code can read them without loading the model.
    """

    def __init__(self, config: ResponseModelConfig, item_features: torch.Tensor, user_features: torch.Tensor):
        super().__init__()
        config.validate()
        self.config = config
        c = config
        d = c.dim
        if tuple(item_features.shape) != (c.n_items + 1, c.item_feature_dim):
            raise ValueError(f"item_features shape {tuple(item_features.shape)} != {(c.n_items + 1, c.item_feature_dim)}")
        if tuple(user_features.shape) != (c.n_users + 1, c.user_feature_dim):
            raise ValueError(f"user_features shape {tuple(user_features.shape)} != {(c.n_users + 1, c.user_feature_dim)}")
        self.register_buffer("item_features", torch.as_tensor(item_features, dtype=torch.float32), persistent=False)
        self.register_buffer("user_features", torch.as_tensor(user_features, dtype=torch.float32), persistent=False)

        # items: (dim + 1) wide, the last coordinate is the item bias
        self.item_id = nn.Embedding(c.n_items + 1, d + 1, padding_idx=0) if c.use_item_ids else None
        self.item_map = nn.Linear(c.item_feature_dim, d + 1) if c.item_feature_dim else None
        # users
        self.user_id = nn.Embedding(c.n_users + 1, d, padding_idx=0) if c.use_user_ids else None
        self.user_mlp = (
            nn.Sequential(nn.Linear(c.user_feature_dim, c.user_hidden), nn.ReLU(), nn.Dropout(c.dropout),
                          nn.Linear(c.user_hidden, d))
            if c.user_feature_dim
            else None
        )
        self.user_bias = nn.Parameter(torch.zeros(d)) if (self.user_id is None and self.user_mlp is None) else None
        # sequence = the history; positions counted from the end, so the most recent item is always L - 1
        self.position = nn.Embedding(c.max_history, d)
        self.item_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(c.dropout)
        # attention layer 1: self-attention over the sequence (residual)
        self.qkv1 = nn.Linear(d, 3 * d)
        self.out1 = nn.Linear(d, d)
        # attention layer 2: the user attends over layer 1's output
        self.q2 = nn.Linear(d, d)
        self.k2 = nn.Linear(d, d)
        self.v2 = nn.Linear(d, d)
        self.out2 = nn.Linear(d, d)
        self.combine = nn.Linear(2 * d, d)
        self.state_norm = nn.LayerNorm(d)
        self.user_bias_head = nn.Linear(d, 1)  # how positive this user is overall (rating generosity)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self._init_weights()

    def _init_weights(self) -> None:
        # small id embeddings: rarely seen ids stay near zero and the features decide for them
        for emb in (self.item_id, self.user_id):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.01)
                with torch.no_grad():
                    emb.weight[0].zero_()
        nn.init.normal_(self.position.weight, std=0.02)

    # --- embeddings ------------------------------------------------------------------------------
    def item_table(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(…, dim + 1) item embeddings of ``ids`` (all N + 1 items when None); row 0 is padding."""
        if ids is None:
            ids = torch.arange(self.config.n_items + 1, device=self.global_bias.device)
        out = 0.0
        if self.item_id is not None:
            out = self.item_id(ids)
        if self.item_map is not None:
            out = out + self.item_map(self.item_features[ids])
        return out

    def user_table(self, user_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(…, dim) user embeddings (all U + 1 users when None)."""
        if user_ids is None:
            user_ids = torch.arange(self.config.n_users + 1, device=self.global_bias.device)
        if self.user_bias is not None:
            return self.user_bias.expand(*user_ids.shape, -1)
        out = 0.0
        if self.user_id is not None:
            out = self.user_id(user_ids)
        if self.user_mlp is not None:
            out = out + self.user_mlp(self.user_features[user_ids])
        return out

    def _positions(self, length: int) -> torch.Tensor:
        return self.position.weight[self.config.max_history - length :]  # (length, dim), right-aligned

    @staticmethod
    def key_mask(history: torch.Tensor) -> torch.Tensor:
        """Real history items; the last slot always counts, so an empty history (all padding) still
        has one key: the padding item's embedding then stands for "no history yet"."""
        mask = history > 0
        mask[:, -1] = True
        return mask

    # --- the history encoder -----------------------------------------------------------------------
    def sequence_inputs(self, history_emb: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) inputs of layer 1: ``LayerNorm(item) + position`` (with dropout)."""
        length = history_emb.shape[1]
        return self.drop(self.item_norm(history_emb[..., : self.config.dim]) + self._positions(length))

    def encode(self, user_emb: torch.Tensor, history: torch.Tensor, x: torch.Tensor, qkv: torch.Tensor) -> torch.Tensor:
        """(B, dim) user state from the user embedding, history ids (for the mask), layer-1 inputs
        ``x`` (B, L, dim) and their projections ``qkv`` (B, L, 3 dim)."""
        b, s, d = x.shape
        h = self.config.n_heads
        dh = d // h
        bias = _key_bias(self.key_mask(history), x.dtype)
        # layer 1: multi-head self-attention; y = x + out1(o) is never materialised (folded below)
        q, k, v = qkv.view(b, s, 3, h, dh).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None, None, :])
        o = o.transpose(1, 2).reshape(b, s, d)
        # layer 2: query = user, keys/values = y. score_hj = <W_k2[h]^T q_h, y_j> (+ terms constant in j)
        q2 = self.q2(user_emb).view(b, h, dh)
        qk = torch.einsum("bhe,hed->bhd", q2, self.k2.weight.view(h, dh, d))  # (B, H, d)
        qk_o = qk @ self.out1.weight  # so that <qk, out1(o_j)> = <qk_o, o_j> + const
        scores = torch.baddbmm(bias[:, None, :].expand(b, h, s), qk, x.transpose(1, 2), alpha=dh**-0.5)
        scores = torch.baddbmm(scores, qk_o, o.transpose(1, 2), alpha=dh**-0.5)
        att = torch.softmax(scores, dim=-1)  # (B, H, S)
        pooled = att @ x + (att @ o) @ self.out1.weight.t() + self.out1.bias  # = sum_j att_hj y_j
        val = torch.einsum("bhd,hed->bhe", pooled, self.v2.weight.view(h, dh, d)) + self.v2.bias.view(h, dh)
        interest = self.out2(val.reshape(b, d))
        return self.state_norm(self.combine(torch.cat([interest, user_emb], dim=-1)))

    def user_state(self, user_emb: torch.Tensor, history: torch.Tensor, history_emb: torch.Tensor) -> torch.Tensor:
        """(B, dim) user state from the user embedding, the (B, L) history ids and their embeddings."""
        x = self.sequence_inputs(history_emb)
        return self.encode(user_emb, history, x, self.qkv1(x))

    def score(self, state: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """Logits (B, k) of (B, k, dim + 1) item embeddings for (B, dim) states."""
        d = self.config.dim
        return (item_emb[..., :d] * state[:, None, :]).sum(-1) + item_emb[..., d] + self.user_bias_head(state) + self.global_bias

    def forward(self, user_ids: torch.Tensor, history: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
        """Logits (B, k) of a positive response to each slate item."""
        if self.config.n_items + 1 <= history.numel() + slate.numel():  # embedding the catalogue is cheaper
            table = self.item_table()
            hist_emb, slate_emb = table[history], table[slate]
        else:
            hist_emb, slate_emb = self.item_table(history), self.item_table(slate)
        state = self.user_state(self.user_table(user_ids), history, hist_emb)
        return self.score(state, slate_emb)

    # --- precomputed tables for a frozen Ψ ----------------------------------------------------------
    @torch.no_grad()
    def inference_tables(self) -> dict[str, torch.Tensor]:
        """Tables that make :meth:`cached_user_state` equal :meth:`user_state` in eval mode.

        ``items`` (N + 1, dim + 1) item embeddings; ``users`` (U + 1, dim); ``seq_x`` / ``seq_qkv``
        (N + 1, ·): layer-1 inputs and projections per item;
        ``pos_x`` / ``pos_qkv``: the per-position parts (projection bias included). Two contiguous
        tables gather faster into SDPA than one side-by-side table.
        """
        d = self.config.dim
        items = self.item_table().contiguous()
        seq_x = self.item_norm(items[:, :d])
        pos = self._positions(self.config.max_history)
        return {
            "items": items,
            "users": self.user_table().contiguous(),
            "seq_x": seq_x.contiguous(),
            "seq_qkv": (seq_x @ self.qkv1.weight.t()).contiguous(),
            "pos_x": pos.contiguous(),
            "pos_qkv": self.qkv1(pos).contiguous(),
        }

    @torch.no_grad()
    def cached_user_state(self, tables: Mapping[str, torch.Tensor], user_ids: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """:meth:`user_state` of a frozen Ψ from :meth:`inference_tables` (look-ups instead of projections)."""
        b, length = history.shape
        flat = history.reshape(-1)  # flat index_select: much faster than 2-D indexing
        x = tables["seq_x"].index_select(0, flat).view(b, length, -1).add_(tables["pos_x"][-length:])
        qkv = tables["seq_qkv"].index_select(0, flat).view(b, length, -1).add_(tables["pos_qkv"][-length:])
        return self.encode(tables["users"][user_ids], history, x, qkv)


# ================================================================================================
# Checkpoint
# ================================================================================================


@dataclass
class SimulatorCheckpoint:
    """Everything a simulator needs, loaded from (or about to become) one checkpoint file."""

    model: ResponseModel
    item_features: np.ndarray  # (N + 1, d_item) float32, row 0 padding
    user_features: np.ndarray  # (U + 1, d_user) float32, row 0 padding
    start_user_ids: np.ndarray  # (S,) int64: the logged states new users are drawn from
    start_histories: np.ndarray  # (S, L) int64, left-padded, most recent last
    k: int
    max_history: int
    dataset: str
    split: str
    item_positive_counts: np.ndarray  # (N + 1,) int64 positives per item in the fitted records
    info: dict[str, Any] = field(default_factory=dict)  # training and fidelity
    path: Path | None = None

    @property
    def config(self) -> ResponseModelConfig:
        return self.model.config

    @property
    def n_items(self) -> int:
        return self.config.n_items

    @property
    def n_users(self) -> int:
        return self.config.n_users

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file beside the target, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "config": dataclasses.asdict(self.model.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "item_features": torch.from_numpy(np.ascontiguousarray(self.item_features, dtype=np.float32)),
            "user_features": torch.from_numpy(np.ascontiguousarray(self.user_features, dtype=np.float32)),
            "start_user_ids": torch.from_numpy(np.ascontiguousarray(self.start_user_ids, dtype=np.int32)),
            "start_histories": torch.from_numpy(np.ascontiguousarray(self.start_histories, dtype=np.int32)),
            "item_positive_counts": torch.from_numpy(np.ascontiguousarray(self.item_positive_counts, dtype=np.int64)),
            "k": int(self.k),
            "max_history": int(self.max_history),
            "dataset": str(self.dataset),
            "split": str(self.split),
            "info": json.loads(json.dumps(self.info, default=_json_default)),  # plain types only
        }
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.path = path
        return path


def load_response_model(path: str | Path, *, device: str | torch.device = "cpu") -> SimulatorCheckpoint:
    """Read a simulator checkpoint; Ψ comes back frozen (eval mode, no grad) on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise SimulatorFileError("no such simulator checkpoint (train one with `hac sim train`)", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise SimulatorFileError(f"not a readable simulator checkpoint ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SimulatorFileError("not a hac-rllib simulator checkpoint", path=path)
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise SimulatorFileError(
            f"checkpoint format_version {payload.get('format_version')!r}; this library reads {CHECKPOINT_VERSION}", path=path
        )
    try:
        config = ResponseModelConfig(**payload["config"])
        model = ResponseModel(config, payload["item_features"], payload["user_features"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:  # written by an incompatible version
        raise SimulatorFileError(f"checkpoint does not match this library's response model: {e}", path=path) from None
    model.to(device).eval().requires_grad_(False)
    return SimulatorCheckpoint(
        model=model,
        item_features=payload["item_features"].numpy(),
        user_features=payload["user_features"].numpy(),
        start_user_ids=payload["start_user_ids"].numpy().astype(np.int64),
        start_histories=payload["start_histories"].numpy().astype(np.int64),
        k=int(payload["k"]),
        max_history=int(payload["max_history"]),
        dataset=str(payload["dataset"]),
        split=str(payload["split"]),
        item_positive_counts=payload["item_positive_counts"].numpy(),
        info=dict(payload.get("info") or {}),
        path=path,
    )


def fidelity_path(checkpoint_path: str | Path) -> Path:
    """Where the fidelity report of a checkpoint lives: ``PATH.fidelity.json``."""
    p = Path(checkpoint_path)
    return p.with_name(p.name + ".fidelity.json")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# ================================================================================================
# Metrics
# ================================================================================================


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney with average ranks for ties); NaN for one class only."""
    from scipy.stats import rankdata

    y = np.asarray(labels).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def calibration_table(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-count bins of the predicted probability: mean predicted vs observed positive rate."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(p, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, n_bins)):
        if idx.size == 0:
            continue
        rows.append(
            {
                "decile": i + 1,
                "p_min": float(p[idx].min()),
                "p_max": float(p[idx].max()),
                "mean_predicted": float(p[idx].mean()),
                "observed_rate": float(y[idx].mean()),
                "count": int(idx.size),
            }
        )
    return rows


def _smoothed_item_rate(slates: np.ndarray, feedback: np.ndarray, n_items: int, strength: float = 10.0) -> np.ndarray:
    shown = np.bincount(slates.reshape(-1), minlength=n_items + 1).astype(np.float64)
    pos = np.bincount(slates.reshape(-1), weights=feedback.reshape(-1).astype(np.float64), minlength=n_items + 1)
    prior = pos.sum() / max(shown.sum(), 1.0)
    return (pos + strength * prior) / (shown + strength)


# ================================================================================================
# Training
# ================================================================================================


@dataclass
class TrainConfig:
    """Trainer settings; recorded in the checkpoint's ``info["training"]``."""

    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without improvement of the monitored metric before stopping
    monitor: str = "log_loss"  # "log_loss" (a proper score: ranks calibration too) or "auc"
    val_fraction: float = 0.1  # the most recent records, held out for early stopping and fidelity
    seed: int = 0
    eval_batch_size: int = 4096

    def validate(self) -> None:
        if self.monitor not in ("log_loss", "auc"):
            raise ValueError(f"monitor must be 'log_loss' or 'auc', got {self.monitor!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be positive")


@dataclass
class _Tensors:
    user_id: torch.Tensor
    history: torch.Tensor
    slate: torch.Tensor
    feedback: torch.Tensor

    @classmethod
    def of(cls, records, max_history: int, device) -> "_Tensors":
        return cls(
            torch.as_tensor(records.user_id, dtype=torch.long, device=device),
            torch.as_tensor(records.padded_history(max_history), dtype=torch.long, device=device),
            torch.as_tensor(records.slate, dtype=torch.long, device=device),
            torch.as_tensor(records.feedback, dtype=torch.float32, device=device),
        )

    def __len__(self) -> int:
        return int(self.user_id.shape[0])


@torch.no_grad()
def predict_logits(model: ResponseModel, data: _Tensors, batch_size: int = 4096) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = [
        model(data.user_id[i : i + batch_size], data.history[i : i + batch_size], data.slate[i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, data.slate.shape[1]), dtype=np.float32)


def _heldout_report(name: str, labels: np.ndarray, logits: np.ndarray, baselines: Mapping[str, np.ndarray]) -> dict[str, Any]:
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    rep: dict[str, Any] = {
        "name": name,
        "n_records": int(labels.shape[0]),
        "n_labels": int(labels.size),
        "positive_rate": float(labels.mean()) if labels.size else float("nan"),
        "mean_predicted": float(probs.mean()) if probs.size else float("nan"),
        "auc": roc_auc(labels, logits),
        "log_loss": log_loss(labels, probs),
    }
    for bname, scores in baselines.items():
        rep[f"{bname}_auc"] = roc_auc(labels, scores)
    rep["calibration"] = calibration_table(labels, probs)
    rep["ece"] = float(
        sum(r["count"] * abs(r["mean_predicted"] - r["observed_rate"]) for r in rep["calibration"]) / max(labels.size, 1)
    )
    return rep


def train_response_model(
    data_dir: str | Path,
    split: str = "train",
    *,
    train_config: TrainConfig | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> SimulatorCheckpoint:
    """Fit Ψ on the ``split`` records (``train`` or ``all``) of a dataset directory.

    Returns the checkpoint object (best epoch's weights, frozen) with the fidelity report in
    ``info["fidelity"]``; call :meth:`SimulatorCheckpoint.save` and :func:`write_fidelity_report`.
    """
    from envs.data.format import DEFAULT_MAX_HISTORY, load_item_features, load_meta, load_records, load_user_features

    tc = train_config or TrainConfig()
    tc.validate()
    if split not in ("train", "all"):
        raise DataError(f"a simulator is fit on split 'train' or 'all', got {split!r}")
    log = log or (lambda s: None)
    t_start = time.perf_counter()
    data_dir = Path(data_dir)
    meta = load_meta(data_dir)
    records = load_records(data_dir, split)
    if len(records) < 20:
        raise DataError(f"only {len(records)} records in split {split!r}; too few to fit a response model", path=data_dir)
    item_features = load_item_features(data_dir)
    user_features = load_user_features(data_dir)
    max_history = int((meta.get("preprocessing") or {}).get("max_history") or DEFAULT_MAX_HISTORY)
    n_items, n_users = item_features.shape[0] - 1, user_features.shape[0] - 1

    # time-ordered hold-out: the most recent val_fraction of records
    order = np.argsort(records.timestamp, kind="stable")
    n_val = max(1, int(round(len(records) * tc.val_fraction)))
    fit_rec = records.select(np.sort(order[:-n_val]))
    val_rec = records.select(np.sort(order[-n_val:]))
    test_rec = load_records(data_dir, "test") if split == "train" else None

    torch.manual_seed(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    cfg_kwargs = dict(
        n_items=n_items,
        n_users=n_users,
        item_feature_dim=item_features.shape[1],
        user_feature_dim=user_features.shape[1],
        max_history=max_history,
    )
    cfg_kwargs.update(model_overrides or {})
    config = ResponseModelConfig(**cfg_kwargs)
    model = ResponseModel(config, torch.from_numpy(item_features), torch.from_numpy(user_features)).to(device)

    fit = _Tensors.of(fit_rec, max_history, device)
    val = _Tensors.of(val_rec, max_history, device)
    rate = _smoothed_item_rate(fit_rec.slate, fit_rec.feedback, n_items)
    pos_counts = np.bincount(
        fit_rec.slate.reshape(-1), weights=fit_rec.feedback.reshape(-1).astype(np.float64), minlength=n_items + 1
    ).astype(np.int64)

    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n_batches = math.ceil(len(fit) / tc.batch_size)
    best_score, best_epoch, best_state, bad_epochs = -math.inf, 0, None, 0
    history: list[dict[str, float]] = []
    val_labels = val_rec.feedback.astype(np.float64)

    bar = _progress(progress, total=tc.epochs * n_batches)
    task = bar.add_task("fitting Ψ", total=tc.epochs * n_batches) if bar is not None else None
    if bar is not None:  # print epoch lines above the live bar instead of through it
        log = bar.console.print
    try:
        for epoch in range(1, tc.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(fit), generator=gen).to(device)
            total, count = 0.0, 0
            for bi in range(n_batches):
                idx = perm[bi * tc.batch_size : (bi + 1) * tc.batch_size]
                logits = model(fit.user_id[idx], fit.history[idx], fit.slate[idx])
                loss = F.binary_cross_entropy_with_logits(logits, fit.feedback[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
                if bar is not None:
                    bar.update(task, advance=1, description=f"epoch {epoch}/{tc.epochs} loss {total / count:.4f}")
            v_logits = predict_logits(model, val, tc.eval_batch_size)
            v_auc = roc_auc(val_labels, v_logits)
            v_ll = log_loss(val_labels, 1 / (1 + np.exp(-v_logits.astype(np.float64))))
            history.append(
                {"epoch": epoch, "train_loss": total / count, "val_auc": v_auc, "val_log_loss": v_ll,
                 "seconds": time.perf_counter() - t0}
            )
            score = -v_ll if tc.monitor == "log_loss" else v_auc
            improved = score > best_score + 1e-5
            log(f"epoch {epoch}: train loss {total / count:.4f}  val AUC {v_auc:.4f}  val log-loss {v_ll:.4f}"
                + ("  *" if improved else ""))
            if improved:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                if bad_epochs >= tc.patience:
                    log(f"early stop: no improvement of val {tc.monitor} for {tc.patience} epochs")
                    break
    finally:
        if bar is not None:
            bar.stop()
    model.load_state_dict(best_state)
    model.eval().requires_grad_(False)
    train_seconds = time.perf_counter() - t_start

    # fidelity on held-out records
    pop = pos_counts.astype(np.float64)
    baselines = lambda rec: {"popularity": pop[rec.slate], "item_rate": rate[rec.slate]}  # noqa: E731
    fidelity = {
        "heldout": _heldout_report(
            f"validation: last {tc.val_fraction:.0%} of the {split!r} records by time",
            val_labels,
            predict_logits(model, val, tc.eval_batch_size),
            baselines(val_rec),
        )
    }
    if test_rec is not None and len(test_rec):
        fidelity["test"] = _heldout_report(
            "test split (after the training period)",
            test_rec.feedback.astype(np.float64),
            predict_logits(model, _Tensors.of(test_rec, max_history, device), tc.eval_batch_size),
            baselines(test_rec),
        )

    dataset = str(meta.get("name", data_dir.name))
    info = {
        "dataset": dataset,
        "data_dir": str(data_dir.absolute()),
        "split": split,
        "training": {
            **dataclasses.asdict(tc),
            "n_fit_records": len(fit_rec),
            "n_val_records": len(val_rec),
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "history": history,
            "seconds": train_seconds,
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
        },
        "fidelity": fidelity,
    }
    return SimulatorCheckpoint(
        model=model.cpu(),
        item_features=item_features,
        user_features=user_features,
        start_user_ids=records.user_id.astype(np.int64),
        start_histories=records.padded_history(max_history),
        k=records.k,
        max_history=max_history,
        dataset=dataset,
        split=split,
        item_positive_counts=pos_counts,
        info=info,
    )


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    bar.start()
    return bar


def write_fidelity_report(checkpoint: SimulatorCheckpoint, checkpoint_path: str | Path) -> Path:
    """Write ``PATH.fidelity.json`` (atomically) beside the checkpoint; returns its path."""
    path = fidelity_path(checkpoint_path)
    report = {
        "checkpoint": str(Path(checkpoint_path).absolute()),
        "dataset": checkpoint.dataset,
        "split": checkpoint.split,
        "n_items": checkpoint.n_items,
        "n_users": checkpoint.n_users,
        "k": checkpoint.k,
        "max_history": checkpoint.max_history,
        "n_start_states": int(checkpoint.start_user_ids.shape[0]),
        "model": dataclasses.asdict(checkpoint.config),
        **{k: v for k, v in checkpoint.info.items() if k in ("training", "fidelity")},
    }
    _atomic_write_text(path, json.dumps(report, indent=2, default=_json_default) + "\n")
    return path


def fidelity_tables(info: Mapping[str, Any]):
    """Rich tables of a fidelity report (``info["fidelity"]``): a summary (one column per held-out
    set) and one per-decile calibration table per held-out set; narrow enough for 80 columns."""
    from rich.table import Table

    reports = dict(info.get("fidelity") or {})
    if not reports:
        return []
    summary = Table(title="Ψ fidelity on held-out records")
    summary.add_column("metric")
    for key in reports:
        summary.add_column(key, justify="right")
    rows = [
        ("records", lambda r: f"{r['n_records']:,}"),
        ("labels", lambda r: f"{r['n_labels']:,}"),
        ("positive rate", lambda r: f"{r['positive_rate']:.4f}"),
        ("mean predicted", lambda r: f"{r['mean_predicted']:.4f}"),
        ("AUC", lambda r: f"{r['auc']:.4f}"),
        ("log-loss", lambda r: f"{r['log_loss']:.4f}"),
        ("ECE (deciles)", lambda r: f"{r['ece']:.4f}"),
        ("AUC popularity", lambda r: f"{r.get('popularity_auc', float('nan')):.4f}"),
        ("AUC item rate", lambda r: f"{r.get('item_rate_auc', float('nan')):.4f}"),
    ]
    for name, fmt in rows:
        summary.add_row(name, *(fmt(r) for r in reports.values()))
    out = [summary]
    for key, rep in reports.items():
        c = Table(title=f"calibration — {key}: {rep['name']}")
        for col in ("decile", "p range", "mean pred.", "observed", "count"):
            c.add_column(col, justify="right")
        for r in rep["calibration"]:
            c.add_row(str(r["decile"]), f"{r['p_min']:.3f}–{r['p_max']:.3f}", f"{r['mean_predicted']:.4f}",
                      f"{r['observed_rate']:.4f}", f"{r['count']:,}")
        out.append(c)
    return out
