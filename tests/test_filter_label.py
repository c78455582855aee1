"""02_filter.py and 03_label.py: segment smoothing, the labels file, pseudo-labelled segments that point into their
source video, and the labels' round trip through the contractor format."""

import json

import numpy as np
import pytest
import torch

import common as c
from conftest import load_stage

filter_stage = load_stage("02_filter.py")
label_stage = load_stage("03_label.py")


# --------------------------------------------------------------------------------------------------- 02: segments


def test_smooth_scores_is_a_centred_mean_shrinking_at_the_ends():
    s = filter_stage.smooth_scores([0, 0, 3, 0, 0, 6], 3)
    assert s.tolist() == pytest.approx([0, 1, 1, 1, 2, 3])  # the ends average over the 2 frames there are


def test_segments_ignore_isolated_mistakes_and_drop_short_runs():
    p = np.ones(100)
    p[40] = 0.0  # one frame the classifier got wrong inside a clean stretch: smoothed away
    p[60:70] = 0.0  # a real unclean stretch: cut
    p[95] = 0.0
    segments = filter_stage.clean_segments(p, window=5, threshold=0.5, min_length=20)
    # at threshold 0.5 a centred mean leaves a step from clean to unclean where it was
    assert segments == [(0, 60), (70, 100)]
    # an isolated clean spike in unclean video is not kept, and runs shorter than min_length are dropped
    q = np.zeros(100)
    q[50] = 1.0
    q[10:25] = 1.0
    assert filter_stage.clean_segments(q, 5, 0.5, min_length=10) == [(10, 25)]
    assert filter_stage.clean_segments(q, 5, 0.5, min_length=20) == []
    assert filter_stage.clean_segments(np.ones(30), 5, 0.5, 10) == [(0, 30)]


def test_binary_scores_clean_is_positive():
    pred = np.array([1, 1, 0, 0, 1], bool)
    true = np.array([1, 0, 0, 1, 1], bool)
    assert filter_stage.binary_scores(pred, true) == {"accuracy": 0.6, "precision": pytest.approx(2 / 3),
                                                      "recall": pytest.approx(2 / 3)}


def test_labels_file_round_trip_and_errors(tmp_path):
    video = c.write_contractor_episode(tmp_path / "v.mp4", np.zeros((6, 16, 16, 3), np.uint8), c.minerl_noop(5))
    csv_path = tmp_path / "labels.csv"
    rows = [(video, 0, 1, f"{csv_path}:2"), (video, 3, 0, f"{csv_path}:3")]
    filter_stage.write_labels(rows, csv_path, tmp_path)
    assert csv_path.read_text().splitlines() == ["video,frame,label", "v.mp4,0,clean", "v.mp4,3,unclean"]
    assert filter_stage.read_labels(csv_path, tmp_path) == rows
    frames, labels, owners = filter_stage.labelled_frames(rows, 16)
    assert frames.shape == (2, 16, 16, 3) and labels.tolist() == [1, 0] and set(owners) == {str(video)}
    # a label past the video's end (6 frames): that one is left out, named by its line, and the others kept
    with pytest.warns(c.DataWarning, match=r"labels\.csv:4: frame 9 left out, and 0 more of the 3 labelled frames"):
        frames, labels, _ = filter_stage.labelled_frames(rows + [(video, 9, 1, f"{csv_path}:4")], 16)
    assert labels.tolist() == [1, 0]

    def error(text):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(c.UserError) as e:
            filter_stage.read_labels(tmp_path / "bad.csv", tmp_path)
        return str(e.value)

    assert "bad.csv:3" in error("video,frame,label\nv.mp4,0,clean\nv.mp4,1,maybe\n")  # names the line
    assert "does not exist" in error("video,frame,label\nnope.mp4,0,clean\n")
    assert "whole number" in error("video,frame,label\nv.mp4,x,clean\n")
    assert "header" in error("clip,t,y\nv.mp4,0,clean\n")
    assert "bad.csv:2: frame -1 is negative" in error("video,frame,label\nv.mp4,-1,clean\n")
    assert "bad.csv:3: not valid CSV" in error('video,frame,label\nv.mp4,0,clean\nv.mp4,1,"clean\n')  # open quote


def test_toy_web_is_topped_up_but_other_video_left_alone(tmp_path):
    args = filter_stage.parse_args(["--data", str(tmp_path), "--hours", str(1 / 72_000), "--workers", "1"])
    (tmp_path / "mine.mp4").write_bytes(b"someone's own video")
    filter_stage.ensure_toy_web(args)  # not toycraft's folder: nothing is recorded into it
    assert [p.name for p in tmp_path.iterdir()] == ["mine.mp4"]
    (tmp_path / "mine.mp4").unlink()
    (tmp_path / "web-100000.mp4").write_bytes(b"interrupted")  # toycraft's, cut off before its truth was written
    filter_stage.ensure_toy_web(args)
    assert (tmp_path / "web-100000.truth.jsonl").exists()
    assert (tmp_path / "web-100000.mp4").read_bytes() != b"interrupted"  # played again, not trusted


