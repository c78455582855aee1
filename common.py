"""
common.py: what two or more stages of nanoVPT share.

VPT (Baker et al. 2022, arXiv 2206.11795) learns to play Minecraft from unlabelled video in five steps, one script each
(01_idm.py ... 05_rl.py). They all speak the same two languages, and both live here:

1. **The action space** (paper §2 and Appendix D; facts: shared/reference/vpt-facts.md §1). A human plays Minecraft with a
   keyboard and a mouse at 20 Hz. MineRL 1.0 exposes that as a dict of 24 keys: 23 buttons held (0/1) plus `camera`, a
   mouse motion in degrees [d_pitch, d_yaw]. VPT's policy does not predict that dict directly. It predicts two categorical
   variables: one joint class over all 8641 combinations of buttons that make sense together, and one joint class over the
   121 (11 x 11) quantised camera motions. `env_to_policy_action` and `policy_to_env_action` translate, exactly as OpenAI's
   code does, so that their released weights and our models mean the same thing by the same number.

2. **The contractor data format** (paper §3.1, Appendix A; facts §2). OpenAI hired people to play and recorded their screen
   (`<stem>.mp4`) next to what their keyboard and mouse did on every frame (`<stem>.jsonl`, one JSON object a frame).
   Everything in nanoVPT is stored this way: toycraft's "contractor" recordings, and the pseudo-labels that 03_label.py
   writes for web video. `load_contractor_episode` reads it as OpenAI's `data_loader.py` does; `write_contractor_episode`
   writes it.

The networks and checkpoints join this file with issue #4.

Run `python common.py bench` to measure how fast recordings are read (decode + resize, frames/s).
"""

import argparse
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

# ---------------------------------------------------------------------------------------------------------------------
# The action space (VPT §2, Appendix D; vpt-facts.md §1)
# ---------------------------------------------------------------------------------------------------------------------

# The 20 buttons the VPT models know, in the order of OpenAI's `Buttons.ALL`. The order matters: it is the column order
# of every button array, and the IDM's 20 binary heads are laid out in it.
BUTTONS = [
    "attack", "back", "forward", "jump", "left", "right", "sneak", "sprint", "use", "drop", "inventory",
    "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4", "hotbar.5", "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9",
]
# MineRL 1.0's HumanSurvival action dict has 24 keys (minerl-facts.md §2). VPT drops three of them: ESC (closes a GUI,
# OpenAI's own pipeline replaced it by `inventory`), pickItem (middle mouse) and swapHands (F). They are never predicted.
MINERL_KEYS = sorted(BUTTONS + ["ESC", "pickItem", "swapHands", "camera"])
DROPPED_KEYS = ("ESC", "pickItem", "swapHands")

# Camera quantisation. VPT discretises each camera axis into 11 bins after a mu-law warp, so that small, precise turns
# get fine bins and large turns coarse ones (VPT Appendix D.1; the settings OpenAI's agent and IDM use, not the class
# defaults of their code).
CAMERA_MAXVAL = 10  # degrees; a policy can turn at most 10 degrees per 50 ms tick, larger motions are clipped
CAMERA_BINSIZE = 2  # width of a bin in the warped space
CAMERA_MU = 10  # curvature of the mu-law warp
N_CAMERA_BINS = 2 * CAMERA_MAXVAL // CAMERA_BINSIZE + 1  # 11 bins per axis
CAMERA_NULL_BIN = CAMERA_MAXVAL // CAMERA_BINSIZE  # bin 5 means "no motion" on that axis

# The joint button space: the buttons are cut into groups whose members exclude each other (you cannot select two
# hotbar slots, walk forward and back, or sprint and sneak at once), and the policy picks one option from every group.
# The last group is the "camera meta-action": does the mouse move this tick at all? Only if it does is the camera head's
# choice used. Group order and option order are OpenAI's; the joint index is the mixed-radix number of the choices, the
# last group varying fastest.
BUTTON_GROUPS = {
    "hotbar": ["none"] + [f"hotbar.{i}" for i in range(1, 10)],
    "fore_back": ["none", "forward", "back"],
    "left_right": ["none", "left", "right"],
    "sprint_sneak": ["none", "sprint", "sneak"],
    "use": ["none", "use"],
    "drop": ["none", "drop"],
    "attack": ["none", "attack"],
    "jump": ["none", "jump"],
    "camera": ["none", "camera"],
}
_GROUP_SIZES = np.array([len(options) for options in BUTTON_GROUPS.values()])
# stride of each group in the joint index: the product of the sizes of all groups after it
_GROUP_STRIDES = np.cumprod(np.r_[_GROUP_SIZES[1:], 1][::-1])[::-1]
# 10 * 3 * 3 * 3 * 2**5 = 8640 combinations, plus one special class for "open/close the inventory", which excludes
# every other button and the camera (a GUI toggle is an action on its own in human play).
INVENTORY_CLASS = int(np.prod(_GROUP_SIZES))  # 8640
N_BUTTON_CLASSES = INVENTORY_CLASS + 1  # 8641
N_CAMERA_CLASSES = N_CAMERA_BINS**2  # 121: joint (pitch bin, yaw bin), index = pitch_bin * 11 + yaw_bin
NULL_BUTTON_CLASS = 0  # every group at "none"
NULL_CAMERA_CLASS = CAMERA_NULL_BIN * N_CAMERA_BINS + CAMERA_NULL_BIN  # 60


