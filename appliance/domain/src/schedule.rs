//! Weekly opening hours of a space, in a time zone, with exception dates.
//!
//! Written as `[spaces.NAME.schedule]`:
//!
//! ```toml
//! timezone = "Europe/Berlin"     # optional; default: the appliance's zone
//! mon = "08:00-12:00, 13:00-18:00"
//! sat = "closed"                 # a day left out is closed too
//! sun = "00:00-24:00"            # all day ("24h" also works)
//! exceptions = { "2026-12-24" = "08:00-12:00", "2026-12-25" = "closed" }
//! ```
//!
//! Hours are civil (wall-clock) times: `is_open` turns an instant into the
//! zone's local date and time and looks at that date's ranges (an exception
//! date replaces its weekday). So across a DST change a shop that opens at
//! 08:00 still opens at 08:00 local, and a range that falls in the skipped
//! hour of a spring-forward night is simply never reached.
//!
//! `last_closing` is defined by `is_open` itself: it is the latest instant at
//! which `is_open` turns from true to false. That keeps the two consistent in
//! every odd case (ranges adjacent across midnight are one open period; a
//! range ending in a DST gap closes when the clock jumps; a range ending in
//! a repeated hour closes at both occurrences).

use crate::clock::UnixMs;
use crate::retention::DAY_MS;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The schedule table as written; `Schedule::parse` checks it.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub timezone: Option<String>,
    pub mon: Option<String>,
    pub tue: Option<String>,
    pub wed: Option<String>,
    pub thu: Option<String>,
    pub fri: Option<String>,
    pub sat: Option<String>,
    pub sun: Option<String>,
    #[serde(default)]
    pub exceptions: BTreeMap<String, String>,
}

/// How far back `last_closing` looks.
pub const LOOKBACK_DAYS: i64 = 8;
const MINUTES_PER_DAY: u16 = 24 * 60;
const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Open from `start` up to (not including) `end`, in minutes after local
/// midnight; `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    start: u16,
    end: u16,
}

/// Checked opening hours. Each day's ranges are sorted and do not overlap
/// (they may touch: "08:00-12:00, 12:00-18:00").
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    tz: TimeZone,
    /// The zone's name, for `describe`.
    tz_label: String,
    /// Monday first.
    week: [Vec<Range>; 7],
    exceptions: BTreeMap<Date, Vec<Range>>,
}

impl Schedule {
    /// Checks a schedule table. Every problem is reported, each as (key
    /// relative to the table, message naming the offending text).
    pub fn parse(
        raw: &RawSchedule,
        default_tz: &TimeZone,
    ) -> Result<Schedule, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let (tz, tz_label) = match &raw.timezone {
            Some(name) => match TimeZone::get(name.trim()) {
                Ok(tz) => (tz, name.trim().to_string()),
                Err(_) => {
                    problems.push((
                        "timezone".to_string(),
                        format!("`{name}` is not a time zone of the tz database"),
                    ));
                    (TimeZone::UTC, String::new())
                }
            },
            None => (
                default_tz.clone(),
                default_tz.iana_name().unwrap_or("local time").to_string(),
            ),
        };

        let days = [
            &raw.mon, &raw.tue, &raw.wed, &raw.thu, &raw.fri, &raw.sat, &raw.sun,
        ];
        let mut week: [Vec<Range>; 7] = Default::default();
        for ((slot, text), key) in week.iter_mut().zip(days).zip(DAY_KEYS) {
            if let Some(text) = text {
                match parse_hours(text) {
                    Ok(ranges) => *slot = ranges,
                    Err(messages) => {
                        problems.extend(messages.into_iter().map(|m| (key.to_string(), m)))
                    }
                }
            }
        }

        let mut exceptions = BTreeMap::new();
        for (date_text, text) in &raw.exceptions {
            let key = format!("exceptions.{date_text}");
            let date = parse_date(date_text);
            if date.is_none() {
                problems.push((
                    key.clone(),
                    format!("`{date_text}` is not a date YYYY-MM-DD"),
                ));
            }
            match (date, parse_hours(text)) {
                (Some(date), Ok(ranges)) => {
                    exceptions.insert(date, ranges);
                }
                (_, Err(messages)) => {
                    problems.extend(messages.into_iter().map(|m| (key.clone(), m)))
                }
                (None, Ok(_)) => {}
            }
        }

