//! `headcount-bench patterns`: the unusual-pattern and counter-drift
//! detectors evaluated on a generated multi-week site with planted
//! deviations, through the appliance's own code: minute buckets written to
//! a real SQLite file and rolled up day by day as the live writer does,
//! each finished hour judged by `UnusualWatch` against that file, and each
//! day's closing checked by the live `Monitor`.
//!
//! The site: spaces of different sizes, counted at their entrances only
//! (entries minus exits, never below zero, reset at 03:00), open 07:00-20:00
//! every day, busier on weekdays with a morning and an evening peak. Each
//! visitor stays 5-60 minutes and leaves by 20:05. On a normal day every
//! door misses a share of crossings both ways (`--miss-rate`).
//!
//! Planted, from the fourth week on (the baseline needs three), per space
//! and week: two deviations of two hours on different days, in turn twice
//! and three times the usual arrivals (an event) and none (a door locked),
//! and one faulty day, on which one door misses `--fault-miss-rate` of its
//! exits. Printed: the share of planted deviations each detector found, and
//! its alarms on hours and days where nothing was planted, per week; the
//! drift rule, and presence after hours (which in a space counted at its
//! doors only needs more than the drift tolerance), with fixed tolerances
//! and with the default floor of 2 grown with the day's entries. Asserts
//! nothing.

use crate::generate::XorShift;
use headcount_domain::analytics::{
    Deltas, EntranceTally, FlowDelta, OccupancyDelta, Scope, Signals, SpaceSignal,
};
use headcount_domain::anomaly::monitor::{Change, Monitor, COUNT_GAP_MS};
use headcount_domain::anomaly::unusual::{UnusualWatch, JUDGE_AFTER_MS};
use headcount_domain::anomaly::{Kind, Subject};
use headcount_domain::clock::UnixMs;
use headcount_domain::config::anomaly::{DEFAULT_DRIFT_MISS_RATE, DEFAULT_DRIFT_TOLERANCE};
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::retention::{DAY_MS, HOUR_MS};
use headcount_store::Database;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Weeks of generated history (the first three warm the baseline up).
    #[arg(long, default_value_t = 12)]
    weeks: i64,
    /// Share of crossings every door misses, each way, on a normal day.
    #[arg(long, default_value_t = 0.01)]
    miss_rate: f64,
    /// Share of its exits the faulty door misses on a planted faulty day.
    #[arg(long, default_value_t = 0.10)]
    fault_miss_rate: f64,
    /// Fixed drift tolerances to evaluate (`drift_miss_rate = 0`).
    #[arg(long, value_delimiter = ',', default_value = "2,5,10")]
    tolerances: Vec<u32>,
    /// `drift_miss_rate`s to evaluate with the default tolerance of 2 as
    /// the floor (the default rate is 0.01).
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.02")]
    miss_rates: Vec<f64>,
    /// Seed of the generator, so runs compare.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// (name, entrances, arrivals scale): a small office, a shop, a hall.
const SPACES: [(&str, usize, f64); 3] = [("office", 1, 0.3), ("shop", 2, 1.0), ("hall", 3, 2.5)];
const OPENS_MIN: i64 = 7 * 60;
const CLOSES_MIN: i64 = 20 * 60;
const RESET_MIN: i64 = 3 * 60;
const WARM_UP_WEEKS: i64 = 3;
const DEVIATION_HOURS: i64 = 2;
/// Arrival multipliers of the planted deviations, in turn.
const DEVIATIONS: [f64; 3] = [2.0, 3.0, 0.0];
/// A planted deviation counts as found by an anomaly starting in its hours
/// or the hour after (people who came stay on).
const FOUND_AFTER_HOURS: i64 = 1;

/// The first Monday 00:00 UTC of the generated weeks (a fixed date, so
/// runs compare).
fn first_monday() -> UnixMs {
    // 2026-06-01 was a Monday.
    1_780_272_000_000
}

