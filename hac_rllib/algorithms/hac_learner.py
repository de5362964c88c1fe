"""HAC's Learner: Algorithm 1's four updates, strictly in order, each with its own optimizer.

Per minibatch: (1) critic on L_TD with Q(s, a) = g(s, h(a)); (2) actor on L_QMax = −Q(s, Z) against the
freshly updated critic; (3) actor and kernel on the alignment λ_h‖Z − h(top-k(Z))‖²; (4) actor and
kernel on the supervision BCE with its own learning rate; then soft target updates (τ). Each phase
recomputes the state with the parameters the previous phase left, as the paper's order implies;
RLlib's default single-backward update cannot express that, hence the ``_update`` override.

The baselines of Table 3 run through the same Learner: ``config.method`` names a preset
(``methods.py``) whose phase list replaces Algorithm 1's and whose optimizers train the parts the
preset says. Target networks are soft-updated after every update in which the actor moved (every
update, except TD3's delayed ones).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.core.rl_module.apis import TargetNetworkAPI

from hac_rllib.algorithms import phases

CRITIC, ACTOR, ALIGN, SUPERVISE = "critic", "actor", "align", "supervise"


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf: training must stop before the bad update reaches the weights."""


class HACLearner(TorchLearner):
    def build(self) -> None:
        super().build()
        self.module.foreach_module(lambda mid, m: m.make_target_networks() if isinstance(m, TargetNetworkAPI) else None)
        self._num_updates = 0
        self._targets_due = False

    @staticmethod
    def _part_parameters(module, part: str) -> list:
        """The parameters of a module part named in a method's ``optimizers`` (see methods.py)."""
        if part == "policy":
            nets = [module.policy]
        elif part == "item_kernel":
            nets = [module.policy.item_kernel]
        elif part == "critics":
            nets = module.critic_nets()
        elif part == "inverse_model":
            nets = [module.inverse_model]
        else:
            raise ValueError(f"unknown module part {part!r}")
        return [p for net in nets for p in net.parameters()]

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self._module[module_id].unwrapped()
        method = config.method_spec
        wd = config.l2_coef
        lrs = {
            CRITIC: config.critic_lr,
            ACTOR: config.actor_lr,
            ALIGN: config.align_lr if config.align_lr is not None else config.actor_lr,
            SUPERVISE: config.supervise_lr,
        }
        for name, parts in method.optimizers.items():
            params = [p for part in parts for p in self._part_parameters(module, part)]
            lr = lrs[name]
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params, weight_decay=wd),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        raise NotImplementedError("HAC's losses are applied one by one in _update, never summed into one")

    # --- one phase -----------------------------------------------------------------------------------
    def _apply(self, module_id: str, name: str, loss: torch.Tensor) -> None:
        """Backward one loss and step only its optimizer (grads are cleared first, so none leak)."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{name}_loss is {loss.item()} at update {self._num_updates} of module {module_id!r}: "
                "training stopped before applying it (lower the learning rates or check the simulator)"
            )
        optimizer = self.get_optimizer(module_id, name)
        self._module[module_id].zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.get_config_for_module(module_id).grad_clip
        if clip:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    # --- the update ----------------------------------------------------------------------------------
    def _update(self, batch: Dict[str, Any], **kwargs) -> Tuple[Any, Any, Any]:
        fwd_out, loss_per_module = {}, {}
        for module_id, b in batch.items():
            module = self._module[module_id].unwrapped()
            cfg = self.config.get_config_for_module(module_id)
            metrics, total = self._hac_update(module_id, module, cfg, b)
            self.metrics.log_dict(metrics, key=module_id, window=1)
            fwd_out[module_id] = {}
            loss_per_module[module_id] = total
        self._num_updates += 1
        return fwd_out, loss_per_module, {}

    def _hac_update(self, module_id: str, module, cfg, b) -> Tuple[Dict[str, float], torch.Tensor]:
        """The method's phases in order (Algorithm 1's for HAC), each with its own optimizer step."""
        metrics: Dict[str, float] = {}
        total = torch.zeros(())
        for name, phase in phases.phases_for(cfg.method_spec.phases, cfg, self._num_updates):
            loss, phase_metrics = self._run(module_id, name, phase(module, b, cfg))
            metrics.update(phase_metrics)
            total = total + loss.detach()
            if name == ACTOR:
                self._targets_due = True
        if int(cfg.policy_delay) <= 1:
            self._targets_due = True
        return metrics, total

    # Each step takes (module_id, module, config, batch), applies its optimizer and returns
    # (loss, metrics). They are public so tests and the baselines can run them one at a time; the
    # losses themselves live in ``hac_rllib.algorithms.phases`` (shared with the plain-torch loop).
    def critic_step(self, module_id, module, cfg, b):
        return self._run(module_id, CRITIC, phases.critic_phase(module, b, cfg))

    def actor_step(self, module_id, module, cfg, b):
        return self._run(module_id, ACTOR, phases.actor_phase(module, b, cfg))

    def align_step(self, module_id, module, cfg, b):
        return self._run(module_id, ALIGN, phases.align_phase(module, b, cfg))

    def supervise_step(self, module_id, module, cfg, b):
        return self._run(module_id, SUPERVISE, phases.supervise_phase(module, b, cfg))

    def phase_step(self, module_id, module, cfg, b, phase: str):
        """Run one named phase of ``phases.PHASES`` (any method's) and step its optimizer."""
        spec = phases.PHASES[phase]
        return self._run(module_id, spec.optimizer, spec.fn(module, b, cfg))

    def _run(self, module_id, name, loss_and_metrics):
        loss, metrics = loss_and_metrics
        self._apply(module_id, name, loss)
        return loss, metrics

    def after_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        if not self._targets_due:  # TD3: the targets follow the delayed actor
            return
        self._targets_due = False
        for module_id, module in self.module._rl_modules.items():
            tau = self.config.get_config_for_module(module_id).tau
            for main, target in module.unwrapped().get_target_network_pairs():
                update_target_network(main_net=main, target_net=target, tau=tau)

