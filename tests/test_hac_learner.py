"""HAC's module and learner on hand-made batches, through a standalone Learner (no ray.init)."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from envs.spaces import SlateSpace
from hac_rllib import transitions as T
from hac_rllib.algorithms import losses
from hac_rllib.algorithms.hac import HACConfig
from hac_rllib.algorithms.hac_learner import NonFiniteLossError

N_ITEMS, K, L, D_USER, D_ITEM = 40, 5, 8, 3, 6
MID = "default_policy"


def spaces():
    obs = gym.spaces.Dict(
        {
            "user_id": gym.spaces.Box(0, 100, (), np.int64),
            "user_features": gym.spaces.Box(-np.inf, np.inf, (D_USER,), np.float32),
            "history": gym.spaces.Box(0, N_ITEMS, (L,), np.int64),
        }
    )
    return obs, SlateSpace(N_ITEMS, K)


def make_config(**training) -> HACConfig:
    obs, act = spaces()
    feats = np.random.default_rng(1).normal(size=(N_ITEMS + 1, D_ITEM)).astype(np.float32)
    feats[0] = 0
    cfg = HACConfig().environment(observation_space=obs, action_space=act).debugging(seed=0)
    # dropout off so that hand computations reproduce the learner's forward passes exactly
    cfg.rl_module(model_config={"item_features": feats, "dropout": 0.0})
    return cfg.training(**training)


def make_learner(**training):
    obs, act = spaces()
    torch.manual_seed(0)
    return make_config(**training).build_learner(env=None, spaces={MID: (obs, act)})


def hand_batch(n: int = 16, seed: int = 0, done_rate: float = 0.3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    history = rng.integers(1, N_ITEMS + 1, (n, L))
    history[:, : L // 2] = 0  # left padding
    history[0] = 0  # one user without history
    return {
        T.USER_ID: rng.integers(1, 100, n),
        T.USER_FEATURES: rng.normal(size=(n, D_USER)).astype(np.float32),
        T.HISTORY: history,
        T.NEXT_HISTORY: np.concatenate([history[:, 1:], rng.integers(1, N_ITEMS + 1, (n, 1))], axis=1),
        T.SLATE: np.stack([rng.choice(np.arange(1, N_ITEMS + 1), K, replace=False) for _ in range(n)]),
        T.HYPER_ACTION: rng.normal(size=(n, 32)).astype(np.float32),
        T.FEEDBACK: rng.integers(0, 2, (n, K)).astype(np.int8),
        T.REWARD: rng.uniform(-0.2, 1.0, n).astype(np.float32),
        T.DONE: rng.random(n) < done_rate,
    }


def as_tensors(batch):
    return {key: torch.as_tensor(value) for key, value in batch.items()}


def params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def changed(before: dict, net: torch.nn.Module) -> set[str]:
    return {name for name, p in net.named_parameters() if not torch.equal(before[name], p.detach())}


@pytest.fixture
def learner():
    return make_learner()


def test_td_target_bootstraps_only_non_terminal_rows():
    reward = torch.tensor([1.0, 0.5, -0.2])
    done = torch.tensor([False, True, False])
    next_q = torch.tensor([2.0, 3.0, -1.0])
    target = losses.td_target(reward, done, next_q, gamma=0.9)
    assert torch.allclose(target, torch.tensor([1.0 + 0.9 * 2.0, 0.5, -0.2 - 0.9]))


def test_critic_step_value_and_only_the_critic_moves(learner):
    module = learner.module[MID].unwrapped()
    cfg = learner.config.get_config_for_module(MID)
    b = as_tensors(hand_batch())
    ref = copy.deepcopy(module)
    with torch.no_grad():  # the loss by hand, from the networks as they were before the step
        nxt = ref.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        z_next = ref.target_policy.hyper_action(nxt)
        a_next = torch.topk(z_next @ ref.target_policy.item_kernel.all_items().T, K).indices + 1
        q_next = ref.target_critic(nxt, ref.target_policy.item_kernel(a_next).mean(1))
        target = b[T.REWARD] + 0.9 * (1 - b[T.DONE].float()) * q_next
        state = ref.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        q = ref.critic(state, ref.policy.item_kernel(b[T.SLATE]).mean(1))
        expected = ((q - target) ** 2).mean()
    policy_before, critic_before = params(module.policy), params(module.critic)
    loss, metrics = learner.critic_step(MID, module, cfg, b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["critic_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert changed(policy_before, module.policy) == set(), "the critic loss must leave the actor and kernel untouched"
    assert changed(critic_before, module.critic) == set(critic_before)


def test_actor_step_value_and_the_critic_stays(learner):
    module = learner.module[MID].unwrapped()
    cfg = learner.config.get_config_for_module(MID)
    b = as_tensors(hand_batch())
    with torch.no_grad():
        state = module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        expected = -module.critic(state, module.policy.hyper_action(state)).mean()
    policy_before, critic_before = params(module.policy), params(module.critic)
    loss, _ = learner.actor_step(MID, module, cfg, b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert changed(critic_before, module.critic) == set()
    moved = changed(policy_before, module.policy)
    assert "actor.head.weight" in moved and any(n.startswith("state_encoder.") for n in moved)


def test_align_step_value_and_it_moves_actor_and_kernel(learner):
    module = learner.module[MID].unwrapped()
    cfg = learner.config.get_config_for_module(MID)
    b = as_tensors(hand_batch())
    with torch.no_grad():
        z = module.policy.hyper_action(module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
        top = torch.topk(z @ module.policy.item_kernel.all_items().T, K).indices + 1
        expected = cfg.hyper_align_coef * ((z - module.policy.item_kernel(top).mean(1)) ** 2).mean()
    policy_before, critic_before = params(module.policy), params(module.critic)
    loss, _ = learner.align_step(MID, module, cfg, b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    moved = changed(policy_before, module.policy)
    assert "actor.head.weight" in moved
    assert {"item_kernel.feature_map.weight", "item_kernel.id_embedding.weight"} <= moved
    assert changed(critic_before, module.critic) == set()


def test_supervise_step_value_and_it_moves_actor_and_kernel(learner):
    module = learner.module[MID].unwrapped()
    cfg = learner.config.get_config_for_module(MID)
    b = as_tensors(hand_batch())
    with torch.no_grad():
        z = module.policy.hyper_action(module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
        p = torch.sigmoid((module.policy.item_kernel(b[T.SLATE]) * z[:, None, :]).sum(-1))
        y = b[T.FEEDBACK].float()
        expected = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    policy_before, critic_before = params(module.policy), params(module.critic)
    loss, _ = learner.supervise_step(MID, module, cfg, b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    moved = changed(policy_before, module.policy)
    assert "actor.head.weight" in moved and "item_kernel.feature_map.weight" in moved
    assert changed(critic_before, module.critic) == set()


def _update(learner, batch):
    n = len(batch[T.REWARD])
    return learner.update(
        batch=MultiAgentBatch({MID: SampleBatch(batch)}, env_steps=n),
        minibatch_size=n,
        num_epochs=1,
        timesteps={"num_env_steps_sampled_lifetime": 1000},
    )


def test_full_update_runs_all_four_phases_then_soft_updates_targets(learner):
    module = learner.module[MID].unwrapped()
    tau = learner.config.tau
    target_before = {k: v.clone() for k, v in module.target_critic.state_dict().items()}
    results = _update(learner, hand_batch(32))
    stats = results[MID]
    for name in ("critic_loss", "actor_loss", "align_loss", "supervise_loss", "q_mean"):
        assert np.isfinite(stats[name].peek()), name
    main = module.critic.state_dict()
    for key, value in module.target_critic.state_dict().items():
        assert torch.allclose(value, tau * main[key] + (1 - tau) * target_before[key], atol=1e-6), key


def test_switched_off_losses_are_skipped():
    learner = make_learner(hyper_align_coef=0.0, supervise_lr=0.0)
    stats = _update(learner, hand_batch(16))[MID]
    assert "align_loss" not in stats and "supervise_loss" not in stats
    assert "critic_loss" in stats and "actor_loss" in stats


def test_nan_loss_stops_before_touching_the_weights(learner):
    module = learner.module[MID].unwrapped()
    batch = hand_batch(16)
    batch[T.REWARD][3] = np.nan
    before = params(module)
    with pytest.raises(NonFiniteLossError, match="critic_loss is nan"):
        _update(learner, batch)
    assert changed(before, module) == set()


def test_learner_state_round_trip_keeps_weights_and_optimizers(learner, tmp_path):
    _update(learner, hand_batch(32))
    learner.save_to_path(str(tmp_path / "ckpt"))
    other = make_learner()
    other.restore_from_path(str(tmp_path / "ckpt"))
    a, b = learner.module[MID].unwrapped(), other.module[MID].unwrapped()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    for name in ("critic", "actor", "align", "supervise"):
        sa = learner.get_optimizer(MID, name).state_dict()["state"]
        sb = other.get_optimizer(MID, name).state_dict()["state"]
        assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_module_acts_with_valid_greedy_deterministic_slates(learner):
    module = learner.module[MID].unwrapped()
    module.eval()
    obs = {k: torch.as_tensor(v) for k, v in T.observation(hand_batch(12)).items()}
    first = module.forward_inference({Columns.OBS: obs})
    second = module.forward_inference({Columns.OBS: obs})
    slates = first[Columns.ACTIONS]
    assert slates.shape == (12, K) and first["hyper_action"].shape == (12, 32)
    assert torch.equal(slates, second[Columns.ACTIONS]), "greedy inference must be deterministic"
    assert int(slates.min()) >= 1 and int(slates.max()) <= N_ITEMS
    assert all(len(set(row.tolist())) == K for row in slates)
    explored = module.forward_exploration({Columns.OBS: obs})
    assert not torch.equal(explored["hyper_action"], first["hyper_action"]), "exploration adds noise to Z"
    module.greedy_rate = 0.0  # pure softmax sampling of the effect action
    sampled = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    assert all(len(set(row.tolist())) == K for row in sampled) and int(sampled.min()) >= 1


def test_config_validate_names_the_bad_fields():
    cfg = make_config(actor_lr=-1.0, tau=0.0, greedy_rate=1.5)
    with pytest.raises(ValueError) as err:
        cfg.validate()
    text = str(err.value)
    assert "actor_lr" in text and "tau" in text and "greedy_rate" in text
