"""
toycraft.py: a small first-person Minecraft with MineRL's interface, so that all of VPT runs on a laptop CPU.

Real Minecraft needs Java, a GPU-class machine and 70,000 hours of video. ToyCraft keeps what makes VPT VPT and drops
the rest:
- a first-person view (a numpy raycaster over a 2-D block grid, 64x64 pixels by default) seen through MineRL's native
  mouse-and-keyboard action dict: held keys, a camera in degrees, hotbar slots, an inventory GUI with a mouse cursor;
- the tech tree of VPT's diamond-pickaxe curriculum (paper §4.4, Table 7): log -> planks -> sticks -> crafting table ->
  wooden pickaxe -> cobblestone -> stone pickaxe -> furnace -> coal -> torch -> iron ore -> iron ingot -> iron pickaxe
  -> diamond -> diamond pickaxe, with tools gating what can be mined, as in Minecraft;
- scripted players who play like people (smooth, noisy mouse turns, idling, mistakes), whose recordings are the toy
  "contractor data", and a toy internet of videos without actions, some of them unclean (logos, face cams, creative
  mode, menus), for the stages to learn from.

Every action leaves a trace in the pixels, because VPT's inverse dynamics model must recover actions from frames alone:
walking moves the floor tiles and bobs the hand, attack swings the hand and cracks the block, sneak lowers the eye,
jump raises it, hotbar keys move the highlighted slot, drop lowers a count, the inventory key opens the GUI. Not every
press does, as in Minecraft: pressing the slot already selected, holding jump in mid-air, the second tick of a tap.
No IDM can label such presses, so the scripted players do not make them; `python tools/visibility.py` checks the
contractor data for them, and for camera turns too small to tell from the next bin's (a mouse count turns the view by
0.12 pixels at 64x64, and moves the GUI pointer by 0.09). docs/toycraft.md tells the world's rules and players in full.

Usage:
    python toycraft.py record --out data/contractor --episodes 20 --seed 0   # toy contractor recordings
    python toycraft.py record --web --out data/web --episodes 20 --seed 1000   # the toy internet (no actions)
    python toycraft.py players --episodes 20                   # item success rates of each scripted player level
    python toycraft.py demo --out demo.mp4                     # a good player's episode (+ demo.gif)
    python tools/bench.py toycraft                             # steps/s next to Crafter's, reset time

How ToyCraft departs from Minecraft (and MineRL):
1. The world is a 2-D grid seen in first person: no height, no caves, no mobs, no hunger. Solid blocks are 3 high.
2. Blocks that need a tool cannot be mined at all without it (Minecraft lets you mine them slowly for nothing).
3. One crafting GUI for everything: a grid of recipes to click, not Minecraft's crafting grid of slots, with the
   early recipes round the middle of the screen, where the pointer opens. A recipe needs a crafting table or a
   furnace within 3 blocks if it says so.
   Smelting takes one coal (or, without coal, one planks) per ingot, and is instant.
4. Dropped items vanish. Mined blocks go straight to the inventory.
5. The hotbar holds 9 item types: a newly obtained type takes an empty slot, or else the slot of the type obtained
   longest ago that is not a pickaxe (which goes to the backpack); a slot that empties is refilled from the backpack.
   No inventory juggling in the GUI.
6. Pitch is limited to +-60 degrees (Minecraft: +-90).
"""

import argparse
import heapq
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

import common

# ---------------------------------------------------------------------------------------------------------------------
# The rules, in tables
# ---------------------------------------------------------------------------------------------------------------------

# The paper's item sequence (VPT §4.4, Table 7; common.ITEMS): the inventory has exactly these, in this order.
ITEMS = common.ITEMS
# tool tier of each pickaxe; anything else in hand is tier 0 ("hand")
PICKAXE_TIER = {"wooden_pickaxe": 1, "stone_pickaxe": 2, "iron_pickaxe": 3, "diamond_pickaxe": 4}

# Blocks. Floor blocks can be walked on; solid blocks stop you and can be mined if your tool's tier reaches `tier`.
# `ticks[k]` is the mining time at 20 ticks/s with a tool of tier k (hand, wooden, stone, iron, diamond pickaxe).
#   name             solid  tier  ticks by tier       drops            colour (RGB)
BLOCK_TABLE = [
    ("grass",          False, None, None,              None,            (96, 160, 64)),
    ("floor",          False, None, None,              None,            (120, 110, 100)),  # a mined-out tunnel
    ("water",          False, None, None,              None,            (50, 90, 200)),  # slows you unless you swim (jump)
    ("lava",           False, None, None,              None,            (230, 90, 20)),  # walking in is death
    ("log",            True,  0,    (14, 9, 7, 6, 5),  "log",           (110, 80, 45)),  # a tree: trunk under leaves
    ("stone",          True,  1,    (0, 12, 7, 5, 4),  "cobblestone",   (125, 125, 125)),
    ("coal_ore",       True,  1,    (0, 15, 9, 7, 5),  "coal",          (125, 125, 125)),
    ("iron_ore",       True,  2,    (0, 0, 12, 8, 6),  "iron_ore",      (125, 125, 125)),
    ("diamond_ore",    True,  3,    (0, 0, 0, 15, 10), "diamond",       (125, 125, 125)),
    ("crafting_table", True,  0,    (10, 7, 5, 4, 3),  "crafting_table", (150, 105, 60)),
    ("furnace",        True,  1,    (0, 12, 8, 6, 4),  "furnace",       (90, 90, 90)),
    ("cobblestone",    True,  1,    (0, 12, 7, 5, 4),  "cobblestone",   (105, 105, 105)),
    ("planks",         True,  0,    (10, 7, 5, 4, 3),  "planks",        (185, 145, 85)),
    ("bedrock",        True,  None, None,              None,            (50, 50, 50)),  # the world's edge
]
BLOCKS = [row[0] for row in BLOCK_TABLE]
B = {name: i for i, name in enumerate(BLOCKS)}  # block name -> id
SOLID = np.array([row[1] for row in BLOCK_TABLE])
# items that can be placed with `use`, and the block they become
PLACEABLE = {"crafting_table": "crafting_table", "furnace": "furnace", "cobblestone": "cobblestone",
             "planks": "planks", "log": "log"}

# Recipes, in the order of the GUI's grid. `near` is the block that must stand within NEAR_DISTANCE.
#   output             count  inputs                                  near
RECIPES = [
    ("planks",          4,    {"log": 1},                             None),
    ("stick",           4,    {"planks": 2},                          None),
    ("crafting_table",  1,    {"planks": 4},                          None),
    ("wooden_pickaxe",  1,    {"planks": 3, "stick": 2},              "crafting_table"),
    ("stone_pickaxe",   1,    {"cobblestone": 3, "stick": 2},         "crafting_table"),
    ("furnace",         1,    {"cobblestone": 8},                     "crafting_table"),
    ("torch",           4,    {"coal": 1, "stick": 1},                None),
    ("iron_ingot",      1,    {"iron_ore": 1, "coal": 1},             "furnace"),  # or planks as fuel, see _craft
    ("iron_pickaxe",    1,    {"iron_ingot": 3, "stick": 2},          "crafting_table"),
    ("diamond_pickaxe", 1,    {"diamond": 3, "stick": 2},             "crafting_table"),
]
RECIPE_NAMES = [r[0] for r in RECIPES]
NEAR_DISTANCE = 3  # blocks (Chebyshev distance between cells)

# Movement, in blocks per tick (Minecraft: walk 4.3 blocks/s, sprint 5.6, sneak 1.3, at 20 ticks/s)
WALK, SPRINT, SNEAK, WATER_FACTOR = 0.215, 0.28, 0.065, 0.35
PLAYER_RADIUS = 0.3
REACH = 3.0  # how far away a block can be mined or placed
JUMP_TICKS = 10  # a jump lasts half a second
JUMP_HEIGHT = 0.5
PITCH_LIMIT = 60.0

# The camera. The view is 3 blocks tall walls over a floor, seen from eye height 1.6 with a 70-degree field of view
# (MineRL's fov). Walls further than VIEW_DISTANCE fade into the sky colour.
FOV = 70.0
WALL_HEIGHT = 3.0
EYE_HEIGHT = 1.6
SNEAK_DROP = 0.25
VIEW_DISTANCE = 12.0
SKY = np.array([150, 190, 240], dtype=np.float32)

# GUI mouse: one mouse count moves the cursor one pixel of the recorder's 720-pixel-high window, and the camera
# degrees of an action are mouse counts times common.CAMERA_SCALER (0.15), as in the contractor data.
GUI_COUNTS_PER_DEGREE = 1.0 / common.CAMERA_SCALER


# ---------------------------------------------------------------------------------------------------------------------
# Textures and icons: tiny pixel art, drawn with numpy
# ---------------------------------------------------------------------------------------------------------------------

TEX = 8  # texels per block face, each way


