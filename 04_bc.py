"""
04_bc.py: behavioural cloning of the VPT foundation policy on pseudo-labelled video, and what it can do zero-shot.
VPT §4, Fig. 3 (right), 4, 5 and 8.

VPT's central claim lives here. A causal policy (it sees only the past, as a player does) learns to predict, frame by
frame, the action the IDM wrote down for the web video (03_label.py). Nothing in the loss mentions trees or crafting
tables; the skills come from imitating a great deal of play. Then the policy plays in the world with no further
training ("zero-shot") and we count which items of the diamond-pickaxe sequence it obtains. The paper then clones the
foundation model further on narrower data, the early game (§4.3); its RL (05) starts from that model. The toy early
game is the first two minutes of each contractor recording (--early-game, commands below).

Input:  contractor-format recordings (--data, default data/labeled/ from 03: IDM pseudo-labels; --data data/contractor
        trains on the labelled contractor data itself, the paper's baseline; repeat --data to mix sources). --init
        starts from a checkpoint to fine-tune: ours, or OpenAI's foundation-model-*.model with its .weights.
Output: runs/bc/policy.pt, metrics.json (item_rates, the held-out loss, frames/s, gui_fraction: the share of evaluation
        steps spent in a GUI), item_rates.png (toy Fig. 4), loss.png, rollout.mp4 (one evaluation episode, first
        person), and with --compare compare.png (toy Fig. 3 right: the same policy cloned on the contractor data alone).

Commands:
    python 04_bc.py --smoke                        # a few steps and a short rollout: does everything run?
    python 04_bc.py                                # the toy foundation policy, then 24 evaluation episodes
    python 04_bc.py --compare                      # contractor data alone against IDM-labelled web video (Fig. 3 right)
    python 04_bc.py --data-hours 0.5 --out runs/bc_half   # less pseudo-labelled video (toy Fig. 8 left)
    python 04_bc.py --steps 0 --init runs/bc/policy.pt --episodes 48 --out runs/bc_eval    # evaluate a policy again
    python 04_bc.py --init runs/bc/policy.pt --data data/contractor --early-game 2400 --steps 600 --lr 3e-4 \
        --out runs/bc_early_game                   # fine-tune on the toy early game (§4.3; 05_rl.py can start here)
    torchrun --nproc_per_node 8 04_bc.py --preset 1x --env minerl --data /data/labeled --device cuda --bf16
    python 04_bc.py --env minerl --init foundation-model-1x.model --data /data/contractor --lr 1e-4   # OpenAI's
What the toy run prints, and how long it takes: docs/results.md.

Differences from the paper:
1. Size: the toy policy has 2 transformer layers of width 256 on 64x64 frames, a 64-frame memory and a CNN half as
   wide in its first two stacks; the foundation model 0.5B parameters on 128x128 frames and a 128-frame memory,
   trained for days on hundreds of GPUs and 70,000 hours of video.
2. The optimiser is laptop-sized (AdamW, lr 1e-3 with warm-up and cosine decay, weight decay 0.05, gradient clipping
   at 1); the paper's settings are in its Appendix H.
3. The toy world has no night, hunger or mobs, and its episodes are one toy minute (1,200 steps), where the paper's
   zero-shot episodes are 10 minutes (12,000 steps).
"""

import argparse
import json
import math
import os
import time
import warnings
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import common
import worlds

