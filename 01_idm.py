"""
01_idm.py: train VPT's inverse dynamics model (IDM) on labelled contractor recordings. VPT §3.1, Fig. 2.

The IDM answers "which keys and mouse motion happened between these frames?" It sees the past AND the future of every
frame (a 3-D convolution over 5 frames, then attention over the whole clip, unmasked), so it is a much easier problem
than acting, which must guess the future. That is VPT's central trick: a little labelled data trains an IDM well
enough to label a great deal of unlabelled video (03_label.py), on which a policy is then cloned (04_bc.py).

Input:  contractor recordings in OpenAI's format (--data, default data/contractor/: <stem>.mp4 + <stem>.jsonl).
        With --env toy and fewer than --hours of toycraft's recordings there, its scripted players record the rest
        first: the toy stand-in for hiring contractors (1 toy hour = 72,000 frames at 20 Hz). An interrupted
        recording resumes; a folder with anyone else's recordings in it is used as it is.
Output: runs/idm/idm.pt (model, optimizer, args, preset, step), runs/idm/metrics.json, runs/idm/config.json,
        runs/idm/loss.png, and with --sweep-hours runs/idm/accuracy_vs_hours.png (the toy Fig. 2 left) and each
        size's IDM as runs/idm/idm_<hours>h.pt (the training sets are nested random subsets, common.take_hours).

Commands:
    python 01_idm.py --smoke                 # a few steps on a few frames: does everything run? (~15 s)
    python 01_idm.py                         # the toy IDM on a 2-core laptop: records 0.59 toy hours, trains (10 min
                                             # with bf16); held-out button accuracy 0.99, F1 0.69, camera accuracy 0.71
    python 01_idm.py --sweep-hours 0.05,0.1,0.25,0.5,1    # accuracy against labelled hours (~40 min)
    python 01_idm.py --env minerl --preset 4x --data /path/to/contractor --device cuda --bf16 --steps 200000
    torchrun --nproc_per_node 8 01_idm.py --env minerl --preset 4x --data /path/to/contractor --bf16
    python 01_idm.py --init 4x_idm.model --steps 0 --data /path/to/contractor   # evaluate OpenAI's released IDM
    python 01_idm.py --env minerl --preset 4x --download all_10xx_Jun_29.json --download-n 200 --data data/openai

Metrics (held-out recordings, every frame, null actions included): per-button accuracy and F1 and their means, the
camera-bin accuracy of both axes, and the R^2 of the camera in degrees (predicted bin centre against the recorded
motion, clipped to +-10 degrees), next to the paper's 90.6% keypress accuracy and 0.97 mouse R^2.

Differences from the paper:
1. The toy IDM is tiny (2.4M parameters, 64x64 frames, 32-frame clips) against OpenAI's 0.5B (128x128, 128 frames),
   and is trained for minutes on toycraft, not for 4 days on 32 A100s on 1,962 hours of Minecraft.
2. OpenAI's IDM training code is not public; the loss here is the paper's (negative log-likelihood of each frame's
   factored action: 20 binary buttons and 2 camera axes of 11 bins), the optimiser and schedule are our choice
   (AdamW, linear warm-up, cosine decay, gradient clipping).
3. The paper's "keypress accuracy" is not defined precisely; we report the mean per-button accuracy and, because most
   buttons are rarely pressed (accuracy is then flattered by "never pressed"), the mean F1 over buttons that occur.
   A press that leaves no trace in the pixels (the hotbar slot already selected, jump held in mid-air) cannot be
   labelled; the toy contractors avoid them, so that the best mean F1 any IDM could reach is about 0.996
   (`python toycraft.py visibility`; 0.81 before they did).
4. Rare buttons (`--rare`, our addition): windows are drawn around the presses of buttons pressed in under 3% of
   frames as if they were that common. Hotbar keys and side steps are a few presses in a thousand frames; drawn
   uniformly, a few minutes of training never learn them (held-out F1 0.27, most hotbar keys at 0; with --rare 0.03,
   0.69, hotbar keys 0.9-1.0, and the camera no worse). OpenAI's 1,962 hours hold plenty of every key.
5. `--gui-windows` (our addition, off by default) makes some of each batch's windows GUI windows whose pointer follows
   a path taken from elsewhere in the data (fake_pointer_path). In a GUI the mouse moves a small pointer instead of
   the view, and in the recordings where it goes next is easy to guess from the context, so the toy IDM labels the
   GUI's camera without looking at the pointer (`pointer_probe`, printed at the end of a toy run, where 1 means it
   reads the pointer's direction and 0.5 is blind: 0.33 with a 5-pixel blurred pointer, 0.59 with the sharp 7-pixel
   one on the old GUI layout, 0.53 on today's). Trained on such windows alone, after the usual training, it learned
   to read the blurred pointer (probe 0.96); 4 of them in each batch of a short run after that kept it (0.93) while
   the rest recovered (README, 01). Not in the default run:
   it takes 2,700 steps in all, past the toy's 10 minutes.
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import common

TOY_HOUR = 72_000  # frames in an hour at 20 Hz
PAPER = {"button_accuracy": 0.906, "camera_r2": 0.97}  # VPT §3.1


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where")
    g.add_argument("--env", default="toy", choices=["toy", "minerl"], help="toy: toycraft data; minerl: real Minecraft")
    g.add_argument("--data", type=Path, default=Path("data/contractor"), help="contractor recordings (.mp4 + .jsonl)")
    g.add_argument("--out", type=Path, default=Path("runs/idm"))
    g.add_argument("--init", type=Path, default=None, help="start from a checkpoint: ours (.pt) or OpenAI's .model")
    g.add_argument("--download", default=None, help="OpenAI index file (path or URL): download recordings into --data "
                   "first (resumable)")
    g.add_argument("--download-n", type=int, default=100, help="how many recordings of the index to download")
    g.add_argument("--resume", action="store_true", help="continue from --out/idm.pt after an interruption")
    g = p.add_argument_group("scale")
    g.add_argument("--preset", default="toy", choices=list(common.PRESETS["idm"]), help="network size (toy, 4x)")
    g.add_argument("--clip", type=int, default=None, help="frames per training window (default: toy 16, else the "
                   "preset's timesteps)")
    g.add_argument("--hours", type=float, default=0.5, help="toy: hours of contractor data to record")
    g.add_argument("--codec", default="mp4v", choices=common.VIDEO_CODECS, help="toy: video codec of the recordings "
                   "(FFV1 is lossless)")
    g.add_argument("--batch", type=int, default=16, help="windows per step (per process with torchrun)")
    g.add_argument("--steps", type=int, default=1500, help="optimiser steps (0: only evaluate)")
    g.add_argument("--rare", type=float, default=0.03, help="draw windows around the presses of buttons pressed in "
                   "fewer than this fraction of frames, as if they were that common (0: uniform windows)")
    g.add_argument("--gui-windows", type=int, default=0, help="of each batch's windows, this many around frames with "
                   "a GUI open, their pointer moved along a path from elsewhere in the data (all of them: --batch)")
    g.add_argument("--sweep-hours", default=None, help="comma-separated hours: one IDM per data size, and a plot")
    common.add_optimiser_flags(p)
    g = p.add_argument_group("running")
    common.add_training_flags(g)
    g.add_argument("--eval-every", type=int, default=400)
    g.add_argument("--held-out", type=float, default=0.15, help="fraction of recordings held out for evaluation")
    g.add_argument("--workers", type=int, default=os.cpu_count(), help="processes recording toy data")
    g.add_argument("--smoke", action="store_true", help="tiny everything: checks that the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.hours, args.steps, args.batch, args.eval_every = 0.01, 6, 2, 3
        args.clip = args.clip or 8
    if args.clip is None and args.preset == "toy":
        # more, shorter windows learn faster on a laptop; the 5-frame 3-D conv and 16 frames of attention still see
        # well past each action's effect
        args.clip = 16
    if not 0 <= args.gui_windows <= args.batch:
        p.error(f"--gui-windows {args.gui_windows}: between 0 and --batch ({args.batch})")
    if args.gui_windows and args.env != "toy":
        # the pointer is drawn on the square frames the IDM reads, with x and y on the same scale: right for
        # toycraft's square recordings, a wrong column for the 16:9 video of MineRL's contractors
        p.error("--gui-windows draws the pointer on square recordings only: use it with --env toy")
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def ensure_toy_data(args):
    """--env toy: play toycraft until --hours of contractor data exist (in parallel processes). A folder of toycraft's
    recordings is topped up (an interrupted recording resumes); one that holds any other recordings is left as it is."""
    if args.env != "toy":
        return
    if args.data.exists() and any(not p.name.startswith("toy-") for p in args.data.rglob("*.mp4")):
        return
    import toycraft

    # enough for the largest training set asked for, plus the recordings held out for evaluation
    hours = max([args.hours] + [float(h) for h in (args.sweep_hours or "").split(",") if h]) / (1 - args.held_out)
    toycraft.record_hours(args.data, hours, seed=0, workers=args.workers, codec=args.codec)  # only what is missing


def load_recordings(paths, size, bare_gui=False):
    """Recordings -> list of dicts of tensors: frames (T, size, size, 3) uint8, buttons (T, 20), camera bins (T, 2),
    camera degrees (T, 2), GUI open (T,). Every frame is kept, null actions too: the IDM must label idle frames as
    idle.

    bare_gui (for --gui-windows): also keep each GUI frame without its pointer ("bare", (G, size, size, 3), row
    "bare_row"[t] for frame t, -1 outside a GUI) and the pointer positions ("cursor", (T, 2), recorder coordinates).
    The pointer is then drawn at `size`, after resizing, where the loader draws it at the video's own resolution:
    the same pixels for toy data, recorded square at the size the IDM reads (so --gui-windows is for --env toy)."""
    recordings = []
    dataset = common.ContractorDataset(paths, size=size, skip_null=False, skip_bad=True, pointer=not bare_gui)
    for episode in tqdm(dataset, desc="loading", unit="rec", leave=False):
        buttons, camera = common.idm_targets(episode.actions)
        rec = {"frames": torch.from_numpy(episode.frames), "buttons": buttons, "camera": camera,
               "degrees": torch.from_numpy(episode.actions["camera"].astype(np.float32)),
               "gui_open": torch.from_numpy(episode.gui_open), "path": episode.video_path}
        if bare_gui:
            cursor = np.array([[r["mouse"].get("x", 0.0), r["mouse"].get("y", 0.0)] for r in episode.records])
            in_gui = np.flatnonzero(episode.gui_open)
            bare = episode.frames[in_gui].copy()
            for t in in_gui:
                common.draw_cursor(episode.frames[t], *cursor[t])
            row = np.full(len(cursor), -1)
            row[in_gui] = np.arange(len(in_gui))
            rec.update(bare=torch.from_numpy(bare), bare_row=torch.from_numpy(row),
                       cursor=torch.from_numpy(cursor.reshape(-1, 2)))
        recordings.append(rec)
    return recordings


def pointer_moves(recordings):
    """The camera motion (degrees, (M, 2)) of every frame with a GUI open whose move shows in the next frame, one
    recording after another: the pool --gui-windows draws its paths from."""
    moves = [r["degrees"][:-1][r["gui_open"][:-1] & r["gui_open"][1:]] for r in recordings]
    return torch.cat(moves) if moves else torch.zeros(0, 2)


def fake_pointer_path(r, start, end, moves, generator):
    """Frames start..end-1 of recording r with the GUI pointer moved along another path, and the camera bins to match.

    In the recordings, where the pointer goes next is easy to guess from the context (which recipe a player wants),
    so an IDM can label the GUI's camera without looking at the pointer, and the toy IDM does (pointer_probe). Here
    each stretch of GUI frames keeps the pointer's first position, then follows a run of consecutive moves taken from
    elsewhere in the data (`moves`, from pointer_moves), each axis mirrored at random: real motion, but motion that
    only the pointer shows. A move that would leave the screen is mirrored instead. Returns frames (T, H, W, 3) and
    camera bins (T, 2)."""
    n, length = len(r["frames"]), end - start
    frames, camera = r["frames"][start:end].clone(), r["camera"][start:end].clone()
    offset = int(torch.randint(0, max(len(moves) - length, 1), (1,), generator=generator))
    path = moves[offset:offset + length].double().numpy()
    path = path * np.where(torch.rand(2, generator=generator).numpy() < 0.5, -1.0, 1.0)
    pos, edge = None, common.RECORDER_HEIGHT - 1.0  # the toy's screen is square: 720 x 720 recorder pixels
    for i, t in enumerate(range(start, end)):
        if not r["gui_open"][t]:
            pos = None
            continue
        if pos is None:  # the GUI's first frame in this window: the pointer is where the player had it
            pos = r["cursor"][t].double().numpy().copy()
        frame = r["bare"][int(r["bare_row"][t])].numpy().copy()
        frames[i] = torch.from_numpy(common.draw_cursor(frame, *pos))
        if t + 1 < n and r["gui_open"][t + 1] and i < len(path):  # this frame's move shows in the next one
            # (pitch, yaw) degrees -> (x, y) mouse counts: yaw moves the pointer along x, pitch along y
            counts = path[i][::-1] / common.CAMERA_SCALER
            counts = np.where((pos + counts < 0) | (pos + counts > edge), -counts, counts)
            pos = np.clip(pos + counts, 0, edge)
            camera[i] = torch.from_numpy(common.quantize_camera(counts[::-1] * common.CAMERA_SCALER))
    return frames, camera


def anchor_weights(recordings, rare):
    """How likely each training frame is to anchor a window. Uniform with rare=0. Otherwise a frame where a button is
    pressed that is pressed in fewer than a fraction `rare` of all frames weighs rare / that fraction, so that each
    rare button's presses are drawn about as often as if it were pressed that often. The toy contractors press a hotbar
    key or step left in one frame in a thousand; drawn uniformly, an IDM trained for minutes sees too few of them to
    learn them at all. Returns a list of per-recording weight tensors (T,)."""
    buttons = [r["buttons"].float() for r in recordings]
    if not rare:
        return [torch.ones(len(b)) for b in buttons]
    freq = torch.cat(buttons).mean(0)  # (20,) fraction of frames with each button pressed
    boost = (rare / freq.clamp_min(1e-9)).clamp_min(1.0)  # a button never pressed multiplies only zeros
    return [(b * boost).amax(-1).clamp_min(1.0) for b in buttons]


def sample_windows(recordings, batch, clip, generator, weights=None, moves=None):
    """A batch of windows of `clip` consecutive frames. Each is placed around an anchor frame drawn over all frames
    of all recordings, uniformly or by `weights` (anchor_weights), at a random position within the window.
    With `moves` (pointer_moves), the pointer of every GUI frame follows another path (fake_pointer_path)."""
    weights = weights or [torch.ones(len(r["frames"])) for r in recordings]
    per_rec = torch.stack([w.sum() for w in weights])
    picks = torch.multinomial(per_rec, batch, replacement=True, generator=generator)
    frames, buttons, camera = [], [], []
    for i in picks.tolist():
        r = recordings[i]
        n = len(r["frames"])
        anchor = int(torch.multinomial(weights[i], 1, generator=generator))
        offset = int(torch.randint(0, clip, (1,), generator=generator))
        start = min(max(anchor - offset, 0), max(n - clip, 0))
        end = min(start + clip, n)
        pad = clip - (end - start)  # a recording shorter than the window: repeat its last frame (rare)

        def padded(x):  # frames start..end-1 of something
            return torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]) if pad else x

        if moves is not None and r["gui_open"][start:end].any():
            x, cam = fake_pointer_path(r, start, end, moves, generator)
        else:
            x, cam = r["frames"][start:end], r["camera"][start:end]
        frames.append(padded(x))
        buttons.append(padded(r["buttons"][start:end]))
        camera.append(padded(cam))
    return torch.stack(frames), torch.stack(buttons), torch.stack(camera)


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def make_idm(args):
    if args.init is not None:
        # ours or OpenAI's released 4x_idm.model/.weights: to evaluate, or to fine-tune
        return common.load_model(args.init, kind="idm")
    return common.make_model("idm", args.preset)


def idm_loss(pi, buttons, camera):
    """VPT §3.1: the negative log-likelihood of each frame's action under the IDM, summed over the 20 binary button
    heads and the 2 camera-axis heads, averaged over frames. pi["buttons"] (B, T, 20, 2), pi["camera"] (B, T, 2, 11)."""
    nll_buttons = -pi["buttons"].gather(-1, buttons[..., None]).squeeze(-1).sum(-1)  # (B, T)
    nll_camera = -pi["camera"].gather(-1, camera[..., None]).squeeze(-1).sum(-1)  # (B, T)
    return (nll_buttons + nll_camera).mean(), nll_buttons.mean().item(), nll_camera.mean().item()


# ---------------------------------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------------------------------


def train(args, model, train_recs, eval_recs, device, rank, world, log_prefix=""):
    clip = args.clip or model.net_args["timesteps"]
    net = model.to(device)
    model.net.checkpoint_activations(args.checkpoint_activations)
    if args.compile and device.type == "cuda":
        net = torch.compile(net)
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    optimizer, trainable = common.make_optimizer(model, args)

    step, history = 0, {"step": [], "loss": [], "eval_step": [], "button_f1": [], "camera_accuracy": []}
    metrics = None  # the latest held-out evaluation, returned so that main need not run it again
    ckpt_path = args.out / "idm.pt"
    ckpt = common.resume_from(ckpt_path, model, optimizer) if args.resume else None
    if ckpt:
        step, history = ckpt["step"], ckpt.get("history", history)
        print(f"{log_prefix}resuming from {ckpt_path} at step {step}")

    generator = torch.Generator().manual_seed(args.seed * 1000 + rank)
    weights = anchor_weights(train_recs, args.rare)
    if args.gui_windows:  # windows around GUI frames only, with the pointer on other paths
        in_gui, moves = [r["gui_open"].float() for r in train_recs], pointer_moves(train_recs)
        if not len(moves):
            raise SystemExit("01_idm.py: --gui-windows needs recordings with a GUI open, and these have none")
    seen = 0  # frames trained on in this run, for the frames/s readout
    bar = tqdm(range(step, args.steps), desc=f"{log_prefix}train idm", unit="step", disable=rank != 0,
               initial=step, total=args.steps)
    start = time.time()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = common.warmup_cosine(step, args.lr, args.warmup, args.steps)
        windows = []
        if args.batch > args.gui_windows:
            windows.append(sample_windows(train_recs, args.batch - args.gui_windows, clip, generator, weights))
        if args.gui_windows:
            windows.append(sample_windows(train_recs, args.gui_windows, clip, generator, in_gui, moves))
        frames, buttons, camera = (torch.cat(x).to(device) for x in zip(*windows))
        first = torch.zeros(frames.shape[:2], dtype=torch.bool, device=device)
        net.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            pi, _, _ = net(frames, first, model.initial_state(len(frames), device))
        loss, nll_b, nll_c = idm_loss(pi, buttons, camera)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, args.clip_grad)
        optimizer.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        seen += frames.shape[0] * frames.shape[1] * world
        bar.set_postfix(loss=f"{loss.item():.3f}", buttons=f"{nll_b:.3f}", camera=f"{nll_c:.3f}",
                        frames_per_s=f"{seen / max(time.time() - start, 1e-3):.0f}")
        last = step == args.steps - 1
        if rank == 0 and eval_recs and ((step + 1) % args.eval_every == 0 or last):
            metrics = evaluate(model, eval_recs, clip, device, args)
            history["eval_step"].append(step + 1)
            history["button_f1"].append(metrics["button_f1"])
            history["camera_accuracy"].append(metrics["camera_accuracy"])
            tqdm.write(f"{log_prefix}step {step + 1}: held-out button F1 {metrics['button_f1']:.3f}, button accuracy "
                       f"{metrics['button_accuracy']:.3f}, camera accuracy {metrics['camera_accuracy']:.3f}, "
                       f"camera R^2 {metrics['camera_r2']:.3f}")
        if rank == 0 and ((step + 1) % args.eval_every == 0 or last):
            common.save_checkpoint(ckpt_path, model, optimizer, args, step + 1, preset=args.preset, history=history)
    return history, metrics


# ---------------------------------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------------------------------


def evaluate(model, recordings, clip, device, args):
    """Label every frame of each held-out recording as 03_label.py would (overlapping windows, nearest centre) and
    score the labels against the recorded actions."""
    preds_b, preds_c, true_b, true_c, true_deg = [], [], [], [], []
    for r in recordings:
        pred = common.idm_predict(model, r["frames"], window=clip, device=device, autocast=args.bf16)
        preds_b.append(pred["buttons"])
        preds_c.append(pred["camera"])
        true_b.append(r["buttons"])
        true_c.append(r["camera"])
        true_deg.append(r["degrees"])
    return common.label_scores(torch.cat(preds_b), torch.cat(preds_c), torch.cat(true_b), torch.cat(true_c),
                               torch.cat(true_deg), torch.cat([r["gui_open"] for r in recordings]))


def pointer_sweeps(size, speeds=(-60, -30, -15, 15, 30, 60), frames=16):
    """Clips of toycraft's crafting GUI in which nothing moves but the pointer, sweeping left or right at a constant
    `speed` mouse counts a frame along each row of recipes. Returns [(frames (T, size, size, 3) uint8, speed)]."""
    import toycraft

    env = toycraft.ToyCraft(seed=5, size=size)
    env.reset()
    env.step({**common.minerl_noop(), "inventory": 1})  # open the GUI: env.screen is the panel, without the pointer
    clips = []
    for y in (env.recipe_centre(env.GUI_CELLS[0])[1], env.recipe_centre(env.GUI_CELLS[5])[1]):  # the two rows
        for v in speeds:
            xs = 360.0 + v * (np.arange(frames) - frames / 2)
            clips.append((np.stack([common.draw_cursor(env.screen.copy(), x, y) for x in xs]), v))
    return clips


def pointer_probe(model, device="cpu"):
    """Does the IDM see the GUI pointer move? The share of frames of pointer_sweeps whose yaw it labels with the right
    sign (the last frame of a clip, whose motion no later frame shows, not counted). 0.5 is what an IDM that always
    says "left" (or always "right") scores; an IDM that reads the pointer scores near 1."""
    right, total = 0, 0
    for frames, speed in pointer_sweeps(model.net_args["img_shape"][0]):
        pred = common.idm_predict(model, torch.from_numpy(frames), window=len(frames), device=device)
        yaw = pred["camera"][:-1, 1].numpy() - common.CAMERA_NULL_BIN
        right += int((np.sign(yaw) == np.sign(speed)).sum())
        total += len(yaw)
    return right / total


# ---------------------------------------------------------------------------------------------------------------------
# Save
# ---------------------------------------------------------------------------------------------------------------------


def plot_loss(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    loss = np.array(history["loss"])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid") if len(loss) > 20 else loss
    ax[0].plot(history["step"][:len(smooth)], smooth)
    ax[0].set(xlabel="step", ylabel="training NLL per frame", title="IDM training loss")
    ax[1].plot(history["eval_step"], history["button_f1"], "o-", label="button F1 (mean)")
    ax[1].plot(history["eval_step"], history["camera_accuracy"], "s-", label="camera-bin accuracy")
    ax[1].set(xlabel="step", ylim=(0, 1), title="held-out recordings")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [r["hours"] for r in results]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(hours, [r["button_f1"] for r in results], "o-", label="button F1 (mean)")
    ax.plot(hours, [r["button_accuracy"] for r in results], "^-", label="button accuracy (mean)")
    ax.plot(hours, [r["camera_accuracy"] for r in results], "s-", label="camera-bin accuracy")
    ax.plot(hours, [max(r["camera_r2"], 0) for r in results], "d-", label="camera R$^2$")
    ax.set_xscale("log")
    ax.set(xlabel="hours of labelled contractor data", ylabel="held-out score", ylim=(0, 1.02),
           title="IDM quality against labelled data (toy Fig. 2 left)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    device, rank, world = common.setup_run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and args.download:
        print(f"{args.download}: {common.download_recordings(args.download, args.data, args.download_n)}")
    if rank == 0:
        ensure_toy_data(args)
    if world > 1:
        dist.barrier()
    paths = common.find_recordings(args.data) if args.data.exists() else []
    if not paths:
        raise SystemExit(f"01_idm.py: no recordings (.mp4 + .jsonl) under {args.data}")
    train_paths, eval_paths = common.split_recordings(paths, args.held_out, args.seed)
    if not eval_paths:
        raise SystemExit(f"01_idm.py: {args.data} holds {len(paths)} recording; at least 2 are needed, so that whole "
                         f"recordings can be held out for evaluation")
    torch.manual_seed(args.seed)  # the same initial weights on every rank and for every data size
    model = make_idm(args)
    initial_weights = {k: v.clone() for k, v in model.state_dict().items()}
    size = model.net_args["img_shape"][0]
    config = {**common.args_dict(args), "device": str(device),
              "world_size": world, "train_recordings": len(train_paths), "eval_recordings": len(eval_paths),
              "parameters": common.count_parameters(model), "net_args": model.net_args}
    if rank == 0:
        print(json.dumps(config, indent=1))
        (args.out / "config.json").write_text(json.dumps(config, indent=1))
    eval_recs = load_recordings(eval_paths, size) if rank == 0 else []

    sweep = [float(h) for h in args.sweep_hours.split(",")] if args.sweep_hours else [None]
    results = []
    for hours in sweep:
        chosen = common.take_hours(train_paths, hours, args.seed) if hours is not None else train_paths
        # each rank reads its own share of the training recordings
        train_recs = load_recordings(chosen[rank::world] or chosen[:1], size, bare_gui=args.gui_windows > 0)
        n_frames = sum(len(r["frames"]) for r in train_recs) * world
        model.load_state_dict(initial_weights)
        prefix = f"[{hours} h] " if hours is not None else ""
        start = time.time()
        history, metrics = (train(args, model, train_recs, eval_recs, device, rank, world, prefix)
                            if args.steps > 0 else (None, None))
        if rank == 0:
            # train evaluates after its last step; evaluate here only when it did not (--steps 0, or resumed at the end)
            metrics = metrics or evaluate(model.to(device), eval_recs, args.clip or model.net_args["timesteps"],
                                          device, args)
            metrics.update(hours=n_frames / TOY_HOUR, frames=n_frames, eval_frames=metrics["frames"],
                           train_seconds=round(time.time() - start, 1), paper=PAPER)
            if args.env == "toy":
                metrics["pointer_probe"] = pointer_probe(model.to(device), device)
            if hours is not None and args.steps > 0:
                # each size's IDM is kept: the paper's Fig. 9 labels video with each and clones a policy on it
                shutil.copy(args.out / "idm.pt", args.out / f"idm_{hours:g}h.pt")
                metrics["checkpoint"] = f"idm_{hours:g}h.pt"
            results.append(metrics)
            if history:
                plot_loss(history, args.out / "loss.png")
    if rank == 0:
        final = results[-1]
        (args.out / "metrics.json").write_text(json.dumps(final if len(results) == 1 else
                                                          {**final, "sweep": results}, indent=1))
        if len(results) > 1:
            plot_sweep(results, args.out / "accuracy_vs_hours.png")
        # a GUI frame's camera moves the pointer, which shows far less than a turn of the view (toycraft.py visibility)
        by_gui = ", ".join(f"{where} {final[key]:.3f}" for where, key in (("without a GUI", "camera_accuracy_world"),
                                                                           ("in a GUI", "camera_accuracy_gui"))
                           if final.get(key) is not None)
        print(f"held-out ({final['eval_frames']:,} frames): button accuracy {final['button_accuracy']:.3f} "
              f"(paper {PAPER['button_accuracy']}), button F1 {final['button_f1']:.3f}, camera accuracy "
              f"{final['camera_accuracy']:.3f} ({by_gui}), camera R^2 {final['camera_r2']:.3f} (paper "
              f"{PAPER['camera_r2']}); trained on {final['hours']:.2f} hours ({final['frames']:,} frames) "
              f"-> {args.out}")
        if "pointer_probe" in final:
            print(f"GUI pointer sweeps: yaw sign right on {final['pointer_probe']:.2f} of frames "
                  f"(0.5: not seen, 1: seen)")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
