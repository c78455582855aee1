"""
03_label.py: pseudo-label the clean web video with the inverse dynamics model. VPT §3.3.

This is where VPT's trick pays off. The IDM (01_idm.py) was trained on a few hours of video whose actions were recorded;
it now writes down the actions for every clean frame of the web video that 02_filter.py kept, tens of thousands of hours
in the paper. The policy (04_bc.py) then learns from these pseudo-labels as if they had been recorded.

Input:  the IDM (--idm, default runs/idm/idm.pt, or OpenAI's 4x_idm.model with its .weights beside it), the clean
        segments (--segments, default runs/filter/clean_segments.json) and the videos they name.
Output: one pseudo-labelled recording per segment in --out (default data/labeled/), in the contractor format, so that
        04_bc.py reads IDM labels and contractor labels with the same `common.load_contractor_episode`:
            <video stem>_<start>-<end>.jsonl          one recorder-format line per frame: keys, buttons, mouse dx/dy
            <video stem>_<start>-<end>-options.json   {"video": source video relative to this folder, "start", "end"}
        and runs/label/metrics.json: frames, frames/s and, in the toy world, the labels' agreement with the hidden
        truth (button_f1, camera_accuracy, ...) beside the IDM's own held-out scores from 01.

How a long segment is labelled (VPT §3.3): the IDM sees a window of frames at a time (toy: 16, OpenAI's 4x IDM: 128).
The paper is reported to slide 128-frame windows by 64 and keep each window's middle 64 predictions, so that every
frame is labelled with context on both sides. `common.idm_windows` does the same, extended to the segment's ends.

Commands:
    python 03_label.py --smoke                       # label two segments: does everything run?
    python 03_label.py                               # toy: label 02's clean segments with 01's IDM
    python 03_label.py --idm 4x_idm.model --segments clean_segments.json --out data/labeled --device cuda --bf16
    torchrun --nproc_per_node 8 03_label.py --idm 4x_idm.model --device cuda --bf16     # videos sharded across ranks
What the toy run prints, and how long it takes: docs/results.md.

Re-running skips segments already labelled by the same IDM (their .jsonl exists, written last and atomically, and
their -options.json carries the SHA-256 of the IDM's file), so an interrupted run picks up where it stopped and a
retrained IDM relabels everything. Labelled segments that 02 no longer lists are removed, so that 04 never trains on
stale labels. --force relabels everything.

Differences from the paper:
1. The IDM's most likely action is the label, as in OpenAI's released inference code (run_inverse_dynamics_model.py);
   the paper does not say whether labels were sampled or the most likely action was taken.
2. The toy IDM is small and its window short (16 frames); the labelling rule is the same.
"""

import argparse
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import common


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where")
    g.add_argument("--env", default="toy", choices=["toy", "minerl"], help="toy: score the labels against the truth")
    g.add_argument("--idm", type=Path, default=Path("runs/idm/idm.pt"), help="our checkpoint or OpenAI's .model")
    g.add_argument("--segments", type=Path, default=Path("runs/filter/clean_segments.json"))
    g.add_argument("--out", type=Path, default=Path("data/labeled"), help="pseudo-labelled recordings go here")
    g.add_argument("--run-dir", type=Path, default=Path("runs/label"), help="metrics go here")
    g = p.add_argument_group("labelling")
    g.add_argument("--window", type=common.positive_int, default=None, help="frames the IDM sees at once (default: the "
                   "window it was trained on, else its preset's timesteps)")
    g.add_argument("--batch", type=common.positive_int, default=8, help="windows per forward pass")
    g.add_argument("--force", action="store_true", help="relabel segments that are already labelled")
    g = p.add_argument_group("running")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--bf16", nargs="?", const="on", default="auto", choices=["auto", "on", "off"],
                   help="bfloat16 autocast (default auto: on for CUDA and for CPUs with bfloat16 instructions)")
    g.add_argument("--seed", type=int, default=0, help="labels are argmaxes; seeds only torch's defaults")
    g.add_argument("--smoke", action="store_true", help="label the first two segments only, in the smoke "
                   "tree (runs/smoke/, data/smoke/)")
    args = p.parse_args(argv)
    if args.smoke:
        common.smoke_paths(args, p, ["idm", "segments", "out", "run_dir"])
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def read_segments(path):
    """02_filter.py's output -> {video: [(start, end), ...]}, with an error that names the file if it is not one."""
    if not path.exists():
        raise common.UserError(f"{path}: no clean segments (run 02_filter.py first, or pass --segments)")
    try:
        rows = json.loads(path.read_text())["segments"]
        by_video = {}
        for i, row in enumerate(rows):
            start, end = int(row["start"]), int(row["end"])
            if not 0 <= start < end:
                raise common.UserError(f"{path}: segment {i} ({row['video']} {start}-{end}) is not a range of frames "
                                       f"(0 <= start < end)")
            by_video.setdefault(str(row["video"]), []).append((start, end))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise common.UserError(f"{path}: not a clean-segments file ({type(e).__name__}: {e})") from None
    return by_video


