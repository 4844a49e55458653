"""Anomaly detection of headcount against exact ground truth: detection rate
and time to event per anomaly type, false events on normal footage through
the running appliance, and the tamper detector's cost per frame.

1. Scenario runs, each `HEADCOUNT analyze --input VIDEO --config CONFIG
   [--start RFC3339]` on a video with known truth, with a config derived
   from the scenario's own (one detector set up per run); the summary line's
   "anomalies" are matched to the true episodes:

     lens_covered, defocused,   the tamper videos of tamper_scenarios.py
     camera_moved, frozen_image (camera `cam`); onset = the first tampered
                     frame, so the time to event includes the evidence the
                     detector waits for (a frozen image is one only after
                     frozen_secs = 10 of it)
     over_capacity   busy_door, space `room` (entries minus exits over the
                     door) with capacity CAPACITY and capacity_hold_secs
                     CAPACITY_HOLD_S: an episode opens when the true count
                     has been above capacity for the hold, and ends when it
                     falls to capacity_clear (90 % of capacity, rounded down);
                     here and for after_hours, a break of under GAP_S (one
                     person out as another comes in) does not count
     loitering       standing_still, zone `scene.room` with loiter_minutes
                     LOITER_MIN: onset = true visit start + the limit
     after_hours     busy_door, space `room` closed at --start (a Sunday at
                     23:00 in Berlin; open Monday-Friday 08:00-18:00),
                     after_hours_hold_secs AFTER_HOURS_HOLD_S: onset = the
                     start of a true presence (at least after_hours_min = 1,
                     drift_tolerance = 0, drift_miss_rate = 0) that lasts the hold, + the hold. The control run starts
                     on a Monday at 10:00: no after_hours event may come
     wrong_way       crossing_both_ways, line `scene.door` one_way = "in":
                     each true exit is a violation, onset = its time

   An episode is detected by an event of its type on its subject that starts
   within [onset - 1 s, onset + 30 s] (each event matches one episode), or by
   the event of an earlier episode still open at its onset (a detector may
   hold one event across a short dip); time to event = start - onset. Every
   other event of the run, of any type, is a false event. (The counting
   scenarios are composited on one still background image: while nobody
   moves, successive frames are identical, which a frozen-image detector
   may take for a frozen camera; standing_still has a minute of that.)

2. False events over --minutes of normal footage through the appliance:
   `headcount camera` loops vtest over RTSP on loopback and `headcount run`
   analyses it with config/demo.toml's camera, zone, line and space, every
   detector on (tamper sensitivity medium, learning 60 s; loitering 2 min;
   the zone's capacity; a schedule open all day, every day); then
   `GET /api/v1/anomalies?state=all` counts what it raised (target 0). Then
   the camera server is killed for OUTAGE_S (stream_loss_secs = 10): the
   time from the kill to the stream_loss event, and from the restart to its
   end.

3. `headcount-bench tamper --input vtest.avi --width 640`: the tamper
   statistics' cost per frame (target < 1 ms); its last line is JSON.

Prints a table (or, with --json, one JSON object). Exits 0 whatever the
figures (they are measurements, not a test); 1 when a run fails.

Usage: eval_anomalies.py --scenarios DIR --tamper DIR --media DIR --headcount BIN
                         [--minutes N] [--only LABEL ...] [--json]
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_scenarios import entrance_count  # noqa: E402  (true entries minus exits, per frame)

REPO = Path(__file__).resolve().parent.parent
WINDOW = (-1.0, 30.0)  # an event counts for an onset if it starts within these seconds of it
GAP_S = 1.0  # a true condition broken for less than this is unbroken
CAPACITY, CAPACITY_HOLD_S = 2, 3
LOITER_MIN = 0.5
AFTER_HOURS_HOLD_S = 10
# Open Monday to Friday; after_hours_min = 1, drift_tolerance = 0 and
# drift_miss_rate = 0, since for a space counted at its entrances only,
# presence after hours needs more than the drift tolerance (default 2,
# growing with the day's entries) as well.
SCHEDULE = {"timezone": "Europe/Berlin", **{d: "08:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")},
            "after_hours_min": 1, "drift_tolerance": 0, "drift_miss_rate": 0}
CLOSED_START = "2026-11-29T23:00:00+01:00"  # a Sunday night in Berlin
OPEN_START = "2026-11-30T10:00:00+01:00"  # the Monday morning after
OUTAGE_S = 20
STREAM_LOSS_S = 10
TAMPER_TARGET_MS = 1.0


@dataclass
class Episode:
    type: str
    subject: str
    onset_s: float


@dataclass
class Run:
    label: str  # also the anomaly type it evaluates, or "TYPE (control)"
    folder: str  # "scenarios" or "tamper"
    scenario: str
    edit: Callable[[dict], None] = lambda config: None
    start: str | None = None
    truth: Callable[[dict, dict], list[Episode]] = lambda truth, config: []
    note: str = ""


# ------------------------------------------------------------------- truth


def tamper_truth(truth: dict, config: dict) -> list[Episode]:
    return [Episode(truth["kind"], truth["subject"], truth["onset_s"])]


def episodes_above(counts: list[int], fps: float, above: Callable[[int], bool], hold_s: float,
                   clear: Callable[[int], bool]) -> list[float]:
    """Onsets (s) of a held condition on a per-frame count: true once
    above() has held for hold_s, over once clear() has held for GAP_S. A
    break shorter than GAP_S does not count (someone leaving as someone
    else comes in: a detector sampling a few frames a second need not see
    the empty moment)."""
    onsets, active, run_start, last_above, clear_since = [], False, None, None, None
    for k, c in enumerate(counts):
        t = k / fps
        if active:
            clear_since = (t if clear_since is None else clear_since) if clear(c) else None
            if clear_since is not None and t - clear_since >= GAP_S:
                active, run_start = False, None
        elif above(c):
            if run_start is None or t - last_above > GAP_S:
                run_start = t
            last_above = t
            if t - run_start >= hold_s - 1e-9:
                onsets.append(round(run_start + hold_s, 2))
                active, clear_since = True, None
    return onsets


def capacity_truth(truth: dict, config: dict) -> list[Episode]:
    space = config["spaces"]["room"]
    clear = space.get("capacity_clear", CAPACITY * 9 // 10)
    counts = entrance_count(truth, space["entrances"])
    return [Episode("over_capacity", "room", t) for t in
            episodes_above(counts, truth["fps"], lambda c: c > CAPACITY, CAPACITY_HOLD_S, lambda c: c <= clear)]


def after_hours_truth(truth: dict, config: dict) -> list[Episode]:
    counts = entrance_count(truth, config["spaces"]["room"]["entrances"])
    return [Episode("after_hours", "room", t) for t in
            episodes_above(counts, truth["fps"], lambda c: c >= 1, AFTER_HOURS_HOLD_S, lambda c: c < 1)]


def loitering_truth(truth: dict, config: dict) -> list[Episode]:
    """Visits are runs of frames with someone in the zone: the scenario has
    one person in it at a time (checked)."""
    occupancy = truth["occupancy"]["scene.room"]
    if max(c for _, c in occupancy) > 1:
        sys.exit(f"error: {truth['name']} has more than one person in the room at once")
    limit = LOITER_MIN * 60
    episodes, start = [], None
    for t, c in occupancy + [[truth["duration_s"], 0]]:
        if c and start is None:
            start = t
        elif not c and start is not None:
            if t - start > limit:
                episodes.append(Episode("loitering", "scene.room", round(start + limit, 2)))
            start = None
    return episodes


def wrong_way_truth(truth: dict, config: dict) -> list[Episode]:
    return [Episode("wrong_way", "scene.door", e["t"]) for e in truth["crossing_events"]
            if e["line"] == "scene.door" and e["direction"] == "out"]


# ----------------------------------------------------------------- configs


def table(config: dict, *path: str) -> dict:
    for key in path:
        config = config.setdefault(key, {})
    return config


def with_capacity(config: dict) -> None:
    table(config, "spaces", "room")["capacity"] = CAPACITY
    table(config, "anomalies")["capacity_hold_secs"] = CAPACITY_HOLD_S


def with_schedule(config: dict) -> None:
    table(config, "spaces", "room")["schedule"] = dict(SCHEDULE)
    table(config, "anomalies")["after_hours_hold_secs"] = AFTER_HOURS_HOLD_S


def with_loitering(config: dict) -> None:
    table(config, "cameras", "scene", "zones", "room")["loiter_minutes"] = LOITER_MIN


def with_one_way(config: dict) -> None:
    table(config, "cameras", "scene", "lines", "door")["one_way"] = "in"


RUNS = [
    *[Run(kind, "tamper", name, truth=tamper_truth) for kind, name in
      [("lens_covered", "tamper_covered"), ("defocused", "tamper_blur"), ("camera_moved", "tamper_moved"),
       ("frozen_image", "tamper_frozen")]],
    Run("over_capacity", "scenarios", "busy_door", with_capacity, truth=capacity_truth,
        note=f"space room, capacity {CAPACITY}, hold {CAPACITY_HOLD_S} s"),
    Run("loitering", "scenarios", "standing_still", with_loitering, truth=loitering_truth,
        note=f"zone scene.room, {LOITER_MIN} min"),
    Run("after_hours", "scenarios", "busy_door", with_schedule, CLOSED_START, after_hours_truth,
        note=f"space room, closed (Sun 23:00), hold {AFTER_HOURS_HOLD_S} s"),
    Run("after_hours (control)", "scenarios", "busy_door", with_schedule, OPEN_START,
        note="space room, open (Mon 10:00): none expected"),
    Run("wrong_way", "scenarios", "crossing_both_ways", with_one_way, truth=wrong_way_truth,
        note="line scene.door, one_way = in"),
]


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def toml_dumps(config: dict, prefix: str = "") -> str:
    """TOML for a parsed config: scalars, arrays and nested tables."""
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in config.items() if not isinstance(v, dict))
    for k, v in config.items():
        if isinstance(v, dict):
            name = f"{prefix}{toml_key(k)}"
            if any(not isinstance(x, dict) for x in v.values()) or not v:
                text += f"\n[{name}]\n"
            text += toml_dumps(v, name + ".")
    return text


# -------------------------------------------------------------- scenarios


def analyze(headcount: Path, video: Path, config: Path, start: str | None) -> dict:
    """analyze's summary line."""
    cmd = [str(headcount), "analyze", "--input", str(video), "--config", str(config),
           "--models-dir", str(REPO / "models")] + (["--start", start] if start else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    summary = None
    for line in done.stdout.splitlines():
        if line.startswith('{"summary"'):
            summary = json.loads(line)["summary"]
    if summary is None:
        sys.exit(f"error: {' '.join(cmd)} printed no summary")
    if "anomalies" not in summary:
        sys.exit(f"error: analyze's summary has no \"anomalies\" (not in this build?): {json.dumps(summary)[:300]}")
    return summary


def match(episodes: list[Episode], events: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each episode's result ({onset_s, detected, time_to_event_s, held})
    and the events that match none (false events)."""
    matched: set[int] = set()
    results = []
    for ep in episodes:
        same = [(i, e) for i, e in enumerate(events) if e["type"] == ep.type and e["subject"] == ep.subject]
        hit = next((i for i, e in sorted(same, key=lambda p: p[1]["start_s"])
                    if i not in matched and WINDOW[0] <= e["start_s"] - ep.onset_s <= WINDOW[1]), None)
        if hit is not None:
            matched.add(hit)
            results.append({"onset_s": ep.onset_s, "detected": True,
                            "time_to_event_s": round(events[hit]["start_s"] - ep.onset_s, 2), "held": False})
            continue
        held = any(i in matched and e["start_s"] < ep.onset_s and (e.get("end_s") is None or e["end_s"] >= ep.onset_s)
                   for i, e in same)
        results.append({"onset_s": ep.onset_s, "detected": held, "time_to_event_s": None, "held": held})
    return results, [e for i, e in enumerate(events) if i not in matched]


def evaluate(run: Run, dirs: dict[str, Path], headcount: Path, work: Path) -> dict:
    folder = dirs[run.folder]
    truth = json.loads((folder / f"{run.scenario}.truth.json").read_text())
    config = tomllib.loads((folder / f"{run.scenario}.toml").read_text())
    run.edit(config)
    table(config, "appliance")["models_dir"] = str(REPO / "models")
    table(config, "appliance")["state_dir"] = str(work / "state")
    label = re.sub(r"\W+", "_", run.label).strip("_")
    path = work / f"{label}-{run.scenario}.toml"
    path.write_text(toml_dumps(config))
    began = time.monotonic()
    summary = analyze(headcount, folder / f"{run.scenario}.ts", path, run.start)
    episodes = run.truth(truth, config)
    results, false_events = match(episodes, summary["anomalies"])
    return {"label": run.label, "scenario": run.scenario, "note": run.note, "start": run.start,
            "duration_s": truth["duration_s"], "seconds": round(time.monotonic() - began, 1),
            "episodes": results, "events": summary["anomalies"], "false_events": false_events}


def by_type(results: list[dict]) -> dict:
    """Per label: episodes detected, time to event, false events."""
    out = {}
    for r in results:
        times = [e["time_to_event_s"] for e in r["episodes"] if e["time_to_event_s"] is not None]
        out[r["label"]] = {
            "scenario": r["scenario"], "episodes": len(r["episodes"]),
            "detected": sum(e["detected"] for e in r["episodes"]),
            "detection_rate": sum(e["detected"] for e in r["episodes"]) / len(r["episodes"]) if r["episodes"] else None,
            "time_to_event_mean_s": round(statistics.fmean(times), 2) if times else None,
            "time_to_event_max_s": max(times) if times else None,
            "false_events": len(r["false_events"]),
        }
    return out


# -------------------------------------------------------------- appliance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, timeout: float, ready: Callable[[], object]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        time.sleep(0.5)
    raise RuntimeError(f"{what} within {timeout:.0f} s")


class Group:
    """A child process in its own process group, stopped with all of its
    children (SIGTERM, then SIGKILL)."""

    def __init__(self, cmd: list[str], log: Path):
        self.log = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()


LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def api(port: int, path: str, token: str | None) -> tuple[int, object] | None:
    """GET on the appliance: status and the JSON body (None if not JSON);
    None if nothing answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with LOOPBACK.open(request, timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def appliance_config(work: Path, rtsp_port: int, api_port: int) -> Path:
    config = tomllib.loads((REPO / "config/demo.toml").read_text())
    table(config, "appliance")["models_dir"] = str(REPO / "models")
    table(config, "api")["bind"] = f"127.0.0.1:{api_port}"
    table(config, "analytics")["flush_secs"] = 5
    camera = table(config, "cameras", "campus")
    camera["url"] = f"rtsp://127.0.0.1:{rtsp_port}/vtest"
    camera["tamper"] = {"sensitivity": "medium", "stream_loss_secs": STREAM_LOSS_S}
    table(camera, "zones", "path")["loiter_minutes"] = 2.0
    table(config, "spaces", "campus")["schedule"] = {
        "timezone": "Europe/Berlin", **{d: "24h" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    path = work / "appliance.toml"
    path.write_text(toml_dumps(config))
    return path


def appliance_run(headcount: Path, media: Path, minutes: float, work: Path, say: Callable[[str], None]) -> dict:
    rtsp_port, api_port = free_port(), free_port()
    config = appliance_config(work, rtsp_port, api_port)
    state = work / "appliance-state"
    camera_cmd = [str(headcount), "camera", "--file", str(media / "vtest.ts"), "--port", str(rtsp_port),
                  "--mount", "/vtest"]
    groups: list[Group] = []

    def start_camera() -> Group:
        g = Group(camera_cmd, work / "camera.log")
        groups.append(g)
        wait_for("the RTSP server listens", 15, lambda: listening(rtsp_port))
        return g

    try:
        camera = start_camera()
        appliance = Group([str(headcount), "run", "--config", str(config), "--state-dir", str(state)],
                          work / "appliance.log")
        groups.append(appliance)
        wait_for("the appliance answers /livez", 60, lambda: (api(api_port, "/livez", None) or (0,))[0] == 200)
        token_file = state / "initial-admin-token"
        token = wait_for("the appliance writes its admin token", 10,
                         lambda: token_file.exists() and token_file.read_text().strip())

        def get(path: str):
            if appliance.proc.poll() is not None:
                raise RuntimeError(f"the appliance exited with {appliance.proc.returncode} (log: {appliance.log.name})")
            answer = api(api_port, path, token)
            if answer is None or answer[0] != 200:
                raise RuntimeError(f"GET {path}: {answer}")
            return answer[1]

        def frames() -> int:
            return sum(c.get("frames_analysed", 0) for c in get("/api/v1/health")["cameras"])

        wait_for("the first analysed frame", 60, lambda: frames() > 0)
        began = time.time()
        end = began + minutes * 60
        while (left := end - time.time()) > 0:
            time.sleep(min(60.0, left))
            say(f"  appliance: {(time.time() - began) / 60:.1f} of {minutes:g} min, {frames()} frames analysed, "
                f"{len(get('/api/v1/anomalies?state=all&limit=1000')['anomalies'])} anomalies")
        events = get("/api/v1/anomalies?state=all&limit=1000")["anomalies"]
        analysed = frames()
        history = get("/api/v1/occupancy/history?zone=campus.path&bucket=1h")
        peak = max((b.get("max_occupancy") or 0 for b in history.get("buckets", [])), default=None)
        capacity = tomllib.loads(config.read_text())["cameras"]["campus"]["zones"]["path"].get("capacity")

        # Stream loss: the camera server gone for OUTAGE_S.
        camera.stop()
        killed = time.time()
        say(f"  camera server stopped for {OUTAGE_S} s")
        known = {e["id"] for e in events}

        def loss():
            return next((e for e in get("/api/v1/anomalies?state=all&limit=1000")["anomalies"]
                         if e["type"] == "stream_loss" and e["id"] not in known), None)

        seen, event = None, None
        while time.time() < killed + OUTAGE_S:
            if event is None and (event := loss()):
                seen = time.time()
            time.sleep(0.5)
        camera = start_camera()
        restarted = time.time()
        if event is None:
            try:
                event = wait_for("stream_loss", 60, loss)
                seen = time.time()
            except RuntimeError:
                pass
        ended = None
        if event is not None:
            try:
                ended = wait_for("the stream_loss event ends", 90, lambda: next(
                    (e for e in get("/api/v1/anomalies?state=all&limit=1000")["anomalies"]
                     if e["id"] == event["id"] and e.get("ended_ms") is not None), None))
            except RuntimeError:
                pass
        others = [e for e in get("/api/v1/anomalies?state=all&limit=1000")["anomalies"]
                  if e["id"] not in known and (event is None or e["id"] != event["id"])]
        return {
            "minutes": minutes, "frames_analysed": analysed, "false_events": len(events), "events": events,
            "zone_peak": peak, "zone_capacity": capacity,
            "stream_loss": {
                "outage_s": OUTAGE_S, "stream_loss_secs": STREAM_LOSS_S, "raised": event is not None,
                "start_after_kill_s": round(event["started_ms"] / 1000 - killed, 1) if event else None,
                "seen_after_kill_s": round(seen - killed, 1) if seen else None,
                "end_after_restart_s": round(ended["ended_ms"] / 1000 - restarted, 1) if ended else None,
                "other_events": others,
            },
        }
    finally:
        for g in reversed(groups):
            g.stop()


# ------------------------------------------------------------------ bench


def bench_tamper(headcount: Path, media: Path) -> dict | None:
    cmd = [str(headcount.with_name("headcount-bench")), "tamper", "--input", str(media / "vtest.avi"), "--width", "640"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and re.search(r"unrecognized subcommand|invalid subcommand", done.stderr):
        return None
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        sys.exit(f"error: headcount-bench tamper's last line is not JSON: {lines[-1:]}")


def per_frame_ms(bench: dict) -> float | None:
    """The mean cost per frame in bench-tamper's JSON (mean_us), or under a
    millisecond name."""
    if isinstance(bench.get("mean_us"), (int, float)):
        return bench["mean_us"] / 1000
    for key in ("mean_ms", "per_frame_ms", "ms_per_frame"):
        if isinstance(bench.get(key), (int, float)):
            return float(bench[key])
    return None


# ------------------------------------------------------------------ report


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def describe(event: dict) -> str:
    start = event.get("start_s", event.get("started_ms"))
    return f"{event['type']} on {event.get('subject_type', '?')} {event['subject']} from {start}: " \
           f"{event.get('explanation', '')}"


def print_report(report: dict) -> None:
    rows = report["by_type"]
    if rows:
        print(f"{'anomaly':22} {'scenario':19} {'detected':>9} {'to event mean':>14} {'max':>7} {'false':>6}")
        for label, r in rows.items():
            detected = f"{r['detected']}/{r['episodes']}" if r["episodes"] else "-"
            print(f"{label:22} {r['scenario']:19} {detected:>9} {fmt(r['time_to_event_mean_s'], ' s'):>14} "
                  f"{fmt(r['time_to_event_max_s'], ' s'):>7} {r['false_events']:>6}")
        for r in report["scenarios"]:
            extra = f", {r['note']}" if r["note"] else ""
            print(f"  {r['label']} on {r['scenario']} ({r['duration_s']:.0f} s video, analysed in "
                  f"{r['seconds']:.0f} s{extra}):")
            for e in r["episodes"]:
                how = f"event after {e['time_to_event_s']} s" if e["time_to_event_s"] is not None else \
                    "held by the previous event" if e["held"] else "MISSED"
                print(f"    onset {e['onset_s']} s: {how}")
            for e in r["false_events"]:
                print(f"    false event: {describe(e)}")
        episodes = sum(r["episodes"] for r in rows.values())
        detected = sum(r["detected"] for r in rows.values())
        false = sum(r["false_events"] for r in rows.values())
        print(f"total: {detected}/{episodes} episodes detected, {false} false events in the scenario runs")
    run = report.get("appliance")
    if run:
        print(f"\nfalse events over {run['minutes']:g} min of vtest: {run['false_events']} (target 0; "
              f"{run['frames_analysed']} frames analysed; zone campus.path peak {fmt(run['zone_peak'])}, "
              f"capacity {fmt(run['zone_capacity'])})")
        for e in run["events"]:
            print(f"  {describe(e)}")
        s = run["stream_loss"]
        if s["raised"]:
            print(f"stream loss (server killed for {s['outage_s']} s, stream_loss_secs = {s['stream_loss_secs']}): "
                  f"event starts {fmt(s['start_after_kill_s'], ' s')} after the kill (seen in the API after "
                  f"{fmt(s['seen_after_kill_s'], ' s')}), ends {fmt(s['end_after_restart_s'], ' s')} after the restart")
        else:
            print(f"stream loss (server killed for {s['outage_s']} s): NO stream_loss event")
        for e in s["other_events"]:
            print(f"  also during the outage: {describe(e)}")
    elif "appliance" in report:
        print("\nappliance run skipped (--minutes 0)")
    bench = report.get("bench_tamper")
    if bench is None:
        print("headcount-bench tamper: not available")
    else:
        ms = per_frame_ms(bench)
        verdict = "" if ms is None else f" (target < {TAMPER_TARGET_MS:g} ms: {'PASS' if ms < TAMPER_TARGET_MS else 'MISS'})"
        size = f"{bench['width']}x{bench['height']}" if "width" in bench and "height" in bench else "640 wide"
        p99 = f", p99 {bench['p99_us'] / 1000:.3f} ms" if isinstance(bench.get("p99_us"), (int, float)) else ""
        shown = "-" if ms is None else f"{ms:.3f} ms"
        print(f"tamper cost per frame at {size}: mean {shown}{p99}{verdict}; "
              f"readings on normal vtest: {bench.get('readings', '-')}  {json.dumps(bench)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=Path, required=True, help="scripts/scenarios.py's output")
    parser.add_argument("--tamper", type=Path, required=True, help="scripts/tamper_scenarios.py's output")
    parser.add_argument("--media", type=Path, required=True, help="folder with vtest.avi and vtest.ts")
    parser.add_argument("--headcount", type=Path, required=True, help="the headcount binary")
    parser.add_argument("--minutes", type=float, default=10, help="normal vtest through the appliance (0: skip)")
    parser.add_argument("--only", nargs="+", metavar="LABEL", choices=[r.label.split()[0] for r in RUNS],
                        help="scenario runs of these anomaly types only")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    headcount = args.headcount.resolve()
    dirs = {"scenarios": args.scenarios, "tamper": args.tamper}
    runs = [r for r in RUNS if not args.only or r.label.split()[0] in args.only]
    missing = [f"{dirs[r.folder] / r.scenario}.{ext}" for r in runs for ext in ("ts", "toml", "truth.json")
               if not (dirs[r.folder] / f"{r.scenario}.{ext}").exists()]
    if missing:
        sys.exit(f"error: missing {', '.join(missing)} (scripts/setup.sh makes them)")
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else \
        (lambda text: print(text, flush=True))
    with tempfile.TemporaryDirectory(prefix="eval-anomalies-") as tmp:
        work = Path(tmp)
        scenarios = []
        for run in runs:
            say(f"analyze: {run.label} on {run.scenario}")
            scenarios.append(evaluate(run, dirs, headcount, work))
        report = {"scenarios": scenarios, "by_type": by_type(scenarios)}
        if args.minutes > 0:
            say(f"appliance: {args.minutes:g} min of vtest over RTSP")
            try:
                report["appliance"] = appliance_run(headcount, args.media, args.minutes, work, say)
            except RuntimeError as e:
                logs = "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-2000:]}"
                               for p in (work / "appliance.log", work / "camera.log") if p.exists())
                sys.exit(f"error: appliance run: {e}{logs}")
        else:
            report["appliance"] = None
        report["bench_tamper"] = bench_tamper(headcount, args.media)
    if args.json:
        print(json.dumps(report))
    else:
        print()
        print_report(report)


if __name__ == "__main__":
    main()