        if problems.is_empty() {
            Ok(Schedule {
                tz,
                tz_label,
                week,
                exceptions,
            })
        } else {
            Err(problems)
        }
    }

    /// The zone the hours are in (also the one to learn baselines in).
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether `at` falls in an opening range of its local date. An instant
    /// jiff cannot represent (beyond year ±9999) is closed.
    pub fn is_open(&self, at: UnixMs) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(at) else {
            return false;
        };
        let local = self.tz.to_datetime(ts);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.hours_on(local.date())
            .iter()
            .any(|r| r.start <= minute && minute < r.end)
    }

    /// Whether every minute in `[from, to)` is closed (opening ranges are
    /// whole minutes, so a minute-aligned `from` makes this exact).
    pub fn closed_throughout(&self, from: UnixMs, to: UnixMs) -> bool {
        (from..to).step_by(60_000).all(|t| !self.is_open(t))
    }

    /// The latest instant `t <= at`, within `LOOKBACK_DAYS` days before
    /// `at`, at which the space closed: open just before `t`, closed at `t`.
    /// `None` if it did not close in that window (always closed, or open the
    /// whole time). A range ending at 24:00 followed by one starting at 00:00
    /// the next day is one open period and closes only at its real end.
    pub fn last_closing(&self, at: UnixMs) -> Option<UnixMs> {
        let ts = Timestamp::from_millisecond(at).ok()?;
        let horizon = at.saturating_sub(LOOKBACK_DAYS * DAY_MS);
        let mut candidates: Vec<UnixMs> = Vec::new();

        // Every range end of every day in the window, at each instant that
        // local time occurs (two in a repeated hour; the moments around a
        // skipped hour are covered by the transitions below).
        let mut day = self.tz.to_datetime(ts).date();
        for _ in 0..=LOOKBACK_DAYS {
            for r in self.hours_on(day) {
                let Some(end) = civil_end(day, r.end) else {
                    continue;
                };
                let ambiguous = self.tz.to_ambiguous_timestamp(end);
                for t in [ambiguous.earlier(), ambiguous.later()]
                    .into_iter()
                    .flatten()
                {
                    candidates.push(t.as_millisecond());
                }
            }
            match day.yesterday() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        // A clock change can close too (the clock jumps past a range end,
        // or back to before a range start).
        if let Ok(after) = Timestamp::from_millisecond(at.saturating_add(1)) {
            for transition in self.tz.preceding(after) {
                let t = transition.timestamp().as_millisecond();
                if t < horizon {
                    break;
                }
                candidates.push(t);
            }
        }

        candidates
            .into_iter()
            .filter(|&t| t <= at && t >= horizon)
            .filter(|&t| self.is_open(t - 1) && !self.is_open(t))
            .max()
    }

    /// Short text for logs and the console, e.g. "Mon-Fri 08:00-18:00,
    /// Sat-Sun closed, 2 exception dates (Europe/Berlin)".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut first = 0;
        while first < 7 {
            let mut last = first;
            while last + 1 < 7 && self.week[last + 1] == self.week[first] {
                last += 1;
            }
            let days = if first == last {
                DAY_NAMES[first].to_string()
            } else {
                format!("{}-{}", DAY_NAMES[first], DAY_NAMES[last])
            };
            parts.push(format!("{days} {}", describe_hours(&self.week[first])));
            first = last + 1;
        }
        match self.exceptions.len() {
            0 => {}
            1 => parts.push("1 exception date".to_string()),
            n => parts.push(format!("{n} exception dates")),
        }
        format!("{} ({})", parts.join(", "), self.tz_label)
    }

    /// The ranges of a local date: its exception if it has one, else its
    /// weekday's.
    fn hours_on(&self, date: Date) -> &[Range] {
        match self.exceptions.get(&date) {
            Some(ranges) => ranges,
            None => &self.week[date.weekday().to_monday_zero_offset() as usize],
        }
    }
}

