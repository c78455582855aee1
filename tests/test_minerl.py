"""The MineRL 1.0 adapter (worlds.MineRLEnv) against a fake HumanSurvival with the real interface: observations,
actions as the Java side parses them, step limit, death, lost connections, item counts, and 04/05's rollout loops."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import common as c
import worlds
import fake_minerl
from conftest import ROOT, load_stage

rl = load_stage("05_rl.py")

TESTS = Path(__file__).resolve().parent


def _env(**kwargs):
    fake = fake_minerl.FakeHumanSurvival(**{k: kwargs.pop(k) for k in ("die_at", "error_at") if k in kwargs})
    return worlds.MineRLEnv(make=lambda: fake, **kwargs), fake


def test_observation_is_resized_and_items_summed_over_wood_kinds():
    env, fake = _env(size=128)
    raw = fake_minerl.FakeHumanSurvival()
    raw.seed(5)
    expected = cv2.resize(np.ascontiguousarray(raw.reset()["pov"]), (128, 128), interpolation=cv2.INTER_LINEAR)
    env.seed(5)
    obs = env.reset()
    assert obs["pov"].shape == (128, 128, 3) and obs["pov"].flags["C_CONTIGUOUS"]
    assert np.array_equal(obs["pov"], expected)  # VPT's INTER_LINEAR, from the negative-stride view
    for _ in range(3):
        obs, *_ = env.step(c.minerl_noop())
    assert obs["inventory"]["log"] == 3 and obs["inventory"]["planks"] == 0  # 1 oak + 2 birch
    for _ in range(4):
        obs, *_ = env.step(c.minerl_noop())
    inv = obs["inventory"]
    assert (inv["log"], inv["planks"], inv["stick"], inv["crafting_table"]) == (2, 8, 4, 0)  # oak logs used up
    assert set(inv) == set(c.ITEMS) and "dirt" not in inv
    obtained = dict(zip(c.ITEMS, env.obtained))
    assert obtained["log"] and obtained["planks"] and obtained["stick"] and not obtained["cobblestone"]


def test_actions_reach_minecraft_as_ints_and_a_float32_camera():
    env, fake = _env()
    env.reset()
    # a batch of the policy's actions, as 04 and 05 produce them, one element per env
    batch = c.policy_to_env_action({"buttons": np.array([3, 7]), "camera": np.array([12, 100])})
    env.step({k: v[1] for k, v in batch.items()})  # fake_minerl asserts every value's type, as parseInt would
    sent = fake.actions[-1]
    assert set(sent) == set(c.MINERL_KEYS) and len(sent) == 24
    assert all(type(v) is int for k, v in sent.items() if k != "camera")
    assert np.allclose(sent["camera"], batch["camera"][1])
    env.step({"forward": np.array([1]), "camera": [0.5, -2.0]})  # shape-(1,) arrays and lists, missing keys released
    assert fake.actions[-1]["forward"] == 1 and fake.actions[-1]["attack"] == 0
    assert fake.actions[-1]["camera"].dtype == np.float32


def test_episode_ends_at_the_step_limit_on_death_and_on_a_lost_connection():
    env, fake = _env(max_steps=4)
    env.seed(11)
    env.reset()
    dones = [env.step(c.minerl_noop())[2] for _ in range(4)]
    assert dones == [False, False, False, True]  # HumanSurvival has no limit of its own
    with pytest.raises(RuntimeError):
        env.step(c.minerl_noop())
    env.reset()
    assert fake.seeds_used == [11, 11]  # the adapter sets the seed again before each reset

    env, _ = _env(die_at=2)
    env.reset()
    env.step(c.minerl_noop())
    _, _, done, info = env.step(c.minerl_noop())
    assert done and info["dead"]

    env, _ = _env(error_at=3)
    env.reset()
    for _ in range(2):
        last, *_ = env.step(c.minerl_noop())
    with pytest.warns(UserWarning, match="Connection timed out"):
        obs, _, done, info = env.step(c.minerl_noop())
    assert done and "error" in info and obs is last  # the random observation is never passed on
    assert obs["inventory"]["log"] == 1 and not env.obtained[c.ITEMS.index("cobblestone")]  # not the noise's 2000s


def test_reward_comes_from_the_minecraft_inventory():
    env, _ = _env()
    env.reset()
    high, rewards = np.zeros(len(c.ITEMS)), []
    for _ in range(7):
        obs, *_ = env.step(c.minerl_noop())
        r, high = rl.item_reward(obs["inventory"], high)
        rewards.append(r)
    # logs 1, then 3 (any wood), then planks 4, 8, sticks 4: Table 7's 1/8, 1/20 and 1/16 a piece
    assert np.allclose(rewards, [0, 1 / 8, 2 / 8, 0, 4 / 20, 4 / 20, 4 / 16])


def test_evaluation_rollouts_run_on_minerl(monkeypatch, tmp_path):
    # 04's evaluation through worker processes: the factory reaches them through the environment
    monkeypatch.setenv("NANOVPT_MINERL_ENV", "fake_minerl:make")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.syspath_prepend(str(TESTS))
    rates, info = worlds.evaluate_items(None, "minerl", episodes=3, episode_steps=8, workers=1)
    assert rates["log"] == 1.0 and rates["planks"] == 1.0 and rates["stick"] == 1.0 and rates["cobblestone"] == 0.0
    assert info["episodes"] == 3 and info["gui_fraction"] == 0.0  # the fake says isGuiOpen False on every step


def test_an_env_a_worker_cannot_make_is_one_error_in_the_main_process(monkeypatch, tmp_path):
    # MineRL missing in a worker process: its UserError reaches the main process, which would otherwise wait forever
    monkeypatch.setenv("NANOVPT_MINERL_ENV", "fake_minerl:make_without_minerl")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.syspath_prepend(str(TESTS))
    with pytest.raises(c.UserError, match="needs MineRL 1.0"):
        worlds.evaluate_items(None, "minerl", episodes=1, episode_steps=4, workers=1)
    env = {"NANOVPT_MINERL_ENV": "fake_minerl:make_without_minerl", "PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(ROOT / "05_rl.py"), "--smoke", "--env", "minerl", "--scratch", "--out",
                          str(tmp_path / "rl")], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 1 and out.stderr.splitlines()[-1] == ("05_rl.py: --env minerl needs MineRL 1.0 (No "
                                                                   "module named 'minerl')")


def test_rl_runs_on_minerl(tmp_path):
    # 05's environment workers, reward and auto-reset on the fake, end to end
    env = {"NANOVPT_MINERL_ENV": "fake_minerl:make", "PYTHONPATH": str(TESTS), "FAKE_MINERL_DIE_AT": "20",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(ROOT / "05_rl.py"), "--smoke", "--env", "minerl", "--scratch",
                          "--out", "rl"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "rl" / "metrics.json").read_text())
    assert metrics["env_steps"] == 64 and metrics["mean_return"] > 0  # the scripted logs pay, episodes end on death
    assert metrics["item_rates"]["log"] == 1.0