def segment_stem(out, video, start, end):
    return out / f"{Path(video).stem}_{start:07d}-{end:07d}"


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def load_idm(args):
    """The IDM and the window to label with: the one it was trained on (01 saves it), else its preset's timesteps."""
    if not args.idm.exists():
        raise common.UserError(f"{args.idm}: no such checkpoint (train one with 01_idm.py, or pass --idm)")
    if args.idm.suffix == ".pt":
        ckpt = common.load_checkpoint(args.idm)
        model, trained_on = common.build_model(ckpt), ckpt.get("args", {}).get("clip")
    else:
        model, trained_on = common.load_model(args.idm), None
    if model.kind != "idm":
        raise common.UserError(f"{args.idm}: holds {common.A_KIND[model.kind]}, not an IDM")
    return model, args.window or trained_on or model.net_args["timesteps"]


def fingerprint(idm_path):
    """SHA-256 of the IDM's file(s), the first 16 hex digits: which IDM wrote a segment's labels."""
    h = hashlib.sha256()
    paths = [idm_path] + ([idm_path.with_suffix(".weights")] if idm_path.suffix == ".model" else [])
    for path in paths:
        if path.exists():
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def segment_options(out, stem):
    """A labelled segment's -options.json as a dict; {} if it is missing or unreadable (then it is not ours)."""
    try:
        options = common.read_options(out / f"{stem}-options.json")
    except common.RecordingError:
        return {}
    return options if isinstance(options, dict) else {}


def remove_stale(out, segments, source):
    """Delete the pseudo-labelled recordings in `out` that 03 wrote (their options name the IDM that labelled them)
    for segments that are no longer in the list (`source`), saying so first: 04 clones everything in `out`, and labels
    of segments the filter no longer keeps must not be cloned. Returns how many."""
    keep = {segment_stem(out, video, start, end).name for video, spans in segments.items() for start, end in spans}
    stems = sorted(options.name[:-len("-options.json")] for options in out.glob("*-options.json"))
    stale = [stem for stem in stems if stem not in keep and "labelled_by" in segment_options(out, stem)]
    if stale:
        print(f"removing {len(stale)} labelled segments from {out} that {source} does not list (labelled from "
              f"another segments file), e.g. {stale[0]}.jsonl")
    for stem in stale:
        (out / f"{stem}.jsonl").unlink(missing_ok=True)
        (out / f"{stem}-options.json").unlink()
    return len(stale)


def to_env_actions(pred):
    """The IDM's labels -> a MineRL action dict of arrays: the 20 buttons 0/1 and the camera at its bin centres."""
    actions = {b: pred["buttons"][:, i].numpy() for i, b in enumerate(common.BUTTONS)}
    actions["camera"] = common.dequantize_camera(pred["camera"].numpy())  # (N, 2) degrees
    return actions


