"""Sweeps (tuning/): the Appendix A.3 grids, concurrent trials on 2 CPUs, a failing trial that does not
end the sweep, resume after an interruption, the summary and the sensitivity figures.

The Tune tests run real HAC trials on a tiny simulator (about 3-8 s of training each) in the shared
``ray_session`` (2 CPUs)."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest

from tuning import analysis, spaces
from tuning.spaces import Grid, Study

# --- search spaces (no Ray) ------------------------------------------------------------------------


def test_appendix_grids_are_the_papers():
    """Appendix A.3's values, exactly, per method; methods without an entry get the common RL grid."""
    hac = spaces.appendix_space("hac")
    assert hac["actor_lr"] == (5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 1e-6)
    assert hac["critic_lr"] == (1e-3, 1e-4, 1e-5)
    assert hac["noise_std"] == (0.1, 0.01, 0.001)
    assert hac["hyper_align_coef"] == (0.001, 0.01, 0.1, 1.0)
    assert set(hac["supervise_lr"]) == {1e-5, 5e-5, 1e-4, 5e-4, 1e-3}
    assert spaces.appendix_space("ddpg_ra")["align_lr"] == (5e-5, 1e-5, 5e-6, 1e-6)
    assert spaces.appendix_space("offline_sl") == {"supervise_lr": (5e-4, 1e-4, 5e-5, 1e-5), "l2_coef": (1e-4, 5e-5, 1e-5, 5e-6)}
    assert "noise_std" not in spaces.appendix_space("a2c")  # A2C explores by sampling (σ = 0)
    assert spaces.appendix_space("not_written_yet") == spaces.appendix_space(spaces.FALLBACK)
    g = spaces.get_grid("appendix", "hac")
    assert len(g.points({k: 0.5 for k in g.keys()})) == 6 * 3 * 3 * 4 * 5


def test_one_at_a_time_studies_share_the_default_point():
    grid = Grid("t", (Study("a", {"a": (1, 2, 3)}), Study("b", {"b": (10, 20)}), Study("c", {"c": (0, 1)}, fixed={"a": 9})))
    points = grid.points({"a": 2, "b": 10, "c": 1})
    assert [p.values for p in points] == [
        {"a": 1, "b": 10, "c": 1}, {"a": 2, "b": 10, "c": 1}, {"a": 3, "b": 10, "c": 1},
        {"a": 2, "b": 20, "c": 1}, {"a": 9, "b": 10, "c": 0}, {"a": 9, "b": 10, "c": 1},
    ]
    assert points[1].studies == ("a", "b")  # the default configuration runs once, in both studies


def test_small_and_sensitivity_grids_cover_the_papers_figures():
    small = spaces.get_grid("small", "hac")
    assert {s.name for s in small.studies} == {"supervise_lr", "hyper_align_coef", "noise_std", "greedy_rate"}
    greedy = next(s for s in small.studies if s.name == "greedy_rate")
    assert greedy.fixed == {"noise_std": 0.0}  # Figure 10 sets the hyper-action noise to 0
    sens = spaces.get_grid("sensitivity", "hac")
    assert 0.0 in next(s for s in sens.studies if s.name == "supervise_lr").vary["supervise_lr"]
    with pytest.raises(ValueError, match="unknown grid"):
        spaces.get_grid("huge", "hac")


def test_invalid_or_unknown_grid_values_are_refused_before_anything_runs(tmp_path):
    """An invalid point would crash Tune's driver (RLlib validates inside the resource request)."""
    from tuning.sweep import SweepError, SweepSpec, plan

    spec = SweepSpec(out=str(tmp_path / "s"))
    with pytest.raises(SweepError, match="noise_std must be"):
        plan(spec, Grid("bad", (Study("noise_std", {"noise_std": (0.1, -1.0)}),)))
    with pytest.raises(SweepError, match="does not have"):
        plan(spec, Grid("typo", (Study("actor_learning_rate", {"actor_learning_rate": (1e-4, 1e-5)}),)))


def test_every_registered_method_has_grids_its_config_accepts(tmp_path):
    """Each grid key is a field of the method's config and every point validates: a baseline that
    renames a field fails here, not silently in a sweep (AlgorithmConfig accepts unknown keys)."""
    from hac_rllib.algorithms import ALGORITHMS
    from tuning.sweep import SweepSpec, plan

    for algo in ALGORITHMS:
        for name in spaces.GRID_NAMES:
            _, points, cpus = plan(SweepSpec(out=str(tmp_path / "s"), algo=algo), spaces.get_grid(name, algo))
            assert points and cpus > 0, (algo, name)