def quantize_camera(degrees):
    """Camera motion in degrees -> bin index 0..10, elementwise over any shape (VPT's mu-law quantiser).

    The bin centres are -10, -5.81, -3.22, -1.61, -0.62, 0, +0.62, +1.61, +3.22, +5.81, +10 degrees.
    """
    x = np.clip(np.asarray(degrees, dtype=np.float64), -CAMERA_MAXVAL, CAMERA_MAXVAL) / CAMERA_MAXVAL
    # mu-law warp of [-1, 1] onto itself: steep near 0, flat near the ends, so bins are narrow for small turns
    warped = np.sign(x) * np.log(1.0 + CAMERA_MU * np.abs(x)) / np.log(1.0 + CAMERA_MU) * CAMERA_MAXVAL
    # uniform bins in the warped space; np.round rounds half to even, as OpenAI's quantiser does
    return np.round((warped + CAMERA_MAXVAL) / CAMERA_BINSIZE).astype(np.int64)


def dequantize_camera(bins):
    """Bin index 0..10 -> the bin's centre in degrees, elementwise (the inverse mu-law warp)."""
    warped = (np.asarray(bins, dtype=np.float64) * CAMERA_BINSIZE - CAMERA_MAXVAL) / CAMERA_MAXVAL
    return np.sign(warped) * ((1.0 + CAMERA_MU) ** np.abs(warped) - 1.0) / CAMERA_MU * CAMERA_MAXVAL


def _batch_size(env_action):
    camera = np.asarray(env_action.get("camera", np.zeros(2)))
    return 1 if camera.ndim == 1 else camera.shape[0]


def _button_matrix(env_action, n):
    """(n, 20) bool: which of BUTTONS are held. Missing keys are not held; scalars are broadcast over the batch."""
    return np.stack([np.broadcast_to(np.asarray(env_action.get(b, 0)) != 0, (n,)) for b in BUTTONS], axis=1)


def env_to_policy_action(env_action):
    """MineRL action dict (values with a leading batch dim N, or unbatched scalars) -> VPT's joint action.

    Returns {"buttons": int64 (N,) in [0, 8641), "camera": int64 (N,) in [0, 121)}. The special cases are OpenAI's
    (`CameraHierarchicalMapping.from_factored`, vpt-facts.md §1.3):
    - several buttons of one group held: the one listed later in the group wins (hotbar.1 + hotbar.2 -> hotbar.2);
    - forward + back, or left + right, held together cancel to "none";
    - the camera meta-action is "camera" unless both axes fall in the null bin;
    - inventory held overrides everything: the button class is 8640 and the camera class is the null one.
    """
    n = _batch_size(env_action)
    held = _button_matrix(env_action, n)  # (N, 20)
    camera_bins = quantize_camera(np.asarray(env_action.get("camera", np.zeros(2))).reshape(n, 2))  # (N, 2)
    column = {name: held[:, i] for i, name in enumerate(BUTTONS)}
    # the camera meta-action is a group like the others, "pressed" when the mouse moved out of the null bin
    column["camera"] = np.any(camera_bins != CAMERA_NULL_BIN, axis=1)

    buttons = np.zeros(n, dtype=np.int64)
    for (group, options), stride in zip(BUTTON_GROUPS.items(), _GROUP_STRIDES):
        choice = np.zeros(n, dtype=np.int64)
        for k, option in enumerate(options[1:], start=1):
            # later options overwrite earlier ones, so the last held button of a group wins
            choice = np.where(column[option], k, choice)
        if group in ("fore_back", "left_right"):
            # opposite directions held together: the player does not move along that axis
            first, second = options[1], options[2]
            choice[column[first] & column[second]] = 0
        buttons += choice * stride

    camera = camera_bins[:, 0] * N_CAMERA_BINS + camera_bins[:, 1]  # pitch bin is the "row", yaw bin the "column"
    inventory = column["inventory"]
    buttons[inventory] = INVENTORY_CLASS
    camera[inventory] = NULL_CAMERA_CLASS
    return {"buttons": buttons, "camera": camera}