def test_split_by_video_never_shares_a_video():
    owners = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4 + ["d"] * 2)
    train, held = filter_stage.split_by_video(owners, 0.25, seed=0)
    assert not set(owners[train]) & set(owners[held]) and held.any() and train.any() and (train ^ held).all()


def test_classifier_learns_a_corner_logo():
    # the toy internet's logos and face cams sit in a corner: a patch there must be found from a few hundred frames
    rng = np.random.default_rng(0)
    frames = rng.integers(60, 200, (400, 32, 32, 3), dtype=np.uint8)
    labels = rng.random(400) < 0.5
    frames[~labels, 2:10, 22:30] = (255, 0, 255)
    args = filter_stage.parse_args(["--epochs", "4", "--batch", "32"])
    model = filter_stage.CleanClassifier(size=32, width=8)
    torch.manual_seed(0)
    filter_stage.train(args, model, frames[:300], labels[:300].astype(np.float32), torch.device("cpu"))
    assert ((filter_stage.predict(model, frames[300:], "cpu") > 0.5) == labels[300:]).mean() > 0.95


# --------------------------------------------------------------------------------------------------- 03: labels


def test_idm_labels_survive_the_contractor_format(tmp_path):
    # every (pitch bin, yaw bin) and a mix of buttons: written as a pseudo-labelled jsonl, read back as 04 reads it
    bins = np.array([(p, y) for p in range(11) for y in range(11)])
    rng = np.random.default_rng(0)
    buttons = (rng.random((len(bins), 20)) < 0.2).astype(np.int64)
    pred = {"buttons": torch.from_numpy(buttons), "camera": torch.from_numpy(bins)}
    jsonl = c.write_actions_jsonl(tmp_path / "seg.jsonl", label_stage.to_env_actions(pred))
    actions, _ = c.read_actions(jsonl)
    b, cam = c.idm_targets(actions)
    assert (cam.numpy() == bins).all()
    # the hotbar keys the IDM predicts come back; the loader's scroll-wheel repair adds none of its own
    assert (b.numpy() == buttons).all()


def _source_video(path, n=60, size=32):
    """A video whose frame t is filled with grey level 4t, so that a frame's index can be read off its pixels."""
    frames = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None] * 4, size, 1).repeat(size, 2).repeat(3, 3)
    return c.write_contractor_episode(path, frames, c.minerl_noop(n), codec="FFV1")


def test_segment_points_into_its_source_video(tmp_path):
    video = _source_video(tmp_path / "web" / "w.mp4")
    out = tmp_path / "labeled"
    actions = c.minerl_noop(15)
    actions["forward"][:] = 1  # not null, so that nothing is skipped
    stem = label_stage.segment_stem(out, video, 20, 35)
    c.write_actions_jsonl(stem.with_suffix(".jsonl"), actions)
    (out / f"{stem.name}-options.json").write_text(json.dumps({"video": "../web/w.mp4", "start": 20, "end": 35}))
    assert c.find_recordings(out) == [stem.with_suffix(".jsonl")]
    ep = c.load_contractor_episode(stem.with_suffix(".jsonl"), size=32)
    assert len(ep) == 15 and ep.frame_index.tolist() == list(range(20, 35))
    assert (ep.frames[:, 0, 0, 0].astype(int) == 4 * np.arange(20, 35)).all()  # the right frames, in step
    # a segment without its pointer says what is missing
    (out / f"{stem.name}-options.json").unlink()
    with pytest.raises(c.RecordingError, match="no video for these actions"):
        c.load_contractor_episode(stem.with_suffix(".jsonl"), size=32)


def _tiny_idm(path, window=8):
    model = c.make_model("idm", "toy", hidsize=32, attention_heads=2, n_recurrence_layers=1, img_shape=[32, 32, 4],
                         impala_chans=[4, 4, 4], impala_width=1,
                         conv3d_params={"inchan": 3, "outchan": 4, "kernel_size": [5, 1, 1], "padding": [2, 0, 0]})
    args = label_stage.parse_args([])
    args.clip = window
    c.save_checkpoint(path, model, args=args)


def test_label_run_skips_bad_segments_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = _source_video(tmp_path / "web" / "w.mp4")
    (tmp_path / "web" / "broken.mp4").write_bytes(b"not a video")
    _tiny_idm(tmp_path / "idm.pt")
    segments = {"segments": [{"video": str(video), "start": 0, "end": 30},
                             {"video": str(video), "start": 40, "end": 45},  # shorter than the window
                             {"video": str(tmp_path / "web" / "broken.mp4"), "start": 0, "end": 20}]}
    (tmp_path / "segments.json").write_text(json.dumps(segments))
    argv = ["03_label.py", "--idm", "idm.pt", "--segments", "segments.json", "--env", "minerl"]
    monkeypatch.setattr("sys.argv", argv)
    label_stage.main()
    metrics = json.loads((tmp_path / "runs" / "label" / "metrics.json").read_text())
    assert metrics["segments"] == 1 and metrics["frames"] == 30 and len(metrics["problems"]) == 2
    assert any("shorter" in why for _, why in metrics["problems"])
    assert any("broken.mp4" in why for _, why in metrics["problems"])
    ep = c.load_contractor_episode(tmp_path / "data" / "labeled" / "w_0000000-0000030.jsonl", size=32,
                                   skip_null=False)
    assert len(ep) == 30 and ep.frames.shape == (30, 32, 32, 3)
    # a second run labels nothing again
    label_stage.main()
    metrics = json.loads((tmp_path / "runs" / "label" / "metrics.json").read_text())
    assert metrics["segments_already_labelled"] == 1 and metrics["frames_labelled_now"] == 0


