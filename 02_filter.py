"""
02_filter.py: keep only the clean parts of web video. VPT §3.2 ("Data filtering").

Most Minecraft video on the internet is not someone playing survival mode: there are channel logos, the streamer's
face in a corner, creative mode, menus and title screens. A policy cloned on those frames would learn to act on
pixels it never sees when it plays. VPT trained a classifier on 8,800 frames that contractors labelled clean or
unclean, ran it over 270,000 hours of video and kept the clean segments, about 70,000 hours. This stage does the
same: train a frame classifier on a small labelled set, score every frame, smooth the scores over time (a frame is
rarely unclean alone, and the classifier's errors are mostly isolated frames), and keep the clean runs long enough
to be worth labelling.

Input:  web videos (--data, default data/web/: *.mp4). With --env toy and fewer than --hours of toycraft's videos
        there, the toy internet is recorded first: scripted players, some with a logo, a face cam, creative mode, a
        title screen or the pause menu over the game, each video with a hidden <stem>.truth.jsonl for evaluation only.
        Labelled frames: --labels, a CSV with the header video,frame,label and rows such as web-000123.mp4,417,clean
        (video relative to --data or absolute, frame 0-based, label clean/unclean or 1/0). In the toy world, without
        --labels, --n-labels frames are drawn at random and labelled from the truth, as contractors would have, and
        written to runs/filter/labels.csv in this format.
Output: runs/filter/clean_segments.json (the segments to label: video, start, end exclusive), metrics.json,
        classifier.pt, examples.png (frames kept and rejected).

Commands:
    python 02_filter.py --smoke        # a few web videos, a few steps: does everything run?
    python 02_filter.py                # toy: records 4 toy hours of web video, trains, filters
    python 02_filter.py --env minerl --data /path/to/web --labels labels.csv --size 128 --device cuda
What the toy run prints, and how long it takes: docs/results.md.

Differences from the paper:
1. The classifier: the paper's is reported to be a linear model on the embeddings of a pretrained image network. No
   such network exists for toy frames, and none can be downloaded on an offline laptop, so we train a small CNN from
   scratch: four stride-2 convolutions and a linear layer over the final 4x4 map (a logo or face cam sits in a
   corner, the creative HUD at the bottom, so where a feature is matters).
2. The paper's smoothing and minimum segment length are not published; we average the scores over --smooth frames
   (1 s) and keep clean runs of at least --min-length frames (3.2 s, longer than the IDM's window).
3. Toy labels come from the generator's truth, so they are never wrong; contractors' labels would be.
"""

import argparse
import csv
import json
import math
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import common

