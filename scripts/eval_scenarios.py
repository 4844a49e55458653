"""Counting accuracy of headcount on the synthetic scenarios of
scripts/scenarios.py, against their exact ground truth.

For each scenario in --dir (NAME.ts, NAME.toml, NAME.truth.json) it runs
`HEADCOUNT analyze --input NAME.ts --config NAME.toml` in that folder and reads
its JSON lines: one per analysed frame (zones: smoothed occupancy; lines:
crossing totals so far; spaces: space occupancy), then a summary line. Figures:

  crossing error     sum |counted - truth| / sum truth, over every line and
                     direction of every scenario
  direction errors   crossings counted the wrong way, on the scenarios where
                     people cross one at a time: per line
                     min(extra in, missing out) + min(extra out, missing in)
  occupancy MAE      mean over analysed frames of |zone count - truth|, each
                     frame compared with the truth frame at its time
  space MAE          the same for each space, against the sum of its zones'
                     truth, or for a space of entrances only, against the
                     true entries minus exits so far (never below zero)
  dwell error        |median visit counted - median visit truth| / median truth,
                     per zone and scenario

Prints a table per scenario, then the totals against their targets (PASS or
MISS); --json prints all of it as one JSON object instead. Exits 0 whatever
the figures (they are measurements, not a test); 1 when analyze fails.

Usage: eval_scenarios.py --dir OUTDIR --headcount target/release/headcount [--only NAME ...] [--json]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

TARGETS = {"crossing_error_pct": 3.0, "direction_errors": 0, "occupancy_mae": 0.3, "dwell_error_pct": 10.0}


def analyze(headcount: Path, folder: Path, name: str) -> tuple[list[dict], dict]:
    """analyze's per-frame records and its summary."""
    cmd = [str(headcount), "analyze", "--input", f"{name}.ts", "--config", f"{name}.toml"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} (in {folder}) exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return parse(done.stdout)


