"""Column names of a stored transition, shared by the EnvRunner, the replay buffer and the learners.

A transition is (s_t, a_t, r_t, s_{t+1}, d) as in the paper's buffer: the observation is kept as its
parts (the user's features and history), the next observation only as the next history (the user and
their features do not change within a session).
"""

from __future__ import annotations

from typing import Mapping

import torch

USER_ID = "user_id"
USER_FEATURES = "user_features"
HISTORY = "history"
NEXT_HISTORY = "next_history"
SLATE = "slate"  # the effect action a_t, the env action
HYPER_ACTION = "hyper_action"  # Z_t as acted (noise included)
FEEDBACK = "feedback"  # the user's response to each slate item
REWARD = "reward"
DONE = "done"  # the user left (terminated): no bootstrapping

ALL = (USER_ID, USER_FEATURES, HISTORY, NEXT_HISTORY, SLATE, HYPER_ACTION, FEEDBACK, REWARD, DONE)


def observation(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The observation dict of s_t, in the env's observation layout."""
    return {USER_ID: batch[USER_ID], USER_FEATURES: batch[USER_FEATURES], HISTORY: batch[HISTORY]}


def next_observation(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The observation dict of s_{t+1}: same user, the history after the slate's positives."""
    return {USER_ID: batch[USER_ID], USER_FEATURES: batch[USER_FEATURES], HISTORY: batch[NEXT_HISTORY]}
