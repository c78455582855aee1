"""A stand-in for MineRL 1.0's HumanSurvival env with its real interface (observation and action spaces as MineRL 1.0's HumanSurvival declares them), for testing the
adapter without Java: the 24-key action dict, checked as the Java side would parse it; a 360x640 `pov` with negative strides;
an inventory of Minecraft item names as 0-d arrays; the old gym 4-tuple; `seed()` forgotten after each reset; a random
observation with info["error"] when the connection fails; RuntimeError when stepped after done.

Its world is scripted, not simulated: items arrive at fixed steps (oak and birch logs, oak and spruce planks, a stick,
dirt), so a test knows what the inventory holds at every step. `make()` is what NANOVPT_MINERL_ENV names
("fake_minerl:make"); FAKE_MINERL_DIE_AT / FAKE_MINERL_ERROR_AT set a step to die or to lose the connection at.
"""

import os

import numpy as np

KEYS = sorted(["ESC", "attack", "back", "camera", "drop", "forward", "inventory", "jump", "left", "pickItem", "right",
               "sneak", "sprint", "swapHands", "use"] + [f"hotbar.{i}" for i in range(1, 10)])
NAMES = ["oak_log", "birch_log", "oak_planks", "spruce_planks", "stick", "crafting_table", "dirt", "cobblestone"]
# step -> {name: count}: what the scripted player holds from that step on
SCRIPT = {2: {"oak_log": 1}, 3: {"birch_log": 2}, 5: {"oak_planks": 4, "oak_log": 0}, 6: {"spruce_planks": 4},
          7: {"stick": 4, "dirt": 1}}


class FakeHumanSurvival:
    def __init__(self, die_at=None, error_at=None):
        self.die_at, self.error_at = die_at, error_at
        self._seed, self.seeds_used, self.actions, self.closed = None, [], [], False
        self.done = True

    def seed(self, seed):
        self._seed = seed

    def reset(self):
        self.seeds_used.append(self._seed)
        self.world = self._seed if self._seed is not None else int(np.random.randint(1 << 30))
        self._seed = None  # MineRL clears the seed after each reset
        self.t, self.done, self.held = 0, False, {n: 0 for n in NAMES}
        return self._obs()

    def _obs(self, life=20.0):
        # a (360, 640, 3) frame stored upside down and flipped back: a view with negative strides, like MineRL's
        y, x = np.mgrid[0:360, 0:640]
        base = np.stack([(x + 7 * self.t) % 256, (y + self.world) % 256, (x * y // 97) % 256], -1).astype(np.uint8)
        return {"pov": base[::-1].copy()[::-1],
                "inventory": {n: np.array(self.held[n], dtype=np.int32) for n in NAMES},
                "life_stats": {"life": np.array(life, dtype=np.float32), "is_alive": np.array(life > 0)},
                "location_stats": {"xpos": np.array(0.0), "yaw": np.array(0.0)}}

    def step(self, action):
        if self.done:
            raise RuntimeError("Attempted to step an environment server with done=True")
        assert set(action) <= set(KEYS), f"unknown keys {set(action) - set(KEYS)}"
        for k, v in action.items():
            if k == "camera":
                assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (2,), f"camera {v!r}"
            else:
                # the Java side parses "key value" with Integer.parseInt: bools and floats would not do
                assert isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)), f"{k}: {v!r}"
                assert v in (0, 1), f"{k}: {v!r}"
        self.actions.append(action)
        self.t += 1
        self.held.update(SCRIPT.get(self.t, {}))
        if self.error_at is not None and self.t >= self.error_at:
            self.done = True
            noise = np.random.randint(0, 256, (360, 640, 3), dtype=np.uint8)
            return ({"pov": noise, "inventory": {n: np.array(2000, dtype=np.int32) for n in NAMES}}, 0.0, True,
                    {"error": "Connection timed out!"})
        if self.die_at is not None and self.t >= self.die_at:
            self.done = True
            return self._obs(life=0.0), 0.0, True, {"isGuiOpen": False}
        return self._obs(), 0.0, False, {"isGuiOpen": False, "location_stats": {}}

    def close(self):
        self.closed = True


def make_without_minerl():
    """For NANOVPT_MINERL_ENV="fake_minerl:make_without_minerl": the env cannot be made, as where MineRL is missing."""
    import common  # loaded already: the worker that calls this runs worlds.py

    raise common.UserError("--env minerl needs MineRL 1.0 (No module named 'minerl')")


def make():
    """For NANOVPT_MINERL_ENV="fake_minerl:make"."""
    die, err = os.environ.get("FAKE_MINERL_DIE_AT"), os.environ.get("FAKE_MINERL_ERROR_AT")
    return FakeHumanSurvival(die_at=int(die) if die else None, error_at=int(err) if err else None)