def _decode_button_classes():
    """Lookup tables for the inverse mapping: class -> (20,) held buttons, and class -> 'camera meta-action is off'."""
    classes = np.arange(INVENTORY_CLASS)
    table = np.zeros((N_BUTTON_CLASSES, len(BUTTONS)), dtype=np.int64)
    camera_off = np.zeros(N_BUTTON_CLASSES, dtype=bool)
    for (group, options), size, stride in zip(BUTTON_GROUPS.items(), _GROUP_SIZES, _GROUP_STRIDES):
        choice = classes // stride % size  # this group's digit of the mixed-radix class index
        if group == "camera":
            camera_off[:INVENTORY_CLASS] = choice == 0
            continue
        for k, option in enumerate(options[1:], start=1):
            table[:INVENTORY_CLASS, BUTTONS.index(option)] = choice == k
    table[INVENTORY_CLASS, BUTTONS.index("inventory")] = 1
    # OpenAI's quirk, kept for fidelity: the inventory class is not marked "camera off", so whatever camera class is
    # sampled alongside it is executed, although its training target is always the null camera.
    return table, camera_off


BUTTON_CLASS_TABLE, BUTTON_CLASS_CAMERA_OFF = _decode_button_classes()


def policy_to_env_action(policy_action):
    """VPT's joint action {"buttons": (N,), "camera": (N,)} -> MineRL dict: the 20 BUTTONS as int64 (N,) arrays and
    `camera` float32 (N, 2) in degrees. A button class whose camera meta-action is "none" gets zero camera motion."""
    buttons = np.asarray(policy_action["buttons"], dtype=np.int64).reshape(-1)
    camera = np.asarray(policy_action["camera"], dtype=np.int64).reshape(-1)
    held = BUTTON_CLASS_TABLE[buttons]  # (N, 20)
    bins = np.stack([camera // N_CAMERA_BINS, camera % N_CAMERA_BINS], axis=1)  # (N, 2) pitch bin, yaw bin
    bins[BUTTON_CLASS_CAMERA_OFF[buttons]] = CAMERA_NULL_BIN
    env_action = {name: held[:, i] for i, name in enumerate(BUTTONS)}
    env_action["camera"] = dequantize_camera(bins).astype(np.float32)
    return env_action


def minerl_noop(n=None):
    """MineRL's no-op: all 24 keys released, no camera motion. Batched with a leading dim n if n is given."""
    if n is None:
        action = {k: 0 for k in MINERL_KEYS}
        action["camera"] = np.zeros(2, dtype=np.float32)
    else:
        action = {k: np.zeros(n, dtype=np.int64) for k in MINERL_KEYS}
        action["camera"] = np.zeros((n, 2), dtype=np.float32)
    return action


def stack_actions(actions):
    """A list of T unbatched MineRL dicts -> one dict of arrays with a leading dim T (missing keys are 0)."""
    out = {k: np.array([int(a.get(k, 0)) for a in actions], dtype=np.int64) for k in MINERL_KEYS if k != "camera"}
    out["camera"] = np.array([np.asarray(a.get("camera", (0.0, 0.0)), dtype=np.float32) for a in actions])
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The contractor data format (VPT §3.1, Appendix A; vpt-facts.md §2)
# ---------------------------------------------------------------------------------------------------------------------

# The recorder logs the keys held on every frame by their Minecraft names; these are the ones MineRL binds to actions.
KEYBOARD_TO_ACTION = {
    "key.keyboard.escape": "ESC", "key.keyboard.s": "back", "key.keyboard.q": "drop", "key.keyboard.w": "forward",
    **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)},
    "key.keyboard.e": "inventory", "key.keyboard.space": "jump", "key.keyboard.a": "left", "key.keyboard.d": "right",
    "key.keyboard.left.shift": "sneak", "key.keyboard.left.control": "sprint", "key.keyboard.f": "swapHands",
}
ACTION_TO_KEYBOARD = {action: key for key, action in KEYBOARD_TO_ACTION.items()}
MOUSE_TO_ACTION = {0: "attack", 1: "use", 2: "pickItem"}  # mouse button ids: left, right, middle
ACTION_TO_MOUSE = {action: button for button, action in MOUSE_TO_ACTION.items()}
# Degrees of view rotation per mouse count: 2400 counts turn the view a full 360 degrees (a constant of MineRL's Java
# side). camera = [dy, dx] * 0.15: pitch comes from vertical motion (dy > 0 moves the mouse down and looks down).
CAMERA_SCALER = 360.0 / 2400.0
# The recorder stores the GUI cursor position in the coordinates of a 720-pixel-high window, whatever the video's size.
RECORDER_HEIGHT = 720
RECORDING_FPS = 20

