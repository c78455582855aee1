"""
tools/bench.py: how fast nanoVPT's parts run, each timed against a baseline in the same process.

    python tools/bench.py data                     # reading contractor recordings (frames/s) against decode + resize
    python tools/bench.py model --kind policy --preset toy,1x --bf16 compare    # networks: frames/s, memory
    python tools/bench.py model --kind policy --net '{"impala_chans": [16, 32, 32]}'  # a variant of the toy network
    python tools/bench.py toycraft                 # ToyCraft's steps/s next to Crafter's (pip install crafter)

Speed is noisy on a shared machine, so every benchmark alternates what it compares, repeat by repeat, and reports
medians and the median of the per-repeat ratios. No stage imports this file; the numbers it prints belong in
docs/log.md, never in a test.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's top level, where common.py is
import common  # noqa: E402
import toycraft  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------------
# data: how fast recordings are read
# ---------------------------------------------------------------------------------------------------------------------


def _synthetic_recording(path, t_len, height, width, seed=0, codec="mp4v"):
    """A recording with moving, textured frames (compresses like game footage, not like a still) and busy actions."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (height // 8, width // 4, 3), dtype=np.uint8), (width * 2, height),
                         interpolation=cv2.INTER_NEAREST)
    frames = np.stack([texture[:, (5 * t) % width:(5 * t) % width + width] for t in range(t_len + 1)])
    actions = common.minerl_noop(t_len)
    actions["forward"][:] = 1
    actions["camera"][:] = rng.integers(-20, 21, (t_len, 2)) * common.CAMERA_SCALER
    gui = np.zeros(t_len, dtype=bool)
    gui[t_len // 2: t_len // 2 + t_len // 10] = True  # a tenth of the time in a GUI, so the cursor is drawn too
    cursor = rng.uniform(0, common.RECORDER_HEIGHT, (t_len, 2))
    return common.write_contractor_episode(path, frames, actions, gui_open=gui, cursor=cursor, codec=codec)


def _decode_openai_order(path, size):
    """The baseline: decode every frame, BGR->RGB at full size, then resize (OpenAI's data_loader order, no parsing)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.cvtColor(frame, code=cv2.COLOR_BGR2RGB, dst=frame)
        frames.append(common.resize_frame(frame, size))
    cap.release()
    return frames


def bench_data(args):
    """Frames/s of common.load_contractor_episode (decode + cursor + resize + action parsing) on one core, next to a
    baseline that only decodes and resizes in OpenAI's order, timed alternately on the same file."""
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
                n = len(common.load_contractor_episode(path, size=size, skip_null=False))
                ours.append(n / (time.perf_counter() - start))
                start = time.perf_counter()
                n = len(_decode_openai_order(path, size))
                base.append(n / (time.perf_counter() - start))
            ratio = np.median(np.array(ours) / np.array(base))
            print(f"  {name:44s} {np.median(ours):10.0f} {np.median(base):10.0f} {ratio:14.2f}")
    print("frames/s, medians; the baseline decodes and resizes only (no jsonl, no cursor)")


# ---------------------------------------------------------------------------------------------------------------------
# model: how fast the networks train, and how much memory they need
# ---------------------------------------------------------------------------------------------------------------------


def saved_activation_bytes(model, x, first, autocast=False):
    """Bytes the autograd graph keeps for the backward pass of one training forward, parameters not counted (each
    storage once): the activation memory of training, the same on any device."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast(x.device.type, torch.bfloat16, enabled=autocast):
        model(x, first, model.initial_state(len(x), x.device))
    return sum(saved.values())


def bench_model(args):
    """Frames/s of a model's forward pass (inference, memory carried) and of a training step (forward + backward), and
    training memory: the activations kept for the backward pass per frame (any device), and on CUDA the step's peak
    allocation, for each preset asked for. `--bf16 compare` times float32 and bfloat16 autocast in turns, repeat by
    repeat, and prints the speed-up of bfloat16 (the median of the per-repeat ratios, robust on a shared machine)."""
    device = torch.device(args.device)
    modes = {"off": [False], "on": [True], "compare": [False, True]}[args.bf16]
    print(f"{args.kind}, batch {args.batch}, {device}, {torch.get_num_threads()} threads, median of {args.repeats}"
          + (", activation checkpointing" if args.checkpoint_activations else "")
          + (f", network arguments {json.dumps(args.net)}" if args.net else ""))
    print(f"  {'preset':7s} {'autocast':8s} {'params':>8s} {'frames':>10s} {'forward f/s':>12s} {'train f/s':>10s} "
          f"{'activations/frame':>18s} {'peak (CUDA)':>12s}")
    for preset in args.preset.split(","):
        try:
            model = common.make_model(args.kind, preset, **args.net).to(device)
        except ValueError as e:  # an unknown preset, or a --net key the network does not have
            sys.exit(f"bench.py: {e}")
        model.net.checkpoint_activations(args.checkpoint_activations)
        h, w = model.net_args["img_shape"][:2]
        t = args.timesteps or model.net_args["timesteps"]
        x = torch.randint(0, 256, (args.batch, t, h, w, 3), dtype=torch.uint8, device=device)
        first = torch.zeros(args.batch, t, dtype=torch.bool, device=device)

        def forward(bf16):
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                model.eval()
                model(x, first, model.initial_state(args.batch, device))

        def train_step(bf16):
            model.train()
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                pi, _, _ = model(x, first, model.initial_state(args.batch, device))
            (pi["buttons"].float().mean() + pi["camera"].float().mean()).backward()
            model.zero_grad(set_to_none=True)

        peaks = {mode: 0 for mode in modes}  # CUDA: the most memory one call of each mode allocated at once

        def timed(fn):
            """Frames/s of fn(bf16) for each mode, the modes taking turns; the first round warms up. On CUDA, also the
            peak memory of each mode (reset after every call, so that one mode's peak is not reported for the other)."""
            times = {mode: [] for mode in modes}
            for _ in range(args.repeats + 1):
                for mode in modes:
                    start = time.perf_counter()
                    fn(mode)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times[mode].append(time.perf_counter() - start)
                    if device.type == "cuda":  # outside the timed span
                        peaks[mode] = max(peaks[mode], torch.cuda.max_memory_allocated(device))
                        torch.cuda.reset_peak_memory_stats(device)
            return {mode: args.batch * t / np.array(ts[1:]) for mode, ts in times.items()}

        fwd = timed(forward)
        train = timed(train_step)  # its peak (backward included) is above the forward's, so peaks are training's
        for mode in modes:
            per_frame = saved_activation_bytes(model, x, first, mode) / (args.batch * t) / 2**20
            peak = f"{peaks[mode] / 2**30:8.2f} GiB" if device.type == "cuda" else "-"
            print(f"  {preset:7s} {'bf16' if mode else 'fp32':8s} {common.count_parameters(model) / 1e6:7.1f}M "
                  f"{t:4d} x {h}px {np.median(fwd[mode]):12.1f} {np.median(train[mode]):10.1f} "
                  f"{per_frame:14.2f} MiB {peak:>12s}")
        if len(modes) == 2:
            print(f"  {preset:7s} bf16 speed-up: forward x{np.median(fwd[True] / fwd[False]):.2f}, "
                  f"training step x{np.median(train[True] / train[False]):.2f}")
        model = x = None  # free this size before the next
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------------------
# toycraft: steps per second, next to Crafter's
# ---------------------------------------------------------------------------------------------------------------------


def _random_action(rng):
    """Random MineRL actions for benchmarking: each button a coin flip, the camera within a policy's +-10 degrees."""
    action = {k: int(rng.random() < 0.5) for k in common.MINERL_KEYS if k != "camera"}
    action["camera"] = rng.uniform(-10, 10, 2).astype(np.float32)
    return action


def bench_toycraft(args):
    """Steps/s of ToyCraft and of Crafter (danijar's numpy Minecraft-like), side by side, random actions, 64x64."""
    rng = np.random.default_rng(0)
    env = toycraft.ToyCraft(seed=0, size=args.size)
    resets = []
    for _ in range(5):
        t0 = time.perf_counter()
        env.reset()
        resets.append(time.perf_counter() - t0)

    def rate_toycraft():
        env.reset()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            if env.step(_random_action(rng))[2]:
                env.reset()
            n += 1
        return n / (time.perf_counter() - t0)

    try:
        import crafter
    except ImportError:
        crafter = None
    if crafter is not None:
        cenv = crafter.Env(size=(args.size, args.size), seed=0)
        t0 = time.perf_counter()
        cenv.reset()
        crafter_reset = time.perf_counter() - t0

        def rate_crafter():
            cenv.reset()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                if cenv.step(int(rng.integers(cenv.action_space.n)))[2]:
                    cenv.reset()
                n += 1
            return n / (time.perf_counter() - t0)

    ours, theirs = [], []
    for _ in range(args.repeats):  # alternate, so that machine noise hits both alike
        ours.append(rate_toycraft())
        if crafter is not None:
            theirs.append(rate_crafter())
    print(f"{args.size}x{args.size}, random actions, {args.repeats} x {args.seconds:.0f} s each, alternating, "
          f"1 process")
    print(f"  ToyCraft  {np.median(ours):8.0f} steps/s   reset {1000 * np.median(resets):6.1f} ms")
    if crafter is None:
        print("  Crafter   not installed (pip install crafter) - no comparison")
    else:
        ratio = np.median(np.array(ours) / np.array(theirs))
        print(f"  Crafter   {np.median(theirs):8.0f} steps/s   reset {1000 * crafter_reset:6.1f} ms")
        print(f"  ToyCraft / Crafter = {ratio:.2f}x")


def network_arguments(text):
    """--net: a JSON object of OpenAI-style network arguments (see common.PRESETS)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of network arguments")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="frames/s of reading contractor recordings")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="short recordings, for tests")
    p = sub.add_parser("model", help="frames/s of a model's forward pass and training step, and its memory")
    p.add_argument("--kind", default="policy", choices=["policy", "idm"])
    p.add_argument("--preset", default="toy", help="one or more, comma-separated: toy,1x,2x,3x (policy), toy,4x (idm)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--bf16", nargs="?", const="on", default="off", choices=["off", "on", "compare"],
                   help="bfloat16 autocast; compare: time both and print the speed-up")
    p.add_argument("--checkpoint-activations", action="store_true")
    p.add_argument("--timesteps", type=int, default=None, help="frames per chunk (default: the preset's)")
    p.add_argument("--net", type=network_arguments, default={}, help="network arguments that replace the preset's, as "
                   "JSON, e.g. '{\"impala_chans\": [16, 32, 32]}': to time a variant of a preset before training it")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("toycraft", help="ToyCraft's steps/s next to Crafter's, and its reset time")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    {"data": bench_data, "model": bench_model, "toycraft": bench_toycraft}[args.command](args)


if __name__ == "__main__":
    main()
