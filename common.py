"""
common.py: what two or more stages of nanoVPT share.

VPT (Baker et al. 2022, arXiv 2206.11795) learns to play Minecraft from unlabelled video in five steps, one script each
(01_idm.py ... 05_rl.py). They all speak the same languages, and those live here:

1. **The action space** (VPT §2 and Appendix D). A human plays Minecraft with a keyboard and a mouse at 20 Hz.
   MineRL 1.0 exposes that as a dict of 24 keys: 23 buttons held (0/1) plus `camera`, a mouse motion in degrees
   [d_pitch, d_yaw]. VPT's policy does not predict that dict directly. It predicts two categorical variables: one
   joint class over the 8641 combinations of buttons that make sense together, and one over the 121 (11 x 11)
   quantised camera motions.
   `env_to_policy_action` and `policy_to_env_action` translate exactly as OpenAI's lib/actions.py does, so that their
   released weights and our models mean the same thing by the same number.
2. **The contractor data format** (VPT §3.1 and Appendix A). OpenAI paid people to play and recorded their screen
   (`<stem>.mp4`) beside what their keyboard and mouse did on every frame (`<stem>.jsonl`, one JSON object a frame).
   Everything in nanoVPT is stored this way: toycraft's contractor recordings, and the pseudo-labels that 03_label.py
   writes for web video. `load_contractor_episode` reads it as OpenAI's data_loader.py does; `write_contractor_episode`
   writes it.
3. **The networks** (VPT §4.1 and Appendix H): the ImpalaCNN + transformer trunk, the policy's and the IDM's heads,
   with OpenAI's module names and sizes, so that their released .model/.weights files load; and our checkpoints.
4. **Running a stage**: the device, seeds and torchrun (`setup_run`), the optimiser and its schedule, data-size
   subsets (`take_hours`), and downloading OpenAI's contractor data from an index (`download_recordings`).

docs/openai-compat.md says where each piece departs from OpenAI's code, and why. The worlds a policy plays in and the
item metric are in worlds.py; benchmarks of this file's reader and networks are in tools/bench.py.
"""

import argparse
import atexit
import dataclasses
import datetime
import errno
import json
import math
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import sys
import warnings
from pathlib import Path

# ffmpeg's own notes on a broken file ("moov atom not found") would come before, and add nothing to, the one line that
# names the file and what is wrong
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

# ---------------------------------------------------------------------------------------------------------------------
# The action space (VPT §2, Appendix D; OpenAI's lib/actions.py and lib/action_mapping.py)
# ---------------------------------------------------------------------------------------------------------------------

# The 20 buttons the VPT models know, in the order of OpenAI's `Buttons.ALL`. The order matters: it is the column order
# of every button array, and the IDM's 20 binary heads are laid out in it.
BUTTONS = [
    "attack", "back", "forward", "jump", "left", "right", "sneak", "sprint", "use", "drop", "inventory",
    "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4", "hotbar.5", "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9",
]
# MineRL 1.0's HumanSurvival action dict has 24 keys. VPT drops three of them: ESC (closes a GUI; OpenAI's own
# pipeline replaced it by `inventory`), pickItem (middle mouse) and swapHands (F). They are never predicted.
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
    (lib/action_mapping.py, `CameraHierarchicalMapping.from_factored`):
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


# The items of the diamond-pickaxe sequence, in the paper's order (VPT §4.4, Fig. 4 and 7, Table 7). Evaluation counts,
# per episode, whether each was obtained; 05_rl.py's reward is paid for them.
ITEMS = [
    "log", "planks", "stick", "crafting_table", "wooden_pickaxe", "cobblestone", "stone_pickaxe", "furnace", "coal",
    "torch", "iron_ore", "iron_ingot", "iron_pickaxe", "diamond", "diamond_pickaxe",
]


# ---------------------------------------------------------------------------------------------------------------------
# The contractor data format (VPT §3.1, Appendix A; OpenAI's data_loader.py and run_inverse_dynamics_model.py)
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


def _sprite(art):
    """Pixel art -> (grey levels, opacity), float32 arrays of its shape: white body, black outline, clear elsewhere."""
    rows = art.split()
    rgb = np.array([[255.0 if c == "o" else 0.0 for c in row] for row in rows], dtype=np.float32)
    alpha = np.array([[c != "." for c in row] for row in rows], dtype=np.float32)
    return rgb, alpha


CURSOR_RGB, CURSOR_ALPHA = _sprite(_CURSOR_ART)  # (16, 16) each

# Shrunk below 6 pixels, the arrow blurs into a grey smudge on the grey GUI, which the toy networks learned to ignore
# in training. Frames that small (toycraft's 64x64) get this 7-pixel arrow, drawn pixel by pixel instead: a stand-in
# for the sharp pointer a player sees on a real screen.
_SMALL_CURSOR_ART = """
X.....
XX....
XoX...
XooX..
XoooX.
XoXXXX
XX....
"""
SMALL_CURSOR_RGB, SMALL_CURSOR_ALPHA = _sprite(_SMALL_CURSOR_ART)  # (7, 6) each
MIN_CURSOR_SIZE = 6  # a resized arrow smaller than this is drawn as the pixel art above
_cursor_cache = {}