# The cursor. OpenAI's videos do not show the mouse pointer in GUIs (inventory, crafting table); their loader pastes a
# 16x16 pointer onto each GUI frame at the recorded position, because the IDM must see where the player is clicking.
# This is our own pointer: X is the black outline, o the white body, . transparent. MineRL 1.0 draws a 16-pixel cursor
# at 360p in its GUIs (cursor_size 16), so at 360p the sprite is drawn 16x16, and it scales with the frame's height.
_CURSOR_ART = """
X...............
XX..............
XoX.............
XooX............
XoooX...........
XooooX..........
XoooooX.........
XooooooX........
XoooooooX.......
XooooooooX......
XoooooXXXXX.....
XooXooX.........
XoX.XooX........
XX..XooX........
X....XooX.......
.....XXX........
"""
_CURSOR_ROWS = _CURSOR_ART.split()
CURSOR_ALPHA = np.array([[c != "." for c in row] for row in _CURSOR_ROWS], dtype=np.float32)  # (16, 16) opacity
CURSOR_RGB = np.array([[255.0 if c == "o" else 0.0 for c in row] for row in _CURSOR_ROWS], dtype=np.float32)  # (16, 16) white body, black outline
MIN_CURSOR_SIZE = 5  # below this the pointer is a blob; tiny toy frames get at least this many pixels
_cursor_cache = {}


def _cursor_sprite(frame_height):
    size = max(MIN_CURSOR_SIZE, round(16 * frame_height / 360))
    if size not in _cursor_cache:
        if size == 16:
            rgb, alpha = CURSOR_RGB, CURSOR_ALPHA
        else:
            rgb = cv2.resize(CURSOR_RGB, (size, size), interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(CURSOR_ALPHA, (size, size), interpolation=cv2.INTER_AREA)
        _cursor_cache[size] = (rgb[:, :, None], alpha[:, :, None])  # (s, s, 1) each: grey, same in every channel
    return _cursor_cache[size]


def draw_cursor(frame, x, y):
    """Alpha-blend the pointer onto `frame` (H, W, 3) uint8, in place, its tip at recorder coordinates (x, y).

    (x, y) are in the recorder's 720-pixel-high convention; the pixel is (int(x * s), int(y * s)) with s = H / 720,
    as in OpenAI's loader. One function serves the data reader and toycraft's live GUI, so that frames a model trains on
    and frames it sees in a rollout show the same pointer. (OpenAI's public `data_loader.py` computes the paste size as
    min(0, ...), which is never positive, so it silently draws nothing; we draw it, as the paper's pipeline did.)
    """
    h, w = frame.shape[:2]
    rgb, alpha = _cursor_sprite(h)
    scale = h / RECORDER_HEIGHT
    left, top = int(x * scale), int(y * scale)
    # clip the sprite to the frame on every side
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + rgb.shape[0], h), min(left + rgb.shape[1], w)
    if y1 <= y0 or x1 <= x0:
        return frame
    sy, sx = y0 - top, x0 - left
    a = alpha[sy:sy + y1 - y0, sx:sx + x1 - x0]
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (patch * (1 - a) + rgb[sy:sy + y1 - y0, sx:sx + x1 - x0] * a).astype(np.uint8)
    return frame


class RecordingError(ValueError):
    """A recording that cannot be read as it stands. The message names the file (and line) and what is wrong."""


@dataclasses.dataclass
class ContractorEpisode:
    """One recording as the models see it: frames and the action taken on each.

    frames[t] is what the player saw when taking the action at t (the action's effect shows from frame t+1 on).
    """

    frames: np.ndarray  # (T, size, size, 3) uint8 RGB, cursor drawn on GUI frames
    actions: dict  # the 20 BUTTONS -> int64 (T,), "camera" -> float32 (T, 2) degrees [pitch, yaw]
    gui_open: np.ndarray  # (T,) bool: a GUI (inventory, crafting table, ...) was open
    frame_index: np.ndarray  # (T,) int64: each kept frame's index in the recording (null frames leave gaps)
    records: list  # the T raw jsonl objects of the kept frames
    video_path: str
    jsonl_path: str
    options: dict = None  # <stem>-options.json if present (toycraft stores its world seed and player here)

    def __len__(self):
        return len(self.frame_index)


