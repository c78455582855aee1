"""
05_rl.py: reinforcement learning from the pretrained policy towards the diamond pickaxe, kept close to it by a KL
penalty. VPT §4.4, Fig. 6 and 7, Table 7.

The pretrained policy (04_bc.py) already chops trees and crafts, sometimes. RL turns "sometimes" into "reliably" and
goes further down the tech tree: a reward is paid for each item of the diamond-pickaxe sequence (Table 7), and PPO
improves the policy on it. Left alone, RL forgets what pretraining taught before the reward can teach anything better
(catastrophic forgetting), so VPT replaces the usual entropy bonus with a KL divergence from the frozen pretrained
policy, whose weight decays over training. `make paper-figures` puts both parts to the test (toy Fig. 7, several
seeds each): RL from a random initialisation, from the early-game model (§4.3) without the KL term and with it, and
from the foundation policy with it.

The code is CleanRL's ppo.py adapted to a recurrent policy with VPT's action space: the same storage layout, GAE loop,
clipped policy and value losses, per-minibatch advantage normalisation, and approx_kl / clipfrac / explained-variance
logs. What changes: the policy is a transformer with a memory, so the rollout keeps the memory (state) at the start
of every sequence of --seq-len steps, and the update recomputes each sequence's log-probs from that stored state.

Input:  the policy to start from (--init, default runs/bc/policy.pt; ours, or OpenAI's .model + .weights).
Output: runs/rl/policy.pt, metrics.json (item_rates of the final evaluation, mean_return, env_steps, the funnel of
        where episodes stall, and the history of return and item rates over training), training.png (the history).

Commands:
    python 05_rl.py --smoke                 # a couple of tiny iterations: does everything run?
    python 05_rl.py                         # toy: PPO from 04's policy, with the KL term, 131,072 steps
    python 05_rl.py --init runs/paper/bc_early_game/policy.pt --out runs/rl_early_game   # from the early-game model
    python 05_rl.py --scratch --kl-coef 0 --out runs/rl_scratch           # from a random initialisation
    torchrun --nproc_per_node 8 05_rl.py --env minerl --init foundation-model-1x.model --num-envs 16 --bf16
What the toy run prints, and how long it takes: docs/results.md. Under torchrun every rank runs --num-envs
environments of its own, gradients and return statistics are averaged over ranks, and rank 0 logs and evaluates.

Differences from the paper:
1. PPO instead of Phasic Policy Gradient: PPG adds auxiliary value-distillation phases that matter at the paper's
   scale and would double this file. The KL-to-pretrained term, the heart of §4.4, is the same. No entropy bonus, as
   in the paper (--ent-coef adds one).
2. The KL term: its direction is our choice, KL(π_θ || π_pretrained), and the paper's exact coefficient schedule is
   not known to us. We start at 0.2 and multiply by 0.99 every iteration: our runs are 128 iterations, not thousands.
3. Reward: Table 7, paid from inventory increases: a count pays only where it rises above the most of that item held
   so far this episode, up to the table's cap, so dropping and picking up again pays nothing. Death ends the toy
   episode, with no extra penalty.
4. Scale: 8 toy environments and 131,072 steps against the paper's thousands of 10-minute MineRL episodes in parallel.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

import common
import worlds

ITEMS = common.ITEMS  # the diamond-pickaxe sequence, VPT Fig. 6


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where")
    g.add_argument("--env", default="toy", choices=["toy", "minerl"])
    g.add_argument("--init", type=Path, default=Path("runs/bc/policy.pt"), help="the pretrained policy (ours or "
                   "OpenAI's .model); ignored with --scratch")
    g.add_argument("--scratch", action="store_true", help="start from a random initialisation instead (no KL term)")
    g.add_argument("--preset", default="toy", choices=list(common.PRESETS["policy"]), help="--scratch: network size")
    g.add_argument("--out", type=Path, default=Path("runs/rl"))
    g.add_argument("--resume", action="store_true", help="continue from --out/policy.pt after an interruption")
    g.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    g = p.add_argument_group("rollouts")
    g.add_argument("--num-envs", type=common.positive_int, default=8, help="parallel environments")
    g.add_argument("--env-workers", type=common.count, default=os.cpu_count(), help="processes running the "
                   "environments")
    g.add_argument("--num-steps", type=common.positive_int, default=128, help="steps per environment per rollout")
    g.add_argument("--seq-len", type=common.positive_int, default=32, help="steps per sequence in the update (state "
                   "stored at starts)")
    g.add_argument("--total-steps", type=common.positive_int, default=131_072, help="environment steps in all")
    g.add_argument("--episode-steps", type=common.positive_int, default=1200, help="steps in a training and evaluation "
                   "episode (as 04_bc.py evaluates)")
    g = p.add_argument_group("PPO")
    g.add_argument("--lr", type=common.positive, default=1e-4)
    g.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--gamma", type=common.number(float, 0, 1), default=0.999)
    g.add_argument("--gae-lambda", type=common.number(float, 0, 1), default=0.95)
    g.add_argument("--num-minibatches", type=common.positive_int, default=4)
    g.add_argument("--update-epochs", type=common.positive_int, default=2)
    g.add_argument("--norm-adv", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--clip-coef", type=common.positive, default=0.2)
    g.add_argument("--clip-vloss", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--ent-coef", type=common.non_negative, default=0.0, help="entropy bonus (the paper uses none)")
    g.add_argument("--vf-coef", type=common.non_negative, default=0.5)
    g.add_argument("--max-grad-norm", type=common.positive, default=0.5)
    g.add_argument("--kl-coef", type=common.non_negative, default=0.2, help="weight of KL(pi || pretrained); 0 turns "
                   "it off")
    g.add_argument("--kl-decay", type=common.number(float, 0, 1), default=0.99, help="the KL weight is multiplied by "
                   "this every iteration")
    g.add_argument("--value-pretrain", type=common.count, default=4, help="iterations that train only the value head "
                   "first")
    g = p.add_argument_group("evaluation and running")
    g.add_argument("--eval-episodes", type=common.positive_int, default=16)
    g.add_argument("--temperature", type=common.positive, default=1.0)
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--bf16", nargs="?", const="on", default="auto", choices=["auto", "on", "off"],
                   help="bfloat16 autocast (default auto: on for CUDA and for CPUs with bfloat16 instructions)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    g.add_argument("--checkpoint-activations", action="store_true", help="recompute activations in the backward "
                   "pass: less memory, about a third more compute (large presets)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--smoke", action="store_true", help="tiny everything, in runs/smoke/ and data/smoke/: "
                   "checks that the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        common.smoke_paths(args, p, ["init", "out"])
        args.num_envs, args.num_steps, args.seq_len, args.total_steps = 2, 16, 8, 64
        args.episode_steps, args.eval_episodes, args.value_pretrain = 24, 2, 1
    if args.num_steps % args.seq_len:
        p.error("--num-steps must be a multiple of --seq-len")
    if args.total_steps < args.num_envs * args.num_steps:
        p.error(f"--total-steps must be at least one rollout, --num-envs x --num-steps = "
                f"{args.num_envs * args.num_steps} (got {args.total_steps})")
    if args.num_minibatches > args.num_envs * args.num_steps // args.seq_len:
        p.error(f"--num-minibatches must be at most the {args.num_envs * args.num_steps // args.seq_len} sequences of "
                f"a rollout (--num-envs x --num-steps / --seq-len)")
    if args.resume and args.overwrite:
        p.error("--resume continues the run in --out and --overwrite replaces it: pass one")
    return args


# ---------------------------------------------------------------------------------------------------------------------
# The reward: VPT Table 7
# ---------------------------------------------------------------------------------------------------------------------

# VPT Table 7: the reward for each item of the sequence, and how many of it are rewarded (None: no limit). The base
# reward of a tier (1 wood and stone, 2 coal and torch, 4 iron, 8 diamond) is divided by the quantity rewarded, so that
# farming a cheap item in bulk never pays more than making the next one.
ITEM_REWARDS = {
    "log": (1 / 8, 8), "planks": (1 / 20, 20), "stick": (1 / 16, 16), "crafting_table": (1, 1),
    "wooden_pickaxe": (1, 1), "cobblestone": (1 / 11, 11), "stone_pickaxe": (1, 1), "furnace": (1, 1),
    "coal": (2 / 5, 5), "torch": (1 / 8, 16), "iron_ore": (4 / 3, 3), "iron_ingot": (4 / 3, 3), "iron_pickaxe": (4, 1),
    "diamond": (8 / 3, None), "diamond_pickaxe": (8, None),
}


def item_reward(inventory, high):
    """The RL reward of one step from the inventory after it (VPT Table 7), for every backend alike.

    inventory: {item: count}; high: float array (15,), the most of each item held so far this episode (start with
    zeros). An item pays only for the part of its count above `high`, up to its cap, so dropping and picking it up
    again pays nothing. Returns (reward, updated high)."""
    reward, high = 0.0, high.copy()
    for i, item in enumerate(ITEMS):
        n = inventory.get(item, 0)
        if n > high[i]:
            per_item, cap = ITEM_REWARDS[item]
            cap = math.inf if cap is None else cap
            reward += per_item * (min(n, cap) - min(high[i], cap))
            high[i] = n
    return reward, high


# ---------------------------------------------------------------------------------------------------------------------
# Environments: several per worker process, reset automatically, the reward computed where the inventory is
# ---------------------------------------------------------------------------------------------------------------------


def env_worker(remote, env_name, seeds, stride, max_steps, size, environ):
    """Runs envs with world seeds `seeds`; the k-th episode of env i uses seed seeds[i] + k * stride. Commands over the
    pipe: ("step", actions) -> per env (pov, reward, done, finished-episode info or None); ("close", None)."""
    common.worker_init(threads=1, environ=environ)
    envs, highs, returns, episode = [], [], [], [0] * len(seeds)
    try:
        for s in seeds:
            envs.append(worlds.make_env(env_name, seed=s, max_steps=max_steps, size=size))
            highs.append(np.zeros(len(ITEMS)))
            returns.append(0.0)
        povs = [env.reset()["pov"] for env in envs]
    except common.UserError as e:  # e.g. MineRL not installed: said once, by the main process
        remote.send(e)
        return
    remote.send(povs)
    while True:
        cmd, actions = remote.recv()
        if cmd == "close":
            for env in envs:
                getattr(env, "close", lambda: None)()
            remote.close()
            return
        out = []
        for i, env in enumerate(envs):
            obs, _, done, info = env.step(actions[i])
            # VPT Table 7: the reward comes from the inventory, the same function for every backend
            reward, highs[i] = item_reward(obs["inventory"], highs[i])
            returns[i] += reward
            finished = None
            if done:
                finished = {"return": returns[i], "items": env.obtained.copy(), "dead": bool(info.get("dead")),
                            "steps": env.steps}
                episode[i] += 1
                env.seed(seeds[i] + episode[i] * stride)  # the same env (for MineRL, the same Java process)
                obs = env.reset()
                highs[i], returns[i] = np.zeros(len(ITEMS)), 0.0
            out.append((obs["pov"], reward, done, finished))
        remote.send(out)


def _receive(remote):
    """A worker's reply. The UserError it met setting up is raised here; a worker that died is said to have."""
    try:
        reply = remote.recv()
    except EOFError:
        raise RuntimeError("an environment worker process died (its error is printed above)") from None
    if isinstance(reply, common.UserError):
        raise reply
    return reply


