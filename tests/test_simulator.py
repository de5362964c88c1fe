"""The batched simulator: spaces, invariants (depth, reward range, leave model), NEXT_STEP autoreset,
history update, determinism, slate validation, gymnasium / RLlib registration and env checks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector.utils import batch_space

from envs.response import TrainConfig, train_response_model
from envs.simulator import HACSimulatorEnv, HACSimulatorSingleEnv, append_positives
from envs.spaces import SlateSpace, sample_slates


@pytest.fixture(scope="module")
def sim_path(small_synthetic, tmp_path_factory):
    sim = train_response_model(small_synthetic, "all", train_config=TrainConfig(epochs=1, seed=0))
    return sim.save(tmp_path_factory.mktemp("sim") / "synthetic-all.pt")


def random_actions(env, rng):
    return sample_slates(rng, env.n_items, env.k, env.num_envs)


# --- spaces ---------------------------------------------------------------------------------------


def test_slate_space():
    space = SlateSpace(30, 5, seed=0)
    assert isinstance(space, gym.spaces.MultiDiscrete) and space.shape == (5,)
    for _ in range(200):
        x = space.sample()
        assert space.contains(x) and len(set(x.tolist())) == 5 and x.min() >= 1 and x.max() <= 30
    assert not space.contains(np.array([1, 2, 3, 4, 4]))  # duplicate
    assert not space.contains(np.array([0, 2, 3, 4, 5]))  # padding
    assert not space.contains(np.array([1, 2, 3, 4, 31]))  # out of range
    batched = batch_space(space, 7)
    assert isinstance(batched, SlateSpace) and batched.shape == (7, 5)
    xs = batched.sample()
    assert batched.contains(xs) and all(len(set(r)) == 5 for r in xs.tolist())
    dense = SlateSpace(6, 6, seed=1)  # k == n_items: permutations
    assert sorted(dense.sample().tolist()) == [1, 2, 3, 4, 5, 6]
    masked = space.sample(mask=np.r_[np.ones(5), np.zeros(25)].astype(np.int8))
    assert sorted(masked.tolist()) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        SlateSpace(3, 4)


def test_sample_slates_uniform():
    rng = np.random.default_rng(0)
    s = sample_slates(rng, 12, 4, 30_000)
    counts = np.bincount(s.reshape(-1), minlength=13)[1:]
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()


# --- history update --------------------------------------------------------------------------------


def test_append_positives():
    hist = torch.tensor([[0, 0, 0, 5, 6], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [7, 8, 9, 10, 11]])
    new = torch.tensor([[3, 0, 4], [0, 9, 8], [0, 0, 0], [12, 13, 14]])
    out = append_positives(hist, new)
    expected = torch.tensor([[0, 5, 6, 3, 4], [3, 4, 5, 9, 8], [0, 0, 0, 0, 0], [10, 11, 12, 13, 14]])
    torch.testing.assert_close(out, expected)
    assert out.data_ptr() != hist.data_ptr()


# --- the vector env --------------------------------------------------------------------------------


def test_spaces_and_attributes(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=8, seed=0)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, info = env.reset()
    assert info == {}
    assert obs in env.observation_space
    assert obs["history"].shape == (8, env.max_history) and obs["history"].dtype == np.int64
    assert obs["user_id"].shape == (8,) and obs["user_features"].dtype == np.float32
    assert env.single_action_space == SlateSpace(env.n_items, env.k)
    assert isinstance(env.action_space, SlateSpace) and env.action_space.shape == (8, env.k)
    assert env.item_features.shape == (env.n_items + 1, env.item_features.shape[1])
    assert not env.item_features[0].any()
    assert env.user_features.shape[0] == env.n_users + 1


def test_invariants_random_play(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=64, seed=1)
    rng = np.random.default_rng(1)
    obs, _ = env.reset()
    k = env.k
    depth = np.zeros(64, dtype=int)
    total = np.zeros(64)
    temper = np.full(64, 20.0)
    pending = np.zeros(64, dtype=bool)
    n_ended = 0
    for _ in range(150):
        obs, rew, term, trunc, info = env.step(random_actions(env, rng))
        assert obs in env.observation_space
        assert rew.dtype == np.float32 and term.dtype == bool and trunc.dtype == bool
        assert (rew >= -0.2 - 1e-6).all() and (rew <= 1 + 1e-6).all()
        assert not trunc.any()  # the temper ends every session first with the defaults
        fb = info["feedback"]
        assert fb.dtype == np.int8 and fb.shape == (64, k)
        # reward = mean over the slate of +1 / -0.2
        np.testing.assert_allclose(rew[~pending], (fb[~pending] * 1.0 + (1 - fb[~pending]) * -0.2).mean(1), atol=1e-6)
        # rows being reset: reward 0, not done, no feedback
        assert (rew[pending] == 0).all() and not term[pending].any() and not fb[pending].any()
        assert not info["_feedback"][pending].any() and info["_feedback"][~pending].all()
        active = ~pending
        depth[pending], total[pending], temper[pending] = 0, 0.0, 20.0
        depth[active] += 1
        total[active] += rew[active]
        temper[active] -= 1 + k * (1 - rew[active])
        # the leave model, recomputed from the rewards
        np.testing.assert_array_equal(term, active & (temper < 1))
        if term.any():
            np.testing.assert_array_equal(info["_session_reward"], term)
            np.testing.assert_allclose(info["session_reward"][term], total[term], atol=1e-5)
            np.testing.assert_array_equal(info["session_depth"][term], depth[term])
            n_ended += int(term.sum())
        assert depth.max() <= 20
        pending = term | trunc
    assert n_ended > 100


def test_depth_cap_and_truncation(sim_path):
    # no temper cost beyond 1 per slate: every session lasts exactly 20 slates
    env = HACSimulatorEnv(sim_path, num_envs=4, seed=0, leave_cost=0.0)
    rng = np.random.default_rng(0)
    env.reset()
    for t in range(1, 21):
        _, _, term, trunc, info = env.step(random_actions(env, rng))
        assert not trunc.any()
        assert term.all() == (t == 20) and term.any() == (t == 20)
    assert (info["session_depth"] == 20).all()
    # a shorter max_depth truncates (a time limit, not the user leaving)
    env = HACSimulatorEnv(sim_path, num_envs=4, seed=0, leave_cost=0.0, max_depth=5)
    env.reset()
    for t in range(1, 6):
        _, _, term, trunc, info = env.step(random_actions(env, rng))
    assert trunc.all() and not term.any() and (info["session_depth"] == 5).all()


def test_next_step_autoreset(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=16, seed=2)
    rng = np.random.default_rng(2)
    env.reset()
    starts = {(int(u), tuple(h)) for u, h in zip(env.simulator.start_user_ids, env.simulator.start_histories)}
    for _ in range(50):
        obs, _, term, trunc, _ = env.step(random_actions(env, rng))
        if term.any():
            break
    done = term | trunc
    assert done.any()
    last_obs = {k: v.copy() for k, v in obs.items()}
    actions = random_actions(env, rng)
    actions[done] = 0  # invalid, but ignored for rows being reset
    obs2, rew2, term2, trunc2, info2 = env.step(actions)
    assert (rew2[done] == 0).all() and not term2[done].any() and not trunc2[done].any()
    assert not info2["feedback"][done].any()
    for row in np.flatnonzero(done):  # a new user drawn from the logged start states
        assert (int(obs2["user_id"][row]), tuple(obs2["history"][row])) in starts
    # the done step itself returned the leaving user's last observation (not yet replaced)
    assert last_obs["history"].shape == obs2["history"].shape


def test_history_update(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=32, seed=3)
    rng = np.random.default_rng(3)
    obs, _ = env.reset()
    for _ in range(5):
        actions = random_actions(env, rng)
        before = obs["history"].copy()
        obs, _, term, trunc, info = env.step(actions)
        active = info["_feedback"]
        for row in np.flatnonzero(active):
            clicked = actions[row][info["feedback"][row] == 1]  # slate order
            seq = np.concatenate([before[row][before[row] > 0], clicked])[-env.max_history:]
            expected = np.concatenate([np.zeros(env.max_history - len(seq), dtype=np.int64), seq])
            np.testing.assert_array_equal(obs["history"][row], expected)


def test_returned_observations_are_not_mutated(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=16, seed=4)
    rng = np.random.default_rng(4)
    obs, _ = env.reset()
    kept = [obs]
    copies = [{k: v.copy() for k, v in obs.items()}]
    for _ in range(20):
        obs, *_ = env.step(random_actions(env, rng))
        kept.append(obs)
        copies.append({k: v.copy() for k, v in obs.items()})
    for o, c in zip(kept, copies):
        for key in o:
            np.testing.assert_array_equal(o[key], c[key])


def _trajectory(sim_path, seed, steps=30):
    env = HACSimulatorEnv(sim_path, num_envs=8, seed=seed)
    rng = np.random.default_rng(123)  # same actions for every run
    out = [env.reset()[0]]
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(random_actions(env, rng))
        out.append((obs, rew, term, info["feedback"]))
    return out


def test_determinism(sim_path):
    a, b, c = _trajectory(sim_path, 7), _trajectory(sim_path, 7), _trajectory(sim_path, 8)

    def same(x, y):
        if isinstance(x, dict):
            return all(same(x[k], y[k]) for k in x)
        if isinstance(x, tuple):
            return all(same(p, q) for p, q in zip(x, y))
        return np.array_equal(x, y)

    assert all(same(x, y) for x, y in zip(a, b))
    assert not all(same(x, y) for x, y in zip(a, c))
    # reset(seed=...) re-seeds an existing env
    env = HACSimulatorEnv(sim_path, num_envs=8)
    first = env.reset(seed=7)[0]
    assert same(first, a[0])


def test_bad_slates(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=6, seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    good = random_actions(env, rng)
    for bad_value, message in ((0, "padding"), (env.n_items + 1, "outside"), (-3, "outside")):
        a = good.copy()
        a[3, 2] = bad_value
        with pytest.raises(ValueError, match=f"row 3.*{message}"):
            env.step(a)
    a = good.copy()
    a[4, 1] = a[4, 0]
    with pytest.raises(ValueError, match="row 4.*repeats"):
        env.step(a)
    with pytest.raises(ValueError, match="shape"):
        env.step(good[:, :-1])
    with pytest.raises(ValueError, match="integer"):
        env.step(good + 0.5)
    env.step(good.astype(np.float64))  # integral floats are accepted
    env.step(torch.as_tensor(good))


def test_gym_make_single_env_passes_check_env(sim_path):
    from gymnasium.utils.env_checker import check_env

    env = gym.make("hac/Synthetic-v0", simulator=str(sim_path))
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", message=".*infinity.*")  # user features are unbounded on purpose
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    done, steps = False, 0
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        done, steps = term or trunc, steps + 1
    assert 1 <= steps <= 20 and info["session_depth"] == steps


def test_make_vec_and_dataset_guard(sim_path):
    venv = gym.make_vec("hac/Synthetic-v0", num_envs=5, vectorization_mode="vector_entry_point", simulator=str(sim_path))
    assert isinstance(venv, HACSimulatorEnv) and venv.num_envs == 5
    obs, _ = venv.reset(seed=0)
    assert obs in venv.observation_space
    generic = gym.make_vec("hac/Simulator-v0", num_envs=2, vectorization_mode="vector_entry_point", simulator=str(sim_path))
    assert generic.num_envs == 2
    with pytest.raises(ValueError, match="ml1m"):
        gym.make_vec("hac/ML1M-v0", num_envs=2, vectorization_mode="vector_entry_point", simulator=str(sim_path))
    # the per-user env also works under gymnasium's own sync vectorisation
    sync = gym.make_vec("hac/Synthetic-v0", num_envs=3, vectorization_mode="sync", simulator=str(sim_path))
    obs, _ = sync.reset(seed=0)
    obs, *_ = sync.step(sync.action_space.sample())
    assert obs["history"].shape == (3, venv.max_history)


def test_dict_info_to_list_wrapper(sim_path):
    """RLlib wraps the vector env in DictInfoToList; masks must line up."""
    from gymnasium.wrappers.vector import DictInfoToList

    env = DictInfoToList(HACSimulatorEnv(sim_path, num_envs=16, seed=0))
    rng = np.random.default_rng(0)
    env.reset()
    seen_end = False
    for _ in range(40):
        _, _, term, trunc, infos = env.step(sample_slates(rng, env.unwrapped.n_items, env.unwrapped.k, 16))
        assert len(infos) == 16
        for i, info in enumerate(infos):
            assert ("session_reward" in info) == bool(term[i] or trunc[i])
            seen_end |= "session_reward" in info
    assert seen_end


def test_rllib_creator(sim_path):
    from envs.registration import make_rllib_env, register_rllib_env

    venv = make_rllib_env({"simulator": str(sim_path), "num_envs": 4, "seed": 1})
    assert isinstance(venv, HACSimulatorEnv) and venv.num_envs == 4
    single = make_rllib_env({"simulator": str(sim_path)})
    assert isinstance(single, HACSimulatorSingleEnv)
    with pytest.raises(ValueError, match="simulator"):
        make_rllib_env({"num_envs": 2})
    assert register_rllib_env("hac-simulator-test") == "hac-simulator-test"


def test_chunked_scoring_matches(sim_path):
    env = HACSimulatorEnv(sim_path, num_envs=12, seed=0)
    obs, _ = env.reset()
    users, hist = torch.as_tensor(obs["user_id"]), torch.as_tensor(obs["history"])
    whole = env.scorer.state(users, hist)
    env.scorer.chunk_rows = 5
    torch.testing.assert_close(env.scorer.state(users, hist), whole)