def recording_paths(video_path, jsonl_path=None):
    """The files of one recording: <stem>.mp4, <stem>.jsonl, <stem>-options.json."""
    video_path = Path(video_path)
    stem = video_path.with_suffix("")
    jsonl_path = Path(jsonl_path) if jsonl_path is not None else stem.with_suffix(".jsonl")
    return video_path, jsonl_path, stem.parent / (stem.name + "-options.json")


def _read_jsonl(jsonl_path):
    """Parse a jsonl file into a list of dicts, with an error that names file and line for anything malformed."""
    if not jsonl_path.exists():
        raise RecordingError(f"{jsonl_path}: missing (every .mp4 needs the .jsonl of its actions beside it)")
    records = []
    with open(jsonl_path) as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordingError(f"{jsonl_path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        try:
            # the fields the reader needs; anything else in the record is carried along untouched
            _ = (record["mouse"]["dx"], record["mouse"]["dy"], record["mouse"]["buttons"], record["keyboard"]["keys"])
        except (KeyError, TypeError) as e:
            raise RecordingError(f"{jsonl_path}:{lineno}: not a recorder frame (missing field {e})") from None
        records.append(record)
    if not records:
        raise RecordingError(f"{jsonl_path}: empty, no frames recorded")
    return records


def json_to_env_actions(records):
    """Recorder jsonl objects -> (MineRL action dict of arrays (T,), null mask (T,)), as OpenAI's loader does it.

    Two repairs of the raw log happen here (OpenAI `data_loader.py`):
    - stuck attack: some recordings begin with the left button reported as newly pressed on the first frame although the
      player never pressed it; then attack is removed from every frame until the button is really pressed again;
    - scroll wheel: the recorder does not log the wheel, but players select hotbar slots with it, so whenever the
      selected slot (`hotbar`, 0-based) changes we add the key press `hotbar.{slot+1}` on that frame.
    A frame is null when no bound key is held, the mouse did not move and no mouse button is held. The null test is made
    before the scroll-wheel repair, as OpenAI's loader does, so a frame that only scrolled stays null.
    """
    t_len = len(records)
    actions = {k: np.zeros(t_len, dtype=np.int64) for k in MINERL_KEYS if k != "camera"}
    camera = np.zeros((t_len, 2), dtype=np.float64)
    null = np.ones(t_len, dtype=bool)
    attack_stuck = False
    last_hotbar = 0
    for t, record in enumerate(records):
        mouse, keys = record["mouse"], record["keyboard"]["keys"]
        buttons = mouse["buttons"]
        if t == 0:
            attack_stuck = mouse.get("newButtons") == [0]
        elif attack_stuck and 0 in mouse.get("newButtons", []):
            attack_stuck = False
        if attack_stuck:
            buttons = [b for b in buttons if b != 0]
        for key in keys:
            if key in KEYBOARD_TO_ACTION:  # other keys (chat, F3, ...) are not actions
                actions[KEYBOARD_TO_ACTION[key]][t] = 1
                null[t] = False
        for button in buttons:
            if button in MOUSE_TO_ACTION:
                actions[MOUSE_TO_ACTION[button]][t] = 1
                null[t] = False
        # Kept as float degrees. OpenAI's code stores this in an integer array and so truncates it (5.85 -> 5, and any
        # motion under 1 degree -> 0; their issue #54); their ">180 degrees -> 0" clamp sits in a branch where the
        # motion is zero and never acts (issue #49). We do neither.
        camera[t] = (mouse["dy"] * CAMERA_SCALER, mouse["dx"] * CAMERA_SCALER)
        if mouse["dx"] != 0 or mouse["dy"] != 0:
            null[t] = False
        hotbar = record.get("hotbar", last_hotbar)
        if hotbar != last_hotbar:
            actions[f"hotbar.{hotbar + 1}"][t] = 1
        last_hotbar = hotbar
    actions["camera"] = camera.astype(np.float32)
    return actions, null


def _open_video(video_path):
    if not video_path.exists():
        raise RecordingError(f"{video_path}: missing")
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise RecordingError(f"{video_path}: cannot be opened as a video (corrupt, empty, or not a video file)")
    return cap


def _resize(frame, size):
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    # VPT §D / facts §2.4: bilinear, exactly cv2's INTER_LINEAR; the released models were trained on these pixels
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)


