"""Response model Ψ: it learns (beats popularity on held-out records), round-trips through its
checkpoint, its cached inference path equals the plain one, and `hac sim train` works end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from envs.data.errors import DataError
from envs.response import (
    ResponseModel,
    ResponseModelConfig,
    SimulatorFileError,
    TrainConfig,
    calibration_table,
    fidelity_path,
    load_response_model,
    roc_auc,
    train_response_model,
    write_fidelity_report,
)


@pytest.fixture(scope="module")
def trained(small_synthetic):
    """Ψ fit on the train split of the small synthetic dataset (a few epochs, a few seconds)."""
    return train_response_model(small_synthetic, "train", train_config=TrainConfig(epochs=4, patience=2, seed=0))


def test_psi_learns_beyond_popularity(trained):
    for key in ("heldout", "test"):
        rep = trained.info["fidelity"][key]
        assert rep["auc"] > 0.62, rep
        # the synthetic truth's own AUC is ~0.68; popularity ranks items only
        assert rep["auc"] > rep["popularity_auc"] + 0.03, rep
        assert abs(rep["mean_predicted"] - rep["positive_rate"]) < 0.03, rep  # calibrated on average
        assert rep["ece"] < 0.03, rep
        assert len(rep["calibration"]) == 10
        assert sum(r["count"] for r in rep["calibration"]) == rep["n_labels"]
        # predicted and observed rates rise together across deciles
        obs = [r["observed_rate"] for r in rep["calibration"]]
        assert obs[-1] > obs[0] + 0.15


def test_training_record(trained):
    tr = trained.info["training"]
    assert 1 <= tr["best_epoch"] <= tr["epochs_run"] <= 4
    assert len(tr["history"]) == tr["epochs_run"]
    assert all(np.isfinite(h["val_auc"]) for h in tr["history"])
    assert trained.split == "train" and trained.dataset == "synthetic"
    # start states are the (user, history) pairs of every train record
    assert trained.start_histories.shape == (len(trained.start_user_ids), trained.max_history)
    assert not trained.model.training


def test_checkpoint_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "sim.pt")
    report = write_fidelity_report(trained, path)
    assert report == fidelity_path(path) and report.name == "sim.pt.fidelity.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.pt", "sim.pt.fidelity.json"]  # no temp files left
    rep = json.loads(report.read_text())
    assert rep["fidelity"]["heldout"]["auc"] == pytest.approx(trained.info["fidelity"]["heldout"]["auc"])

    loaded = load_response_model(path)
    assert loaded.config == trained.config
    for name in ("item_features", "user_features", "start_user_ids", "start_histories", "item_positive_counts"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(trained, name))
    assert (loaded.k, loaded.max_history, loaded.dataset, loaded.split) == (trained.k, trained.max_history, "synthetic", "train")
    assert loaded.info["training"]["best_epoch"] == trained.info["training"]["best_epoch"]
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())

    u = torch.as_tensor(trained.start_user_ids[:32])
    h = torch.as_tensor(trained.start_histories[:32])
    s = torch.as_tensor(np.random.default_rng(0).integers(1, trained.n_items + 1, size=(32, trained.k)))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(u, h, s), trained.model(u, h, s))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(SimulatorFileError, match="no such simulator checkpoint"):
        load_response_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SimulatorFileError, match="not a readable"):
        load_response_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(SimulatorFileError, match="not a hac-rllib simulator"):
        load_response_model(other)


def _random_model(n_items=50, n_users=20, max_history=12, **kw):
    torch.manual_seed(0)
    cfg = ResponseModelConfig(n_items=n_items, n_users=n_users, item_feature_dim=5, user_feature_dim=3,
                              max_history=max_history, **kw)
    model = ResponseModel(cfg, torch.randn(n_items + 1, 5), torch.randn(n_users + 1, 3))
    for p in model.parameters():  # make every path matter
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@pytest.mark.parametrize("kw", [{}, {"use_user_ids": False, "n_heads": 4}, {"use_item_ids": False}])
def test_cached_inference_equals_plain_forward(kw):
    model = _random_model(**kw)
    g = torch.Generator().manual_seed(1)
    hist = torch.randint(1, 51, (16, 12), generator=g)
    hist[0] = 0  # empty history
    hist[1, :7] = 0  # partly padded
    users = torch.randint(1, 21, (16,), generator=g)
    with torch.no_grad():
        plain = model.user_state(model.user_table(users), hist, model.item_table(hist))
        cached = model.cached_user_state(model.inference_tables(), users, hist)
    assert torch.isfinite(plain).all()
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)


def test_padding_does_not_leak():
    """What sits in padded positions must not change the state (key-padding mask)."""
    model = _random_model()
    hist = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 3, 9, 4, 7]])
    users = torch.tensor([2])
    with torch.no_grad():
        a = model.user_state(model.user_table(users), hist, model.item_table(hist))
        emb = model.item_table(hist)
        emb[:, :8] = torch.randn_like(emb[:, :8]) * 10  # garbage where the history is padding
        b = model.user_state(model.user_table(users), hist, emb)
    torch.testing.assert_close(a, b)


def test_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(y, s) == pytest.approx(brute)
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))
    table = calibration_table(y, 1 / (1 + np.exp(-s)))
    assert [r["decile"] for r in table] == list(range(1, 11))
    assert sum(r["count"] for r in table) == 300
    assert all(a["mean_predicted"] <= b["mean_predicted"] for a, b in zip(table, table[1:]))


def test_bad_split(small_synthetic):
    with pytest.raises(DataError, match="split"):
        train_response_model(small_synthetic, "test")


def test_cli_train_info_and_baselines(small_synthetic, tmp_path):
    from typer.testing import CliRunner

    from hac_rllib.cli import app

    out = tmp_path / "sims" / "synthetic-all.pt"
    runner = CliRunner()
    args = ["sim", "train", "--data", str(small_synthetic), "--split", "all", "--out", str(out), "--epochs", "1",
            "--no-progress", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.is_file() and fidelity_path(out).is_file()
    assert "AUC" in result.output and "calibration" in result.output
    rep = json.loads(fidelity_path(out).read_text())
    assert rep["split"] == "all" and rep["training"]["seed"] == 3 and "heldout" in rep["fidelity"]

    again = runner.invoke(app, args)  # refuses to overwrite
    assert again.exit_code != 0 and isinstance(again.exception, DataError)

    info = runner.invoke(app, ["sim", "info", str(out)])
    assert info.exit_code == 0, info.output
    assert "synthetic" in info.output

    js = tmp_path / "baselines.json"
    base = runner.invoke(app, ["sim", "evaluate-baselines", "--simulator", str(out), "--sessions", "40",
                               "--num-envs", "16", "--json", str(js)])
    assert base.exit_code == 0, base.output
    res = json.loads(js.read_text())["results"]
    assert set(res) == {"random", "popular", "oracle"}
    assert all(r["n_sessions"] == 40 for r in res.values())
