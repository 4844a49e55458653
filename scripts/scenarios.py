"""Synthetic people-counting scenarios with exact ground truth, made from real
footage: OpenCV's vtest.avi (768x576, 10 fps, people on a campus path seen
from above at an angle).

Method
  1. Background: the per-pixel median of 72 frames spread over vtest; nobody
     stands still long enough to survive it.
  2. Cut-outs: a few real, isolated people picked by hand (CUTOUTS: source
     frame, box). Each is followed through consecutive frames (one gait
     cycle, played in a loop) and its foreground mask is the difference from
     the background, minus shadows (darker than the background but of the
     same chromaticity), cleaned with morphology, the largest connected
     component near the previous frame's box, edges feathered by a pixel.
  3. Actors: each follows a script of waypoints in normalised foot-point
     coordinates (walk at a pace given in body heights per second, wait,
     shuffle on the spot). A cut-out is pasted with its foot point (bottom
     centre of its mask's box) on the actor's foot point, scaled by
     perspective (HEIGHT_PER_FOOT_Y), mirrored to face the way it walks, its
     gait advancing with the distance walked; actors nearer the camera
     (lower on screen) are painted last, so they occlude the others.
  4. Encoding: raw RGB piped to gst-launch, H.264 (x264, one thread, so the
     output is byte-for-byte reproducible) in MPEG-TS. Every scenario starts
     and ends with empty background (at least LEAD_IN_S and TAIL_S), so that
     a looped stream keeps its loops apart.

Ground truth comes from the actors' foot points, not from any detector:
  occupancy  actors whose foot point is inside the zone polygon, per frame;
  dwell      each maximal run of frames inside the zone is one visit;
  crossings  the foot path crossing the door segment, counted once per change
             of side: a side only counts as reached TRUTH_BAND_PX from the
             line, so shuffling on the line is not a crossing; the event's
             time is that of the last crossing of the segment before.

The scene: the door is a line across the paved path (DOOR), the room a zone
just inside it, on its right on screen (ROOM). The scenarios (their functions
tell who does what): crossing_both_ways, crossing_together, stop_on_line,
standing_still, leave_reenter and occlusion, each one thing at a time with
at most two people; busy_door, 14 people in about 80 s, up to five in view,
crossing together, passing each other on the line, three staying a while.

Usage: scenarios.py --media DIR --out OUTDIR [--models-dir PATH] [--only NAME ...]
Writes NAME.ts, NAME.toml (a headcount config for it) and NAME.truth.json per
scenario. The truth's times count from the first frame; first_frame_ms is the
time stamp a demuxer gives that frame (mpegtsmux puts it 125 ms into the
stream). A scenario whose truth file records this script's sha256 is not
generated again; the truth file is written last, so an interrupted run never
leaves a scenario that looks finished.
"""

import argparse
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

W, H, FPS = 768, 576, 10
FRAME_BYTES = W * H * 3
LEAD_IN_S = 2.0
TAIL_S = 6.0
CRF = 20  # x264 constant quality: the still background then costs next to nothing
BACKGROUND_FRAMES = 72

# Person height (px) against foot y (px): a least-squares line through the
# detector's boxes of everyone in vtest, sampled at 1 fps (residual sd 9 px).
# Only ratios of it are used: a cut-out's size where it is pasted.
HEIGHT_PER_FOOT_Y = 0.2414
HEIGHT_AT_TOP = 14.32

# Foreground: summed |RGB difference| from the background above this is a
# person, unless it looks like a shadow (brightness ratio in SHADOW_RATIO and
# chromaticity within SHADOW_CHROMA of the background's).
FOREGROUND_THRESHOLD = 45
SHADOW_RATIO = (0.4, 0.95)
SHADOW_CHROMA = 0.05
SEARCH_MARGIN_PX = 14  # a person moves less than this between frames

