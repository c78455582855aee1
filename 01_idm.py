"""
01_idm.py: train VPT's inverse dynamics model (IDM) on a small set of labelled recordings. VPT §3.1, Fig. 3 and 9.

The IDM answers "which keys and mouse motion happened at frame t?" while seeing the frames before AND after t: a 3-D
convolution over 5 frames, then attention over the whole clip with no causal mask. Knowing what happened next makes
naming an action far easier than choosing one, so a little labelled data trains an IDM well enough to label a great
deal of unlabelled video (03_label.py), on which the policy is then cloned (04_bc.py). That is VPT's central idea.

Input:  contractor recordings in OpenAI's format (--data, default data/contractor/: <stem>.mp4 + <stem>.jsonl). With
        --env toy and fewer than --hours of toycraft's recordings there, its scripted players record the rest first,
        the toy's stand-in for hiring contractors (an interrupted recording resumes).
Output: runs/idm/idm.pt (model, optimizer, args, step), metrics.json (the held-out scores), config.json, loss.png; with
        --sweep-hours also accuracy_vs_hours.png (the toy Fig. 3 left) and idm_<hours>h.pt for each data size.

Commands:
    python 01_idm.py --smoke                 # a few steps on a few frames: does everything run?
    python 01_idm.py                         # the toy IDM: records 0.59 toy hours, trains 1,500 steps, evaluates
    python 01_idm.py --sweep-hours 0.05,0.15,0.3          # one IDM per amount of labelled data (toy Fig. 3 left)
    python 01_idm.py --env minerl --init 4x_idm.model --steps 0 --data /path/to/contractor   # score OpenAI's IDM
    torchrun --nproc_per_node 8 01_idm.py --env minerl --preset 4x --data /path/to/contractor --bf16
What the toy run prints, and how long it takes: docs/results.md.

Metrics, on whole held-out recordings, every frame counted: per-button accuracy and F1, the camera-bin accuracy of
both axes, and the R^2 of the camera in degrees, beside the paper's 90.6% keypress accuracy and 0.97 mouse R^2.

Differences from the paper:
1. Size: the toy IDM has 2.3M parameters, 64x64 frames, 16-frame windows and a CNN half as wide in its first two
   stacks; OpenAI's 4x IDM 0.5B parameters, 128x128 frames and 128-frame windows, trained on 1,962 hours of
   contractor play.
2. OpenAI's IDM training code is not public: the loss is the paper's, the optimiser and schedule are ours (AdamW,
   linear warm-up, cosine decay, gradient clipping).
3. The paper does not define "keypress accuracy" precisely. We report the mean per-button accuracy and, because most
   buttons are rarely pressed (so "never pressed" scores well), the mean F1 over the buttons that occur.
4. Rare buttons (--rare, our addition): windows are drawn around the presses of buttons pressed in under 3% of frames
   as often as if they were that common. A hotbar key is a few presses in a thousand frames; drawn uniformly, minutes
   of training on half a toy hour never learn it, where OpenAI's 1,962 hours hold plenty of every key.
"""

import argparse
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import common
import toycraft