class VecEnv:
    """num_envs environments split over worker processes. step() takes the MineRL action dict of arrays (N,) and
    returns povs (N, H, W, 3), rewards (N,), dones (N,) and the episodes that just finished."""

    def __init__(self, env_name, num_envs, workers, seed, max_steps, size=64, stride=None):
        ctx = common.worker_context()
        workers = max(1, min(workers, num_envs))
        self.split = np.array_split(np.arange(num_envs), workers)
        self.remotes, self.procs = [], []
        for part in self.split:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=env_worker, args=(child, env_name, [seed + int(i) for i in part],
                                                        stride or num_envs, max_steps, size, dict(os.environ)),
                               daemon=True)
            proc.start()
            child.close()
            self.remotes.append(parent)
            self.procs.append(proc)
        self.first_povs = np.stack([pov for r in self.remotes for pov in _receive(r)])

    def step(self, env_actions):
        for remote, part in zip(self.remotes, self.split):
            remote.send(("step", [{k: v[i] for k, v in env_actions.items()} for i in part]))
        results = [item for remote in self.remotes for item in _receive(remote)]
        povs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float32)
        dones = np.array([r[2] for r in results], dtype=bool)
        return povs, rewards, dones, [r[3] for r in results if r[3] is not None]

    def close(self):
        for remote in self.remotes:
            remote.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=5)