def test_label_run_relabels_for_a_new_idm_and_drops_stale_segments(tmp_path, monkeypatch, capsys):
    # what `make toy` relies on when 01 or 02 ran again: labels of another IDM, and segments 02 no longer keeps, go
    monkeypatch.chdir(tmp_path)
    video = _source_video(tmp_path / "web" / "w.mp4")
    _tiny_idm(tmp_path / "idm.pt")
    spans = [(0, 30), (30, 50)]
    (tmp_path / "segments.json").write_text(json.dumps({"segments": [{"video": str(video), "start": s, "end": e}
                                                                      for s, e in spans]}))
    monkeypatch.setattr("sys.argv", ["03_label.py", "--idm", "idm.pt", "--segments", "segments.json", "--env",
                                     "minerl"])
    label_stage.main()
    out = tmp_path / "data" / "labeled"
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["w_0000000-0000030.jsonl", "w_0000030-0000050.jsonl"]
    torch.manual_seed(1)
    _tiny_idm(tmp_path / "idm.pt")  # retrained: other weights, same path
    (tmp_path / "segments.json").write_text(json.dumps({"segments": [{"video": str(video), "start": 0, "end": 30}]}))
    capsys.readouterr()
    label_stage.main()
    metrics = json.loads((tmp_path / "runs" / "label" / "metrics.json").read_text())
    assert metrics["segments_already_labelled"] == 0 and metrics["frames_labelled_now"] == 30
    assert metrics["stale_segments_removed"] == 1
    # said on the console, naming what goes, before it goes
    assert "removing 1 labelled segments from data/labeled that segments.json does not list" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("[!.]*")) == ["w_0000000-0000030-options.json", "w_0000000-0000030.jsonl"]
    assert json.loads((out / "w_0000000-0000030-options.json").read_text())["idm_sha256"] == metrics["idm_sha256"]
    # a recording that 03 did not write is never touched
    (out / "mine-options.json").write_text(json.dumps({"video": "../web/w.mp4", "start": 0, "end": 10}))
    label_stage.main()
    assert (out / "mine-options.json").exists()


def test_label_run_refuses_a_missing_idm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["03_label.py", "--idm", "nothing.pt"])
    with pytest.raises(c.UserError, match="nothing.pt: no such checkpoint"):
        label_stage.main()


def test_label_ranks_share_out_the_videos(tmp_path, monkeypatch):
    # under torchrun, rank r of N labels videos r, r+N, ... (sorted) and writes its own metrics file
    monkeypatch.chdir(tmp_path)
    videos = [_source_video(tmp_path / "web" / f"{name}.mp4", n=20) for name in ("a", "b", "c")]
    _tiny_idm(tmp_path / "idm.pt")
    segments = {"segments": [{"video": str(v), "start": 0, "end": 20} for v in videos]}
    (tmp_path / "segments.json").write_text(json.dumps(segments))
    monkeypatch.setattr("sys.argv", ["03_label.py", "--idm", "idm.pt", "--segments", "segments.json"])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    label_stage.main()
    assert sorted(p.name for p in (tmp_path / "data" / "labeled").glob("*.jsonl")) == ["b_0000000-0000020.jsonl"]
    assert (tmp_path / "runs" / "label" / "metrics.rank1.json").exists()


def test_label_compares_with_the_held_out_scores_of_its_own_idm(tmp_path):
    def scores(f1):
        return {"button_f1": f1, "button_accuracy": 0.9, "camera_accuracy": 0.5, "camera_r2": 0.1}

    assert label_stage.idm_scores(tmp_path / "idm.pt") is None
    # 01_idm.py --sweep-hours: the top level is the last size's (its idm.pt), each size's entry names its checkpoint
    sweep = [{**scores(0.1), "checkpoint": "idm_0.05h.pt"}, {**scores(0.3), "checkpoint": "idm_0.3h.pt"}]
    (tmp_path / "metrics.json").write_text(json.dumps({**sweep[-1], "sweep": sweep}))
    assert label_stage.idm_scores(tmp_path / "idm_0.05h.pt")["button_f1"] == 0.1
    assert label_stage.idm_scores(tmp_path / "idm_0.3h.pt")["button_f1"] == 0.3
    assert label_stage.idm_scores(tmp_path / "idm.pt") == scores(0.3)
