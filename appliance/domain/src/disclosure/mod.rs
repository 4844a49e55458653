//! Statistical disclosure control for published aggregate counts.
//!
//! Planners and the MQTT fleet receive counts per space and time bucket. A
//! small count can single a person out, so before anything is published:
//!
//! - [`suppress`] withholds small counts (`value < k`, zero included, k =
//!   [`DEFAULT_K`] by default) over one space's UTC day for one measure, then
//!   enough other cells that no withheld value follows from published ones
//!   (secondary suppression). Zero is in the band on purpose: were it
//!   published, a withheld cell would say "1 to k-1 people were there";
//! - [`LaplaceNoise`] optionally perturbs counts (ε-differential privacy);
//! - [`Budget`] is the arithmetic of the daily ε ledger (one charge per
//!   release: a published bucket);
//! - [`policy`] is the disclosure policy every exit passes: who may receive
//!   which data class at what granularity, and the rules that enforce it.
//!
//! # The day grid
//!
//! A [`DayGrid`] holds, for each [`Level`] (96 quarter-hours, 24 hours, the
//! day) and bucket, one value per [`Member`]: the space's total and one part
//! per entrance line. It is built from the quarter-hour line parts
//! ([`DayGrid::from_quarters`]); totals and coarser cells are their sums, so
//! the grid is consistent by construction.
//!
//! # Rules
//!
//! Relations: per bucket, total = Σ lines (cross-section); per member,
//! hour = Σ its 4 quarters and day = Σ its 24 hours (time). A relation is
//! violated when exactly one of its cells is withheld (whatever its value:
//! a derived zero can unlock another relation), or when its total is
//! published and its withheld parts sum to a value in `(0, k)` (a sum of
//! zero reveals only zeros, which the band already allows).
//!
//! Levels are decided fine to coarse, and a bucket's decisions read only that
//! bucket and its finer cells, all ended no later than it. So publication can
//! be progressive (`ended_quarters`) and a published value never changes.
//!
//! - Quarter-hours: primary suppression, then each violated cross-section is
//!   fixed by withholding its smallest positive published line (the total
//!   when no line is published) until none is violated.
//! - Hours, then the day: primary suppression, then until stable: a violated
//!   time relation withholds the coarse cell (finer ones may be out already);
//!   a violated cross-section withholds its smallest published member that
//!   has a withheld finer cell (any other could be re-derived from its finer
//!   cells). When no member has one, all its published members are withheld
//!   and the relation counts as a fallback in [`SuppressionStats`]: those
//!   cells may still be derivable, so fallbacks should stay at zero.

pub mod bacnet;
pub mod live;
pub mod modbus;
pub mod policy;
pub mod push;

use ring::rand::{SecureRandom, SystemRandom};

/// Counts below this (zero included) are withheld unless told otherwise.
pub const DEFAULT_K: u32 = 5;
/// Quarter-hours in a UTC day.
pub const QUARTERS: usize = 96;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DisclosureError {
    #[error("the minimum publishable count k must be at least 2, got {0}")]
    InvalidK(u32),
    #[error("a day has {QUARTERS} quarter-hours, {0} cannot have ended")]
    EndedQuarters(usize),
    #[error("expected {QUARTERS} quarter-hours of {lines} line counts each, and a line at least")]
    Shape { lines: usize },
    #[error("counts overflow 64 bits")]
    Overflow,
    #[error("epsilon must be positive and finite, got {0}")]
    InvalidEpsilon(f64),
    #[error("sensitivity must be positive and finite, got {0}")]
    InvalidSensitivity(f64),
    #[error("the system random number generator failed")]
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    QuarterHour,
    Hour,
    Day,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::QuarterHour, Level::Hour, Level::Day];

    pub fn buckets(self) -> usize {
        match self {
            Level::QuarterHour => QUARTERS,
            Level::Hour => 24,
            Level::Day => 1,
        }
    }

    /// How many of this level's buckets have ended when `ended_quarters` have.
    pub fn ended_buckets(self, ended_quarters: usize) -> usize {
        let quarters = ended_quarters.min(QUARTERS);
        quarters * self.buckets() / QUARTERS
    }

    /// The finer level and how many of its buckets make one of this level.
    fn finer(self) -> Option<(Level, usize)> {
        match self {
            Level::QuarterHour => None,
            Level::Hour => Some((Level::QuarterHour, 4)),
            Level::Day => Some((Level::Hour, 24)),
        }
    }
}