# Hand-picked people in vtest, each isolated from the others over the frames
# used: first source frame, frame count (one gait cycle, found by comparing
# the poses, so that the loop is smooth) and box (x1, y1, x2, y2, px) around
# the person in the first frame. Mirrored, each walks either way.
CUTOUTS = {
    "paper": (387, 9, (600, 270, 662, 390)),  # dark suit, white paper in hand, walking right
    "jeans": (216, 11, (620, 292, 665, 415)),  # black jacket, jeans, walking left
    "bald": (465, 9, (698, 305, 755, 440)),  # bald, black jacket, jeans, walking left
    "hood": (136, 7, (558, 194, 596, 280)),  # pale blue coat, white hood, dark bag, quick steps, walking left
    "stripes": (146, 8, (615, 232, 655, 322)),  # navy striped jumper, jeans, walking left
}

# The scene: the paved path; the door is a line across it, the room on its
# right (on screen). Facing from the door's first point (top) to its second
# (bottom), screen-right is on the left, hence in = "left". The room starts a
# little inside the door, so that someone standing in the doorway is not yet
# in it.
DOOR = ((0.70, 0.29), (0.70, 0.73))
IN_SIDE = "left"
ROOM = [(0.72, 0.36), (0.92, 0.36), (0.92, 0.83), (0.72, 0.74)]
TRUTH_BAND_PX = 12.0  # well beyond stop_on_line's 4 px shuffles
TOGETHER_S = 1.0  # crossings closer than this in time are "together"
LEFT_EDGE, RIGHT_EDGE = -0.07, 1.07  # off screen: actors start and end there


# ---------------------------------------------------------------- decoding


