"""The IDM's pieces: labelling windows and their stitching, the loss, the metrics, and learning on a tiny problem."""

import math

import numpy as np
import pytest
import torch

import common as c
from conftest import load_stage

idm_stage = load_stage("01_idm.py")


def test_toy_recording_leaves_other_recordings_alone(tmp_path):
    # a folder that holds anyone else's recordings is theirs: 01 trains on it and records nothing into it
    (tmp_path / "cheeky-cornflower-setter-abc123.mp4").write_bytes(b"a contractor's video")
    idm_stage.ensure_toy_data(idm_stage.parse_args(["--data", str(tmp_path), "--hours", "0.01", "--workers", "1"]))
    assert [p.name for p in tmp_path.iterdir()] == ["cheeky-cornflower-setter-abc123.mp4"]


@pytest.mark.parametrize("n, window", [(1, 8), (8, 8), (9, 8), (100, 32), (128, 128), (1000, 128), (130, 128)])
def test_windows_label_every_frame_once_from_the_nearest_centre(n, window):
    plan = c.idm_windows(n, window)
    labelled = np.zeros(n, dtype=int)
    for start, lo, hi in plan:
        assert 0 <= start and start + min(window, n) <= n  # windows lie inside the video
        assert start <= lo <= hi <= start + window  # a window only labels frames it sees
        labelled[lo:hi] += 1
        centre = start + min(window, n) / 2
        for i in range(lo, hi):
            # no other window has its centre closer to frame i (by more than half a frame: ties go either way)
            nearest = min(abs(s + min(window, n) / 2 - (i + 0.5)) for s, _, _ in plan)
            assert abs(centre - (i + 0.5)) <= nearest + 0.5
    assert (labelled == 1).all()


def test_windows_of_the_paper():
    # 128-frame windows with stride 64: inner windows keep their middle 64 frames
    plan = c.idm_windows(512, 128)
    assert [s for s, _, _ in plan] == [0, 64, 128, 192, 256, 320, 384]
    assert plan[1][1:] == (96, 160) and plan[0][1:] == (0, 96) and plan[-1][1:] == (416, 512)


def test_idm_loss_by_hand():
    # one frame: every button 50/50 and every camera bin uniform -> NLL = 20 ln 2 + 2 ln 11
    pi = {"buttons": torch.full((1, 1, 20, 2), math.log(0.5)), "camera": torch.full((1, 1, 2, 11), -math.log(11))}
    buttons = torch.zeros(1, 1, 20, dtype=torch.int64)
    camera = torch.full((1, 1, 2), 5, dtype=torch.int64)
    loss, nll_b, nll_c = idm_stage.idm_loss(pi, buttons, camera)
    assert loss.item() == pytest.approx(20 * math.log(2) + 2 * math.log(11), rel=1e-6)
    # certain and right on the buttons: their part of the loss vanishes
    pi["buttons"] = torch.log(torch.tensor([1.0 - 1e-7, 1e-7])).expand(1, 1, 20, 2)
    assert idm_stage.idm_loss(pi, buttons, camera)[1] == pytest.approx(0.0, abs=1e-5)


def test_label_scores_by_hand():
    true_b = torch.zeros(4, 20, dtype=torch.int64)
    true_b[:2, 0] = 1  # button 0 pressed on frames 0 and 1; the others never
    pred_b = torch.zeros(4, 20, dtype=torch.int64)
    pred_b[[0, 2], 0] = 1  # right on frame 0, missed frame 1, wrong on frame 2: tp 1, fp 1, fn 1
    true_c = torch.full((4, 2), 5)
    true_c[0, 1] = 8
    degrees = torch.from_numpy(c.dequantize_camera(true_c.numpy())).float()
    scores = c.label_scores(pred_b, true_c, true_b, true_c, degrees)
    assert scores["per_button"][c.BUTTONS[0]] == {"accuracy": 0.5, "f1": 0.5, "pressed": 2}
    assert scores["button_f1"] == pytest.approx(0.5)  # the mean over buttons that occur: button 0 alone
    assert scores["button_accuracy"] == pytest.approx((0.5 + 19) / 20)
    assert scores["camera_accuracy"] == 1.0 and scores["camera_r2"] == pytest.approx(1.0)
    pred_c = true_c.clone()
    pred_c[0, 1] = 5  # the one motion missed: 7 of 8 axes right, and the camera explains nothing
    scores = c.label_scores(pred_b, pred_c, true_b, true_c, degrees)
    assert scores["camera_accuracy"] == pytest.approx(7 / 8) and scores["camera_r2"] < 0
    # split by GUI: the miss on frame 0 counts against GUI frames only
    scores = c.label_scores(pred_b, pred_c, true_b, true_c, degrees, gui_open=torch.tensor([1, 1, 0, 0]).bool())
    assert scores["camera_accuracy_gui"] == pytest.approx(3 / 4) and scores["camera_accuracy_world"] == 1.0
    scores = c.label_scores(pred_b, pred_c, true_b, true_c, degrees, gui_open=torch.zeros(4, dtype=torch.bool))
    assert scores["camera_accuracy_gui"] is None and scores["camera_accuracy_world"] == pytest.approx(7 / 8)