/// Arrivals per minute at one entrance of a space of scale 1.
fn arrivals(day_of_week: i64, minute: i64) -> f64 {
    if !(OPENS_MIN..CLOSES_MIN).contains(&minute) {
        return 0.0;
    }
    let hour = minute as f64 / 60.0;
    let peak = (-((hour - 8.5) / 1.0).powi(2)).exp() + 0.8 * (-((hour - 17.5) / 1.2).powi(2)).exp();
    (0.15 + 1.0 * peak) * if day_of_week >= 5 { 0.3 } else { 1.0 }
}

/// The drift rule evaluated: a tolerance, grown with the day's entries
/// by the miss rate (0: fixed).
#[derive(Clone, Copy)]
struct DriftRule {
    tolerance: u32,
    miss_rate: f64,
}

impl std::fmt::Display for DriftRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.miss_rate == 0.0 {
            write!(f, "tolerance {:>2}, fixed", self.tolerance)
        } else {
            write!(
                f,
                "tolerance {:>2}, grown with the day's entries for doors missing {} %",
                self.tolerance,
                100.0 * self.miss_rate
            )
        }
    }
}

fn config(rule: DriftRule) -> anyhow::Result<Config> {
    let DriftRule {
        tolerance,
        miss_rate,
    } = rule;
    let mut text = String::from("[appliance]\ntimezone = \"UTC\"\n");
    for (space, entrances, _) in SPACES {
        text.push_str(&format!("[cameras.{space}]\nurl = \"testsrc:ball\"\n"));
        for e in 0..entrances {
            text.push_str(&format!(
                "[cameras.{space}.lines.door{e}]\npoints = [[0.2, 0.5], [0.8, 0.5]]\nin = \"left\"\n"
            ));
        }
        let doors: Vec<String> = (0..entrances)
            .map(|e| format!("\"{space}.door{e}\""))
            .collect();
        text.push_str(&format!(
            "[spaces.{space}]\nentrances = [{}]\nreset_at = \"03:00\"\n[spaces.{space}.schedule]\ntimezone = \"UTC\"\ndrift_tolerance = {tolerance}\ndrift_miss_rate = {miss_rate:?}\n",
            doors.join(", ")
        ));
        for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
            text.push_str(&format!("{day} = \"07:00-20:00\"\n"));
        }
    }
    Config::parse(&text, std::path::Path::new("."), &SystemSecrets)
        .map_err(|e| anyhow::anyhow!("the bench's config: {e}"))
}

/// What was planted in one space on one day.
#[derive(Default, Clone, Copy)]
struct Plan {
    /// (first hour of the day, arrivals multiplier)
    deviation: Option<(i64, f64)>,
    /// The door that misses exits.
    faulty_door: Option<usize>,
}

/// The plans of every space and day: from the fourth week on, per space and
/// week, two deviations on different days and one faulty day.
fn plant(rng: &mut XorShift, weeks: i64) -> Vec<Vec<Plan>> {
    let mut turn = 0;
    SPACES
        .iter()
        .map(|&(_, entrances, _)| {
            let mut days = vec![Plan::default(); (weeks * 7) as usize];
            for week in WARM_UP_WEEKS..weeks {
                let first = rng.below(7) as i64;
                let second = (first + 1 + rng.below(6) as i64) % 7;
                for day in [first, second] {
                    let hour = 8 + rng.below(10) as i64;
                    days[(week * 7 + day) as usize].deviation =
                        Some((hour, DEVIATIONS[turn % DEVIATIONS.len()]));
                    turn += 1;
                }
                let faulty = week * 7 + rng.below(7) as i64;
                days[faulty as usize].faulty_door = Some(rng.below(entrances as u64) as usize);
            }
            days
        })
        .collect()
}