ITEMS = common.ITEMS  # the diamond-pickaxe sequence, VPT Fig. 4 and 7


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where")
    g.add_argument("--env", default="toy", choices=["toy", "minerl"], help="where the policy is evaluated")
    g.add_argument("--data", type=Path, action="append", default=None, help="contractor-format recordings; repeat to "
                   "mix sources (default data/labeled)")
    g.add_argument("--contractor-data", type=Path, default=Path("data/contractor"), help="--compare: the labelled set")
    g.add_argument("--download", default=None, help="OpenAI index file (path or URL): download recordings into the "
                   "first --data first (resumable), e.g. to fine-tune on contractor data")
    g.add_argument("--download-n", type=common.positive_int, default=100, help="how many recordings of the index to "
                   "download")
    g.add_argument("--out", type=Path, default=Path("runs/bc"))
    g.add_argument("--init", type=Path, default=None, help="fine-tune from a checkpoint: ours (.pt) or OpenAI's .model")
    g.add_argument("--resume", action="store_true", help="continue from --out/policy.pt after an interruption")
    g.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    g = p.add_argument_group("scale")
    g.add_argument("--preset", default="toy", choices=list(common.PRESETS["policy"]), help="network size")
    g.add_argument("--batch", type=common.positive_int, default=8, help="recordings streamed in parallel (per process "
                   "with torchrun)")
    g.add_argument("--chunk", type=common.positive_int, default=None, help="frames per sequence (default: the preset's "
                   "timesteps)")
    g.add_argument("--steps", type=common.count, default=2400, help="optimiser steps (0: only evaluate --init)")
    g.add_argument("--data-hours", type=common.positive, default=None, help="train on only this many hours of the "
                   "recordings (a seeded random subset; the paper's Fig. 8 ablation)")
    g.add_argument("--early-game", type=common.positive_int, default=None, metavar="FRAMES", help="train on only the "
                   "first FRAMES frames of each recording: the early game, the narrow dataset VPT §4.3 fine-tunes on")
    g = p.add_argument_group("optimiser")
    g.add_argument("--lr", type=common.positive, default=1e-3)
    g.add_argument("--weight-decay", type=common.non_negative, default=0.05)
    g.add_argument("--warmup", type=common.count, default=50, help="steps of linear warm-up")
    g.add_argument("--clip-grad", type=common.positive, default=1.0, help="clip the gradient's norm to this")
    g = p.add_argument_group("evaluation")
    g.add_argument("--episodes", type=common.count, default=24, help="evaluation episodes (0: none)")
    g.add_argument("--episode-steps", type=common.positive_int, default=1200, help="length of each evaluation episode")
    g.add_argument("--temperature", type=common.positive, default=1.0, help="sampling temperature of the policy")
    g.add_argument("--held-out", type=common.open_fraction, default=0.05, help="fraction of recordings held out for "
                   "the loss")
    g.add_argument("--compare", action="store_true", help="also clone on --contractor-data alone, and plot both")
    g = p.add_argument_group("running")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--bf16", nargs="?", const="on", default="auto", choices=["auto", "on", "off"],
                   help="bfloat16 autocast (default auto: on for CUDA and for CPUs with bfloat16 instructions)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    g.add_argument("--checkpoint-activations", action="store_true", help="recompute activations in the backward "
                   "pass: less memory, about a third more compute (large presets)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=common.count, default=os.cpu_count(), help="processes decoding video / running "
                   "episodes")
    g.add_argument("--eval-every", type=common.positive_int, default=500)
    g.add_argument("--smoke", action="store_true", help="tiny everything, in runs/smoke/ and data/smoke/: "
                   "checks that the script runs")
    args = p.parse_args(argv)
    args.data = args.data or [common.smoke_path("data/labeled") if args.smoke else Path("data/labeled")]
    if args.smoke:
        common.smoke_paths(args, p, ["contractor_data", "out"])
    if args.steps == 0 and args.init is None:
        p.error("--steps 0 only evaluates: pass --init with the policy to evaluate")
    if args.steps == 0 and (args.resume or args.compare):
        p.error("--steps 0 only evaluates --init: --resume and --compare train")
    if args.resume and args.overwrite:
        p.error("--resume continues the run in --out and --overwrite replaces it: pass one")
    if args.smoke:
        args.batch, args.episodes, args.episode_steps, args.eval_every = 2, 2, 30, 2
        args.steps = min(args.steps, 4)  # --steps 0 still only evaluates
        args.chunk = args.chunk or 8
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Data: recordings streamed in parallel, the transformer's memory carried from chunk to chunk
# ---------------------------------------------------------------------------------------------------------------------


def load_for_bc(job):
    """One recording (its first max_frames frames; None: all) -> its frames and joint action targets, null frames
    skipped (VPT §4.1). Runs in a worker."""
    path, size, max_frames = job
    t0 = time.time()
    try:
        ep = common.load_contractor_episode(path, size=size, skip_null=True, max_frames=max_frames)
    except common.RecordingError as e:
        return str(path), None, str(e), time.time() - t0
    target = common.env_to_policy_action(ep.actions)  # {"buttons": (T,), "camera": (T,)} joint classes
    return str(path), ep.frames, (target["buttons"], target["camera"]), time.time() - t0