/// A member of a cross-section: the space's total or one line's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member {
    Total,
    Line(usize),
}

impl Member {
    /// Position in a bucket's row (the total first), if the line exists.
    fn slot(self, lines: usize) -> Option<usize> {
        match self {
            Member::Total => Some(0),
            Member::Line(i) if i < lines => Some(i + 1),
            Member::Line(_) => None,
        }
    }
}

/// One space's true counts of one measure over one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayGrid {
    lines: usize,
    /// Per level, rows of `lines + 1` values (total, then lines) per bucket.
    values: [Vec<u64>; 3],
}

impl DayGrid {
    /// `quarter_parts[q][i]` is line `i`'s count in quarter-hour `q`
    /// (96 rows of `lines` counts); totals and hours and the day are summed.
    pub fn from_quarters(
        lines: usize,
        quarter_parts: &[Vec<u64>],
    ) -> Result<Self, DisclosureError> {
        let ragged = quarter_parts.iter().any(|q| q.len() != lines);
        if lines == 0 || quarter_parts.len() != QUARTERS || ragged {
            return Err(DisclosureError::Shape { lines });
        }
        let width = lines + 1;
        let mut quarters = Vec::with_capacity(QUARTERS * width);
        for parts in quarter_parts {
            quarters.push(checked_sum(parts.iter().copied())?);
            quarters.extend_from_slice(parts);
        }
        // Cell (bucket b, slot m) of a coarser level sums finer cells (b*n + c, m).
        let coarser = |finer: &[u64], n: usize| -> Result<Vec<u64>, DisclosureError> {
            let sum = |i: usize| {
                let (b, m) = (i / width, i % width);
                checked_sum((0..n).map(|c| finer[(b * n + c) * width + m]))
            };
            (0..finer.len() / n).map(sum).collect()
        };
        let hours = coarser(&quarters, 4)?;
        let day = coarser(&hours, 24)?;
        let values = [quarters, hours, day];
        Ok(DayGrid { lines, values })
    }

    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The true value of a cell; `None` when the bucket or line does not exist.
    pub fn value(&self, level: Level, bucket: usize, member: Member) -> Option<u64> {
        let slot = member.slot(self.lines)?;
        (bucket < level.buckets()).then(|| self.at(level, bucket, slot))
    }

    fn width(&self) -> usize {
        self.lines + 1
    }

    fn at(&self, level: Level, bucket: usize, slot: usize) -> u64 {
        self.values[level as usize][bucket * self.width() + slot]
    }
}

