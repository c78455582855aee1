"""04_bc.py: the loss and its masks, memory carried across chunks, the recording streams, and the item counting."""

import math

import numpy as np
import pytest
import torch

import common as c
import worlds
from conftest import load_stage

bc = load_stage("04_bc.py")


def test_bc_loss_counts_the_camera_only_where_it_moved():
    # uniform heads: every frame costs ln 8641 for its buttons, plus ln 121 where the camera moved
    pi = {"buttons": torch.full((1, 3, c.N_BUTTON_CLASSES), -math.log(c.N_BUTTON_CLASSES)),
          "camera": torch.full((1, 3, c.N_CAMERA_CLASSES), -math.log(c.N_CAMERA_CLASSES))}
    buttons = torch.tensor([[0, 5, c.INVENTORY_CLASS]])
    camera = torch.tensor([[c.NULL_CAMERA_CLASS, 7, c.NULL_CAMERA_CLASS]])  # only the middle frame moved the mouse
    loss, nll_b, nll_c = bc.bc_loss(pi, buttons, camera)
    assert loss.item() == pytest.approx(math.log(c.N_BUTTON_CLASSES) + math.log(c.N_CAMERA_CLASSES) / 3, rel=1e-6)
    assert nll_c == pytest.approx(math.log(c.N_CAMERA_CLASSES) / 3, rel=1e-6)
    # a camera head that is certain of the wrong class costs nothing on frames where the mouse did not move
    pi["camera"] = torch.full((1, 3, c.N_CAMERA_CLASSES), -1e9)
    pi["camera"][..., 7] = 0.0
    assert bc.bc_loss(pi, buttons, camera)[2] == pytest.approx(0.0)


def test_null_frames_are_skipped_and_targets_are_joint_classes(tmp_path):
    actions = c.minerl_noop(6)
    actions["attack"][[1, 3]] = 1
    actions["camera"][4] = (0.0, 2.0)
    video = c.write_contractor_episode(tmp_path / "r.mp4", np.zeros((6, 16, 16, 3), np.uint8), actions)
    path, frames, (buttons, camera), _ = bc.load_for_bc((video, 16, None))
    assert len(frames) == 3  # frames 0, 2 and 5 did nothing
    expected = c.env_to_policy_action({k: v[[1, 3, 4]] for k, v in actions.items()})
    assert (buttons == expected["buttons"]).all() and (camera == expected["camera"]).all()
    assert camera[0] == c.NULL_CAMERA_CLASS and camera[2] != c.NULL_CAMERA_CLASS


def test_early_game_reads_only_the_first_frames(tmp_path):
    # frame brightness = 20 x its index, so that the frames kept can be traced back
    frames = (20 * np.arange(8, dtype=np.uint8))[:, None, None, None].repeat(16, 1).repeat(16, 2).repeat(3, 3)
    actions = c.minerl_noop(8)
    actions["forward"][:] = 1
    actions["forward"][2] = 0  # a null frame inside the early game is still skipped
    actions["jump"][5:] = 1  # the frames after the cut are the only ones that jump
    video = c.write_contractor_episode(tmp_path / "r.mp4", frames, actions, codec="FFV1")
    _, early, (buttons, _), _ = bc.load_for_bc((video, 16, 5))
    assert early[:, 0, 0, 0].tolist() == [0, 20, 60, 80]
    assert (buttons == c.env_to_policy_action({k: v[[0, 1, 3, 4]] for k, v in actions.items()})["buttons"]).all()
    _, everything, _, _ = bc.load_for_bc((video, 16, None))
    assert len(everything) == 7
    with pytest.raises(SystemExit):  # an early game of no frames is refused by name, not trained on as nothing
        bc.parse_args(["--early-game", "0"])


def _policy():
    torch.manual_seed(0)
    return c.make_model("policy", "toy", img_shape=[16, 16, 3], hidsize=32, attention_heads=2, impala_chans=[4, 4, 4],
                        attention_memory_size=24, timesteps=8).eval()


def test_memory_carried_across_chunks_equals_one_long_sequence():
    model = _policy()
    frames = torch.randint(0, 255, (2, 24, 16, 16, 3), dtype=torch.uint8)
    first = torch.zeros(2, 24, dtype=torch.bool)
    first[:, 0] = True
    first[1, 13] = True  # a new recording starts mid-stream in row 1
    with torch.no_grad():
        whole, _, _ = model(frames, first, model.initial_state(2))
        state, parts = model.initial_state(2), []
        for s in range(0, 24, 8):
            pi, _, state = model(frames[:, s:s + 8], first[:, s:s + 8], bc.detach_state(state))
            parts.append(pi["buttons"])
    assert torch.allclose(torch.cat(parts, 1), whole["buttons"], atol=1e-5)
    # and the memory really is used: without it, the later chunks come out different
    with torch.no_grad():
        alone, _, _ = model(frames[:, 8:16], first[:, 8:16], model.initial_state(2))
    assert not torch.allclose(alone["buttons"], whole["buttons"][:, 8:16], atol=1e-3)