def load_contractor_episode(video_path, jsonl_path=None, size=128, skip_null=True):
    """Read one recording (<stem>.mp4 + <stem>.jsonl) into a ContractorEpisode, as OpenAI's data loader does.

    Frame t of the video goes with line t of the jsonl. Real recordings have one frame more than lines (the screen after
    the last action); extra frames are ignored. A video with fewer frames than lines is an error, never a silent shift.
    With `skip_null`, frames whose action is null are dropped (VPT §4.1: idle frames are most of human play and teach
    the policy to stand still); the frame is still decoded so that the video stays in step with the jsonl.
    """
    video_path, jsonl_path, options_path = recording_paths(video_path, jsonl_path)
    records = _read_jsonl(jsonl_path)
    env_actions, null = json_to_env_actions(records)
    keep = ~null if skip_null else np.ones(len(records), dtype=bool)
    kept = np.flatnonzero(keep)
    frames = np.empty((len(kept), size, size, 3), dtype=np.uint8)

    cap = _open_video(video_path)
    try:
        j = 0
        for t, record in enumerate(records):
            if not keep[t]:
                # grab() decodes but skips the colour conversion and copy of a frame we do not need
                if not cap.grab():
                    _short_video(video_path, jsonl_path, t, len(records))
                continue
            ok, frame = cap.read()  # BGR, the recording's own resolution
            if not ok:
                _short_video(video_path, jsonl_path, t, len(records))
            if record.get("isGuiOpen", False):
                # at native resolution before resizing, where OpenAI's loader pastes it
                draw_cursor(frame, record["mouse"].get("x", 0.0), record["mouse"].get("y", 0.0))
            # Resizing is per channel, so resizing BGR and then swapping to RGB gives the same pixels as OpenAI's
            # order (swap, then resize) at a fraction of the cost.
            frames[j] = _resize(frame, size)[:, :, ::-1]
            j += 1
    finally:
        cap.release()

    options = None
    if options_path.exists():
        try:
            options = json.loads(options_path.read_text())
        except json.JSONDecodeError as e:
            raise RecordingError(f"{options_path}: malformed JSON ({e.msg})") from None
    return ContractorEpisode(
        frames=frames,
        actions={k: v[kept] for k, v in env_actions.items() if k not in DROPPED_KEYS},
        gui_open=np.array([bool(records[t].get("isGuiOpen", False)) for t in kept], dtype=bool),
        frame_index=kept.astype(np.int64),
        records=[records[t] for t in kept],
        video_path=str(video_path),
        jsonl_path=str(jsonl_path),
        options=options,
    )


def _short_video(video_path, jsonl_path, t, n_lines):
    raise RecordingError(
        f"{video_path}: only {t} frames could be decoded but {jsonl_path.name} has {n_lines} lines "
        f"(truncated or corrupt video; refusing to misalign frames and actions)"
    )