fn checked_sum(mut values: impl Iterator<Item = u64>) -> Result<u64, DisclosureError> {
    values
        .try_fold(0u64, |sum, v| sum.checked_add(v))
        .ok_or(DisclosureError::Overflow)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The bucket has not ended yet: nothing to publish.
    Pending,
    Published,
    Withheld(Reason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The value itself is small.
    Primary,
    /// Withheld so that another withheld value cannot be derived.
    Secondary,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuppressionStats {
    pub primary: usize,
    pub secondary: usize,
    /// Cross-sections that had no good candidate and were withheld whole.
    pub fallbacks: usize,
}

/// The publication decision for every cell of a [`DayGrid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    lines: usize,
    k: u64,
    decisions: [Vec<Decision>; 3],
    fallbacks: usize,
}

/// A cell's value and whether it is withheld, as a relation sees it.
#[derive(Clone, Copy)]
struct Entry {
    value: u64,
    withheld: bool,
}

/// Decides which cells of `grid` may be published, with at least `k`
/// (≥ 2) for every published count, once `ended_quarters` (0..=96)
/// quarter-hours of the day have ended. See the module doc for the rules.
pub fn suppress(
    grid: &DayGrid,
    k: u32,
    ended_quarters: usize,
) -> Result<Suppression, DisclosureError> {
    if k < 2 {
        return Err(DisclosureError::InvalidK(k));
    }
    if ended_quarters > QUARTERS {
        return Err(DisclosureError::EndedQuarters(ended_quarters));
    }
    let width = grid.width();
    let mut s = Suppression {
        lines: grid.lines,
        k: u64::from(k),
        decisions: Level::ALL.map(|l| vec![Decision::Pending; l.buckets() * width]),
        fallbacks: 0,
    };
    for level in Level::ALL {
        for bucket in 0..level.ended_buckets(ended_quarters) {
            for slot in 0..width {
                let value = grid.at(level, bucket, slot);
                let decision = if value < s.k {
                    Decision::Withheld(Reason::Primary)
                } else {
                    Decision::Published
                };
                s.decisions[level as usize][bucket * width + slot] = decision;
            }
            s.settle(grid, level, bucket);
        }
    }
    Ok(s)
}

impl Suppression {
    /// `None` when the bucket or line does not exist.
    pub fn decision(&self, level: Level, bucket: usize, member: Member) -> Option<Decision> {
        let slot = member.slot(self.lines)?;
        (bucket < level.buckets())
            .then(|| self.decisions[level as usize][bucket * (self.lines + 1) + slot])
    }

    /// True unless the cell may be published (pending and unknown cells too).
    pub fn withheld(&self, level: Level, bucket: usize, member: Member) -> bool {
        !self.published(level, bucket, member)
    }

    pub fn published(&self, level: Level, bucket: usize, member: Member) -> bool {
        self.decision(level, bucket, member) == Some(Decision::Published)
    }

    pub fn stats(&self) -> SuppressionStats {
        let all = self.decisions.iter().flatten();
        let count = |why| {
            all.clone()
                .filter(|&&d| d == Decision::Withheld(why))
                .count()
        };
        SuppressionStats {
            primary: count(Reason::Primary),
            secondary: count(Reason::Secondary),
            fallbacks: self.fallbacks,
        }
    }

    fn entry(&self, grid: &DayGrid, level: Level, bucket: usize, slot: usize) -> Entry {
        let decision = self.decisions[level as usize][bucket * grid.width() + slot];
        Entry {
            value: grid.at(level, bucket, slot),
            withheld: matches!(decision, Decision::Withheld(_)),
        }
    }

    fn withhold(&mut self, grid: &DayGrid, level: Level, bucket: usize, slot: usize) {
        self.decisions[level as usize][bucket * grid.width() + slot] =
            Decision::Withheld(Reason::Secondary);
    }

    /// Applies secondary suppression to one bucket until no relation of it
    /// is violated (or only fallback-withheld cells remain derivable).
    fn settle(&mut self, grid: &DayGrid, level: Level, bucket: usize) {
        let width = grid.width();
        loop {
            let mut changed = false;
            if let Some((finer, n)) = level.finer() {
                for slot in 0..width {
                    let coarse = self.entry(grid, level, bucket, slot);
                    let parts: Vec<Entry> = (bucket * n..(bucket + 1) * n)
                        .map(|c| self.entry(grid, finer, c, slot))
                        .collect();
                    let leaks = violated(self.k, coarse, &parts)
                        || violated(self.k, coarse, &self.expanded(grid, level, bucket, slot));
                    if !coarse.withheld && leaks {
                        self.withhold(grid, level, bucket, slot);
                        changed = true;
                    }
                }
            }
            let members: Vec<Entry> = (0..width)
                .map(|slot| self.entry(grid, level, bucket, slot))
                .collect();
            if violated(self.k, members[0], &members[1..]) {
                self.fix_cross(grid, level, bucket, &members);
                changed = true;
            }
            if !changed {
                return;
            }
        }
    }

    /// The parts of a coarse cell two levels deep: each finer cell as it
    /// is when published, or its own finer cells when it is withheld. A
    /// day's withheld hour is partly known from its published quarters, so
    /// `day - published hours - published quarters of withheld hours` is
    /// what the day reveals of the withheld quarters; the plain relation
    /// (day over hours) cannot see that. Empty below the day.
    fn expanded(&self, grid: &DayGrid, level: Level, bucket: usize, slot: usize) -> Vec<Entry> {
        let Some((finer, n)) = level.finer() else {
            return Vec::new();
        };
        let Some((finest, m)) = finer.finer() else {
            return Vec::new();
        };
        let mut parts = Vec::new();
        for c in bucket * n..(bucket + 1) * n {
            let part = self.entry(grid, finer, c, slot);
            if part.withheld {
                parts.extend((c * m..(c + 1) * m).map(|f| self.entry(grid, finest, f, slot)));
            } else {
                parts.push(part);
            }
        }
        parts
    }

    /// Withholds at least one published member of a violated cross-section.
    fn fix_cross(&mut self, grid: &DayGrid, level: Level, bucket: usize, members: &[Entry]) {
        let published: Vec<usize> = (0..members.len())
            .filter(|&m| !members[m].withheld)
            .collect();
        let candidates = published.iter().copied();
        let pick = match level.finer() {
            // Lines before the total (slot 0); positive lines first, as a
            // withheld zero hides nothing.
            None => {
                let lines = candidates.filter(|&m| m > 0);
                let line = lines.min_by_key(|&m| (members[m].value == 0, members[m].value));
                line.or(published.first().copied())
            }
            // Any other member could be re-derived from its finer cells.
            Some((finer, n)) => {
                let children = bucket * n..(bucket + 1) * n;
                let hides = |&m: &usize| {
                    children
                        .clone()
                        .any(|c| self.entry(grid, finer, c, m).withheld)
                };
                candidates.filter(hides).min_by_key(|&m| members[m].value)
            }
        };
        match pick {
            Some(m) => self.withhold(grid, level, bucket, m),
            None => {
                for &m in &published {
                    self.withhold(grid, level, bucket, m);
                }
                self.fallbacks += 1;
            }
        }
    }
}

/// Whether `total = Σ parts` lets a withheld value be derived or bounded
/// below k: exactly one cell withheld, or a published total over withheld
/// parts that together are small.
fn violated(k: u64, total: Entry, parts: &[Entry]) -> bool {
    if parts.is_empty() {
        return false;
    }
    let withheld = parts.iter().filter(|p| p.withheld);
    let count = usize::from(total.withheld) + withheld.clone().count();
    // Parts sum to the total, which fits in u64.
    let hidden: u64 = withheld.map(|p| p.value).sum();
    count == 1 || (!total.withheld && hidden > 0 && hidden < k)
}

/// Laplace noise for counts: ε-differential privacy for a query of the
/// given sensitivity, drawn from the operating system's CSPRNG.
#[derive(Clone, Debug)]
pub struct LaplaceNoise {
    scale: f64,
    rng: SystemRandom,
}

impl LaplaceNoise {
    pub fn new(epsilon: f64, sensitivity: f64) -> Result<Self, DisclosureError> {
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(DisclosureError::InvalidEpsilon(epsilon));
        }
        if !(sensitivity > 0.0 && sensitivity.is_finite()) {
            return Err(DisclosureError::InvalidSensitivity(sensitivity));
        }
        let scale = sensitivity / epsilon;
        if !scale.is_finite() {
            return Err(DisclosureError::InvalidEpsilon(epsilon));
        }
        let rng = SystemRandom::new();
        Ok(LaplaceNoise { scale, rng })
    }

    /// The Laplace scale b = sensitivity / ε.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// E|noise| of the Laplace draw (before rounding), which equals b.
    pub fn expected_abs_error(&self) -> f64 {
        self.scale
    }

    /// The count plus noise, rounded and clamped at zero. Both are
    /// post-processing, so the ε guarantee holds.
    pub fn noisy_count(&self, true_value: u64) -> Result<u64, DisclosureError> {
        let noisy = (true_value as f64 + self.sample()?).round();
        // `as` saturates at u64::MAX.
        Ok(if noisy <= 0.0 { 0 } else { noisy as u64 })
    }

    /// Inverse CDF -b·sgn(u-½)·ln(1-2|u-½|), with u uniform in (0,1), drawn
    /// as its sign (top bit) and 1-2|u-½| (53 bits, uniform in (0,1]): exact
    /// in f64, so the tail keeps its precision and ln(0) cannot occur.
    fn sample(&self) -> Result<f64, DisclosureError> {
        let mut bytes = [0u8; 8];
        let filled = self.rng.fill(&mut bytes);
        filled.map_err(|_| DisclosureError::Random)?;
        let bits = u64::from_le_bytes(bytes);
        let mantissa = (bits & ((1 << 53) - 1)) + 1;
        let v = mantissa as f64 / (1u64 << 53) as f64;
        let sign = if bits >> 63 == 1 { -1.0 } else { 1.0 };
        Ok(-sign * self.scale * v.ln())
    }
}

