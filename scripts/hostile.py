#!/usr/bin/env python3
"""The API under hostile load, on loopback, with the standard library only.

Starts the release appliance (one `testsrc:ball` camera, the default
[api.connections] caps and deadlines) and measures the admin's
`GET /api/v1/occupancy` from 127.0.0.1, a new connection per request:
first without an attack (the reference), then while, from other loopback
addresses (127.0.0.0/8 is all loopback; each address is another client):

  * 2,000 idle connections (8 per address) are held open: a connection the
    server closes is opened again at once (after 0.5 s if refused with 503);
  * 200 slow-body logins (one per address): `POST /api/v1/login` announcing
    4,000 bytes and sending one a second, again whenever cut off (after
    0.5 s if refused);
  * a login storm: 256 clients (one per address) logging in with a valid
    token back to back, each login a new session (0.5 s after a refusal).

A LAN user (127.0.0.50, no reserve) polls `/livez` meanwhile. Prints the
answered share and p50/p99 latency of each, what became of the attack, and
the appliance's open files. Attackers run in their own processes, so that
their work does not delay the measuring client's.

  scripts/hostile.py --binary target/release/headcount [--seconds 20]
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, source, method, path, token=None, body=b"", timeout=2.0):
    """One request on a new connection: (status or None, seconds)."""
    started = time.monotonic()
    try:
        with socket.socket() as s:
            s.settimeout(timeout)
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            auth = f"Authorization: Bearer {token}\r\n" if token else ""
            head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n")
            s.sendall(head.encode() + body)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if time.monotonic() - started > timeout:
                    raise TimeoutError
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
        return status, time.monotonic() - started
    except (OSError, TimeoutError, ValueError, IndexError):
        return None, time.monotonic() - started


def poll(port, source, path, token, rate, stop, results):
    """Requests at `rate` a second until `stop`: (status, seconds) each."""
    every = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        results.append(request(port, source, "GET", path, token))
        next_at += every
        time.sleep(max(0.0, next_at - time.monotonic()))


def summary(results):
    answered = [t for status, t in results if status == 200]
    n = len(results)
    if not answered:
        return f"answered 0 % (0/{n})"
    ms = sorted(t * 1000 for t in answered)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"answered {100 * len(answered) / n:.1f} % ({len(answered)}/{n}), "
            f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")


def addresses(second, count):
    """`count` loopback addresses 127.SECOND.x.y (y from 1 to 254)."""
    return [f"127.{second}.{n // 254}.{n % 254 + 1}" for n in range(count)]


def hold_idle(port, count, per_address, stop, report):
    """Keeps `count` idle connections open, reopening what the server closes."""
    sel = selectors.DefaultSelector()
    sources = addresses(1, (count + per_address - 1) // per_address)
    stats = {"opened": 0, "refused_503": 0, "closed_later": 0, "lifetimes": []}
    pending = []  # (time, source) to reopen

    def open_one(source):
        s = socket.socket()
        s.setblocking(False)
        s.bind((source, 0))
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_READ, [source, time.monotonic(), False])
        stats["opened"] += 1

    for i in range(count):
        open_one(sources[i // per_address])
    while not stop.is_set():
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            open_one(pending.pop(0)[1])
        for key, _ in sel.select(timeout=0.1):
            source, opened, refused = key.data
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if data:
                key.data[2] = data.startswith(b"HTTP/1.1 503")
                continue  # the close follows
            sel.unregister(key.fileobj)
            key.fileobj.close()
            if refused:
                stats["refused_503"] += 1
                pending.append((time.monotonic() + 0.5, source))
            else:
                stats["closed_later"] += 1
                stats["lifetimes"].append(time.monotonic() - opened)
                open_one(source)
    stats["open_at_end"] = len(sel.get_map())
    lifetimes = stats.pop("lifetimes")
    stats["held_s_median"] = round(statistics.median(lifetimes), 2) if lifetimes else None
    report.put(("idle", stats))


def slow_bodies(port, count, stop, report):
    """`count` logins that announce 4,000 bytes and send one a second."""
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "cut_off_408": 0, "refused_503": 0, "closed_silently": 0}
    head = (f"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{").encode()
    live = {}

    def open_one(source):
        s = socket.socket()
        s.settimeout(2)
        s.bind((source, 0))
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(head)
        except OSError:
            pass
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, source)
        live[s] = b""
        stats["opened"] += 1

    for source in addresses(9, count):
        open_one(source)
    last_drip = time.monotonic()
    pending = []  # (time, source) to reopen
    while not stop.is_set():
        while pending and pending[0][0] <= time.monotonic():
            open_one(pending.pop(0)[1])
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                live[s] += data
                continue
            answer = live.pop(s)
            stats["cut_off_408" if answer.startswith(b"HTTP/1.1 408") else
                  "refused_503" if answer.startswith(b"HTTP/1.1 503") else
                  "closed_silently"] += 1
            sel.unregister(s)
            s.close()
            if answer.startswith(b"HTTP/1.1 503"):
                pending.append((time.monotonic() + 0.5, key.data))
            else:
                open_one(key.data)
        if time.monotonic() - last_drip >= 1.0:
            last_drip = time.monotonic()
            for s in list(live):
                try:
                    s.send(b" ")
                except OSError:
                    pass
    report.put(("slow", stats))


def storm(port, count, token, stop, report):
    """`count` clients logging in back to back, each login a new session."""
    statuses = {}
    lock = threading.Lock()
    body = json.dumps({"token": token}).encode()

    def client(source):
        while not stop.is_set():
            status, _ = request(port, source, "POST", "/api/v1/login", body=body, timeout=5)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(a,)) for a in addresses(10, count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    named = {str(k) if k else "reset or failed": v for k, v in statuses.items()}
    report.put(("storm", dict(sorted(named.items()))))


def open_files(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def resident_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            kb = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
        return kb // 1024
    except (OSError, StopIteration, ValueError):
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(REPO / "target/release/headcount"))
    parser.add_argument("--seconds", type=float, default=20, help="each measurement (default 20)")
    parser.add_argument("--rate", type=float, default=10, help="admin requests a second (default 10)")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--storm", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the state directory and log")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.idle + args.slow + args.storm + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit(f"hostile: needs {wanted} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))

    work = Path(tempfile.mkdtemp(prefix="headcount-hostile-"))
    port = free_port()
    state = work / "state"
    (work / "headcount.toml").write_text(f"""[appliance]
