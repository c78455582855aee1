"""A user's mistakes end in one clear line, and no command destroys finished work.

Each class of fault a user meets (a nonsense flag, a folder that holds a finished run, a mistyped --out with --resume,
two runs into one folder, a broken file, a full disk) is tried here the way a user would meet it.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import common as c
import toycraft as tc
import worlds
from conftest import ROOT, load_stage

bc = load_stage("04_bc.py")
label = load_stage("03_label.py")


def run_script(script, *flags, cwd):
    return subprocess.run([sys.executable, str(ROOT / script), *flags], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------------------------------------------------------------
# Flags: refused at parse time with the allowed range, before any work is done
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script, flags, says", [
    ("01_idm.py", ["--batch", "0"], "--batch: must be a whole number, at least 1 (got 0)"),
    ("01_idm.py", ["--steps", "-1"], "--steps: must be a whole number, at least 0 (got -1)"),
    ("01_idm.py", ["--clip", "0"], "--clip: must be a whole number, at least 1"),
    ("01_idm.py", ["--held-out", "1.5"], "--held-out: must be a number, above 0 and below 1 (got 1.5)"),
    ("01_idm.py", ["--eval-every", "0"], "--eval-every: must be a whole number, at least 1"),
    ("01_idm.py", ["--lr", "nan"], "--lr: must be a number, above 0 (got nan)"),
    ("01_idm.py", ["--sweep-hours", "a,b"], "--sweep-hours: each size must be a number (got 'a')"),
    ("01_idm.py", ["--steps", "0"], "--steps 0 only evaluates: pass --init"),
    ("01_idm.py", ["--resume", "--overwrite"], "pass one"),
    ("02_filter.py", ["--smooth", "4"], "--smooth: must be odd"),
    ("02_filter.py", ["--epochs", "0"], "--epochs: must be a whole number, at least 1"),
    ("02_filter.py", ["--size", "0"], "--size: must be a whole number, at least 8"),
    ("02_filter.py", ["--held-out", "0"], "--held-out: must be a number, above 0 and below 1"),
    ("03_label.py", ["--window", "0"], "--window: must be a whole number, at least 1"),
    ("03_label.py", ["--batch", "0"], "--batch: must be a whole number, at least 1"),
    ("04_bc.py", ["--chunk", "0"], "--chunk: must be a whole number, at least 1"),
    ("04_bc.py", ["--temperature", "0"], "--temperature: must be a number, above 0"),
    ("04_bc.py", ["--data-hours", "0"], "--data-hours: must be a number, above 0"),
    ("04_bc.py", ["--episodes", "-1"], "--episodes: must be a whole number, at least 0"),
    ("04_bc.py", ["--steps", "0"], "--steps 0 only evaluates: pass --init"),
    ("05_rl.py", ["--total-steps", "0"], "--total-steps: must be a whole number, at least 1"),
    ("05_rl.py", ["--total-steps", "5"], "--total-steps must be at least one rollout"),
    ("05_rl.py", ["--eval-episodes", "0"], "--eval-episodes: must be a whole number, at least 1"),
    ("05_rl.py", ["--num-minibatches", "999"], "--num-minibatches must be at most the 32 sequences"),
    ("05_rl.py", ["--episode-steps", "0"], "--episode-steps: must be a whole number, at least 1"),
])
def test_a_nonsense_flag_is_refused_at_parse_time_with_its_range(script, flags, says, capsys):
    stage = load_stage(script)
    with pytest.raises(SystemExit) as e:
        stage.parse_args(flags)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_number_types_take_their_range_and_refuse_the_rest():
    assert c.positive_int("3") == 3 and c.count("0") == 0 and c.open_fraction("0.25") == 0.25
    for parse, text in [(c.positive_int, "0"), (c.positive_int, "1.5"), (c.count, "-1"), (c.positive, "0"),
                        (c.positive, "inf"), (c.open_fraction, "1"), (c.open_fraction, "0"), (c.non_negative, "-0.1")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_a_user_error_is_one_line_naming_the_script_and_a_bug_keeps_its_traceback(tmp_path):
    script = tmp_path / "05_demo.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r}); import common\n"
                      "import warnings\n"
                      "def main():\n"
                      "    if sys.argv[1] == 'ctrl-c': raise KeyboardInterrupt\n"
                      "    if sys.argv[1] == 'user':\n"
                      "        warnings.warn('skipping bad recording: a.jsonl:3: malformed JSON', common.DataWarning)\n"
                      "        raise common.ModelFileError('x.pt: no such checkpoint')\n"
                      "    raise KeyError('a bug')\n"
                      "common.run_main(main)\n")
    user = subprocess.run([sys.executable, str(script), "user"], capture_output=True, text=True)
    assert user.returncode == 1 and user.stderr == ("05_demo.py: warning: skipping bad recording: a.jsonl:3: malformed "
                                                    "JSON\n05_demo.py: x.pt: no such checkpoint\n")
    ctrl_c = subprocess.run([sys.executable, str(script), "ctrl-c"], capture_output=True, text=True)
    assert ctrl_c.returncode == 130 and ctrl_c.stderr == "05_demo.py: interrupted\n"
    bug = subprocess.run([sys.executable, str(script), "bug"], capture_output=True, text=True)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "KeyError: 'a bug'" in bug.stderr


@pytest.mark.skipif(importlib.util.find_spec("minerl") is not None, reason="MineRL is installed here")
def test_a_run_that_would_play_minerl_without_it_stops_before_training(monkeypatch):
    monkeypatch.delenv("NANOVPT_MINERL_ENV", raising=False)
    with pytest.raises(c.UserError, match="--env minerl needs MineRL 1.0 to play in, and it is not installed"):
        worlds.check_playable("minerl")
    worlds.check_playable("toy")


def test_workers_leave_ctrl_c_to_the_main_process_and_see_its_environment(monkeypatch):
    # Ctrl-C reaches the whole process group; a worker stopped inside a queue's lock would hang the main one at exit
    with c.worker_pool(1) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
    # the fork server started with the first pool; the workers of a later one still see today's environment
    monkeypatch.setenv("NANOVPT_SET_LATER", "seen")
    with c.worker_pool(1) as pool:
        assert pool.apply(os.getenv, ("NANOVPT_SET_LATER",)) == "seen"


def test_an_unknown_device_is_one_line():
    with pytest.raises(c.UserError, match="--device tpu: not a device torch knows"):
        c.setup_run(argparse.Namespace(device="tpu", seed=0))


# ---------------------------------------------------------------------------------------------------------------------
# The output folder: finished work is only continued or replaced when asked; one run at a time
# ---------------------------------------------------------------------------------------------------------------------


def out_args(out, **flags):
    return argparse.Namespace(out=out, **{"resume": False, "overwrite": False, "steps": 10, "init": None, **flags})


def test_a_folder_with_a_run_is_only_continued_or_replaced_when_asked(tmp_path, capsys):
    out = tmp_path / "bc"
    c.claim_out(out_args(out), ["policy.pt"])  # a new folder: fine
    (out / "policy.pt").write_bytes(b"trained")
    with pytest.raises(c.UserError, match=r"bc already holds a run \(policy.pt\); pass --resume to continue it, "
                                          r"--overwrite to replace it"):
        c.claim_out(out_args(out), ["policy.pt"])
    c.claim_out(out_args(out, resume=True), ["policy.pt"])
    c.claim_out(out_args(out, overwrite=True), ["policy.pt"])
    assert "--overwrite: the run in" in capsys.readouterr().out
    # --resume where there is nothing to resume (a mistyped --out) stops instead of starting from step 0
    with pytest.raises(c.UserError, match="typo/policy.pt does not exist, so there is nothing to resume"):
        c.claim_out(out_args(tmp_path / "typo", resume=True), ["policy.pt"])
    # evaluation only writes into a run's folder only to re-evaluate that run's own checkpoint
    with pytest.raises(c.UserError, match="--steps 0 only evaluates --init: choose another --out"):
        c.claim_out(out_args(out, steps=0, init=tmp_path / "other.pt", overwrite=True), ["policy.pt"])
    c.claim_out(out_args(out, steps=0, init=out / "policy.pt", overwrite=True), ["policy.pt"])
    # a --smoke run's output is no finished work: another --smoke run replaces it unasked, a real run does not
    (out / "config.json").write_text(json.dumps({"smoke": True}))
    c.claim_out(out_args(out, smoke=True), ["policy.pt"])
    with pytest.raises(c.UserError, match="already holds a run"):
        c.claim_out(out_args(out), ["policy.pt"])
    assert (out / "policy.pt").read_bytes() == b"trained"  # claiming a folder writes nothing into it


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(c.UserError, match=r"afile/run: cannot create this folder \(a file is in the way\)"):
        c.claim_out(out_args(tmp_path / "afile" / "run"))


def test_a_second_run_into_the_same_folder_stops_and_a_dead_ones_lock_does_not_stick(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(str(os.getppid()))  # a live process that is not us
    with pytest.raises(c.UserError, match=f"run is being written by another run \\(process {os.getppid()}\\)"):
        c.claim_out(out_args(out))
    (out / "policy.pt").write_bytes(b"being trained")  # a running run's checkpoint: not one to resume meanwhile
    with pytest.raises(c.UserError, match="being written by another run"):
        c.claim_out(out_args(out, resume=True), ["policy.pt"])
    (out / "policy.pt").unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(str(dead.pid))
    c.claim_out(out_args(out))
    assert (out / ".lock").read_text() == str(os.getpid())
    # killed but not yet reaped (a zombie, as under a container's init that does not reap): dead as well
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):
        if Path(f"/proc/{zombie.pid}/stat").exists() and not c._alive(zombie.pid):
            break
        time.sleep(0.05)
    assert Path(f"/proc/{zombie.pid}").exists() and not c._alive(zombie.pid)
    zombie.wait()


def test_two_label_runs_at_once_into_one_folder(tmp_path):
    # the second process finds the first one's lock and stops with one line, before labelling anything
    out = tmp_path / "labeled"
    holder = subprocess.Popen([sys.executable, "-c", f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
                               f"import argparse, common; common.claim_out(argparse.Namespace(out={str(out)!r})); "
                               f"print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = run_script("03_label.py", "--out", str(out), "--idm", "none.pt", cwd=tmp_path)
        assert second.returncode == 1
        assert second.stderr.strip() == f"03_label.py: {out} is being written by another run (process {holder.pid}); " \
                                        f"wait for it to end, or choose another --out"
    finally:
        holder.kill()


def test_a_missing_data_folder_is_one_line_and_leaves_no_empty_output_folder(tmp_path):
    missing = run_script("04_bc.py", "--data", "nowhere", "--out", "runs/bc", "--steps", "1", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == ("04_bc.py: nowhere: no such folder or file of recordings (run 03_label.py first, or "
                              "pass --data)\n")
    assert not (tmp_path / "runs" / "bc").exists()  # created to be claimed, and removed again, empty


def test_evaluating_a_policy_again_leaves_its_checkpoint_byte_for_byte(tmp_path):
    # the README's evaluate-again command, and the same into the run's own folder, which is refused
    data = tmp_path / "data"
    tc.record_contractors(data, 2, seed=0, max_steps=80, progress=False)
    first = run_script("04_bc.py", "--data", str(data), "--out", "runs/bc", "--steps", "2", "--batch", "2", "--chunk",
                       "8", "--episodes", "0", "--workers", "0", "--held-out", "0.5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    policy = tmp_path / "runs" / "bc" / "policy.pt"
    before = policy.read_bytes()
    again = run_script("04_bc.py", "--data", str(data), "--steps", "0", "--init", "runs/bc/policy.pt", "--episodes",
                       "1", "--episode-steps", "5", "--workers", "1", "--held-out", "0.5", "--out", "runs/bc_eval",
                       cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (tmp_path / "runs" / "bc_eval" / "policy.pt").exists()  # an evaluation writes no checkpoint
    assert json.loads((tmp_path / "runs" / "bc_eval" / "metrics.json").read_text())["episodes"] == 1
    into = run_script("04_bc.py", "--data", str(data), "--steps", "0", "--init", "runs/bc/policy.pt", "--episodes",
                      "0", "--out", "runs/bc", cwd=tmp_path)
    assert into.returncode == 1 and into.stderr.count("\n") == 1 and "runs/bc already holds a run" in into.stderr
    untrained = run_script("04_bc.py", "--data", str(data), "--out", "runs/bc", "--steps", "1", cwd=tmp_path)
    assert untrained.returncode == 1 and "--overwrite to replace it" in untrained.stderr
    assert policy.read_bytes() == before


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints: a failed save names its file and leaves no partial file; a resume of the wrong file is one line
# ---------------------------------------------------------------------------------------------------------------------


def test_a_full_disk_during_a_save_names_the_file_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    model = c.make_model("idm", "toy")
    path = c.save_checkpoint(tmp_path / "idm.pt", model, step=1)
    before = path.read_bytes()

    def full_disk(payload, f):
        open(f, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 28278208 vs 28278100")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(c.UserError, match=r"idm.pt: could not be written \(the disk is full; \d+ MiB free on it\)"):
        c.save_checkpoint(path, model, step=2)
    assert path.read_bytes() == before and not (tmp_path / "idm.pt.tmp").exists()


def test_resuming_a_checkpoint_without_its_optimiser_or_of_another_stage_is_refused(tmp_path):
    model = c.make_model("policy", "toy")
    c.save_checkpoint(tmp_path / "evaluated.pt", model, None, step=0)
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(c.ModelFileError, match="holds no optimiser state"):
        c.resume_from(tmp_path / "evaluated.pt", model, optimizer)
    two_groups, _ = c.make_optimizer(model, argparse.Namespace(lr=1e-3, weight_decay=0.0))
    c.save_checkpoint(tmp_path / "bc.pt", model, two_groups, step=3)
    with pytest.raises(c.ModelFileError, match="bc.pt: its optimiser state does not fit this run's"):
        c.resume_from(tmp_path / "bc.pt", model, optimizer)  # one parameter group, as 05's optimiser has


# ---------------------------------------------------------------------------------------------------------------------
# Data: wrong field types name file and line; skipped recordings are named once and counted; no fake held-out loss
# ---------------------------------------------------------------------------------------------------------------------


def recording(tmp_path, name="toy-a-000000"):
    actions = c.minerl_noop(6)
    actions["forward"][:] = 1
    return c.write_contractor_episode(tmp_path / f"{name}.mp4", np.zeros((7, 16, 16, 3), np.uint8), actions)


@pytest.mark.parametrize("field, value, says", [
    ("dx", "5", "mouse dx is '5', not a number"), ("dx", None, "mouse dx is None, not a number"),
    ("hotbar", 12, "hotbar is 12, not a slot 0-8"), ("buttons", [0, "1"], "not a list of button numbers"),
    ("keys", "key.keyboard.w", "not a list of key names"),
])
def test_a_recorder_line_with_a_field_of_the_wrong_type_names_file_and_line(tmp_path, field, value, says):
    video = recording(tmp_path)
    jsonl = video.with_suffix(".jsonl")
    lines = jsonl.read_text().splitlines()
    record = json.loads(lines[2])
    {"dx": record["mouse"], "buttons": record["mouse"], "keys": record["keyboard"], "hotbar": record}[field][field] = \
        value
    lines[2] = json.dumps(record)
    jsonl.write_text("\n".join(lines) + "\n")
    with pytest.raises(c.RecordingError, match=f"toy-a-000000.jsonl:3: not a recorder frame \\(.*{re.escape(says)}"):
        c.load_contractor_episode(video, size=16)


def test_bc_names_each_bad_recording_once_counts_them_and_reports_no_loss_it_could_not_measure(tmp_path):
    good = recording(tmp_path)
    bad = tmp_path / "toy-b-000001.mp4"
    bad.write_bytes(b"")
    bad.with_suffix(".jsonl").write_text(good.with_suffix(".jsonl").read_text())
    streams = bc.RecordingStreams([good, bad], batch=2, chunk=4, size=16, workers=0, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            streams.next_chunk()
    named = [str(w.message) for w in caught if "skipping bad recording" in str(w.message)]
    assert len(named) == 1 and "toy-b-000001.mp4: cannot be opened" in named[0]  # once, however often it is drawn
    assert list(streams.skipped) == [str(bad)]
    model = c.make_model("policy", "toy")
    args = argparse.Namespace(early_game=None, bf16=False)
    with pytest.warns(UserWarning, match="held-out recording left out of the loss: .*toy-b-000001.mp4"):
        assert bc.held_out_loss(model, [bad], 8, torch.device("cpu"), args) is None  # not 0.000
    everything_bad = bc.RecordingStreams([bad], batch=1, chunk=4, size=16, workers=0, seed=0)
    with pytest.raises(c.UserError, match="none of the 1 recordings has a readable, non-null frame"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            everything_bad.next_chunk()


@pytest.mark.parametrize("start, end", [(50, 20), (-30, 20), (7, 7)])
def test_a_segment_that_is_not_a_range_of_frames_names_the_file_and_segment(tmp_path, start, end):
    path = tmp_path / "segments.json"
    segments = [{"video": "w.mp4", "start": 0, "end": 40}, {"video": "w.mp4", "start": start, "end": end}]
    path.write_text(json.dumps({"segments": segments}))
    says = f"segments.json: segment 1 \\(w.mp4 {start}-{end}\\) is not a range of frames"
    with pytest.raises(c.UserError, match=says):
        label.read_segments(path)


def test_frame_counts_of_a_recording_without_its_jsonl_are_zero_not_a_crash(tmp_path):
    video = recording(tmp_path)
    assert c.recording_frames(video) == 6
    video.with_suffix(".jsonl").unlink()
    assert c.recording_frames(video) == 0


# ---------------------------------------------------------------------------------------------------------------------
# ToyCraft: a MineRL-style action it cannot take is refused by key, as MineRL's action space would
# ---------------------------------------------------------------------------------------------------------------------


def test_toycraft_refuses_actions_it_cannot_take_by_key():
    env = tc.ToyCraft(seed=1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(env.noop_action())
    env.reset()
    for action, says in [({"forwad": 1}, "'forwad' is not one of MineRL's"), ([1, 0], "not a list"),
                         ({"forward": "0"}, "action 'forward' is '0'"), ({"forward": None}, "action 'forward' is None"),
                         ({"forward": np.array([])}, "action 'forward'"), ({"camera": 5.0}, "action 'camera' is 5.0"),
                         ({"camera": "left"}, "action 'camera'"), ({"camera": [0, float("inf")]}, "finite"),
                         ({"camera": [1e39, 0]}, "finite")]:  # beyond float32, MineRL's camera type
        with pytest.raises(ValueError, match=says):
            env.step(action)
    yaw = env.yaw
    env.step({"forward": np.array([1]), "camera": np.array([[0.0, 10.0]], np.float32)})  # what MineRL's space holds
    assert env.yaw == pytest.approx((yaw + 10.0) % 360)
    for bad in [dict(size=-5), dict(seed="abc"), dict(seed=-1)]:
        with pytest.raises(ValueError, match="ToyCraft: (size|seed) must be a whole number"):
            tc.ToyCraft(**bad)