# ---------------------------------------------------------------------------------------------------------------------
# The losses' pieces
# ---------------------------------------------------------------------------------------------------------------------


def action_logprob(pi, buttons, camera):
    """log pi(a) of a joint action: the button class plus, where that class moves the camera, the camera class (the
    camera is not executed otherwise, so it is not part of the action). pi: log-probs (..., 8641), (..., 121)."""
    camera_on = ~torch.from_numpy(common.BUTTON_CLASS_CAMERA_OFF).to(buttons.device)[buttons]
    logp_b = pi["buttons"].gather(-1, buttons[..., None]).squeeze(-1)
    logp_c = pi["camera"].gather(-1, camera[..., None]).squeeze(-1)
    return logp_b + logp_c * camera_on


def kl_to_pretrained(pi, pi_pre):
    """VPT §4.4's KL term, per step: KL(π_θ || π_pretrained) = Σ_a π_θ(a) (log π_θ(a) - log π_pretrained(a)), summed
    over the two heads (buttons, camera), whose joint distribution is their product. The expectation is under the
    policy being trained, so it penalises the policy for putting weight where the pretrained one puts little.
    pi, pi_pre: log-probs {"buttons": (..., 8641), "camera": (..., 121)}; returns (...)."""
    return sum((logp.exp() * (logp - pi_pre[k])).sum(-1) for k, logp in pi.items())


