"""Parity with OpenAI's own code: `VPT_REPO=/path/to/Video-Pre-Training make parity`.

The checks import OpenAI's classes from a local checkout of openai/Video-Pre-Training (MIT licensed) at test time;
none of its code is copied here. Without VPT_REPO every test here is skipped, saying why.

OpenAI's modules import `minerl`, `gym3` and `gym` at module level for type declarations only. MineRL needs Java and
gym3 is not on PyPI's current Pythons, so the tests put minimal stand-ins for exactly those imports (the types the
action spaces are declared with, MineRL's item map, gym's space constructors) in a temporary folder on sys.path. Their
`attrs` dependency is real (`make parity` installs it).

1. the action space: common.env_to_policy_action / policy_to_env_action against OpenAI's ActionTransformer and
   CameraHierarchicalMapping, both directions, on random actions that hit every special case;
2. the networks: OpenAI's MinecraftAgentPolicy at the 1x configuration with random weights, saved as .model +
   .weights, loaded with common.load_openai_model; both heads' log-probabilities and the value over two chunks with
   the memory carried and an episode start on a chunk's first frame; the IDM's structure against InverseActionPolicy;
3. an episode start in the middle of a chunk, where nanoVPT departs on purpose (OpenAI's code honours `first` only on
   a chunk's first frame): from that frame on, the outputs equal a fresh episode's.
"""

import importlib
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import common as c

VPT_REPO = os.environ.get("VPT_REPO")
pytestmark = pytest.mark.skipif(
    not VPT_REPO or not (Path(VPT_REPO) / "lib" / "policy.py").exists(),
    reason="set VPT_REPO to a local checkout of openai/Video-Pre-Training to compare with OpenAI's code (make parity)")

STAND_INS = {
    "gym3/__init__.py": "",
    "gym3/types.py": '''
class ValType:
    pass


class Discrete:
    def __init__(self, n):
        self.n = n


class Real:
    pass


class TensorType(ValType):
    def __init__(self, shape, eltype):
        self.shape, self.eltype, self.size = tuple(shape), eltype, 1
        for n in self.shape:
            self.size *= n


class DictType(ValType):
    def __init__(self, **spaces):
        self.spaces = spaces

    def items(self):
        return self.spaces.items()

    def __getitem__(self, key):
        return self.spaces[key]
''',
    "gym/__init__.py": "from . import spaces\n",
    "gym/spaces.py": '''
class Discrete:
    def __init__(self, n):
        self.n = n


class Box:
    def __init__(self, low, high, shape=None, dtype=None):
        self.low, self.high, self.shape = low, high, shape


class Dict:
    def __init__(self, spaces=None, **kwargs):
        self.spaces = spaces or kwargs
''',
    "minerl/__init__.py": "",
    "minerl/herobraine/__init__.py": "",
    "minerl/herobraine/hero/__init__.py": "",
    "minerl/herobraine/hero/mc.py": "MINERL_ITEM_MAP = []\n",
}


@pytest.fixture(scope="module")
def openai(tmp_path_factory):
    """OpenAI's modules, imported from VPT_REPO with the stand-ins beside them; sys.path and sys.modules restored."""
    pytest.importorskip("attr", reason="OpenAI's lib/actions.py needs attrs (make parity installs it)")
    stand_ins = tmp_path_factory.mktemp("stand_ins")
    for name, text in STAND_INS.items():
        (stand_ins / name).parent.mkdir(parents=True, exist_ok=True)
        (stand_ins / name).write_text(text)
    before = set(sys.modules)
    sys.path[:0] = [str(stand_ins), VPT_REPO]
    try:
        yield {name: importlib.import_module(name) for name in ["gym3.types", "agent", "lib.actions",
                                                                 "lib.action_mapping", "lib.policy"]}
    finally:
        sys.path.remove(str(stand_ins))
        sys.path.remove(VPT_REPO)
        for name in set(sys.modules) - before:
            del sys.modules[name]


# ---------------------------------------------------------------------------------------------------------------------
# 1. The action space
# ---------------------------------------------------------------------------------------------------------------------


