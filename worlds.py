"""
worlds.py: the worlds a policy plays in, and VPT's item metric.

04_bc.py evaluates its policy zero-shot and 05_rl.py trains it with RL in the same worlds, through the same code:
- "toy": toycraft.ToyCraft, the laptop-sized Minecraft of this repository;
- "minerl": MineRL 1.0's HumanSurvival, real Minecraft, with the settings VPT played it at, behind ToyCraft's interface
  (MineRLEnv below; docs/paper-scale.md says how to install it).

Both take MineRL's action dict and return {"pov", "inventory"}, keep `.obtained` (which items of the diamond-pickaxe
sequence the episode has obtained so far) and `.steps`, and choose the next reset's world with `.seed(s)`.
`evaluate_items` is the paper's item metric (VPT §4.2, Fig. 4 and 7): play episodes, count which items each obtained.
"""

import importlib.util
import os
import time
import warnings

import numpy as np
import torch
from tqdm import tqdm

import common
import toycraft

# ---------------------------------------------------------------------------------------------------------------------
# Real Minecraft: MineRL 1.0's HumanSurvival
# ---------------------------------------------------------------------------------------------------------------------

# MineRL 1.0's HumanSurvival as VPT ran it (OpenAI's run_agent.py, ENV_KWARGS); every MineRL env here uses them.
MINERL_ENV_KWARGS = dict(resolution=[640, 360], fov_range=[70, 70], gamma_range=[2, 2], guiscale_range=[1, 1],
                         cursor_size_range=[16, 16])
_WOODS = ["oak", "spruce", "birch", "jungle", "acacia", "dark_oak"]
# Minecraft 1.16's item names for each item of common.ITEMS: every kind of log (stripped ones too) counts as a log,
# and every kind of planks as planks; the other names are Minecraft's own.
MINECRAFT_NAMES = {item: [item] for item in common.ITEMS}
MINECRAFT_NAMES["log"] = [f"{w}_log" for w in _WOODS] + [f"stripped_{w}_log" for w in _WOODS]
MINECRAFT_NAMES["planks"] = [f"{w}_planks" for w in _WOODS]


def minecraft_items(inventory):
    """MineRL's inventory ({name: 0-d array}, 976 names) -> {item of common.ITEMS: count}, variants summed."""
    return {item: sum(int(inventory[n]) for n in names if n in inventory) for item, names in MINECRAFT_NAMES.items()}


def _make_humansurvival():
    """The real environment (needs MineRL 1.0, JDK 8 and a display; see docs/paper-scale.md)."""
    try:
        from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival
    except ImportError as e:  # a UserError, not SystemExit: it travels from a worker process to the main one
        raise common.UserError(f"--env minerl needs MineRL 1.0 ({e}); install it as docs/paper-scale.md says") from None
    return HumanSurvival(**MINERL_ENV_KWARGS).make()


def check_playable(name):
    """Stop before any training if the world a run will play in cannot be made here (MineRL not installed)."""
    if name == "minerl" and _minerl_factory() is None and importlib.util.find_spec("minerl") is None:
        raise common.UserError("--env minerl needs MineRL 1.0 to play in, and it is not installed: install it as "
                               "docs/paper-scale.md says")


class MineRLEnv:
    """MineRL 1.0's HumanSurvival behind the interface toycraft.ToyCraft has, so that 04's evaluation and 05's RL run
    the same code on both: obs {"pov": (size, size, 3) uint8, "inventory": {item of common.ITEMS: count}}, `.obtained`,
    `.steps`, `.seed(s)` before `.reset()`, and the old gym 4-tuple from `.step()`.

    What it takes care of:
    - pov: MineRL's (360, 640, 3) array has negative strides; it is resized (INTER_LINEAR, as VPT) into a new array;
    - actions: every key sent as a Python int (Java parses them with parseInt), the camera as float32 [pitch, yaw];
    - HumanSurvival has no time limit: the episode ends after max_steps here;
    - death ends the episode (info["dead"]), and so does a lost connection (info["error"]): MineRL then returns a
      random observation, which is never used; the last real one is returned instead;
    - items: log and planks are the sum of their wood variants; `.obtained` as in toycraft (held at least once).
    `make` builds the underlying env (default: HumanSurvival with VPT's settings; tests pass a fake). The Java process
    starts at the first reset and is reused by later ones, each a new world (seeded if .seed was called)."""

    def __init__(self, seed=0, max_steps=12_000, size=128, make=None):
        self.env = (make or _make_humansurvival)()
        self._seed, self.max_steps, self.size = seed, max_steps, size
        self.steps, self.done, self.obtained = 0, True, np.zeros(len(common.ITEMS), dtype=bool)

    def seed(self, seed):
        self._seed = seed

    def _convert(self, obs):
        inventory = minecraft_items(obs["inventory"])
        self.obtained |= np.array([inventory[i] > 0 for i in common.ITEMS])
        return {"pov": common.resize_frame(np.ascontiguousarray(obs["pov"]), self.size), "inventory": inventory}

    def reset(self):
        self.env.seed(self._seed)  # MineRL forgets the seed after each reset: set it every time
        self.steps, self.done = 0, False
        self.obtained = np.zeros(len(common.ITEMS), dtype=bool)
        self.last = self._convert(self.env.reset())
        return self.last

    def step(self, action):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset()")
        sent = {k: int(np.asarray(action.get(k, 0)).reshape(-1)[0]) for k in common.MINERL_KEYS if k != "camera"}
        sent["camera"] = np.asarray(action.get("camera", (0, 0)), dtype=np.float32).reshape(-1)[:2]
        obs, _, done, info = self.env.step(sent)
        self.steps += 1
        info = dict(info)
        if "error" in info:
            # the connection to Minecraft failed: MineRL's observation is random noise, keep the last real one
            warnings.warn(f"MineRL: {info['error']}; the episode ends here", common.DataWarning)
            self.done = True
            return self.last, 0.0, True, info
        life = obs.get("life_stats", {}).get("life")
        info["dead"] = bool(done) or (life is not None and float(life) <= 0)
        self.last = self._convert(obs)
        self.done = info["dead"] or self.steps >= self.max_steps
        return self.last, 0.0, self.done, info

    def close(self):
        self.env.close()


