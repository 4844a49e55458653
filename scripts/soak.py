#!/usr/bin/env python3
"""Days of faults compressed into minutes, against the release appliance.

Four cameras serve vtest in a loop on loopback: two by the bundled server
(`headcount camera`, gst-rtsp-server), read over TCP and over UDP, and two by
VLC (an RTSP server this project did not write), read over UDP and with
`transport = "auto"` (VLC's RTSP server offers no interleaved TCP). The
appliance runs with a small ext4 loop device as its state directory (when root), an
MQTT broker (mosquitto) for its fleet and anomaly pushes, a webhook receiver,
and its clock under fault injection
(HEADCOUNT_FAULT_CLOCK_OFFSET_FILE=PATH: the appliance's time
moves, never the machine's).

First, SIGKILL at random moments of start-up (when the rollups, the WAL
checkpoint and the retention sweep run), --kills times in a row: the
database must stay intact and its committed samples unchanged. Then one
appliance run, faults in turn until the time is up:
  * camera cycles: one camera's server killed (SIGKILL, restarted after
    --down seconds) or frozen (SIGSTOP, SIGCONT after --down seconds);
    recovery is the time from the server's return until the camera analyses
    frames again; another camera that stops meanwhile is an interruption;
  * every --every cycles one appliance fault, in turn: the disk filled
    (until disk_nearly_full is raised, then --outage seconds) and freed, the
    clock stepped back 3 h and forward again, the state directory made
    read-only and writable again, the broker and the webhook receiver down
    for --outage seconds.

Counts lost are measured exactly: at the end of each appliance run (before a
SIGKILL, and at the end) every camera server is frozen, one flush passes, and
the frames the appliance says it analysed must equal the samples stored in
its minute buckets for that run (each analysed frame adds one sample to its
camera's zone). Buckets misplaced: minutes stored that the appliance's clock
never showed, and minutes it showed (with cameras streaming) left without a
row. Prints per fault kind: how often, recovered, time to recover, counts
lost; RSS and open files at start, after warm-up and at the end; RSS per
reconnect (a least-squares slope after warm-up).

  scripts/soak.py --binary target/release/headcount --media vtest.ts [--minutes 10]
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLUSH_SECS = 5
BACK_MS = 3 * 3600 * 1000


def parse_stamp(text):
    """Seconds of a log line's RFC 3339 time (colour codes stripped)."""
    import re
    from datetime import datetime
    clean = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return datetime.fromisoformat(clean.rstrip("Z")[:26]).timestamp()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resident_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """One camera's RTSP server process, which faults kill or freeze."""

    def __init__(self, name, command, user=None):
        self.name, self.command, self.user = name, command, user
        self.process = None
        self.start()

    def start(self):
        command = (["runuser", "-u", self.user, "--"] if self.user else []) + self.command
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)

    def signal(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        self.signal(signal.SIGKILL)
        self.process.wait()


class Webhook(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Webhook.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Soak:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="headcount-soak-", dir="/var/tmp"))
        self.work.chmod(0o755)
        self.state = self.work / "state"
        self.state.mkdir()
        self.root = os.geteuid() == 0
        if self.root:
            # A small ext4 of its own: it fills, and `chattr +i` makes its
            # files read-only even to root and to files already open.
            image = self.work / "state.img"
            subprocess.run(["truncate", "-s", f"{args.state_mb}M", str(image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-F", str(image)], check=True)
            subprocess.run(["mount", "-o", "loop", str(image), str(self.state)], check=True)
            self.state.chmod(0o700)
        self.offset = self.work / "clock-offset"
        self.offset.write_text("0")
        self.offsets = [(time.time(), 0)]  # (real time, offset ms) from then on
        media = self.work / "vtest.ts"
        shutil.copy(args.media, media)
        media.chmod(0o644)
        self.port = free_port()
        self.broker_port, self.hook_port = free_port(), free_port()
        self.servers, cameras = {}, []
        for name, kind, transport in [("bundled_tcp", "bundled", "tcp"), ("bundled_udp", "bundled", "udp"),
                                      ("vlc_udp", "vlc", "udp"), ("vlc_auto", "vlc", "auto")]:
            port = free_port()
            if kind == "bundled":
                command, user = [args.binary, "camera", "--file", str(media), "--port", str(port),
                                 "--mount", "/cam"], None
            else:
                # --input-repeat, not --loop: with --loop VLC ends the RTSP
                # stream each time the file wraps (every 78 s for vtest.ts).
                command = ["cvlc", "-I", "dummy", "--quiet", "--input-repeat=65535", str(media), "--sout",
                           f"#rtp{{sdp=rtsp://127.0.0.1:{port}/cam}}", "--sout-keep"]
                user = "nobody"  # VLC refuses to run as root
            self.servers[name] = Server(name, command, user if self.root else None)
            cameras.append(f"""[cameras.{name}]
url = "rtsp://127.0.0.1:{port}/cam"
transport = "{transport}"
analysis_fps = 2
[cameras.{name}.zones.all]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
""")
        (self.work / "mosquitto.conf").write_text(
            f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.broker = None
        self.start_broker()
        self.hook = None
        self.start_hook()
        self.config = self.work / "headcount.toml"
        self.config.write_text(f"""[appliance]
site = "soak"
state_dir = "{self.state}"
models_dir = "{REPO / 'models'}"
min_free_mb = 8
[api]
bind = "127.0.0.1:{self.port}"
token_burst = 100000
token_rate = 1000.0
[security]
syslog = "none"
[analytics]
flush_secs = {FLUSH_SECS}
[anomalies.webhook]
url = "http://127.0.0.1:{self.hook_port}/hook"
[mqtt]
broker = "mqtt://127.0.0.1:{self.broker_port}"
anomalies = true
""" + "".join(cameras))
        self.log = open(self.work / "appliance.log", "a")
        self.appliance = None
        self.token = None
        self.runs = []  # per appliance run: frames analysed vs samples stored
        self.results = {}  # fault kind -> list of dicts
        self.reconnect_rss = []  # (reconnects so far, RSS MB)

    # --- processes -------------------------------------------------------
    def start_broker(self):
        self.broker = subprocess.Popen(["mosquitto", "-c", str(self.work / "mosquitto.conf")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_hook(self):
        server = HTTPServer(("127.0.0.1", self.hook_port), Webhook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.hook = server

    def stop_hook(self):
        self.hook.shutdown()
        self.hook.server_close()

    def start_appliance(self):
        env = dict(os.environ, HEADCOUNT_FAULT_CLOCK_OFFSET_FILE=str(self.offset))
        self.appliance = subprocess.Popen([self.args.binary, "run", "--config", str(self.config)],
                                          stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.run_baseline = None
        deadline = time.monotonic() + 60
        while self.get("/livez", auth=False) is None:
            if time.monotonic() > deadline or self.appliance.poll() is not None:
                sys.exit(f"soak: the appliance did not start; see {self.work / 'appliance.log'}")
            time.sleep(0.2)
        if self.token is None:
            self.token = (self.state / "initial-admin-token").read_text().strip()
        self.run_baseline = self.samples_stored()

    def get(self, path, auth=True, timeout=5):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                body = answer.read()
                return json.loads(body) if auth else body
        except (OSError, ValueError):
            return None

    def health(self):
        answer = self.get("/api/v1/health")
        return {c["camera"]: c for c in answer["cameras"]} if answer else None

    # --- measures --------------------------------------------------------
    def database(self):
        return sqlite3.connect(f"file:{self.state / 'headcount.db'}?mode=ro", uri=True, timeout=10)

    def samples_stored(self):
        """Samples per camera in the zone minute buckets (one per analysed frame)."""
        with self.database() as db:
            rows = db.execute("SELECT camera, SUM(samples) FROM occupancy_minute "
                              "WHERE camera != 'archive' GROUP BY camera").fetchall()
        return dict(rows)

    def minutes_stored(self):
        with self.database() as db:
            return {start // 60000 for (start,) in db.execute(
                "SELECT DISTINCT bucket_start FROM occupancy_minute WHERE camera != 'archive'")}

    def seed_archive(self):
        """Minutes 8 to 30 days old of a camera no longer configured, with the
        rollup marks set back to them: the next start's maintenance rolls
        them up and sweeps them (the appliance is not running)."""
        now = int(time.time() * 1000) // 60000 * 60000
        first = now - 30 * 86400000
        rows = [("archive", f"zone{z}", first + m * 60000, 120, 120, 3)
                for z in range(8) for m in range(22 * 1440)]
        self.seeded = len(rows)
        with sqlite3.connect(self.state / "headcount.db", timeout=30) as db:
            db.executemany("INSERT OR REPLACE INTO occupancy_minute VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("UPDATE rollup_mark SET done_until = MIN(done_until, ?)", (first - first % 86400000,))
        return len(rows)

    def settle_and_count(self, label):
        """Freezes every server, lets one flush pass, and compares the frames
        analysed in this run with the samples stored for it: counts lost."""
        for s in self.servers.values():
            s.signal(signal.SIGSTOP)
        try:
            before = None
            for _ in range(60):
                time.sleep(FLUSH_SECS + 1)
                h = self.health()
                now = {c: v["frames_analysed"] for c, v in h.items()} if h else None
                if now is not None and now == before:
                    break
                before = now
            stored = self.samples_stored()
            lost = sum(max(0, analysed - (stored.get(c, 0) - self.run_baseline.get(c, 0)))
                       for c, analysed in before.items())
            extra = sum(max(0, (stored.get(c, 0) - self.run_baseline.get(c, 0)) - analysed)
                        for c, analysed in before.items())
            self.runs.append({"label": label, "analysed": sum(before.values()), "lost": lost, "extra": extra})
        finally:
            for s in self.servers.values():
                s.signal(signal.SIGCONT)
        self.wait_all_streaming(60)

    def wait_all_streaming(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.streaming(self.health()) == set(self.servers):
                return True
            time.sleep(0.25)
        return False

    def streaming(self, health):
        """Cameras streaming with a frame in the last 2 s."""
        if not health:
            return set()
        return {c for c, v in health.items() if v["state"] == "streaming"
                and v["last_frame_age_ms"] is not None and v["last_frame_age_ms"] < 2000}

    def record(self, kind, **fields):
        self.results.setdefault(kind, []).append(fields)

    def sample_memory(self):
        h = self.health() or {}
        reconnects = sum(v["reconnects"] for v in h.values())
        floor = getattr(self, "floor", float("inf"))
        self.reconnect_rss.append((reconnects, min(floor, resident_mb(self.appliance.pid))))

    # --- faults ----------------------------------------------------------
    def camera_cycle(self, n):
        name = list(self.servers)[n % len(self.servers)]
        how = "kill" if (n // len(self.servers)) % 2 == 0 else "freeze"
        server = self.servers[name]
        others = set(self.servers) - {name}
        before = self.health() or {}
        server.kill() if how == "kill" else server.signal(signal.SIGSTOP)
        # Another camera is interrupted when it reconnects or leaves
        # `streaming` meanwhile; its longest silence is noted too. An end of
        # stream is its own server's doing, so it is counted apart.
        seen, ended, gap = {}, set(), 0
        self.floor = float("inf")
        def watch(h):
            nonlocal gap
            # The cycle's lowest RSS: frames in flight come and go, a leak stays.
            self.floor = min(self.floor, resident_mb(self.appliance.pid))
            for c in others & set(h or {}):
                v = h[c]
                if v["state"] != "streaming" or v["reconnects"] > before.get(c, v)["reconnects"]:
                    seen.setdefault(c, set()).add(
                        f"{c} {v['state']} ({v.get('reason')}) after {v['reconnects']} reconnects")
                    if v.get("reason") == "the stream ended":
                        ended.add(c)
                gap = max(gap, v["last_frame_age_ms"] or 0)
        end = time.monotonic() + self.args.down
        while time.monotonic() < end:
            watch(self.health())
            time.sleep(0.25)
        server.start() if how == "kill" else server.signal(signal.SIGCONT)
        returned = time.monotonic()
        h0 = (self.health() or {}).get(name, {}).get("frames_analysed", 0)
        recovered = None
        while time.monotonic() - returned < 60:
            h = self.health()
            watch(h)
            if h and h[name]["frames_analysed"] > h0 and name in self.streaming(h):
                recovered = time.monotonic() - returned
                break
            time.sleep(0.1)
        self.record(f"camera {how} ({server.name})", recovered=recovered,
                    interrupted=len(set(seen) - ended), ended=len(ended), gap=gap,
                    detail=sorted(d for c in set(seen) - ended for d in seen[c]),
                    ended_detail=sorted(d for c in ended for d in seen[c]))
        self.sample_memory()

    def fill(self, filler, leave_mb):
        """Writes to `filler` until the state disk has `leave_mb` free (or none)."""
        with open(filler, "ab") as f:
            try:
                while True:
                    st = os.statvfs(self.state)
                    if st.f_bavail * st.f_frsize <= leave_mb << 20:
                        break
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass

    def disk_full(self):
        """The state disk nearly full (below min_free_mb) until the anomaly is
        raised (the disk is measured every minute), then full to the last
        byte for --outage seconds, then freed."""
        if not self.root:
            return self.record("disk full", skipped="needs root (a loop device)")
        filler = self.state / "filler"
        self.fill(filler, 4)
        nearly = time.monotonic()
        raised = None
        while time.monotonic() - nearly < 90 and raised is None:
            if "disk_nearly_full" in json.dumps(self.get("/api/v1/anomalies") or {}):
                raised = time.monotonic() - nearly
            time.sleep(1)
        self.fill(filler, 0)
        time.sleep(self.args.outage)
        filler.unlink()
        self.record("disk full", recovered=self.until_stored(), anomaly=raised)

    def read_only(self):
        """The database and its WAL made immutable (`chattr +i`: writes through
        open files fail too) for --outage seconds, then writable again."""
        if not self.root:
            return self.record("database read-only", skipped="needs root")
        files = [str(p) for p in self.state.glob("headcount.db*")]
        subprocess.run(["chattr", "+i", *files], check=True)
        time.sleep(self.args.outage)
        subprocess.run(["chattr", "-i", *files], check=True)
        self.record("database read-only", recovered=self.until_stored())

    def until_stored(self):
        """Seconds until new samples reach the database (None: not in 60 s)."""
        back = time.monotonic()
        before = sum(self.samples_stored().values())
        while time.monotonic() - back < 60:
            if sum(self.samples_stored().values()) > before:
                return time.monotonic() - back
            time.sleep(0.5)
        return None

    def clock_steps(self):
        for offset in (-BACK_MS, 0):
            self.offset.write_text(str(offset))
            self.offsets.append((time.time(), offset))
            time.sleep(self.args.outage)
        self.record("clock step back 3 h and forward 3 h", recovered=0.0 if self.wait_all_streaming(30) else None)

    def log_since(self, offset):
        with open(self.work / "appliance.log", "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def maintenance_time(self, mark, timeout=60):
        """Seconds from "running" to the end of the start-up sweep in the log
        after `mark` (None if it does not come)."""
        for _ in range(int(timeout / 0.2)):
            lines = [line for line in self.log_since(mark).splitlines()
                     if "headcount is running" in line or "retention sweep deleted" in line]
            if lines and "retention sweep deleted" in lines[-1]:
                return parse_stamp(lines[-1].split()[0]) - parse_stamp(lines[0].split()[0])
            time.sleep(0.2)
        return None

    def kill_in_maintenance(self):
        """SIGKILL during start-up maintenance (the rollups, the publication,
        the retention sweep and the audit checkpoint over a seeded archive,
        timed first without a kill), --kills times in a row: the database
        must stay intact and its committed samples unchanged."""
        self.settle_and_count("before SIGKILL")
        env = dict(os.environ, HEADCOUNT_FAULT_CLOCK_OFFSET_FILE=str(self.offset))
        started = time.monotonic()

        def restart(seed):
            self.appliance.send_signal(signal.SIGKILL)
            self.appliance.wait()
            if seed:
                self.seed_archive()
            mark = (self.work / "appliance.log").stat().st_size
            self.appliance = subprocess.Popen([self.args.binary, "run", "--config", str(self.config)],
                                              stdout=subprocess.DEVNULL, stderr=self.log, env=env)
            return mark

        took = self.maintenance_time(restart(seed=True)) or 0.5
        intact = kept = during = 0
        for _ in range(self.args.kills):
            stored = self.samples_stored()
            mark = restart(seed=True)
            # Killed at a random moment of maintenance, which follows "running".
            while "headcount is running" not in self.log_since(mark) and self.appliance.poll() is None:
                time.sleep(0.005)
            time.sleep(random.uniform(0, took))
            self.appliance.send_signal(signal.SIGKILL)
            self.appliance.wait()
            log = self.log_since(mark)
            during += "headcount is running" in log and "retention sweep deleted" not in log
            kept += self.samples_stored() == stored
            with self.database() as db:
                intact += db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        self.start_appliance()
        recovered = time.monotonic() - started if self.wait_all_streaming(60) else None
        self.record("SIGKILL during start-up maintenance", recovered=recovered, kills=self.args.kills,
                    during=during, intact=intact, kept=kept, seeded=self.seeded, took=took)

    def outage(self):
        self.broker.kill()
        self.broker.wait()
        self.stop_hook()
        before = Webhook.received
        time.sleep(self.args.outage)
        self.start_broker()
        self.start_hook()
        self.record("broker and webhook down", recovered=0.0 if self.wait_all_streaming(30) else None,
                    webhook_during=Webhook.received - before)

    # --- the whole run ---------------------------------------------------
    def warm_up(self):
        time.sleep(self.args.warmup)
        self.reconnect_rss = []
        self.floor = float("inf")
        self.sample_memory()
        return {"rss": resident_mb(self.appliance.pid), "files": open_files(self.appliance.pid),
                "cpu": cpu_seconds(self.appliance.pid), "at": time.monotonic()}

    def run(self):
        self.start_appliance()
        start = {"rss": resident_mb(self.appliance.pid), "files": open_files(self.appliance.pid)}
        if not self.wait_all_streaming(90):
            print("soak: not every camera streamed within 90 s", file=sys.stderr)
        self.warm_up()
        # SIGKILL first, so that the rest (RSS, files) is one appliance run.
        self.kill_in_maintenance()
        warm = self.warm_up()
        appliance_faults = [self.disk_full, self.clock_steps, self.read_only, self.outage]
        ends = time.monotonic() + self.args.minutes * 60
        n = 0
        while time.monotonic() < ends:
            self.camera_cycle(n)
            n += 1
            if n % self.args.every == 0:
                appliance_faults[(n // self.args.every - 1) % len(appliance_faults)]()
        self.settle_and_count("end")
        end = {"rss": resident_mb(self.appliance.pid), "files": open_files(self.appliance.pid),
               "cpu": cpu_seconds(self.appliance.pid), "at": time.monotonic()}
        self.report(start, warm, end, self.health())

    def misplaced(self):
        """Minutes stored that the clock never showed, and whole minutes it
        showed (cameras streaming: one at a time is faulted) with no row."""
        shown, expected = set(), set()
        marks = self.offsets + [(time.time(), None)]
        for (t0, offset), (t1, _) in zip(marks, marks[1:]):
            first, last = int((t0 * 1000 + offset) // 60000), int((t1 * 1000 + offset) // 60000)
            shown |= set(range(first, last + 1))
            expected |= set(range(first + 1, last))
        stored = self.minutes_stored()
        return sorted(stored - shown), sorted(expected - stored)

    def rollups_disagreeing(self):
        """15-minute rollups (below their mark) whose samples differ from
        the sum of their minutes: counts a clock step kept out of them."""
        with self.database() as db:
            mark = db.execute("SELECT done_until FROM rollup_mark WHERE width_ms = 900000").fetchone()
            if not mark:
                return 0, 0
            rows = db.execute(
                """SELECT r.samples, (SELECT COALESCE(SUM(m.samples), 0) FROM occupancy_minute m
                       WHERE m.camera = r.camera AND m.zone = r.zone
                       AND m.bucket_start >= r.bucket_start AND m.bucket_start < r.bucket_start + 900000)
                   FROM occupancy_rollup r WHERE r.width_ms = 900000 AND r.bucket_start + 900000 <= ?1
                   AND r.camera != 'archive'""",
                (mark[0],)).fetchall()
        return sum(1 for rolled, minutes in rows if rolled != minutes), len(rows)

    def report(self, start, warm, end, health):
        a = self.args
        version = subprocess.run([a.binary, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{version}; soak of {a.minutes:g} min after {a.warmup:g} s warm-up, 4 cameras at 2 fps "
              f"(bundled server TCP and UDP, VLC UDP and auto), faults {a.down:g} s down")
        print(f"{'fault':48} {'n':>4} {'recovered':>10} {'median s':>9} {'max s':>7} {'others stopped':>15}")
        for kind, rows in self.results.items():
            if rows and "skipped" in rows[0]:
                print(f"{kind:48} skipped: {rows[0]['skipped']}")
                continue
            times = [r["recovered"] for r in rows if r.get("recovered") is not None]
            stopped = sum(r.get("interrupted", 0) for r in rows)
            extra = ""
            if "anomaly" in rows[0]:
                raised = [r["anomaly"] for r in rows if r["anomaly"] is not None]
                extra = (f"  disk_nearly_full raised {len(raised)}/{len(rows)}"
                         + (f", {max(raised):.0f} s at most after the disk filled" if raised else ""))
            if "kills" in rows[0]:
                r = rows[0]
                took = f"{r['took']:.1f} s" if r["took"] is not None else "?"
                extra = (f"  {r['kills']} restarts killed, {r['during']} of them before the sweep ended "
                         f"(maintenance over {r['seeded']} archived minutes: {took} uninterrupted); "
                         f"database intact {r['intact']}/{r['kills']}, committed samples unchanged "
                         f"{r['kept']}/{r['kills']}")
            print(f"{kind:48} {len(rows):>4} {len(times):>5}/{len(rows):<4} "
                  f"{statistics.median(times) if times else float('nan'):>9.2f} "
                  f"{max(times) if times else float('nan'):>7.2f} {stopped:>15}{extra}")
        cycles = [r for k, rows in self.results.items() if k.startswith("camera") for r in rows]
        times = [r["recovered"] for r in cycles if r["recovered"] is not None]
        if cycles:
            print(f"camera fault cycles: recovered {len(times)}/{len(cycles)}, median "
                  f"{statistics.median(times):.2f} s, max {max(times):.2f} s; other cameras interrupted: "
                  f"{sum(r['interrupted'] for r in cycles)} (longest frame gap of another camera "
                  f"{max(r['gap'] for r in cycles) / 1000:.1f} s); another camera's own server "
                  f"ended its stream meanwhile: {sum(r['ended'] for r in cycles)}")
            for r in cycles:
                for d in r["detail"]:
                    print(f"  interrupted: {d}")
                for d in r["ended_detail"]:
                    print(f"  its server ended the stream: {d}")
        lost = sum(r["lost"] for r in self.runs)
        print("counts lost (frames analysed minus samples stored, per appliance run): "
              + ", ".join(f"{r['label']} {r['lost']} of {r['analysed']}" for r in self.runs)
              + f"; total {lost}")
        wrong, missing = self.misplaced()
        print(f"buckets misplaced after clock steps: {len(wrong)} stored in minutes the clock never "
              f"showed, {len(missing)} shown minutes without a row"
              + (f" (minutes since the epoch: {wrong[:5]} {missing[:5]})" if wrong or missing else ""))
        disagreeing, rollups = self.rollups_disagreeing()
        print(f"15-minute rollups that disagree with their minutes: {disagreeing} of {rollups}")
        # RSS per cycle is the cycle's lowest (frames in flight make it swing
        # by tens of MB); growth compares the medians of the first and last
        # quarters of the cycles, the slope is Theil-Sen's (robust to swings).
        points = self.reconnect_rss
        reconnects = points[-1][0] - points[0][0] if points else 0
        if len(points) >= 8:
            step = max(1, len(points) // 10)
            print("RSS (lowest per cycle) by reconnects: "
                  + ", ".join(f"{r}: {m:.0f} MB" for r, m in points[::step] + points[-1:]))
            quarter = len(points) // 4
            first = statistics.median(m for _, m in points[:quarter])
            last = statistics.median(m for _, m in points[-quarter:])
            slopes = [(m2 - m1) / (r2 - r1) for i, (r1, m1) in enumerate(points)
                      for r2, m2 in points[i + 1:] if r2 > r1]
            print(f"RSS after warm-up: {first:.0f} MB (median of the first quarter of the cycles) -> "
                  f"{last:.0f} MB (last quarter), {100 * (last - first) / first:+.1f} % over "
                  f"{reconnects} reconnects; slope {statistics.median(slopes) * 1024:.0f} KB per "
                  f"reconnect (Theil-Sen)")
        print(f"RSS as sampled: start {start['rss']:.0f} MB; after the SIGKILLs and warm-up "
              f"{warm['rss']:.0f} MB, end {end['rss']:.0f} MB")
        cpu = 100 * (end["cpu"] - warm["cpu"]) / (end["at"] - warm["at"])
        print(f"open files: start {start['files']}, after warm-up {warm['files']}, end {end['files']}; "
              f"CPU {cpu:.0f} % of a core")
        audit = self.get("/api/v1/health") or {}
        print(f"audit and database: {json.dumps(audit.get('storage', {}))}")
        streaming = self.streaming(health)
        print(f"cameras streaming at the end: {len(streaming)}/{len(self.servers)}")
        print(f"webhook notices received: {Webhook.received}")

    def close(self):
        if self.appliance and self.appliance.poll() is None:
            self.appliance.terminate()
            try:
                self.appliance.wait(20)
            except subprocess.TimeoutExpired:
                self.appliance.kill()
        for s in self.servers.values():
            s.signal(signal.SIGCONT)
            s.kill()
        if self.broker:
            self.broker.kill()
        if self.root:
            subprocess.run(["chattr", "-R", "-i", str(self.state)], check=False,
                           stderr=subprocess.DEVNULL)
            subprocess.run(["umount", "-l", str(self.state)], check=False)
        if self.args.keep:
            print(f"kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--media", required=True, help="an MPEG-TS H.264 video (vtest.ts)")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before RSS is taken as the base")
    parser.add_argument("--down", type=float, default=3, help="seconds a camera server stays down")
    parser.add_argument("--outage", type=float, default=20, help="seconds a disk, clock or broker fault lasts")
    parser.add_argument("--every", type=int, default=8, help="camera cycles between appliance faults")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs during start-up maintenance")
    parser.add_argument("--state-mb", type=int, default=128, help="the state directory's disk (ext4 on a loop device)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and log")
    args = parser.parse_args()
    soak = Soak(args)
    try:
        soak.run()
    finally:
        soak.close()


if __name__ == "__main__":
    main()