def random_actions(n, seed=0):
    """MineRL-style actions that hit every special case: inventory with other keys, forward with back, left with
    right, several hotbar keys, the camera at rest, at every bin, beyond the outer bins and between bins."""
    rng = np.random.default_rng(seed)
    actions = {key: (rng.random(n) < 0.25).astype(np.int64) for key in c.BUTTONS}
    actions["inventory"] = (rng.random(n) < 0.1).astype(np.int64)
    camera = rng.normal(0, 6, (n, 2))
    camera[rng.random(n) < 0.3] = 0.0                       # at rest: the null camera class
    camera[rng.random(n) < 0.1] *= 10                        # beyond the outer bins (clipped to ±10)
    camera[rng.random(n) < 0.1] = rng.integers(-10, 11, (1, 2))  # whole degrees, some on bin edges
    actions["camera"] = camera.astype(np.float32)
    return actions


def test_joint_actions_equal_openais_both_ways(openai):
    agent = openai["agent"]
    transformer = openai["lib.actions"].ActionTransformer(**agent.ACTION_TRANSFORMER_KWARGS)
    mapping = openai["lib.action_mapping"].CameraHierarchicalMapping(n_camera_bins=11)
    env = random_actions(20_000)
    theirs = mapping.from_factored(transformer.env2policy({k: v.copy() for k, v in env.items()}))
    ours = c.env_to_policy_action(env)
    for key in ("buttons", "camera"):
        assert np.array_equal(ours[key], np.asarray(theirs[key]).reshape(-1)), key
    special = {"inventory and another key": (env["inventory"] == 1) & (env["attack"] == 1),
               "forward with back": (env["forward"] == 1) & (env["back"] == 1),
               "two hotbar keys": (env["hotbar.1"] == 1) & (env["hotbar.2"] == 1),
               "camera at rest": (env["camera"] == 0).all(1)}
    assert all(hit.sum() > 50 for hit in special.values()), {k: int(v.sum()) for k, v in special.items()}
    # and back: every joint class, as OpenAI's agent turns it into a MineRL action
    rng = np.random.default_rng(1)
    joint = {"buttons": rng.integers(0, c.N_BUTTON_CLASSES, 20_000), "camera": rng.integers(0, c.N_CAMERA_CLASSES,
                                                                                          20_000)}
    theirs = transformer.policy2env(mapping.to_factored({k: v[:, None] for k, v in joint.items()}))
    ours = c.policy_to_env_action(joint)
    for key in c.BUTTONS:
        assert np.array_equal(ours[key], np.asarray(theirs[key]).reshape(-1)), key
    assert np.allclose(ours["camera"], np.asarray(theirs["camera"]).reshape(-1, 2), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# 2. The contractor loader
# ---------------------------------------------------------------------------------------------------------------------


def write_openai_recording(tmp_path):
    """A recording in OpenAI's format, 40 lines and 41 frames (the screen after the last action), 640x360: attack
    stuck from the first line until it is pressed anew, hotbar changes by scroll wheel (no key), null lines (one of
    them with only a scroll), fractional mouse moves, keys that are not actions, and a GUI stretch with the pointer."""
    import cv2

    rng = np.random.default_rng(0)
    lines, hotbar = [], 0
    for t in range(40):
        keys = [k for k in ["key.keyboard.w", "key.keyboard.s", "key.keyboard.space", "key.keyboard.f3",
                            "key.keyboard.e", "key.keyboard.2"] if rng.random() < 0.2]
        dx, dy = (float(rng.normal(0, 20)), float(rng.normal(0, 8))) if rng.random() < 0.6 else (0.0, 0.0)
        buttons = [b for b in (0, 1, 2) if rng.random() < 0.25]
        new_buttons = []
        if t < 6:
            buttons, new_buttons = [0], ([0] if t == 0 else [])  # attack held over from before the recording
        if t == 6:
            buttons, new_buttons = [0], [0]  # pressed anew: attack counts from here
        if t in (12, 13, 30):
            keys, dx, dy, buttons, new_buttons = [], 0.0, 0.0, [], []  # null
        if t in (9, 13, 27):
            hotbar = (hotbar + 1) % 9  # the scroll wheel: the hotbar field changes without a key
        gui = 18 <= t < 26
        lines.append({"mouse": {"x": float(rng.uniform(0, 1280)), "y": float(rng.uniform(0, 720)), "dx": dx,
                                "dy": dy, "dwheel": 0, "buttons": buttons, "newButtons": new_buttons},
                      "keyboard": {"keys": keys, "newKeys": [], "chars": ""}, "isGuiOpen": gui, "hotbar": hotbar,
                      "tick": t})
    video = tmp_path / "rec.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 20, (640, 360))
    for _ in range(41):
        writer.write(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8))
    writer.release()
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return video, tmp_path / "rec.jsonl", lines