/// Slack for float sums of charges (0.1 + 0.2 must fit a budget of 0.3).
const BUDGET_SLACK: f64 = 1e-9;

/// The ε ledger of one UTC day of data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub daily: f64,
    pub spent: f64,
}

impl Budget {
    pub fn remaining(&self) -> f64 {
        (self.daily - self.spent).max(0.0)
    }

    /// The new `spent` after a release costing `epsilon`. A negative or
    /// non-finite `epsilon` is refused too: it would refund or poison the
    /// ledger. Written so that a NaN anywhere refuses.
    pub fn charge(&self, epsilon: f64) -> Result<f64, BudgetExhausted> {
        let spent = self.spent + epsilon;
        if epsilon >= 0.0 && spent <= self.daily + BUDGET_SLACK {
            Ok(spent)
        } else {
            let (daily, spent, asked) = (self.daily, self.spent, epsilon);
            Err(BudgetExhausted {
                daily,
                spent,
                asked,
            })
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "the privacy budget of ε={} for this day of data is spent ({} used, a release needs {}); \
     the day's later buckets are withheld",
    short(.daily),
    short(.spent),
    short(.asked)
)]
pub struct BudgetExhausted {
    pub daily: f64,
    pub spent: f64,
    pub asked: f64,
}

/// Float sums print as 0.3, not 0.30000000000000004.
fn short(x: &f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::Level::{Day, Hour, QuarterHour as Q};
    use super::Member::{Line, Total};
    use super::*;

    type Cell = (Level, usize, Member);
    const PRIMARY: Option<Decision> = Some(Decision::Withheld(Reason::Primary));
    const SECONDARY: Option<Decision> = Some(Decision::Withheld(Reason::Secondary));

    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn members(lines: usize) -> impl Iterator<Item = Member> {
        std::iter::once(Total).chain((0..lines).map(Line))
    }

    fn grid(lines: usize, set: &[(usize, Vec<u64>)]) -> DayGrid {
        let mut quarters = vec![vec![0; lines]; QUARTERS];
        for (q, parts) in set {
            quarters[*q] = parts.clone();
        }
        DayGrid::from_quarters(lines, &quarters).unwrap()
    }

    /// A day with quiet nights, busy rush hours and lines of unequal use.
    fn random_day(rng: &mut XorShift) -> DayGrid {
        let lines = 1 + rng.below(4) as usize;
        let shift: Vec<u64> = (0..lines).map(|_| rng.below(4)).collect();
        let quarters: Vec<Vec<u64>> = (0..QUARTERS)
            .map(|q| {
                let max = match q / 4 {
                    0..=5 | 22..=23 => 4,
                    7..=9 | 16..=18 => 80,
                    _ => 20,
                };
                shift.iter().map(|s| rng.below((max >> s).max(2))).collect()
            })
            .collect();
        DayGrid::from_quarters(lines, &quarters).unwrap()
    }

    /// Every cell of the buckets that have ended.
    fn cells(lines: usize, ended: usize) -> Vec<Cell> {
        let mut cells = Vec::new();
        for level in Level::ALL {
            for b in 0..level.ended_buckets(ended) {
                cells.extend(members(lines).map(|m| (level, b, m)));
            }
        }
        cells
    }

    /// Independent checker: published cells below k (zero included), and the
    /// withheld cells of every relation with exactly one withheld cell, or
    /// with a published total over withheld parts that sum into (0, k).
    fn derivable(g: &DayGrid, s: &Suppression, k: u64, ended: usize) -> Vec<Cell> {
        let out = |c: &Cell| s.withheld(c.0, c.1, c.2);
        let small = |c: &Cell| g.value(c.0, c.1, c.2).unwrap() < k;
        let check = |total: Cell, parts: Vec<Cell>| {
            let hidden = parts.iter().filter(|c| out(c));
            let hidden: u64 = hidden.map(|c| g.value(c.0, c.1, c.2).unwrap()).sum();
            let cells: Vec<Cell> = parts.into_iter().chain([total]).filter(out).collect();
            let leaks = cells.len() == 1 || (!out(&total) && hidden > 0 && hidden < k);
            if leaks {
                cells
            } else {
                Vec::new()
            }
        };
        let all = cells(g.lines(), ended);
        let mut found: Vec<Cell> = all
            .iter()
            .copied()
            .filter(|c| small(c) && !out(c))
            .collect();
        for (level, b, m) in all {
            if m == Total {
                let lines = (0..g.lines()).map(|i| (level, b, Line(i)));
                found.extend(check((level, b, Total), lines.collect()));
            }
            if let Some((finer, n)) = level.finer() {
                let parts: Vec<Cell> = (b * n..(b + 1) * n).map(|c| (finer, c, m)).collect();
                found.extend(check((level, b, m), parts.clone()));
                // Two levels deep: a withheld hour is partly known from its
                // published quarters.
                if let Some((finest, k4)) = finer.finer() {
                    let deep = parts.into_iter().flat_map(|c| {
                        if out(&c) {
                            (c.1 * k4..(c.1 + 1) * k4).map(|f| (finest, f, m)).collect()
                        } else {
                            vec![c]
                        }
                    });
                    found.extend(check((level, b, m), deep.collect()));
                }
            }
        }
        found
    }

    fn stats(primary: usize, secondary: usize) -> SuppressionStats {
        let fallbacks = 0;
        SuppressionStats {
            primary,
            secondary,
            fallbacks,
        }
    }

    #[test]
    fn primary_withholds_every_count_below_k_zero_included() {
        // Quarter v holds v on the space's one line.
        let g = grid(1, &(0..=6).map(|v| (v, vec![v as u64])).collect::<Vec<_>>());
        let s = suppress(&g, 5, 7).unwrap();
        for v in 0..=6 {
            for m in [Total, Line(0)] {
                assert_eq!(s.decision(Q, v, m) == PRIMARY, v < 5, "{v}");
            }
        }
        // A zero is withheld like a 3, so a withheld cell says only "fewer than k".
        assert_eq!(s.decision(Q, 0, Line(0)), s.decision(Q, 3, Line(0)));
        // Hour 0 (6 = 0+1+2+3) hides four quarters; hour 1 has not ended.
        assert!(s.published(Hour, 0, Line(0)));
        assert_eq!(s.decision(Hour, 1, Total), Some(Decision::Pending));
        assert!(s.withheld(Hour, 1, Total));
        assert_eq!(s.decision(Q, 0, Line(2)), None);
        assert!(derivable(&g, &s, 5, 7).is_empty());
    }

    #[test]
    fn quiet_quarters_around_a_busy_one_leave_the_hour_published() {
        // 10 in quarter 0 and nothing else: three zeros are withheld, their
        // sum (0) reveals only what the band allows, so the hour stands.
        let g = grid(1, &[(0, vec![10])]);
        let s = suppress(&g, 5, 4).unwrap();
        assert!(s.published(Q, 0, Line(0)) && s.published(Hour, 0, Line(0)));
        for q in 1..4 {
            assert_eq!(s.decision(Q, q, Line(0)), PRIMARY);
        }
        assert!(derivable(&g, &s, 5, 4).is_empty());
    }

    #[test]
    fn one_withheld_part_takes_exactly_one_more() {
        let g = grid(3, &[(0, vec![2, 10, 20])]);
        let s = suppress(&g, 5, 1).unwrap();
        assert_eq!(s.decision(Q, 0, Line(0)), PRIMARY);
        assert_eq!(s.decision(Q, 0, Line(1)), SECONDARY);
        assert!(s.published(Q, 0, Line(2)) && s.published(Q, 0, Total));
        assert_eq!(s.stats(), stats(1, 1));
        assert!(derivable(&g, &s, 5, 1).is_empty());
        // Two small parts together are still small, so a third goes too;
        // a zero is withheld like any count below k, and the 20 goes with it.
        let g = grid(3, &[(0, vec![1, 2, 20]), (1, vec![1, 0, 20])]);
        let s = suppress(&g, 5, 2).unwrap();
        assert_eq!(s.decision(Q, 0, Line(2)), SECONDARY);
        assert_eq!(s.decision(Q, 1, Line(1)), PRIMARY);
        assert_eq!(s.decision(Q, 1, Line(2)), SECONDARY);
        assert_eq!(s.stats(), stats(4, 2));
        assert!(derivable(&g, &s, 5, 2).is_empty());
    }

    #[test]
    fn random_days_leave_nothing_derivable() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut total = stats(0, 0);
        for _ in 0..400 {
            let g = random_day(&mut rng);
            let k = [DEFAULT_K, 2, 3, 10][rng.below(4) as usize];
            let ended = [QUARTERS, rng.below(QUARTERS as u64 + 1) as usize][rng.below(2) as usize];
            let s = suppress(&g, k, ended).unwrap();
            let leaks = derivable(&g, &s, u64::from(k), ended);
            assert!(leaks.is_empty(), "k {k} ended {ended}: {leaks:?} in {g:?}");
            let small = cells(g.lines(), ended).into_iter();
            let small = small.filter(|c| g.value(c.0, c.1, c.2).unwrap() < u64::from(k));
            let small = small.count();
            assert_eq!((s.stats().primary, s.stats().fallbacks), (small, 0));
            // A one-line space's total follows its line everywhere.
            let cells: Vec<_> = s.decisions.iter().flatten().collect();
            assert!(g.lines() > 1 || cells.chunks(2).all(|c| c[0] == c[1]));
            total.primary += s.stats().primary;
            total.secondary += s.stats().secondary;
        }
        // The days did exercise both kinds.
        assert!(total.primary > 1000 && total.secondary > 1000, "{total:?}");
    }

