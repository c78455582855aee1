"""
tools/visibility.py: which of the toy contractors' actions show in the pixels, and so the best any IDM could do.

An inverse dynamics model (VPT §3.1) recovers actions from frames alone, so a press that changes nothing on screen
cannot be labelled by any IDM: pressing the hotbar slot already selected, holding jump in mid-air, the second tick of
a key that acts only when pressed. Nor can a camera turn too small to move a pixel (at 64x64 a mouse count turns the
view by about 0.12 pixels, and moves the GUI pointer by 0.09). This tool replays the episodes that
`toycraft.record_hours` records for 01_idm.py and, for every frame, steps a copy of the world again without each held
button, and with the camera moved into the neighbouring bins: where the next frames stay identical, pixel for pixel,
no IDM can tell the difference.

    python tools/visibility.py --episodes 20      # per button: times held, share that shows, the best F1 any IDM
                                                  # could reach; and the best camera-bin accuracy

An IDM that labels exactly the presses that show has precision 1 and recall v (the share that shows), so its F1 is
2v / (1 + v). The camera's ceiling picks, where the pixels cannot tell bins apart, the bin most common on that axis.
"""

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's top level, where common.py is
import common  # noqa: E402
import toycraft  # noqa: E402


def _replay(env, actions):
    """The frames a copy of `env` shows after each of `actions` (fewer if the episode ends); `env` is left as it is."""
    env, frames = copy.deepcopy(env), []
    for action in actions:
        obs, _, done, _ = env.step(action)
        frames.append(obs["pov"])
        if done:
            break
    return frames


def press_shows(env, action, key, then=(), real=None):
    """Would leaving `key` out of `action` change what the player sees, on the next frame or after the actions `then`?

    `env` is the state before the step; `real` the frames that the unchanged actions give (replayed if None). A press
    that changes nothing is invisible to any inverse dynamics model: pressing the slot already selected, holding jump
    in mid-air, the second tick of a tap that only acts when pressed."""
    real = _replay(env, [action, *then]) if real is None else real
    without = {**action, key: np.zeros(2, np.float32) if key == "camera" else 0}
    return not _same_frames(_replay(env, [without, *then]), real)


def _same_frames(frames, real):
    """Do two replays show the same pictures, pixel for pixel (as far as both go)?"""
    return all(np.array_equal(a, b) for a, b in zip(frames, real))


# every camera motion a recording can hold, in whole mouse counts (0.15 degrees), and its bin on each axis
_MOTIONS = np.arange(-80, 81) * common.CAMERA_SCALER
_MOTION_BINS = common.quantize_camera(_MOTIONS)


def camera_bins_confused(env, action, axis, then=(), real=None):
    """Which camera bins of one axis (0 pitch, 1 yaw) the frames cannot tell from the recorded motion's bin.

    The recorded motion is moved to the nearest whole-count motion in the bin below and in the bin above, and the
    world replayed: where the next frame and the `then` frames after it stay identical, pixel for pixel, no IDM can
    tell those bins apart. Returns (the recorded bin, the bins confused with it, itself included). A one-count turn
    is 0.12 pixels at 64x64 and lands in the null bin, two counts in the next: such turns show only where a texel edge
    crosses a pixel centre, and in the GUI only where the pointer crosses a pixel."""
    real = _replay(env, [action, *then]) if real is None else real
    camera = np.asarray(action["camera"], np.float32).reshape(-1)[:2]
    true_bin = int(common.quantize_camera(camera[axis]))
    confused = [true_bin]
    for other in (true_bin - 1, true_bin + 1):
        if not 0 <= other < common.N_CAMERA_BINS:
            continue
        inside = _MOTIONS[_MOTION_BINS == other]
        moved = camera.copy()
        moved[axis] = inside.max() if other < true_bin else inside.min()  # the nearest motion in that bin
        if _same_frames(_replay(env, [{**action, "camera": moved}, *then]), real):
            confused.append(other)
    return true_bin, sorted(confused)


def visibility(episodes, seed=0, lookahead=2, mix=None, max_steps=6000):
    """Replay the first `episodes` contractor episodes that record_hours(seed=seed) records (their first `max_steps`
    steps). Ask press_shows of every held button and every camera move, and camera_bins_confused of both camera axes
    of every frame.

    Returns {"presses": {key: (times held, times it showed)}, "camera": [(GUI open, axis, recorded bin, bins confused
    with it), one per frame and axis]}."""
    counts = {k: [0, 0] for k in common.BUTTONS + ["camera"]}
    camera = []
    for s in range(seed, seed + episodes):
        world, level = toycraft.draw_episodes(s, 1, mix or toycraft.CONTRACTOR_MIX)[0]
        actions = toycraft.play_episode(world, level, max_steps=max_steps)["actions"]
        env = toycraft.ToyCraft(seed=world)
        env.reset()
        for t, action in enumerate(actions):
            keys = [k for k in common.BUTTONS if np.asarray(action.get(k, 0)).reshape(-1)[0]]
            keys += ["camera"] if np.any(np.asarray(action["camera"]) != 0) else []
            then = actions[t + 1:t + 1 + lookahead]
            real = _replay(env, [action, *then])
            for k in keys:
                counts[k][0] += 1
                counts[k][1] += press_shows(env, action, k, then, real)
            for axis in (0, 1):
                camera.append((env.gui_open, axis, *camera_bins_confused(env, action, axis, then, real)))
            env.step(action)
    return {"presses": {k: tuple(v) for k, v in counts.items() if v[0]}, "camera": camera}


def camera_ceiling(rows):
    """The camera-bin accuracy of an IDM that reads every motion the pixels show and, where they show no difference
    between bins, picks the bin most common on that axis (the marginal prior; an IDM that uses the context of nearby
    turns may do a little better). rows: visibility()["camera"]. Returns {"all", "world", "gui": (share of frames,
    ceiling accuracy)}."""
    prior = np.zeros((2, common.N_CAMERA_BINS))
    for _, axis, true_bin, _ in rows:
        prior[axis, true_bin] += 1
    right = np.array([max(confused, key=lambda b: prior[axis, b]) == true_bin for _, axis, true_bin, confused in rows])
    gui = np.array([r[0] for r in rows], dtype=bool)
    return {name: (float(m.mean()), float(right[m].mean()) if m.any() else float("nan"))
            for name, m in (("all", np.ones_like(gui)), ("world", ~gui), ("gui", gui))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lookahead", type=int, default=2, help="also compare this many frames after the next one")
    args = p.parse_args()
    seen = visibility(args.episodes, args.seed, args.lookahead)
    counts = seen["presses"]
    # an IDM that labels every press that shows, and nothing else, has precision 1 and recall v: F1 = 2v / (1 + v)
    best = {k: 2 * shown / (held + shown) for k, (held, shown) in counts.items()}
    print(f"{'key':12s}{'held':>8s}{'shows':>8s}{'best F1':>9s}")
    for k, (held, shown) in counts.items():
        print(f"{k:12s}{held:8d}{shown / held:8.2f}{best[k]:9.2f}")
    buttons = [best[k] for k in counts if k != "camera"]
    print(f"mean best F1 over the {len(buttons)} buttons held: {np.mean(buttons):.2f}")
    for name, (share, accuracy) in camera_ceiling(seen["camera"]).items():
        print(f"best camera-bin accuracy, {name} frames ({share:.0%} of frames): {accuracy:.3f}")


if __name__ == "__main__":
    main()
