"""The contractor data format: parsing the recorder's jsonl as OpenAI's loader does, frames, the cursor, the writer's
round trip, and clear errors for bad recordings."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import common as c
from conftest import ROOT, load_stage

idm_stage = load_stage("01_idm.py")


def record(keys=(), buttons=(), new_buttons=(), dx=0, dy=0, gui=False, x=640.0, y=360.0, hotbar=0):
    """One jsonl object in the shape OpenAI's recorder writes (the fields the reader uses, plus a few it ignores)."""
    return {
        "mouse": {"x": x, "y": y, "dx": dx, "dy": dy, "scaledX": x - 640, "scaledY": y - 360, "dwheel": 0.0,
                  "buttons": list(buttons), "newButtons": list(new_buttons)},
        "keyboard": {"keys": list(keys), "newKeys": [], "chars": ""},
        "isGuiOpen": gui, "isGuiInventory": gui, "hotbar": hotbar, "yaw": 0.0, "pitch": 0.0,
        "xpos": 0.0, "ypos": 64.0, "zpos": 0.0, "tick": 0, "milli": 1650000000000, "inventory": [],
        "serverTick": 0, "serverTickDurationMs": 50.0, "stats": {},
    }


def write_raw(tmp_path, records, frames, name="rec"):
    """A recording written by hand: frames (N, H, W, 3) RGB to mp4, records to jsonl."""
    video = tmp_path / f"{name}.mp4"
    h, w = frames.shape[1:3]
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 20, (w, h))
    for f in frames:
        out.write(np.ascontiguousarray(f[:, :, ::-1]))
    out.release()
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return video