    #[test]
    fn earlier_decisions_never_change() {
        let mut rng = XorShift(42);
        for _ in 0..20 {
            let g = random_day(&mut rng);
            let run = |g: &DayGrid, n| suppress(g, DEFAULT_K, n).unwrap();
            let runs: Vec<_> = (0..=QUARTERS).map(|n| run(&g, n)).collect();
            for n in 0..QUARTERS {
                for (level, i) in Level::ALL.into_iter().zip(0..) {
                    let (now, next) = (&runs[n].decisions[i], &runs[n + 1].decisions[i]);
                    let ended = level.ended_buckets(n) * (g.lines() + 1);
                    assert_eq!(now[..ended], next[..ended], "{level:?} at {n}");
                    assert!(now[ended..].iter().all(|&d| d == Decision::Pending));
                }
            }
            // Nor do they read the data of quarters that have not ended.
            let n = rng.below(QUARTERS as u64) as usize;
            let later = random_day(&mut rng);
            let source = |q| if q < n { &g } else { &later };
            let part = |q, i| source(q).value(Q, q, Line(i)).unwrap_or(7);
            let quarters: Vec<Vec<u64>> = (0..QUARTERS)
                .map(|q| (0..g.lines()).map(|i| part(q, i)).collect())
                .collect();
            let mixed = DayGrid::from_quarters(g.lines(), &quarters).unwrap();
            assert_eq!(run(&mixed, n), runs[n]);
        }
    }