def test_streams_play_recordings_back_to_back_and_mark_their_starts(tmp_path):
    lengths = [5, 12, 3]
    paths = []
    for r, n in enumerate(lengths):
        # frame brightness = 10 * recording + position, so that every frame can be traced back
        frames = (10 * r + np.arange(n, dtype=np.uint8))[:, None, None, None].repeat(16, 1).repeat(16, 2).repeat(3, 3)
        actions = c.minerl_noop(n)
        actions["forward"][:] = 1
        paths.append(c.write_contractor_episode(tmp_path / f"r{r}.mp4", frames, actions, codec="FFV1"))
    streams = bc.RecordingStreams(paths, batch=1, chunk=7, size=16, workers=0, seed=0)
    seen, firsts = [], []
    for _ in range(6):  # 42 frames: every recording twice, in two random orders
        frames, first, buttons, _ = streams.next_chunk()
        seen += frames[0, :, 0, 0, 0].tolist()
        firsts += first[0].tolist()
    # cut the stream at each first=True: each piece is one whole recording, frames in order
    starts = [i for i, f in enumerate(firsts) if f] + [len(seen)]
    pieces = [seen[a:b] for a, b in zip(starts, starts[1:])]
    assert starts[0] == 0
    for piece in pieces[:-1]:
        r = piece[0] // 10
        assert piece == [10 * r + i for i in range(lengths[r])]
    assert sorted(p[0] // 10 for p in pieces[:3]) == [0, 1, 2]  # one epoch visits every recording once
    assert (buttons == c.env_to_policy_action({"forward": np.ones(1)})["buttons"][0]).all()


class _FakeEnv:
    """Obtains a log at step 2 and planks at step 4 if its world seed is even; nothing otherwise."""

    def __init__(self, seed, max_steps):
        self.world, self.max_steps, self.t = seed, max_steps, 0
        self.obtained = np.zeros(len(c.ITEMS), bool)

    def seed(self, seed):
        self.world = seed

    def reset(self):
        self.t, self.obtained = 0, np.zeros(len(c.ITEMS), bool)
        return {"pov": np.zeros((64, 64, 3), np.uint8)}

    def step(self, action):
        self.t += 1
        if self.world % 2 == 0 and self.t >= 2:
            self.obtained[c.ITEMS.index("log")] = True
        if self.world % 2 == 0 and self.t >= 4:
            self.obtained[c.ITEMS.index("planks")] = True
        # world 4 opens a GUI from its second step on, and hits stone by hand on its first two; the others do not say
        info = {"isGuiOpen": self.t >= 2, "crafted": None, "placed": None,
                "attacking": "stone" if self.t <= 2 else None, "held": None} if self.world == 4 else {}
        return {"pov": np.zeros((64, 64, 3), np.uint8)}, 0.0, self.t >= self.max_steps, info


def test_rollouts_count_items_per_episode(monkeypatch):
    made = []
    monkeypatch.setattr(worlds, "make_env", lambda name, seed, max_steps, size: made.append(seed) or
                        _FakeEnv(seed, max_steps))
    log, planks = c.ITEMS.index("log"), c.ITEMS.index("planks")
    # toy: all episodes side by side; minerl: one env (a Java process) playing its episodes one after another
    for env_name, envs_made in [("toy", 4), ("minerl", 1)]:
        made.clear()
        items, stats, frames = worlds.play_episodes((None, env_name, [0, 1, 2, 4], 3, 1.0, True))
        assert items.shape == (4, len(c.ITEMS)) and frames.shape == (3, 64, 64, 3) and len(made) == envs_made
        gui, hits = stats["gui_fraction"], stats["stone_hits_without_pickaxe"]
        assert np.isnan(gui[:3]).all() and gui[3] == pytest.approx(2 / 3)  # in a GUI on 2 of its 3 steps
        assert np.isnan(hits[:3]).all() and hits[3] == 2  # world 4 also says what it hit: stone, by hand, twice
        assert items[:, log].tolist() == [True, False, True, True]
        assert not items[:, planks].any()  # 3 steps: planks would have come at step 4


def test_the_temperature_changes_sampling_only():
    # OpenAI's heads divide the logits by the sampling temperature in forward, so a .model's temperature (2 for their
    # policies) would flatten the distribution that BC trains; here the loss is the same at any temperature
    model = _policy()
    frames = torch.randint(0, 255, (2, 4, 16, 16, 3), dtype=torch.uint8)
    first = torch.zeros(2, 4, dtype=torch.bool)
    targets = torch.randint(0, c.N_BUTTON_CLASSES, (2, 4)), torch.randint(0, c.N_CAMERA_CLASSES, (2, 4))
    with torch.no_grad():
        cold, _, _ = model(frames, first, model.initial_state(2))
        model.set_temperature(2.0)
        hot, _, _ = model(frames, first, model.initial_state(2))
    assert bc.bc_loss(hot, *targets)[0] == bc.bc_loss(cold, *targets)[0]
    # ... and sampling follows softmax(logits / T): two classes with logits 2 and 0
    pi = {"camera": torch.log_softmax(torch.tensor([[2.0, 0.0]]).repeat(40_000, 1), -1)}
    for temperature in (1.0, 2.0):
        model.set_temperature(temperature)
        torch.manual_seed(0)
        share = (model.sample(pi)["camera"] == 0).float().mean().item()
        assert share == pytest.approx(1 / (1 + math.exp(-2 / temperature)), abs=0.01)