def _minerl_factory():
    """NANOVPT_MINERL_ENV="module:function" names a function returning a MineRL-API env, used instead of
    HumanSurvival (another spec, or the tests' fake); it reaches worker processes through the environment."""
    spec = os.environ.get("NANOVPT_MINERL_ENV")
    if not spec:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def make_env(name, seed=0, max_steps=6000, size=64):
    """The world a policy plays in, with MineRL's interface: "toy" (toycraft.ToyCraft, rendered at `size`) or "minerl"
    (MineRL 1.0's HumanSurvival through MineRLEnv, frames resized to `size`). Either has `.obtained`, a bool per item
    of common.ITEMS (obtained at least once this episode), `.steps`, and `.seed(s)` to choose the next reset's world."""
    if name == "toy":
        return toycraft.ToyCraft(seed=seed, size=size, max_steps=max_steps)
    if name == "minerl":
        return MineRLEnv(seed=seed, max_steps=max_steps, size=size, make=_minerl_factory())
    raise ValueError(f"unknown env {name!r}: toy or minerl")

# ---------------------------------------------------------------------------------------------------------------------
# Rollouts: VPT's item metric
# ---------------------------------------------------------------------------------------------------------------------


# Where an episode stalls on the way to the stone pickaxe (VPT Fig. 7 counts items; these count the steps between
# them): crafting tables crafted and placed (the wooden pickaxe is crafted at a placed table), wooden pickaxes crafted,
# and steps hitting stone with a pickaxe in hand (which mines it) or without one (which never does). From the info
# dict ToyCraft returns; MineRL's does not say, and gives NaN.
FUNNEL = ["tables_crafted", "tables_placed", "wooden_pickaxes_crafted", "stone_hits_with_pickaxe",
          "stone_hits_without_pickaxe"]