PAPER = {"button_accuracy": 0.906, "camera_r2": 0.97}  # VPT §3.1: the 4x IDM on held-out contractor data


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
    g.add_argument("--download-n", type=common.positive_int, default=100, help="how many recordings of the index to "
                   "download")
    g.add_argument("--resume", action="store_true", help="continue from --out/idm.pt after an interruption")
    g.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    g = p.add_argument_group("scale")
    g.add_argument("--preset", default="toy", choices=list(common.PRESETS["idm"]), help="network size (toy, 4x)")
    g.add_argument("--clip", type=common.positive_int, default=None, help="frames per training window (default: toy "
                   "16, else the preset's timesteps)")
    g.add_argument("--hours", type=common.positive, default=0.5, help="toy: hours of contractor data to train on "
                   "(0.15 more are recorded and held out)")
    g.add_argument("--codec", default="mp4v", choices=common.VIDEO_CODECS, help="toy: video codec of the recordings "
                   "(FFV1 is lossless)")
    g.add_argument("--batch", type=common.positive_int, default=16, help="windows per step (per process with torchrun)")
    g.add_argument("--steps", type=common.count, default=1500, help="optimiser steps (0: only evaluate --init)")
    g.add_argument("--rare", type=common.number(float, 0, 1, high_open=True), default=0.03, help="draw windows "
                   "around the presses of buttons pressed in fewer than this fraction of frames, as if they were that "
                   "common (0: uniform windows)")
    g.add_argument("--sweep-hours", default=None, help="comma-separated hours: one IDM per data size, and a plot")
    g = p.add_argument_group("optimiser")
    g.add_argument("--lr", type=common.positive, default=1e-3)
    g.add_argument("--weight-decay", type=common.non_negative, default=0.05)
    g.add_argument("--warmup", type=common.count, default=50, help="steps of linear warm-up")
    g.add_argument("--clip-grad", type=common.positive, default=1.0, help="clip the gradient's norm to this")
    g = p.add_argument_group("running")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--bf16", nargs="?", const="on", default="auto", choices=["auto", "on", "off"],
                   help="bfloat16 autocast (default auto: on for CUDA and for CPUs with bfloat16 instructions)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    g.add_argument("--checkpoint-activations", action="store_true", help="recompute activations in the backward "
                   "pass: less memory, about a third more compute (large presets)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--eval-every", type=common.positive_int, default=400)
    g.add_argument("--held-out", type=common.open_fraction, default=0.15, help="fraction of recordings held out for "
                   "evaluation")
    g.add_argument("--workers", type=common.count, default=os.cpu_count(), help="processes recording toy data")
    g.add_argument("--smoke", action="store_true", help="tiny everything, in runs/smoke/ and data/smoke/: "
                   "checks that the script runs")
    args = p.parse_args(argv)
    if args.sweep_hours is not None:
        try:
            args.sweep_hours = ",".join(str(common.positive(h)) for h in args.sweep_hours.split(","))
        except argparse.ArgumentTypeError as e:
            p.error(f"argument --sweep-hours: each size {e}")
    if args.steps == 0 and args.init is None:
        p.error("--steps 0 only evaluates: pass --init with the IDM to score")
    if args.resume and args.overwrite:
        p.error("--resume continues the run in --out and --overwrite replaces it: pass one")
    if args.smoke:
        common.smoke_paths(args, p, ["data", "out"])
        args.hours, args.steps, args.batch, args.eval_every = 0.01, 6, 2, 3
        args.clip = args.clip or 8
    if args.clip is None and args.preset == "toy":
        # more, shorter windows learn faster on a laptop; the 5-frame 3-D conv and 16 frames of attention still see
        # well past each action's effect
        args.clip = 16
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
    # enough for the largest training set asked for, plus the recordings held out for evaluation
    hours = max([args.hours] + [float(h) for h in (args.sweep_hours or "").split(",") if h]) / (1 - args.held_out)
    # only what is missing; --smoke plays short episodes, its data being for running the code, not for learning
    toycraft.record_hours(args.data, hours, seed=0, workers=args.workers, codec=args.codec,
                          max_steps=300 if args.smoke else 6000)


def load_recordings(paths, size):
    """Recordings -> a list of dicts of tensors: frames (T, size, size, 3) uint8, buttons (T, 20), camera bins (T, 2),
    camera degrees (T, 2), GUI open (T,). Every frame is kept, null actions too: the IDM must label idle frames as
    idle. A recording that cannot be read is skipped with a warning that names it, and the skips are counted."""
    recordings, skipped = [], 0
    for path in tqdm(paths, desc="loading", unit="rec", leave=False):
        try:
            episode = common.load_contractor_episode(path, size=size, skip_null=False)
        except common.RecordingError as e:
            warnings.warn(f"skipping bad recording: {e}", common.DataWarning)
            skipped += 1
            continue
        buttons, camera = common.idm_targets(episode.actions)
        recordings.append({"frames": torch.from_numpy(episode.frames), "buttons": buttons, "camera": camera,
                           "degrees": torch.from_numpy(episode.actions["camera"].astype(np.float32)),
                           "gui_open": torch.from_numpy(episode.gui_open), "path": episode.video_path})
    if skipped:
        warnings.warn(f"skipped {skipped} of {len(paths)} recordings (see warnings above)", common.DataWarning)
    if paths and not recordings:
        raise common.UserError(f"none of the {len(paths)} recordings could be read (the warnings above say why), "
                               f"e.g. {paths[0]}")
    return recordings


def anchor_weights(recordings, rare):
    """How likely each training frame is to anchor a window. Uniform with rare=0. Otherwise a frame where a button is
    pressed that is pressed in fewer than a fraction `rare` of all frames weighs rare / that fraction, so that each
    rare button's presses are drawn about as often as if it were pressed that often. Returns a list of per-recording
    weight tensors (T,)."""
    buttons = [r["buttons"].float() for r in recordings]
    if not rare:
        return [torch.ones(len(b)) for b in buttons]
    freq = torch.cat(buttons).mean(0)  # (20,) fraction of frames with each button pressed
    boost = (rare / freq.clamp_min(1e-9)).clamp_min(1.0)  # a button never pressed multiplies only zeros
    return [(b * boost).amax(-1).clamp_min(1.0) for b in buttons]


def sample_windows(recordings, batch, clip, generator, weights=None):
    """A batch of windows of `clip` consecutive frames. Each is placed around an anchor frame drawn over all frames
    of all recordings, uniformly or by `weights` (anchor_weights), at a random position within the window.
    Returns frames (B, clip, H, W, 3) uint8, buttons (B, clip, 20) and camera bins (B, clip, 2)."""
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
            x = x[start:end]
            return torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]) if pad else x

        frames.append(padded(r["frames"]))
        buttons.append(padded(r["buttons"]))
        camera.append(padded(r["camera"]))
    return torch.stack(frames), torch.stack(buttons), torch.stack(camera)


