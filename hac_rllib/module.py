"""The HAC RLModule: the hyper-actor with its item kernel, plus the critic and target nets on learners.

Acting (EnvRunners, inference-only copy): obs -> state -> Z (+ N(0, σ²) noise when exploring) ->
scores Φ(i)ᵀZ over the whole pool -> slate (top-k, or softmax sampling at rate 1 − greedy_rate).
The slate is the env action (``actions``); Z is an extra model output (``hyper_action``) that the
replay buffer stores for the methods that train on it (DDPG, TD3).

The learner-side parts depend on the method (Table 3), switched by ``model_config``:
``critic_type`` "q" (HAC, DDPG, PG-RA: one g(s, z)), "twin_q" (TD3: two), "v" (A2C: V(s)) or "none"
(supervised learning: no critic, no target networks); ``inverse_dynamics`` adds PG-RA's model.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from hac_rllib.nn.critics import QCritic, VCritic
from hac_rllib.nn.inverse_dynamics import InverseDynamics
from hac_rllib.nn.policy import HyperActorPolicy, PolicyNetConfig

HYPER_ACTION = "hyper_action"
STATE = "state"
CRITIC_TYPES = ("q", "twin_q", "v", "none")


def catalogue_from_model_config(model_config: Dict[str, Any]) -> np.ndarray:
    """The (N + 1, d) item feature table: given directly, or read from the simulator checkpoint."""
    if model_config.get("item_features") is not None:
        return np.asarray(model_config["item_features"], dtype=np.float32)
    path = model_config.get("simulator")
    if not path:
        raise ValueError("the HAC module needs model_config['simulator'] (a simulator checkpoint) or ['item_features']")
    from envs.response import load_response_model

    return load_response_model(path).item_features


def obs_tensors(obs: Dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(history, user_features) from an observation dict (batched)."""
    return obs["history"], obs["user_features"]


class HACModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Hyper-actor (SASRec state encoder, hyper-action head, item kernel) and shared critic g(s, z)."""

    def setup(self) -> None:
        mc = self.model_config or {}
        self.k = int(len(self.action_space.nvec))
        user_dim = int(self.observation_space["user_features"].shape[0])
        max_history = int(self.observation_space["history"].shape[0])
        cfg = PolicyNetConfig(
            kernel_dim=int(mc.get("kernel_dim", 32)),
            max_history=max_history,
            user_hidden=int(mc.get("user_hidden", 128)),
            n_layers=int(mc.get("n_layers", 2)),
            n_heads=int(mc.get("n_heads", 4)),
            ffn_dim=int(mc.get("ffn_dim", 64)),
            dropout=float(mc.get("dropout", 0.1)),
            attention_dropout=float(mc.get("attention_dropout", 0.0)),
            use_item_id=bool(mc.get("use_item_id", True)),
        )
        self.policy = HyperActorPolicy(catalogue_from_model_config(mc), user_dim, cfg)
        pool = int(self.action_space.nvec[0])  # the slate space holds ids 1..N
        if self.policy.n_items != pool:
            raise ValueError(f"item features describe {self.policy.n_items} items but the action space has {pool}")
        self.noise_std = float(mc.get("noise_std", 0.1))
        self.greedy_rate = float(mc.get("greedy_rate", 1.0))
        self.critic_type = str(mc.get("critic_type", "q"))
        if self.critic_type not in CRITIC_TYPES:
            raise ValueError(f"critic_type must be one of {CRITIC_TYPES}, got {self.critic_type!r}")
        self.has_inverse_dynamics = bool(mc.get("inverse_dynamics", False))
        self._learner_parts: list[str] = []  # learner-only networks, in creation order
        if not self.inference_only:
            dim, hidden, dropout = cfg.kernel_dim, tuple(mc.get("critic_hidden", (256, 64))), float(mc.get("critic_dropout", 0.0))
            if self.critic_type in ("q", "twin_q"):
                self.critic = QCritic(dim, dim, hidden, dropout)
                self._learner_parts.append("critic")
            if self.critic_type == "twin_q":
                self.critic_2 = QCritic(dim, dim, hidden, dropout)
                self._learner_parts.append("critic_2")
            if self.critic_type == "v":
                self.value_critic = VCritic(dim, hidden, dropout)  # same hidden sizes as the Q critic (A.3)
                self._learner_parts.append("value_critic")
            if self.has_inverse_dynamics:
                self.inverse_model = InverseDynamics(dim, dim, tuple(mc.get("inverse_hidden", (256,))), float(mc.get("critic_dropout", 0.0)))
                self._learner_parts.append("inverse_model")
        else:
            self.eval()  # acting copies never use dropout

    def critic_nets(self) -> list[torch.nn.Module]:
        """The networks the critic optimizer trains (Q, twin Q or V; none for supervised learning)."""
        return [getattr(self, name) for name in ("critic", "critic_2", "value_critic") if name in self._learner_parts]

    # --- target networks (learner side) -------------------------------------------------------------
    def make_target_networks(self) -> None:
        """A target actor and a target per critic; methods without a critic have no targets."""
        if not self.critic_nets():
            return
        self.target_policy = make_target_network(self.policy)
        self.target_policy.eval()
        for name in ("critic", "critic_2", "value_critic"):
            if name in self._learner_parts:
                target = make_target_network(getattr(self, name))
                target.eval()
                setattr(self, "target_" + name, target)

    def get_target_network_pairs(self):
        pairs = [(self.policy, self.target_policy)] if hasattr(self, "target_policy") else []
        for name in ("critic", "critic_2", "value_critic"):
            if hasattr(self, "target_" + name):
                pairs.append((getattr(self, name), getattr(self, "target_" + name)))
        return pairs

    def forward_target(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Q'(s', a') with a' the target actor's greedy slate for the next observation."""
        with torch.no_grad():
            state = self.target_policy.encode_state(*obs_tensors(batch[Columns.NEXT_OBS]))
            z = self.target_policy.hyper_action(state)
            slate = self.target_policy.slate(z, self.k)
            q = self.target_critic(state, self.target_policy.inverse(slate))
        return {"target_q": q, "target_slate": slate}

    def get_non_inference_attributes(self) -> list[str]:
        """Every learner-only part any method may have (absent ones are simply not found)."""
        return ["critic", "critic_2", "value_critic", "inverse_model", "target_policy", "target_critic", "target_critic_2", "target_value_critic"]

    # --- acting --------------------------------------------------------------------------------------
    def act(self, obs: Dict[str, torch.Tensor], *, explore: bool, random_hyper_action: bool = False) -> Dict[str, torch.Tensor]:
        """Slates and hyper-actions for a batch of observations (no gradients)."""
        with torch.no_grad():
            state = self.policy.encode_state(*obs_tensors(obs))
            z = self.policy.hyper_action(state)
            if explore and random_hyper_action:  # warm-up: random hyper-actions at the scale of real ones
                z = torch.randn_like(z) * z.std().clamp_min(1e-3)
            elif explore and self.noise_std > 0:
                z = z + self.noise_std * torch.randn_like(z)
            rate = self.greedy_rate if explore else 1.0
            slate = self.policy.slate(z, self.k, greedy_rate=rate)
        return {Columns.ACTIONS: slate, HYPER_ACTION: z}

    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self.act(batch[Columns.OBS], explore=False)

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return self.act(batch[Columns.OBS], explore=True, random_hyper_action=bool(kwargs.get("random_hyper_action", False)))

    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        state = self.policy.encode_state(*obs_tensors(batch[Columns.OBS]))
        return {STATE: state, HYPER_ACTION: self.policy.hyper_action(state)}