def decode(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The wanted frames (by index) of a video, as HxWx3 uint8 RGB."""
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert",
           "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"]
    frames = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        index = 0
        while len(frames) < len(wanted):
            data = proc.stdout.read(FRAME_BYTES)
            if len(data) < FRAME_BYTES:
                break
            if index in wanted:
                frames[index] = np.frombuffer(data, np.uint8).reshape(H, W, 3)
            index += 1
        proc.kill()
    if len(frames) < len(wanted):
        sys.exit(f"error: {video} has fewer frames than needed (read {index})")
    return frames


def background_indices() -> list[int]:
    return [int(i) for i in np.linspace(0, 790, BACKGROUND_FRAMES)]


def cutout_indices() -> set[int]:
    return {first + i for first, count, _ in CUTOUTS.values() for i in range(count)}


# ---------------------------------------------------------------- cut-outs


@dataclass
class Pose:
    """One frame of a cut-out: premultiplied RGB and alpha (float32), and the
    foot point (bottom centre of the mask's box) within the patch."""
    rgb: np.ndarray
    alpha: np.ndarray
    foot: tuple[float, float]
    source_foot_y: float  # where the foot was in vtest, for the scale


@dataclass(eq=False)  # hashed by identity, for the scaling cache
class Cutout:
    poses: list[Pose]
    facing: int  # +1 walks right in the source, -1 left
    stride_px: float  # distance walked per source frame, where its height was source_height
    source_height: float  # height_at() its mean foot y in the source
    rest: int  # the pose with the feet closest together, for standing


def foreground(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float32)
    b = background.astype(np.float32)
    diff = np.abs(f - b).sum(axis=2)
    ratio = (f.sum(axis=2) + 3) / (b.sum(axis=2) + 3)
    chroma = np.abs(f / (f.sum(axis=2, keepdims=True) + 3) - b / (b.sum(axis=2, keepdims=True) + 3)).sum(axis=2)
    shadow = (ratio > SHADOW_RATIO[0]) & (ratio < SHADOW_RATIO[1]) & (chroma < SHADOW_CHROMA)
    return (diff > FOREGROUND_THRESHOLD) & ~shadow


def person_mask(frame: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple]:
    """The largest foreground blob within box (grown by SEARCH_MARGIN_PX), as
    a full-frame mask, and its tight box."""
    x1, y1, x2, y2 = box
    m = SEARCH_MARGIN_PX
    x1, y1, x2, y2 = max(0, x1 - m), max(0, y1 - m), min(W, x2 + m), min(H, y2 + m)
    fg = foreground(frame[y1:y2, x1:x2], background[y1:y2, x1:x2])
    fg = ndimage.binary_opening(fg)  # specks of noise
    fg = ndimage.binary_closing(fg, iterations=2)  # thin gaps, e.g. between arm and body
    fg = ndimage.binary_fill_holes(fg)
    labels, count = ndimage.label(fg)
    if count == 0:
        sys.exit(f"error: no person found in box {box}")
    sizes = ndimage.sum(fg, labels, range(1, count + 1))
    blob = labels == 1 + int(np.argmax(sizes))
    full = np.zeros((H, W), bool)
    full[y1:y2, x1:x2] = blob
    ys, xs = np.nonzero(full)
    return full, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def pose_from(frame: np.ndarray, mask: np.ndarray, box: tuple) -> Pose:
    x1, y1, x2, y2 = box
    pad = 2  # room for the feathered edge
    X1, Y1, X2, Y2 = max(0, x1 - pad), max(0, y1 - pad), min(W, x2 + pad), min(H, y2 + pad)
    alpha = ndimage.gaussian_filter(mask[Y1:Y2, X1:X2].astype(np.float32), 0.7)
    alpha = np.clip(alpha * 1.5, 0, 1)  # feather outwards only a little; the inside stays opaque
    rgb = frame[Y1:Y2, X1:X2].astype(np.float32) * alpha[..., None]
    return Pose(rgb, alpha, ((x1 + x2) / 2 - X1, y2 - Y1), float(y2))


def extract_cutout(frames: dict[int, np.ndarray], background: np.ndarray, spec: tuple) -> Cutout:
    first, count, box = spec
    poses, boxes = [], []
    for index in range(first, first + count):
        mask, box = person_mask(frames[index], background, box)
        poses.append(pose_from(frames[index], mask, box))
        boxes.append(box)
    feet = np.array([((b[0] + b[2]) / 2, b[3]) for b in boxes])
    step = np.linalg.norm(feet[-1] - feet[0]) / (count - 1)  # mean foot travel per frame
    widths = [b[2] - b[0] for b in boxes]
    return Cutout(poses, 1 if feet[-1][0] >= feet[0][0] else -1, float(step),
                  height_at(float(feet[:, 1].mean())), int(np.argmin(widths)))


def height_at(foot_y_px: float) -> float:
    return HEIGHT_PER_FOOT_Y * foot_y_px + HEIGHT_AT_TOP


# ------------------------------------------------------------------ actors


@dataclass
class Actor:
    """A person following a script of steps from `start` seconds:
    ("walk", x, y) to a normalised foot point, ("wait", seconds) standing,
    ("shuffle", seconds, px) small steps back and forth along x. The first
    step is a ("walk", x, y) that places the actor there; `pace` is the
    walking speed in body heights per second (None: the cut-out's own)."""
    cutout: str
    steps: list[tuple]
    start: float = 0.0
    pace: float | None = None


@dataclass
class State:
    x: float  # foot point, px
    y: float
    pose: int
    mirrored: bool


@dataclass
class Scenario:
    name: str
    actors: list[Actor]
    frames: int = 0
    tracks: list[dict[int, State]] = field(default_factory=list)


def natural_pace(cut: Cutout) -> float:
    return cut.stride_px * FPS / cut.source_height


def simulate(actor: Actor, cut: Cutout) -> list[State]:
    """Per-frame states of an actor from its first frame."""
    pace = actor.pace or natural_pace(cut)
    x, y = actor.steps[0][1] * W, actor.steps[0][2] * H
    facing = cut.facing
    phase = 0.0  # gait position, in source frames
    states = []

    def emit():
        states.append(State(x, y, int(phase) % len(cut.poses), facing != cut.facing))

    for step in actor.steps[1:]:
        if step[0] == "walk":
            tx, ty = step[1] * W, step[2] * H
            if abs(tx - x) > 1:
                facing = 1 if tx > x else -1
            while (left := math.hypot(tx - x, ty - y)) > 1e-6:
                scale = height_at(y) / cut.source_height
                move = min(left, pace * height_at(y) / FPS)
                x, y = x + (tx - x) * move / left, y + (ty - y) * move / left
                phase += move / (cut.stride_px * scale)
                emit()
        elif step[0] == "wait":
            phase = cut.rest
            for _ in range(round(step[1] * FPS)):
                emit()
        elif step[0] == "shuffle":
            phase, x0 = cut.rest, x
            for i in range(round(step[1] * FPS)):
                # To and fro across x0, `px` either way, once every 1.6 s.
                nx = x0 + step[2] * math.sin(2 * math.pi * (i + 1) / (1.6 * FPS))
                phase += abs(nx - x) / (cut.stride_px * height_at(y) / cut.source_height)
                x = nx
                emit()
        else:
            raise ValueError(f"unknown step {step}")
    return states


def offscreen(step: tuple) -> bool:
    return step[0] == "walk" and not (0 <= step[1] <= 1 and 0 <= step[2] <= 1)


def arrive(actor: Actor, cut: Cutout, x: float, t: float) -> Actor:
    """Sets the actor's start so that its foot first reaches x (normalised)
    at t seconds: for people meant to meet or cross together."""
    states = simulate(actor, cut)
    sign = 1 if states[0].x < x * W else -1
    frame = next(i for i, s in enumerate(states) if sign * (s.x - x * W) >= 0)
    actor.start = t - frame / FPS
    return actor


def place(scenario: Scenario, cutouts: dict[str, Cutout]) -> Scenario:
    """Runs every actor: per-frame states by absolute frame, and the length
    (the last actor gone, then TAIL_S of empty background)."""
    end = 0
    for actor in scenario.actors:
        if not (offscreen(actor.steps[0]) and offscreen(actor.steps[-1])):
            raise ValueError(f"{scenario.name}: actors must come from and go to off-screen points")
        if actor.start < LEAD_IN_S:
            raise ValueError(f"{scenario.name}: an actor starts before {LEAD_IN_S} s")
        first = round(actor.start * FPS)
        states = simulate(actor, cutouts[actor.cutout])
        scenario.tracks.append({first + i: s for i, s in enumerate(states)})
        end = max(end, first + len(states))
    scenario.frames = end + round(TAIL_S * FPS)
    return scenario


# ------------------------------------------------------------- scenarios


def walk_across(cutout: str, y_from: float, y_to: float, rightward: bool, pace: float | None = None,
                stop: tuple[float, float] | None = None, wait_s: float = 0.0) -> Actor:
    """From one side of the frame to the other, off screen to off screen,
    optionally standing wait_s seconds at a stop on the way."""
    a, b = (LEFT_EDGE, RIGHT_EDGE) if rightward else (RIGHT_EDGE, LEFT_EDGE)
    middle = [("walk", *stop), ("wait", wait_s)] if stop else []
    return Actor(cutout, [("walk", a, y_from), *middle, ("walk", b, y_to)], pace=pace)


def at_door(actor: Actor, cutouts: dict[str, Cutout], t: float) -> Actor:
    return arrive(actor, cutouts[actor.cutout], DOOR[0][0], t)


def crossing_both_ways(cutouts: dict[str, Cutout]) -> list[Actor]:
    """Three in, each stopping in the room for a while, then two out: one
    person at a time in the room."""
    return [
        at_door(walk_across("paper", 0.46, 0.62, True, stop=(0.80, 0.60), wait_s=3), cutouts, 13),
        at_door(walk_across("bald", 0.50, 0.52, True, stop=(0.85, 0.50), wait_s=5), cutouts, 21),
        at_door(walk_across("jeans", 0.42, 0.68, True, stop=(0.78, 0.66), wait_s=7), cutouts, 32),
        at_door(walk_across("paper", 0.60, 0.47, False), cutouts, 48),
        at_door(walk_across("bald", 0.56, 0.44, False), cutouts, 56),
    ]


def crossing_together(cutouts: dict[str, Cutout]) -> list[Actor]:
    """Two in side by side, stopping together in the room; later two others
    come into the room from its far side, stop, and go out side by side. A
    pair shares a pace; the farther one is a little behind on screen, so both
    stay visible."""
    return [
        at_door(walk_across("paper", 0.48, 0.66, True, 0.65, (0.80, 0.64), 5), cutouts, 15.0),
        at_door(walk_across("bald", 0.38, 0.54, True, 0.65, (0.77, 0.53), 5), cutouts, 15.5),
        at_door(walk_across("jeans", 0.69, 0.52, False, 0.65, (0.84, 0.64), 4), cutouts, 38.0),
        at_door(walk_across("paper", 0.57, 0.41, False, 0.65, (0.86, 0.53), 4), cutouts, 38.5),
    ]


def stop_on_line(cutouts: dict[str, Cutout]) -> list[Actor]:
    """Stops on the door for 5 s, shuffling 4 px to and fro across it."""
    door_x = DOOR[0][0]
    return [at_door(Actor("jeans", [("walk", LEFT_EDGE, 0.45), ("walk", door_x, 0.56), ("shuffle", 5.0, 4.0),
                                    ("walk", RIGHT_EDGE, 0.61)]), cutouts, 13)]


def standing_still(cutouts: dict[str, Cutout]) -> list[Actor]:
    """In, 3 minutes standing in the room, out; meanwhile someone passes in
    front, on the lawn below the door's end (no crossing)."""
    door_x = DOOR[0][0]
    return [
        at_door(Actor("paper", [("walk", LEFT_EDGE, 0.47), ("walk", 0.81, 0.60), ("wait", 180.0),
                                ("walk", door_x, 0.57), ("walk", LEFT_EDGE, 0.46)]), cutouts, 13),
        Actor("bald", [("walk", LEFT_EDGE, 0.78), ("walk", RIGHT_EDGE, 0.90)], start=60),
    ]


def leave_reenter(cutouts: dict[str, Cutout]) -> list[Actor]:
    """In, out, about 10 s later in again, out: two visits."""
    return [at_door(Actor("bald", [("walk", LEFT_EDGE, 0.47), ("walk", 0.83, 0.58), ("wait", 2.0),
                                   ("walk", 0.45, 0.52), ("wait", 6.0), ("walk", 0.83, 0.60), ("wait", 2.0),
                                   ("walk", LEFT_EDGE, 0.46)]), cutouts, 13)]


def occlusion(cutouts: dict[str, Cutout]) -> list[Actor]:
    """Opposite ways at a stroll, one lane apart, meeting 30 px short of the
    door: the nearer walker hides the farther for about a second, and their
    crossings stay more than a second apart."""
    meet_x = DOOR[0][0] - 30 / W
    return [
        arrive(walk_across("jeans", 0.50, 0.64, True, pace=0.45), cutouts["jeans"], meet_x, 17.0),
        arrive(walk_across("paper", 0.62, 0.49, False, pace=0.45), cutouts["paper"], meet_x, 17.0),
    ]


def door_times(actor: Actor, cut: Cutout) -> list[float]:
    """When (seconds) the actor's foot passes the door's x, each time it does
    (after its start is set)."""
    x = DOOR[0][0] * W
    states = simulate(actor, cut)
    return [actor.start + i / FPS for i, (p, q) in enumerate(zip(states, states[1:]), 1) if (p.x < x) != (q.x < x)]


def passing(actor: Actor, leaver: Actor, cutouts: dict[str, Cutout]) -> Actor:
    """Sets the actor's start so that it is at the door when the leaver goes
    out through it for the last time."""
    return at_door(actor, cutouts, door_times(leaver, cutouts[leaver.cutout])[-1])


def stayers(cutouts: dict[str, Cutout]) -> list[Actor]:
    """busy_door's three who come in, stay in the room and go out again: one
    stands, steps aside and stands again (11 s in the room), one stands still
    (17 s), one wanders about it at a stroll (12 s)."""
    door_x = DOOR[0][0]
    return [
        at_door(Actor("bald", [("walk", LEFT_EDGE, 0.44), ("walk", 0.84, 0.56), ("wait", 5.0), ("walk", 0.80, 0.64),
                               ("wait", 3.0), ("walk", door_x, 0.58), ("walk", LEFT_EDGE, 0.40)], pace=0.8),
                cutouts, 19),
        at_door(Actor("jeans", [("walk", LEFT_EDGE, 0.40), ("walk", 0.86, 0.66), ("wait", 15.0),
                                ("walk", LEFT_EDGE, 0.42)], pace=0.9), cutouts, 40),
        at_door(Actor("hood", [("walk", LEFT_EDGE, 0.42), ("walk", 0.78, 0.47), ("wait", 2.0), ("walk", 0.88, 0.57),
                               ("wait", 3.0), ("walk", 0.82, 0.70), ("wait", 2.0), ("walk", LEFT_EDGE, 0.44)],
                pace=0.7), cutouts, 62),
    ]


def busy_door(cutouts: dict[str, Cutout]) -> list[Actor]:
    """A busy doorway: 14 people in and out in about 80 s, at paces from a
    stroll to a brisk walk, up to five in view. Two in side by side; one in
    and one out passing each other on the line (the nearer hides the farther)
    four times, twice with someone leaving after a stay (stayers); two out one
    behind the other; three through within a second."""
    stay_1, stay_2, stay_3 = stayers(cutouts)
    return [
        at_door(walk_across("stripes", 0.44, 0.64, True, 0.8), cutouts, 13.0),  # side by side
        at_door(walk_across("paper", 0.38, 0.56, True, 0.8), cutouts, 13.5),
        stay_1,
        at_door(walk_across("hood", 0.52, 0.40, False, 1.1), cutouts, 24.0),  # passing on the line
        at_door(walk_across("jeans", 0.38, 0.58, True, 0.9), cutouts, 24.2),
        at_door(walk_across("paper", 0.62, 0.44, False, 0.9), cutouts, 32.0),  # one behind the other
        at_door(walk_across("stripes", 0.60, 0.42, False, 0.9), cutouts, 32.7),
        stay_2,
        at_door(walk_across("stripes", 0.58, 0.40, False, 1.0), cutouts, 47.0),  # three, two passing
        at_door(walk_across("hood", 0.42, 0.62, True, 0.8), cutouts, 47.2),
        at_door(walk_across("bald", 0.44, 0.60, True, 0.8), cutouts, 47.8),
        stay_3,
        passing(walk_across("paper", 0.44, 0.64, True, 0.9), stay_2, cutouts),
        passing(walk_across("bald", 0.46, 0.72, True, 0.75), stay_3, cutouts),
    ]


SCENARIOS = {f.__name__: f for f in [crossing_both_ways, crossing_together, stop_on_line, standing_still,
                                     leave_reenter, occlusion, busy_door]}


# ------------------------------------------------------------------- truth


def inside(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """Ray casting; x, y and the polygon normalised."""
    result = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


def side_distance(x: float, y: float) -> float:
    """Signed distance (px) of a foot point from the door line: negative on
    the left (the convention of the config's `in`)."""
    (ax, ay), (bx, by) = [(p[0] * W, p[1] * H) for p in DOOR]
    return ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / math.hypot(bx - ax, by - ay)


def segment_crossing(p: State, q: State) -> float | None:
    """Where (0..1 from p to q) the step p->q crosses the door segment, if it does."""
    (ax, ay), (bx, by) = [(c[0] * W, c[1] * H) for c in DOOR]
    dp, dq = side_distance(p.x, p.y), side_distance(q.x, q.y)
    if (dp < 0) == (dq < 0) or dp == dq:
        return None
    f = dp / (dp - dq)
    cx, cy = p.x + f * (q.x - p.x), p.y + f * (q.y - p.y)
    along = ((cx - ax) * (bx - ax) + (cy - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)
    return f if 0 <= along <= 1 else None


def crossings(track: dict[int, State]) -> list[tuple[float, str]]:
    """(time, "in"/"out") for each change of side through the segment; a
    side counts as reached TRUTH_BAND_PX from the line."""
    events, settled, last = [], None, None
    frames = sorted(track)
    for prev, frame in zip([None] + frames, frames):
        s = track[frame]
        if prev is not None and (f := segment_crossing(track[prev], s)) is not None:
            last = (prev + f) / FPS
        d = side_distance(s.x, s.y)
        if abs(d) >= TRUTH_BAND_PX:
            side = "left" if d < 0 else "right"
            if settled is not None and side != settled and last is not None:
                events.append((round(last, 2), "in" if side == IN_SIDE else "out"))
            settled, last = side, None
    return events


def truth(scenario: Scenario, generator_sha: str, first_ms: float) -> dict:
    """The contents of NAME.truth.json."""
    occupancy = [0] * scenario.frames
    dwell = []
    for track in scenario.tracks:
        run = 0
        for frame in range(scenario.frames + 1):
            s = track.get(frame)
            if s is not None and inside(s.x / W, s.y / H, ROOM):
                occupancy[frame] += 1
                run += 1
            elif run:
                dwell.append(round(run / FPS, 2))
                run = 0
    events = sorted(e for track in scenario.tracks for e in crossings(track))
    together = [sum(1 for u, _ in events if abs(u - t) < TOGETHER_S) for t, _ in events]
    counts = {d: sum(1 for _, e in events if e == d) for d in ("in", "out")}
    return {
        "name": scenario.name, "generator_sha256": generator_sha, "fps": FPS, "frames": scenario.frames,
        "duration_s": scenario.frames / FPS, "width": W, "height": H, "first_frame_ms": first_ms,
        "crossings": {"scene.door": counts},
        "crossing_events": [{"line": "scene.door", "t": t, "direction": d, "together": n}
                            for (t, d), n in zip(events, together)],
        "occupancy": {"scene.room": [[round(i / FPS, 1), c] for i, c in enumerate(occupancy)]},
        "dwell": {"scene.room": dwell},
        "single_crossings": all(n == 1 for n in together),
    }


def config(name: str, models_dir: Path) -> str:
    polygon = ", ".join(f"[{x}, {y}]" for x, y in ROOM)
    (ax, ay), (bx, by) = DOOR
    return f"""# Scenario {name}, made by scripts/scenarios.py: headcount on its video.
[appliance]
site = "scenario"
models_dir = "{models_dir}"
state_dir = "state-{name}"

[cameras.scene]
url = "file:{name}.ts"
analysis_fps = 5

[cameras.scene.zones.room]
polygon = [{polygon}]
capacity = 10

[cameras.scene.lines.door]
points = [[{ax}, {ay}], [{bx}, {by}]]
# Crossing onto this side counts as an entry ("in"): "left" or "right" as seen on screen
# standing at the first point, facing the second.
in = "{IN_SIDE}"

# Everything beyond the door, seen or not (people leave the view on the
# room's side): counted by entries minus exits.
[spaces.room]
entrances = ["scene.door"]
"""


# --------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=512)
def scaled_pose(cut: Cutout, pose: int, mirrored: bool, scale: float) -> tuple:
    """RGB, alpha and foot point of a pose at a scale (rounded to 0.01 by the
    caller, so that standing actors hit the cache)."""
    p = cut.poses[pose]
    rgba = ndimage.zoom(np.dstack([p.rgb, p.alpha]), (scale, scale, 1), order=1)
    fx, fy = p.foot[0] * rgba.shape[1] / p.alpha.shape[1], p.foot[1] * rgba.shape[0] / p.alpha.shape[0]
    if mirrored:
        rgba, fx = rgba[:, ::-1], rgba.shape[1] - fx
    return rgba[..., :3], np.clip(rgba[..., 3:], 0, 1), fx, fy


def paste(canvas: np.ndarray, cut: Cutout, s: State) -> None:
    pose = cut.poses[s.pose]
    scale = round(height_at(s.y) / height_at(pose.source_foot_y), 2)
    rgb, alpha, fx, fy = scaled_pose(cut, s.pose, s.mirrored, scale)
    x0, y0 = round(s.x - fx), round(s.y - fy)
    h, w = alpha.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    patch = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    region = canvas[cy0:cy1, cx0:cx1]
    region[:] = np.minimum(rgb[patch] + region * (1 - alpha[patch]) + 0.5, 255)


def render(scenario: Scenario, cutouts: dict[str, Cutout], background: np.ndarray, out: Path) -> None:
    part = part_path(out)
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!",
           "rawvideoparse", f"width={W}", f"height={H}", "format=rgb", f"framerate={FPS}/1", "!",
           "videoconvert", "!", "video/x-raw,format=I420", "!",
           "x264enc", "speed-preset=veryfast", "key-int-max=10", "bframes=0", "threads=1",
           "pass=qual", f"quantizer={CRF}", "!",
           "h264parse", "!", "mpegtsmux", "!", "filesink", f"location={part}"]
    names = [a.cutout for a in scenario.actors]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        for frame in range(scenario.frames):
            here = [(t[frame], cutouts[n]) for t, n in zip(scenario.tracks, names) if frame in t]
            canvas = background.copy()
            for s, cut in sorted(here, key=lambda e: e[0].y):  # far (higher on screen) first
                paste(canvas, cut, s)
            proc.stdin.write(canvas.tobytes())
        proc.stdin.close()
    if proc.returncode != 0:
        sys.exit(f"error: encoding {out} failed ({proc.returncode})")
    part.rename(out)


def first_frame_ms(video: Path) -> float:
    """The time stamp a demuxer gives the first frame: mpegtsmux starts the
    stream's clock before it (125 ms), and players report frame times on it."""
    cmd = ["gst-launch-1.0", "-v", "filesrc", f"location={video}", "!", "tsdemux", "!", "fakesink",
           "silent=false", "num-buffers=1"]
    log = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"pts: (\d+):(\d+):(\d+(?:\.\d+)?)", log)
    if m is None:
        sys.exit(f"error: no time stamp found in {video}")
    return round((int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])) * 1000, 3)