# ---------------------------------------------------------------------------------------------------------------------
# Model and loss
# ---------------------------------------------------------------------------------------------------------------------


def make_idm(args):
    if args.init is not None:
        # ours or OpenAI's released 4x_idm.model/.weights: to evaluate, or to fine-tune
        return common.load_model(args.init, kind="idm")
    return common.make_model("idm", args.preset)


def idm_loss(pi, buttons, camera):
    """The IDM's loss, VPT §3.1: the negative log-likelihood of the recorded action a_t at every frame t of a window,
    given all T frames of the window, past and future,

        L(θ) = - mean over windows and t of  log p_θ(a_t | o_1, ..., o_T)
        log p_θ(a_t | o_1..o_T) = Σ_{k=1..20} log p_θ(button k at t | o_1..o_T) + Σ_{pitch, yaw} log p_θ(bin at t | ...)

    with the action factored as OpenAI's IDM predicts it: 20 independent press/no-press heads and one 11-bin head per
    camera axis. pi["buttons"] (B, T, 20, 2), pi["camera"] (B, T, 2, 11) are log-probabilities; buttons (B, T, 20) and
    camera (B, T, 2) the targets. Returns the loss and its two parts (per frame, for the progress bar)."""
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
    seen = 0  # frames trained on in this run, for the frames/s readout
    bar = tqdm(range(step, args.steps), desc=f"{log_prefix}train idm", unit="step", disable=rank != 0,
               initial=step, total=args.steps)
    start = time.time()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = common.warmup_cosine(step, args.lr, args.warmup, args.steps)
        windows = sample_windows(train_recs, args.batch, clip, generator, weights)
        frames, buttons, camera = (x.to(device) for x in windows)
        # VPT §3.1: every frame of the window sees every other, so `first` (an episode start) plays no part here
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
    """Label every frame of each held-out recording as 03_label.py will (overlapping windows, each frame from the
    window whose centre is nearest) and score the labels against the recorded actions."""
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
           title="IDM quality against labelled data (toy Fig. 3 left)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    device, rank, world = common.setup_run(args)
    common.claim_out(args, ["idm.pt"], rank)
    if rank == 0 and args.download:
        print(f"{args.download}: {common.download_recordings(args.download, args.data, args.download_n)}")
    if rank == 0:
        ensure_toy_data(args)
    if world > 1:
        dist.barrier()
    if not args.data.exists():
        raise common.UserError(f"--data {args.data}: no such folder")
    paths = common.find_recordings(args.data)
    if not paths:
        raise common.UserError(f"no recordings (.mp4 + .jsonl) under {args.data}")
    # whole recordings are held out, never frames of a training recording: neighbouring frames are near copies
    train_paths, eval_paths = common.split_recordings(paths, args.held_out, args.seed)
    if not eval_paths:
        raise common.UserError(f"{args.data} holds {len(paths)} recording; at least 2 are needed, so that whole "
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

    # VPT Fig. 3 (left): the same IDM trained on nested subsets of the data, largest last
    sweep = [float(h) for h in args.sweep_hours.split(",")] if args.sweep_hours else [None]
    results = []
    for hours in sweep:
        chosen = common.take_hours(train_paths, hours, args.seed) if hours is not None else train_paths
        # each rank reads its own share of the training recordings
        train_recs = load_recordings(chosen[rank::world] or chosen[:1], size) if args.steps > 0 else []
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
            metrics.update(hours=n_frames / (3600 * common.RECORDING_FPS), frames=n_frames,
                           eval_frames=metrics["frames"], train_seconds=round(time.time() - start, 1), paper=PAPER,
                           run=common.run_info(device))
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
        # in a GUI the mouse moves a small pointer instead of the whole view, so the two are scored apart
        parts = (("without a GUI", "camera_accuracy_world"), ("in a GUI", "camera_accuracy_gui"))
        by_gui = ", ".join(f"{where} {final[key]:.3f}" for where, key in parts if final.get(key) is not None)
        print(f"held-out ({final['eval_frames']:,} frames): button accuracy {final['button_accuracy']:.3f} "
              f"(paper {PAPER['button_accuracy']}), button F1 {final['button_f1']:.3f}, camera accuracy "
              f"{final['camera_accuracy']:.3f} ({by_gui}), camera R^2 {final['camera_r2']:.3f} (paper "
              f"{PAPER['camera_r2']}); " + (f"trained on {final['hours']:.2f} hours ({final['frames']:,} frames)"
                                              if args.steps > 0 else f"{args.init} as it is") + f" -> {args.out}")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    common.run_main(main)
