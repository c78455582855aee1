"""05_rl.py: GAE against a hand-worked example, the KL term, the reward table, the action log-prob."""

import math

import numpy as np
import pytest
import torch

import common as c
from conftest import load_stage

rl = load_stage("05_rl.py")


def test_gae_by_hand():
    # gamma = lambda = 0.5; the episode ends after step 1 (obs 2 starts a new one); the rollout bootstraps from 4.0
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.0]])
    dones = torch.tensor([[False], [False], [True]])
    adv, ret = rl.compute_gae(rewards, values, dones, torch.tensor([4.0]), torch.tensor([False]), 0.5, 0.5)
    # t=2: 2 + 0.5*4 - 0 = 4; t=1: 0 - 1 = -1 (no bootstrap across the episode's end); t=0: 1 + 0.5*1 - 0.5 = 1,
    # plus 0.5*0.5*(-1) -> 0.75
    assert adv[:, 0].tolist() == pytest.approx([0.75, -1.0, 4.0])
    assert ret[:, 0].tolist() == pytest.approx([1.25, 0.0, 4.0])


def _pi(logits_b, logits_c):
    return {"buttons": torch.log_softmax(logits_b, -1), "camera": torch.log_softmax(logits_c, -1)}


def test_kl_is_zero_for_identical_policies_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    a = _pi(torch.randn(4, c.N_BUTTON_CLASSES, generator=g), torch.randn(4, c.N_CAMERA_CLASSES, generator=g))
    b = _pi(torch.randn(4, c.N_BUTTON_CLASSES, generator=g), torch.randn(4, c.N_CAMERA_CLASSES, generator=g))
    assert rl.kl_to_pretrained(a, a).abs().max() < 1e-5
    assert (rl.kl_to_pretrained(a, b) > 0.01).all()
    # a two-class check against the formula: p = (0.5, 0.5), q = (0.9, 0.1) -> 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)
    p = {"buttons": torch.log(torch.tensor([0.5, 0.5]))}
    q = {"buttons": torch.log(torch.tensor([0.9, 0.1]))}
    assert rl.kl_to_pretrained(p, q).item() == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5.0))


def test_kl_gradient_pulls_towards_the_pretrained_policy():
    logits = torch.zeros(1, 10, requires_grad=True)
    pretrained = torch.full((1, 10), -5.0)
    pretrained[0, 3] = 5.0  # the pretrained policy is sure of action 3
    kl = rl.kl_to_pretrained({"buttons": torch.log_softmax(logits, -1)},
                             {"buttons": torch.log_softmax(pretrained, -1)})
    kl.sum().backward()
    assert logits.grad[0, 3] < 0 and (logits.grad[0, torch.arange(10) != 3] > 0).all()  # descent raises action 3
    with torch.no_grad():
        after = rl.kl_to_pretrained({"buttons": torch.log_softmax(logits - 0.5 * logits.grad, -1)},
                                    {"buttons": torch.log_softmax(pretrained, -1)})
    assert after.item() < kl.item()


def _run(counts_per_step, item):
    high, total = np.zeros(len(c.ITEMS)), 0.0
    for n in counts_per_step:
        reward, high = rl.item_reward({item: n}, high)
        total += reward
    return total


def test_reward_table_and_caps():
    assert rl.ITEM_REWARDS["log"] == (pytest.approx(1 / 8), 8) and rl.ITEM_REWARDS["iron_pickaxe"] == (4, 1)
    assert _run(range(1, 13), "log") == pytest.approx(1.0)  # 12 logs, only 8 are paid: 8 x 1/8
    assert _run([1, 2, 3], "cobblestone") == pytest.approx(3 / 11)
    assert _run([1], "iron_pickaxe") == pytest.approx(4.0)
    assert _run([1, 2, 5], "diamond") == pytest.approx(5 * 8 / 3)  # no cap on diamonds
    # several items in one step each pay their own
    reward, _ = rl.item_reward({"log": 2, "crafting_table": 1}, np.zeros(len(c.ITEMS)))
    assert reward == pytest.approx(2 / 8 + 1)


def test_no_reward_for_dropping_and_picking_up_again():
    assert _run([3, 2, 3, 2, 3], "log") == pytest.approx(3 / 8)  # up to 3 once; the drops and pick-ups pay nothing
    assert _run([1, 0, 1], "crafting_table") == pytest.approx(1.0)  # placed and picked up again: paid once
    assert _run([4, 0, 4, 6], "log") == pytest.approx(6 / 8)  # consumed by a recipe: pays again only above 4


def test_action_logprob_leaves_out_the_camera_when_the_buttons_do_not_move_it():
    pi = {"buttons": torch.full((2, c.N_BUTTON_CLASSES), -1.0), "camera": torch.full((2, c.N_CAMERA_CLASSES), -2.0)}
    moves = c.env_to_policy_action({"attack": np.ones(1), "camera": np.array([[0.0, 5.0]])})["buttons"][0]
    still = c.env_to_policy_action({"attack": np.ones(1)})["buttons"][0]
    logp = rl.action_logprob(pi, torch.tensor([moves, still]), torch.tensor([3, 3]))
    assert logp.tolist() == [-3.0, -1.0]
