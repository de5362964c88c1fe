"""The baselines and ablations of Table 3 as presets of the HAC machinery.

Losses on hand-made batches through a standalone Learner (no ray.init): their values by hand and
which parameters each one moves. Then every method end to end through RLlib, learning to beat random
slates on the synthetic simulator after a short run.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from hac_rllib import transitions as T
from hac_rllib.algorithms import ALGORITHMS, get_algorithm_config, phases
from hac_rllib.algorithms.hac import HACConfig
from hac_rllib.algorithms.methods import METHODS, TABLE_ORDER
from test_hac_learner import D_ITEM, K, MID, N_ITEMS, as_tensors, changed, hand_batch, params, spaces

ALL = sorted(METHODS)
# the flat loss each phase logs (one name per role, so curves of different methods line up)
LOSS_OF = {
    "critic": "critic_loss", "hyper_critic": "critic_loss", "twin_critic": "critic_loss", "value": "critic_loss",
    "actor": "actor_loss", "policy_gradient": "actor_loss",
    "align": "align_loss", "inverse_dynamics": "align_loss",
    "supervise": "supervise_loss",
}


def method_config(name: str, **training):
    obs, act = spaces()
    feats = np.random.default_rng(1).normal(size=(N_ITEMS + 1, D_ITEM)).astype(np.float32)
    feats[0] = 0
    cfg = get_algorithm_config(name).environment(observation_space=obs, action_space=act).debugging(seed=0)
    cfg.rl_module(model_config={"item_features": feats, "dropout": 0.0})  # dropout off: hand computations match
    return cfg.training(**training)


def make_learner(name: str, **training):
    obs, act = spaces()
    torch.manual_seed(0)
    return method_config(name, **training).build_learner(env=None, spaces={MID: (obs, act)})


def parts(learner):
    module = learner.module[MID].unwrapped()
    return module, learner.config.get_config_for_module(MID)


def update(learner, batch):
    n = len(batch[T.SLATE])
    return learner.update(
        batch=MultiAgentBatch({MID: SampleBatch(batch)}, env_steps=n),
        minibatch_size=n,
        num_epochs=1,
        timesteps={"num_env_steps_sampled_lifetime": 1000},
    )[MID]


def kernel_names(net) -> set[str]:
    return {n for n, _ in net.named_parameters() if n.startswith("item_kernel.")}


# --- the registry ----------------------------------------------------------------------------------


def test_every_method_is_a_registered_preset_of_the_shared_phases():
    assert set(ALGORITHMS) == set(METHODS) == set(TABLE_ORDER)
    assert {"hac", "online_sl", "offline_sl", "a2c", "ddpg", "td3", "ddpg_ra", "hac_no_bce", "hac_no_hyper"} <= set(METHODS)
    for name, method in METHODS.items():
        assert set(method.phases) <= set(phases.PHASES), name
        used = {phases.PHASES[p].optimizer for p in method.phases}
        assert used == set(method.optimizers), f"{name}: every phase needs its optimizer, and no optimizer idles"
        config = get_algorithm_config(name)
        assert config.method == name and isinstance(config, HACConfig)
        for key, value in method.defaults.items():
            assert getattr(config, key) == value, (name, key)


def test_hac_preset_keeps_hacconfig_defaults():
    preset, plain = get_algorithm_config("hac"), HACConfig()
    for key in ("actor_lr", "critic_lr", "supervise_lr", "align_lr", "hyper_align_coef", "noise_std", "greedy_rate", "gamma", "tau", "l2_coef"):
        assert getattr(preset, key) == getattr(plain, key), key
    assert phases.phases_for(METHODS["hac"].phases, plain) == phases.hac_phases(plain)


def test_ablations_switch_off_exactly_one_thing():
    assert get_algorithm_config("hac_no_bce").supervise_lr == 0 and get_algorithm_config("hac_no_bce").hyper_align_coef > 0
    assert get_algorithm_config("hac_no_hyper").hyper_align_coef == 0 and get_algorithm_config("hac_no_hyper").supervise_lr > 0
    explore = get_algorithm_config("hac_effect_explore")
    assert explore.noise_std == 0 and 0 < explore.greedy_rate < 1
    names = lambda m: [f.__name__ for _, f in phases.phases_for(METHODS["hac"].phases, get_algorithm_config(m))]  # noqa: E731
    assert names("hac_no_bce") == ["critic_phase", "actor_phase", "align_phase"]
    assert names("hac_no_hyper") == ["critic_phase", "actor_phase", "supervise_phase"]


def test_validate_rejects_unknown_methods_and_methods_with_nothing_to_learn():
    cfg = method_config("online_sl", supervise_lr=0.0)
    cfg.environment("hac-simulator")
    with pytest.raises(ValueError, match="nothing to learn"):
        cfg.validate()
    cfg = method_config("hac").training(method="sarsa", policy_delay=0)
    cfg.environment("hac-simulator")
    with pytest.raises(ValueError) as err:
        cfg.validate()
    assert "method must be one of" in str(err.value) and "policy_delay" in str(err.value)


@pytest.mark.parametrize("name", ALL)
def test_each_method_builds_its_parts_and_optimizers_and_updates(name):
    learner = make_learner(name)
    module, cfg = parts(learner)
    method = METHODS[name]
    expected = {"q": {"critic"}, "twin_q": {"critic", "critic_2"}, "v": {"value_critic"}, "none": set()}[method.critic_type]
    present = {n for n in ("critic", "critic_2", "value_critic", "inverse_model") if hasattr(module, n)}
    assert present == expected | ({"inverse_model"} if method.inverse_dynamics else set())
    assert hasattr(module, "target_policy") == method.has_critic
    assert {name for name, _ in learner.get_optimizers_for_module(MID)} == set(method.optimizers)
    stats = update(learner, hand_batch(16))
    logged = {k for k in stats if k.endswith("_loss") and k != "total_loss"}
    assert logged == {LOSS_OF[p] for p in method.phases if phases.PHASES[p].enabled(cfg)}, name
    assert all(np.isfinite(stats[k].peek()) for k in logged)


def test_inference_only_module_has_no_learner_parts():
    for name in ("td3", "a2c", "ddpg_ra"):
        learner = make_learner(name)
        module, _ = parts(learner)
        spec = copy.deepcopy(learner.config.get_rl_module_spec(spaces={MID: spaces()}, inference_only=True))
        acting = spec.build()
        assert not any(hasattr(acting, n) for n in ("critic", "critic_2", "value_critic", "inverse_model", "target_policy"))
        state = module.get_state(inference_only=True)
        assert not any(k.split(".")[0] in ("critic_2", "value_critic", "inverse_model", "target_policy") for k in state)
        acting.set_state(state)  # weight sync works with the parts stripped


# --- DDPG: critic and actor both on the hyper-action ------------------------------------------------


def test_ddpg_critic_is_td_on_the_stored_hyper_action_and_leaves_the_kernel_alone():
    learner = make_learner("ddpg")
    module, cfg = parts(learner)
    b = as_tensors(hand_batch())
    ref = copy.deepcopy(module)
    with torch.no_grad():
        nxt = ref.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        target = b[T.REWARD] + 0.9 * (1 - b[T.DONE].float()) * ref.target_critic(nxt, ref.target_policy.hyper_action(nxt))
        q = ref.critic(ref.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]), b[T.HYPER_ACTION])
        expected = ((q - target) ** 2).mean()
    policy_before, critic_before = params(module.policy), params(module.critic)
    loss, _ = learner.phase_step(MID, module, cfg, b, "hyper_critic")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert changed(policy_before, module.policy) == set(), "DDPG's critic loss never touches the actor or the kernel"
    assert changed(critic_before, module.critic) == set(critic_before)


def test_ddpg_update_runs_td_then_qmax_and_nothing_else():
    learner = make_learner("ddpg")
    module, cfg = parts(learner)
    assert [f.__name__ for _, f in phases.phases_for(METHODS["ddpg"].phases, cfg)] == ["hyper_critic_phase", "actor_phase"]
    stats = update(learner, hand_batch(16))
    assert {"critic_loss", "actor_loss"} <= set(stats) and "align_loss" not in stats and "supervise_loss" not in stats


# --- TD3: twin critics, min in the target, smoothing, delayed actor ---------------------------------


def test_td3_target_takes_the_min_of_the_twin_target_critics():
    learner = make_learner("td3", target_noise_std=0.0)  # no smoothing: the target is deterministic
    module, cfg = parts(learner)
    b = as_tensors(hand_batch())
    with torch.no_grad():  # make the two target critics disagree, so the min matters
        for p in module.target_critic_2.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ref = copy.deepcopy(module)
    with torch.no_grad():
        nxt = ref.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        z = ref.target_policy.hyper_action(nxt)
        q1n, q2n = ref.target_critic(nxt, z), ref.target_critic_2(nxt, z)
        assert (q1n < q2n).any() and (q2n < q1n).any()
        target = b[T.REWARD] + 0.9 * (1 - b[T.DONE].float()) * torch.minimum(q1n, q2n)
        s = ref.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        expected = ((ref.critic(s, b[T.HYPER_ACTION]) - target) ** 2).mean() + ((ref.critic_2(s, b[T.HYPER_ACTION]) - target) ** 2).mean()
    before = params(module.policy)
    loss, metrics = learner.phase_step(MID, module, cfg, b, "twin_critic")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["target_q_mean"] == pytest.approx(target.mean().item(), rel=1e-5)
    assert changed(before, module.policy) == set()


def test_td3_target_policy_smoothing_is_clipped_noise_on_the_target_hyper_action():
    learner = make_learner("td3")
    module, cfg = parts(learner)
    assert (cfg.target_noise_std, cfg.target_noise_clip, cfg.policy_delay) == (0.2, 0.5, 2)
    b = as_tensors(hand_batch(64))
    _, clean = phases._next_hyper_action(module, b, cfg, smoothing=False)
    _, noisy = phases._next_hyper_action(module, b, cfg, smoothing=True)
    noise = noisy - clean
    assert noise.abs().max() <= cfg.target_noise_clip + 1e-6 and noise.std() > 0.1
    assert noise.abs().max() == pytest.approx(cfg.target_noise_clip, abs=1e-6), "some draws beyond 2.5σ are clipped"


def test_td3_updates_the_actor_and_the_targets_every_second_update():
    learner = make_learner("td3")
    module, _ = parts(learner)
    logged, actor_moved, targets_moved = [], [], []
    for i in range(4):
        policy, target = params(module.policy), params(module.target_policy)
        stats = update(learner, hand_batch(16, seed=i))
        logged.append("actor_loss" in stats and stats["actor_loss"].peek() is not None)
        actor_moved.append(bool(changed(policy, module.policy)))
        targets_moved.append(bool(changed(target, module.target_policy)))
    assert actor_moved == [True, False, True, False]
    assert targets_moved == [True, False, True, False]


# --- A2C: policy gradient on P(a|s) with V(s) ----------------------------------------------------------


def test_a2c_value_loss_is_td_on_v_and_moves_only_v():
    learner = make_learner("a2c")
    module, cfg = parts(learner)
    b = as_tensors(hand_batch())
    ref = copy.deepcopy(module)
    with torch.no_grad():
        nxt = ref.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        target = b[T.REWARD] + 0.9 * (1 - b[T.DONE].float()) * ref.target_value_critic(nxt)
        v = ref.value_critic(ref.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
        expected = ((v - target) ** 2).mean()
    policy_before, v_before = params(module.policy), params(module.value_critic)
    loss, _ = learner.phase_step(MID, module, cfg, b, "value")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert changed(policy_before, module.policy) == set()
    assert changed(v_before, module.value_critic) == set(v_before)


def test_a2c_actor_loss_is_advantage_weighted_slate_log_prob():
    learner = make_learner("a2c", advantage_clip=0.05)  # a small clip so that clipping is exercised
    module, cfg = parts(learner)
    b = as_tensors(hand_batch())
    with torch.no_grad():
        nxt = module.target_policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        target = b[T.REWARD] + 0.9 * (1 - b[T.DONE].float()) * module.target_value_critic(nxt)
        s = module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        raw = target - module.value_critic(s)
        assert (raw.abs() > 0.05).any()
        adv = raw.clamp(-0.05, 0.05)
        scores = module.policy.hyper_action(s) @ module.policy.item_kernel.all_items().T
        p = torch.softmax(scores, dim=-1)
        log_p_slate = torch.stack([torch.log(p[i, b[T.SLATE][i] - 1]).sum() for i in range(len(adv))])
        expected = -(adv * log_p_slate).mean()
    policy_before, v_before = params(module.policy), params(module.value_critic)
    loss, metrics = learner.phase_step(MID, module, cfg, b, "policy_gradient")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert metrics["advantage_mean"] == pytest.approx(adv.mean().item(), rel=1e-5)
    moved = changed(policy_before, module.policy)
    assert "actor.head.weight" in moved and kernel_names(module.policy) <= moved
    assert changed(v_before, module.value_critic) == set(), "the advantage is a constant weight"


def test_a2c_explores_by_sampling_slates_without_hyper_action_noise():
    learner = make_learner("a2c")
    module, _ = parts(learner)
    module.eval()
    assert module.noise_std == 0 and module.greedy_rate == 0
    obs = {k: torch.as_tensor(v) for k, v in T.observation(hand_batch(64)).items()}
    greedy = module.forward_inference({Columns.OBS: obs})
    torch.manual_seed(1)
    explored = module.forward_exploration({Columns.OBS: obs})
    assert torch.allclose(explored["hyper_action"], greedy["hyper_action"]), "σ = 0: Z is not perturbed"
    assert not torch.equal(explored[Columns.ACTIONS], greedy[Columns.ACTIONS]), "slates are sampled, not top-k"
    assert all(len(set(row.tolist())) == K for row in explored[Columns.ACTIONS])


# --- PG-RA: the inverse-dynamics model -------------------------------------------------------------------


def test_pgra_inverse_dynamics_loss_moves_the_inverse_model_and_the_kernel_only():
    learner = make_learner("ddpg_ra")
    module, cfg = parts(learner)
    assert cfg.align_lr == 1e-5
    b = as_tensors(hand_batch())
    with torch.no_grad():
        s = module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES])
        s_next = module.policy.encode_state(b[T.NEXT_HISTORY], b[T.USER_FEATURES])
        z_hat = module.inverse_model(s, s_next)
        log_p = torch.log_softmax(z_hat @ module.policy.item_kernel.all_items().T, dim=-1)
        expected = -torch.stack([log_p[i, b[T.SLATE][i] - 1].sum() for i in range(len(s))]).mean()
    policy_before, inverse_before, critic_before = params(module.policy), params(module.inverse_model), params(module.critic)
    loss, _ = learner.phase_step(MID, module, cfg, b, "inverse_dynamics")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert changed(inverse_before, module.inverse_model) == set(inverse_before)
    assert changed(policy_before, module.policy) == kernel_names(module.policy), "only the kernel of the actor moves"
    assert changed(critic_before, module.critic) == set()


# --- Online / Offline SL: the actor learns only from BCE ------------------------------------------------


@pytest.mark.parametrize("name", ["online_sl", "offline_sl"])
def test_sl_methods_only_run_bce_on_actor_and_kernel(name):
    learner = make_learner(name)
    module, cfg = parts(learner)
    assert module.critic_nets() == [] and module.get_target_network_pairs() == []
    batch = hand_batch(16)
    b = as_tensors(batch)
    with torch.no_grad():
        z = module.policy.hyper_action(module.policy.encode_state(b[T.HISTORY], b[T.USER_FEATURES]))
        p = torch.sigmoid((module.policy.item_kernel(b[T.SLATE]) * z[:, None, :]).sum(-1))
        y = b[T.FEEDBACK].float()
        expected = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    before = params(module.policy)
    if name == "offline_sl":  # logged records carry no transition columns
        batch = {k: batch[k] for k in (T.USER_ID, T.USER_FEATURES, T.HISTORY, T.SLATE, T.FEEDBACK)}
    stats = update(learner, batch)
    assert stats["supervise_loss"].peek() == pytest.approx(expected.item(), rel=1e-4)
    assert {k for k in stats if k.endswith("_loss") and k != "total_loss"} == {"supervise_loss"}
    moved = changed(before, module.policy)
    assert "actor.head.weight" in moved and kernel_names(module.policy) <= moved


# --- through RLlib: the baselines' own state survives a checkpoint ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["td3", "ddpg_ra", "offline_sl"])
def test_baseline_trains_checkpoints_and_restores(ray_session, small_simulators, small_synthetic, tmp_path, name):
    """A few iterations through RLlib, then save / restore: twin and inverse-dynamics nets and their
    optimizers come back; Offline SL reads every logged training list with Ray Data and never steps
    the training simulator. (Whether each method learns is tested in test_compare.py.)"""
    from ray.rllib.algorithms.algorithm import Algorithm

    from envs.data.format import load_records

    train_sim, eval_sim = small_simulators
    config = (
        get_algorithm_config(name)
        .simulators(train=train_sim, evaluation=eval_sim)
        .training(steps_per_iteration=10, num_steps_sampled_before_learning_starts=64, train_batch_size_per_learner=16)
        .evaluation(evaluation_interval=2, evaluation_duration=20)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(2)]
        losses = results[-1]["losses"]
        assert all(np.isfinite(v) for v in losses.values()) and losses, losses
        assert results[-1]["evaluation"]["n_sessions"] == 20
        if name == "offline_sl":
            assert algo.offline_records.num_records == len(load_records(small_synthetic, "train"))
            assert results[-1].get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0) == 0
            assert set(losses) == {"supervise_loss"}
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        weights = algo.learner_group.get_weights()["default_policy"]
        optimizers = {n for n, _ in algo.learner_group._learner.get_optimizers_for_module("default_policy")}
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert restored.config.method == name
        for key, value in restored.learner_group.get_weights()["default_policy"].items():
            assert np.allclose(value, weights[key]), key
        assert any(k.startswith({"td3": "critic_2.", "ddpg_ra": "inverse_model.", "offline_sl": "policy."}[name]) for k in weights)
        assert {n for n, _ in restored.learner_group._learner.get_optimizers_for_module("default_policy")} == optimizers
        assert restored.train()["training_iteration"] == 3
    finally:
        restored.stop()


def test_pinned_keys_are_the_presets_own_switches():
    for name, method in METHODS.items():
        assert set(method.pinned) <= set(method.defaults), name
    assert "supervise_lr" in METHODS["hac_no_bce"].pinned and "hyper_align_coef" in METHODS["hac_no_hyper"].pinned
    assert {"noise_std", "greedy_rate"} <= set(METHODS["a2c"].pinned) and METHODS["hac"].pinned == ()