/// The civil date and time at which a range of `day` ending at minute `end`
/// ends (24:00 is the next day's midnight).
fn civil_end(day: Date, end: u16) -> Option<DateTime> {
    if end >= MINUTES_PER_DAY {
        Some(day.tomorrow().ok()?.at(0, 0, 0, 0))
    } else {
        Some(day.at((end / 60) as i8, (end % 60) as i8, 0, 0))
    }
}

/// One day's hours: "closed", "24h", or comma-separated HH:MM-HH:MM ranges.
/// Returns the ranges sorted, or every problem found.
fn parse_hours(text: &str) -> Result<Vec<Range>, Vec<String>> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    if trimmed.eq_ignore_ascii_case("24h") {
        return Ok(vec![Range {
            start: 0,
            end: MINUTES_PER_DAY,
        }]);
    }
    let syntax = || {
        vec![format!(
            "`{text}` is not HH:MM-HH:MM ranges separated by commas, or closed"
        )]
    };
    // Syntax first: one message for the whole value if any part is off.
    let mut written = Vec::new();
    for part in trimmed.split(',') {
        let Some((a, b)) = part.split_once('-') else {
            return Err(syntax());
        };
        match (clock_syntax(a.trim()), clock_syntax(b.trim())) {
            (Some(a), Some(b)) => written.push((a, b)),
            _ => return Err(syntax()),
        }
    }

    let mut problems = Vec::new();
    let mut ranges = Vec::new();
    for ((ah, am), (bh, bm)) in written {
        let (Some(start), Some(end)) = (
            clock_minutes(ah, am, &mut problems),
            clock_minutes(bh, bm, &mut problems),
        ) else {
            continue;
        };
        let range = Range { start, end };
        if start == end {
            problems.push(format!("range {} is empty", range_text(range)));
        } else if end < start {
            problems.push(format!(
                "range {} ends before it starts (a range past midnight is written on both days: {}-24:00 and 00:00-{})",
                range_text(range),
                clock_text(start),
                clock_text(end)
            ));
        } else {
            ranges.push(range);
        }
    }
    ranges.sort();
    // Compare each range with the one reaching furthest before it, so a
    // long range overlapping several later ones is caught against each.
    let mut reach: Option<Range> = None;
    for &r in &ranges {
        if let Some(prev) = reach {
            if r.start < prev.end {
                problems.push(format!(
                    "ranges {} and {} overlap",
                    range_text(prev),
                    range_text(r)
                ));
            }
            if r.end > prev.end {
                reach = Some(r);
            }
        } else {
            reach = Some(r);
        }
    }
    if problems.is_empty() {
        Ok(ranges)
    } else {
        Err(problems)
    }
}

/// `H:MM` or `HH:MM` as (hours, minutes), digits only; values unchecked.
fn clock_syntax(text: &str) -> Option<(u16, u16)> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(h) && h.len() <= 2 && digits(m) && m.len() == 2) {
        return None;
    }
    Some((h.parse().ok()?, m.parse().ok()?))
}

/// Minutes after midnight, 00:00 to 24:00; a problem noted otherwise.
fn clock_minutes(h: u16, m: u16, problems: &mut Vec<String>) -> Option<u16> {
    if m < 60 && (h < 24 || (h == 24 && m == 0)) {
        Some(h * 60 + m)
    } else {
        problems.push(format!("`{h:02}:{m:02}` is not a time from 00:00 to 24:00"));
        None
    }
}

/// A strict `YYYY-MM-DD` that names a real date.
fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let year: i16 = text[0..4].parse().ok()?;
    let month: i8 = text[5..7].parse().ok()?;
    let day: i8 = text[8..10].parse().ok()?;
    Date::new(year, month, day).ok()
}

fn clock_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn range_text(r: Range) -> String {
    format!("{}-{}", clock_text(r.start), clock_text(r.end))
}