def parse(stdout: str) -> tuple[list[dict], dict]:
    frames, summary = [], {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "summary" in record:
            summary = record["summary"]
        else:
            frames.append(record)
    if not frames:
        sys.exit("error: analyze printed no frames")
    return frames, summary


def truth_frame(record: dict, truth: dict, clock_ms: float) -> int:
    return min(max(round((record["timestamp_ms"] - clock_ms) * truth["fps"] / 1000), 0), truth["frames"] - 1)


def stream_clock(frames: list[dict], truth: dict) -> float:
    """Where frame 0 lies on analyze's clock: the demuxer's time stamps start
    at first_frame_ms, unless analyze counts from the first frame."""
    first = truth.get("first_frame_ms", 0)
    return first if frames[0]["timestamp_ms"] >= first else 0


def mae(frames: list[dict], truth: dict, clock_ms: float, counted, expected) -> float:
    """Mean |counted(record) - expected(truth frame)| over the analysed frames."""
    return statistics.fmean(abs(counted(r) - expected(truth_frame(r, truth, clock_ms))) for r in frames)


def direction_errors(counted: dict, truth: dict) -> int:
    c_in, c_out, t_in, t_out = counted["in"], counted["out"], truth["in"], truth["out"]
    return (min(max(0, c_in - t_in), max(0, t_out - c_out))
            + min(max(0, c_out - t_out), max(0, t_in - c_in)))


def entrance_count(truth: dict, entrances: list[str]) -> list[int]:
    """True entries minus exits over the entrances up to each frame, never below zero."""
    steps = sorted((e["t"], 1 if e["direction"] == "in" else -1)
                   for e in truth["crossing_events"] if e["line"] in entrances)
    counts, count, i = [], 0, 0
    for k in range(truth["frames"]):
        while i < len(steps) and steps[i][0] <= k / truth["fps"]:
            count = max(0, count + steps[i][1])
            i += 1
        counts.append(count)
    return counts


def evaluate(folder: Path, headcount: Path, name: str) -> dict:
    truth = json.loads((folder / f"{name}.truth.json").read_text())
    config = tomllib.loads((folder / f"{name}.toml").read_text())
    frames, summary = analyze(headcount, folder, name)
    clock = stream_clock(frames, truth)
    counted_lines = summary.get("lines") or frames[-1].get("lines", {})
    lines = {}
    for line, expected in truth["crossings"].items():
        counted = {d: counted_lines.get(line, {}).get(d, 0) for d in ("in", "out")}
        lines[line] = {"truth": expected, "counted": counted,
                       "abs_error": sum(abs(counted[d] - expected[d]) for d in ("in", "out")),
                       "direction_errors": direction_errors(counted, expected) if truth["single_crossings"] else None}
    zones = {}
    for zone, occupancy in truth["occupancy"].items():
        visits = truth["dwell"][zone]
        median = summary.get("zones", {}).get(zone, {}).get("dwell_median_s")
        expected_median = statistics.median(visits) if visits else None
        zones[zone] = {
            "occupancy_mae": mae(frames, truth, clock, lambda r: r.get("zones", {}).get(zone, 0),
                                 lambda k: occupancy[k][1]),
            "dwell_median_s": median, "truth_dwell_median_s": expected_median,
            # No median counted where there were visits: as wrong as can be.
            "dwell_error_pct": None if expected_median is None else
            100.0 if median is None else 100 * abs(median - expected_median) / expected_median,
        }
    spaces = {}
    for space, spec in config.get("spaces", {}).items():
        if spec.get("zones"):
            members = [truth["occupancy"][z] for z in spec["zones"] if z in truth["occupancy"]]
            expected = [sum(m[k][1] for m in members) for k in range(truth["frames"])]
        else:
            expected = entrance_count(truth, spec.get("entrances", []))
        spaces[space] = {"occupancy_mae": mae(frames, truth, clock, lambda r: r.get("spaces", {}).get(space, 0),
                                              lambda k: expected[k])}
    return {"duration_s": truth["duration_s"], "analysed_frames": len(frames),
            "single_crossings": truth["single_crossings"], "lines": lines, "zones": zones, "spaces": spaces}


def totals(results: dict) -> dict:
    lines = [l for r in results.values() for l in r["lines"].values()]
    truth_sum = sum(l["truth"]["in"] + l["truth"]["out"] for l in lines)
    frames = sum(r["analysed_frames"] for r in results.values())

    def pooled(kind: str) -> float | None:
        """Frame-weighted mean of a per-scenario MAE over every zone or space."""
        parts = [(v["occupancy_mae"], r["analysed_frames"]) for r in results.values() for v in r[kind].values()]
        return sum(m * n for m, n in parts) / sum(n for _, n in parts) if parts else None

    dwell = [z["dwell_error_pct"] for r in results.values() for z in r["zones"].values()
             if z["dwell_error_pct"] is not None]
    return {
        "crossing_error_pct": 100 * sum(l["abs_error"] for l in lines) / truth_sum if truth_sum else 0.0,
        "direction_errors": sum(l["direction_errors"] for l in lines if l["direction_errors"] is not None),
        "occupancy_mae": pooled("zones"),
        "space_occupancy_mae": pooled("spaces"),
        "dwell_error_pct": max(dwell) if dwell else None,
        "analysed_frames": frames,
    }


def verdict(key: str, value) -> str:
    if value is None:
        return ""
    return "PASS" if value <= TARGETS[key] else "MISS"


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def print_report(results: dict, total: dict) -> None:
    for name, r in results.items():
        print(f"{name} ({r['duration_s']:.0f} s, {r['analysed_frames']} frames analysed)")
        for line, l in r["lines"].items():
            t, c = l["truth"], l["counted"]
            wrong = "" if l["direction_errors"] is None else \
                f", direction errors {l['direction_errors']} {verdict('direction_errors', l['direction_errors'])}"
            print(f"  {line:16} in {c['in']} (truth {t['in']})  out {c['out']} (truth {t['out']}){wrong}")
        for zone, z in r["zones"].items():
            print(f"  {zone:16} occupancy MAE {fmt(z['occupancy_mae'])} {verdict('occupancy_mae', z['occupancy_mae'])}"
                  f"  dwell median {fmt(z['dwell_median_s'], ' s')} (truth {fmt(z['truth_dwell_median_s'], ' s')},"
                  f" error {fmt(z['dwell_error_pct'], ' %')}) {verdict('dwell_error_pct', z['dwell_error_pct'])}")
        for space, s in r["spaces"].items():
            print(f"  space {space:10} occupancy MAE {fmt(s['occupancy_mae'])}")
    print(f"\ntotals over {len(results)} scenarios, {total['analysed_frames']} analysed frames")
    rows = [("crossing count error", "crossing_error_pct", " %", "<= 3 %"),
            ("direction errors", "direction_errors", "", "0"),
            ("occupancy MAE", "occupancy_mae", "", "<= 0.3"),
            ("dwell median error (max)", "dwell_error_pct", " %", "<= 10 %")]
    for label, key, unit, target in rows:
        print(f"  {label:26} {fmt(total[key], unit):>9}   target {target:8} {verdict(key, total[key])}")
    print(f"  {'space occupancy MAE':26} {fmt(total['space_occupancy_mae']):>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the scenarios, as written by scenarios.py --out")
    parser.add_argument("--headcount", type=Path, required=True, help="the headcount binary")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    names = args.only or sorted(p.name.removesuffix(".truth.json") for p in args.dir.glob("*.truth.json"))
    missing = [n for n in names if not (args.dir / f"{n}.truth.json").exists()]
    if not names or missing:
        what = f"scenario {', '.join(missing)}" if missing else "scenarios"
        sys.exit(f"error: no {what} in {args.dir} (scripts/scenarios.py --out {args.dir} makes them)")
    headcount = args.headcount.resolve()
    results = {name: evaluate(args.dir, headcount, name) for name in names}
    total = totals(results)
    if args.json:
        print(json.dumps({"scenarios": results, "totals": total, "targets": TARGETS}))
    else:
        print_report(results, total)


if __name__ == "__main__":
    main()