def _cursor_sprite(frame_height):
    size = round(16 * frame_height / 360)
    if size not in _cursor_cache:
        if size < MIN_CURSOR_SIZE:
            rgb, alpha = SMALL_CURSOR_RGB, SMALL_CURSOR_ALPHA
        elif size == 16:
            rgb, alpha = CURSOR_RGB, CURSOR_ALPHA
        else:
            rgb = cv2.resize(CURSOR_RGB, (size, size), interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(CURSOR_ALPHA, (size, size), interpolation=cv2.INTER_AREA)
        _cursor_cache[size] = (rgb[:, :, None], alpha[:, :, None])  # (h, w, 1) each: grey, same in every channel
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


class UserError(Exception):
    """A fault in what the user gave a script (a file, a flag, a folder), not in the code. `run_main` prints its message
    as one line, naming the script, and exits with status 1; every other exception keeps its traceback."""


class DataWarning(UserWarning):
    """Something in the user's data that a stage works around rather than stops for (a recording skipped, a label
    past a video's end). `run_main` prints it as one line, "<script>: warning: <what>"."""


class RecordingError(UserError, ValueError):
    """A recording that cannot be read as it stands. The message names the file (and line) and what is wrong."""


@dataclasses.dataclass
class ContractorEpisode:
    """One recording as the models see it: frames and the action taken on each.

    frames[t] is what the player saw when taking the action at t (the action's effect shows from frame t+1 on).
    """

    frames: np.ndarray  # (T, size, size, 3) uint8 RGB, cursor drawn on GUI frames
    actions: dict  # the 20 BUTTONS -> int64 (T,), "camera" -> float32 (T, 2) degrees [pitch, yaw]
    gui_open: np.ndarray  # (T,) bool: a GUI (inventory, crafting table, ...) was open
    frame_index: np.ndarray  # (T,) int64: each kept frame's index in the video (null frames leave gaps)
    records: list  # the T raw jsonl objects of the kept frames
    video_path: str
    jsonl_path: str
    options: dict = None  # <stem>-options.json if present (toycraft stores its world seed and player here; a
    # pseudo-labelled segment, its source video and frame range)

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
        wrong = _wrong_field(record)
        if wrong:
            raise RecordingError(f"{jsonl_path}:{lineno}: not a recorder frame ({wrong})")
        records.append(record)
    if not records:
        raise RecordingError(f"{jsonl_path}: empty, no frames recorded")
    return records


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _wrong_field(record):
    """What is wrong with the types of a recorder frame's fields, or None: mouse dx, dy numbers, buttons a list of
    button numbers, keys a list of key names, hotbar (where present) a slot 0-8."""
    mouse, keys = record["mouse"], record["keyboard"]["keys"]
    for axis in ("dx", "dy"):
        if not _is_number(mouse[axis]):
            return f"mouse {axis} is {mouse[axis]!r}, not a number"
    for field, value in (("buttons", mouse["buttons"]), ("newButtons", mouse.get("newButtons", []))):
        if not isinstance(value, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in value):
            return f"mouse {field} is {value!r}, not a list of button numbers"
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return f"keyboard keys is {keys!r}, not a list of key names"
    hotbar = record.get("hotbar", 0)
    if not isinstance(hotbar, int) or isinstance(hotbar, bool) or not 0 <= hotbar <= 8:
        return f"hotbar is {hotbar!r}, not a slot 0-8"
    return None


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
        # motion under 1 degree -> 0, as reported on their repository); their ">180 degrees -> 0" clamp sits in a branch
        # where the motion is zero and never acts. We do neither.
        camera[t] = (mouse["dy"] * CAMERA_SCALER, mouse["dx"] * CAMERA_SCALER)
        if mouse["dx"] != 0 or mouse["dy"] != 0:
            null[t] = False
        hotbar = record.get("hotbar", last_hotbar)
        if hotbar != last_hotbar:
            actions[f"hotbar.{hotbar + 1}"][t] = 1
        last_hotbar = hotbar
    actions["camera"] = camera.astype(np.float32)
    return actions, null


def read_actions(jsonl_path):
    """A recording's .jsonl alone -> (MineRL action dict of arrays (T,), null mask (T,)); no video is read."""
    return json_to_env_actions(_read_jsonl(Path(jsonl_path)))


def _open_video(video_path):
    if not video_path.exists():
        raise RecordingError(f"{video_path}: missing")
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise RecordingError(f"{video_path}: cannot be opened as a video (corrupt, empty, or not a video file)")
    return cap


def resize_frame(frame, size):
    """A frame (H, W, C) -> (size, size, C), as the VPT models were trained: cv2 INTER_LINEAR."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    # OpenAI's data_loader.py and agent.py: bilinear, exactly cv2's INTER_LINEAR; the released models saw these pixels
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)


def read_options(options_path):
    if not options_path.exists():
        return None
    try:
        return json.loads(options_path.read_text())
    except json.JSONDecodeError as e:
        raise RecordingError(f"{options_path}: malformed JSON ({e.msg})") from None


def _segment_source(jsonl_path):
    """A pseudo-labelled segment (03_label.py) is <stem>.jsonl + <stem>-options.json with no video of its own: the options
    name the source video ("video", relative to the jsonl's folder) and the frame its first line goes with ("start").
    Returns (video path, start frame, options)."""
    options_path = jsonl_path.parent / (jsonl_path.stem + "-options.json")
    options = read_options(options_path)
    if not options or "video" not in options:
        raise RecordingError(f"{jsonl_path}: no video for these actions (expected {jsonl_path.with_suffix('.mp4').name} "
                             f"beside it, or {options_path.name} naming the source \"video\" and \"start\" frame)")
    return jsonl_path.parent / options["video"], int(options.get("start", 0)), options


def load_contractor_episode(video_path, jsonl_path=None, size=128, skip_null=True, max_frames=None):
    """Read one recording (<stem>.mp4 + <stem>.jsonl) into a ContractorEpisode, as OpenAI's data loader does.

    Frame t of the video goes with line t of the jsonl. Real recordings have one frame more than lines (the screen after
    the last action); extra frames are ignored. A video with fewer frames than lines is an error, never a silent shift.
    With `skip_null`, frames whose action is null are dropped (VPT §4.1: idle frames are most of human play and teach
    the policy to stand still); the frame is still decoded so that the video stays in step with the jsonl.

    Given a .jsonl with no video beside it, reads a pseudo-labelled segment: line t goes with frame start+t of the
    source video that its -options.json names (see `_segment_source`).

    While a GUI is open the pointer is drawn at the recorded position, as the player saw it. `max_frames` reads only the
    recording's first frames (04_bc.py --early-game).
    """
    start = 0
    if Path(video_path).suffix == ".jsonl" and not Path(video_path).with_suffix(".mp4").exists():
        jsonl_path = Path(video_path)
        video_path, start, options = _segment_source(jsonl_path)
    else:
        video_path, jsonl_path, options_path = recording_paths(video_path, jsonl_path)
        options = read_options(options_path)
    records = _read_jsonl(jsonl_path)[:max_frames]
    env_actions, null = json_to_env_actions(records)
    keep = ~null if skip_null else np.ones(len(records), dtype=bool)
    kept = np.flatnonzero(keep)
    frames = np.empty((len(kept), size, size, 3), dtype=np.uint8)

    cap = _open_video(video_path)
    try:
        if start:
            _seek(cap, video_path, start)
        j = 0
        for t, record in enumerate(records):
            if not keep[t]:
                # grab() decodes but skips the colour conversion and copy of a frame we do not need
                if not cap.grab():
                    _short_video(video_path, jsonl_path, start + t, start + len(records))
                continue
            ok, frame = cap.read()  # BGR, the recording's own resolution
            if not ok:
                _short_video(video_path, jsonl_path, start + t, start + len(records))
            if record.get("isGuiOpen", False):
                # at native resolution before resizing, where OpenAI's loader pastes it
                draw_cursor(frame, record["mouse"].get("x", 0.0), record["mouse"].get("y", 0.0))
            # Resizing is per channel, so resizing BGR and then swapping to RGB gives the same pixels as OpenAI's
            # order (swap, then resize) at a fraction of the cost.
            frames[j] = resize_frame(frame, size)[:, :, ::-1]
            j += 1
    finally:
        cap.release()

    return ContractorEpisode(
        frames=frames,
        actions={k: v[kept] for k, v in env_actions.items() if k not in DROPPED_KEYS},
        gui_open=np.array([bool(records[t].get("isGuiOpen", False)) for t in kept], dtype=bool),
        frame_index=(start + kept).astype(np.int64),
        records=[records[t] for t in kept],
        video_path=str(video_path),
        jsonl_path=str(jsonl_path),
        options=options,
    )


def _seek(cap, video_path, frame):
    """Move a capture to `frame`. Exact for constant-frame-rate files such as those written here; resample variable-
    frame-rate web video to a constant 20 fps before use (ffmpeg -r 20), as VPT's data pipeline did."""
    if not cap.set(cv2.CAP_PROP_POS_FRAMES, frame) or int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != frame:
        raise RecordingError(f"{video_path}: cannot seek to frame {frame} (shorter than that, or not seekable)")


def iter_frames(video_path, size, start=0, end=None):
    """Frames start..end-1 of a video (end None: to its end), one at a time, resized to (size, size), RGB uint8. Streams,
    so that an hour-long web video never has to fit in memory."""
    video_path = Path(video_path)
    cap = _open_video(video_path)
    try:
        if start:
            _seek(cap, video_path, start)
        t = start
        while end is None or t < end:
            ok, frame = cap.read()
            if not ok:
                if end is not None:
                    raise RecordingError(f"{video_path}: only {t} frames could be decoded, frames up to {end} needed "
                                         f"(truncated or corrupt video)")
                if t == 0:
                    raise RecordingError(f"{video_path}: no frames could be decoded (empty or corrupt video)")
                return
            yield resize_frame(frame, size)[:, :, ::-1]
            t += 1
    finally:
        cap.release()


def read_frames(video_path, size, start=0, end=None):
    """iter_frames into one array (n, size, size, 3)."""
    return np.stack(list(iter_frames(video_path, size, start, end)))


def _short_video(video_path, jsonl_path, t, n_lines):
    raise RecordingError(
        f"{video_path}: only {t} frames could be decoded but {jsonl_path.name} has {n_lines} lines "
        f"(truncated or corrupt video; refusing to misalign frames and actions)"
    )


def find_recordings(data):
    """All recordings under a folder (searched recursively, like OpenAI's versioned data/6.13/... tree), or the list of
    paths given. Returns sorted paths: each .mp4 (its .jsonl beside it), and the .jsonl of each pseudo-labelled
    segment (03_label.py: no video of its own, its -options.json names the source video)."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        videos = list(Path(data).rglob("*.mp4"))
        for options_path in Path(data).rglob("*-options.json"):
            jsonl = options_path.with_name(options_path.name[:-len("-options.json")] + ".jsonl")
            if jsonl.exists() and not jsonl.with_suffix(".mp4").exists() and "video" in (read_options(options_path)
                                                                                          or {}):
                videos.append(jsonl)
        return sorted(videos)
    if isinstance(data, (str, Path)):
        if not Path(data).exists():
            raise FileNotFoundError(f"{data}: no such file or folder")
        return [Path(data)]
    return sorted(Path(p) for p in data)


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
    if gui_open is not None and np.any(gui_open) and cursor is None:
        raise ValueError(f"{video_path}: a GUI is open on some frames, so the cursor positions are needed")
    if codec not in VIDEO_CODECS:
        raise ValueError(f"{video_path}: codec must be one of {VIDEO_CODECS}, got {codec!r}")

    write_video(video_path, frames, fps, codec)
    write_actions_jsonl(jsonl_path, acts, gui_open, cursor, hotbar, extras)
    if options is not None:
        options_path.write_text(json.dumps(options, indent=1))
    return video_path


def write_actions_jsonl(jsonl_path, actions, gui_open=None, cursor=None, hotbar=None, extras=None):
    """The action half of a recording: one recorder-format JSON object per action (see write_contractor_episode for the
    arguments). 03_label.py writes its pseudo-labels with this alone: their frames stay in the source video."""
    jsonl_path = Path(jsonl_path)
    acts = _as_action_arrays(actions)
    t_len = len(acts["camera"])
    gui_open = np.zeros(t_len, dtype=bool) if gui_open is None else np.asarray(gui_open, dtype=bool)
    if gui_open.any() and cursor is None:
        raise ValueError(f"{jsonl_path}: a GUI is open on some frames, so the cursor positions are needed")
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

    held_keys, held_buttons = [], []
    make_folder(jsonl_path.parent)
    tmp = jsonl_path.with_name(jsonl_path.name + ".tmp")  # renamed when complete: a file that exists is whole
    with open(tmp, "w") as f:
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
    os.replace(tmp, jsonl_path)
    return jsonl_path


# ---------------------------------------------------------------------------------------------------------------------
# The networks (VPT §4.1, Appendix H; OpenAI's lib/policy.py, lib/impala_cnn.py, lib/xf.py, lib/masked_attention.py)
# ---------------------------------------------------------------------------------------------------------------------
# One network family serves both models. A frame goes through an ImpalaCNN to a vector; a stack of transformer blocks
# mixes the vectors of neighbouring frames; heads turn each frame's vector into action probabilities.
# - The policy (VPT §4.1) is causal: frame t attends to itself and the 127 frames before it, carried across chunks
#   in a key/value memory, so it can act in real time.
# - The IDM (VPT §3.1, Fig. 2) is non-causal: a 3-D convolution first mixes each pixel over frames t-2..t+2, and its
#   attention sees the whole clip, past and future. Knowing what happened next makes labelling actions easy.
# Module and parameter names are OpenAI's (`img_process.cnn.stacks.0.firstconv.layer.weight`, `pi_head.buttons.
# linear_layer.weight`, ...), so their released .weights load by name with no renaming table.


def _fan_in_(layer, scale=1.0):
    """OpenAI's init: each output unit's weight vector rescaled to L2 norm `scale`, bias zero."""
    with torch.no_grad():
        w = layer.weight
        w.mul_(scale / torch.linalg.vector_norm(w, dim=tuple(range(1, w.ndim)), keepdim=True))
        if layer.bias is not None:
            layer.bias.zero_()


class FanInLayer(nn.Module):
    """Normalise the input, then a conv or linear layer, then ReLU (OpenAI's FanInInitReLULayer). The layer has a
    bias only when there is no norm before it."""

    def __init__(self, inchan, outchan, kind="linear", norm=None, groups=1, init_scale=1.0, activation=True,
                 **layer_kwargs):
        super().__init__()
        if norm == "group":
            self.norm = nn.GroupNorm(groups, inchan)
        elif norm == "layer":
            self.norm = nn.LayerNorm(inchan)
        else:
            self.norm = None
        layer = {"conv": nn.Conv2d, "conv3d": nn.Conv3d, "linear": nn.Linear}[kind]
        self.layer = layer(inchan, outchan, bias=self.norm is None, **layer_kwargs)
        _fan_in_(self.layer, init_scale)
        self.activation = activation

    def forward(self, x):
        if self.norm is not None:
            x = self.norm(x)
        x = self.layer(x)
        return F.relu(x, inplace=True) if self.activation else x  # in place: the layer output has no other use


class CnnBasicBlock(nn.Module):
    """x + conv(conv(x)), each conv with a GroupNorm before it: a residual block of the IMPALA CNN."""

    def __init__(self, chan, init_scale, groups):
        super().__init__()
        s = math.sqrt(init_scale)
        self.conv0 = FanInLayer(chan, chan, "conv", "group", groups, s, kernel_size=3, padding=1)
        self.conv1 = FanInLayer(chan, chan, "conv", "group", groups, s, kernel_size=3, padding=1)

    def forward(self, x):
        return x + self.conv1(self.conv0(x))


class CnnDownStack(nn.Module):
    """conv -> 3x3 max-pool with stride 2 (halves height and width) -> GroupNorm -> 2 residual blocks."""

    def __init__(self, inchan, outchan, nblock, init_scale, first_conv_norm, groups, post_pool_groups):
        super().__init__()
        self.firstconv = FanInLayer(inchan, outchan, "conv", "group" if first_conv_norm else None, groups,
                                    kernel_size=3, padding=1)
        self.n = nn.GroupNorm(post_pool_groups, outchan) if post_pool_groups else None
        self.blocks = nn.ModuleList(CnnBasicBlock(outchan, init_scale / math.sqrt(nblock), groups)
                                    for _ in range(nblock))

    def forward(self, x):
        x = F.max_pool2d(self.firstconv(x), kernel_size=3, stride=2, padding=1)
        if self.n is not None:
            x = self.n(x)
        for block in self.blocks:
            x = block(x)
        return x


class ImpalaCNN(nn.Module):
    """The IMPALA ResNet (Espeholt et al. 2018) as VPT widens it: three down-stacks of width chans x impala_width
    (chans is (16, 32, 32) in OpenAI's models), then a dense layer to 256. 128x128 pixels become 16x16 after the three
    halvings."""

    def __init__(self, inshape, chans, outsize, nblock=2, groups=1, first_conv_norm=False, post_pool_groups=1):
        super().__init__()
        h, w, c = inshape
        self.stacks = nn.ModuleList()
        for i, outchan in enumerate(chans):
            # the very first conv of the policy sees raw pixels / 255 and has no norm; every other conv has one
            self.stacks.append(CnnDownStack(c, outchan, nblock, math.sqrt(len(chans)),
                                            first_conv_norm if i == 0 else True, groups, post_pool_groups))
            c, h, w = outchan, (h + 1) // 2, (w + 1) // 2
        self.dense = FanInLayer(c * h * w, outsize, "linear", "layer", init_scale=1.4)

    def forward(self, x):  # (N, C, H, W) float
        for stack in self.stacks:
            x = stack(x)
        return self.dense(x.flatten(1))  # flattened in (C, H, W) order, as OpenAI's weights expect


class ImgObsProcess(nn.Module):
    def __init__(self, inshape, chans, hidsize, groups, first_conv_norm, post_pool_groups):
        super().__init__()
        self.cnn = ImpalaCNN(inshape, chans, 256, 2, groups, first_conv_norm, post_pool_groups)
        self.linear = FanInLayer(256, hidsize, "linear", "layer")

    def forward(self, x):
        return self.linear(self.cnn(x))


def _time_offsets(t, n_keys, maxlen, device):
    """For t queries that are the last t of n_keys positions: how many frames back each key is, (t, n_keys), and
    whether that is within the maxlen frames a query may see (0 <= offset < maxlen)."""
    offset = (n_keys - t + torch.arange(t, device=device))[:, None] - torch.arange(n_keys, device=device)[None, :]
    return offset, (offset >= 0) & (offset < maxlen)


class SelfAttentionLayer(nn.Module):
    """Multi-head self-attention with VPT's relative-position bias, over the current chunk and a memory of past keys
    and values (OpenAI's xf.SelfAttentionLayer; it lives at `r.orc_block` in their state dicts).

    Two details matter for their weights to compute what they were trained to compute:
    - logits are scaled by 1/head_dim, not 1/sqrt(head_dim) (the "muP" factor);
    - the bias of query q on key k is sum_n R[q, n] * b_nd[n, q - k] for 0 <= q - k < maxlen: 10 learned basis
      functions over the time offset, mixed by 10 weights the query itself computes (r_layer). There are no absolute
      positions anywhere in the model.
    """

    N_BASIS = 10

    def __init__(self, hidsize, heads, maxlen, init_scale):
        super().__init__()
        s = math.sqrt(init_scale)
        self.heads, self.maxlen = heads, maxlen
        self.q_layer = nn.Linear(hidsize, hidsize)
        self.k_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.v_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.proj_layer = nn.Linear(hidsize, hidsize)
        self.r_layer = nn.Linear(hidsize, self.N_BASIS * heads)
        for layer, scale in ((self.q_layer, 0.1), (self.k_layer, 0.2), (self.v_layer, s), (self.proj_layer, s),
                             (self.r_layer, 0.1)):
            _fan_in_(layer, scale)
        self.b_nd = nn.Parameter(torch.randn(self.N_BASIS, maxlen) * 0.2)  # (basis, time offset)
        if maxlen == 0:
            # without a memory (the IDM) there is no time offset to bias: r_layer and b_nd exist only so that
            # OpenAI's state dict loads, and are frozen (DistributedDataParallel refuses parameters without gradients)
            self.r_layer.requires_grad_(False)
            self.b_nd.requires_grad_(False)

    def relative_bias(self, x, n_keys):
        """(B, heads, t, n_keys) additive logits; the t queries are the last t of the n_keys positions."""
        b, t, _ = x.shape
        r = self.r_layer(x).view(b, t, self.heads, self.N_BASIS).float()  # head-major, as OpenAI lays it out
        by_offset = torch.einsum("bthn,nd->bhtd", r, self.b_nd.float())  # (B, h, t, maxlen)
        offset, inside = _time_offsets(t, n_keys, self.maxlen, x.device)
        bias = torch.gather(by_offset, 3, offset.clamp(0, self.maxlen - 1).expand(b, self.heads, t, n_keys))
        return bias * inside

    def forward(self, x, allowed, memory):
        """x (B, t, H) normalised input; allowed (B, t, T) bool or None; memory (K, V) each (B, maxlen, H) or None.
        Returns the attention output (B, t, H) and the new memory."""
        b, t, hid = x.shape
        q, k, v = self.q_layer(x), self.k_layer(x), self.v_layer(x)
        if memory is not None:
            k = torch.cat([memory[0], k], dim=1)  # (B, T = maxlen + t, H)
            v = torch.cat([memory[1], v], dim=1)
            memory = (k[:, -self.maxlen:], v[:, -self.maxlen:])  # keep the last maxlen frames for the next chunk
        n_keys, d = k.shape[1], hid // self.heads

        def split(z):  # (B, T, H) -> (B, heads, T, head_dim)
            return z.view(b, -1, self.heads, d).transpose(1, 2)

        bias = self.relative_bias(x, n_keys) if self.maxlen > 0 else None
        if allowed is not None:
            blocked = torch.zeros_like(allowed, dtype=bias.dtype if bias is not None else torch.float32)
            blocked = blocked.masked_fill(~allowed, -1e9)[:, None]  # (B, 1, t, T)
            bias = blocked if bias is None else bias + blocked
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias, scale=1.0 / d)
        return self.proj_layer(out.transpose(1, 2).reshape(b, t, hid)), memory


class MaskedAttention(nn.Module):
    """Which frames may see which (OpenAI's MaskedAttention; its attention layer is `orc_block`).

    "clipped_causal" (the policy): frame i sees itself and the maxlen-1 frames before it, wherever it sits in the
    chunk, and nothing from before the start of its episode: `first` marks episode starts, and the memory carries a
    mask of which remembered frames still belong to the current episode. OpenAI's code allows `first` only on a chunk's
    first frame; here it may fall anywhere (an RL rollout may hold several episodes), and where it is only on the first
    frame the two agree.
    "none" (the IDM): every frame of the clip sees every other; no memory (maxlen = 0).
    """

    def __init__(self, hidsize, heads, memory_size, timesteps, mask_style, init_scale):
        super().__init__()
        self.maxlen = memory_size - timesteps
        self.causal = mask_style == "clipped_causal"
        if self.causal and self.maxlen <= 0:
            raise ValueError("a causal transformer needs attention_memory_size > timesteps")
        self.orc_block = SelfAttentionLayer(hidsize, heads, self.maxlen, init_scale)

    def initial_state(self, batch_size, device=None, dtype=torch.float32):
        if self.maxlen == 0:
            return None
        hid = self.orc_block.q_layer.in_features
        empty = torch.zeros(batch_size, self.maxlen, hid, device=device, dtype=dtype)
        # (which remembered frames are in the current episode: none yet, keys, values)
        return torch.zeros(batch_size, self.maxlen, dtype=torch.bool, device=device), empty, empty.clone()

    def forward(self, x, first, state):
        if not self.causal:
            return self.orc_block(x, None, None)[0], state
        in_episode, k_mem, v_mem = state
        t, n_keys = x.shape[1], self.maxlen + x.shape[1]
        # episode segment of each chunk frame: it goes up by one at every episode start
        segment = first.long().cumsum(dim=1)  # (B, t)
        _, window = _time_offsets(t, n_keys, self.maxlen, x.device)  # (t, T): itself and the maxlen - 1 before
        see_memory = (segment == 0)[:, :, None] & in_episode[:, None, :]  # (B, t, maxlen)
        see_chunk = segment[:, :, None] == segment[:, None, :]  # (B, t, t), same episode
        allowed = torch.cat([see_memory, see_chunk], dim=2) & window
        out, (k_mem, v_mem) = self.orc_block(x, allowed, (k_mem, v_mem))
        # remembered frames stay valid if no episode started in this chunk; chunk frames if in its last episode
        keep = torch.cat([in_episode & (segment[:, -1:] == 0), segment == segment[:, -1:]], dim=1)
        return out, (keep[:, -self.maxlen:], k_mem, v_mem)


class TransformerBlock(nn.Module):
    """LayerNorm -> masked attention -> residual MLP. OpenAI's quirk, kept: the attention's residual connection is
    taken around the *normalised* input (x = LN(x) + Attn(LN(x))), because their attention layer adds its own input."""

    def __init__(self, hidsize, heads, memory_size, timesteps, mask_style, pointwise_ratio, init_scale):
        super().__init__()
        s = init_scale * 2**-0.5  # two residual branches per block
        self.pre_r_ln = nn.LayerNorm(hidsize)
        self.r = MaskedAttention(hidsize, heads, memory_size, timesteps, mask_style, s)
        self.mlp0 = FanInLayer(hidsize, hidsize * pointwise_ratio, "linear", "layer")
        self.mlp1 = FanInLayer(hidsize * pointwise_ratio, hidsize, "linear", init_scale=s, activation=False)

    def forward(self, x, first, state):
        x = self.pre_r_ln(x)
        attended, state = self.r(x, first, state)
        x = x + attended
        return x + self.mlp1(self.mlp0(x)), state


class ResidualTransformer(nn.Module):
    def __init__(self, n_block, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(init_scale=n_block**-0.5, **block_kwargs) for _ in range(n_block))
        self.checkpoint = False  # activation checkpointing (set by VPTNet.checkpoint_activations)

    def forward(self, x, first, state):
        new_state = []
        for block, s in zip(self.blocks, state):
            if self.checkpoint and self.training and torch.is_grad_enabled():
                # keep only each block's input; its activations are recomputed in the backward pass
                x, s = torch.utils.checkpoint.checkpoint(block, x, first, s, use_reentrant=False)
            else:
                x, s = block(x, first, s)
            new_state.append(s)
        return x, new_state


class CategoricalHead(nn.Module):
    """Logits -> log-probabilities of one categorical (or a few, `shape`). OpenAI's heads divide the logits by the
    sampling temperature here; these do not, so that every loss sees the distribution the network models (T = 1) and
    only sampling is hotter or colder (VPTModel.sample)."""

    def __init__(self, hidsize, shape, n):
        super().__init__()
        self.shape, self.n = tuple(shape), n
        # PyTorch's default init, as in OpenAI's public code (their heads' reset_parameters is never called)
        self.linear_layer = nn.Linear(hidsize, int(np.prod(shape)) * n)

    def forward(self, x):
        logits = self.linear_layer(x).view(*x.shape[:-1], *self.shape, self.n)
        return F.log_softmax(logits.float(), dim=-1)


class EwmaNormalizer(nn.Module):
    """Running mean and variance of the value targets (OpenAI's NormalizeEwma, beta 0.99999): the value head predicts
    normalised returns, so that its loss scale does not drift as rewards grow during RL."""

    def __init__(self, beta=0.99999, eps=1e-5):
        super().__init__()
        self.beta, self.eps = beta, eps
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_mean_sq", torch.zeros(1))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def mean_std(self):
        debias = self.debiasing_term.clamp(min=self.eps)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean**2).clamp(min=1e-2)
        return mean, var.sqrt()

    @torch.no_grad()
    def update(self, x):
        x = x.float()
        self.running_mean.mul_(self.beta).add_(x.mean() * (1 - self.beta))
        self.running_mean_sq.mul_(self.beta).add_((x**2).mean() * (1 - self.beta))
        self.debiasing_term.mul_(self.beta).add_(1 - self.beta)

    def normalize(self, x):
        mean, std = self.mean_std()
        return (x - mean) / std

    def denormalize(self, x):
        mean, std = self.mean_std()
        return x * std + mean


class ValueHead(nn.Module):
    def __init__(self, hidsize):
        super().__init__()
        self.linear = nn.Linear(hidsize, 1)
        self.normalizer = EwmaNormalizer()

    def forward(self, x):
        return self.linear(x)[..., 0]  # normalised value, (B, T)


# OpenAI's network arguments, shared by every released model (as their .model files hold them)
_COMMON_NET_ARGS = dict(
    impala_chans=[16, 32, 32], impala_kwargs={"post_pool_groups": 1},
    init_norm_kwargs={"batch_norm": False, "group_norm_groups": 1}, pointwise_ratio=4, use_pointwise_layer=True,
    pointwise_use_activation=False, recurrence_type="transformer", recurrence_is_residual=True, only_img_input=True,
    use_pre_lstm_ln=False,
)
# The scale dial. toy fits a 2-core laptop (64x64 frames, as toycraft renders them); 1x/2x/3x are the released
# foundation models and 4x the released IDM (hidsize, impala_width, heads, layers, memory, timesteps), OpenAI's
# arguments exactly. The toy's CNN is narrower than OpenAI's (16, 32, 32): its first stack, whose convolutions run at
# full and half resolution, costs most of a toy training step in float32, and halving its width (and the second's)
# halves the step where the toy's skills do not need it. The IDM's 3-D convolution keeps its 16 channels: the motion
# between frames that it extracts is what the IDM is for (docs/log.md has the measurements).
PRESETS = {
    "policy": {
        "toy": dict(img_shape=[64, 64, 3], impala_chans=[8, 16, 32], hidsize=256, impala_width=1, attention_heads=4,
                    n_recurrence_layers=2, attention_memory_size=64, timesteps=32),
        "1x": dict(img_shape=[128, 128, 3], hidsize=1024, impala_width=4, attention_heads=8, n_recurrence_layers=4,
                   attention_memory_size=256, timesteps=128),
        "2x": dict(img_shape=[128, 128, 3], hidsize=2048, impala_width=8, attention_heads=16, n_recurrence_layers=4,
                   attention_memory_size=256, timesteps=128),
        "3x": dict(img_shape=[128, 128, 3], hidsize=3072, impala_width=12, attention_heads=24, n_recurrence_layers=4,
                   attention_memory_size=256, timesteps=128),
    },
    "idm": {
        "toy": dict(img_shape=[64, 64, 16], impala_chans=[8, 16, 32], hidsize=256, impala_width=1, attention_heads=4,
                    n_recurrence_layers=2, attention_memory_size=32, timesteps=32,
                    conv3d_params={"inchan": 3, "outchan": 16, "kernel_size": [5, 1, 1], "padding": [2, 0, 0]}),
        "4x": dict(img_shape=[128, 128, 128], hidsize=4096, impala_width=16, attention_heads=32, n_recurrence_layers=2,
                   attention_memory_size=128, timesteps=128,
                   conv3d_params={"inchan": 3, "outchan": 128, "kernel_size": [5, 1, 1], "padding": [2, 0, 0]}),
    },
}


def preset_args(kind, preset, **overrides):
    """Full OpenAI-style network arguments for a preset, with single values overridden. Only the preset's own
    arguments can be: the network passes over keys it does not read, so a misspelt one would build the preset as it
    is."""
    if preset not in PRESETS[kind]:
        raise ValueError(f"unknown {kind} preset {preset!r}; choose from {list(PRESETS[kind])}")
    mask = "clipped_causal" if kind == "policy" else "none"
    args = {**_COMMON_NET_ARGS, "attention_mask_style": mask, **PRESETS[kind][preset]}
    unknown = sorted(set(overrides) - set(args))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not an argument of the {kind} network; it takes "
                         f"{', '.join(sorted(args))}")
    return {**args, **overrides}


class VPTNet(nn.Module):
    """The trunk shared by policy and IDM (OpenAI's MinecraftPolicy / InverseActionNet), built from OpenAI's network
    arguments as they appear in their .model files."""

    def __init__(self, args):
        super().__init__()
        hid = args["hidsize"]
        groups = args.get("init_norm_kwargs", {}).get("group_norm_groups") or 1
        if args.get("init_norm_kwargs", {}).get("batch_norm"):
            raise ValueError("batch_norm networks are not supported (no released VPT model uses them)")
        conv3d = args.get("conv3d_params")
        self.is_idm = conv3d is not None
        if conv3d is not None:
            # VPT §3.1: the IDM's first layer mixes each pixel over 5 neighbouring frames (kernel (5, 1, 1))
            self.conv3d_layer = FanInLayer(conv3d["inchan"], conv3d["outchan"], "conv3d",
                                           kernel_size=tuple(conv3d["kernel_size"]), padding=tuple(conv3d["padding"]))
        chans = [int(args.get("impala_width", 1) * c) for c in args.get("impala_chans", [16, 32, 32])]
        self.img_process = ImgObsProcess(args["img_shape"], chans, hid, groups,
                                         first_conv_norm=self.is_idm,  # with a 3-D conv before it, every conv is normed
                                         post_pool_groups=args.get("impala_kwargs", {}).get("post_pool_groups"))
        self.pre_lstm_ln = nn.LayerNorm(hid) if args.get("use_pre_lstm_ln", True) else None
        self.recurrent_layer = ResidualTransformer(
            args["n_recurrence_layers"], hidsize=hid, heads=args["attention_heads"],
            memory_size=args["attention_memory_size"], timesteps=args["timesteps"],
            mask_style=args.get("attention_mask_style", "clipped_causal"), pointwise_ratio=args.get("pointwise_ratio", 4))
        self.lastlayer = FanInLayer(hid, hid, "linear", "layer")
        self.final_ln = nn.LayerNorm(hid)
        if self.is_idm:
            # built but unused by OpenAI's IDM (see forward): kept for their state dict, frozen
            self.lastlayer.requires_grad_(False)
            if self.pre_lstm_ln is not None:
                self.pre_lstm_ln.requires_grad_(False)

    def initial_state(self, batch_size, device=None):
        return [block.r.initial_state(batch_size, device) for block in self.recurrent_layer.blocks]

    CHECKPOINT_FRAMES = 32  # frames per CNN chunk under activation checkpointing

    def checkpoint_activations(self, on=True):
        """Trade compute for memory in training: the activations of the CNN (per chunk of 32 frames) and of each
        transformer block are recomputed in the backward pass instead of stored. The same gradients for about a third
        more compute; the peak is then one chunk's or one block's activations, not the whole graph's."""
        self.recurrent_layer.checkpoint = on

    def forward(self, frames, first, state):
        b, t = frames.shape[:2]
        x = frames.float() / 255.0  # (B, T, H, W, 3)
        if self.is_idm:
            x = self.conv3d_layer(x.permute(0, 4, 1, 2, 3))  # (B, C, T, H, W): convolve over time
            x = x.permute(0, 2, 1, 3, 4).reshape(b * t, *x.shape[1:2], *x.shape[3:])  # (B*T, C, H, W)
        else:
            x = x.reshape(b * t, *x.shape[2:]).permute(0, 3, 1, 2)  # (B*T, 3, H, W)
        if self.recurrent_layer.checkpoint and self.training and torch.is_grad_enabled():
            # in chunks of frames, so that the backward pass rebuilds one chunk's CNN activations at a time
            x = torch.cat([torch.utils.checkpoint.checkpoint(self.img_process, chunk, use_reentrant=False)
                           for chunk in x.split(self.CHECKPOINT_FRAMES)])
        else:
            x = self.img_process(x)
        x = x.view(b, t, -1)  # (B, T, hidsize)
        if self.pre_lstm_ln is not None and not self.is_idm:  # OpenAI's IDM builds this norm but never applies it
            x = self.pre_lstm_ln(x)
        x, state = self.recurrent_layer(x, first, state)
        x = F.relu(x)
        # OpenAI's IDM computes lastlayer and throws it away (final_ln is applied to its input); their released IDM
        # was trained that way, so we skip lastlayer for the IDM too (lib/policy.py, InverseActionNet)
        if not self.is_idm:
            x = self.lastlayer(x)
        return self.final_ln(x), state


class VPTModel(nn.Module):
    """A VPT policy or IDM with one calling convention:

        pi, value, state = model(frames, first, state)

    frames uint8 (B, T, H, W, 3) RGB; first bool (B, T), True where an episode starts; state from
    model.initial_state(B) or the previous call. pi holds log-probabilities:
    policy: {"buttons": (B, T, 8641), "camera": (B, T, 121)}, value (B, T) (normalised; see value_head.normalizer);
    IDM:    {"buttons": (B, T, 20, 2), "camera": (B, T, 2, 11)}, value None.
    These are the network's distribution (temperature 1), what every loss uses; `temperature` only changes how
    `sample` draws from it.
    """

    def __init__(self, kind, net_args, temperature=1.0):
        super().__init__()
        self.kind, self.net_args, self.temperature = kind, net_args, float(temperature)
        self.net = VPTNet(net_args)
        hid = net_args["hidsize"]
        if kind == "idm":
            # the IDM predicts the factored action: 20 independent buttons, 2 independent camera axes (VPT §3.1)
            heads = {"buttons": CategoricalHead(hid, (len(BUTTONS),), 2),
                     "camera": CategoricalHead(hid, (2,), N_CAMERA_BINS)}
            self.value_head = None
        else:
            # the policy predicts the joint classes of the hierarchical action space (VPT Appendix D.2)
            heads = {"buttons": CategoricalHead(hid, (1,), N_BUTTON_CLASSES),
                     "camera": CategoricalHead(hid, (1,), N_CAMERA_CLASSES)}
            self.value_head = ValueHead(hid)
        self.pi_head = nn.ModuleDict(heads)

    def initial_state(self, batch_size, device=None):
        return self.net.initial_state(batch_size, device)

    def set_temperature(self, temperature):
        """Sample hotter (>1) or colder (<1). A sampling setting only: forward's log-probabilities do not change."""
        self.temperature = float(temperature)

    def sample(self, pi):
        """One class per head from forward's log-probabilities, at this model's temperature T: softmax(logits / T), as
        OpenAI's agent samples (log_softmax(logits) / T differs from logits / T by a constant, which softmax drops)."""
        return {k: torch.distributions.Categorical(logits=logp.float() / self.temperature).sample()
                for k, logp in pi.items()}

    def forward(self, frames, first, state):
        latent, state = self.net(frames, first, state)
        pi = {name: head(latent) for name, head in self.pi_head.items()}
        if self.kind == "policy":
            pi = {name: logp[..., 0, :] for name, logp in pi.items()}  # drop OpenAI's singleton action dim
            return pi, self.value_head(latent), state
        return pi, None, state


def make_model(kind, preset="toy", temperature=1.0, **overrides):
    """A fresh policy or IDM from a preset (see PRESETS), single network arguments overridden."""
    return VPTModel(kind, preset_args(kind, preset, **overrides), temperature)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def idm_windows(n_frames, window):
    """How the IDM labels a video longer than its window (VPT §3.3): windows of `window` frames overlapping by half,
    and each frame labelled by the window whose centre is nearest, i.e. where it has the most context on both sides.
    (The paper is reported to run 128-frame windows with stride 64 and keep the middle 64 predictions; nearest-centre
    is the same rule, extended to the video's ends.) Returns [(start, keep_from, keep_to)]: each window covers
    frames start..start+window-1 and labels keep_from..keep_to-1; together they label every frame exactly once."""
    if n_frames <= window:
        return [(0, 0, n_frames)]
    starts = list(range(0, n_frames - window + 1, max(window // 2, 1)))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)  # the last window ends with the video
    centres = [s + window / 2 for s in starts]
    cuts = [0] + [math.ceil((a + b) / 2) for a, b in zip(centres, centres[1:])] + [n_frames]
    return [(s, cuts[k], cuts[k + 1]) for k, s in enumerate(starts)]


@torch.no_grad()
def idm_predict(model, frames, window=None, batch_size=8, device="cpu", autocast=False):
    """Label every frame of a video with the IDM's most likely action.

    frames: (N, H, W, 3) uint8 (numpy or torch). Returns {"buttons": int64 (N, 20), "camera": int64 (N, 2) bins}.
    """
    window = window or model.net_args["timesteps"]
    frames = torch.as_tensor(frames)
    n = len(frames)
    buttons = torch.zeros(n, len(BUTTONS), dtype=torch.int64)
    camera = torch.zeros(n, 2, dtype=torch.int64)
    plan = idm_windows(n, window)
    model.eval()
    for i in range(0, len(plan), batch_size):
        group = plan[i:i + batch_size]
        length = min(window, n)
        clips = torch.stack([frames[s:s + length] for s, _, _ in group]).to(device)  # (b, window, H, W, 3)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            pi, _, _ = model(clips, torch.zeros(clips.shape[:2], dtype=torch.bool, device=device),
                             model.initial_state(len(group), device))
        for k, (s, lo, hi) in enumerate(group):
            buttons[lo:hi] = pi["buttons"][k, lo - s:hi - s].argmax(-1).cpu()
            camera[lo:hi] = pi["camera"][k, lo - s:hi - s].argmax(-1).cpu()
    return {"buttons": buttons, "camera": camera}


def idm_targets(actions):
    """A MineRL action dict of arrays (T,) -> the IDM's targets: buttons int64 (T, 20) in BUTTONS order, camera bins
    int64 (T, 2) (pitch, yaw)."""
    buttons = np.stack([np.asarray(actions[b]) != 0 for b in BUTTONS], axis=1).astype(np.int64)
    return torch.from_numpy(buttons), torch.from_numpy(quantize_camera(actions["camera"]))


def label_scores(pred_buttons, pred_camera, true_buttons, true_camera, true_degrees, gui_open=None):
    """How well labels (an IDM's) match the true actions, every frame counted, null actions too.

    pred/true_buttons: (N, 20) 0/1; pred/true_camera: (N, 2) bins; true_degrees: (N, 2) the recorded mouse motion;
    gui_open: (N,) bool, optional.
    Returns the mean per-button accuracy, the mean F1 over buttons pressed at least once (most buttons are rarely
    pressed, so accuracy alone is flattered by "never pressed"), the camera-bin accuracy of both axes and the R^2 of the
    labelled camera in degrees (bin centres) against the recorded motion clipped to the +-10 degrees the action space
    can express, and per-button figures. With gui_open, also the camera-bin accuracy on frames without and with a GUI
    open (there the mouse moves a pointer, by 0.09 pixels a count at 64x64, so the two differ; None where no frame)."""
    pb, tb = torch.as_tensor(pred_buttons), torch.as_tensor(true_buttons)
    tp = ((pb == 1) & (tb == 1)).sum(0).float()
    fp = ((pb == 1) & (tb == 0)).sum(0).float()
    fn = ((pb == 0) & (tb == 1)).sum(0).float()
    accuracy = (pb == tb).float().mean(0)
    f1 = 2 * tp / (2 * tp + fp + fn)  # NaN for a button neither pressed nor predicted
    degrees = torch.as_tensor(true_degrees).float().clamp(-CAMERA_MAXVAL, CAMERA_MAXVAL)
    predicted = torch.from_numpy(dequantize_camera(np.asarray(pred_camera))).float()
    r2 = 1.0 - ((predicted - degrees) ** 2).sum().item() / max(((degrees - degrees.mean()) ** 2).sum().item(), 1e-12)
    camera_right = (torch.as_tensor(pred_camera) == torch.as_tensor(true_camera)).float()  # (N, 2)
    scores = {
        "button_accuracy": accuracy.mean().item(),
        "button_f1": f1[tb.sum(0) > 0].nanmean().item(),
        "camera_accuracy": camera_right.mean().item(),
        "camera_r2": r2,
        "per_button": {b: {"accuracy": round(accuracy[i].item(), 4), "f1": round(f1[i].item(), 4),
                           "pressed": int(tb[:, i].sum())} for i, b in enumerate(BUTTONS)},
        "frames": int(len(pb)),
    }
    if gui_open is not None:
        gui = torch.as_tensor(gui_open, dtype=torch.bool)
        for name, frames in (("camera_accuracy_world", ~gui), ("camera_accuracy_gui", gui)):
            scores[name] = camera_right[frames].mean().item() if frames.any() else None
    return scores


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints: ours, and OpenAI's released .model + .weights
# ---------------------------------------------------------------------------------------------------------------------


class ModelFileError(UserError, ValueError):
    """A model or checkpoint file that cannot be used. The message names the file and what is wrong."""


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only. A pickle can run any code when it is loaded, so OpenAI's .model files (a pickled
    dict of network arguments) are read with an unpickler that builds dicts, lists, tuples, strings, numbers and
    OrderedDicts, and refuses every other object a file asks for, before anything runs."""

    ALLOWED = {("collections", "OrderedDict")}

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise ModelFileError(f"{self.path}: refused: it asks to load the Python object {module}.{name}; a .model file "
                             f"holds plain data only (dicts, lists, numbers, strings), so it is not a VPT model file "
                             f"or it has been tampered with")

    def persistent_load(self, pid):
        raise ModelFileError(f"{self.path}: refused: not a plain pickle (it refers to external objects)")


def read_model_file(path):
    """OpenAI's .model file -> (kind "policy" or "idm", network arguments, head options)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            spec = _PlainUnpickler(f, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not a readable .model pickle ({e})") from None
    try:
        net_args = dict(spec["model"]["args"]["net"]["args"])
        head_opts = dict(spec["model"]["args"].get("pi_head_opts") or {})
    except (KeyError, TypeError):
        raise ModelFileError(f"{path}: no network arguments at model.args.net.args (not a VPT .model file)") from None
    function = str(spec["model"].get("function", "")) + str(spec["model"]["args"]["net"].get("function", ""))
    kind = "idm" if net_args.get("conv3d_params") or "inverse_action" in function else "policy"
    return kind, net_args, head_opts


def _torch_load(path, what):
    """torch.load with weights_only=True (tensors and plain data; a pickled object that would run code is refused
    before anything runs), its errors turned into one short reason naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols, beside the point here
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        text = str(e)
        asked = re.search(r"GLOBAL (\S+)", text)
        if asked:
            why = (f"refused: it asks to load the Python object {asked.group(1)}, and {what} holds tensors and plain "
                   f"data only; it is not one, or it has been tampered with (nothing in it was run)")
        elif "Weights only load failed" in text:
            why = (f"not {what}: torch cannot read it as tensors and plain data (another kind of file, or one "
                   f"holding pickled objects; nothing in it was run)")
        elif isinstance(e, EOFError) or "central directory" in text or "zip archive" in text:
            why = f"not {what}: empty, truncated or corrupt (an interrupted copy or download?)"
        else:
            why = f"not {what} ({type(e).__name__}: {text.splitlines()[0][:200] if text else ''})"
        raise ModelFileError(f"{path}: {why}") from None


def load_openai_model(model_path, weights_path):
    """Build the network an OpenAI .model file describes and load its .weights, strictly.

    Policy weight files may also hold an auxiliary value head from PPG training (aux_value_head.*); it is not part of
    the model and is left out. Any other missing, extra or misshapen tensor is an error naming the file and tensor.
    """
    kind, net_args, head_opts = read_model_file(model_path)
    # OpenAI's agent.py defaults the temperature to 2 for policies when the file does not say
    temperature = float(head_opts.get("temperature", 2.0 if kind == "policy" else 1.0))
    model = VPTModel(kind, net_args, temperature)
    weights = _torch_load(weights_path, "a torch state dict of weights")
    if not isinstance(weights, dict):
        raise ModelFileError(f"{weights_path}: not a torch state dict of weights (it holds a {type(weights).__name__})")
    weights = {k: v for k, v in weights.items() if not k.startswith("aux_value_head.")}
    _load_state(model, weights, weights_path, f"the {kind} that {Path(model_path).name} describes")
    return model


def _load_state(model, state, path, what):
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}" for k in ours
             if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensors of the wrong shape (first: {wrong[0]})")
        if missing:
            parts.append(f"{len(missing)} tensors missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
        raise ModelFileError(f"{path}: does not fit {what}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def _plain(value):
    """Paths (also inside lists) as strings, so that a checkpoint loads with weights_only=True."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def args_dict(args):
    """A stage's parsed flags as plain values, for its config.json and its checkpoints."""
    return {k: _plain(v) for k, v in vars(args).items()}


def save_checkpoint(path, model, optimizer=None, args=None, step=0, **extra):
    """{model config, weights, optimizer, args, step} to `path`, written to a temporary file first and renamed, so
    that an interrupted save never destroys the previous checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": model.kind, "net_args": model.net_args, "temperature": model.temperature,
        "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "args": args_dict(args) if args is not None else {},
        "step": int(step), **extra,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk shows up as either, depending on where torch.save notices
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free / 2**20
        full = getattr(e, "errno", None) == errno.ENOSPC or "unexpected pos" in str(e)  # torch's zip writer's words
        why = "the disk is full" if full else f"{type(e).__name__}: {e}"
        raise UserError(f"{path}: could not be written ({why}; {free:.0f} MiB free on it); the previous checkpoint, "
                        f"if any, is kept and the partial file removed") from None
    return path


def load_checkpoint(path):
    """Our checkpoint -> its dict (weights_only: no code runs). The model is rebuilt with build_model(ckpt)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such checkpoint")
    ckpt = _torch_load(path, "a nanoVPT checkpoint")
    if not isinstance(ckpt, dict) or "net_args" not in ckpt or "model" not in ckpt:
        raise ModelFileError(f"{path}: not a nanoVPT checkpoint (no network arguments or weights in it)")
    ckpt["path"] = str(path)
    return ckpt


def resume_from(path, model, optimizer):
    """--resume: put the weights and optimiser state saved at `path` back into `model` and `optimizer`, so that training
    goes on where it stopped. Returns the checkpoint (its "step", "history", ...), or None where none was saved yet.
    A checkpoint of another network (another --preset, say) is refused with the file's name and the first mismatch."""
    if not Path(path).exists():
        return None
    ckpt = load_checkpoint(path)
    _load_state(model, ckpt["model"], path, "the network being trained (resume with the flags it was trained with)")
    if ckpt.get("optimizer") is None:
        raise ModelFileError(f"{path}: holds no optimiser state, so its training cannot be resumed (start a new run "
                             f"from it with --init)")
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: its optimiser state does not fit this run's (a checkpoint of another stage? "
                             f"{e})") from None
    return ckpt


def build_model(ckpt):
    model = VPTModel(ckpt["kind"], ckpt["net_args"], ckpt.get("temperature", 1.0))
    _load_state(model, ckpt["model"], ckpt.get("path", "checkpoint"), f"the {ckpt['kind']} it describes")
    return model


A_KIND = {"idm": "an IDM", "policy": "a policy"}  # for messages


def load_model(path, kind=None):
    """Any model the stages accept for --init: our checkpoint (.pt), or OpenAI's .model with its .weights beside it
    (or the .weights with the .model beside it). Checks the kind (policy or idm) if one is asked for."""
    path = Path(path)
    if path.suffix in (".model", ".weights"):
        model = load_openai_model(path.with_suffix(".model"), path.with_suffix(".weights"))
    else:
        model = build_model(load_checkpoint(path))
    if kind is not None and model.kind != kind:
        raise ModelFileError(f"{path}: holds {A_KIND[model.kind]}, but {A_KIND[kind]} is needed here")
    return model


# ---------------------------------------------------------------------------------------------------------------------
# Running a stage: device, processes, environments, videos
# ---------------------------------------------------------------------------------------------------------------------


def bf16_is_fast(device):
    """Whether bfloat16 autocast speeds training up on this device: a CUDA GPU that supports it, or a CPU with native
    bfloat16 instructions (AVX512-BF16 or AMX: AMD Zen 4 and later, Intel Xeons since Cooper Lake), where oneDNN runs
    the convolutions and matrix products faster than in float32 (`python tools/bench.py model --bf16 compare` says
    by how much). Anywhere else bfloat16 is emulated and slower, so it stays off."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()  # Linux; elsewhere we cannot tell cheaply, and stay in float32
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_optimizer(model, args):
    """AdamW over the model's trainable tensors, with weight decay on matrices only: not on norms and biases, and not
    at all on frozen tensors (kept only for OpenAI's layout). Returns (optimizer, trainable tensors)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": args.weight_decay},
                                   {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}], lr=args.lr)
    return optimizer, trainable


def setup_run(args, process_group=True):
    """Device, seeds and, under torchrun, the process group. Returns (device, rank, world_size).

    Each rank gets its own seed (args.seed + rank), so that ranks sample different data; a stage that needs the same
    initial weights on every rank seeds again before building its model. A stage whose ranks never talk to each other
    (03_label.py: each labels its own share of the videos) passes process_group=False and only reads its rank."""
    import torch.distributed as dist

    distributed = "RANK" in os.environ
    if distributed and process_group:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device}: not a device torch knows (cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: this torch sees no CUDA GPU")
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if isinstance(getattr(args, "bf16", None), str):  # --bf16 auto|on|off -> a bool, kept in the run's config
        args.bf16 = bf16_is_fast(device) if args.bf16 == "auto" else args.bf16 == "on"
    torch.manual_seed(args.seed + rank)
    np.random.seed(args.seed + rank)
    return device, rank, world


# Flag types that refuse a nonsense value at parse time, with the allowed range, before any work is done. argparse
# prints "<script>: error: argument --batch: must be a whole number, at least 1 (got 0)" and exits with status 2.
def number(kind=int, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: an int or float in [low, high] (an end is left out with low_open / high_open; None: no
    bound), finite."""
    what = "a whole number" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})") from None
        bad = not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or \
            (high is not None and (value >= high if high_open else value > high))
        if bad:
            lo = "" if low is None else f"{'above' if low_open else 'at least'} {low}"
            hi = "" if high is None else f"{'below' if high_open else 'at most'} {high}"
            raise argparse.ArgumentTypeError(f"must be {what}, {' and '.join(x for x in (lo, hi) if x)} (got {text})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


count = number(int, 0)  # 0, 1, 2, ...
positive_int = number(int, 1)  # 1, 2, ...
positive = number(float, 0, low_open=True)  # above 0
non_negative = number(float, 0)
open_fraction = number(float, 0, 1, low_open=True, high_open=True)  # strictly between 0 and 1


def smoke_path(path):
    """runs/x -> runs/smoke/x and data/x -> data/smoke/x: where --smoke runs write and read, so that a smoke test never
    touches make toy's runs and data, nor is taken for them."""
    path = Path(path)
    return Path(path.parts[0], "smoke", *path.parts[1:]) if path.parts[:1] in (("runs",), ("data",)) else path


def smoke_paths(args, parser, names):
    """--smoke: move the flags `names` that were left at their default paths into the smoke tree (smoke_path); a path
    given on the command line stays as given."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value == parser.get_default(name):
            setattr(args, name, smoke_path(value))


def worker_context():
    """The multiprocessing context of the pools whose workers run torch (04's loaders, 05's environments, the
    evaluations): a fork server where the platform has one (Linux, macOS), spawn elsewhere (Windows). Either way a
    worker never starts as a fork of a process that has already run torch's threads or CUDA, which is not safe. The
    fork server is a fresh interpreter that imports torch and OpenCV once; each worker is then a fork of it, where
    under spawn each one imported torch itself, a second or more apiece. (ToyCraft's recording pools, which start
    before any network runs, keep the platform's default.)
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # read when the server starts (a process's first pool). Named by package, not "__main__" or "common": Python
    # before 3.12 gives the server neither the script's path nor sys.path, and skips what it cannot import
    ctx.set_forkserver_preload(["torch", "cv2"])
    return ctx


def worker_init(threads=None, environ=None):
    """Initializer of every worker process: Ctrl-C is the main process's to handle (it reaches the whole process group;
    a worker stopped inside a queue's lock would leave the main one waiting at exit), optionally a thread count, and
    the main process's environment variables as they are now (a fork server's workers would otherwise have those the
    server started with)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if threads:
        torch.set_num_threads(threads)


def worker_pool(workers, threads=None):
    """A multiprocessing.Pool of `workers` processes from worker_context, each started by worker_init."""
    return worker_context().Pool(workers, worker_init, (threads, dict(os.environ)))


def make_folder(path):
    """mkdir -p, where a failure (a file in the way, no permission, a read-only disk) is one line naming the folder."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise UserError(f"{path}: cannot create this folder ({why})") from None
    return Path(path)


def run_main(main):
    """Every script's entry point: main(), with a UserError (a bad file, flag or folder) turned into one line on stderr,
    "<script>: <what is wrong>", and exit status 1; Ctrl-C into "<script>: interrupted" and status 130, with no
    traceback from the workers (see worker_init). Programming errors keep their tracebacks. Warnings about the user's
    data (DataWarning: a recording skipped, a segment too short) print as one line too,
    "<script>: warning: <what>", rather than as Python's file:line and source; other warnings keep Python's form."""
    from tqdm import tqdm
    script = Path(sys.argv[0]).name
    python_show = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            tqdm.write(f"{script}: warning: {message}", file=sys.stderr)  # on its own line, under any progress bar
        else:
            python_show(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line
    try:
        main()
    except (UserError, KeyboardInterrupt) as e:
        for bar in list(getattr(tqdm, "_instances", [])):
            bar.close()  # so that the message starts a line of its own, not the end of a progress bar's
        if isinstance(e, KeyboardInterrupt):  # Ctrl-C: what was saved is kept, as after any stop
            print(f"{script}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        print(f"{script}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        warnings.showwarning = python_show


def claim_out(args, checkpoints=(), rank=0):
    """Make sure this run may write into args.out, before it writes anything there, and hold the folder until it ends.

    A folder that holds a run's checkpoint (any of `checkpoints`, relative to args.out) is only continued (--resume)
    or replaced (--overwrite, printed; a --smoke run replaces another --smoke run's output unasked): a run never
    overwrites finished work unasked. --resume with nothing to resume stops, so that a mistyped --out does not
    silently start again from step 0. An evaluation-only run (--steps 0) writes no checkpoint; into a folder with one
    it writes only where --overwrite asks it to re-evaluate that very checkpoint (--init). Two runs at once into one
    folder would interleave their files: the second stops, naming the process that holds the folder (`.lock`, which
    a dead process does not leave stuck)."""
    out = Path(args.out)
    if rank == 0:
        _refuse_if_held(out)  # first: a running run's checkpoint is not one to resume or replace
    found = [out / c for c in checkpoints if (out / c).exists()]
    resume, overwrite = getattr(args, "resume", False), getattr(args, "overwrite", False)
    evaluate_only = getattr(args, "steps", None) == 0
    if resume and not found:
        raise UserError(f"--resume: {out / checkpoints[0]} does not exist, so there is nothing to resume (check "
                        f"--out, or leave out --resume to start a new run)")
    # a --smoke run's output is no finished work: another --smoke run replaces it unasked
    smoke_over_smoke = getattr(args, "smoke", False) and _config(out).get("smoke") is True
    if found and not resume and not smoke_over_smoke:
        if not overwrite:
            raise UserError(f"{out} already holds a run ({found[0].relative_to(out)}); pass --resume to continue it, "
                            f"--overwrite to replace it, or choose another --out")
        init = getattr(args, "init", None)
        if evaluate_only and not (init and Path(init).resolve() == found[0].resolve()):
            raise UserError(f"{out} holds a run ({found[0].relative_to(out)}) and --steps 0 only evaluates --init: "
                            f"choose another --out for the evaluation (--overwrite re-evaluates a folder's own "
                            f"checkpoint only)")
        if rank == 0:
            print(f"--overwrite: the run in {out} is replaced")
    created = not out.exists()
    make_folder(out)
    if rank == 0:
        _lock_folder(out, created)


def _config(out):
    """The config.json a stage wrote into `out` ({} where there is none or it cannot be read)."""
    try:
        config = json.loads((Path(out) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _lock_folder(out, created=False):
    """Create out/.lock holding our process id, refusing while a live process holds it; removed when we exit, and
    with it the folder if this run created it and wrote nothing there (a run stopped by a bad flag or file)."""
    lock = out / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            _refuse_if_held(out)
            lock.unlink(missing_ok=True)  # left by a process that died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        atexit.register(_unlock_folder, lock, created)
        return
    raise UserError(f"{lock}: cannot take the folder's lock")


def _refuse_if_held(out):
    """Stop if a live process other than this one holds out/.lock."""
    try:
        pid = int((out / ".lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid and pid != os.getpid() and _alive(pid):
        raise UserError(f"{out} is being written by another run (process {pid}); wait for it to end, or choose "
                        f"another --out")


def _unlock_folder(lock, created=False):
    """At exit: remove the lock, if it is still ours, and the folder if we created it and it stayed empty."""
    try:
        if lock.read_text().strip() == str(os.getpid()):
            lock.unlink()
            if created:
                lock.parent.rmdir()  # fails, as it should, unless the folder is empty
    except OSError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:  # Linux: a killed process that nobody has reaped yet (a zombie) is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def run_info(device):
    """Where and when a stage ran, for its metrics.json, so that every figure in docs/results.md says what it was
    measured on: {"date": UTC day, "machine": the GPU, or the CPU with its core count and whether it has bfloat16
    instructions (where it does, the stages train in bfloat16)}, and on a GPU the peak memory the stage allocated."""
    device = torch.device(device)
    peak = {}
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
        peak = {"peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20)}
    else:
        cpu = os.uname().machine if hasattr(os, "uname") else "CPU"
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        except (OSError, StopIteration):
            cpuinfo = ""
        bf16 = "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo
        what = f"{cpu}, {os.cpu_count()} cores, {'with' if bf16 else 'without'} bfloat16 instructions"
    return {"date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(), "machine": what, **peak}


def split_recordings(paths, held_out, seed):
    """Hold out whole recordings (never frames of a training recording) for evaluation: (train, held out), sorted."""
    paths = sorted(paths)
    order = np.random.default_rng(seed).permutation(len(paths))
    n_eval = max(1, int(round(held_out * len(paths)))) if len(paths) > 1 else 0
    return [paths[i] for i in sorted(order[n_eval:])], [paths[i] for i in sorted(order[:n_eval])]


def recording_frames(path):
    """Frames (actions) in a recording: the lines of its .jsonl (path: the .jsonl or the .mp4 beside it); 0 where it
    cannot be read (the reader skips that recording later, naming what is wrong)."""
    try:
        with open(Path(path).with_suffix(".jsonl"), "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def take_hours(paths, hours, seed=0):
    """Recordings adding up to `hours` of frames at 20 Hz, for the data-size ablations (paper Fig. 3, 8, 9): taken in
    a seeded random order, so that every skill level is represented and a smaller set is part of every larger one."""
    paths = sorted(paths)
    chosen, frames = [], 0
    for i in np.random.default_rng(seed).permutation(len(paths)):
        if frames >= hours * 3600 * RECORDING_FPS:
            break
        chosen.append(paths[i])
        frames += recording_frames(paths[i])
    return sorted(chosen)


def warmup_cosine(step, lr, warmup, steps):
    """The learning rate at `step`: linear warm-up over `warmup` steps, then cosine decay to a tenth at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def write_video(path, frames, fps=RECORDING_FPS, codec="mp4v"):
    """Frames (T, H, W, 3) uint8 RGB -> a video file; mp4v plays anywhere, FFV1 is lossless (see VIDEO_CODECS)."""
    path = Path(path)
    make_folder(path.parent)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise RecordingError(f"{path}: OpenCV cannot write {codec} video here")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # RGB -> BGR
    writer.release()
    return path


# ---------------------------------------------------------------------------------------------------------------------
# OpenAI's contractor data: download from an index file
# ---------------------------------------------------------------------------------------------------------------------


def read_index(index):
    """One of OpenAI's index files (a path or URL; their README lists them) -> the URL of each recording
    without extension. Both layouts occur: relpaths with ".mp4" ("data/10.0/name.mp4", BASALT) and without ("8.0/name",
    the VPT README's example); basedir is joined with a single slash either way."""
    import urllib.request

    try:
        if str(index).startswith(("http://", "https://")):
            with urllib.request.urlopen(str(index), timeout=60) as r:
                data = json.loads(r.read())
        else:
            data = json.loads(Path(index).read_text())
        base, relpaths = data["basedir"], data["relpaths"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise RecordingError(f"{index}: not an index file of OpenAI's ({type(e).__name__}: {e})") from None
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        # urllib would also follow file://, ftp:// and others: an index must not copy local files into --data
        raise RecordingError(f"{index}: basedir {base!r} is not an http:// or https:// address")
    if not isinstance(relpaths, list) or not all(isinstance(r, str) for r in relpaths):
        raise RecordingError(f"{index}: relpaths must be a list of strings")
    stems = [r[:-len(".mp4")] if r.endswith(".mp4") else r for r in relpaths]
    return [base.rstrip("/") + "/" + r.lstrip("/") for r in stems]


def _fetch(url, path, bar):
    """Download url to path, resuming a .part file left by an interrupted run where the server allows it (HTTP 206),
    else starting over. Raises urllib.error.HTTPError (e.g. 404) for a missing file."""
    import urllib.error
    import urllib.request

    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        r = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise
        # 416: nothing at or after byte `have`. A run killed between the last byte and the rename left a whole file
        # (the server's Content-Range says "bytes */<size>"); anything else is started over.
        if e.headers.get("Content-Range", "") == f"bytes */{have}":
            part.replace(path)
            return
        part.unlink()
        return _fetch(url, path, bar)
    with r:
        resumed = have > 0 and r.status == 206
        with open(part, "ab" if resumed else "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
                bar.update(len(block))
    part.replace(path)  # whole files only ever carry the final name


def download_recordings(index, out, n=None, progress=True):
    """The first n recordings of an index (.mp4 + .jsonl) into out/, as <name>.mp4 and <name>.jsonl. Recordings that
    are already there are skipped (a rerun resumes, partial files included); recordings missing on the server (some
    segments failed to upload) are skipped and counted. Returns {"downloaded", "present", "missing"}."""
    import urllib.error

    from tqdm import tqdm

    urls = read_index(index)[:n]
    out = Path(out)
    make_folder(out)
    counts = {"downloaded": 0, "present": 0, "missing": 0}
    bar = tqdm(total=None, unit="B", unit_scale=True, desc=f"downloading {len(urls)} recordings", disable=not progress)
    for i, url in enumerate(urls):
        name = url.rsplit("/", 1)[-1]
        targets = [(url + ext, out / (name + ext)) for ext in (".jsonl", ".mp4")]
        if all(path.exists() for _, path in targets):
            counts["present"] += 1
            continue
        try:
            for file_url, path in targets:
                if not path.exists():
                    _fetch(file_url, path, bar)
            counts["downloaded"] += 1
        except urllib.error.HTTPError as e:
            # what was fetched of the recording is kept: a rerun fetches only what is missing, and the readers pass
            # over a .jsonl without its .mp4
            counts["missing"] += 1
            warnings.warn(f"{e.url}: {e.code} {e.reason}; recording skipped", DataWarning)
        except urllib.error.URLError as e:
            raise UserError(f"{file_url}: cannot be reached ({e.reason}); what was downloaded is kept, and a rerun "
                            f"goes on from there") from None
        bar.set_postfix(recordings=f"{i + 1}/{len(urls)}", missing=counts["missing"])
    bar.close()
    return counts