# ---------------------------------------------------------------------------------------------------------------------
# Label
# ---------------------------------------------------------------------------------------------------------------------


def label_segment(model, video, start, end, window, args, device, idm_sha256):
    """Label frames start..end-1 of a video and write the pseudo-labelled recording. Returns its .jsonl.

    The segment's labels point into the source video instead of being cut out as a video of their own. At the paper's
    scale (70,000 hours) a copy would mean re-encoding every clean frame and storing it twice, and a lossy re-encode
    would change the pixels: the policy would train on frames a generation worse than the ones the IDM labelled and
    the ones it sees when playing. A .jsonl is a few hundred bytes a frame, and the reader seeks to the segment's first
    frame (exact for constant-frame-rate video; resample variable-frame-rate web video to 20 fps first, as VPT did)."""
    stem = segment_stem(args.out, video, start, end)
    frames = common.read_frames(video, model.net_args["img_shape"][0], start, end)  # (N, H, W, 3)
    # VPT §3.3: overlapping windows, each frame labelled from the window where it sees most on both sides
    pred = common.idm_predict(model, frames, window=window, batch_size=args.batch, device=device, autocast=args.bf16)
    options = {"video": os.path.relpath(Path(video).resolve(), args.out.resolve()), "start": start, "end": end,
               "labelled_by": str(args.idm), "idm_sha256": idm_sha256, "window": window}
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}-options.json").write_text(json.dumps(options, indent=1))
    # the .jsonl last: its existence says the segment is done
    return common.write_actions_jsonl(stem.with_suffix(".jsonl"), to_env_actions(pred))


# ---------------------------------------------------------------------------------------------------------------------
# Evaluate (toy only: the truth is hidden beside each web video)
# ---------------------------------------------------------------------------------------------------------------------


def idm_scores(idm_path):
    """The IDM's own held-out scores, from the metrics.json that 01_idm.py wrote beside it; after a data-size sweep,
    those of the size this checkpoint was trained on (idm_<hours>h.pt). None if there are none."""
    path = Path(idm_path).parent / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    mine = [m for m in metrics.get("sweep", []) if m.get("checkpoint") == Path(idm_path).name]
    metrics = mine[0] if mine else metrics
    return {k: metrics.get(k) for k in ("button_f1", "button_accuracy", "camera_accuracy", "camera_r2")}