def test_dry_run_cli_prints_the_grid(tmp_path):
    from typer.testing import CliRunner

    from hac_rllib.cli import app

    res = CliRunner().invoke(app, ["tune", "--out", str(tmp_path / "s"), "--grid", "appendix", "--seeds", "2", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "1080 configurations x 2 seeds = 2160 trials" in res.output
    assert "1 CPU per trial" in res.output
    assert not (tmp_path / "s").exists()


# --- aggregation and figures (no Ray) --------------------------------------------------------------


def _fake_trial(root: Path, point: int, seed: int, values: dict, rewards: list, *, done: bool = True) -> None:
    d = root / f"p{point:03d}_s{seed}_x{point}{seed}"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({analysis.POINT_KEY: point, "seed": seed, **values}))
    rows = [
        {"training_iteration": i + 1, "timestamp": 1000 + i, "time_this_iter_s": 1.0, "done": done and i == len(rewards) - 1,
         "evaluation": {"total_reward": r, "depth": 10 * r, "reward_variance": 0.1}}
        for i, r in enumerate(rewards)
    ]
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summary_means_and_t_intervals_over_seeds(tmp_path):
    manifest = {
        "keys": ["noise_std"],
        "seeds": [0, 1, 2],
        "studies": [{"name": "noise_std", "vary": {"noise_std": [0.01, 0.1]}, "fixed": {}}],
        "points": [{"index": 0, "values": {"noise_std": 0.01}, "studies": ["noise_std"]},
                   {"index": 1, "values": {"noise_std": 0.1}, "studies": ["noise_std"]}],
    }
    (tmp_path / analysis.MANIFEST).write_text(json.dumps(manifest))
    for seed, final in enumerate([1.0, 2.0, 3.0]):
        _fake_trial(tmp_path, 0, seed, {"noise_std": 0.01}, [0.0, final])
    _fake_trial(tmp_path, 1, 0, {"noise_std": 0.1}, [5.0, 6.0])
    _fake_trial(tmp_path, 1, 1, {"noise_std": 0.1}, [7.0], done=False)  # interrupted: not scored
    err = tmp_path / "p001_s2_err"
    err.mkdir()
    (err / "error.txt").write_text("Traceback ...\nray.exceptions.RayTaskError: boom\nValueError: broken simulator\n")

    from tuning.sweep import summarize_sweep

    out = summarize_sweep(tmp_path)
    p0, p1 = out.points
    assert p0.n == 3 and p0.mean[analysis.METRIC] == pytest.approx(2.0)
    assert p0.ci95[analysis.METRIC] == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert (p1.n, p1.n_errored, p1.n_incomplete) == (1, 1, 1)
    assert math.isnan(p1.ci95[analysis.METRIC])  # one seed: no interval
    assert out.best.index == 1  # 6.0 > 2.0
    assert [t.error for t in out.trials if t.status == "errored"] == ["ValueError: broken simulator"]
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "trials.csv").is_file()

    from tuning.report import make_report

    rep = make_report(tmp_path, tmp_path / "fig")
    [fig] = rep["figures"]
    assert fig["key"] == "noise_std" and Path(fig["png"]).stat().st_size > 10_000
    assert [p["total_reward"]["mean"] for p in fig["points"]] == pytest.approx([2.0, 6.0])


def test_product_study_curves_hold_the_other_keys_at_the_best():
    from tuning.report import curves

    vals = [(a, b) for a in (1, 2) for b in (10, 20)]
    manifest = {
        "studies": [{"name": "grid", "vary": {"a": [1, 2], "b": [10, 20]}, "fixed": {}}],
        "points": [{"index": i, "values": {"a": a, "b": b}, "studies": ["grid"]} for i, (a, b) in enumerate(vals)],
    }
    score = {0: 1.0, 1: 2.0, 2: 0.5, 3: 0.7}  # best: a=1, b=20
    points = [analysis.PointSummary(i, {"a": a, "b": b}, ("grid",), [0], 1, 0, 0, {analysis.METRIC: score[i]}, {}, {}) for i, (a, b) in enumerate(vals)]
    by_key = {c.key: c for c in curves(manifest, points)}
    assert [p.index for p in by_key["a"].points] == [1, 3] and by_key["a"].held == {"b": 20}
    assert [p.index for p in by_key["b"].points] == [0, 1] and by_key["b"].held == {"a": 1}


# --- real sweeps -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_simulator(tmp_path_factory) -> str:
    """A simulator trained for one epoch on a small synthetic dataset (a few seconds)."""
    from envs.data.synthetic import SyntheticParams, write_synthetic
    from envs.response import TrainConfig, train_response_model

    root = tmp_path_factory.mktemp("tune-sim")
    data = write_synthetic(root / "data", SyntheticParams(n_users=200, n_items=300, n_records=4000))
    path = root / "sim.pt"
    train_response_model(data, "train", train_config=TrainConfig(epochs=1)).save(path)
    return str(path)


def _spec(out: Path, sim: str, **kw):
    from tuning.sweep import SweepSpec

    base = dict(
        out=str(out), train_simulator=sim, eval_simulator=sim, seeds=1, iterations=4, steps_per_iteration=5, eval_sessions=20,
        checkpoint_every=1, overrides={"num_steps_sampled_before_learning_starts": 64, "train_batch_size_per_learner": 16},
    )
    base.update(kw)
    return SweepSpec(**base)