/// One space's day: the minute rows to store and the entrance count (and
/// entries since the reset) 16 minutes after closing. `tally` carries over
/// from the day before.
fn simulate_day(
    rng: &mut XorShift,
    args: &Args,
    space: usize,
    day: i64,
    plan: Plan,
    tally: &mut EntranceTally,
    deltas: &mut Deltas,
) -> EntranceTally {
    let (name, entrances, scale) = SPACES[space];
    let start = first_monday() + day * DAY_MS;
    let day_of_week = day % 7;
    // exits[door][minute]: true leavings, counted or not below.
    let mut exits = vec![vec![0u32; 1440]; entrances];
    let mut at_check = *tally;
    for minute in 0..1440 {
        if minute == RESET_MIN {
            *tally = EntranceTally {
                count: 0,
                entries: 0,
            };
        }
        let multiplier = match plan.deviation {
            Some((hour, m)) if (hour * 60..(hour + DEVIATION_HOURS) * 60).contains(&minute) => m,
            _ => 1.0,
        };
        for door in 0..entrances {
            let entered = rng.count(arrivals(day_of_week, minute) * scale * multiplier);
            for _ in 0..entered {
                let leaves = (minute + 5 + rng.below(56) as i64).min(CLOSES_MIN + 5);
                exits[rng.below(entrances as u64) as usize][leaves as usize] += 1;
            }
            let left = exits[door][minute as usize];
            let exit_miss = if plan.faulty_door == Some(door) {
                args.fault_miss_rate
            } else {
                args.miss_rate
            };
            let entries = (0..entered).filter(|_| !rng.chance(args.miss_rate)).count() as u32;
            let counted_exits = (0..left).filter(|_| !rng.chance(exit_miss)).count() as u32;
            tally.count = (tally.count + entries).saturating_sub(counted_exits);
            tally.entries += u64::from(entries);
            deltas.flows.push(FlowDelta {
                camera: name.into(),
                line: format!("door{door}"),
                bucket_start: start + minute * 60_000,
                entries,
                exits: counted_exits,
            });
        }
        deltas.occupancy.push(OccupancyDelta {
            scope: Scope::Space(name.to_string()),
            bucket_start: start + minute * 60_000,
            samples: 60,
            occupancy_sum: u64::from(tally.count) * 60,
            occupancy_max: tally.count,
        });
        if minute == CLOSES_MIN + 16 {
            at_check = *tally;
        }
    }
    at_check
}