    #[test]
    fn one_line_space_total_follows_its_line() {
        let g = grid(1, &[(0, vec![3]), (1, vec![7]), (4, vec![9])]);
        let s = suppress(&g, 5, QUARTERS).unwrap();
        for m in [Total, Line(0)] {
            assert_eq!(s.decision(Q, 0, m), PRIMARY);
            assert!(s.published(Q, 1, m));
            // Hour 0 is 10: with the 7 published it would reveal the 3.
            assert_eq!(s.decision(Hour, 0, m), SECONDARY);
            assert!(s.published(Hour, 1, m));
            // The day (19) less hour 1 (9) and quarter 1 (7) would reveal
            // that the withheld quarters hold 3, two levels down.
            assert_eq!(s.decision(Day, 0, m), SECONDARY);
        }
        // 94 quarters and 22 hours below k on each member; hour 0 and the day.
        assert_eq!(s.stats(), stats(2 * (94 + 22), 4));
        assert!(derivable(&g, &s, 5, QUARTERS).is_empty());
    }

    #[test]
    fn bad_inputs_are_refused() {
        let g = grid(2, &[]);
        assert_eq!(suppress(&g, 1, 0), Err(DisclosureError::InvalidK(1)));
        assert_eq!(suppress(&g, 5, 97), Err(DisclosureError::EndedQuarters(97)));
        let shape = |lines| Err(DisclosureError::Shape { lines });
        assert_eq!(DayGrid::from_quarters(0, &vec![vec![]; QUARTERS]), shape(0));
        assert_eq!(DayGrid::from_quarters(2, &[vec![1, 2]]), shape(2));
        let huge = DayGrid::from_quarters(1, &vec![vec![u64::MAX / 2]; QUARTERS]);
        assert_eq!(huge, Err(DisclosureError::Overflow));
        assert_eq!(g.value(Day, 0, Total), Some(0));
        assert_eq!(g.value(Day, 1, Total), None);
    }