site = "hostile"
state_dir = "{state}"
models_dir = "{REPO / 'models'}"
[api]
bind = "127.0.0.1:{port}"
# The storm's token and the admin's polling far past a person's rate limit:
# the storm reaches the session store instead of stopping at 429.
token_burst = 1000000
token_rate = 100000.0
[security]
syslog = "none"
[cameras.c]
url = "testsrc:ball"
analysis_fps = 1
""")
    log = open(work / "appliance.log", "w")
    appliance = subprocess.Popen([args.binary, "run", "--config", str(work / "headcount.toml")],
                                 stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while request(port, "127.0.0.1", "GET", "/livez")[0] != 200:
            if time.monotonic() > deadline or appliance.poll() is not None:
                args.keep = True
                sys.exit(f"hostile: the appliance did not start; see {work / 'appliance.log'}")
            time.sleep(0.2)
        admin = (state / "initial-admin-token").read_text().strip()
        made = subprocess.run([args.binary, "tokens", "create", "--name", "storm", "--role",
                               "facilities", "--state-dir", str(state)],
                              capture_output=True, text=True, check=True)
        storm_token = next(w for w in made.stdout.split() if w.startswith("hc_"))
        version = subprocess.run([args.binary, "--version"], capture_output=True,
                                 text=True).stdout.strip()

        def measure():
            stop = threading.Event()
            admin_results, user_results = [], []
            threads = [
                threading.Thread(target=poll, args=(port, "127.0.0.1", "/api/v1/occupancy",
                                                    admin, args.rate, stop, admin_results)),
                threading.Thread(target=poll, args=(port, "127.0.0.50", "/livez", None, 2,
                                                    stop, user_results)),
            ]
            for t in threads:
                t.start()
            files = memory = 0
            ends = time.monotonic() + args.seconds
            while time.monotonic() < ends:
                files = max(files, open_files(appliance.pid))
                memory = max(memory, resident_mb(appliance.pid))
                time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join()
            return admin_results, user_results, f"open files at most {files}, RSS at most {memory} MB"

        print(f"{version}, loopback, default [api.connections] caps and deadlines; "
              f"{args.seconds:.0f} s each, admin {args.rate:.0f} requests/s on new connections")
        admin_ref, user_ref, files_ref = measure()

        stop = mp.Event()
        report = mp.Queue()
        attackers = [
            mp.Process(target=hold_idle, args=(port, args.idle, 8, stop, report)),
            mp.Process(target=slow_bodies, args=(port, args.slow, stop, report)),
            mp.Process(target=storm, args=(port, args.storm, storm_token, stop, report)),
        ]
        for p in attackers:
            p.start()
        time.sleep(3)  # the attack takes hold
        admin_att, user_att, files_att = measure()
        stop.set()
        outcomes = dict(report.get(timeout=60) for _ in attackers)
        for p in attackers:
            p.join()

        print(f"reference, no attack:  admin {summary(admin_ref)}")
        print(f"                       LAN user /livez {summary(user_ref)}; {files_ref}")
        print(f"under attack:          admin {summary(admin_att)}")
        print(f"                       LAN user /livez {summary(user_att)}; {files_att}")
        print(f"idle connections:      {json.dumps(outcomes['idle'])}")
        print(f"slow-body logins:      {json.dumps(outcomes['slow'])}")
        print(f"login storm (status: count): {json.dumps(outcomes['storm'])}")
        print(f"appliance still running: {'yes' if appliance.poll() is None else 'NO'}")
    finally:
        appliance.terminate()
        try:
            appliance.wait(timeout=15)
        except subprocess.TimeoutExpired:
            appliance.kill()
        if args.keep:
            print(f"state and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