def test_split_holds_out_whole_recordings():
    paths = [f"r{i}.mp4" for i in range(20)]
    train, held = c.split_recordings(paths, 0.15, seed=0)
    assert len(held) == 3 and not set(train) & set(held) and sorted(train + held) == sorted(paths)


def test_idm_learns_a_visible_action():
    # a tiny world: frame brightness jumps when "attack" is pressed between two frames; the IDM must find it
    torch.manual_seed(0)
    model = c.make_model("idm", "toy", hidsize=64, attention_heads=2, n_recurrence_layers=1, img_shape=[8, 8, 8],
                         impala_chans=[8, 8, 8],
                         conv3d_params={"inchan": 3, "outchan": 8, "kernel_size": [5, 1, 1], "padding": [2, 0, 0]})
    g = torch.Generator().manual_seed(0)

    def batch(n=16, t=16):
        attack = torch.randint(0, 2, (n, t), generator=g)
        level = torch.cumsum(attack, 1) * 10 % 250  # the brightness of frame t+1 shows the action at t
        frames = torch.cat([torch.zeros(n, 1), level[:, :-1]], 1)[..., None, None, None].expand(n, t, 8, 8, 3)
        buttons = torch.zeros(n, t, 20, dtype=torch.int64)
        buttons[..., 0] = attack
        return frames.to(torch.uint8), buttons, torch.full((n, t, 2), 5, dtype=torch.int64)

    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(150):
        frames, buttons, camera = batch()
        pi, _, _ = model(frames, torch.zeros(frames.shape[:2], dtype=torch.bool), model.initial_state(16))
        loss, _, _ = idm_stage.idm_loss(pi, buttons, camera)
        opt.zero_grad()
        loss.backward()
        opt.step()
    frames, buttons, _ = batch(8)
    hits = [(c.idm_predict(model, frames[k], window=16)["buttons"][:-1, 0] == buttons[k, :-1, 0]).float().mean()
            for k in range(8)]
    # the last frame's action has no next frame to show it; every other one must be read off the video
    assert torch.stack(hits).mean() > 0.9


def test_warmup_cosine_schedule():
    lrs = [c.warmup_cosine(s, 1.0, 10, 110) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert lrs[60] == pytest.approx(0.55)  # half way through the decay: the middle of 1 and 0.1
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)  # a tenth at the end, and after
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_rare_presses_anchor_more_windows():
    # 1000 frames, "left" pressed in 5 of them (0.5%); with rare=0.1 those frames anchor windows 0.1 / 0.005 = 20
    # times as often as others: 100 / 1095 = 9% of all anchors, where uniform anchors put "left" in 8 / 200 = 4% of
    # 8-frame windows
    n, clip = 1000, 8
    buttons = torch.zeros(n, 20, dtype=torch.int64)
    buttons[::200, c.BUTTONS.index("left")] = 1
    buttons[:, c.BUTTONS.index("forward")] = 1  # common: never boosted
    rec = {"frames": torch.arange(n).view(n, 1, 1, 1).expand(n, 1, 1, 3), "buttons": buttons,
           "camera": torch.zeros(n, 2, dtype=torch.int64)}
    uniform = idm_stage.anchor_weights([rec], 0.0)[0]
    assert torch.equal(uniform, torch.ones(n))
    weights = idm_stage.anchor_weights([rec], 0.1)[0]
    assert weights[0] == pytest.approx(20.0) and weights[1] == 1.0 and weights.sum() == pytest.approx(995 + 100)

    def share_with_left(w):
        g = torch.Generator().manual_seed(0)
        frames, b, _ = idm_stage.sample_windows([rec], 2000, clip, g, w)
        assert frames.shape == (2000, clip, 1, 1, 3)
        # windows are consecutive frames, and their labels travel with them
        assert torch.equal(frames[:, 1:, 0, 0, 0] - frames[:, :-1, 0, 0, 0], torch.ones(2000, clip - 1, dtype=frames.dtype))
        assert torch.equal(b[..., c.BUTTONS.index("left")], (frames[..., 0, 0, 0] % 200 == 0).long())
        return b[..., c.BUTTONS.index("left")].amax(1).float().mean().item()

    assert share_with_left(None) == pytest.approx(0.04, abs=0.012)
    assert share_with_left([weights]) == pytest.approx(0.091 + 0.909 * 0.04, abs=0.02)