PAPER = {"labelled_frames": 8_800, "hours_in": 270_000, "hours_kept": 70_000}  # VPT §3.2


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where")
    g.add_argument("--env", default="toy", choices=["toy", "minerl"], help="toy: the toycraft internet; minerl: real")
    g.add_argument("--data", type=Path, default=Path("data/web"), help="web videos (*.mp4)")
    g.add_argument("--labels", type=Path, default=None, help="CSV of video,frame,label (toy: drawn from the truth)")
    g.add_argument("--out", type=Path, default=Path("runs/filter"))
    g.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    g.add_argument("--hours", type=common.positive, default=4.0, help="toy: hours of web video to record")
    g.add_argument("--codec", default="mp4v", choices=common.VIDEO_CODECS, help="toy: codec of the recorded video")
    g = p.add_argument_group("classifier")
    g.add_argument("--n-labels", type=common.positive_int, default=PAPER["labelled_frames"], help="toy: frames to "
                   "label (paper: 8,800)")
    g.add_argument("--size", type=common.number(int, 8), default=64, help="frames are resized to size x size for the "
                   "classifier")
    g.add_argument("--width", type=common.positive_int, default=16, help="channels of the first convolution")
    g.add_argument("--epochs", type=common.positive_int, default=8)
    g.add_argument("--batch", type=common.positive_int, default=64)
    g.add_argument("--lr", type=common.positive, default=2e-3)
    g.add_argument("--held-out", type=common.open_fraction, default=0.2, help="fraction of labelled videos held out "
                   "for evaluation")
    g = p.add_argument_group("segments")
    g.add_argument("--smooth", type=common.positive_int, default=21, help="frames averaged around each frame's score "
                   "(odd)")
    g.add_argument("--threshold", type=common.number(float, 0, 1), default=0.5, help="smoothed probability of clean "
                   "above which a frame is kept")
    g.add_argument("--min-length", type=common.positive_int, default=64, help="shortest clean segment kept, in frames")
    g = p.add_argument_group("running")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=common.count, default=os.cpu_count(), help="processes recording toy video")
    g.add_argument("--smoke", action="store_true", help="tiny everything, in runs/smoke/ and data/smoke/: "
                   "checks that the script runs")
    args = p.parse_args(argv)
    if args.smooth % 2 == 0:
        p.error(f"argument --smooth: must be odd, so that the window is centred on its frame (got {args.smooth})")
    if args.smoke:
        common.smoke_paths(args, p, ["data", "out"])
        args.hours, args.n_labels, args.epochs = 0.03, 300, 1
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def ensure_toy_web(args):
    """--env toy: record the toy internet until --hours of it exist (world seeds from 100,000: never a contractor's
    world). A folder of toycraft's videos (web-NNNNNN.mp4) is topped up, so an interrupted recording resumes; one that
    holds any other video is left as it is."""
    if args.env != "toy":
        return
    if args.data.exists() and any(not re.fullmatch(r"web-\d{6}\.mp4", v.name) for v in args.data.glob("*.mp4")):
        return
    import toycraft

    toycraft.record_hours(args.data, args.hours, web=True, seed=100_000, workers=args.workers, codec=args.codec,
                          max_steps=300 if args.smoke else 6000)  # --smoke: short videos, for running the code


def truth_path(video):
    return Path(video).with_suffix(".truth.jsonl")


def read_truth(video):
    """Toy only: the per-frame clean flag of a web video, from its hidden .truth.jsonl. (T,) bool, one per action."""
    with open(truth_path(video)) as f:
        return np.array([json.loads(line)["clean"] for line in f], dtype=bool)


def toy_labels(videos, n, seed):
    """The toy stand-in for contractors labelling frames: n frames drawn uniformly from all the video, labelled from
    the truth. Returns rows (video, frame, label 0/1, where: the video, there being no labels file)."""
    truths = [read_truth(v) for v in videos]
    sizes = np.array([len(t) for t in truths])
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(sizes.sum(), size=min(n, sizes.sum()), replace=False))
    video_of = np.searchsorted(np.cumsum(sizes), picks, side="right")
    frames = picks - np.r_[0, np.cumsum(sizes)][video_of]
    return [(videos[v], int(f), int(truths[v][f]), str(videos[v])) for v, f in zip(video_of, frames)]


def write_labels(rows, path, root):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "frame", "label"])
        for video, frame, label, _ in rows:
            w.writerow([Path(video).relative_to(root).as_posix(), frame, "clean" if label else "unclean"])


def read_labels(path, root):
    """A labels CSV (video,frame,label) -> rows (video path, frame, 0/1, "file:line"), with errors that name the file
    and line."""
    if not path.exists():
        raise common.UserError(f"{path}: no such labels file")
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f, strict=True)
        try:
            if reader.fieldnames is None or not {"video", "frame", "label"} <= set(reader.fieldnames):
                raise common.UserError(f"{path}: the header must name the columns video,frame,label "
                                       f"(got {reader.fieldnames})")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                video = Path(row["video"]) if Path(row["video"]).is_absolute() else root / row["video"]
                label = {"clean": 1, "1": 1, "unclean": 0, "0": 0}.get((row["label"] or "").strip().lower())
                if label is None:
                    raise common.UserError(f"{where}: label {row['label']!r} is neither clean/unclean nor 1/0")
                if not video.exists():
                    raise common.UserError(f"{where}: video {video} does not exist")
                try:
                    frame = int(row["frame"])
                except (TypeError, ValueError):
                    raise common.UserError(f"{where}: frame {row['frame']!r} is not a whole number") from None
                if frame < 0:
                    raise common.UserError(f"{where}: frame {frame} is negative (frames count from 0)")
                rows.append((video, frame, label, where))
        except csv.Error as e:
            # the reader stops inside the record after the last good one, before counting its lines
            raise common.UserError(f"{path}:{reader.line_num + 1}: not valid CSV ({e})") from None
    if not rows:
        raise common.UserError(f"{path}: no labelled frames in it")
    return rows