class RecordingStreams:
    """`batch` streams, each playing recordings back to back in its own random order, cut into chunks of T frames.

    Like OpenAI's data loader, every row of a batch is one recording's next T frames; when a recording ends mid-chunk,
    the next one starts in the same row with first=True, so the model's memory is reset exactly there and carried
    everywhere else. Recordings are decoded in worker processes, a few ahead of need.
    """

    def __init__(self, paths, batch, chunk, size, workers, seed, prefetch=None, max_frames=None):
        self.paths, self.batch, self.chunk, self.size, self.max_frames = list(paths), batch, chunk, size, max_frames
        self.rng = np.random.default_rng(seed)
        self.pool = common.worker_pool(workers) if workers > 0 else None
        self.prefetch = prefetch or max(2 * workers, batch)
        self.pending = deque()  # AsyncResults (or ready tuples) of recordings being loaded
        self.order = []
        self.rows = [None] * batch  # per row: [frames, buttons, camera, position]
        self.skipped = {}  # path -> what is wrong with it
        self.workers = max(workers, 1)
        # frames decoded, seconds the workers spent decoding them, seconds training waited for data
        self.loaded_frames, self.load_seconds, self.wait_seconds = 0, 0.0, 0.0

    def _next_path(self):
        if not self.order:
            self.order = list(self.rng.permutation(len(self.paths)))
        return self.paths[self.order.pop()]

    def _fill(self):
        while len(self.pending) < self.prefetch:
            job = (self._next_path(), self.size, self.max_frames)
            self.pending.append(self.pool.apply_async(load_for_bc, (job,)) if self.pool else load_for_bc(job))

    def _next_recording(self):
        for _ in range(10 * len(self.paths) + 10):
            self._fill()
            t0 = time.time()
            item = self.pending.popleft()
            path, frames, target, seconds = item.get() if self.pool else item
            self.wait_seconds += time.time() - t0
            self.load_seconds += seconds
            if frames is None:
                if path not in self.skipped:  # named once, however often it is drawn
                    warnings.warn(f"skipping bad recording: {target}", common.DataWarning)
                    self.skipped[path] = target
                continue
            if len(frames) == 0:
                continue  # every frame null
            self.loaded_frames += len(frames)
            return [frames, target[0], target[1], 0]
        raise common.UserError(f"none of the {len(self.paths)} recordings has a readable, non-null frame (the warnings "
                               f"above say why), e.g. {self.paths[0]}")

    def next_chunk(self):
        """-> frames uint8 (B, T, H, W, 3), first bool (B, T), buttons int64 (B, T), camera int64 (B, T)."""
        b, t = self.batch, self.chunk
        frames = np.empty((b, t, self.size, self.size, 3), np.uint8)
        first = np.zeros((b, t), bool)
        buttons, camera = np.empty((b, t), np.int64), np.empty((b, t), np.int64)
        for i in range(b):
            filled = 0
            while filled < t:
                if self.rows[i] is None or self.rows[i][3] >= len(self.rows[i][0]):
                    self.rows[i] = self._next_recording()
                    first[i, filled] = True  # a new recording starts here: the memory must not look back past it
                rec_frames, rec_buttons, rec_camera, pos = self.rows[i]
                n = min(t - filled, len(rec_frames) - pos)
                frames[i, filled:filled + n] = rec_frames[pos:pos + n]
                buttons[i, filled:filled + n] = rec_buttons[pos:pos + n]
                camera[i, filled:filled + n] = rec_camera[pos:pos + n]
                self.rows[i][3] += n
                filled += n
        return (torch.from_numpy(frames), torch.from_numpy(first), torch.from_numpy(buttons),
                torch.from_numpy(camera))

    def close(self):
        if self.pool:
            self.pool.terminate()


# ---------------------------------------------------------------------------------------------------------------------
# Model and loss
# ---------------------------------------------------------------------------------------------------------------------