# -------------------------------------------------------------------- main


def part_path(path: Path) -> Path:
    """Where to write before renaming to path (per process: runs may overlap)."""
    return path.with_name(f"{path.name}.{os.getpid()}.part")


def write_atomically(path: Path, text: str) -> None:
    part = part_path(path)
    part.write_text(text)
    part.rename(path)


def up_to_date(out: Path, name: str, sha: str) -> bool:
    try:
        recorded = json.loads((out / f"{name}.truth.json").read_text())["generator_sha256"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == sha and (out / f"{name}.ts").exists()


def load_sources(media: Path) -> tuple[np.ndarray, dict[str, Cutout]]:
    frames = decode(media / "vtest.avi", set(background_indices()) | cutout_indices())
    background = np.median(np.stack([frames[i] for i in background_indices()]), axis=0).astype(np.uint8)
    return background, {name: extract_cutout(frames, background, spec) for name, spec in CUTOUTS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=os.environ.get("HEADCOUNT_MEDIA"),
                        help="folder with vtest.avi (default: $HEADCOUNT_MEDIA)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(SCENARIOS))
    args = parser.parse_args()
    if args.media is None:
        parser.error("--media or $HEADCOUNT_MEDIA is needed")
    sha = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SCENARIOS)
    for name in names:  # cheap, and follows --models-dir
        write_atomically(args.out / f"{name}.toml", config(name, args.models_dir.resolve()))
    todo = [name for name in names if not up_to_date(args.out, name, sha)]
    if not todo:
        return
    background, cutouts = load_sources(args.media)
    for name in todo:
        scenario = place(Scenario(name, SCENARIOS[name](cutouts)), cutouts)
        (args.out / f"{name}.truth.json").unlink(missing_ok=True)
        render(scenario, cutouts, background, args.out / f"{name}.ts")
        first_ms = first_frame_ms(args.out / f"{name}.ts")
        write_atomically(args.out / f"{name}.truth.json", json.dumps(truth(scenario, sha, first_ms)) + "\n")
        print(f"{name}: {scenario.frames} frames, {scenario.frames / FPS:.0f} s")


if __name__ == "__main__":
    main()
