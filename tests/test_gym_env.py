"""The limit-order Gymnasium env (hyperdapo/rl/gym_env.py): Gymnasium's own checker on both action spaces; the
observation, the offset and the reward worked out by hand from the task's feature rows and the simulator's price
path; one decision per episode; seeded draws from the split; the batched VecEnv agrees with the env decision by
decision."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hyperdapo.features.decision_set import Split
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.rl.config import ActionKind
from hyperdapo.rl.gym_env import ENV_ID, FEATURES, OBJECTIVES, LimitOrderEnv
from hyperdapo.rl.ppo import BatchedLimitOrderEnv
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

GRID_BPS = [-15.0, -5.0, 0.0, 5.0]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return build_task(run_config(fast(tmp_path_factory.mktemp("gym"))))


@pytest.mark.parametrize("action", [ActionKind.CONTINUOUS, ActionKind.DISCRETE])
def test_gymnasium_check_env_passes(task, action):
    check_env(LimitOrderEnv(task, Split.TRAIN, action, GRID_BPS), skip_render_check=True)


def test_make_by_id(task):
    env = gym.make(ENV_ID, task=task, split="val", action="discrete", offset_grid_bps=GRID_BPS)
    obs, info = env.reset(seed=3)
    assert info["decision"] in set(task.split_index(Split.VAL))
    assert obs.shape == (len(FEATURES) + 4,) and obs.dtype == np.float32


def test_observation_is_the_decisions_clipped_z_features_side_and_objective(task):
    env = LimitOrderEnv(task, Split.TRAIN, "discrete", GRID_BPS)
    row_of_nan = next(i for i in task.split_index(Split.TRAIN) if any(np.isnan(task.features[i][f]) for f in FEATURES))
    for i in (int(task.split_index(Split.TRAIN)[-1]), int(row_of_nan)):
        obs, _ = env.reset(options={"decision": i})
        feats = task.features[i]
        expected = [min(max(0.0 if np.isnan(feats[f]) else feats[f], -5.0), 5.0) for f in FEATURES]
        expected.append(float(task.decisions.side[i]))
        expected += [1.0 if task.decisions.objective[i] == o else 0.0 for o in OBJECTIVES]
        np.testing.assert_allclose(obs, np.array(expected, dtype=np.float32))
        assert obs[len(FEATURES) + 1:].sum() == 1.0


@pytest.mark.parametrize(("action", "a", "offset_bps"), [("continuous", np.array([0.25], np.float32), 50.0),
                                                         ("continuous", np.array([-0.1], np.float32), -20.0),
                                                         ("discrete", 1, -5.0)])
def test_reward_is_the_simulated_order_at_the_offset(task, action, a, offset_bps):
    """band 200 bps: a = 0.25 is 50 bps crossing, -0.1 is 20 bps passive; discrete 1 is GRID_BPS[1] = -5 bps."""
    assert task.prompt_cfg.band_bps == 200.0
    env = LimitOrderEnv(task, Split.TRAIN, action, GRID_BPS)
    i = int(task.split_index(Split.TRAIN)[7])
    env.reset(options={"decision": i})
    _, reward, terminated, truncated, info = env.step(a)
    assert (terminated, truncated) == (True, False)
    assert info["offset_bps"] == pytest.approx(offset_bps, rel=1e-6)
    side, mid = float(task.decisions.side[i]), float(task.mid_usd[i])
    tick = task.instrument.tick_size(mid)  # USD
    limit_px = round(mid * (1 + side * offset_bps / 1e4) / tick) * tick  # the order's price, by hand
    expected, _ = task.score_prices(np.array([i]), np.array([[limit_px]]))
    assert reward == pytest.approx(float(expected[0, 0]), abs=1e-9)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(a)  # the episode is over


def test_reset_draws_from_the_split_with_the_envs_rng(task):
    env = LimitOrderEnv(task, Split.VAL, "discrete", GRID_BPS)
    first = [env.reset(seed=11)[1]["decision"]] + [env.reset()[1]["decision"] for _ in range(30)]
    again = [env.reset(seed=11)[1]["decision"]] + [env.reset()[1]["decision"] for _ in range(30)]
    assert first == again
    assert set(first) <= set(task.split_index(Split.VAL)) and len(set(first)) > 5


def test_batched_env_agrees_with_the_env_decision_by_decision(task):
    batched = BatchedLimitOrderEnv(task, Split.TRAIN, 16, ActionKind.DISCRETE, GRID_BPS, seed=5)
    obs = batched.reset()
    actions = np.arange(16) % len(GRID_BPS)
    batched.step_async(actions)
    _, rewards, dones, infos = batched.step_wait()
    assert dones.all() and len({info["decision"] for info in infos}) > 1
    env = LimitOrderEnv(task, Split.TRAIN, "discrete", GRID_BPS)
    for k, info in enumerate(infos):
        single_obs, _ = env.reset(options={"decision": info["decision"]})
        np.testing.assert_array_equal(single_obs, obs[k])
        np.testing.assert_array_equal(info["terminal_observation"], obs[k])
        _, reward, _, _, single_info = env.step(actions[k])
        assert single_info["offset_bps"] == info["offset_bps"] == GRID_BPS[actions[k]]
        assert float(rewards[k]) == pytest.approx(reward, abs=1e-4)  # float32 rewards in the VecEnv