def entropy(pi):
    return sum(-(logp.exp() * logp).sum(-1) for logp in pi.values())


def compute_gae(rewards, values, dones, next_value, next_done, gamma, gae_lambda):
    """CleanRL's GAE loop. rewards, values, dones: (T, N), dones[t] = the episode had ended before step t's obs (i.e.
    obs t is the first of a new episode). Returns advantages and returns, (T, N)."""
    num_steps = len(rewards)
    advantages = torch.zeros_like(rewards)
    lastgaelam = 0
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - next_done.float()
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - dones[t + 1].float()
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
    return advantages, advantages + values


def state_select(state, idx):
    """The memory of some environments: each layer's (in_episode, keys, values) indexed on the batch dim."""
    return [tuple(x[idx] for x in layer) for layer in state]


def state_stack(states):
    return [tuple(torch.stack([s[i][j] for s in states]) for j in range(3)) for i in range(len(states[0]))]


# ---------------------------------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------------------------------


def load_start(args):
    """(policy, frozen pretrained copy or None); the same weights on every rank."""
    if args.scratch:
        torch.manual_seed(args.seed)
        return common.make_model("policy", args.preset), None
    if not Path(args.init).exists():
        raise common.UserError(f"{args.init}: no such checkpoint (run 04_bc.py first, pass --init, or use --scratch)")
    policy = common.load_model(args.init, kind="policy")
    pretrained = common.load_model(args.init, kind="policy") if args.kl_coef > 0 else None
    if pretrained is not None:
        pretrained.requires_grad_(False)
    return policy, pretrained


def all_gather(x, world):
    """Concatenate a tensor (or, for a list, the lists) of every rank; x itself when there is one process."""
    if world == 1:
        return x
    if isinstance(x, list):
        parts = [None] * world
        dist.all_gather_object(parts, x)
        return [item for part in parts for item in part]
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x)
    return torch.cat(parts)


def average_gradients(params, world):
    """What DistributedDataParallel does, by hand and in one message: every rank ends with the mean gradient. (DDP
    itself cannot be used here: the value pre-training changes which parameters train after it is built.)"""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    for g, mean in zip(grads, (flat / world).split([g.numel() for g in grads])):
        g.copy_(mean.view_as(g))