class _Queue:
    """What data_loader_worker needs of a multiprocessing queue, in this process."""

    def __init__(self, items=()):
        self.items = list(items)

    def get(self, timeout=None):
        return self.items.pop(0)

    def put(self, item, timeout=None):
        self.items.append(item)


def test_the_contractor_loader_equals_openais(openai, tmp_path):
    video, jsonl, lines = write_openai_recording(tmp_path)
    loader = importlib.import_module("data_loader")
    out = _Queue()
    loader.data_loader_worker(_Queue([(0, str(video), str(jsonl)), None]), out, type("E", (), {"is_set": lambda s:
                                                                                                  False})())
    theirs = [item for item in out.items if item is not None]
    ours = c.load_contractor_episode(video, size=128, skip_null=True)
    assert len(ours) == len(theirs) <= 40 - 3  # null lines dropped (13's scroll with it), by the same rule
    gui = ours.gui_open
    assert 0 < gui.sum() <= 8
    for t, (_, frame, action) in enumerate(theirs):
        for key in c.BUTTONS:
            assert ours.actions[key][t] == action.get(key, 0), (t, key)
        # departure: OpenAI's loader writes the camera into an integer array, truncating it; ours keeps the degrees
        assert np.array_equal(np.trunc(ours.actions["camera"][t] + 0.0), np.asarray(action["camera"], float)), t
        if not gui[t]:
            assert np.array_equal(ours.frames[t], frame), t
        else:  # the pointer is drawn by each in its own way: at most the pixels around it may differ
            assert (ours.frames[t] == frame).all(-1).mean() > 0.95, t
    kept = list(ours.frame_index)
    assert ours.actions["attack"][[kept.index(t) for t in range(6) if t in kept]].sum() == 0  # stuck until line 6
    assert ours.actions["attack"][kept.index(6)] == 1
    scrolled = [kept.index(t) for t in (9, 27) if t in kept]  # hotbar 0 -> 1 on line 9, 3 -> 4 on line 27
    assert scrolled and all(ours.actions[f"hotbar.{ours.records[i]['hotbar'] + 1}"][i] == 1 for i in scrolled)
    fractional = np.abs(ours.actions["camera"] - np.trunc(ours.actions["camera"])) > 0.01
    assert fractional.any()


# ---------------------------------------------------------------------------------------------------------------------
# 3. The networks
# ---------------------------------------------------------------------------------------------------------------------


def openai_model_files(tmp_path, kind, net_args, state_dict, temperature=1.0):
    """A .model (a pickled dict laid out as OpenAI's) and a .weights (their state dict, torch.save'd)."""
    spec = {"model": {"args": {"net": {"args": net_args}, "pi_head_opts": {"temperature": temperature}}}}
    if kind == "idm":
        spec["model"]["args"]["net"]["function"] = "ypt.model.inverse_action_model:InverseActionNet"
    (tmp_path / f"{kind}.model").write_bytes(pickle.dumps(spec))
    torch.save(state_dict, tmp_path / f"{kind}.weights")
    return tmp_path / f"{kind}.model", tmp_path / f"{kind}.weights"