def agreement(labelled, idm_path):
    """Read the pseudo-labels back as 04_bc.py will, and score them against the true actions of the same frames."""
    pred_b, pred_c, true_b, true_c, true_deg = [], [], [], [], []
    truths = {}
    for jsonl, video, start, _ in labelled:
        truth_file = Path(video).with_suffix(".truth.jsonl")
        if not truth_file.exists():
            return None  # not the toy internet: nothing to compare with
        if video not in truths:
            truths[video] = common.read_actions(truth_file)[0]
        labels, _ = common.read_actions(jsonl)
        truth = truths[video]
        n = min(len(labels["camera"]), len(truth["camera"]) - start)  # a video's last frame has no true action
        b, c = common.idm_targets({k: v[:n] for k, v in labels.items()})
        tb, tc = common.idm_targets({k: v[start:start + n] for k, v in truth.items()})
        pred_b.append(b)
        pred_c.append(c)
        true_b.append(tb)
        true_c.append(tc)
        true_deg.append(torch.from_numpy(truth["camera"][start:start + n]))
    if not pred_b:
        return None
    scores = common.label_scores(*(torch.cat(x) for x in (pred_b, pred_c, true_b, true_c, true_deg)))
    if (idm := idm_scores(idm_path)) is not None:
        scores["idm_held_out"] = idm
    return scores


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def main():
    args = parse_args()
    # under torchrun, rank r of N labels videos r, r+N, r+2N, ... on its own: no process group is needed
    device, rank, world = common.setup_run(args, process_group=False)
    common.claim_out(args, rank=rank)  # labels are resumable: only one run at a time into --out
    model, window = load_idm(args)
    model.to(device).eval()
    idm_sha256 = fingerprint(args.idm)
    segments = read_segments(args.segments)
    videos = sorted(segments)[rank::world]  # this rank's shard
    if args.smoke:
        videos = videos[:2]
        segments = {v: segments[v][:1] for v in videos}
    print(f"labelling {sum(len(segments[v]) for v in videos)} segments of {len(videos)} videos with {args.idm} "
          f"(window {window}) on {device}" + (f", rank {rank} of {world}" if world > 1 else ""))

    # (jsonl, video, start, end) of every labelled segment; (what, why) of every skipped one
    labelled, problems = [], []
    n_frames, seconds, skipped_done = 0, 0.0, 0
    bar = tqdm(total=sum(e - s for v in videos for s, e in segments[v]), desc="labelling", unit="frame")
    for video in videos:
        for start, end in segments[video]:
            jsonl = segment_stem(args.out, video, start, end).with_suffix(".jsonl")
            done = jsonl.exists() and segment_options(args.out, jsonl.stem).get("idm_sha256") == idm_sha256
            if done and not args.force:
                jsonl.with_name(jsonl.name + ".tmp").unlink(missing_ok=True)  # a killed run's half-written copy
                labelled.append((jsonl, video, start, end))
                skipped_done += 1
                bar.update(end - start)
                continue
            if end - start < window:
                # the IDM would label it with less context than it was trained with: leave it out
                problems.append((f"{video} {start}-{end}", f"shorter ({end - start} frames) than the IDM's window "
                                                           f"({window})"))
                warnings.warn(f"skipping {problems[-1][0]}: {problems[-1][1]}", common.DataWarning)
                bar.update(end - start)
                continue
            t0 = time.time()
            try:
                label_segment(model, video, start, end, window, args, device, idm_sha256)
            except common.RecordingError as e:
                problems.append((f"{video} {start}-{end}", str(e)))
                warnings.warn(f"skipping a segment: {e}", common.DataWarning)
                bar.update(end - start)
                continue
            seconds += time.time() - t0
            n_frames += end - start
            labelled.append((jsonl, video, start, end))
            bar.update(end - start)
            bar.set_postfix(frames_per_s=f"{n_frames / max(seconds, 1e-3):.0f}")
    bar.close()
    removed = remove_stale(args.out, segments, args.segments) if rank == 0 and not args.smoke else 0

    metrics = {"frames": sum(end - start for _, _, start, end in labelled),
               "frames_labelled_now": n_frames, "frames_per_second": round(n_frames / max(seconds, 1e-3), 1),
               "segments": len(labelled), "segments_already_labelled": skipped_done,
               "stale_segments_removed": removed, "window": window, "idm_sha256": idm_sha256,
               "device": str(device), "problems": problems, "run": common.run_info(device)}
    if args.env == "toy":
        scores = agreement(labelled, args.idm)
        if scores is not None:
            metrics.update({k: v for k, v in scores.items() if k != "frames"}, truth_frames=scores["frames"])
    common.make_folder(args.run_dir)
    name = "metrics.json" if world == 1 else f"metrics.rank{rank}.json"
    (args.run_dir / name).write_text(json.dumps(metrics, indent=1))

    print(f"{metrics['segments']} segments, {metrics['frames']:,} frames labelled in {args.out} "
          f"({n_frames:,} now at {metrics['frames_per_second']:.0f} frames/s); {len(problems)} skipped")
    if "button_f1" in metrics:
        idm = metrics.get("idm_held_out") or {}
        print(f"agreement with the truth: button F1 {metrics['button_f1']:.3f} (IDM held out: "
              f"{idm.get('button_f1', float('nan')):.3f}), camera accuracy {metrics['camera_accuracy']:.3f} "
              f"(IDM held out: {idm.get('camera_accuracy', float('nan')):.3f})")


if __name__ == "__main__":
    common.run_main(main)
