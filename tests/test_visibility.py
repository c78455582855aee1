"""tools/visibility.py: which presses and camera bins leave a trace in ToyCraft's pixels (the ceiling of any IDM)."""

import numpy as np

import common
import toycraft as tc
from test_toycraft import act, arena, give
from tools import visibility


def test_press_shows_finds_the_presses_no_idm_can_see():
    env = arena()
    give(env, "log", select=False)
    give(env, "planks", select=False)
    assert env.slot == 0
    assert not visibility.press_shows(env, act(**{"hotbar.1": 1}), "hotbar.1")  # the slot already selected
    assert visibility.press_shows(env, act(**{"hotbar.2": 1}), "hotbar.2")
    assert visibility.press_shows(env, act(jump=1), "jump", then=[act(jump=1)] * 2)  # on the ground: the jump starts
    env.step(act(jump=1))
    assert env.jump_t and not visibility.press_shows(env, act(jump=1), "jump", then=[act()] * 2)  # mid-air: nothing
    assert visibility.press_shows(env, act(camera=np.array([0.0, 2.0], np.float32)), "camera")
    env.step(act(inventory=1))  # a tap: the GUI opens on the press; its second tick does nothing
    assert env.gui_open and not visibility.press_shows(env, act(inventory=1), "inventory", then=[act()] * 2)
    slot, steps = env.slot, env.steps
    visibility.press_shows(env, act(**{"hotbar.2": 1}), "hotbar.2")
    assert (env.slot, env.steps) == (slot, steps)  # the env asked about is left as it was


def test_visibility_counts_every_held_key_of_the_recorded_episodes():
    seen = visibility.visibility(1, lookahead=1, max_steps=300)  # the first 15 s of play: the test's time
    counts = seen["presses"]
    actions = tc.play_episode(*tc.draw_episodes(0, 1, tc.CONTRACTOR_MIX)[0], max_steps=300)["actions"]
    for k, (held, shown) in counts.items():
        if k != "camera":
            assert held == sum(int(a[k]) for a in actions) and 0 <= shown <= held
    assert counts["forward"][1] > 0.8 * counts["forward"][0]  # walking shows, save against a wall
    # both camera axes of every frame, each with the bin the recording holds
    assert len(seen["camera"]) == 2 * len(actions)
    recorded = common.quantize_camera(np.array([a["camera"] for a in actions]))
    assert [r[2] for r in seen["camera"]] == [int(b) for b in recorded.reshape(-1)]
    ceiling = visibility.camera_ceiling(seen["camera"])
    assert 0.5 < ceiling["world"][1] <= 1 and abs(ceiling["world"][0] + ceiling["gui"][0] - 1) < 1e-9


def test_camera_bins_confused_by_sub_pixel_turns():
    env = tc.ToyCraft(seed=0)
    env.reset()
    act = lambda **kw: {**common.minerl_noop(), **kw}  # noqa: E731
    two_counts = 2 * common.CAMERA_SCALER  # 0.3 degrees: bin 6, the first bin right of "still"
    # a 10-degree turn in the world cannot be mistaken for the bins next to it (9, and none beyond 10)
    assert visibility.camera_bins_confused(env, act(camera=np.array([0.0, 10.0], np.float32)), 1) == (10, [10])
    # in the GUI the mouse moves the pointer, one count a 720th of the screen: at 64x64 a 0.3-degree move shifts it by
    # 0.18 pixels and a one-count move (the null bin) by 0.09, which mostly land on the same pixel
    env.step(act(inventory=1))
    assert env.gui_open
    turn = act(camera=np.array([0.0, two_counts], np.float32))
    confused = []
    for _ in range(12):
        confused.append(visibility.camera_bins_confused(env, turn, 1, [act()])[1])
        env.step(act(camera=np.array([0.0, 3 * common.CAMERA_SCALER], np.float32)))  # the pointer creeps right
    # confused with the null bin, save where a pixel edge lies between one count and two
    assert sum(5 in c for c in confused) >= 6 and sum(5 not in c for c in confused) >= 1
    # the replays leave the env as it was
    assert env.gui_open and env.steps == 13