def test_the_1x_policy_equals_openais_over_two_chunks_with_memory(openai, tmp_path):
    mapping = openai["lib.action_mapping"].CameraHierarchicalMapping(n_camera_bins=11)
    space = openai["gym3.types"].DictType(**mapping.get_action_space_update())
    net_args = c.preset_args("policy", "1x")
    torch.manual_seed(0)
    theirs = openai["lib.policy"].MinecraftAgentPolicy(space, net_args, {"temperature": 1.0}).eval()
    ours = c.load_openai_model(*openai_model_files(tmp_path, "policy", net_args, theirs.state_dict())).eval()
    torch.manual_seed(1)
    frames = torch.randint(0, 256, (2, 2, 16, 128, 128, 3), dtype=torch.uint8)  # (chunk, B, T, H, W, C)
    first = torch.zeros(2, 2, 16, dtype=torch.bool)
    first[:, :, 0] = True                   # both rows start an episode in the first chunk ...
    first[1, 1, 0] = True                   # ... and row 1 another one at the second chunk's first frame
    first[1, 0, 0] = False
    state_t, state_o = theirs.initial_state(2), ours.initial_state(2)
    with torch.no_grad():
        for k in range(2):
            (pi_t, v_t, _), state_t = theirs({"img": frames[k]}, first[k], state_t)
            pi_o, v_o, state_o = ours(frames[k], first[k], state_o)
            for head in ("buttons", "camera"):
                assert torch.allclose(pi_o[head], pi_t[head][:, :, 0], atol=1e-4), (k, head)
            assert torch.allclose(v_o, v_t[..., 0], atol=1e-4), k


def test_the_idm_has_openais_structure(openai, tmp_path):
    mapping = openai["lib.action_mapping"].IDMActionMapping(n_camera_bins=11)
    space = openai["gym3.types"].DictType(**mapping.get_action_space_update())
    # reduced width and window; the memory as long as the window, as in the released 4x IDM (128 and 128): OpenAI's
    # IDM would otherwise also attend to its zero-filled initial memory, which ours, without memory, has not
    net_args = c.preset_args("idm", "4x", hidsize=256, impala_width=2, attention_heads=4, timesteps=16,
                             attention_memory_size=16)
    torch.manual_seed(0)
    theirs = openai["lib.policy"].InverseActionPolicy(space, pi_head_kwargs={"temperature": 1.0},
                                                      idm_net_kwargs=net_args).eval()
    ours = c.load_openai_model(*openai_model_files(tmp_path, "idm", net_args, theirs.state_dict())).eval()
    assert ours.kind == "idm"
    frames = torch.randint(0, 256, (1, 16, 128, 128, 3), dtype=torch.uint8)
    first = torch.zeros(1, 16, dtype=torch.bool)
    with torch.no_grad():
        (pi_t, _, _), _ = theirs({"img": frames}, first, theirs.initial_state(1))
        pi_o, _, _ = ours(frames, first, ours.initial_state(1))
    for head in ("buttons", "camera"):
        assert torch.allclose(pi_o[head], pi_t[head], atol=1e-4), head


# ---------------------------------------------------------------------------------------------------------------------
# 4. An episode start in mid-chunk: a departure, on purpose
# ---------------------------------------------------------------------------------------------------------------------


def test_an_episode_start_in_mid_chunk_forgets_the_episode_before(openai):
    torch.manual_seed(0)
    model = c.make_model("policy", "toy").eval()
    frames = torch.randint(0, 256, (1, 24, 64, 64, 3), dtype=torch.uint8)
    first = torch.zeros(1, 24, dtype=torch.bool)
    first[0, 0] = first[0, 10] = True  # a new episode at frame 10 of the chunk
    fresh_first = torch.zeros(1, 14, dtype=torch.bool)
    fresh_first[0, 0] = True
    with torch.no_grad():
        pi, value, _ = model(frames, first, model.initial_state(1))
        pi_fresh, value_fresh, _ = model(frames[:, 10:], fresh_first, model.initial_state(1))
    for head in ("buttons", "camera"):
        assert torch.allclose(pi[head][:, 10:], pi_fresh[head], atol=1e-5), head
    assert torch.allclose(value[:, 10:], value_fresh, atol=1e-5)