def train(args, out, device, label="rl", rank=0, world=1):
    policy, pretrained = load_start(args)
    policy.net.checkpoint_activations(args.checkpoint_activations)
    policy.set_temperature(args.temperature)
    policy.to(device)
    if pretrained is not None:
        pretrained.to(device).eval()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr, eps=1e-5)
    learner = torch.compile(policy) if args.compile and device.type == "cuda" else policy  # the update's forward
    size = policy.net_args["img_shape"][0]
    num_envs, num_steps, seq_len = args.num_envs, args.num_steps, args.seq_len
    batch_size = num_envs * num_steps * world  # every rank runs num_envs environments
    num_iterations = max(args.total_steps // batch_size, 1)
    n_seq = num_steps // seq_len  # sequences per environment per rollout
    start_iteration, history = 1, {"env_steps": [], "mean_return": [], "item_rates": [], "kl_pretrained": [],
                                   "kl_coef": []}
    ckpt_path = out / "policy.pt"
    ckpt = common.resume_from(ckpt_path, policy, optimizer) if args.resume else None
    if ckpt:
        start_iteration, history = ckpt["step"] + 1, ckpt["history"]
        history.setdefault("kl_pretrained", history.pop("kl", []))  # the key's name in older checkpoints
        print(f"[{label}] resuming from {ckpt_path} after iteration {ckpt['step']}")

    # CleanRL's storage, with frames for observations
    obs = torch.zeros((num_steps, num_envs, size, size, 3), dtype=torch.uint8)
    buttons = torch.zeros((num_steps, num_envs), dtype=torch.long)
    camera = torch.zeros((num_steps, num_envs), dtype=torch.long)
    logprobs = torch.zeros((num_steps, num_envs))
    rewards = torch.zeros((num_steps, num_envs))
    dones = torch.zeros((num_steps, num_envs), dtype=torch.bool)
    values = torch.zeros((num_steps, num_envs))
    # the pretrained policy's log-probs on the same frames, for the KL term (computed alongside the rollout, each
    # policy with its own memory)
    pre_b = torch.zeros((num_steps, num_envs, common.N_BUTTON_CLASSES)) if pretrained is not None else None
    pre_c = torch.zeros((num_steps, num_envs, common.N_CAMERA_CLASSES)) if pretrained is not None else None

    # training worlds, never recorded or evaluated in; rank r runs envs r*N ... r*N+N-1 of the world*N
    envs = VecEnv(args.env, num_envs, args.env_workers, seed=2_000_000 + 10_000 * args.seed + rank * num_envs,
                  max_steps=args.episode_steps, size=size, stride=num_envs * world)
    next_obs = torch.from_numpy(np.stack([common.resize_frame(p, size) for p in envs.first_povs]))
    next_done = torch.ones(num_envs, dtype=torch.bool)  # every environment starts an episode
    state = policy.initial_state(num_envs, device)
    pre_state = pretrained.initial_state(num_envs, device) if pretrained is not None else None
    finished = []  # every episode that ended: return, items
    kl_coef = args.kl_coef * args.kl_decay ** (start_iteration - 1)
    global_step = (start_iteration - 1) * batch_size
    bar = tqdm(range(start_iteration, num_iterations + 1), desc=f"[{label}] ppo", unit="iter",
               initial=start_iteration - 1, total=num_iterations, disable=rank != 0)
    start_time = time.time()
    for iteration in bar:
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.lr * (1.0 - (iteration - 1.0) / num_iterations)

        # ---- rollout: the memory at every sequence start is kept for the update
        seq_states = []
        policy.eval()
        for step in range(num_steps):
            if step % seq_len == 0:
                seq_states.append(state)
            global_step += num_envs * world
            obs[step] = next_obs
            dones[step] = next_done
            x, first = next_obs[:, None].to(device), next_done[:, None].to(device)  # (N, 1, H, W, 3), (N, 1)
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
                pi, value, state = policy(x, first, state)
                if pretrained is not None:
                    pi_pre, _, pre_state = pretrained(x, first, pre_state)
                    pre_b[step] = pi_pre["buttons"][:, 0].float().cpu()
                    pre_c[step] = pi_pre["camera"][:, 0].float().cpu()
            pi = {k: v[:, 0].float() for k, v in pi.items()}
            sampled = policy.sample(pi)  # at --temperature; the ratio and the KL below use pi itself (T = 1)
            a_b, a_c = sampled["buttons"], sampled["camera"]
            buttons[step], camera[step] = a_b.cpu(), a_c.cpu()
            logprobs[step] = action_logprob(pi, a_b, a_c).cpu()
            # the value head predicts normalised returns; GAE works in the returns' own units
            values[step] = policy.value_head.normalizer.denormalize(value[:, 0].float()).cpu()
            povs, reward, done, ended = envs.step(common.policy_to_env_action({"buttons": a_b.cpu().numpy(),
                                                                               "camera": a_c.cpu().numpy()}))
            rewards[step] = torch.from_numpy(reward)
            next_obs = torch.from_numpy(np.stack([common.resize_frame(p, size) for p in povs]))
            next_done = torch.from_numpy(done)
            finished += all_gather(ended, world)

        # ---- GAE (the value of the observation after the rollout bootstraps the last step)
        with torch.no_grad():
            _, next_value, _ = policy(next_obs[:, None].to(device), next_done[:, None].to(device), state)
            next_value = policy.value_head.normalizer.denormalize(next_value[:, 0].float()).cpu()
        advantages, returns = compute_gae(rewards, values, dones, next_value, next_done, args.gamma, args.gae_lambda)
        policy.value_head.normalizer.update(all_gather(returns, world))  # the same statistics on every rank

        # ---- update: minibatches of whole sequences (env, k), each recomputed from its stored memory
        policy.train()
        value_only = iteration <= args.value_pretrain
        # while the value head pre-trains, nothing else may move (the value loss would reach the shared trunk)
        for p in trainable:
            p.requires_grad_(not value_only)
        policy.value_head.requires_grad_(True)
        seqs = [(e, k) for e in range(num_envs) for k in range(n_seq)]
        mb_count = max(len(seqs) // args.num_minibatches, 1)
        clipfracs, stats = [], {}
        for epoch in range(args.update_epochs):
            order = np.random.permutation(len(seqs))
            for start in range(0, len(seqs), mb_count):
                mb = [seqs[i] for i in order[start:start + mb_count]]
                t_idx = torch.stack([torch.arange(k * seq_len, (k + 1) * seq_len) for _, k in mb])  # (M, L)
                e_idx = torch.tensor([e for e, _ in mb])[:, None].expand_as(t_idx)
                mb_state = state_stack([state_select(seq_states[k], e) for e, k in mb])
                x = obs[t_idx, e_idx].to(device)  # (M, L, H, W, 3)
                first = dones[t_idx, e_idx].to(device)
                with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
                    pi, newvalue, _ = learner(x, first, mb_state)
                pi = {k: v.float() for k, v in pi.items()}
                newlogprob = action_logprob(pi, buttons[t_idx, e_idx].to(device), camera[t_idx, e_idx].to(device))
                logratio = newlogprob - logprobs[t_idx, e_idx].to(device)
                ratio = logratio.exp()
                with torch.no_grad():
                    # PPO's diagnostic, not a loss: how far this update has moved the policy from the one that
                    # collected the rollout, KL(π_old || π_θ), estimated from the sampled actions
                    # (http://joschu.net/blog/kl-approx.html)
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = advantages[t_idx, e_idx].to(device)
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # PPO's clipped surrogate, with r = π_θ(a|o) / π_old(a|o) and A the normalised advantage:
                #   L_clip = - E[ min(r A, clip(r, 1 - ε, 1 + ε) A) ]
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # value loss, on normalised returns, clipped like the policy:
                #   L_V = ½ E[ max((V - R)², (V_old + clip(V - V_old, -ε, ε) - R)²) ]
                newvalue = newvalue.float()
                target = policy.value_head.normalizer.normalize(returns[t_idx, e_idx].to(device))
                old_value = policy.value_head.normalizer.normalize(values[t_idx, e_idx].to(device))
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - target) ** 2
                    v_clipped = old_value + torch.clamp(newvalue - old_value, -args.clip_coef, args.clip_coef)
                    v_loss_clipped = (v_clipped - target) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - target) ** 2).mean()

                # VPT §4.4: instead of an entropy bonus, stay close to the frozen pretrained policy,
                #   L_KL = E[ KL(π_θ(·|o) || π_pretrained(·|o)) ]   on the rollout's frames
                if pretrained is not None:
                    kl_pretrained = kl_to_pretrained(pi, {"buttons": pre_b[t_idx, e_idx].to(device),
                                                          "camera": pre_c[t_idx, e_idx].to(device)}).mean()
                else:
                    kl_pretrained = torch.zeros((), device=device)
                entropy_loss = entropy(pi).mean()
                if value_only:
                    loss = v_loss * args.vf_coef  # the value head learns the returns before the policy moves
                else:
                    # L = L_clip - c_H H(π_θ) + c_V L_V + ρ_k L_KL, with ρ_k = kl_coef · kl_decay^k after k iterations
                    loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + kl_coef * kl_pretrained

                optimizer.zero_grad()
                loss.backward()
                if world > 1:
                    average_gradients(trainable, world)
                torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
            stats = {"pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "kl_pretrained": kl_pretrained.item(),
                     "entropy": entropy_loss.item(), "approx_kl": approx_kl.item(),
                     "old_approx_kl": old_approx_kl.item()}
        if not value_only:
            kl_coef *= args.kl_decay

        y_pred, y_true = values.flatten().numpy(), returns.flatten().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        recent = finished[-2 * num_envs * world:]
        mean_return = float(np.mean([f["return"] for f in recent])) if recent else float("nan")
        rates = (np.mean([f["items"] for f in recent], axis=0) if recent else np.zeros(len(ITEMS))).tolist()
        history["env_steps"].append(global_step)
        history["mean_return"].append(mean_return)
        history["item_rates"].append(rates)
        history["kl_pretrained"].append(stats["kl_pretrained"])
        history["kl_coef"].append(kl_coef)
        top = max([i for i, r in enumerate(rates) if r > 0], default=None)
        bar.set_postfix(ret=f"{mean_return:.2f}", eps=len(finished), best=ITEMS[top] if top is not None else "-",
                        kl_pre=f"{stats['kl_pretrained']:.3f}", clipfrac=f"{np.mean(clipfracs):.2f}",
                        ev=f"{explained_var:.2f}", sps=int((global_step - (start_iteration - 1) * batch_size)
                                                           / (time.time() - start_time)))
        if rank == 0:
            common.save_checkpoint(ckpt_path, policy, optimizer, args, iteration, history=history)
    envs.close()
    return history