def bc_loss(pi, buttons, camera):
    """Behavioural cloning, VPT §4.1: the negative log-likelihood of the (pseudo-)labelled action a_t under the causal
    policy, which sees only frames up to t (and, through its memory, the frames before the chunk),

        L(θ) = - mean over rows and t of [ log π_θ(b_t | o_≤t) + 1[c_t ≠ null] log π_θ(c_t | o_≤t) ]

    with b_t the joint button class (8641-way) and c_t the joint camera class (121-way) of common.env_to_policy_action.
    The camera term counts only where the mouse moved: the camera head is not executed when the button class's camera
    meta-action is "none" (OpenAI's lib/actions.py, CameraHierarchicalMapping), and the inventory class always has the
    null camera. pi: log-probs (B, T, 8641) and (B, T, 121); targets (B, T). Returns the loss and its two parts."""
    nll_buttons = -pi["buttons"].gather(-1, buttons[..., None]).squeeze(-1)  # (B, T)
    moved = camera != common.NULL_CAMERA_CLASS
    nll_camera = -pi["camera"].gather(-1, camera[..., None]).squeeze(-1) * moved  # (B, T)
    return (nll_buttons + nll_camera).mean(), nll_buttons.mean().item(), nll_camera.mean().item()


def make_policy(args):
    if args.init is not None:
        return common.load_model(args.init, kind="policy")
    return common.make_model("policy", args.preset, temperature=args.temperature)


def detach_state(state):
    return [tuple(x.detach() for x in layer) for layer in state] if isinstance(state, list) else state


# ---------------------------------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------------------------------


def train(args, model, train_paths, eval_paths, device, rank, world, out, log_prefix=""):
    chunk = args.chunk or model.net_args["timesteps"]
    size = model.net_args["img_shape"][0]
    net = model.to(device)
    model.net.checkpoint_activations(args.checkpoint_activations)
    if args.compile and device.type == "cuda":
        net = torch.compile(net)
    if world > 1:
        # the value head takes no part in the BC loss, so DDP must not wait for its gradients
        net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=True)
    optimizer, trainable = common.make_optimizer(model, args)

    step, history = 0, {"step": [], "loss": [], "eval_step": [], "eval_loss": []}
    ckpt_path = out / "policy.pt"
    ckpt = common.resume_from(ckpt_path, model, optimizer) if args.resume else None
    if ckpt:
        step, history = ckpt["step"], ckpt.get("history", history)
        print(f"{log_prefix}resuming from {ckpt_path} at step {step}")

    # each rank streams its own share of the recordings
    streams = RecordingStreams(train_paths[rank::world] or train_paths, args.batch, chunk, size, args.workers,
                               seed=args.seed * 1000 + rank + step, max_frames=args.early_game)
    state = model.initial_state(args.batch, device)
    seen, train_seconds = 0, 0.0
    bar = tqdm(range(step, args.steps), desc=f"{log_prefix}train bc", unit="step", disable=rank != 0, initial=step,
               total=args.steps)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = common.warmup_cosine(step, args.lr, args.warmup, args.steps)
        frames, first, buttons, camera = (x.to(device) for x in streams.next_chunk())
        t0 = time.time()
        net.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            pi, _, state = net(frames, first, state)
        loss, nll_b, nll_c = bc_loss(pi, buttons, camera)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, args.clip_grad)  # returns the norm before clipping; clips in place
        optimizer.step()
        # the memory goes on into the next chunk of the same recordings, but gradients stop at the chunk boundary
        state = detach_state(state)
        train_seconds += time.time() - t0
        seen += frames.shape[0] * frames.shape[1] * world
        history["step"].append(step)
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", buttons=f"{nll_b:.3f}", camera=f"{nll_c:.3f}",
                        train_fps=f"{seen / max(train_seconds, 1e-3):.0f}")
        last = step == args.steps - 1
        if rank == 0 and ((step + 1) % args.eval_every == 0 or last):
            loss_now = held_out_loss(model, eval_paths, chunk, device, args) if eval_paths else None
            if loss_now is not None:
                history["eval_step"].append(step + 1)
                history["eval_loss"].append(loss_now)
                tqdm.write(f"{log_prefix}step {step + 1}: held-out loss {loss_now:.3f}")
            common.save_checkpoint(ckpt_path, model, optimizer, args, step + 1, preset=args.preset, history=history)
    streams.close()
    rates = {"train_frames_per_second": seen / max(train_seconds, 1e-3),
             # what the loader alone can deliver: frames per second of decoding, times the worker processes
             "load_frames_per_second": streams.loaded_frames / max(streams.load_seconds, 1e-3) * streams.workers,
             "data_wait_seconds": round(streams.wait_seconds, 1), "frames_trained": seen,
             "skipped_recordings": list(streams.skipped)}
    if streams.skipped and rank == 0:
        warnings.warn(f"skipped {len(streams.skipped)} of {len(streams.paths)} training recordings (see warnings "
                      f"above)", common.DataWarning)
    return history, rates