def labelled_frames(rows, size):
    """Decode the labelled frames: (N, size, size, 3) uint8, labels (N,), and the video of each. A video that cannot be
    read, or a frame beyond its end, is reported (with its line of the labels file) and left out."""
    by_video = {}
    for video, frame, label, where in rows:
        by_video.setdefault(Path(video), {})[frame] = (label, where)
    frames, labels, owners = [], [], []
    for video, wanted in tqdm(sorted(by_video.items()), desc="reading labelled frames", unit="video", leave=False):
        decoded = 0
        try:
            for t, frame in enumerate(common.iter_frames(video, size, end=max(wanted) + 1)):
                decoded = t + 1
                if t in wanted:
                    frames.append(frame)
                    labels.append(wanted[t][0])
                    owners.append(str(video))
        except common.RecordingError as e:
            lost = sorted(f for f in wanted if f >= decoded)
            warnings.warn(f"{wanted[lost[0]][1]}: frame {lost[0]} left out, and {len(lost) - 1} more of the "
                          f"{len(wanted)} labelled frames of {video.name}: {e}", common.DataWarning)
    if not frames:
        raise common.UserError(f"none of the {len(rows)} labelled frames could be read (the warnings above say why)")
    return np.stack(frames), np.array(labels, dtype=np.float32), np.array(owners)


def split_by_video(owners, held_out, seed):
    """Hold out every labelled frame of some videos: neighbouring frames of one video are near copies, so a random frame
    split would flatter the held-out score."""
    videos = np.unique(owners)
    rng = np.random.default_rng(seed)
    n_eval = max(1, int(round(held_out * len(videos)))) if len(videos) > 1 else 0
    held = set(rng.permutation(videos)[:n_eval])
    is_eval = np.array([o in held for o in owners])
    return ~is_eval, is_eval


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


class CleanClassifier(nn.Module):
    """A frame -> the logit of "clean". Four stride-2 convolutions take a size x size frame to a (size/16)^2 map, and
    a linear layer reads the whole map, so the classifier knows where on the screen a feature is."""

    def __init__(self, size=64, width=16):
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers = []
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1] * math.ceil(size / 16) ** 2, 1)
        self.size, self.width = size, width

    def forward(self, frames):
        # frames: (B, H, W, 3) uint8 -> (B,) logits
        x = frames.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.head(self.convs(x).flatten(1)).squeeze(-1)


@torch.no_grad()
def predict(model, frames, device, batch=256):
    """Probability of clean for each frame: (N, H, W, 3) uint8 -> (N,) float."""
    model.eval()
    out = [torch.sigmoid(model(torch.as_tensor(frames[i:i + batch]).to(device))).cpu()
           for i in range(0, len(frames), batch)]
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------------------------------


def train(args, model, frames, labels, device):
    """Binary cross-entropy, AdamW, cosine decay; random horizontal flips (the screen's left and right halves are alike
    for this question: a logo or face cam may sit in either corner)."""
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(frames) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    frames, labels = torch.as_tensor(frames), torch.as_tensor(labels)
    g = torch.Generator().manual_seed(args.seed)
    losses = []
    bar = tqdm(total=steps, desc="train classifier", unit="step")
    for _ in range(args.epochs):
        order = torch.randperm(len(frames), generator=g)
        for i in range(0, len(frames), args.batch):
            idx = order[i:i + args.batch]
            x, y = frames[idx], labels[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(2), x)  # (B, H, W, 3)
            model.train()
            # binary cross-entropy of "clean": L = - mean [ y log σ(f(x)) + (1 - y) log(1 - σ(f(x))) ], y = 1 if clean
            loss = nn.functional.binary_cross_entropy_with_logits(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    return losses


# ---------------------------------------------------------------------------------------------------------------------
# Evaluate: score every frame, smooth, cut segments
# ---------------------------------------------------------------------------------------------------------------------


def smooth_scores(scores, window):
    """Centred moving average over `window` frames (odd); near the ends, over the frames there are."""
    scores = np.asarray(scores, dtype=np.float64)
    half = window // 2
    csum = np.r_[0.0, np.cumsum(scores)]
    idx = np.arange(len(scores))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(scores))
    return (csum[hi] - csum[lo]) / (hi - lo)