def _make_textures(seed=12345):
    """(n_blocks, 3*TEX, TEX, 3) float32: each solid block's face, 3 blocks tall, top row first."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((len(BLOCKS), 3 * TEX, TEX, 3), dtype=np.float32)
    noise = rng.uniform(0.85, 1.1, (3 * TEX, TEX, 1)).astype(np.float32)
    for i, (name, _, _, _, _, colour) in enumerate(BLOCK_TABLE):
        tex[i] = np.array(colour, dtype=np.float32) * noise
    # trees: bark below, leaves on top, so a tree reads as a tree from afar
    tex[B["log"], :TEX] = np.array([50, 125, 40], np.float32) * rng.uniform(0.7, 1.2, (TEX, TEX, 1))
    tex[B["log"], TEX:, ::3] *= 0.75  # vertical bark lines
    # ores: specks of colour on stone
    for ore, speck in (("coal_ore", (25, 25, 25)), ("iron_ore", (215, 175, 140)), ("diamond_ore", (90, 235, 235))):
        mask = rng.random((3 * TEX, TEX)) < 0.22
        tex[B[ore]][mask] = speck
    tex[B["crafting_table"], :, ::4] *= 0.6  # a grid of dark lines
    tex[B["crafting_table"], ::4] *= 0.6
    tex[B["furnace"], TEX + 2:2 * TEX - 2, 2:-2] = (30, 20, 15)  # the furnace mouth
    tex[B["planks"], ::2] *= 0.85
    tex[B["cobblestone"]] *= rng.uniform(0.7, 1.15, (3 * TEX, TEX, 1))
    return tex


TEXTURES = _make_textures()
# cracks on a block being mined: a texel darkens once the mining progress passes its threshold
CRACKS = np.random.default_rng(7).uniform(0.05, 1.0, (3 * TEX, TEX)).astype(np.float32)
FLOOR_COLOURS = np.array([row[5] for row in BLOCK_TABLE], dtype=np.float32)

# 5x5 icons of the items, for the hotbar and the GUI: a shape (block, gem, stick, pickaxe, torch, ingot) in colours
_ICON_SHAPES = {
    "block": ["#####", "#####", "#####", "#####", "#####"],
    "stick": ["....#", "...#.", "..#..", ".#...", "#...."],
    "pickaxe": ["#####", "#.#.#", "..#..", "..#..", "..#.."],
    "gem": ["..#..", ".###.", "#####", ".###.", "..#.."],
    "ingot": [".....", ".####", "####.", "####.", "....."],
    "torch": ["..#..", "..#..", "..#..", "..#..", "..#.."],
    "lump": [".....", ".###.", "#####", ".###.", "....."],
}
_ITEM_LOOK = {  # item: (shape, main colour, head colour for pickaxes and torches)
    "log": ("block", (110, 80, 45), None), "planks": ("block", (185, 145, 85), None),
    "stick": ("stick", (140, 100, 50), None), "crafting_table": ("block", (150, 105, 60), (90, 60, 30)),
    "wooden_pickaxe": ("pickaxe", (140, 100, 50), (185, 145, 85)), "cobblestone": ("block", (105, 105, 105), None),
    "stone_pickaxe": ("pickaxe", (140, 100, 50), (130, 130, 130)), "furnace": ("block", (80, 80, 80), (30, 20, 15)),
    "coal": ("lump", (25, 25, 25), None), "torch": ("torch", (140, 100, 50), (255, 210, 60)),
    "iron_ore": ("lump", (215, 175, 140), None), "iron_ingot": ("ingot", (225, 225, 225), None),
    "iron_pickaxe": ("pickaxe", (140, 100, 50), (225, 225, 225)), "diamond": ("gem", (90, 235, 235), None),
    "diamond_pickaxe": ("pickaxe", (140, 100, 50), (90, 235, 235)),
}


def _make_icons():
    """(n_items, 5, 5, 4) float32 RGBA icons."""
    icons = np.zeros((len(ITEMS), 5, 5, 4), dtype=np.float32)
    for i, item in enumerate(ITEMS):
        shape, main, head = _ITEM_LOOK[item]
        for y, row in enumerate(_ICON_SHAPES[shape]):
            for x, ch in enumerate(row):
                if ch == "#":
                    colour = head if head is not None and (y == 0 or (shape == "block" and y == 2)) else main
                    icons[i, y, x] = (*colour, 1.0)
    return icons


ICONS = _make_icons()

# a 3x5 pixel font for counts
_DIGITS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
           "111100111001111", "111100111101111", "111001010010010", "111101111101111", "111101111001111"]
DIGIT_MASKS = np.array([[int(b) for b in d] for d in _DIGITS], dtype=bool).reshape(10, 5, 3)


def _blit(img, sprite, top, left, scale=1):
    """Paint an RGBA sprite (h, w, 4) onto img (H, W, 3) float, scaled by an integer factor, clipped at the edges."""
    if scale > 1:
        sprite = sprite.repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = sprite.shape[:2]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, img.shape[0]), min(left + w, img.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    s = sprite[y0 - top:y1 - top, x0 - left:x1 - left]
    a = s[..., 3:4]
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + s[..., :3] * a


def _draw_number(img, value, top, left, scale=1, colour=(255, 255, 255)):
    """Draw a non-negative integer with the 3x5 font, left-aligned, 1 pixel between digits."""
    for k, ch in enumerate(str(int(value))):
        glyph = np.zeros((5, 3, 4), dtype=np.float32)
        glyph[DIGIT_MASKS[int(ch)]] = (*colour, 1.0)
        _blit(img, glyph, top, left + k * 4 * scale, scale)


# ---------------------------------------------------------------------------------------------------------------------
# The world generator
# ---------------------------------------------------------------------------------------------------------------------


def _smooth_noise(rng, n, cells):
    """A smooth random field on an n x n grid with features about n / cells blocks wide, in [0, 1]."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
    return (field - field.min()) / (field.max() - field.min() + 1e-6)


def generate_world(rng, n=64):
    """A world of n x n blocks: meadows with forests and lakes, stone hills with ore, diamonds deep inside stone,
    lava pools near them. Returns (grid (n, n) uint8 indexed [x, y], spawn (x, y))."""
    grid = np.full((n, n), B["grass"], dtype=np.uint8)
    stone = _smooth_noise(rng, n, 6) > 0.58
    grid[stone] = B["stone"]
    # lakes in the meadows
    grid[(_smooth_noise(rng, n, 7) < 0.16) & ~stone] = B["water"]
    # forests: trees are denser where a second noise field is high
    forest = _smooth_noise(rng, n, 5)
    trees = (rng.random((n, n)) < 0.02 + 0.12 * forest**2) & (grid == B["grass"])
    grid[trees] = B["log"]
    # ores, scattered in the stone; the deeper inside a hill, the rarer the ore and the more diamonds
    depth = cv2.distanceTransform(stone.astype(np.uint8), cv2.DIST_L1, 3)  # blocks to the nearest non-stone
    roll = rng.random((n, n))
    grid[stone & (roll < 0.10)] = B["coal_ore"]
    grid[stone & (roll >= 0.10) & (roll < 0.15) & (depth >= 2)] = B["iron_ore"]
    deep = stone & (depth >= 4)
    diamonds = deep & (rng.random((n, n)) < 0.012)
    if diamonds.sum() < 3:  # always enough diamonds for a pickaxe: take the deepest stone
        order = np.argsort(-(depth + rng.random((n, n))).reshape(-1))[:4]
        diamonds.reshape(-1)[order] = True
    grid[diamonds] = B["diamond_ore"]
    # lava pools beside some of the diamonds: the reward is near the danger, as in Minecraft's deep caves
    for x, y in np.argwhere(diamonds)[rng.permutation(int(diamonds.sum()))[:3]]:
        dx, dy = rng.integers(-2, 3, 2)
        if 0 < x + dx < n - 1 and 0 < y + dy < n - 1 and grid[x + dx, y + dy] == B["stone"] and (dx or dy):
            grid[x + dx, y + dy] = B["lava"]
    # the edge of the world
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = B["bedrock"]
    # spawn on grass with trees nearby and stone within reach
    candidates = np.argwhere(grid == B["grass"])
    tree_near = cv2.boxFilter((grid == B["log"]).astype(np.float32), -1, (15, 15), normalize=False)
    stone_near = cv2.boxFilter(stone.astype(np.float32), -1, (31, 31), normalize=False)
    score = tree_near[candidates[:, 0], candidates[:, 1]] + 0.1 * np.minimum(stone_near[candidates[:, 0],
                                                                                          candidates[:, 1]], 30)
    good = candidates[score >= np.quantile(score, 0.8)]
    x, y = good[rng.integers(len(good))]
    return grid, (x + 0.5, y + 0.5)


# ---------------------------------------------------------------------------------------------------------------------
# Raycasting: which block each column of the screen sees
# ---------------------------------------------------------------------------------------------------------------------