@pytest.fixture(scope="module")
def two_good_one_bad(ray_session, tiny_simulator, tmp_path_factory):
    """Two valid trials and one whose simulator file does not exist (as on a node without it)."""
    from tuning.sweep import run_sweep

    out = tmp_path_factory.mktemp("sweeps") / "concurrent"
    grid = Grid("t", (
        Study("noise_std", {"noise_std": (0.01, 0.1)}),
        Study("missing_simulator", {"env_config": ({"simulator": "/nonexistent/sim.pt"},)}),
    ))
    return run_sweep(_spec(out, tiny_simulator), grid=grid)


@pytest.mark.slow
def test_two_trials_run_at_once_on_two_cpus(two_good_one_bad):
    from tuning.sweep import read_events

    out = two_good_one_bad
    assert out.manifest["trial_cpus"] == 1.0
    events = read_events(out.sweep_dir)
    assert max(e["running"] for e in events) == 2
    span = {}
    for e in events:
        if e["trial"] in ("p000_s0", "p001_s0"):
            span.setdefault(e["trial"], {})[e["event"]] = e["time"]
    (s0, e0), (s1, e1) = [(span[t]["start"], span[t]["complete"]) for t in ("p000_s0", "p001_s0")]
    overlap = min(e0, e1) - max(s0, s1)
    assert overlap > 0.3 * min(e0 - s0, e1 - s1), (span, overlap)  # they trained side by side, not in turn
    for t in out.trials:
        if t.status == "finished":
            assert t.iterations == 4 and list(t.path.glob("events.out.tfevents.*"))  # Tune's TensorBoard output


@pytest.mark.slow
def test_a_failing_trial_is_reported_and_the_others_finish(two_good_one_bad):
    out = two_good_one_bad
    status = {t.name.split("_")[0]: t.status for t in out.trials}
    assert status == {"p000": "finished", "p001": "finished", "p002": "errored"}
    [bad] = out.errored
    assert "no such simulator checkpoint" in bad.error
    assert (bad.path / "error.txt").is_file()
    assert out.best is not None and out.best.index in (0, 1)
    rows = (out.sweep_dir / "summary.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[3].split(",")[0] == "2"


@pytest.mark.slow
def test_report_cli_makes_a_png_per_swept_hyperparameter(two_good_one_bad, tmp_path):
    from typer.testing import CliRunner

    from hac_rllib.cli import app

    res = CliRunner().invoke(app, ["report", str(two_good_one_bad.sweep_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "rep").glob("*.png")) == ["sensitivity_noise_std.png"]
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["trials"] == {"finished": 2, "errored": 1, "incomplete": 0}


def _interrupter(flag: Path, point: int, at: int):
    """A Tune callback that sends the driver SIGUSR1 (Tune's graceful stop, like Ctrl+C) when the trial
    of grid point ``point`` reaches ``at`` iterations, once: the flag file is gone when the restored
    copy of it runs."""
    from ray import tune

    class InterruptOnce(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if trial.config[analysis.POINT_KEY] == point and result.get("training_iteration") == at and flag.exists():
                flag.unlink()
                os.kill(os.getpid(), signal.SIGUSR1)

    flag.write_text("armed")
    return InterruptOnce()


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_redoing_finished_trials(ray_session, tiny_simulator, tmp_path):
    from typer.testing import CliRunner

    from hac_rllib.cli import app
    from tuning.sweep import run_sweep

    out = tmp_path / "resumable"
    grid = Grid("t", (Study("noise_std", {"noise_std": (0.01, 0.1, 0.001)}),))
    # One trial at a time, so the first is finished and the second is half-way when the stop comes.
    spec = _spec(out, tiny_simulator, iterations=3, max_concurrent=1)
    first = run_sweep(spec, grid=grid, callbacks=[_interrupter(tmp_path / "armed", point=1, at=2)])
    status = {t.name[:4]: t for t in first.trials}
    assert status["p000"].status == "finished" and status["p001"].status == "incomplete"
    assert "p002" not in status
    done_before = {p.name: p.read_bytes() for p in status["p000"].path.glob("*") if p.is_file()}

    res = CliRunner().invoke(app, ["tune", "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    from tuning.sweep import summarize_sweep

    after = {t.name[:4]: t for t in summarize_sweep(out).trials}
    assert {k: t.status for k, t in after.items()} == {"p000": "finished", "p001": "finished", "p002": "finished"}
    assert {p.name: p.read_bytes() for p in after["p000"].path.glob("*") if p.is_file()} == done_before  # untouched
    rows = [json.loads(x) for x in (after["p001"].path / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in rows][-1] == 3
    assert rows[-1]["iterations_since_restore"] < rows[-1]["training_iteration"]  # continued from a checkpoint
    assert "best" in res.output