@torch.no_grad()
def held_out_loss(model, paths, chunk, device, args, max_frames=20_000):
    """The BC loss per frame on held-out recordings, each read start to end in chunks with its memory carried."""
    model.eval()
    total, frames_seen = 0.0, 0
    for path in paths:
        _, frames, target, _ = load_for_bc((path, model.net_args["img_shape"][0], args.early_game))
        if frames is None:
            warnings.warn(f"held-out recording left out of the loss: {target}", common.DataWarning)
            continue
        if len(frames) == 0:
            continue
        state = model.initial_state(1, device)
        for s in range(0, len(frames), chunk):
            x = torch.from_numpy(frames[None, s:s + chunk]).to(device)
            first = torch.zeros(x.shape[:2], dtype=torch.bool, device=device)
            first[0, 0] = s == 0
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
                pi, _, state = model(x, first, state)
            b = torch.from_numpy(target[0][None, s:s + chunk]).to(device)
            c = torch.from_numpy(target[1][None, s:s + chunk]).to(device)
            total += bc_loss(pi, b, c)[0].item() * x.shape[1]
            frames_seen += x.shape[1]
        if frames_seen >= max_frames:
            break
    return total / frames_seen if frames_seen else None  # None: no held-out frame could be read


# ---------------------------------------------------------------------------------------------------------------------
# Evaluate: roll the policy out and count the items obtained (VPT Fig. 4)
# ---------------------------------------------------------------------------------------------------------------------


def evaluate_policy(policy_path, args, desc="evaluate", video_path=None):
    """args.episodes episodes of args.episode_steps steps in worker processes (common.evaluate_items)."""
    return worlds.evaluate_items(policy_path, args.env, args.episodes, args.episode_steps, args.temperature, args.seed,
                                 args.workers, video_path, desc)


# ---------------------------------------------------------------------------------------------------------------------
# Save
# ---------------------------------------------------------------------------------------------------------------------