def find_recordings(data):
    """All recordings under a folder (searched recursively, like OpenAI's versioned data/6.13/... tree), or the list of
    .mp4 paths given. Returns sorted .mp4 paths; each is expected to have its .jsonl beside it."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return sorted(Path(data).rglob("*.mp4"))
    if isinstance(data, (str, Path)):
        if not Path(data).exists():
            raise FileNotFoundError(f"{data}: no such file or folder")
        return [Path(data)]
    return sorted(Path(p) for p in data)


class ContractorDataset:
    """The recordings of a folder, read one at a time. With `skip_bad`, a recording that cannot be read is skipped with
    a warning naming the file and the reason, and counted in `.skipped`, instead of stopping the run."""

    def __init__(self, data, size=128, skip_null=True, skip_bad=False):
        self.videos = find_recordings(data)
        self.size, self.skip_null, self.skip_bad = size, skip_null, skip_bad
        self.skipped = []  # (video path, reason)

    def __len__(self):
        return len(self.videos)

    def __iter__(self):
        self.skipped = []
        for video in self.videos:
            try:
                yield load_contractor_episode(video, size=self.size, skip_null=self.skip_null)
            except RecordingError as e:
                if not self.skip_bad:
                    raise
                self.skipped.append((str(video), str(e)))
                warnings.warn(f"skipping bad recording: {e}", stacklevel=2)
        if self.skipped:
            warnings.warn(f"skipped {len(self.skipped)} of {len(self.videos)} recordings (see warnings above)",
                          stacklevel=2)


def _as_action_arrays(actions, t_len=None):
    """Accept a list of MineRL dicts or a dict of arrays; return a dict of arrays (T,) with all 24 keys."""
    if isinstance(actions, dict):
        n = t_len if t_len is not None else _batch_size(actions)
        out = {k: np.broadcast_to(np.asarray(actions.get(k, 0)), (n,)).astype(np.int64)
               for k in MINERL_KEYS if k != "camera"}
        out["camera"] = np.asarray(actions.get("camera", np.zeros((n, 2))), dtype=np.float64).reshape(n, 2)
        return out
    return _as_action_arrays(stack_actions(actions), len(actions))


def _mouse_counts(degrees):
    """Degrees -> mouse counts for the jsonl; a whole number of counts is written as an int, as the recorder does."""
    counts = degrees / CAMERA_SCALER
    nearest = round(counts)
    return int(nearest) if abs(counts - nearest) < 1e-6 else float(counts)


VIDEO_CODECS = ("mp4v", "FFV1")


def write_contractor_episode(video_path, frames, actions, gui_open=None, cursor=None, hotbar=None, extras=None,
                             options=None, fps=RECORDING_FPS, codec="mp4v", jsonl_path=None):
    """Write a recording in OpenAI's contractor format: <stem>.mp4, <stem>.jsonl and, with `options`, -options.json.

    frames:   (T or T+1, H, W, 3) uint8 RGB; frame t is what the player saw before action t (T+1 includes the last
              screen, as real recordings do).
    actions:  MineRL actions taken, a list of T dicts or a dict of arrays with leading dim T (24 keys, camera degrees).
    gui_open: (T,) bool, a GUI was open during the frame; cursor: (T, 2) pointer position in recorder coordinates
              (720 pixels high), required where a GUI is open. As in OpenAI's data, the video shows no pointer:
              the reader draws it back from these numbers.
    hotbar:   (T,) selected slot (0-based) after the action; derived from the hotbar keys when not given.
    extras:   per-frame dicts merged into the jsonl records (inventory, yaw, pitch, xpos, ... as the recorder logs).
    codec:    "mp4v" (MPEG-4 part 2: lossy, small, plays anywhere; OpenCV's pip wheels cannot write H.264 and fix the
              bitrate near 1 bit a pixel) or "FFV1" (lossless, several times larger, read by the same OpenCV).
    jsonl_path: where the actions go, if not <stem>.jsonl (toycraft's web videos keep theirs as hidden truth).

    Camera degrees are written as mouse counts (dx = yaw / 0.15, dy = pitch / 0.15). The first frame's `newButtons`
    is written empty: a recording whose first frame reports only the left button as newly pressed is what the reader's
    stuck-attack repair looks for, and it would strip a real attack from a recording that starts mining at once.
    """
    video_path, jsonl_path, options_path = recording_paths(video_path, jsonl_path)
    frames = np.asarray(frames)
    acts = _as_action_arrays(actions)
    t_len = len(acts["camera"])
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{video_path}: frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    if len(frames) not in (t_len, t_len + 1):
        raise ValueError(f"{video_path}: {len(frames)} frames for {t_len} actions (need T or T+1 frames)")
    gui_open = np.zeros(t_len, dtype=bool) if gui_open is None else np.asarray(gui_open, dtype=bool)
    if gui_open.any() and cursor is None:
        raise ValueError(f"{video_path}: a GUI is open on some frames, so the cursor positions are needed")
    cursor = np.zeros((t_len, 2)) if cursor is None else np.asarray(cursor, dtype=np.float64).reshape(t_len, 2)
    if hotbar is None:
        # the selected slot follows the hotbar keys; with several held the highest wins, as in the joint action space
        hotbar = np.zeros(t_len, dtype=np.int64)
        slot = 0
        for t in range(t_len):
            for i in range(1, 10):
                if acts[f"hotbar.{i}"][t]:
                    slot = i - 1
            hotbar[t] = slot

    if codec not in VIDEO_CODECS:
        raise ValueError(f"{video_path}: codec must be one of {VIDEO_CODECS}, got {codec!r}")

    video_path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise RecordingError(f"{video_path}: OpenCV cannot write {codec} video here")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # RGB -> BGR
    writer.release()

    held_keys, held_buttons = [], []
    with open(jsonl_path, "w") as f:
        for t in range(t_len):
            keys = [ACTION_TO_KEYBOARD[a] for a in ACTION_TO_KEYBOARD if acts[a][t]]
            buttons = [ACTION_TO_MOUSE[a] for a in ACTION_TO_MOUSE if acts[a][t]]
            new_buttons = [] if t == 0 else [b for b in buttons if b not in held_buttons]
            record = {
                "mouse": {
                    "x": float(cursor[t, 0]), "y": float(cursor[t, 1]),
                    "dx": _mouse_counts(float(acts["camera"][t, 1])), "dy": _mouse_counts(float(acts["camera"][t, 0])),
                    "dwheel": 0, "buttons": buttons, "newButtons": new_buttons,
                },
                "keyboard": {"keys": keys, "newKeys": [k for k in keys if k not in held_keys], "chars": ""},
                "isGuiOpen": bool(gui_open[t]),
                "hotbar": int(hotbar[t]),
                "tick": t,
            }
            if extras is not None:
                record.update(extras[t])
            f.write(json.dumps(record) + "\n")
            held_keys, held_buttons = keys, buttons
    if options is not None:
        options_path.write_text(json.dumps(options, indent=1))
    return video_path


# ---------------------------------------------------------------------------------------------------------------------
# Benchmark: how fast recordings are read
# ---------------------------------------------------------------------------------------------------------------------


def _synthetic_recording(path, t_len, height, width, seed=0, codec="mp4v"):
    """A recording with moving, textured frames (compresses like game footage, not like a still) and busy actions."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (height // 8, width // 4, 3), dtype=np.uint8), (width * 2, height),
                         interpolation=cv2.INTER_NEAREST)
    frames = np.stack([texture[:, (5 * t) % width:(5 * t) % width + width] for t in range(t_len + 1)])
    actions = minerl_noop(t_len)
    actions["forward"][:] = 1
    actions["camera"][:] = rng.integers(-20, 21, (t_len, 2)) * CAMERA_SCALER
    gui = np.zeros(t_len, dtype=bool)
    gui[t_len // 2: t_len // 2 + t_len // 10] = True  # a tenth of the time in a GUI, so the cursor is drawn too
    cursor = rng.uniform(0, RECORDER_HEIGHT, (t_len, 2))
    return write_contractor_episode(path, frames, actions, gui_open=gui, cursor=cursor, codec=codec)


def _decode_openai_order(path, size):
    """The baseline: decode every frame, BGR->RGB at full size, then resize (OpenAI's data_loader order, no parsing)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.cvtColor(frame, code=cv2.COLOR_BGR2RGB, dst=frame)
        frames.append(_resize(frame, size))
    cap.release()
    return frames


def bench(args):
    """Frames/s of load_contractor_episode (decode + cursor + resize + action parsing) on one core, next to a
    baseline that only decodes and resizes in OpenAI's order, timed alternately on the same file."""
    import tempfile

    cv2.setNumThreads(1)  # one reader per worker process is how training uses it; measure that
    cases = [("640x360 mp4v -> 128x128 (contractor size)", 360, 640, 128, "mp4v"),
             ("64x64 mp4v -> 64x64 (toy)", 64, 64, 64, "mp4v"),
             ("64x64 FFV1 -> 64x64 (toy, lossless)", 64, 64, 64, "FFV1")]
    t_len = 120 if args.smoke else 1200  # 1200 frames = one minute at 20 Hz
    print(f"reading {t_len}-frame recordings, {args.repeats} repeats each, 1 thread")
    print(f"  {'recording':44s} {'ours':>10s} {'baseline':>10s} {'ours/baseline':>14s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, h, w, size, codec in cases:
            path = _synthetic_recording(Path(tmp) / f"bench_{h}_{codec}.mp4", t_len, h, w, codec=codec)
            ours, base = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                n = len(load_contractor_episode(path, size=size, skip_null=False))
                ours.append(n / (time.perf_counter() - start))
                start = time.perf_counter()
                n = len(_decode_openai_order(path, size))
                base.append(n / (time.perf_counter() - start))
            ratio = np.median(np.array(ours) / np.array(base))
            print(f"  {name:44s} {np.median(ours):10.0f} {np.median(base):10.0f} {ratio:14.2f}")
    print("frames/s, medians; the baseline decodes and resizes only (no jsonl, no cursor)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="frames/s of reading contractor recordings")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="short recordings, for tests")
    args = parser.parse_args()
    if args.command == "bench":
        bench(args)


if __name__ == "__main__":
    main()