def grey_frames(n, h=360, w=640, value=100):
    return np.full((n, h, w, 3), value, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- jsonl -> actions


def test_hand_written_record():
    # W + space + left ctrl + 3 held, left mouse held, mouse moved 10 counts right and 4 up, GUI closed
    rec = record(keys=["key.keyboard.w", "key.keyboard.space", "key.keyboard.left.control", "key.keyboard.3",
                       "key.keyboard.f3"], buttons=[0], dx=10, dy=-4)
    actions, null = c.json_to_env_actions([rec])
    held = sorted(k for k in c.MINERL_KEYS if k != "camera" and actions[k][0])
    assert held == ["attack", "forward", "hotbar.3", "jump", "sprint"]  # F3 is not an action
    # camera = [dy, dx] * 0.15 degrees: pitch -0.6 (up), yaw +1.5 (right), kept as floats
    np.testing.assert_allclose(actions["camera"][0], [-0.6, 1.5], rtol=1e-6)
    assert not null[0]


def test_all_bindings():
    for key, action in c.KEYBOARD_TO_ACTION.items():
        actions, null = c.json_to_env_actions([record(keys=[key])])
        assert actions[action][0] == 1 and not null[0]
    for button, action in {0: "attack", 1: "use", 2: "pickItem"}.items():
        actions, null = c.json_to_env_actions([record(buttons=[button])])
        assert actions[action][0] == 1 and not null[0]


def test_small_mouse_motion_is_not_truncated():
    # OpenAI's integer array would turn 3 counts (0.45 degrees) into 0; we keep it
    actions, _ = c.json_to_env_actions([record(dx=3, dy=0)])
    np.testing.assert_allclose(actions["camera"][0], [0.0, 0.45], rtol=1e-6)
    assert c.env_to_policy_action({"camera": actions["camera"]})["camera"][0] != c.NULL_CAMERA_CLASS


def test_null_frames():
    recs = [record(), record(keys=["key.keyboard.f3"]), record(dx=1), record(keys=["key.keyboard.escape"]),
            record(buttons=[2])]
    _, null = c.json_to_env_actions(recs)
    # nothing / an unbound key -> null; mouse motion, ESC (bound, though VPT drops it), middle click -> not null
    assert null.tolist() == [True, True, False, False, False]


def test_stuck_attack_repair():
    recs = [record(buttons=[0], new_buttons=[0]), record(buttons=[0]), record(buttons=[0], new_buttons=[0]),
            record(buttons=[0])]
    actions, null = c.json_to_env_actions(recs)
    # attack reported newly pressed on frame 0 is taken as stuck, and removed until it is pressed again on frame 2
    assert actions["attack"].tolist() == [0, 0, 1, 1]
    assert null.tolist() == [True, True, False, False]
    # a recording whose first frame presses attack with something else is not "stuck"
    actions, _ = c.json_to_env_actions([record(buttons=[0, 1], new_buttons=[0, 1]), record(buttons=[0])])
    assert actions["attack"].tolist() == [1, 1]


def test_scroll_wheel_hotbar_repair():
    # slot changes 0 -> 2 (scrolled) on frame 1 while walking, and 2 -> 1 on an otherwise idle frame 3
    recs = [record(keys=["key.keyboard.w"]), record(keys=["key.keyboard.w"], hotbar=2),
            record(keys=["key.keyboard.w"], hotbar=2), record(hotbar=1)]
    actions, null = c.json_to_env_actions(recs)
    assert actions["hotbar.3"].tolist() == [0, 1, 0, 0]
    assert actions["hotbar.2"].tolist() == [0, 0, 0, 1]
    # the null test comes before the repair (as in OpenAI's loader): the idle scroll frame stays null
    assert null.tolist() == [False, False, False, True]


# ----------------------------------------------------------------------------------------------- frames


def test_loader_pairs_frames_with_lines_and_skips_null(tmp_path):
    # frame t has brightness 10*t, so which frames survive is visible in the pixels
    n = 6
    frames = np.stack([np.full((360, 640, 3), 10 * t + 20, np.uint8) for t in range(n + 1)])  # one extra frame
    recs = [record(keys=["key.keyboard.w"]), record(), record(dx=5), record(), record(buttons=[1]), record()]
    ep = c.load_contractor_episode(write_raw(tmp_path, recs, frames))
    assert ep.frames.shape == (3, 128, 128, 3) and ep.frames.dtype == np.uint8
    assert ep.frame_index.tolist() == [0, 2, 4]
    np.testing.assert_allclose(ep.frames.reshape(3, -1).mean(axis=1), [20, 40, 60], atol=3)
    assert ep.actions["forward"].tolist() == [1, 0, 0] and ep.actions["use"].tolist() == [0, 0, 1]
    assert set(ep.actions) == set(c.BUTTONS) | {"camera"}
    everything = c.load_contractor_episode(tmp_path / "rec.mp4", skip_null=False, size=64)
    assert everything.frames.shape == (6, 64, 64, 3) and len(everything.records) == 6


def test_loader_returns_rgb(tmp_path):
    frames = np.zeros((2, 360, 640, 3), np.uint8)
    frames[..., 0] = 200  # pure red in RGB
    ep = c.load_contractor_episode(write_raw(tmp_path, [record(dx=1)] * 2, frames))
    r, g, b = ep.frames[0].reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 50 and b < 50


def test_resize_is_cv2_inter_linear(tmp_path):
    rng = np.random.default_rng(0)
    # a smooth image, so that mp4 compression changes it little and the comparison is about interpolation
    small = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    frame = cv2.resize(small, (640, 360), interpolation=cv2.INTER_CUBIC)
    ep = c.load_contractor_episode(write_raw(tmp_path, [record(dx=1)], frame[None]))
    decoded = cv2.VideoCapture(str(tmp_path / "rec.mp4")).read()[1]
    # OpenAI's order: BGR -> RGB at full size, then resize; ours resizes first (cheaper), the pixels must not differ
    expected = cv2.resize(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), (128, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(ep.frames[0], expected)


def test_cursor_drawn_on_gui_frames_only(tmp_path):
    frames = grey_frames(3)
    # pointer tip at recorder (720p) coordinates (640, 360) -> pixel (320, 180) of a 360p frame
    recs = [record(dx=1, gui=True, x=640.0, y=360.0), record(dx=1), record(dx=1, gui=True, x=0.0, y=0.0)]
    ep = c.load_contractor_episode(write_raw(tmp_path, recs, frames), size=360)  # 360x360: keep pixels countable
    plain = ep.frames[1].astype(int)
    diff = np.abs(ep.frames.astype(int) - plain).sum(axis=-1)  # (3, 360, 360)
    assert diff[1].max() == 0 and ep.gui_open.tolist() == [True, False, True]
    ys, xs = np.nonzero(diff[0] > 60)
    # the 16x16 sprite starts at (180, 320) in the 640-wide frame, i.e. column 320 * 360/640 = 180 after resizing
    assert ys.min() >= 178 and ys.max() <= 198 and xs.min() >= 178 and xs.max() <= 190
    assert diff[2][:16, :12].max() > 60  # the top-left corner cursor is drawn too (clipped, not lost)


def test_draw_cursor_sprite_and_clipping():
    frame = np.full((360, 640, 3), 100, np.uint8)
    c.draw_cursor(frame, 2 * 100, 2 * 50)  # recorder coords (200, 100) -> pixel (100, 50)
    changed = np.argwhere((frame != 100).any(axis=-1))
    assert changed.min(axis=0).tolist() == [50, 100] and changed.max(axis=0).tolist() == [65, 110]
    assert (frame[52:63, 101] == 255).all()  # white body inside the black outline
    assert frame[50, 100].tolist() == [0, 0, 0]
    # toy frames get the sharp 7-pixel arrow, not a blurred shrink of the 16-pixel one: pure black and white pixels
    toy = np.full((64, 64, 3), 140, np.uint8)
    c.draw_cursor(toy, 360, 360)  # pixel (32, 32)
    changed = np.argwhere((toy != 140).any(axis=-1))
    assert changed.min(axis=0).tolist() == [32, 32] and changed.max(axis=0).tolist() == [38, 37]
    assert toy[32, 32].tolist() == [0, 0, 0] and (toy[34:37, 33] == 255).all()
    assert set(np.unique(toy)) == {0, 140, 255}
    edge = np.full((64, 64, 3), 100, np.uint8)
    c.draw_cursor(edge, 710, 710)  # pixel (63, 63): only the tip fits
    assert (edge != 100).any() and (edge[:60, :60] == 100).all()
    c.draw_cursor(edge, 5000, -5000)  # fully outside: nothing happens, no error


# ----------------------------------------------------------------------------------------------- the writer


def random_recording(rng, t_len):
    actions = {k: (rng.random(t_len) < 0.15).astype(np.int64) for k in c.MINERL_KEYS if k != "camera"}
    actions["inventory"] = (rng.random(t_len) < 0.05).astype(np.int64)
    counts = rng.integers(-40, 41, (t_len, 2)) * (rng.random((t_len, 2)) < 0.6)
    actions["camera"] = (counts * c.CAMERA_SCALER).astype(np.float32)  # real mice move in whole counts
    idle = rng.random(t_len) < 0.25
    for k in actions:
        actions[k][idle] = 0
    gui = np.zeros(t_len, bool)
    gui[t_len // 3: t_len // 2] = True
    cursor = rng.uniform(0, 700, (t_len, 2))
    frames = rng.integers(0, 256, (t_len + 1, 64, 64, 3), dtype=np.uint8)
    return frames, actions, gui, cursor


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    t_len = 300
    frames, actions, gui, cursor = random_recording(rng, t_len)
    actions["attack"][0] = 1  # starting to mine at once must survive the reader's stuck-attack repair
    path = c.write_contractor_episode(tmp_path / "toy" / "ep0.mp4", frames, actions, gui_open=gui, cursor=cursor,
                                      options={"seed": 3, "size": 64}, extras=[{"tick_note": t} for t in range(t_len)])
    ep = c.load_contractor_episode(path, size=64, skip_null=False)
    assert len(ep) == t_len and ep.options == {"seed": 3, "size": 64}
    for k in c.BUTTONS:
        np.testing.assert_array_equal(ep.actions[k], actions[k], err_msg=k)
    np.testing.assert_array_equal(ep.actions["camera"], actions["camera"])  # whole counts: bit for bit
    np.testing.assert_array_equal(ep.gui_open, gui)
    assert [r["tick_note"] for r in ep.records] == list(range(t_len))
    # skipping null frames keeps exactly the non-null actions
    non_null = c.load_contractor_episode(path, size=64)
    moving = np.zeros(t_len, bool)
    for k in c.MINERL_KEYS:
        moving |= actions[k].reshape(t_len, -1).any(axis=1) if k != "camera" else (actions[k] != 0).any(axis=1)
    np.testing.assert_array_equal(non_null.frame_index, np.flatnonzero(moving))
    for k in c.BUTTONS:
        np.testing.assert_array_equal(non_null.actions[k], actions[k][moving], err_msg=k)


def test_round_trip_through_policy_space(tmp_path):
    # policy actions -> env -> recording -> reader -> policy actions: the same classes (bin centres are not whole
    # mouse counts, so they are written as fractional counts)
    rng = np.random.default_rng(1)
    joint = c.env_to_policy_action(random_recording(rng, 200)[1])
    env = c.policy_to_env_action(joint)
    path = c.write_contractor_episode(tmp_path / "p.mp4", np.zeros((201, 32, 32, 3), np.uint8), env)
    ep = c.load_contractor_episode(path, size=32, skip_null=False)
    again = c.env_to_policy_action(ep.actions)
    np.testing.assert_array_equal(again["buttons"], joint["buttons"])
    np.testing.assert_array_equal(again["camera"], joint["camera"])


@pytest.mark.parametrize("codec, max_error", [("mp4v", 10.0), ("FFV1", 0.0)])
def test_writer_frames_survive_compression(tmp_path, codec, max_error):
    rng = np.random.default_rng(2)
    smooth = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.roll(smooth, t, axis=1) for t in range(11)])
    actions = c.minerl_noop(10)
    actions["forward"][:] = 1
    path = c.write_contractor_episode(tmp_path / "f.mp4", frames, actions, codec=codec)
    ep = c.load_contractor_episode(path, size=64)
    # mean absolute error in grey levels: mp4v is lossy (about 7 on this busy texture), FFV1 exact
    assert np.abs(ep.frames.astype(int) - frames[:10]).mean() <= max_error


def test_writer_list_of_dicts_and_jsonl_shape(tmp_path):
    steps = [dict(c.minerl_noop(), forward=1, camera=np.array([0.3, -1.5])), dict(c.minerl_noop(), attack=1)]
    path = c.write_contractor_episode(tmp_path / "l.mp4", np.zeros((2, 16, 16, 3), np.uint8), steps)
    lines = [json.loads(s) for s in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert lines[0]["keyboard"]["keys"] == ["key.keyboard.w"] and lines[0]["mouse"]["dx"] == -10
    assert lines[0]["mouse"]["dy"] == 2 and isinstance(lines[0]["mouse"]["dy"], int)
    assert lines[1]["mouse"]["buttons"] == [0] and lines[1]["mouse"]["newButtons"] == [0]
    assert lines[1]["keyboard"]["newKeys"] == [] and lines[0]["keyboard"]["newKeys"] == ["key.keyboard.w"]
    assert c.load_contractor_episode(path, size=16).actions["attack"].tolist() == [0, 1]


def test_writer_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        c.write_contractor_episode(tmp_path / "a.mp4", np.zeros((5, 8, 8, 3), np.uint8), c.minerl_noop(2))
    with pytest.raises(ValueError, match="cursor"):
        c.write_contractor_episode(tmp_path / "b.mp4", np.zeros((2, 8, 8, 3), np.uint8), c.minerl_noop(2),
                                   gui_open=[True, False])


# ----------------------------------------------------------------------------------------------- bad input


def test_missing_jsonl(tmp_path):
    video = write_raw(tmp_path, [record(dx=1)], grey_frames(1, 32, 32))
    (tmp_path / "rec.jsonl").unlink()
    with pytest.raises(c.RecordingError, match=r"rec\.jsonl: missing"):
        c.load_contractor_episode(video)


def test_malformed_line_names_file_and_line(tmp_path):
    video = write_raw(tmp_path, [record(dx=1)] * 3, grey_frames(3, 32, 32))
    lines = (tmp_path / "rec.jsonl").read_text().splitlines()
    lines[1] = lines[1][:40]
    (tmp_path / "rec.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(c.RecordingError, match=r"rec\.jsonl:2: malformed JSON"):
        c.load_contractor_episode(video)
    lines[1] = json.dumps({"keyboard": {"keys": []}})
    (tmp_path / "rec.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(c.RecordingError, match=r"rec\.jsonl:2: not a recorder frame \(missing field 'mouse'\)"):
        c.load_contractor_episode(video)


def test_video_shorter_than_jsonl(tmp_path):
    video = write_raw(tmp_path, [record(dx=1)] * 5, grey_frames(3, 32, 32))
    with pytest.raises(c.RecordingError, match=r"rec\.mp4: only 3 frames .* 5 lines"):
        c.load_contractor_episode(video)


def test_unreadable_video(tmp_path):
    (tmp_path / "rec.jsonl").write_text(json.dumps(record(dx=1)) + "\n")
    (tmp_path / "rec.mp4").write_bytes(b"this is not an mp4 file" * 100)
    with pytest.raises(c.RecordingError, match=r"rec\.mp4"):
        c.load_contractor_episode(tmp_path / "rec.mp4")


def test_idm_reader_skips_bad_recordings_with_a_count(tmp_path):
    for name in ("a", "b", "c"):
        write_raw(tmp_path, [record(dx=1)] * 2, grey_frames(2, 32, 32), name=name)
    (tmp_path / "b.jsonl").write_text("{not json\n")
    with pytest.raises(c.RecordingError, match=r"b\.jsonl:1"):
        c.load_contractor_episode(tmp_path / "b.mp4", size=32)
    with pytest.warns(UserWarning) as caught:
        recordings = idm_stage.load_recordings(c.find_recordings(tmp_path), 32)
    messages = [str(w.message) for w in caught]
    assert any("b.jsonl:1: malformed JSON" in m for m in messages)  # one warning per bad file, naming it
    assert messages[-1].startswith("skipped 1 of 3 recordings")  # and a count at the end
    assert [r["path"].endswith(n) for r, n in zip(recordings, ("a.mp4", "c.mp4"))] == [True, True]
    assert len(recordings) == 2 and recordings[0]["frames"].shape == (2, 32, 32, 3)


def test_bench_smoke():
    out = subprocess.run([sys.executable, "tools/bench.py", "data", "--smoke", "--repeats", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "frames/s" in out.stdout and "640x360" in out.stdout and "FFV1" in out.stdout


def test_take_hours_gives_nested_random_subsets(tmp_path):
    # the data-size ablations: about the hours asked for, every smaller set inside every larger one
    paths = []
    for i in range(20):
        actions = c.minerl_noop(360)  # 360 frames = 0.005 hours at 20 Hz
        paths.append(c.write_actions_jsonl(tmp_path / f"r{i:02d}.jsonl", actions))
    small, large = c.take_hours(paths, 0.02), c.take_hours(paths, 0.05)
    assert len(small) == 4 and len(large) == 10 and set(small) < set(large)
    assert small != sorted(paths)[:4]  # a random subset, not the first names
    assert c.take_hours(paths, 0.02, seed=1) != small and c.recording_frames(paths[0]) == 360


# --------------------------------------------------------------------------------------------------- downloads


class _RangeHandler:
    """A loopback file server that honours Range requests (as OpenAI's blob store does) and logs what it sends."""

    @staticmethod
    def serve(root, log):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = path.read_bytes()
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                # logged before anything is sent: the client may read the last byte and the test check the log
                # before this thread runs again
                if start >= len(data):  # RFC 9110: nothing at or after that byte
                    log.append((self.path, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                log.append((self.path, len(data) - start))
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def test_download_from_an_index_over_loopback_resumes_and_skips_missing(tmp_path):
    site = tmp_path / "site" / "data" / "10.0"
    site.mkdir(parents=True)
    for name in ("a", "b", "d"):
        (site / f"{name}.mp4").write_bytes(bytes(range(256)) * (40 if name == "d" else 4))
        (site / f"{name}.jsonl").write_text(f'{{"recording": "{name}"}}\n')
    (site / "c.jsonl").write_text("{}\n")  # c's video failed to upload
    log = []
    server = _RangeHandler.serve(tmp_path / "site", log)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        # both layouts of OpenAI's index files: with ".mp4" and without
        index = {"basedir": base, "relpaths": ["data/10.0/a.mp4", "data/10.0/b", "data/10.0/c.mp4", "data/10.0/d.mp4"]}
        (tmp_path / "index.json").write_text(json.dumps(index))
        out = tmp_path / "out"
        with pytest.warns(UserWarning, match="c.mp4: 404"):
            counts = c.download_recordings(tmp_path / "index.json", out, n=3, progress=False)
        assert counts == {"downloaded": 2, "present": 0, "missing": 1}
        # c's .jsonl is kept (a rerun would fetch only its video); the readers pass over it, having no video
        assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mp4", "b.jsonl", "b.mp4", "c.jsonl"]
        assert [p.name for p in c.find_recordings(out)] == ["a.mp4", "b.mp4"]
        assert (out / "b.mp4").read_bytes() == (site / "b.mp4").read_bytes()
        # an interrupted download of d left half its video: the rerun skips a and b and fetches only the rest of d
        (out / "d.jsonl").write_bytes((site / "d.jsonl").read_bytes())
        (out / "d.mp4.part").write_bytes((site / "d.mp4").read_bytes()[:5000])
        log.clear()
        with pytest.warns(UserWarning, match="c.mp4: 404"):
            counts = c.download_recordings(tmp_path / "index.json", out, progress=False)
        assert counts == {"downloaded": 1, "present": 2, "missing": 1}
        assert (out / "d.mp4").read_bytes() == (site / "d.mp4").read_bytes() and not (out / "d.mp4.part").exists()
        assert ("/data/10.0/d.mp4", 10240 - 5000) in log
        # killed after d's last byte, before the rename: the whole video waits as .part, and the server answers 416
        (out / "d.mp4").rename(out / "d.mp4.part")
        log.clear()
        with pytest.warns(UserWarning, match="c.mp4: 404"):
            counts = c.download_recordings(tmp_path / "index.json", out, progress=False)
        assert counts == {"downloaded": 1, "present": 2, "missing": 1} and ("/data/10.0/d.mp4", 416) in log
        assert (out / "d.mp4").read_bytes() == (site / "d.mp4").read_bytes() and (out / "d.jsonl").exists()
        with pytest.raises(c.RecordingError, match="index.json: not an index file"):
            (tmp_path / "index.json").write_text('{"relpaths": []}')
            c.read_index(tmp_path / "index.json")
    finally:
        server.shutdown()


def test_an_index_may_only_point_at_http_and_a_dead_server_is_one_line(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "s.jsonl").write_text("{}\n")
    (secret / "s.mp4").write_bytes(b"video")
    for base in (f"file://{secret}", "ftp://127.0.0.1/", "gopher://x/", 5):
        (tmp_path / "index.json").write_text(json.dumps({"basedir": base, "relpaths": ["s"]}))
        with pytest.raises(c.RecordingError, match="not an http:// or https:// address"):
            c.download_recordings(tmp_path / "index.json", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing local was copied
    (tmp_path / "index.json").write_text(json.dumps({"basedir": "http://127.0.0.1:9", "relpaths": [1, 2]}))
    with pytest.raises(c.RecordingError, match="relpaths must be a list of strings"):
        c.read_index(tmp_path / "index.json")
    (tmp_path / "index.json").write_text(json.dumps({"basedir": "http://127.0.0.1:9", "relpaths": ["s"]}))
    with pytest.raises(c.UserError, match="127.0.0.1:9/s.jsonl: cannot be reached"):  # port 9: nothing listens
        c.download_recordings(tmp_path / "index.json", tmp_path / "out", progress=False)