def plot_items(results, path, title):
    """Item rates as bars, one colour per policy: {label: {item: rate}} (toy Fig. 4, Fig. 3 right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / len(results)
    for k, (label, rates) in enumerate(results.items()):
        ax.bar(np.arange(len(ITEMS)) + (k - (len(results) - 1) / 2) * width, [rates[i] for i in ITEMS], width,
               label=label)
    ax.set_xticks(np.arange(len(ITEMS)), [i.replace("_", " ") for i in ITEMS], rotation=40, ha="right", fontsize=8)
    ax.set(ylabel="fraction of episodes", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    loss = np.array(history["loss"])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid") if len(loss) > 20 else loss
    ax.plot(history["step"][:len(smooth)], smooth, label="training")
    ax.plot(history["eval_step"], history["eval_loss"], "o-", label="held-out recordings")
    ax.set(xlabel="step", ylabel="NLL per frame", title="BC loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def clone(args, data_dirs, out, device, rank, world, label):
    """Train one policy on the recordings of data_dirs and evaluate it. Returns its metrics (rank 0)."""
    for d in data_dirs:
        if not Path(d).exists():
            raise common.UserError(f"{d}: no such folder or file of recordings (run 03_label.py first, or pass --data)")
    paths = [p for d in data_dirs for p in common.find_recordings(d)]
    if not paths:
        raise common.UserError(f"no recordings under {', '.join(map(str, data_dirs))} (run 03_label.py first, "
                               f"or pass --data)")
    train_paths, eval_paths = common.split_recordings(paths, args.held_out, args.seed)
    if args.data_hours is not None:
        train_paths = common.take_hours(train_paths, args.data_hours, args.seed)
    torch.manual_seed(args.seed)
    model = make_policy(args)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        config = {**common.args_dict(args),
                  "data": [str(d) for d in data_dirs], "device": str(device), "world_size": world,
                  "train_recordings": len(train_paths), "eval_recordings": len(eval_paths),
                  "train_hours": sum(min(common.recording_frames(p), args.early_game or math.inf)
                                     for p in train_paths) / (3600 * common.RECORDING_FPS),
                  "parameters": common.count_parameters(model), "net_args": model.net_args}
        (out / "config.json").write_text(json.dumps(config, indent=1))
        print(f"[{label}] {len(train_paths)} recordings to train on, {len(eval_paths)} held out; "
              f"{config['parameters']:,} parameters")
    metrics = {"data": [str(d) for d in data_dirs], "train_hours": config["train_hours"] if rank == 0 else None,
               "run": common.run_info(device)}
    if args.steps > 0:
        start = time.time()
        history, rates = train(args, model, train_paths, eval_paths, device, rank, world, out, f"[{label}] ")
        metrics.update(rates, train_seconds=round(time.time() - start, 1),
                       held_out_loss=history["eval_loss"][-1] if history["eval_loss"] else None)
        if rank == 0:
            plot_loss(history, out / "loss.png")
    elif rank == 0:  # evaluation only: --init is scored as it is, and no checkpoint is written
        metrics["held_out_loss"] = held_out_loss(model.to(device), eval_paths, args.chunk or
                                                 model.net_args["timesteps"], device, args)
    if rank == 0 and args.episodes > 0:
        rates, info = evaluate_policy(out / "policy.pt" if args.steps > 0 else args.init, args,
                                      desc=f"[{label}] evaluate", video_path=out / "rollout.mp4")
        metrics.update(item_rates=rates, **info)
    return metrics


def main():
    args = parse_args()
    device, rank, world = common.setup_run(args)
    if args.episodes > 0:
        worlds.check_playable(args.env)  # before training, not after it
    common.claim_out(args, ["policy.pt", "contractor_only/policy.pt"], rank)
    if rank == 0 and args.download:
        print(f"{args.download}: {common.download_recordings(args.download, args.data[0], args.download_n)}")
    if world > 1:
        dist.barrier()
    metrics = clone(args, args.data, args.out, device, rank, world, "web" if args.compare else "bc")
    if rank == 0 and args.episodes > 0:
        # a policy that has learned nothing, evaluated the same way: uniformly random joint actions
        metrics["random_item_rates"], _ = evaluate_policy(None, args, desc="random policy")
        plot_items({"BC policy": metrics["item_rates"], "random actions": metrics["random_item_rates"]},
                   args.out / "item_rates.png", "Items obtained zero-shot (toy Fig. 4)")
    if args.compare:
        # toy Fig. 3 right: the same recipe on the labelled contractor data alone
        contractor = clone(args, [args.contractor_data], args.out / "contractor_only", device, rank, world,
                           "contractor")
        metrics["contractor_only"] = contractor
        if rank == 0 and args.episodes > 0:
            plot_items({"IDM-labelled web video": metrics["item_rates"],
                        "contractor data alone": contractor["item_rates"]}, args.out / "compare.png",
                       "BC on IDM pseudo-labels vs on the labelled data alone (toy Fig. 3 right)")
    if rank == 0:
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        if "item_rates" in metrics:
            got = ", ".join(f"{k} {v:.2f}" for k, v in metrics["item_rates"].items() if v > 0) or "nothing"
            rnd = ", ".join(f"{k} {v:.2f}" for k, v in metrics["random_item_rates"].items() if v > 0) or "nothing"
            print(f"zero-shot over {metrics['episodes']} episodes of {metrics['episode_steps']} steps: {got}")
            if metrics.get("gui_fraction") is not None:
                print(f"share of steps with a GUI open: {metrics['gui_fraction']:.2f}")
            print(f"random actions: {rnd}")
        print(f"-> {args.out}")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    common.run_main(main)