# ---------------------------------------------------------------------------------------------------------------------
# Evaluate and save
# ---------------------------------------------------------------------------------------------------------------------


def plot_training(history, path):
    """Mean episode return and each item's rate over training (make paper-figures draws the runs of Fig. 7 together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["log", "planks", "crafting_table", "wooden_pickaxe", "cobblestone", "stone_pickaxe", "furnace",
             "iron_pickaxe"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1.3, 1.3]})
    steps = np.array(history["env_steps"]) / 1000
    axes[0].plot(steps, history["mean_return"])
    rates = np.array(history["item_rates"])
    for j, item in enumerate(shown):
        axes[1 if j < 4 else 2].plot(steps, rates[:, ITEMS.index(item)], color=f"C{j}", label=item.replace("_", " "))
    axes[0].set(xlabel="environment steps (thousands)", ylabel="episode return", title="reward (Table 7)")
    for ax, title in zip(axes[1:], ["early items", "later items"]):
        ax.set(xlabel="environment steps (thousands)", ylabel="fraction of episodes", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args, out, device, label, rank=0, world=1):
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.json").write_text(json.dumps({**common.args_dict(args), "world_size": world}, indent=1))
    start = time.time()
    history = train(args, out, device, label, rank, world)
    train_seconds = time.time() - start
    if rank != 0:
        return None
    rates, info = worlds.evaluate_items(out / "policy.pt", args.env, args.eval_episodes, args.episode_steps,
                                        temperature=args.temperature, seed=args.seed, desc=f"[{label}] evaluate")
    metrics = {"item_rates": rates, "mean_return": history["mean_return"][-1], "env_steps": history["env_steps"][-1],
               "train_seconds": round(train_seconds, 1), "world_size": world, **info, "run": common.run_info(device),
               "history": {k: history[k] for k in ("env_steps", "mean_return", "item_rates")}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_training(history, out / "training.png")
    return metrics


def main():
    args = parse_args()
    # under torchrun each rank runs its own environments; gradients and return statistics are averaged over ranks
    device, rank, world = common.setup_run(args)
    worlds.check_playable(args.env)
    common.claim_out(args, ["policy.pt"], rank)
    metrics = run(args, args.out, device, "scratch" if args.scratch else "rl", rank, world)
    if rank == 0:
        got = ", ".join(f"{k} {v:.2f}" for k, v in metrics["item_rates"].items() if v > 0) or "nothing"
        print(f"after {metrics['env_steps']:,} steps: mean return {metrics['mean_return']:.2f}; evaluation over "
              f"{metrics['episodes']} episodes of {metrics['episode_steps']} steps: {got} -> {args.out}")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    common.run_main(main)