    #[test]
    fn laplace_noise_is_centred_with_the_expected_spread() {
        let noise = LaplaceNoise::new(0.2, 1.0).unwrap();
        let b = noise.scale();
        assert!((b - 5.0).abs() < 1e-12 && noise.expected_abs_error() == b);
        let n = 20_000;
        let error = |_| noise.noisy_count(1000).unwrap() as f64 - 1000.0;
        let errors: Vec<f64> = (0..n).map(error).collect();
        let mean = errors.iter().sum::<f64>() / n as f64;
        let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / n as f64;
        // Standard errors are about 0.05 (mean) and 0.035 (MAE): the bounds
        // are 10 and 14 of them.
        assert!(mean.abs() < 0.1 * b, "mean {mean}");
        assert!((mae - b).abs() < 0.1 * b, "mae {mae}");
        // Clamped at zero: a true zero comes out as zero over half the time.
        let zeros = (0..2000).filter(|_| noise.noisy_count(0) == Ok(0)).count();
        assert!(zeros > 900, "{zeros}");
        for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let refused = LaplaceNoise::new(eps, 1.0).unwrap_err();
            assert!(
                matches!(refused, DisclosureError::InvalidEpsilon(_)),
                "{eps}"
            );
        }
        // A scale that overflows is refused too.
        let refused = LaplaceNoise::new(1e-320, 1e10).unwrap_err();
        assert!(matches!(refused, DisclosureError::InvalidEpsilon(_)));
        let refused = LaplaceNoise::new(1.0, 0.0).unwrap_err();
        assert!(matches!(refused, DisclosureError::InvalidSensitivity(_)));
    }

    #[test]
    fn budget_charges_until_spent() {
        let budget = |daily, spent| Budget { daily, spent };
        let mut b = budget(0.3, 0.0);
        for _ in 0..3 {
            b.spent = b.charge(0.1).unwrap();
        }
        // 0.1 + 0.1 + 0.1 exceeds 0.3 in floats; the slack lets it fit.
        assert!(b.remaining() < 1e-9);
        let refused = b.charge(0.1).unwrap_err();
        let (daily, spent, asked) = (0.3, b.spent, 0.1);
        assert_eq!(
            refused,
            BudgetExhausted {
                daily,
                spent,
                asked
            }
        );
        assert_eq!(
            refused.to_string(),
            "the privacy budget of ε=0.3 for this day of data is spent \
             (0.3 used, a release needs 0.1); the day's later buckets are withheld"
        );
        let b = budget(1.0, 0.25);
        assert_eq!((b.remaining(), b.charge(0.75)), (0.75, Ok(1.0)));
        for refused in [0.76, -0.1, f64::NAN, f64::INFINITY] {
            assert!(b.charge(refused).is_err(), "{refused}");
        }
        assert!(budget(f64::NAN, 0.0).charge(0.1).is_err());
        assert_eq!(budget(1.0, 2.0).remaining(), 0.0);
    }
}