#[derive(Default)]
struct Tally {
    planted: u32,
    found: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.weeks > WARM_UP_WEEKS,
        "--weeks must be more than the {WARM_UP_WEEKS} weeks of warm-up"
    );
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ args.seed.wrapping_mul(0x9e37_79b9));
    let plans = plant(&mut rng, args.weeks);
    let rules: Vec<DriftRule> = args
        .tolerances
        .iter()
        .map(|&tolerance| DriftRule {
            tolerance,
            miss_rate: 0.0,
        })
        .chain(args.miss_rates.iter().map(|&miss_rate| DriftRule {
            tolerance: DEFAULT_DRIFT_TOLERANCE,
            miss_rate,
        }))
        .collect();
    let base = config(DriftRule {
        tolerance: DEFAULT_DRIFT_TOLERANCE,
        miss_rate: DEFAULT_DRIFT_MISS_RATE,
    })?;
    let mut watch = UnusualWatch::new(&base)
        .ok_or_else(|| anyhow::anyhow!("no space watched for unusual patterns"))?;
    let mut monitors = rules
        .iter()
        .map(|&rule| Ok((rule, Monitor::new(&config(rule)?, first_monday()))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scratch = tempfile::tempdir()?;
    let mut db = Database::open(&scratch.path().join("site.db"))?;

    let mut tallies = vec![
        EntranceTally {
            count: 0,
            entries: 0
        };
        SPACES.len()
    ];
    let mut opens: Vec<(usize, Kind, UnixMs)> = Vec::new();
    // drift and presence [rule index][space][day]: raised that day.
    let mut drift =
        vec![vec![vec![false; (args.weeks * 7) as usize]; SPACES.len()]; monitors.len()];
    let mut presence = drift.clone();
    // After the 03:00 reset every count is 0: what was open closes.
    let reset = Signals {
        spaces: SPACES
            .iter()
            .map(|&(name, _, _)| SpaceSignal {
                name: name.to_string(),
                occupancy: 0,
                entrances: Some(EntranceTally {
                    count: 0,
                    entries: 0,
                }),
            })
            .collect(),
        ..Signals::default()
    };
    let hold = base.anomalies.after_hours_hold_ms;
    let began = std::time::Instant::now();
    for day in 0..args.weeks * 7 {
        let mut deltas = Deltas::default();
        let mut checked = Vec::new();
        for space in 0..SPACES.len() {
            let plan = plans[space][day as usize];
            let at_check = simulate_day(
                &mut rng,
                &args,
                space,
                day,
                plan,
                &mut tallies[space],
                &mut deltas,
            );
            checked.push(SpaceSignal {
                name: SPACES[space].0.to_string(),
                occupancy: at_check.count,
                entrances: Some(at_check),
            });
        }
        db.apply(&deltas)?;
        let day_end = first_monday() + (day + 1) * DAY_MS;
        db.roll_up(day_end, 0)?;
        let morning = day_end - DAY_MS + (RESET_MIN + 1) * 60_000;
        let check_at = day_end - DAY_MS + (CLOSES_MIN + 16) * 60_000;
        let signals = Signals {
            zones: Vec::new(),
            spaces: checked,
            lines: Vec::new(),
        };
        // The morning's zeros, then the count after closing, seen again
        // when presence after hours has been held long enough to open.
        let observed = [
            (morning, &reset),
            (morning + COUNT_GAP_MS, &reset),
            (check_at, &signals),
            (check_at + hold, &signals),
        ];
        for (t, (_, monitor)) in monitors.iter_mut().enumerate() {
            for (at, signals) in observed {
                for change in monitor.observe_counts(at, signals) {
                    let (Change::Instant { finding, .. } | Change::Open { finding, .. }) = change
                    else {
                        continue;
                    };
                    let Subject::Space(name) = &finding.subject else {
                        continue;
                    };
                    let Some(space) = SPACES.iter().position(|s| s.0 == name) else {
                        continue;
                    };
                    match finding.kind {
                        Kind::CounterDrift => drift[t][space][day as usize] = true,
                        Kind::AfterHours => presence[t][space][day as usize] = true,
                        _ => {}
                    }
                }
            }
        }
        for hour in 0..24 {
            let now = day_end - DAY_MS + (hour + 1) * HOUR_MS + JUDGE_AFTER_MS;
            for change in watch.evaluate(&db, now)? {
                if let Change::Open { started, finding } = change {
                    if let Subject::Space(name) = &finding.subject {
                        if let Some(space) = SPACES.iter().position(|s| s.0 == name) {
                            opens.push((space, finding.kind, started));
                        }
                    }
                }
            }
        }
    }
    let judged_weeks = (args.weeks - WARM_UP_WEEKS) as f64;
    println!(
        "generated {} weeks of {} spaces (doors miss {:.0} % of crossings each way; a faulty door {:.0} % of its exits), written, rolled up and judged in {:.1} s; judged from week {} on",
        args.weeks,
        SPACES.len(),
        100.0 * args.miss_rate,
        100.0 * args.fault_miss_rate,
        began.elapsed().as_secs_f64(),
        WARM_UP_WEEKS + 1
    );

    // Unusual patterns: planted deviations found; alarms elsewhere.
    let mut by_kind: Vec<(f64, Tally)> =
        DEVIATIONS.iter().map(|&m| (m, Tally::default())).collect();
    let mut found_opens = vec![false; opens.len()];
    for (space, days) in plans.iter().enumerate() {
        for (day, plan) in days.iter().enumerate() {
            let Some((hour, multiplier)) = plan.deviation else {
                continue;
            };
            let from = first_monday() + day as i64 * DAY_MS + hour * HOUR_MS;
            let to = from + (DEVIATION_HOURS + FOUND_AFTER_HOURS) * HOUR_MS;
            let mut found = false;
            for (i, &(s, _, started)) in opens.iter().enumerate() {
                if s == space && (from..to).contains(&started) {
                    found_opens[i] = true;
                    found = true;
                }
            }
            if let Some((_, tally)) = by_kind.iter_mut().find(|(m, _)| *m == multiplier) {
                tally.planted += 1;
                tally.found += u32::from(found);
            }
        }
    }
    let faulty_day = |space: usize, started: UnixMs| {
        let day = ((started - first_monday()) / DAY_MS) as usize;
        plans[space]
            .get(day)
            .is_some_and(|p| p.faulty_door.is_some())
    };
    let (mut false_alarms, mut on_faulty_days) = (0u32, 0u32);
    for (i, &(space, _, started)) in opens.iter().enumerate() {
        if found_opens[i] {
            continue;
        }
        if faulty_day(space, started) {
            on_faulty_days += 1;
        } else {
            false_alarms += 1;
        }
    }
    println!("unusual occupancy or flow (threshold 4, min difference 3, hour-of-week median and MAD of up to 8 weeks):");
    for (multiplier, tally) in &by_kind {
        println!(
            "  {:<34} found {:>3} of {:>3} ({:.0} %)",
            if *multiplier == 0.0 {
                "no arrivals for 2 h (door locked)".to_string()
            } else {
                format!("{multiplier}x the arrivals for 2 h (an event)")
            },
            tally.found,
            tally.planted,
            100.0 * f64::from(tally.found) / f64::from(tally.planted.max(1))
        );
    }
    println!(
        "  false alarms: {false_alarms} over {} space-weeks = {:.2} per space and week; {on_faulty_days} more on faulty-door days (the count that does not fall is unusual)",
        judged_weeks as u32 * SPACES.len() as u32,
        f64::from(false_alarms) / (judged_weeks * SPACES.len() as f64)
    );

    // Counter drift and presence after hours (the count after closing is
    // the doors' leftover: nobody stays): faulty days found; alarms on
    // normal days.
    println!("counter drift (entries minus exits 15 min after closing above the tolerance) and presence after hours (the same count above it for the hold, critical):");
    for (t, (rule, _)) in monitors.iter().enumerate() {
        println!("  {rule}:");
        for (what, raised) in [("drift", &drift[t]), ("presence", &presence[t])] {
            println!("    {what:<8}: {}", judged_days(&plans, raised));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Faulty days raised and alarms on normal days, overall and per space.
fn judged_days(plans: &[Vec<Plan>], raised: &[Vec<bool>]) -> String {
    let (mut faulty, mut found, mut normal, mut alarms) = (0u32, 0u32, 0u32, 0u32);
    let mut per_space = Vec::new();
    for (space, days) in plans.iter().enumerate() {
        let (mut space_faulty, mut space_found) = (0u32, 0u32);
        let (mut space_normal, mut space_alarms) = (0u32, 0u32);
        for (day, plan) in days.iter().enumerate().skip((WARM_UP_WEEKS * 7) as usize) {
            let raised = raised[space][day];
            if plan.faulty_door.is_some() {
                space_faulty += 1;
                space_found += u32::from(raised);
            } else {
                space_normal += 1;
                space_alarms += u32::from(raised);
            }
        }
        faulty += space_faulty;
        found += space_found;
        normal += space_normal;
        alarms += space_alarms;
        per_space.push(format!(
            "{} {space_found}/{space_faulty}, {:.2}",
            SPACES[space].0,
            7.0 * f64::from(space_alarms) / f64::from(space_normal.max(1))
        ));
    }
    format!(
        "faulty days {found} of {faulty} ({:.0} %); alarms on normal days {alarms} of {normal} = {:.2} per space and week (per space, faulty days and alarms a week: {})",
        100.0 * f64::from(found) / f64::from(faulty.max(1)),
        7.0 * f64::from(alarms) / f64::from(normal.max(1)),
        per_space.join("; ")
    )
}