def play_episodes(job):
    """Play one episode per seed with one copy of a policy, sampling its actions (None: uniformly random joint
    actions), `side_by_side` episodes at a time in one batch. Returns the items obtained in each episode, bool (n, 15),
    per-episode statistics {name: (n,) array} (gui_fraction, the fraction of its steps with a GUI open, from
    info["isGuiOpen"], and the FUNNEL counts; NaN where the env does not say), and the first episode's frames if asked.
    Envs are reused from one wave to the next (env.seed, then env.reset): a MineRL env is a Java process, so it plays
    its episodes one after another."""
    policy_path, env_name, seeds, steps, temperature, keep_frames = job
    torch.manual_seed(seeds[0])  # the policy's samples too: the same evaluation gives the same numbers
    model = common.load_model(policy_path, kind="policy") if policy_path else None
    if model is not None:
        model.set_temperature(temperature)  # for sampling only
    size = model.net_args["img_shape"][0] if model is not None else 64
    side_by_side = len(seeds) if env_name == "toy" else 1
    envs = [make_env(env_name, seed=s, max_steps=steps, size=size) for s in seeds[:side_by_side]]
    rng = np.random.default_rng(seeds[0])
    obtained, frames = [], []
    stats = {k: [] for k in ["gui_fraction"] + FUNNEL}
    for wave in range(0, len(seeds), side_by_side):
        playing = envs[:len(seeds[wave:wave + side_by_side])]
        for env, s in zip(playing, seeds[wave:]):
            env.seed(s)
        obs = [env.reset() for env in playing]
        n = len(playing)
        state = model.initial_state(n) if model else None
        first = torch.ones(n, 1, dtype=torch.bool)
        done = np.zeros(n, bool)
        in_gui, said = np.zeros(n), np.zeros(n)  # steps with a GUI open, steps whose info said either way
        funnel = {k: np.full(n, np.nan) for k in FUNNEL}  # NaN until the env's info says
        for _ in range(steps):
            if model is not None:
                povs = np.stack([common.resize_frame(o["pov"], size) for o in obs])
                x = torch.from_numpy(povs)[:, None]  # (n, 1, H, W, 3)
                with torch.no_grad():
                    pi, _, state = model(x, first, state)
                # sample the joint button class and the joint camera class (VPT §4.1)
                action = {k: v.numpy() for k, v in model.sample({k: v[:, 0] for k, v in pi.items()}).items()}
            else:
                action = {"buttons": rng.integers(common.N_BUTTON_CLASSES, size=n),
                          "camera": rng.integers(common.N_CAMERA_CLASSES, size=n)}
            env_actions = common.policy_to_env_action(action)
            first[:] = False
            for i, env in enumerate(playing):
                if not done[i]:
                    obs[i], _, done[i], info = env.step({k: v[i] for k, v in env_actions.items()})
                    if "isGuiOpen" in info:
                        in_gui[i] += bool(info["isGuiOpen"])
                        said[i] += 1
                    if "crafted" in info:
                        count_funnel(funnel, i, info)
            if keep_frames and wave == 0:
                frames.append(obs[0]["pov"])
            if done.all():
                break
        obtained += [env.obtained.copy() for env in playing]
        stats["gui_fraction"] += list(np.where(said > 0, in_gui / np.maximum(said, 1), np.nan))
        for k in FUNNEL:
            stats[k] += list(funnel[k])
    for env in envs:
        getattr(env, "close", lambda: None)()
    return (np.stack(obtained), {k: np.array(v) for k, v in stats.items()},
            np.stack(frames) if keep_frames else None)


def count_funnel(funnel, i, info):
    """Add one step of episode i to its FUNNEL counts, from ToyCraft's info (the craft it made, the block it placed,
    the block its attack hit and the item in hand)."""
    for k in FUNNEL:
        funnel[k][i] = np.nan_to_num(funnel[k][i])  # the env says: counts start at 0
    funnel["tables_crafted"][i] += info["crafted"] == "crafting_table"
    funnel["tables_placed"][i] += info["placed"] == "crafting_table"
    funnel["wooden_pickaxes_crafted"][i] += info["crafted"] == "wooden_pickaxe"
    if info["attacking"] == "stone":
        with_pickaxe = (info["held"] or "").endswith("_pickaxe")
        funnel["stone_hits_with_pickaxe" if with_pickaxe else "stone_hits_without_pickaxe"][i] += 1


def evaluate_items(policy_path, env_name, episodes, episode_steps, temperature=1.0, seed=0, workers=None,
                   video_path=None, desc="evaluate"):
    """VPT's item metric (Fig. 3, 4, 7): roll a policy out for `episodes` episodes of `episode_steps` steps in worker
    processes and count, per episode, whether each item of common.ITEMS was obtained. policy_path None: uniformly random
    actions. Evaluation worlds (seeds from 1,000,000) are never recorded in. Returns ({item: fraction of episodes},
    {"episodes", "episode_steps", "gui_fraction" (mean share of steps with a GUI open; None if the env does not say),
    "funnel" (the FUNNEL counts, mean per episode; None where the env does not say), "seconds"}); with video_path,
    one episode is saved as an mp4."""
    check_playable(env_name)
    workers = max(1, min(workers or os.cpu_count() or 1, episodes))
    seeds = [1_000_000 + seed * 10_000 + i for i in range(episodes)]
    jobs = [(str(policy_path) if policy_path else None, env_name, seeds[w::workers], episode_steps, temperature,
             w == 0 and video_path is not None) for w in range(workers)]
    t0 = time.time()
    # one thread per worker: the workers already use every core
    with common.worker_pool(workers, threads=1) as pool:
        results = list(tqdm(pool.imap(play_episodes, jobs), total=workers, desc=desc, unit="worker"))
    items = np.concatenate([r[0] for r in results])
    stats = {k: np.concatenate([r[1][k] for r in results]) for k in results[0][1]}
    if video_path is not None:
        common.write_video(video_path, results[0][2])
    rates = {item: float(items[:, i].mean()) for i, item in enumerate(common.ITEMS)}

    def mean(x):  # over the episodes whose env said; None if none did
        return None if np.isnan(x).all() else round(float(np.nanmean(x)), 4)
    # how much of its time the policy spends in a GUI: a policy that drifts there rarely leaves to craft again
    return rates, {"episodes": len(items), "episode_steps": episode_steps, "gui_fraction": mean(stats["gui_fraction"]),
                   "funnel": {k: mean(stats[k]) for k in FUNNEL}, "seconds": round(time.time() - t0, 1)}
