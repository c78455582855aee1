"""ToyCraft: the rules (mining, tools, recipes, placing, the hotbar), the GUI cursor, determinism, speed-independent
rendering facts, the scripted players and the recordings (round trip through common.py, replay, the toy internet)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import common
import toycraft as tc
from conftest import ROOT


def act(**keys):
    action = common.minerl_noop()
    action.update(keys)
    return action


def item(env, name):
    return int(env.inventory[tc.ITEMS.index(name)])


def arena(block=None, seed=0):
    """A fresh env whose player stands at (5.5, 5.5) facing +x (yaw 0) on open grass, with `block` right in front at
    (7, 5) and the pitch level, so that the crosshair is on it."""
    env = tc.ToyCraft(seed=seed)
    env.reset()
    env.grid[1:-1, 1:-1] = tc.B["grass"]
    env.x, env.y, env.yaw, env.pitch = 5.5, 5.5, 0.0, 10.0
    if block is not None:
        env.grid[7, 5] = tc.B[block]
    env._update_target()
    env._render()
    return env


def give(env, name, count=1, select=True):
    env._add(name, count)
    if select:
        env.slot = env.hotbar.index(tc.ITEMS.index(name))


# ----------------------------------------------------------------------------------------------- mining and tools


def mine(env, ticks):
    for _ in range(ticks):
        env.step(act(attack=1))


def test_crosshair_targets_block_in_front():
    env = arena("log")
    assert env.target == (7, 5)


def test_log_by_hand_takes_its_table_time():
    env = arena("log")
    ticks = tc.BLOCK_TABLE[tc.B["log"]][3][0]
    mine(env, ticks - 1)
    assert env.grid[7, 5] == tc.B["log"] and item(env, "log") == 0  # not yet
    mine(env, 1)
    assert env.grid[7, 5] == tc.B["grass"] and item(env, "log") == 1


def test_releasing_attack_resets_progress():
    env = arena("log")
    mine(env, 10)
    env.step(act())
    mine(env, 10)
    assert env.grid[7, 5] == tc.B["log"]  # 10 + 10 ticks with a break between is not 14 in a row


def test_stone_needs_a_wooden_pickaxe():
    env = arena("stone")
    mine(env, 100)
    assert env.grid[7, 5] == tc.B["stone"] and item(env, "cobblestone") == 0
    give(env, "wooden_pickaxe")
    mine(env, tc.BLOCK_TABLE[tc.B["stone"]][3][1])
    assert env.grid[7, 5] == tc.B["floor"] and item(env, "cobblestone") == 1


def test_pickaxe_only_counts_when_held():
    env = arena("stone")
    give(env, "wooden_pickaxe", select=False)
    give(env, "planks", 5)  # holding planks, the pickaxe in another slot
    mine(env, 50)
    assert env.grid[7, 5] == tc.B["stone"]


def test_info_says_what_each_step_hit_and_crafted():
    # what 05's funnel counts (worlds.FUNNEL): stone hit by hand, then with a pickaxe, then a craft in the GUI
    import worlds

    env = arena("stone")
    funnel = {k: np.full(1, np.nan) for k in worlds.FUNNEL}
    infos = [env.step(act(attack=1))[3], env.step(act())[3]]
    assert infos[0]["attacking"] == "stone" and infos[0]["held"] is None and infos[1]["attacking"] is None
    give(env, "wooden_pickaxe")
    infos += [env.step(act(attack=1))[3] for _ in range(3)]
    assert infos[-1]["held"] == "wooden_pickaxe" and infos[-1]["crafted"] is None
    give(env, "log", 2)
    infos.append(env.step(act(inventory=1))[3])
    target = env.recipe_centre(tc.RECIPE_NAMES.index("planks"))
    counts = np.round(target - env.cursor)
    infos.append(env.step(act(camera=np.array([counts[1], counts[0]]) * common.CAMERA_SCALER))[3])
    infos.append(env.step(act(attack=1))[3])
    assert infos[-1]["crafted"] == "planks" and infos[-1]["attacking"] is None  # the click in a GUI hits no block
    for info in infos:
        worlds.count_funnel(funnel, 0, info)
    assert {k: v[0] for k, v in funnel.items()} == {"tables_crafted": 0, "tables_placed": 0,
                                                   "wooden_pickaxes_crafted": 0, "stone_hits_with_pickaxe": 3,
                                                   "stone_hits_without_pickaxe": 1}


@pytest.mark.parametrize("ore, drop, weak, strong", [("iron_ore", "iron_ore", "wooden_pickaxe", "stone_pickaxe"),
                                                      ("diamond_ore", "diamond", "stone_pickaxe", "iron_pickaxe"),
                                                      ("coal_ore", "coal", None, "wooden_pickaxe")])
def test_tool_tiers(ore, drop, weak, strong):
    env = arena(ore)
    if weak:
        give(env, weak)
    mine(env, 100)
    assert env.grid[7, 5] == tc.B[ore]
    give(env, strong)
    mine(env, 30)
    assert item(env, drop) == 1


def test_better_pickaxe_is_faster():
    ticks = tc.BLOCK_TABLE[tc.B["stone"]][3]
    assert ticks[1] > ticks[2] > ticks[3] > ticks[4]
    env = arena("stone")
    give(env, "iron_pickaxe")
    mine(env, ticks[3])
    assert item(env, "cobblestone") == 1


def test_bedrock_and_out_of_reach():
    env = arena("bedrock")
    give(env, "diamond_pickaxe")
    mine(env, 100)
    assert env.grid[7, 5] == tc.B["bedrock"]
    env = arena()
    env.grid[9, 5] = tc.B["log"]  # 3.5 blocks away: beyond REACH
    env._update_target()
    assert env.target is None


# ----------------------------------------------------------------------------------------------- recipes


def test_recipe_chain_and_stations():
    env = arena()
    give(env, "log", 2)
    planks, stick, table, wooden = (tc.RECIPE_NAMES.index(n) for n in ("planks", "stick", "crafting_table",
                                                                        "wooden_pickaxe"))
    assert env._craft(planks) and item(env, "planks") == 4 and item(env, "log") == 1
    assert env._craft(planks) and env._craft(stick) and item(env, "stick") == 4 and item(env, "planks") == 6
    assert not env._craft(wooden)  # needs a crafting table within 3 blocks
    assert env._craft(table) and item(env, "crafting_table") == 1 and item(env, "planks") == 2
    assert env.obtained[tc.ITEMS.index("log")] and not env.obtained[tc.ITEMS.index("wooden_pickaxe")]
    env.grid[8, 5] = tc.B["crafting_table"]
    assert not env._craft(wooden)  # now near one, but 2 planks are not 3
    give(env, "planks", 1)
    assert env._craft(wooden) and item(env, "wooden_pickaxe") == 1 and item(env, "stick") == 2
    env.grid[8, 5] = tc.B["grass"]
    env.grid[9, 9] = tc.B["crafting_table"]  # 4 cells away
    give(env, "planks", 3)
    assert not env.can_craft(wooden)


def test_smelting_needs_a_furnace_and_fuel():
    env = arena()
    give(env, "iron_ore", 2)
    ingot = tc.RECIPE_NAMES.index("iron_ingot")
    assert not env.can_craft(ingot)
    env.grid[7, 7] = tc.B["furnace"]
    assert not env.can_craft(ingot)  # no fuel
    give(env, "coal", 1)
    assert env._craft(ingot) and item(env, "coal") == 0 and item(env, "iron_ingot") == 1
    give(env, "planks", 1)  # planks burn when there is no coal
    assert env._craft(ingot) and item(env, "planks") == 0 and item(env, "iron_ingot") == 2


def test_every_recipe_is_craftable_from_its_inputs():
    for r, (output, count, inputs, near) in enumerate(tc.RECIPES):
        env = arena()
        for name, n in inputs.items():
            give(env, name, n, select=False)
        if near:
            env.grid[7, 7] = tc.B[near]
        assert env._craft(r), output
        assert item(env, output) == count
        assert all(item(env, k) == 0 for k in inputs if k != output)


# ----------------------------------------------------------------------------------------------- placing, dropping, hotbar


def test_place_and_drop():
    env = arena()
    give(env, "crafting_table", 2)
    env.pitch = 45.0  # looking at the ground 1.6 blocks ahead: cell (7, 5)
    env._update_target()
    assert env.place_cell == (7, 5)
    info = env.step(act(use=1))[3]
    assert env.grid[7, 5] == tc.B["crafting_table"] and item(env, "crafting_table") == 1
    assert info["placed"] == "crafting_table"  # what 05's funnel counts
    info = env.step(act(use=1))[3]  # held, not pressed again: nothing more
    assert item(env, "crafting_table") == 1 and info["placed"] is None
    env.step(act(drop=1))
    assert item(env, "crafting_table") == 0 and env.hotbar[env.slot] == -1


def test_no_placing_into_water_or_onto_yourself():
    env = arena()
    give(env, "cobblestone", 3)
    env.pitch = 45.0
    env.grid[7, 5] = tc.B["water"]
    env.step(act(use=1))
    assert env.grid[7, 5] == tc.B["water"] and item(env, "cobblestone") == 3


def test_hotbar_keys_and_slots():
    env = arena()
    for name in ("log", "planks", "stick"):
        give(env, name, select=False)
    assert env.hotbar[:3] == [tc.ITEMS.index(n) for n in ("log", "planks", "stick")]
    env.step(act(**{"hotbar.3": 1}))
    assert env.held_item == "stick"
    env.step(act(**{"hotbar.1": 1, "hotbar.2": 1}))  # the highest held key wins
    assert env.slot == 1


def test_full_hotbar_evicts_oldest_but_not_pickaxes():
    env = arena()
    order = ["wooden_pickaxe", "log", "planks", "stick", "crafting_table", "cobblestone", "coal", "torch", "iron_ore"]
    for t, name in enumerate(order):
        env.steps = t
        give(env, name, select=False)
    env.steps = 20
    give(env, "diamond", select=False)
    assert tc.ITEMS.index("diamond") in env.hotbar and tc.ITEMS.index("log") not in env.hotbar
    assert tc.ITEMS.index("wooden_pickaxe") in env.hotbar  # oldest, but a pickaxe
    assert item(env, "log") == 1  # in the backpack, still owned
    env.slot = env.hotbar.index(tc.ITEMS.index("coal"))
    env.step(act(drop=1))  # the slot frees up and the log comes back from the backpack
    assert tc.ITEMS.index("log") in env.hotbar


# ----------------------------------------------------------------------------------------------- movement


def test_walking_collision_and_lava():
    env = arena()
    x0 = env.x
    for _ in range(10):
        env.step(act(forward=1))
    assert env.x == pytest.approx(x0 + 10 * tc.WALK)
    env.grid[12, 5] = tc.B["stone"]
    for _ in range(40):
        env.step(act(forward=1, sprint=1))
    assert env.x == pytest.approx(12 - tc.PLAYER_RADIUS, abs=0.3) and env.x < 12 - tc.PLAYER_RADIUS + 1e-9
    env.yaw = 90.0
    env.grid[int(env.x), int(env.y) + 2] = tc.B["lava"]
    done = False
    for _ in range(30):
        _, _, done, info = env.step(act(forward=1))
        if done:
            break
    assert done and info["dead"]


def test_sneak_and_jump_show_in_the_eye_height():
    env = arena()
    eye = env.eye
    env.step(act(sneak=1))
    assert env.eye < eye
    env.step(act(jump=1))
    assert env.eye > eye


def test_scripted_players_press_nothing_an_idm_cannot_see():
    # the kinds of press no IDM can see (tools/visibility.py): the slot already selected, jump in mid-air (in
    # water, held jump swims), the second tick of a toggle; and the habits must still press every button now and then
    world, level = tc.draw_episodes(0, 1, tc.CONTRACTOR_MIX)[0]
    ep = tc.play_episode(world, level)
    env = tc.ToyCraft(seed=world)  # replayed step by step, to ask the world's state before each press
    env.reset()
    prev, held = None, {k: 0 for k in common.BUTTONS}
    for action in ep["actions"]:
        for i in range(1, 10):
            if action[f"hotbar.{i}"]:
                assert env.slot != i - 1, "pressed the slot already selected"
        if action["jump"]:
            assert env.jump_t == 0 or env.in_water, "jump held in mid-air"
        for key in ("inventory", "use", "drop", "ESC"):
            assert not (action[key] and prev is not None and prev[key]), f"{key} held for a second tick"
        for k in common.BUTTONS:
            held[k] += int(action[k])
        env.step(action)
        prev = action
    assert sum(held[k] for k in ("left", "right", "back")) > 0 and sum(held[f"hotbar.{i}"] for i in range(1, 10)) > 0


# ----------------------------------------------------------------------------------------------- the GUI


def test_gui_cursor_and_click_crafting():
    env = arena()
    give(env, "log", 1)
    env.step(act(inventory=1))
    assert env.gui_open and env._obs()["pov"].shape == (64, 64, 3)
    yaw, pitch = env.yaw, env.pitch
    # camera moves the cursor by mouse counts (degrees / 0.15), not the view
    target = env.recipe_centre(tc.RECIPE_NAMES.index("planks"))
    counts = np.round(target - env.cursor)
    env.step(act(camera=np.array([counts[1], counts[0]]) * common.CAMERA_SCALER))
    assert env.yaw == yaw and env.pitch == pitch
    np.testing.assert_allclose(env.cursor, target, atol=1.0)
    env.step(act(attack=1))
    assert item(env, "planks") == 4
    pressed = env.screen.copy()
    env.step(act(attack=1))  # held: no second click
    assert item(env, "planks") == 4
    env.step(act())
    # a click is visible (every action leaves a trace an IDM can learn from): the recipe under the cursor is drawn
    # pressed while the button is held, and only that cell changes shade
    x, y, w, h = (np.array(env.recipe_box(tc.RECIPE_NAMES.index("planks"))) * 64).round()
    cell = (slice(int(y) + 1, int(y + h) - 2), slice(int(x) + 1, int(x + w) - 2))
    assert pressed[cell].mean() < env.screen[cell].mean() - 15  # the cell round the icon darkens by 55
    changed = (pressed != env.screen).any(-1)
    changed[cell] = False
    assert not changed.any()
    env.step(act(ESC=1))
    assert not env.gui_open


def test_gui_opens_between_the_recipes_far_from_the_edges():
    # as in Minecraft: the pointer opens in the middle, on no recipe, a short move from the early ones, and a long way
    # from the screen's edges, where it would stop
    env = arena()
    give(env, "log", 1)
    env.step(act(inventory=1))
    env.step(act(attack=1))  # a click where the pointer opened crafts nothing
    assert item(env, "planks") == 0 and item(env, "log") == 1
    start = env.cursor.copy()
    assert min(start.min(), 719 - start.max()) >= 300
    biggest_move = 10.0 / common.CAMERA_SCALER  # mouse counts of the largest camera bin (10 degrees)
    for name in ("planks", "stick", "crafting_table", "wooden_pickaxe"):
        assert np.abs(env.recipe_centre(tc.RECIPE_NAMES.index(name)) - start).max() <= 2 * biggest_move
    for r in range(len(tc.RECIPES)):  # every recipe has a cell, and the pointer over its centre finds it
        assert env._recipe_at(env.recipe_centre(r)) == r


def test_gui_shows_which_recipes_are_craftable():
    env = arena()
    env.step(act(inventory=1))
    before = env.screen.astype(int)
    give(env, "log", 1)  # planks become craftable, nothing else
    env.step(act())
    after = env.screen.astype(int)

    def cell(r):
        x, y, w, h = (np.array(env.recipe_box(r)) * 64).round().astype(int)
        return slice(y, y + h - 1), slice(x, x + w - 1)

    planks = cell(tc.RECIPE_NAMES.index("planks"))
    inside = tuple(slice(s.start + 1, s.stop - 1) for s in planks)
    green = lambda img: (img[inside][..., 1] - img[inside][..., 0]).mean()  # noqa: E731
    assert green(after) - green(before) > 30  # the whole cell turns green (round its icon), not just its frame
    changed = (before != after).any(-1)
    changed[planks] = False
    changed[int(64 * env.GUI_ITEMS_BOX[1]):] = False  # the inventory counts below show the log too
    assert not changed.any()


def test_gui_frames_differ_and_cursor_is_drawn():
    env = arena()
    closed = env._obs()["pov"]
    env.step(act(inventory=1))
    screen, pov = env.screen.copy(), env._obs()["pov"]
    assert np.abs(screen.astype(int) - closed).mean() > 20  # the GUI covers the view
    assert (pov != screen).any()  # the observation shows the pointer; the recorded screen does not
    moved = env.step(act(camera=np.array([0.0, 30.0])))[0]["pov"]
    assert (moved != pov).any()


# ----------------------------------------------------------------------------------------------- determinism


def random_actions(n, seed):
    rng = np.random.default_rng(seed)
    return [dict(act(**{k: int(rng.random() < 0.15) for k in common.MINERL_KEYS if k != "camera"}),
                 camera=rng.normal(0, 4, 2).astype(np.float32)) for _ in range(n)]


def test_same_seed_same_actions_same_frames():
    runs = []
    for _ in range(2):
        env = tc.ToyCraft(seed=5)
        frames = [env.reset()["pov"]]
        for a in random_actions(200, 1):
            frames.append(env.step(a)[0]["pov"])
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])
    other = tc.ToyCraft(seed=6).reset()["pov"]
    assert (other != runs[0][0]).any()


def test_camera_is_float32_like_minerls():
    # a policy's float64 degrees and the float32 a recording gives back must move the world identically
    envs = [tc.ToyCraft(seed=4), tc.ToyCraft(seed=4)]
    for env in envs:
        env.reset()
    rng = np.random.default_rng(0)
    for _ in range(300):
        camera = rng.normal(0, 3, 2)  # float64, not representable in float32
        envs[0].step(act(forward=1, camera=camera))
        envs[1].step(act(forward=1, camera=camera.astype(np.float32)))
    assert envs[0].yaw == envs[1].yaw and envs[0].pitch == envs[1].pitch and envs[0].x == envs[1].x


def test_reset_gives_a_new_world_and_any_size():
    env = tc.ToyCraft(seed=1, size=96)
    obs = env.reset()
    assert obs["pov"].shape == (96, 96, 3) and obs["pov"].dtype == np.uint8
    assert set(obs["inventory"]) == set(tc.ITEMS) and not any(obs["inventory"].values())
    grid0 = env.grid.copy()
    env.reset()
    assert (env.grid != grid0).any()  # each reset is a new world, like MineRL's
    again = tc.ToyCraft(seed=1)
    again.reset()
    np.testing.assert_array_equal(again.grid, grid0)  # and the sequence of worlds is the seed's


def test_worlds_have_the_tech_tree():
    for seed in range(5):
        env = tc.ToyCraft(seed=seed)
        env.reset()
        counts = {b: int((env.grid == tc.B[b]).sum()) for b in ("log", "stone", "coal_ore", "iron_ore", "diamond_ore")}
        assert counts["log"] >= 10 and counts["coal_ore"] >= 5 and counts["iron_ore"] >= 3
        assert 3 <= counts["diamond_ore"] <= 40  # rare
        assert env.grid[int(env.x), int(env.y)] == tc.B["grass"]


# ----------------------------------------------------------------------------------------------- players and recordings


def test_novice_reaches_a_crafting_table():
    env = tc.ToyCraft(seed=3, max_steps=3000)
    env.reset()
    player = tc.ScriptedPlayer(env, "novice", seed=3, goal="crafting_table")
    while not player.finished and not env.done:
        env.step(player.act())
    assert item(env, "crafting_table") == 1 and player.gave_up is None


def test_recording_round_trip_and_replay(tmp_path):
    # a short good-player recording, read back by common.py and replayed action by action in ToyCraft(seed)
    (video,) = tc.record_contractors(tmp_path, 1, seed=2, max_steps=400, mix={"good": 1.0}, progress=False)
    options = json.loads(video.with_name(video.stem + "-options.json").read_text())
    assert options["world_seed"] == 2 and options["size"] == 64 and options["player"] == "good"
    ep = common.load_contractor_episode(video, size=64, skip_null=False)
    assert len(ep) == 400
    # all 24 keys as recorded (the policy's 20-button view drops ESC, which players use to close the GUI)
    actions, _ = common.json_to_env_actions(ep.records)
    env = tc.ToyCraft(seed=2, max_steps=400)
    env.reset()
    errors = []
    for t in range(len(ep)):
        pov = env._obs()["pov"]  # the reader draws the cursor back on GUI frames, as the player saw them
        errors.append(np.abs(pov.astype(int) - ep.frames[t]).mean())
        assert env.gui_open == ep.gui_open[t]
        env.step({k: v[t] for k, v in actions.items()})
    assert np.mean(errors) < 8 and max(errors) < 15  # only video compression stands between them
    assert ep.gui_open.any()  # the recording includes crafting
    final = {d["type"]: d["quantity"] for d in ep.records[-1]["inventory"]}
    assert final == {k: int(n) for k, n in zip(tc.ITEMS, env.inventory) if n}


def test_web_videos_have_truth_but_no_actions(tmp_path):
    (video,) = tc.record_web(tmp_path, 1, seed=1003, max_steps=600, progress=False)
    assert not video.with_suffix(".jsonl").exists()  # no actions for training
    truth = video.with_suffix(".truth.jsonl")
    records = [json.loads(line) for line in truth.read_text().splitlines()]
    kinds = {r["unclean"] for r in records}
    assert all(r["clean"] == (r["unclean"] == "") for r in records)
    assert kinds - {""}  # this seed's video has unclean stretches
    ep = common.load_contractor_episode(video, jsonl_path=truth, size=64, skip_null=False)
    assert len(ep) == len(records)


def test_record_hours_resumes_and_tops_up(tmp_path):
    # episodes already in the folder count and are not played again; a missing or interrupted one is played
    short = dict(seed=50, workers=1, max_steps=150)
    first = tc.record_hours(tmp_path, 1 / tc.TOY_HOUR, **short)  # one frame asked for: one episode, world 50
    assert set(tc.recorded_frames(tmp_path)) == {50} and first == tc.recorded_frames(tmp_path)[50]
    (video,) = tmp_path.glob("toy-*-000050.mp4")
    video.write_bytes(b"not played again")  # a second run with enough there must leave it alone
    assert tc.record_hours(tmp_path, 1 / tc.TOY_HOUR, **short) == first
    assert video.read_bytes() == b"not played again"
    more = tc.record_hours(tmp_path, (first + 1) / tc.TOY_HOUR, **short)  # one frame more: world 51 is added
    assert set(tc.recorded_frames(tmp_path)) == {50, 51} and video.read_bytes() == b"not played again"
    (actions,) = tmp_path.glob("toy-*-000051.jsonl")
    actions.unlink()  # world 51 was interrupted: its video is there, its actions are not
    assert set(tc.recorded_frames(tmp_path)) == {50}
    assert tc.record_hours(tmp_path, (first + 1) / tc.TOY_HOUR, **short) == more
    assert set(tc.recorded_frames(tmp_path)) == {50, 51} and video.read_bytes() == b"not played again"


def test_cli_bench_and_players(tmp_path):
    out = subprocess.run([sys.executable, "tools/bench.py", "toycraft", "--seconds", "0.3", "--repeats", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ToyCraft" in out.stdout and "steps/s" in out.stdout