def cast_rays(grid, px, py, rx, ry, max_dist=VIEW_DISTANCE):
    """Exact grid traversal (DDA) for many rays at once, without a loop over steps.

    A ray p + t * r crosses the vertical grid lines x = k at evenly spaced t, and the horizontal lines y = k likewise;
    merging the two sorted sequences gives every cell the ray enters, in order. With r = forward + offset * right
    (not normalised), t is the distance along the view direction, so walls come out without fisheye distortion.
    Returns per ray: hit (bool), distance t, block id, whether an x line was crossed (the face's orientation), and the
    cell hit and the empty cell just before it (where a block would be placed).
    """
    n_rays, k = len(rx), int(max_dist) + 2
    cx0, cy0 = math.floor(px), math.floor(py)
    steps = np.arange(k)
    crossings = []
    for p, r, c0 in ((px, rx, cx0), (py, ry, cy0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.abs(r)
            first = np.where(r > 0, c0 + 1 - p, p - c0) * inv
            t = first[:, None] + steps[None, :] * inv[:, None]  # (n_rays, k): times of crossing the 1st, 2nd, ... line
        crossings.append(np.where(r[:, None] == 0, np.inf, t))
    t_all = np.concatenate(crossings, axis=1)  # (n_rays, 2k)
    order = np.argsort(t_all, axis=1, kind="stable")
    t_sorted = np.take_along_axis(t_all, order, axis=1)
    is_x = order < k  # crossing an x line moves us one cell along x
    cx = cx0 + np.where(rx > 0, 1, -1)[:, None] * np.cumsum(is_x, axis=1)
    cy = cy0 + np.where(ry > 0, 1, -1)[:, None] * np.cumsum(~is_x, axis=1)
    n = grid.shape[0]
    cx, cy = np.clip(cx, 0, n - 1), np.clip(cy, 0, n - 1)
    blocks = grid[cx, cy]
    solid = SOLID[blocks] & (t_sorted < max_dist)
    first_hit = np.argmax(solid, axis=1)
    rows = np.arange(n_rays)
    hit = solid[rows, first_hit]
    prev = np.maximum(first_hit - 1, 0)
    before = np.where(first_hit[:, None] > 0, np.stack([cx[rows, prev], cy[rows, prev]], 1), [[cx0, cy0]])
    return (hit, t_sorted[rows, first_hit], blocks[rows, first_hit], is_x[rows, first_hit],
            np.stack([cx[rows, first_hit], cy[rows, first_hit]], 1), before)


# ---------------------------------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------------------------------


KNOWN_KEYS = frozenset(common.MINERL_KEYS)


def read_action(action):
    """A MineRL action dict -> ({button: 0/1 held}, (d_pitch, d_yaw) degrees), refusing what MineRL would refuse: a
    key it does not have, or a value that is not a number (a button) or two finite numbers (the camera). Missing keys
    are released; any non-zero button value is held."""
    if not isinstance(action, dict):
        raise ValueError(f"an action is a dict of MineRL's keys (env.noop_action() is one), not a "
                         f"{type(action).__name__}")
    unknown = sorted(action.keys() - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"action key {unknown[0]!r} is not one of MineRL's: {', '.join(common.MINERL_KEYS)}")
    held = {}
    for key in common.MINERL_KEYS:
        if key == "camera":
            continue
        value = np.asarray(action.get(key, 0))
        if value.size != 1 or value.dtype.kind not in "biuf":
            raise ValueError(f"action {key!r} is {action[key]!r}: a button is one number, 0 (released) or 1 (held)")
        held[key] = int(value.reshape(-1)[0] != 0)
    # the camera is float32 in MineRL's action space; casting first makes a replay from a recording exact
    camera = np.asarray(action.get("camera", (0, 0)))
    if camera.size == 2 and camera.dtype.kind in "biuf":
        with np.errstate(over="ignore"):
            camera = camera.astype(np.float32)  # beyond float32's range: inf, refused below
    if camera.size != 2 or camera.dtype.kind != "f" or not np.isfinite(camera).all():
        raise ValueError(f"action 'camera' is {action['camera']!r}: it is two finite numbers, [d_pitch, d_yaw] in "
                         f"degrees")
    d_pitch, d_yaw = (float(v) for v in camera.reshape(-1))
    return held, (d_pitch, d_yaw)


class ToyCraft:
    """A MineRL-1.0-style environment: obs = env.reset(); obs, reward, done, info = env.step(action).

    action: MineRL's dict (the 24 keys of common.MINERL_KEYS; missing keys count as released), camera = [d_pitch,
    d_yaw] in degrees, positive pitch looking down. Buttons are held states: attack held keeps mining; inventory, use
    and drop act when pressed (0 -> 1).
    obs: {"pov": (size, size, 3) uint8 RGB, "inventory": {item: count}}. Reward is always 0, as in MineRL 1.0: the
    stages compute their own. An episode ends on death (lava) or after max_steps.
    Same seed and same actions give the same frames, bit for bit.
    """

    def __init__(self, seed=0, size=64, world_size=64, max_steps=6000, creative=False):
        for name, value, low in (("seed", seed, 0), ("size", size, 16), ("world_size", world_size, 16),
                                 ("max_steps", max_steps, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"ToyCraft: {name} must be a whole number, at least {low} (got {value!r})")
        self.world_seed, self.size, self.world_size, self.max_steps = seed, size, world_size, max_steps
        # creative mode is an "unclean" look for the toy internet: floating higher, instant mining, a different HUD
        self.creative = creative
        self._episode = 0
        # camera geometry: focal length in pixels and each screen column's offset along the "right" vector
        self._focal = (size / 2) / math.tan(math.radians(FOV / 2))
        self._col_offsets = (np.arange(size) - size / 2 + 0.5) / self._focal
        self._rows = np.arange(size, dtype=np.float32)[:, None] + 0.5  # pixel centres, (H, 1)
        self._ui = max(1, round(size / 64))  # integer scale of HUD pixel art

    # ----------------------------------------------------------------------------------------------- MineRL interface

    def reset(self):
        # each reset is a new world from the seed's sequence, like MineRL's new random world per reset
        self.rng = np.random.default_rng([self.world_seed, self._episode])
        self._episode += 1
        self.grid, (self.x, self.y) = generate_world(self.rng, self.world_size)
        self._floor_tint = self.rng.uniform(0.82, 1.0, self.grid.shape).astype(np.float32)
        self.yaw = float(self.rng.uniform(0, 360))
        self.pitch = 0.0
        self.inventory = np.zeros(len(ITEMS), dtype=np.int64)
        self.hotbar = [-1] * 9  # item index in each slot, -1 empty
        self.obtained_at = np.zeros(len(ITEMS), dtype=np.int64)  # when each item type last went from 0 to some
        self.obtained = np.zeros(len(ITEMS), dtype=bool)  # obtained at least once this episode (VPT's item metric)
        self.slot = 0
        self.gui_open = False
        self.cursor = np.array([360.0, 360.0])  # recorder coordinates (720 pixels high)
        self.jump_t = 0  # ticks into the current jump, 0 on the ground
        self.sneaking = False
        self.mining_cell, self.mining_progress = None, 0
        self.swing = 0  # hand swing animation, ticks left
        self.clicking = False  # the left button is held in the GUI: the recipe under the cursor shows pressed
        self.bob = 0.0  # distance walked, for the hand's bob
        self.prev = {k: 0 for k in common.MINERL_KEYS if k != "camera"}
        self.steps, self.dead, self.done = 0, False, False
        self._update_target()
        self._render()
        return self._obs()

    def seed(self, seed):
        """The next reset makes the first world of `seed` (as ToyCraft(seed=seed) would); MineRL's env.seed."""
        self.world_seed, self._episode = seed, 0

    def noop_action(self):
        return common.minerl_noop()

    def step(self, action):
        if not hasattr(self, "done"):
            raise RuntimeError("step() called before reset(); call reset() first, as with any MineRL env")
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset()")
        held, (d_pitch, d_yaw) = read_action(action)
        pressed = {k: held[k] and not self.prev[k] for k in held}  # rising edges

        # hotbar keys select a slot (several held: the highest wins, as in VPT's joint action space)
        for i in range(9, 0, -1):
            if held[f"hotbar.{i}"]:
                self.slot = i - 1
                break
        # E toggles the inventory GUI, Escape closes it
        was_open = self.gui_open
        crafted, attacking, placed = None, None, None  # what this step did, for the info dict
        if pressed["inventory"]:
            self.gui_open = not self.gui_open
        elif pressed["ESC"]:
            self.gui_open = False
        if self.gui_open != was_open:
            self.cursor[:] = (360.0, 360.0)  # Minecraft centres the cursor on opening (recorder coordinates)
            self.mining_cell, self.mining_progress = None, 0
        if self.gui_open:
            # in a GUI the mouse moves the cursor, not the view; a left click crafts the recipe under it
            self.cursor += (d_yaw * GUI_COUNTS_PER_DEGREE, d_pitch * GUI_COUNTS_PER_DEGREE)
            self.cursor = np.clip(self.cursor, 0, 719.0)  # the square screen is 720 x 720 recorder pixels
            if pressed["attack"]:
                recipe = self._recipe_at(self.cursor)
                if recipe is not None and self._craft(recipe):
                    crafted = RECIPES[recipe][0]
            # the click shows: a held button draws the recipe under the cursor pressed in, like a GUI button
            self.clicking = bool(held["attack"])
            self.sneaking = False
        else:
            self.clicking = False
            self.yaw = (self.yaw + d_yaw) % 360.0
            self.pitch = float(np.clip(self.pitch + d_pitch, -PITCH_LIMIT, PITCH_LIMIT))
            self._move(held)
            self._update_target()
            if held["attack"] and self.target is not None:
                attacking = BLOCK_TABLE[self.grid[self.target]][0]
            self._mine(held["attack"])
            if pressed["use"]:
                placed = self._place()
            if pressed["drop"] and self.hotbar[self.slot] >= 0:
                self._remove(ITEMS[self.hotbar[self.slot]], 1)
            if (held["attack"] or pressed["use"] or pressed["drop"]) and self.swing == 0:
                self.swing = 6  # a swing lasts 6 ticks, and repeats while attack is held
        self.swing = max(self.swing - 1, 0)
        self.prev = held
        self.steps += 1
        self.dead = self.grid[int(self.x), int(self.y)] == B["lava"]
        self.done = self.dead or self.steps >= self.max_steps
        self._render()
        # beyond MineRL's info: what the step crafted and placed, which block the attack hit (the RL funnel, worlds.py)
        info = {"isGuiOpen": self.gui_open, "cursor": self.cursor.copy(), "hotbar": self.slot, "dead": self.dead,
                "location_stats": {"xpos": self.x, "zpos": self.y, "yaw": self.yaw, "pitch": self.pitch},
                "crafted": crafted, "placed": placed, "attacking": attacking, "held": self.held_item}
        return self._obs(), 0.0, self.done, info

    def _obs(self):
        pov = self.screen.copy()
        if self.gui_open:
            # the pointer is part of what the player sees; recordings store its position instead (common.py)
            common.draw_cursor(pov, *self.cursor)
        return {"pov": pov, "inventory": {item: int(n) for item, n in zip(ITEMS, self.inventory)}}

    # ----------------------------------------------------------------------------------------------- the player

    @property
    def held_item(self):
        i = self.hotbar[self.slot]
        return ITEMS[i] if i >= 0 else None

    @property
    def eye(self):
        hop = JUMP_HEIGHT * math.sin(math.pi * self.jump_t / JUMP_TICKS) if self.jump_t else 0.0
        return EYE_HEIGHT + hop - (SNEAK_DROP if self.sneaking else 0.0) + (1.0 if self.creative else 0.0)

    @property
    def in_water(self):
        return self.grid[int(self.x), int(self.y)] == B["water"]

    def _blocked(self, x, y):
        r = PLAYER_RADIUS
        for cx in (int(math.floor(x - r)), int(math.floor(x + r))):
            for cy in (int(math.floor(y - r)), int(math.floor(y + r))):
                if SOLID[self.grid[cx, cy]]:
                    return True
        return False

    def _move(self, held):
        """Held movement keys move the player relative to where it looks; sprint and sneak change the speed."""
        fwd = held["forward"] - held["back"]
        side = held["right"] - held["left"]
        self.sneaking = bool(held["sneak"])
        in_water = self.in_water
        # jump: held, it jumps again on landing, as in Minecraft; in water it means swimming
        if self.jump_t:
            self.jump_t = (self.jump_t + 1) % JUMP_TICKS
        elif held["jump"] and not in_water:
            self.jump_t = 1
        if not (fwd or side):
            return
        speed = SPRINT if (held["sprint"] and fwd > 0 and not self.sneaking) else WALK
        speed = SNEAK if self.sneaking else speed
        if in_water and not held["jump"]:
            speed *= WATER_FACTOR
        a = math.radians(self.yaw)
        norm = speed / math.hypot(fwd, side)
        dx = (fwd * math.cos(a) - side * math.sin(a)) * norm
        dy = (fwd * math.sin(a) + side * math.cos(a)) * norm
        # move along each axis separately so the player slides along walls
        if not self._blocked(self.x + dx, self.y):
            self.x += dx
        if not self._blocked(self.x, self.y + dy):
            self.y += dy
        self.bob += speed

    def _update_target(self):
        """What the crosshair points at: a solid block (to mine), a floor cell (to place on), or nothing."""
        a = math.radians(self.yaw)
        rx, ry = np.array([math.cos(a)]), np.array([math.sin(a)])
        hit, dist, _, _, cell, before = cast_rays(self.grid, self.x, self.y, rx, ry, max_dist=REACH + 1)
        tan_p = math.tan(math.radians(self.pitch))
        floor_dist = self.eye / tan_p if tan_p > 1e-6 else math.inf
        self.target, self.place_cell = None, None
        if hit[0] and dist[0] <= REACH and dist[0] < floor_dist:
            # the ray through the crosshair meets the wall at height eye - dist * tan(pitch): is that on the block?
            height = self.eye - dist[0] * tan_p
            if 0 <= height <= WALL_HEIGHT:
                self.target = (int(cell[0, 0]), int(cell[0, 1]))
                self.place_cell = (int(before[0, 0]), int(before[0, 1]))
        elif floor_dist <= REACH:
            self.place_cell = (int(math.floor(self.x + floor_dist * rx[0])), int(math.floor(self.y + floor_dist * ry[0])))

    def _tool_tier(self):
        return PICKAXE_TIER.get(self.held_item, 0)

    def _mine(self, attacking):
        """Attack held on a block breaks it after the block's mining time for the held tool (BLOCK_TABLE)."""
        if not attacking or self.target is None:
            self.mining_cell, self.mining_progress = None, 0
            return
        if self.target != self.mining_cell:
            self.mining_cell, self.mining_progress = self.target, 0
        name, _, tier, ticks, drop, _ = BLOCK_TABLE[self.grid[self.target]]
        if tier is None or self._tool_tier() < tier:
            return  # unbreakable, or the wrong tool: the hand swings, nothing happens
        self.mining_progress += 1
        if self.creative or self.mining_progress >= ticks[self._tool_tier()]:
            floor = B["grass"] if name in ("log", "crafting_table", "furnace", "planks") else B["floor"]
            self.grid[self.target] = floor
            self._add(drop, 1)
            self.mining_cell, self.mining_progress = None, 0
            self._update_target()

    def _place(self):
        """Use places the held block on the floor cell under the crosshair, or against the face of the block. Returns
        the item placed, or None."""
        # only on open ground, and not where the player stands
        if not self.placeable_now():
            return None
        item = self.held_item
        self.grid[self.place_cell] = B[PLACEABLE[item]]
        if not self.creative:  # creative mode: unlimited blocks
            self._remove(item, 1)
        self._update_target()  # the crosshair now rests on the new block
        return item

    # ----------------------------------------------------------------------------------------------- inventory

    def _add(self, item, count):
        i = ITEMS.index(item)
        if self.inventory[i] == 0:
            self.obtained_at[i] = self.steps
        self.inventory[i] += count
        self.obtained[i] = True
        if i in self.hotbar:
            return
        if -1 in self.hotbar:
            self.hotbar[self.hotbar.index(-1)] = i
            return
        # a full hotbar: the type obtained longest ago makes room, unless it is a pickaxe (departure 5)
        evictable = [s for s, j in enumerate(self.hotbar) if ITEMS[j] not in PICKAXE_TIER]
        if evictable:
            self.hotbar[min(evictable, key=lambda s: self.obtained_at[self.hotbar[s]])] = i

    def _remove(self, item, count):
        i = ITEMS.index(item)
        self.inventory[i] -= count
        if self.inventory[i] == 0 and i in self.hotbar:
            slot = self.hotbar.index(i)
            self.hotbar[slot] = -1
            # the first item type waiting in the backpack moves into the freed slot
            waiting = [j for j in range(len(ITEMS)) if self.inventory[j] > 0 and j not in self.hotbar]
            if waiting:
                self.hotbar[slot] = waiting[0]

    def _near(self, block):
        cx, cy, d = int(self.x), int(self.y), NEAR_DISTANCE
        return bool((self.grid[max(cx - d, 0):cx + d + 1, max(cy - d, 0):cy + d + 1] == B[block]).any())

    def can_craft(self, recipe):
        output, count, inputs, near = RECIPES[recipe]
        if near is not None and not self._near(near):
            return False
        inputs = self._fuelled(inputs)
        return all(self.inventory[ITEMS.index(k)] >= n for k, n in inputs.items())

    def _fuelled(self, inputs):
        # smelting burns coal, or planks when there is no coal
        if "coal" in inputs and "iron_ore" in inputs and self.inventory[ITEMS.index("coal")] == 0:
            inputs = {"iron_ore": 1, "planks": 1}
        return inputs

    def _craft(self, recipe):
        if not self.can_craft(recipe):
            return False
        output, count, inputs, _ = RECIPES[recipe]
        for k, n in self._fuelled(inputs).items():
            self._remove(k, n)
        self._add(output, count)
        return True

    # ----------------------------------------------------------------------------------------------- GUI layout
    # The GUI panel in fractions of the screen: two rows of 5 recipes across the middle, the 15 item counts below
    # (5 x 3). Minecraft opens a GUI with the cursor in the middle of the screen, a short move from the crafting grid
    # and far from the screen's edges, where the cursor stops. The toy does the same: the cursor opens in the gap
    # between the two rows, on no recipe, and the early recipes sit round it (`GUI_CELLS`), far from the corners, where
    # a policy that overshoots would be pinned.

    GUI_RECIPE_BOX = (0.08, 0.33, 0.92, 0.67)  # left, top, right, bottom
    GUI_ROW_GAP = 0.06  # between the two rows of recipes: the cursor opens in it
    GUI_ITEMS_BOX = (0.08, 0.71, 0.92, 0.95)
    # the recipe each cell shows, left to right, top to bottom: planks just above the opening cursor, the stick and
    # the crafting table beside planks, the wooden pickaxe just below
    GUI_CELLS = tuple(RECIPE_NAMES.index(n) for n in (
        "torch", "stick", "planks", "crafting_table", "furnace",
        "iron_ingot", "stone_pickaxe", "wooden_pickaxe", "iron_pickaxe", "diamond_pickaxe"))

    @staticmethod
    def _grid_cell(box, cols, rows, i, row_gap=0.0):
        left, top, right, bottom = box
        w, h = (right - left) / cols, (bottom - top - row_gap * (rows - 1)) / rows
        return left + (i % cols) * w, top + (i // cols) * (h + row_gap), w, h

    def recipe_box(self, recipe):
        """(left, top, width, height) of a recipe's cell, in fractions of the screen."""
        return self._grid_cell(self.GUI_RECIPE_BOX, 5, 2, self.GUI_CELLS.index(recipe), self.GUI_ROW_GAP)

    def recipe_centre(self, recipe):
        """The cursor position (recorder coordinates) over a recipe's icon: what a player aims for."""
        x, y, w, h = self.recipe_box(recipe)
        return np.array([(x + w / 2) * 720.0, (y + h / 2) * 720.0])

    def _recipe_at(self, cursor):
        fx, fy = cursor[0] / 720.0, cursor[1] / 720.0
        for r in self.GUI_CELLS:
            x, y, w, h = self.recipe_box(r)
            if x <= fx < x + w and y <= fy < y + h:
                return r
        return None

    # ----------------------------------------------------------------------------------------------- rendering

    def _render(self):
        """Draw the frame the player sees (without the GUI cursor) into self.screen, (size, size, 3) uint8."""
        s = self.size
        a = math.radians(self.yaw)
        fwd, right = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        rx = fwd[0] + self._col_offsets * right[0]
        ry = fwd[1] + self._col_offsets * right[1]
        hit, dist, block, is_x, cells, _ = cast_rays(self.grid, self.x, self.y, rx, ry)
        eye, f = self.eye, self._focal
        # looking down moves the horizon up the screen (y-shearing)
        horizon = s / 2 - f * math.tan(math.radians(self.pitch))
        dist = np.maximum(dist, 1e-3)
        top = np.where(hit, horizon - (WALL_HEIGHT - eye) * f / dist, horizon)  # (W,)
        bottom = np.where(hit, horizon + eye * f / dist, horizon)
        rows = self._rows
        wall = (rows >= top) & (rows < bottom)  # (H, W)

        # walls: texture column from where the ray struck the face, texture row from the height on the wall
        hx, hy = self.x + dist * rx, self.y + dist * ry
        u = np.where(is_x, hy - np.floor(hy), hx - np.floor(hx))
        u_idx = np.minimum((u * TEX).astype(np.int64), TEX - 1)
        v = (rows - top) / np.maximum(bottom - top, 1e-3)
        v_idx = np.clip((v * 3 * TEX).astype(np.int64), 0, 3 * TEX - 1)
        colour = TEXTURES[block[None, :], v_idx, u_idx[None, :]]  # (H, W, 3)
        # faces along x are a little darker than faces along y, so block edges stand out
        face = np.where(is_x, 0.82, 1.0).astype(np.float32)
        depth = np.broadcast_to(dist, (s, s))
        if self.mining_cell is not None and self.mining_progress > 0:
            # cracks grow on the block being mined: attack shows in the pixels even before the block breaks
            _, _, _, ticks, _, _ = BLOCK_TABLE[self.grid[self.mining_cell]]
            frac = self.mining_progress / max(ticks[self._tool_tier()], 1)
            on_block = (cells[:, 0] == self.mining_cell[0]) & (cells[:, 1] == self.mining_cell[1])
            crack = (CRACKS[v_idx, u_idx[None, :]] < frac) & on_block[None, :]
            colour = np.where(crack[..., None], colour * 0.35, colour)

        # floor: each pixel below the horizon sees the ground at distance eye * f / (row - horizon)
        below = rows - horizon
        d_floor = np.where(below > 0, eye * f / np.maximum(below, 1e-3), np.inf)  # (H, 1)
        fx = self.x + d_floor * rx[None, :]
        fy = self.y + d_floor * ry[None, :]
        floor_px = np.isfinite(fx) & ~wall
        n = self.world_size
        ix = np.clip(np.where(floor_px, fx, 0).astype(np.int64), 0, n - 1)
        iy = np.clip(np.where(floor_px, fy, 0).astype(np.int64), 0, n - 1)
        floor_colour = FLOOR_COLOURS[self.grid[ix, iy]] * self._floor_tint[ix, iy][..., None]

        img = np.where(wall[..., None], colour * face[None, :, None], floor_colour)
        d = np.where(wall, depth, np.minimum(np.broadcast_to(d_floor, (s, s)), VIEW_DISTANCE))
        # distance shading and fog towards the sky colour
        fog = np.clip((d - 0.55 * VIEW_DISTANCE) / (0.45 * VIEW_DISTANCE), 0, 1)[..., None]
        img = img * (1.0 - 0.025 * np.minimum(d, VIEW_DISTANCE))[..., None]
        img = img * (1 - fog) + SKY * fog
        sky = ~wall & ~floor_px
        img[sky] = SKY - np.minimum(np.broadcast_to(rows, (s, s))[sky], s)[:, None] * (40.0 / s)

        self._draw_hand(img)
        self._draw_crosshair(img)
        self._draw_hotbar(img)
        if self.gui_open:
            self._draw_gui(img)
        self.screen = np.clip(img, 0, 255).astype(np.uint8)

    def _draw_crosshair(self, img):
        c, r = self.size // 2, max(1, self.size // 32)
        img[c - r:c + r + 1, c] = 255 - img[c - r:c + r + 1, c]
        img[c, c - r:c + r + 1] = 255 - img[c, c - r:c + r + 1]

    def _draw_hand(self, img):
        """The held item in the lower right: it bobs as you walk and swings when you attack, use or drop."""
        s = self.size
        w = s // 6
        bob = int(round(math.sin(self.bob * 3.0) * s / 64 * 1.5))
        lift = int(round(math.sin(math.pi * self.swing / 6) * s / 8)) if self.swing else 0
        top, left = s - s // 4 + bob - lift, s - s // 4 - lift
        item = self.held_item
        colour = np.array(_ITEM_LOOK[item][2] or _ITEM_LOOK[item][1] if item else (220, 170, 130), np.float32)
        img[max(top, 0):top + w, max(left, 0):left + w] = colour
        img[max(top, 0):top + w, max(left, 0):left + max(w // 4, 1)] *= 0.7

    def _draw_hotbar(self, img):
        """9 slots at the bottom: the item icon, its count, a white frame around the selected slot."""
        s, ui = self.size, self._ui
        slot_w, slot_h = 7 * ui, (9 if ui == 1 else 11) * ui
        left0, top = (s - 9 * slot_w) // 2, s - slot_h
        tint = np.array((80, 0, 120) if self.creative else (0, 0, 0), np.float32)  # creative's HUD is purple
        img[top:, left0:left0 + 9 * slot_w] = img[top:, left0:left0 + 9 * slot_w] * 0.4 + tint * 0.6
        for slot, i in enumerate(self.hotbar):
            left = left0 + slot * slot_w
            if i >= 0:
                # at 64 pixels only the icon's middle 3x3 fits above the count
                _blit(img, ICONS[i, 1:4, 1:4] if ui == 1 else ICONS[i], top + ui, left + 2 * ui if ui == 1 else left + ui,
                      ui)
                if not self.creative:  # creative has no counts: everything is unlimited
                    _draw_number(img, min(self.inventory[i], 99), top + (4 if ui == 1 else 6) * ui, left, ui)
            if slot == self.slot:
                img[top, left:left + slot_w] = 255
                img[top:, left] = 255
                img[top:, min(left + slot_w - 1, s - 1)] = 255

    def _draw_gui(self, img):
        """The crafting GUI over a darkened view: recipes (green when craftable now) and inventory counts."""
        s, ui = self.size, self._ui
        img *= 0.35
        px = lambda v: int(round(v * s))  # noqa: E731 - fraction of the screen -> pixel
        img[px(0.04):px(0.96), px(0.04):px(0.96)] = (170, 170, 170)
        pressed = self._recipe_at(self.cursor) if self.clicking else None
        for r in range(len(RECIPES)):
            x, y, w, h = self.recipe_box(r)
            x0, y0, x1, y1 = px(x), px(y), px(x + w) - 1, px(y + h) - 1
            craftable = self.can_craft(r)
            img[y0:y1, x0:x1] = (40, 150, 40) if craftable else (110, 110, 110)
            inside = (120, 190, 120) if craftable else (140, 140, 140)  # green all over: readable at 64x64
            img[y0 + 1:y1 - 1, x0 + 1:x1 - 1] = (85, 85, 85) if r == pressed else inside
            _blit(img, ICONS[ITEMS.index(RECIPES[r][0])], (y0 + y1) // 2 - 2 * ui, (x0 + x1) // 2 - 2 * ui, ui)
        for i in range(len(ITEMS)):
            x, y, w, h = self._grid_cell(self.GUI_ITEMS_BOX, 5, 3, i)
            _blit(img, ICONS[i], px(y), px(x), ui)
            if self.inventory[i]:
                _draw_number(img, min(self.inventory[i], 99), px(y), px(x) + 6 * ui, ui, colour=(20, 20, 20))

    # ----------------------------------------------------------------------------------------------- helpers for players

    def placeable_now(self):
        """Would `use` place the held block now? (the scripted players check before pressing)"""
        if self.held_item not in PLACEABLE or self.place_cell is None:
            return False
        cx, cy = self.place_cell
        r = PLAYER_RADIUS
        inside = cx - r < self.x < cx + 1 + r and cy - r < self.y < cy + 1 + r
        return self.grid[cx, cy] in (B["grass"], B["floor"]) and not inside


# ---------------------------------------------------------------------------------------------------------------------
# Scripted players: the toy "contractors"
# ---------------------------------------------------------------------------------------------------------------------

# Skill levels. `goals` is how far along the tech tree the player means to go (drawn per episode); the rest shapes how
# it plays:
# turn_gain and max_turn (degrees a tick) set how briskly the mouse moves, aim_noise its jitter (degrees), idle the
# chance a tick of starting to do nothing for a while, wander of starting to stroll about, mistake of a wrong click or
# a wasted craft, sprint of running when the way ahead is clear, jumpy of hopping for no reason (people do), fidget of
# starting a habit a tick (a look along the hotbar, a side step, a right click, a crouch, a dropped item): the scripted
# contractors press every button now and then, so that an IDM trained on them has every button to learn.
# The players press what they mean and let go: a tap is one tick, jump is pressed on the ground, a hotbar key picks
# another slot. A press that changes nothing on screen (the second tick of a toggle, jump held in mid-air, the slot
# already selected) is a label no IDM can recover from pixels (`python tools/visibility.py` counts them), so the
# players do not make them.
LEVELS = {
    "good": dict(goals={"diamond_pickaxe": 1.0}, turn_gain=0.45, max_turn=14.0, aim_noise=0.4, idle=0.004,
                 wander=0.0005, mistake=0.02, sprint=0.7, jumpy=0.01, fidget=0.006, patience=1.0),
    "average": dict(goals={"stone_pickaxe": 0.3, "iron_pickaxe": 0.5, "diamond_pickaxe": 0.2}, turn_gain=0.3,
                    max_turn=10.0, aim_noise=0.8, idle=0.008, wander=0.002, mistake=0.06, sprint=0.3, jumpy=0.02,
                    fidget=0.012, patience=0.8),
    "novice": dict(goals={"crafting_table": 0.4, "wooden_pickaxe": 0.4, "stone_pickaxe": 0.2}, turn_gain=0.2,
                   max_turn=7.0, aim_noise=1.4, idle=0.015, wander=0.006, mistake=0.15, sprint=0.05, jumpy=0.04,
                   fidget=0.024, patience=0.6),
}
# Styles, across skill levels: multipliers of the level's numbers. Drawn per episode, so that the same skill shows up
# in different ways of playing.
STYLES = {
    "steady": {},
    "explorer": {"wander": 4.0, "jumpy": 2.0, "idle": 1.5},  # looks around, strolls off, hops
    "hasty": {"turn_gain": 1.3, "max_turn": 1.3, "aim_noise": 1.5, "mistake": 1.5, "sprint": 1.3, "idle": 0.5},
}
# the tech tree, in the order the scripted players climb it
GOALS = ["crafting_table", "wooden_pickaxe", "stone_pickaxe", "iron_pickaxe", "diamond_pickaxe"]
# which blocks to mine for an item
SOURCE = {"log": ["log"], "cobblestone": ["stone", "cobblestone"], "coal": ["coal_ore"], "iron_ore": ["iron_ore"],
          "diamond": ["diamond_ore"]}


def _wrap(angle):
    """An angle difference in degrees, wrapped to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


class GiveUp(Exception):
    """A scripted player abandons its plan (out of patience, or nothing left to find)."""


class ScriptedPlayer:
    """Plays ToyCraft like a person, knowing the map: walks to the nearest tree, turns the mouse smoothly with a little
    jitter, holds attack until the block breaks, opens the inventory, moves the cursor to a recipe and clicks, places a
    crafting table, sometimes idles or wanders, and makes mistakes. `act()` returns the next MineRL action.

    The behaviour is a generator per skill (`_collect`, `_craft`, `_place`, ...), composed with `yield from`, so a plan
    reads top to bottom like the player's intentions.
    """

    def __init__(self, env, level="good", seed=0, goal=None, style=None):
        self.env, self.level = env, level
        self.p = dict(LEVELS[level])
        self.rng = np.random.default_rng(seed)
        self.style = style or str(self.rng.choice(list(STYLES)))
        for key, factor in STYLES[self.style].items():
            self.p[key] = min(self.p[key] * factor, 1.0) if key == "sprint" else self.p[key] * factor
        goals = self.p["goals"]
        self.goal = goal or str(self.rng.choice(list(goals), p=list(goals.values())))
        self.velocity = np.zeros(2)  # mouse velocity, degrees a tick (pitch, yaw)
        self._busy = 0  # ticks left of idling
        self._holding = False  # in the middle of a press: no pause may start now, or a toggle would fire twice
        self._habit = None  # a fidget in progress (a generator of actions), played before the plan goes on
        self._plan = self._play()
        self.finished = False  # the plan is over (goal reached or given up); the player then strolls about
        self.gave_up = None  # why the plan was abandoned, if it was

    # ----------------------------------------------------------------------------------------------- the plan

    def act(self):
        if self._busy > 0:
            self._busy -= 1
            return self._action()
        if not self._holding and self.rng.random() < self.p["idle"]:
            self._busy = int(self.rng.integers(5, 40))  # a pause: null actions, which VPT's loader skips
            self.velocity[:] = 0
        if self._habit is not None:
            action = next(self._habit, None)
            if action is not None:
                return action
            self._habit = None
        if not self._holding and not self.env.gui_open and self.rng.random() < self.p["fidget"]:
            self._habit = self._fidget()
            return next(self._habit)
        try:
            return next(self._plan)
        except StopIteration:
            self.finished = True
            self._plan = self._after_plan()
            return next(self._plan)

    def _fidget(self):
        """A habit between two steps of the plan, a few ticks long; every press in it shows on screen."""
        kind, env = self.rng.random(), self.env
        if kind < 0.3:
            # a look along the hotbar: one to three other slots, a moment on each, and back to the one in use
            home = env.slot
            others = [i for i in range(9) if i != home]
            for slot in self.rng.choice(others, size=int(self.rng.integers(1, 4)), replace=False):
                yield self._action(**{f"hotbar.{slot + 1}": 1})
                for _ in range(int(self.rng.integers(1, 6))):
                    yield self._action()
            yield self._action(**{f"hotbar.{home + 1}": 1})
        elif kind < 0.65:
            key = str(self.rng.choice(["left", "right", "back"]))  # a side step, or a step back
            for _ in range(int(self.rng.integers(2, 9))):
                yield self._action(**{key: 1})
        elif kind < 0.75:
            yield self._action(use=1)  # a right click at nothing in particular: the hand swings
        elif kind < 0.9 or env.held_item not in ("cobblestone", "planks", "stick"):
            for _ in range(int(self.rng.integers(2, 7))):
                yield self._action(sneak=1)  # a crouch
        else:
            yield self._action(drop=1)  # dropping one of what there is plenty of

    def _after_plan(self):
        if self.env.gui_open:
            yield from self._press("inventory")
        yield from self._stroll(10**9)

    def _play(self):
        """Climb the tech tree to the goal, carrying the crafting table and furnace along, as good players do."""
        goal = GOALS.index(self.goal)
        patience = self.p["patience"]
        try:
            # wood for everything ahead: logs -> 4 planks each; a crafting table (4 planks); sticks (2 planks -> 4)
            # for every pickaxe and a torch; a wooden pickaxe (3 planks). The table first, as players do: it is what
            # the first planks are for
            logs, sticks = (3, 1) if goal <= 1 else (4, 2) if goal == 2 else (5, 3)
            yield from self._collect("log", logs, budget=1500 * patience)
            yield from self._craft([("planks", logs), ("crafting_table", 1), ("stick", sticks)])
            if goal == 0:
                return
            yield from self._place("crafting_table")
            yield from self._craft([("wooden_pickaxe", 1)])
            if goal == 1:
                return
            yield from self._pick_up("crafting_table")
            yield from self._collect("cobblestone", 11, budget=1500 * patience)
            yield from self._collect("coal", 4 if goal >= 3 else 1, budget=1200 * patience)
            yield from self._place("crafting_table")
            yield from self._craft([("stone_pickaxe", 1), ("furnace", 1), ("torch", 1)])
            if goal == 2:
                return
            # a base in the open: the furnace beside the table, to come back to with the iron
            yield from self._place("furnace")
            yield from self._collect("iron_ore", 3, budget=2000 * patience)
            yield from self._go_to("furnace", budget=1500 * patience)
            yield from self._craft([("iron_ingot", 3), ("iron_pickaxe", 1)])
            if goal == 3:
                return
            yield from self._pick_up("crafting_table")
            yield from self._collect("diamond", 3, budget=3000 * patience)
            yield from self._place("crafting_table")
            yield from self._craft([("diamond_pickaxe", 1)])
        except GiveUp as e:
            self.gave_up = str(e)

    # ----------------------------------------------------------------------------------------------- skills

    def _collect(self, item, count, budget):
        """Mine blocks that drop `item` until we have `count`, always going for the nearest one."""
        env, deadline = self.env, self.env.steps + budget
        while env.inventory[ITEMS.index(item)] < count:
            if env.steps > deadline:
                raise GiveUp(f"out of patience collecting {item}")
            route = self._route([B[b] for b in SOURCE[item]])
            if route is None:
                raise GiveUp(f"no {item} reachable with our tools")
            path, block = route
            yield from self._follow(path, deadline)
            yield from self._mine(block, deadline)
            if self.rng.random() < self.p["wander"] * 50:
                yield from self._stroll(int(self.rng.integers(10, 60)))

    def _go_to(self, block, budget):
        """Walk back to a block we placed (the base), without mining it."""
        route = self._route([B[block]], mine_target=False)
        if route is None:
            raise GiveUp(f"lost the way to the {block}")
        yield from self._follow(route[0], self.env.steps + budget)

    def _follow(self, path, deadline):
        """Walk along a path of cells, mining through any solid cell on the way (a tunnel)."""
        env = self.env
        for cell in path:
            stuck = 0
            while math.hypot(env.x - cell[0] - 0.5, env.y - cell[1] - 0.5) > 0.3:
                if env.steps > deadline:
                    raise GiveUp("out of patience walking")
                if SOLID[env.grid[cell]]:
                    yield from self._mine(cell, deadline)
                    continue
                before = (env.x, env.y)
                yield self._walk_towards(cell[0] + 0.5, cell[1] + 0.5)
                stuck = stuck + 1 if math.hypot(env.x - before[0], env.y - before[1]) < 0.01 else 0
                if stuck > 40:
                    # caught on a corner: step sideways for a moment, like a person would
                    side = "left" if self.rng.random() < 0.5 else "right"
                    for _ in range(int(self.rng.integers(3, 8))):
                        yield self._action(**{side: 1, "back": 1})
                    stuck = 0

    def _mine(self, cell, deadline):
        """Face a block and hold attack until it breaks, with the best pickaxe in hand."""
        env = self.env
        yield from self._select_best_pickaxe()
        sneak = int(self.rng.random() < self.p["fidget"] * 13)  # some people crouch while they dig
        while SOLID[env.grid[cell]]:
            if env.steps > deadline:
                raise GiveUp(f"out of patience mining {BLOCKS[env.grid[cell]]}")
            cx, cy = cell[0] + 0.5, cell[1] + 0.5
            dist = max(math.hypot(cx - env.x, cy - env.y) - 0.5, 0.3)
            # aim at the lower half of the block's face, a little below eye level
            want_pitch = math.degrees(math.atan2(env.eye - 1.0, dist))
            want_yaw = math.degrees(math.atan2(cy - env.y, cx - env.x))
            camera = self._turn(want_pitch, want_yaw)
            on_target = env.target == tuple(cell)
            aimed = abs(_wrap(want_yaw - env.yaw)) < 20 and abs(want_pitch - env.pitch) < 20
            # another block in the line of sight while we aim right at ours: it is in the way, mine it too
            in_the_way = aimed and env.target is not None and not on_target and \
                BLOCK_TABLE[env.grid[env.target]][2] is not None and \
                BLOCK_TABLE[env.grid[env.target]][2] <= env._tool_tier() and env.grid[env.target] != B["lava"]
            if dist > REACH - 0.6:
                yield self._action(forward=1, camera=camera)  # step closer
            else:
                yield self._action(attack=int(on_target or in_the_way), sneak=sneak, camera=camera)
        # people let go of the button a moment after the block breaks
        for _ in range(int(self.rng.integers(0, 3))):
            yield self._action(attack=1)

    def _select(self, item):
        i = ITEMS.index(item)
        if i not in self.env.hotbar:
            return False
        slot = self.env.hotbar.index(i)
        if self.env.slot != slot:
            yield self._action(**{f"hotbar.{slot + 1}": 1})
        return True

    def _select_best_pickaxe(self):
        owned = [p for p in PICKAXE_TIER if self.env.inventory[ITEMS.index(p)] > 0 and ITEMS.index(p) in self.env.hotbar]
        if owned:
            yield from self._select(max(owned, key=PICKAXE_TIER.get))

    def _place(self, item):
        """Put a block down on the ground in front: select it, look down at the floor, press use."""
        env = self.env
        if env.inventory[ITEMS.index(item)] == 0:
            raise GiveUp(f"no {item} to place")
        if not (yield from self._select(item)):
            raise GiveUp(f"{item} is not on the hotbar")
        for attempt in range(3):
            placed = yield from self._place_nearby(item)
            if placed:
                return
            # no room: dig out two blocks in a line beside us (the far one to place on) and try again
            cx, cy = int(env.x), int(env.y)

            def diggable(x, y):
                need = BLOCK_TABLE[env.grid[x, y]][2]
                return (not SOLID[env.grid[x, y]] or need is not None and need <= self._best_tier()) and \
                    env.grid[x, y] not in (B["crafting_table"], B["furnace"], B["lava"], B["water"])

            ways = [(dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
                    if diggable(cx + dx, cy + dy) and diggable(cx + 2 * dx, cy + 2 * dy)]
            if not ways:
                break
            dx, dy = ways[int(self.rng.integers(len(ways)))]
            for k in (1, 2):
                if SOLID[env.grid[cx + k * dx, cy + k * dy]]:
                    yield from self._mine((cx + k * dx, cy + k * dy), env.steps + 300)
                    yield from self._walk_a_bit(cx + 0.5, cy + 0.5)
            yield from self._select(item)
        raise GiveUp(f"found no room to place {item}")

    def _walk_a_bit(self, x, y):
        """Back to the middle of a cell, e.g. after reaching into a wall."""
        for _ in range(30):
            if math.hypot(self.env.x - x, self.env.y - y) < 0.3:
                return
            yield self._walk_towards(x, y)

    def _place_nearby(self, item):
        env = self.env
        # open ground a step or two away (a cell right beside us is too close to look down at), nearest to where we
        # look first
        cx, cy = int(env.x), int(env.y)
        n = env.world_size
        spots = [(x, y) for x in range(max(cx - 2, 0), min(cx + 3, n)) for y in range(max(cy - 2, 0), min(cy + 3, n))
                 if 1.2 <= math.hypot(x + 0.5 - env.x, y + 0.5 - env.y) <= 2.5
                 and env.grid[x, y] in (B["grass"], B["floor"])]
        spots.sort(key=lambda c: abs(_wrap(math.degrees(math.atan2(c[1] + 0.5 - env.y, c[0] + 0.5 - env.x)) - env.yaw)))
        for spot in spots[:6]:
            for _ in range(40):
                sx, sy = spot[0] + 0.5, spot[1] + 0.5
                want_yaw = math.degrees(math.atan2(sy - env.y, sx - env.x))
                # look down at the middle of the cell: the floor there is eye / tan(pitch) away
                want_pitch = min(math.degrees(math.atan2(env.eye, max(math.hypot(sx - env.x, sy - env.y), 0.6))),
                                 PITCH_LIMIT)
                camera = self._turn(want_pitch, want_yaw)
                if env.placeable_now() and env.place_cell == spot:
                    yield from self._press("use")
                    if env.grid[spot] == B[PLACEABLE[item]]:
                        return True
                yield self._action(camera=camera)
        return False

    def _pick_up(self, item):
        """Mine a placed crafting table or furnace back, to carry it to the next place it is needed."""
        env, d = self.env, NEAR_DISTANCE
        x0, y0 = max(int(env.x) - d, 0), max(int(env.y) - d, 0)
        found = np.argwhere(env.grid[x0:int(env.x) + d + 1, y0:int(env.y) + d + 1] == B[item])
        if len(found) == 0:
            return
        cell = (int(found[0][0]) + x0, int(found[0][1]) + y0)
        yield from self._mine(cell, env.steps + 300)

    def _craft(self, orders):
        """Open the inventory, move the cursor to each recipe and click it as many times as wanted, close."""
        yield from self._press("inventory")
        for _ in range(int(self.rng.integers(2, 6))):  # a moment to look at the GUI
            yield self._action()
        env = self.env
        for name, times in orders:
            recipe, made, attempts = RECIPE_NAMES.index(name), 0, 0
            # keep clicking until it has really been made `times` times: a slip of the hand is noticed and put right
            while made < times and attempts < times + 4:
                attempts += 1
                needs_sticks = RECIPES[recipe][2].get("stick", 0)
                if env.inventory[ITEMS.index("stick")] < needs_sticks and env.can_craft(RECIPE_NAMES.index("stick")):
                    yield from self._click(RECIPE_NAMES.index("stick"))  # short of sticks: make some first
                if not env.can_craft(recipe):
                    break
                target = recipe
                if self.rng.random() < self.p["mistake"]:
                    target = int(self.rng.integers(len(RECIPES)))  # a slip of the hand: the wrong recipe
                before = env.inventory[ITEMS.index(name)]
                yield from self._click(target)
                made += env.inventory[ITEMS.index(name)] > before
        # Minecraft players close the inventory with E or with Escape (VPT drops ESC from its action space)
        yield from self._press("inventory" if self.rng.random() < 0.7 else "ESC")

    def _click(self, recipe):
        yield from self._move_cursor(self.env.recipe_centre(recipe) + self.rng.normal(0, 10, 2))
        yield from self._press("attack")

    def _press(self, key):
        """Press a button and let go (toggles need the release). A click in a GUI lasts a tick or two, and shows the
        whole time (the recipe is drawn pressed in); a key that acts only when pressed is tapped for one tick."""
        self._holding = True
        for _ in range(int(self.rng.integers(1, 3)) if key == "attack" else 1):
            yield self._action(**{key: 1})
        self._holding = False
        yield self._action()

    def _move_cursor(self, target):
        """Mouse to a point of the GUI: fast at first, slowing on approach, with a tremor; whole mouse counts."""
        env, velocity = self.env, np.zeros(2)
        for _ in range(80):
            error = target - env.cursor  # (x, y) in mouse counts
            if np.abs(error).max() < 14 and np.abs(velocity).max() < 6:
                return
            want = np.clip(error * self.p["turn_gain"] * 1.2, -70, 70)
            velocity += 0.5 * (want - velocity)
            counts = np.round(velocity + self.rng.normal(0, self.p["aim_noise"] * 2, 2))
            # camera = [pitch, yaw] = [dy, dx] * 0.15 degrees
            yield self._action(camera=np.array([counts[1], counts[0]]) * common.CAMERA_SCALER)

    def _stroll(self, ticks):
        """Wander about for a while: walk, turn, look around, sometimes jump."""
        env = self.env
        want_yaw, want_pitch = env.yaw, 5.0
        for t in range(ticks):
            if t % 25 == 0:
                want_yaw = env.yaw + float(self.rng.normal(0, 70))
                want_pitch = float(self.rng.uniform(-10, 25))
            ahead = (int(env.x + math.cos(math.radians(env.yaw))), int(env.y + math.sin(math.radians(env.yaw))))
            danger = env.grid[ahead] in (B["lava"], B["water"])
            yield self._action(forward=int(not danger), jump=int(self._hop(self.p["jumpy"] * 5)),
                               camera=self._turn(want_pitch, want_yaw + (90 if danger else 0)))

    # ----------------------------------------------------------------------------------------------- motor control

    def _action(self, camera=None, **keys):
        action = common.minerl_noop()
        action.update(keys)
        if camera is not None:
            action["camera"] = np.asarray(camera, dtype=np.float32)
        return action

    def _turn(self, want_pitch, want_yaw):
        """Mouse motion towards a view direction: a smoothed, speed-limited pull with a tremor, in whole counts."""
        env = self.env
        error = np.array([want_pitch - env.pitch, _wrap(want_yaw - env.yaw)])
        if np.abs(error).max() < 1.0 and self.rng.random() < 0.7:
            self.velocity[:] = 0
            return np.zeros(2)  # close enough: the hand rests on the mouse
        want = np.clip(error * self.p["turn_gain"], -self.p["max_turn"], self.p["max_turn"])
        self.velocity += 0.6 * (want - self.velocity)
        degrees = self.velocity + self.rng.normal(0, self.p["aim_noise"] * 0.3, 2)
        return np.round(degrees / common.CAMERA_SCALER) * common.CAMERA_SCALER

    def _walk_towards(self, x, y):
        env = self.env
        want_yaw = math.degrees(math.atan2(y - env.y, x - env.x))
        camera = self._turn(8.0, want_yaw)
        off = abs(_wrap(want_yaw - env.yaw))
        far = math.hypot(x - env.x, y - env.y) > 0.8
        # in water, jump held while moving swims faster
        return self._action(forward=int(off < 45), sprint=int(far and off < 10 and self.rng.random() < self.p["sprint"]),
                            jump=int(env.in_water and off < 45 or self._hop(self.p["jumpy"])), camera=camera)

    def _hop(self, chance):
        """Press jump now? Only on dry ground, where the jump starts: held in mid-air it does nothing."""
        return self.env.jump_t == 0 and not self.env.in_water and self.rng.random() < chance

    # ----------------------------------------------------------------------------------------------- path finding

    def _best_tier(self):
        return max([PICKAXE_TIER[p] for p in PICKAXE_TIER if self.env.inventory[ITEMS.index(p)] > 0], default=0)

    def _route(self, targets, mine_target=True):
        """Cheapest path (Dijkstra) to a cell beside the nearest block of a target type (that our tools can mine, if
        we mean to mine it).
        Walking costs 1 a cell, swimming 4, and digging through a block 1 + its mining time / 3; lava is avoided.
        Returns (path of cells, target block cell) or None."""
        env, tier = self.env, self._best_tier()
        cost = np.full(len(BLOCKS), np.inf)
        cost[[B["grass"], B["floor"]]] = 1.0
        cost[B["water"]] = 4.0
        for i, (name, solid, need, ticks, _, _) in enumerate(BLOCK_TABLE):
            if solid and need is not None and need <= tier and name not in ("crafting_table", "furnace"):
                cost[i] = 1.0 + ticks[tier] / 3.0
        minable = np.isin(env.grid, targets)
        if mine_target:
            minable &= np.isfinite(cost[env.grid])
        if not minable.any():
            return None
        cell_cost = cost[env.grid]
        start = (int(env.x), int(env.y))
        n = env.world_size
        best = np.full((n, n), np.inf)
        best[start] = 0.0
        parent = {}
        heap = [(0.0, start)]
        while heap:
            d, (x, y) = heapq.heappop(heap)
            if d > best[x, y]:
                continue
            for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if minable[nx, ny] and (x, y) != (nx, ny):
                    # standing at (x, y) (dug out on the way if it is a tunnel cell), beside a target: done
                    path = [(x, y)]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1][1:], (nx, ny)
                nd = d + cell_cost[nx, ny]
                if nd < best[nx, ny]:
                    best[nx, ny] = nd
                    parent[(nx, ny)] = (x, y)
                    heapq.heappush(heap, (nd, (nx, ny)))
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Recording: toy contractor data (with actions) and the toy internet (without)
# ---------------------------------------------------------------------------------------------------------------------

# The toy contractors: a mix of skill levels, as OpenAI's hired players were a mix of people.
CONTRACTOR_MIX = {"good": 0.4, "average": 0.4, "novice": 0.2}
# The toy internet: a wider mix, more casual play.
WEB_MIX = {"good": 0.25, "average": 0.4, "novice": 0.35}


def play_episode(seed, level, size=64, max_steps=6000, web=None):
    """One scripted episode in world `seed`. Returns frames (T+1, size, size, 3) RGB without the cursor, and per step
    the MineRL action, GUI state, cursor position, hotbar slot and the recorder's extra fields.

    Frame t is the screen the player saw when choosing action t (recorded before env.step), as in OpenAI's data.
    `web` (a WebSchedule) switches creative mode on and off along the way; the caller paints the rest."""
    env = ToyCraft(seed=seed, size=size, max_steps=max_steps)
    env.reset()
    player = ScriptedPlayer(env, level, seed=seed)
    rng = np.random.default_rng([seed, 7])
    tail = int(rng.integers(20, 120))  # once its plan is over, the player strolls a little before the recording ends
    frames, actions, gui, cursor, hotbar, extras = [], [], [], [], [], []
    done = False
    while not done:
        if web is not None and env.creative != web.creative(env.steps):
            env.creative = web.creative(env.steps)
            env._render()
        frames.append(env.screen)
        gui.append(env.gui_open)
        cursor.append(env.cursor.copy())
        action = player.act()
        _, _, done, info = env.step(action)
        actions.append(action)
        hotbar.append(env.slot)
        extras.append({"yaw": round(env.yaw, 3), "pitch": round(env.pitch, 3), "xpos": round(env.x, 3),
                       "zpos": round(env.y, 3),
                       "inventory": [{"type": k, "quantity": int(n)} for k, n in zip(ITEMS, env.inventory) if n]})
        if player.finished:
            tail -= 1
            done = done or tail <= 0
    frames.append(env.screen)
    return dict(frames=np.stack(frames), actions=actions, gui=np.array(gui), cursor=np.array(cursor),
                hotbar=np.array(hotbar), extras=extras, env=env, player=player)


def draw_episodes(seed, n, mix):
    """The (world seed, player level) of each episode of a recording run: worlds seed, seed+1, ...; levels drawn from
    the mix."""
    rng = np.random.default_rng(seed)
    return [(seed + i, str(rng.choice(list(mix), p=list(mix.values())))) for i in range(n)]


def record_contractors(out, episodes, seed, size=64, max_steps=6000, mix=None, codec="mp4v", progress=True):
    """Write `episodes` toy contractor recordings (<stem>.mp4 + .jsonl + -options.json) into `out`."""
    out = Path(out)
    paths = []
    for world, level in _progress(draw_episodes(seed, episodes, mix or CONTRACTOR_MIX), progress,
                                  "recording contractors"):
        ep = play_episode(world, level, size=size, max_steps=max_steps)
        options = {"world_seed": world, "size": size, "player": level, "style": ep["player"].style,
                   "goal": ep["player"].goal, "max_steps": max_steps}
        stem = out / f"toy-{level}-{world:06d}"
        paths.append(common.write_contractor_episode(
            stem.with_suffix(".mp4"), ep["frames"], ep["actions"], gui_open=ep["gui"], cursor=ep["cursor"],
            hotbar=ep["hotbar"], extras=ep["extras"], options=options, codec=codec))
    return paths


class WebSchedule:
    """Which unclean things happen when in one web video (VPT §3.2: web video is full of things that are not clean
    survival play). Spans are in steps of the underlying episode."""

    def __init__(self, rng, length):
        def span(p, lo, hi):
            if rng.random() >= p:
                return None
            n = int(rng.uniform(lo, hi) * length)
            start = int(rng.integers(0, max(length - n, 1)))
            return (start, start + n)

        self.logo = span(0.3, 0.3, 0.9)  # a channel's watermark, for a long stretch
        self.facecam = span(0.3, 0.2, 0.6)  # the streamer's face in a corner
        self.creative_span = span(0.2, 0.15, 0.4)  # creative mode: flying, instant mining, a different HUD
        self.title = int(rng.integers(30, 120)) if rng.random() < 0.5 else 0  # the title screen before playing
        self.pause = span(0.25, 0.02, 0.06)  # the pause menu over the game
        self.corner = int(rng.integers(4))  # where the logo and face cam sit
        self.hue = rng.uniform(0, 1, 3)

    @staticmethod
    def _inside(span, t):
        return span is not None and span[0] <= t < span[1]

    def creative(self, t):
        return self._inside(self.creative_span, t)


def _corner_box(size, frac, corner):
    w = int(size * frac)
    top = 1 if corner in (0, 1) else size - w - size // 6  # keep off the hotbar
    left = 1 if corner in (0, 2) else size - w - 1
    return top, left, w


def _paint_facecam(frame, t, schedule):
    s = frame.shape[0]
    top, left, w = _corner_box(s, 0.34, schedule.corner)
    box = frame[top:top + w, left:left + w]
    box[:] = (60 + 120 * schedule.hue).astype(np.uint8)  # a room behind the streamer
    c = (w // 2 + int(round(math.sin(t / 9.0) * w / 12)), w // 2 + w // 8)  # the head sways
    cv2.ellipse(box, c, (w // 4, w // 3), 0, 0, 360, (225, 180, 150), -1)
    for ex in (-1, 1):
        cv2.circle(box, (c[0] + ex * w // 10, c[1] - w // 12), max(w // 24, 1), (30, 30, 30), -1)
    mouth = max(w // 30, 1) * (1 + (t // 4) % 2)  # talking
    cv2.ellipse(box, (c[0], c[1] + w // 7), (w // 9, mouth), 0, 0, 360, (120, 40, 40), -1)
    cv2.rectangle(frame, (left, top), (left + w - 1, top + w - 1), (240, 240, 240), 1)


def _paint_logo(frame, schedule):
    s = frame.shape[0]
    top, left, w = _corner_box(s, 0.22, (schedule.corner + 1) % 4)
    colour = (255 * schedule.hue[::-1]).astype(np.float32)
    patch = frame[top:top + w // 2, left:left + w].astype(np.float32)
    frame[top:top + w // 2, left:left + w] = (0.45 * patch + 0.55 * colour).astype(np.uint8)
    cv2.putText(frame, "TV", (left + 1, top + w // 2 - 2), cv2.FONT_HERSHEY_SIMPLEX, max(s / 200, 0.2),
                (255, 255, 255), 1)


def _menu_frame(size, t, rng_seed, pause_over=None):
    """A title screen (or, over a game frame, the pause menu): buttons, a moving mouse pointer."""
    if pause_over is None:
        frame = np.zeros((size, size, 3), np.uint8)
        frame[:] = (110, 80, 50)
        frame[(np.arange(size)[:, None] // max(size // 16, 1) + np.arange(size)[None, :] // max(size // 16, 1)) % 2
              == 0] = (95, 68, 42)  # the dirt background
        cv2.putText(frame, "TOYCRAFT", (size // 10, size // 4), cv2.FONT_HERSHEY_SIMPLEX, max(size / 180, 0.25),
                    (230, 230, 230), 1)
    else:
        frame = (pause_over * 0.4).astype(np.uint8)
    for k in range(3):
        y = size // 3 + k * size // 6
        cv2.rectangle(frame, (size // 5, y), (4 * size // 5, y + size // 9), (150, 150, 150), -1)
        cv2.rectangle(frame, (size // 5, y), (4 * size // 5, y + size // 9), (40, 40, 40), 1)
    rng = np.random.default_rng([rng_seed, t // 15])
    x, y = rng.uniform(150, 570, 2)
    common.draw_cursor(frame, x + 3 * (t % 15), y + 2 * (t % 15))
    return frame


def record_web(out, videos, seed, size=64, max_steps=6000, mix=None, codec="mp4v", progress=True):
    """Write the toy internet: `videos` web videos (<stem>.mp4 only) and, for evaluation alone, <stem>.truth.jsonl with
    the true actions and a per-frame "clean" label. No training code may read .truth files."""
    out = Path(out)
    paths = []
    for world, level in _progress(draw_episodes(seed, videos, mix or WEB_MIX), progress, "recording web videos"):
        schedule = WebSchedule(np.random.default_rng([world, 99]), length=max_steps // 3)
        ep = play_episode(world, level, size=size, max_steps=max_steps, web=schedule)
        frames, actions, extras = [], [], []
        noop = common.minerl_noop()
        # the title screen first: no play, so the true action is null and the frame unclean
        for t in range(schedule.title):
            frames.append(_menu_frame(size, t, world))
            actions.append(noop)
            extras.append({"clean": False, "unclean": "menu"})
        for t, action in enumerate(ep["actions"]):
            frame = ep["frames"][t].copy()
            if ep["gui"][t]:
                common.draw_cursor(frame, *ep["cursor"][t])  # a screen capture shows the pointer
            kinds = []
            if schedule.creative(t):
                kinds.append("creative")
            if WebSchedule._inside(schedule.pause, t):
                frame = _menu_frame(size, t, world, pause_over=frame)
                kinds.append("menu")
            if WebSchedule._inside(schedule.facecam, t):
                _paint_facecam(frame, t, schedule)
                kinds.append("facecam")
            if WebSchedule._inside(schedule.logo, t):
                _paint_logo(frame, schedule)
                kinds.append("logo")
            frames.append(frame)
            actions.append(action)
            extras.append({**ep["extras"][t], "clean": not kinds, "unclean": "+".join(kinds)})
        frames.append(ep["frames"][-1])
        stem = out / f"web-{world:06d}"
        video = common.write_contractor_episode(
            stem.with_suffix(".mp4"), np.stack(frames), actions, gui_open=np.r_[np.zeros(schedule.title, bool),
                                                                               ep["gui"]],
            cursor=np.r_[np.zeros((schedule.title, 2)), ep["cursor"]], extras=extras, codec=codec,
            jsonl_path=stem.with_suffix(".truth.jsonl"))
        paths.append(video)
    return paths


TOY_HOUR = 72_000  # frames in an hour of play at 20 Hz


def _record_one(job):
    out, seed, web, codec, max_steps = job
    record = record_web if web else record_contractors
    path = record(out, 1, seed, max_steps=max_steps, codec=codec, progress=False)[0]
    with open(path.with_suffix(".truth.jsonl" if web else ".jsonl")) as f:
        return sum(1 for _ in f)


def recorded_frames(out, web=False):
    """{world seed: frames} of the complete toy recordings in `out` (contractor ones, or with `web` the toy internet's).
    Complete means the actions file is there: it is written after the video, so an interrupted episode has none."""
    out, found = Path(out), {}
    for actions in out.glob("web-*.truth.jsonl" if web else "toy-*.jsonl"):
        stem = actions.name.split(".")[0]  # web-100000, toy-average-000000
        if (out / f"{stem}.mp4").exists():
            with open(actions) as f:
                found[int(stem.rsplit("-", 1)[1])] = sum(1 for _ in f)
    return found


def record_hours(out, hours, web=False, seed=0, workers=None, codec="mp4v", max_steps=6000):
    """Record episodes in parallel processes until `hours` of frames are in `out`: contractor recordings, or with `web`
    the toy internet. Episodes use world seeds seed, seed+1, ..., in rounds of one per worker; they run ~500-3,000
    frames each (at most `max_steps` of play). An episode already recorded in `out` counts and is not played again,
    so an interrupted recording resumes where it stopped, and a larger `hours` adds only the episodes missing: either
    way `out` ends with the episodes one uninterrupted run records. Returns the frames."""
    from multiprocessing import Pool

    from tqdm import tqdm

    need, frames = int(hours * TOY_HOUR), 0
    workers = workers or os.cpu_count() or 1
    common.make_folder(out)
    have = recorded_frames(out, web)
    pool = bar = None
    try:
        while frames < need:
            worlds = range(seed, seed + workers)  # a round: one episode per worker
            seed += workers
            there = sum(have.get(w, 0) for w in worlds)
            frames += there
            if bar is not None:
                bar.update(there)
            jobs = [(out, w, web, codec, max_steps) for w in worlds if w not in have]
            if jobs and pool is None:  # the first episode to play
                print(f"{out} holds {sum(have.values()) / TOY_HOUR:.2f} toy hours of "
                      f"{'web video' if web else 'contractor recordings'}: recording until it holds {hours:.2f} "
                      f"({need:,} frames)")
                pool = Pool(workers, common.worker_init)
                bar = tqdm(total=need, initial=min(frames, need), unit="frame",
                           desc="recording web video" if web else "recording contractors")
            for n in pool.imap_unordered(_record_one, jobs) if jobs else ():
                frames += n
                bar.update(n)
    finally:
        if pool is not None:
            pool.terminate()
            bar.close()
    return frames


def _progress(iterable, enabled, desc):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="ep")


# ---------------------------------------------------------------------------------------------------------------------
# Command line: record, players, demo
# ---------------------------------------------------------------------------------------------------------------------


def _episode_items(job):
    seed, level, max_steps = job
    ep = play_episode(seed, level, max_steps=max_steps)
    return level, ep["env"].obtained, ep["env"].steps


def item_rates(levels, episodes, seed=0, max_steps=6000, workers=None):
    """Fraction of episodes in which each scripted level obtains each item at least once (in parallel processes)."""
    from multiprocessing import Pool

    jobs = [(seed + i, level, max_steps) for level in levels for i in range(episodes)]
    with Pool(workers, common.worker_init) as pool:
        results = pool.map(_episode_items, jobs)
    rates = {}
    for level in levels:
        got = np.array([r[1] for r in results if r[0] == level])
        steps = [r[2] for r in results if r[0] == level]
        rates[level] = {"items": dict(zip(ITEMS, got.mean(axis=0).round(3).tolist())), "episodes": len(got),
                        "mean_steps": float(np.mean(steps))}
    return rates


def demo(args):
    """A good player's episode as the player saw it (cursor included), to mp4, and a short GIF for docs/toycraft.md."""
    from PIL import Image

    ep = play_episode(args.seed, "good", size=args.size, max_steps=args.max_steps)
    frames = []
    for t, frame in enumerate(ep["frames"][:-1]):
        frame = frame.copy()
        if ep["gui"][t]:
            common.draw_cursor(frame, *ep["cursor"][t])
        frames.append(frame)
    out = common.write_video(args.out, np.stack(frames))
    # the GIF: a stretch around the first crafting GUI, every second frame (10 frames/s)
    first_gui = int(np.argmax(ep["gui"])) if ep["gui"].any() else 0
    start = max(first_gui - 120, 0)
    clip = [Image.fromarray(f).resize((160, 160), Image.NEAREST) for f in frames[start:start + 300:2]]
    gif = out.with_suffix(".gif")
    clip[0].save(gif, save_all=True, append_images=clip[1:], duration=100, loop=0)
    items = [k for k, got in zip(ITEMS, ep["env"].obtained) if got]
    print(f"wrote {out} ({len(frames)} frames) and {gif}; items obtained: {', '.join(items)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="toy contractor recordings (or, with --web, the toy internet)")
    p.add_argument("--out", required=True)
    p.add_argument("--episodes", type=common.count, default=10)
    p.add_argument("--seed", type=common.count, default=0)
    p.add_argument("--size", type=common.number(int, 16), default=64)
    p.add_argument("--max-steps", type=common.positive_int, default=6000, help="5 minutes at 20 Hz, a contractor "
                   "segment's length")
    p.add_argument("--web", action="store_true", help="web videos: no actions, some unclean, .truth.jsonl beside")
    p.add_argument("--codec", default="mp4v", choices=common.VIDEO_CODECS)
    p = sub.add_parser("players", help="item success rates of each scripted player level")
    p.add_argument("--episodes", type=common.positive_int, default=20)
    p.add_argument("--seed", type=common.count, default=0)
    p.add_argument("--max-steps", type=common.positive_int, default=6000)
    p.add_argument("--out", default=None, help="also write the rates to this JSON file")
    p = sub.add_parser("demo", help="a good player's episode to mp4 and gif")
    p.add_argument("--out", default="demo.mp4")
    p.add_argument("--seed", type=common.count, default=0)
    p.add_argument("--size", type=common.number(int, 16), default=128)
    p.add_argument("--max-steps", type=common.positive_int, default=6000)
    args = parser.parse_args()

    if args.command == "record":
        record = record_web if args.web else record_contractors
        paths = record(args.out, args.episodes, args.seed, size=args.size, max_steps=args.max_steps, codec=args.codec)
        print(f"wrote {len(paths)} recordings to {args.out}")
    elif args.command == "players":
        rates = item_rates(list(LEVELS), args.episodes, args.seed, args.max_steps)
        print(f"{'item':16s}" + "".join(f"{level:>9s}" for level in rates))
        for item in ITEMS:
            print(f"{item:16s}" + "".join(f"{rates[level]['items'][item]:9.2f}" for level in rates))
        print(f"{'mean steps':16s}" + "".join(f"{rates[level]['mean_steps']:9.0f}" for level in rates))
        if args.out:
            Path(args.out).write_text(json.dumps(rates, indent=1))
    elif args.command == "demo":
        demo(args)


if __name__ == "__main__":
    common.run_main(main)
