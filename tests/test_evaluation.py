"""Session evaluation: unbiased session counting, statistics, reference policies, and the simulator
being informative (the greedy oracle clearly beats random slates)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from envs.evaluation import (
    OraclePolicy,
    PopularPolicy,
    RandomPolicy,
    evaluate_reference_policies,
    evaluate_sessions,
    summarize_sessions,
)
from envs.response import TrainConfig, train_response_model


@pytest.fixture(scope="module")
def sim(small_synthetic):
    return train_response_model(small_synthetic, "all", train_config=TrainConfig(epochs=3, seed=0))


class ScriptedEnv:
    """NEXT_STEP vector env whose row r runs sessions of ``lengths[r]`` steps, reward 1 per step."""

    def __init__(self, lengths):
        self.lengths = np.asarray(lengths)
        self.num_envs = len(lengths)

    def reset(self, seed=None):
        self.t = np.zeros(self.num_envs, dtype=int)
        self.pending = np.zeros(self.num_envs, dtype=bool)
        return {"user_id": np.zeros(self.num_envs, dtype=np.int64)}, {}

    def step(self, actions):
        rew = np.ones(self.num_envs, dtype=np.float32)
        rew[self.pending] = 0
        self.t[self.pending] = 0
        self.t[~self.pending] += 1
        term = ~self.pending & (self.t >= self.lengths)
        self.pending = term
        return {"user_id": np.zeros(self.num_envs, dtype=np.int64)}, rew, term, np.zeros_like(term), {}


def test_counts_sessions_in_start_order():
    # row 0 sessions last 1 step, row 1 sessions 5 steps: the first 4 sessions started are
    # s0 (row 0), s1 (row 1), s2 (row 0, after its autoreset step), s3 (row 0) -> depths 1, 5, 1, 1.
    # Counting the first 4 *finished* ones instead would give 1, 1, 1, 1.
    res = evaluate_sessions(ScriptedEnv([1, 5]), lambda obs: None, n_sessions=4, seed=0)
    assert res.n_sessions == 4
    np.testing.assert_array_equal(res.session_depths, [1, 5, 1, 1])
    np.testing.assert_array_equal(res.session_rewards, [1, 5, 1, 1])
    assert res.depth == 2.0 and res.total_reward == 2.0


def test_fewer_sessions_than_rows():
    res = evaluate_sessions(ScriptedEnv([2, 3, 4, 5]), lambda obs: None, n_sessions=2, seed=0)
    np.testing.assert_array_equal(res.session_depths, [2, 3])


def test_summary_statistics():
    rng = np.random.default_rng(0)
    r = rng.normal(5, 2, size=400)
    d = rng.integers(1, 21, size=400)
    s = summarize_sessions(r, d)
    assert s.total_reward == pytest.approx(r.mean())
    lo, hi = stats.t.interval(0.95, 399, loc=r.mean(), scale=stats.sem(r))
    assert s.total_reward_ci == pytest.approx((lo, hi))
    assert s.reward_variance == pytest.approx(r.var(ddof=1))
    vlo, vhi = s.reward_variance_ci
    assert vlo < s.reward_variance < vhi and vlo < 4.0 < vhi
    assert s.avg_reward == pytest.approx(r.sum() / d.sum())
    assert set(s.as_dict()) >= {"total_reward", "depth", "reward_variance", "total_reward_ci"}


def test_reference_policies_make_valid_slates(sim):
    from envs.simulator import HACSimulatorEnv

    env = HACSimulatorEnv(sim, num_envs=16, seed=0)
    obs, _ = env.reset()
    for policy in (RandomPolicy.for_env(env, 0), PopularPolicy.for_env(env), PopularPolicy.for_env(env, exclude_history=True),
                   OraclePolicy(env), OraclePolicy(env, exclude_history=True)):
        slates = policy(obs)
        assert env.action_space.contains(slates), policy
    # popular: the same most-positive items for everyone
    pop = PopularPolicy.for_env(env)(obs)
    assert (pop == pop[0]).all()
    assert set(pop[0]) == set(np.argsort(-sim.item_positive_counts[1:], kind="stable")[: sim.k] + 1)
    unseen = PopularPolicy.for_env(env, exclude_history=True)(obs)
    assert not any(np.isin(unseen[i], obs["history"][i]).any() for i in range(16))
    # oracle: the top-k of Psi's own scores over the whole catalogue
    import torch

    best = OraclePolicy(env, max_scores_per_chunk=3 * (sim.n_items + 1))(obs)  # several chunks
    state = env.scorer.state(torch.as_tensor(obs["user_id"]), torch.as_tensor(obs["history"]))
    all_ids = torch.arange(1, sim.n_items + 1).expand(16, -1)
    brute = torch.topk(env.scorer.slate_logits(state, all_ids), sim.k, dim=1).indices.numpy() + 1
    np.testing.assert_array_equal(np.sort(best, 1), np.sort(brute, 1))


def test_oracle_beats_random(sim):
    res = evaluate_reference_policies(sim, n_sessions=400, seed=0, num_envs=128)
    rnd, pop, orc = res["random"], res["popular"], res["oracle"]
    assert orc.total_reward > rnd.total_reward + 0.5
    assert orc.total_reward_ci[0] > rnd.total_reward_ci[1]  # clearly separated
    assert orc.total_reward > pop.total_reward
    assert orc.depth > rnd.depth
    for s in res.values():
        assert s.n_sessions == 400 and 1 <= s.session_depths.min() and s.session_depths.max() <= 20


def test_evaluate_from_path_and_seed(sim, tmp_path):
    path = sim.save(tmp_path / "sim.pt")
    a = evaluate_sessions(path, RandomPolicy(sim.n_items, sim.k, seed=1), n_sessions=100, seed=5, num_envs=32)
    b = evaluate_sessions(path, RandomPolicy(sim.n_items, sim.k, seed=1), n_sessions=100, seed=5, num_envs=32)
    np.testing.assert_array_equal(a.session_rewards, b.session_rewards)
    with pytest.raises(ValueError):
        evaluate_sessions(path, RandomPolicy(sim.n_items, sim.k), n_sessions=0)