def clean_segments(scores, window, threshold, min_length):
    """Per-frame P(clean) -> [(start, end)] (end exclusive): the runs where the smoothed score is above `threshold`,
    of at least `min_length` frames."""
    keep = smooth_scores(scores, window) > threshold
    # where keep switches on (+1) and off (-1)
    edges = np.diff(np.r_[0, keep.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_length]


def score_videos(model, videos, size, device, batch=512):
    """P(clean) of every frame of every video, streamed in batches. A video that cannot be read is skipped with a
    warning (and reported) rather than ending the run."""
    scores, skipped, n = {}, [], 0
    start = time.time()
    bar = tqdm(videos, desc="scoring web video", unit="video")
    for video in bar:
        parts, chunk = [], []
        try:
            for frame in common.iter_frames(video, size):
                chunk.append(frame)
                if len(chunk) == batch:
                    parts.append(predict(model, np.stack(chunk), device))
                    chunk = []
        except common.RecordingError as e:
            warnings.warn(f"skipping video: {e}", common.DataWarning)
            skipped.append((str(video), str(e)))
            continue
        if chunk:
            parts.append(predict(model, np.stack(chunk), device))
        scores[str(video)] = np.concatenate(parts)
        n += len(scores[str(video)])
        bar.set_postfix(frames_per_s=f"{n / max(time.time() - start, 1e-3):.0f}")
    return scores, skipped


def binary_scores(pred, true):
    """Accuracy, precision and recall with clean as the positive class. pred, true: bool arrays."""
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return {"accuracy": float((pred == true).mean()), "precision": float(tp / max(tp + fp, 1)),
            "recall": float(tp / max(tp + fn, 1))}


def truth_scores(segments, scores):
    """Toy only: the kept frames against the truth, over all the web video, and the fraction of video kept."""
    kept_all, true_all = [], []
    for video, p in scores.items():
        truth = read_truth(video)
        kept = np.zeros(len(p), dtype=bool)
        for s, e in segments[video]:
            kept[s:e] = True
        n = min(len(truth), len(kept))  # a video has one frame more than actions: the screen after the last
        kept_all.append(kept[:n])
        true_all.append(truth[:n])
    kept, truth = np.concatenate(kept_all), np.concatenate(true_all)
    return {**binary_scores(kept, truth), "kept_fraction": float(kept.mean()), "clean_fraction": float(truth.mean()),
            "frames": int(len(kept))}


# ---------------------------------------------------------------------------------------------------------------------
# Save
# ---------------------------------------------------------------------------------------------------------------------


def plot_examples(segments, scores, size, path, seed, n=8):
    """n random frames the filter kept and n it rejected, each with the classifier's P(clean) for that frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    kept, rejected = [], []
    for video, p in scores.items():
        mask = np.zeros(len(p), dtype=bool)
        for s, e in segments[video]:
            mask[s:e] = True
        for t in range(len(p)):
            (kept if mask[t] else rejected).append((video, t))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 4.4))
    for row, (name, pool) in enumerate((("kept", kept), ("rejected", rejected))):
        picks = [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)] if pool else []
        for k in range(n):
            ax = axes[row, k]
            ax.axis("off")
            if k < len(picks):
                video, t = picks[k]
                ax.imshow(common.read_frames(video, size, start=t, end=t + 1)[0])
                ax.set_title(f"{name}, P(clean) {scores[video][t]:.2f}", fontsize=7)
    fig.suptitle("02_filter: frames kept (top) and rejected (bottom)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    device, _, _ = common.setup_run(args)
    common.claim_out(args, ["classifier.pt"])
    (args.out / "config.json").write_text(json.dumps(common.args_dict(args), indent=1))
    ensure_toy_web(args)
    videos = sorted(args.data.glob("*.mp4")) if args.data.exists() else []
    if not videos:
        raise common.UserError(f"no web videos (*.mp4) in {args.data}")

    # the labelled set: the user's file, or in the toy world a sample labelled from the truth
    if args.labels is not None:
        rows = read_labels(args.labels, args.data)
    elif args.env == "toy":
        rows = toy_labels(videos, args.n_labels, args.seed)
        write_labels(rows, args.out / "labels.csv", args.data)
    else:
        raise common.UserError("--labels is needed outside the toy world (a CSV of video,frame,label)")
    frames, labels, owners = labelled_frames(rows, args.size)
    is_train, is_eval = split_by_video(owners, args.held_out, args.seed)
    print(f"{len(labels):,} labelled frames ({labels.mean():.0%} clean) from {len(np.unique(owners))} videos: "
          f"{is_train.sum():,} to train on, {is_eval.sum():,} held out")

    model = CleanClassifier(args.size, args.width)
    start = time.time()
    losses = train(args, model, frames[is_train], labels[is_train], device)
    train_seconds = time.time() - start
    held = binary_scores(predict(model, frames[is_eval], device) > 0.5, labels[is_eval] > 0.5) if is_eval.any() else {}
    tmp = args.out / "classifier.pt.tmp"  # written whole, then renamed: an interrupted save leaves no broken file
    torch.save({"model": model.state_dict(), "size": args.size, "width": args.width, "args": common.args_dict(args)},
               tmp)
    os.replace(tmp, args.out / "classifier.pt")

    # VPT §3.2: run the classifier over all the video and keep the clean segments
    start = time.time()
    scores, skipped = score_videos(model, videos, args.size, device)
    score_seconds = time.time() - start
    segments = {v: clean_segments(p, args.smooth, args.threshold, args.min_length) for v, p in scores.items()}
    total = sum(len(p) for p in scores.values())
    kept = sum(e - s for segs in segments.values() for s, e in segs)
    out = {"segments": [{"video": v, "start": s, "end": e} for v, segs in segments.items() for s, e in segs],
           "frames": total, "frames_kept": kept, "smooth": args.smooth, "threshold": args.threshold,
           "min_length": args.min_length, "skipped_videos": skipped}
    (args.out / "clean_segments.json").write_text(json.dumps(out, indent=1))

    metrics = {**held, "held_out_frames": int(is_eval.sum()), "train_frames": int(is_train.sum()),
               "final_train_loss": float(np.mean(losses[-20:])), "videos": len(scores), "frames": total,
               "kept_fraction": kept / max(total, 1), "segments": len(out["segments"]),
               "train_seconds": round(train_seconds, 1), "score_frames_per_second": round(total / score_seconds),
               "skipped_videos": len(skipped), "paper": PAPER, "run": common.run_info(device)}
    if args.env == "toy" and all(truth_path(v).exists() for v in scores):
        metrics["truth"] = truth_scores(segments, scores)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_examples(segments, scores, args.size, args.out / "examples.png", args.seed)

    print(f"held-out labelled frames ({metrics['held_out_frames']:,}): accuracy {held.get('accuracy', math.nan):.3f}, "
          f"precision {held.get('precision', math.nan):.3f}, recall {held.get('recall', math.nan):.3f}")
    if "truth" in metrics:
        t = metrics["truth"]
        print(f"kept frames against the truth ({t['frames']:,} frames, {t['clean_fraction']:.0%} clean): accuracy "
              f"{t['accuracy']:.3f}, precision {t['precision']:.3f}, recall {t['recall']:.3f}")
    print(f"kept {kept:,} of {total:,} frames ({metrics['kept_fraction']:.0%}) in {len(out['segments'])} segments "
          f"-> {args.out / 'clean_segments.json'}")


if __name__ == "__main__":
    common.run_main(main)