fn describe_hours(ranges: &[Range]) -> String {
    if ranges.is_empty() {
        "closed".to_string()
    } else {
        ranges
            .iter()
            .map(|&r| range_text(r))
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    /// An instant written with its offset, e.g. "2026-03-30T08:00+02:00".
    fn at(text: &str) -> UnixMs {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    /// A Berlin wall-clock time, e.g. "2026-03-30T08:00" (unambiguous ones).
    fn local(text: &str) -> UnixMs {
        let dt: DateTime = text.parse().unwrap();
        berlin().to_timestamp(dt).unwrap().as_millisecond()
    }

    fn raw(days: &[(&str, &str)], exceptions: &[(&str, &str)]) -> RawSchedule {
        let mut raw = RawSchedule::default();
        for &(key, hours) in days {
            let slot = match key {
                "timezone" => &mut raw.timezone,
                "mon" => &mut raw.mon,
                "tue" => &mut raw.tue,
                "wed" => &mut raw.wed,
                "thu" => &mut raw.thu,
                "fri" => &mut raw.fri,
                "sat" => &mut raw.sat,
                "sun" => &mut raw.sun,
                other => panic!("no key {other}"),
            };
            *slot = Some(hours.to_string());
        }
        raw.exceptions = exceptions
            .iter()
            .map(|&(d, h)| (d.to_string(), h.to_string()))
            .collect();
        raw
    }

    fn shop() -> Schedule {
        let days = [
            ("timezone", "Europe/Berlin"),
            ("mon", "08:00-18:00"),
            ("tue", "08:00-18:00"),
            ("wed", "08:00-18:00"),
            ("thu", "08:00-18:00"),
            ("fri", "08:00-18:00"),
            ("sat", "10:00-14:00"),
            ("sun", "closed"),
        ];
        let exceptions = [("2026-12-24", "08:00-12:00"), ("2026-12-25", "closed")];
        Schedule::parse(&raw(&days, &exceptions), &TimeZone::UTC).unwrap()
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let days = [
            ("timezone", "Europe/Berln"),
            ("mon", "8-18"),
            ("tue", "09:00-12:00, 11:00-13:00"),
            ("wed", "18:00-08:00"),
            ("thu", "08:00-25:00"),
            ("fri", "10:00-10:00"),
            ("sat", "08:00-18:00, 09:00-10:00, 17:00-19:00"),
            ("sun", ""),
        ];
        let exceptions = [
            ("2026-13-01", "closed"),
            ("2026-12-24", "noon"),
            ("24.12.2026", "closed"),
        ];
        let problems = Schedule::parse(&raw(&days, &exceptions), &TimeZone::UTC).unwrap_err();
        let p = |k: &str, m: &str| (k.to_string(), m.to_string());
        assert_eq!(
            problems,
            vec![
                p("timezone", "`Europe/Berln` is not a time zone of the tz database"),
                p("mon", "`8-18` is not HH:MM-HH:MM ranges separated by commas, or closed"),
                p("tue", "ranges 09:00-12:00 and 11:00-13:00 overlap"),
                p("wed", "range 18:00-08:00 ends before it starts (a range past midnight is written on both days: 18:00-24:00 and 00:00-08:00)"),
                p("thu", "`25:00` is not a time from 00:00 to 24:00"),
                p("fri", "range 10:00-10:00 is empty"),
                p("sat", "ranges 08:00-18:00 and 09:00-10:00 overlap"),
                p("sat", "ranges 08:00-18:00 and 17:00-19:00 overlap"),
                p("sun", "`` is not HH:MM-HH:MM ranges separated by commas, or closed"),
                p("exceptions.2026-12-24", "`noon` is not HH:MM-HH:MM ranges separated by commas, or closed"),
                p("exceptions.2026-13-01", "`2026-13-01` is not a date YYYY-MM-DD"),
                p("exceptions.24.12.2026", "`24.12.2026` is not a date YYYY-MM-DD"),
            ]
        );
    }

    #[test]
    fn accepted_forms_and_the_toml_table() {
        let raw: RawSchedule = toml::from_str(
            r#"
            mon = " 8:00 - 12:00 ,13:00-18:00 "
            tue = "CLOSED"
            wed = "24h"
            thu = "00:00-24:00"
            fri = "12:00-18:00, 08:00-12:00"
            exceptions = { "2026-12-24" = "08:00-12:00", "2026-12-25" = "closed" }
            "#,
        )
        .unwrap();
        let s = Schedule::parse(&raw, &berlin()).unwrap();
        assert_eq!(
            s.describe(),
            "Mon 08:00-12:00 & 13:00-18:00, Tue closed, Wed-Thu 00:00-24:00, \
             Fri 08:00-12:00 & 12:00-18:00, Sat-Sun closed, 2 exception dates (Europe/Berlin)"
        );
        assert_eq!(s.time_zone(), &berlin());
        assert!(toml::from_str::<RawSchedule>("monday = \"08:00-18:00\"").is_err());
        assert_eq!(
            shop().describe(),
            "Mon-Fri 08:00-18:00, Sat 10:00-14:00, Sun closed, 2 exception dates (Europe/Berlin)"
        );
        let never = Schedule::parse(&RawSchedule::default(), &TimeZone::UTC).unwrap();
        assert_eq!(never.describe(), "Mon-Sun closed (UTC)");
    }

    #[test]
    fn open_on_weekdays_weekends_and_exceptions() {
        let s = shop();
        // Monday 2026-03-23 (CET, +01:00).
        assert!(!s.is_open(local("2026-03-23T07:59:59")));
        assert!(s.is_open(local("2026-03-23T08:00")));
        assert!(s.is_open(local("2026-03-23T17:59:59.999")));
        assert!(!s.is_open(local("2026-03-23T18:00")));
        assert!(s.is_open(at("2026-03-23T07:00Z")));
        // Saturday and Sunday.
        assert!(s.is_open(local("2026-03-28T11:00")));
        assert!(!s.is_open(local("2026-03-28T15:00")));
        assert!(!s.is_open(local("2026-03-29T11:00")));
        // Thursday 2026-12-24 is short, Friday 2026-12-25 closed.
        assert!(s.is_open(local("2026-12-24T11:00")));
        assert!(!s.is_open(local("2026-12-24T13:00")));
        assert!(!s.is_open(local("2026-12-25T10:00")));
        assert!(s.is_open(local("2026-12-28T10:00")));
    }

    #[test]
    fn local_hours_hold_across_dst_changes() {
        let s = shop();
        // Spring forward on Sunday 2026-03-29: Friday is +01:00, Monday +02:00.
        assert!(!s.is_open(at("2026-03-27T06:59Z")));
        assert!(s.is_open(at("2026-03-27T07:00Z")));
        assert!(!s.is_open(at("2026-03-30T05:59Z")));
        assert!(s.is_open(at("2026-03-30T06:00Z")));
        assert!(!s.is_open(at("2026-03-30T16:00Z")));
        // Fall back on Sunday 2026-10-25: Friday is +02:00, Monday +01:00.
        assert!(s.is_open(at("2026-10-23T06:00Z")));
        assert!(!s.is_open(at("2026-10-26T06:00Z")));
        assert!(s.is_open(at("2026-10-26T07:00Z")));
        assert!(s.is_open(at("2026-10-26T16:59Z")));
        assert!(!s.is_open(at("2026-10-26T17:00Z")));
        assert_eq!(
            s.last_closing(at("2026-03-30T17:00Z")),
            Some(at("2026-03-30T16:00Z"))
        );
        assert_eq!(
            s.last_closing(at("2026-10-26T18:00Z")),
            Some(at("2026-10-26T17:00Z"))
        );
    }

    #[test]
    fn ranges_in_skipped_and_repeated_hours() {
        // 2026-03-29: 02:00-03:00 local does not exist (01:00Z jumps to 03:00).
        let spring =
            Schedule::parse(&raw(&[("sun", "01:00-02:30, 03:30-05:00")], &[]), &berlin()).unwrap();
        assert!(spring.is_open(at("2026-03-29T00:30Z")));
        assert!(!spring.is_open(at("2026-03-29T01:00Z")));
        assert!(spring.is_open(at("2026-03-29T01:30Z")));
        // It closes when the clock jumps past 02:30.
        assert_eq!(
            spring.last_closing(at("2026-03-29T01:15Z")),
            Some(at("2026-03-29T01:00Z"))
        );
        assert_eq!(
            spring.last_closing(at("2026-03-29T05:00Z")),
            Some(at("2026-03-29T03:00Z"))
        );
        // 2026-10-25: 02:00-03:00 local happens twice (00:00Z and 01:00Z).
        let fall = Schedule::parse(&raw(&[("sun", "02:00-02:30")], &[]), &berlin()).unwrap();
        assert!(fall.is_open(at("2026-10-25T00:15Z")));
        assert!(!fall.is_open(at("2026-10-25T00:45Z")));
        assert!(fall.is_open(at("2026-10-25T01:15Z")));
        assert!(!fall.is_open(at("2026-10-25T01:45Z")));
        assert_eq!(
            fall.last_closing(at("2026-10-25T00:59Z")),
            Some(at("2026-10-25T00:30Z"))
        );
        assert_eq!(
            fall.last_closing(at("2026-10-25T01:59Z")),
            Some(at("2026-10-25T01:30Z"))
        );
    }

    #[test]
    fn last_closing_across_midnight() {
        let s = Schedule::parse(
            &raw(
                &[("mon", "18:00-24:00"), ("tue", "00:00-08:00, 12:00-14:00")],
                &[],
            ),
            &berlin(),
        )
        .unwrap();
        // Monday 18:00 to Tuesday 08:00 is one period: no closing at midnight.
        assert!(s.is_open(local("2026-06-01T23:59")));
        assert!(s.is_open(local("2026-06-02T00:00")));
        assert_eq!(
            s.last_closing(local("2026-06-02T10:00")),
            Some(local("2026-06-02T08:00"))
        );
        assert_eq!(
            s.last_closing(local("2026-06-02T08:00")),
            Some(local("2026-06-02T08:00"))
        );
        // Before that, the previous closing is last Tuesday's 14:00.
        assert_eq!(
            s.last_closing(local("2026-06-02T07:59")),
            Some(local("2026-05-26T14:00"))
        );
        assert_eq!(
            s.last_closing(local("2026-06-01T23:00")),
            Some(local("2026-05-26T14:00"))
        );
    }

    #[test]
    fn last_closing_with_exception_dates() {
        let s = shop();
        assert_eq!(
            s.last_closing(local("2026-12-24T15:00")),
            Some(local("2026-12-24T12:00"))
        );
        // 25th closed (exception), 26th a Saturday... open 10-14.
        assert_eq!(
            s.last_closing(local("2026-12-26T09:00")),
            Some(local("2026-12-24T12:00"))
        );
        assert_eq!(
            s.last_closing(local("2026-12-26T15:00")),
            Some(local("2026-12-26T14:00"))
        );
        // New Year's Eve open past midnight through exceptions.
        let party = Schedule::parse(
            &raw(
                &[],
                &[("2026-12-31", "20:00-24:00"), ("2027-01-01", "00:00-02:00")],
            ),
            &berlin(),
        )
        .unwrap();
        assert!(party.is_open(local("2027-01-01T00:30")));
        assert_eq!(
            party.last_closing(local("2027-01-01T03:00")),
            Some(local("2027-01-01T02:00"))
        );
        assert_eq!(party.last_closing(local("2027-01-01T01:00")), None);
        // Nine days on, it is out of the window.
        assert_eq!(party.last_closing(local("2027-01-10T03:00")), None);
    }

    #[test]
    fn never_closing_schedules() {
        let never = Schedule::parse(&RawSchedule::default(), &berlin()).unwrap();
        assert!(!never.is_open(local("2026-06-01T12:00")));
        assert_eq!(never.last_closing(local("2026-06-01T12:00")), None);
        let all = [
            ("mon", "24h"),
            ("tue", "24h"),
            ("wed", "24h"),
            ("thu", "24h"),
            ("fri", "24h"),
            ("sat", "24h"),
            ("sun", "00:00-24:00"),
        ];
        let always = Schedule::parse(&raw(&all, &[]), &berlin()).unwrap();
        assert!(always.is_open(at("2026-03-29T01:00Z")));
        assert!(always.is_open(at("2026-10-25T01:30Z")));
        assert_eq!(always.last_closing(at("2026-03-30T00:00Z")), None);
        assert_eq!(always.last_closing(at("2026-10-26T00:00Z")), None);
    }
}
