//! The fleet feed: what an appliance tells the outside world without being
//! asked per request (MQTT, Prometheus). It carries exactly the published
//! aggregates (`storage::governance`: small counts withheld, decided once per
//! bucket) and, when the config turns differential privacy on, Laplace noise
//! drawn once per bucket, so that a subscriber cannot average it away by
//! reading the same bucket again. Buckets of one width are disjoint, so each
//! crossing or presence is noised in one bucket per width.

use crate::clock::UnixMs;
use crate::config::DpConfig;
use crate::disclosure::LaplaceNoise;
use crate::retention::{DAY_MS, HOUR_MS};
use crate::storage::governance::{PublishedRow, QUARTER_MS};
use crate::storage::{Database, StorageError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Published widths and their labels.
pub const WIDTHS: [(i64, &str); 3] = [(QUARTER_MS, "15m"), (HOUR_MS, "1h"), (DAY_MS, "1d")];

/// The L1 sensitivity of one bucket to one person's event: a crossing counts
/// in its entrance and in the space total, and a presence raises the peak
/// and the mean occupancy by at most one each.
pub const SENSITIVITY: f64 = 4.0;

/// One published bucket of one space: what any external consumer sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedBucket {
    pub start: String,
    pub end: String,
    #[serde(skip)]
    pub start_ms: UnixMs,
    pub entries: Option<u64>,
    pub exits: Option<u64>,
    pub occupancy_mean: Option<f64>,
    pub occupancy_peak: Option<u64>,
    /// Measures withheld because they are small or would reveal one that is;
    /// their values are null.
    pub withheld: Vec<String>,
    pub entrances: Vec<PublishedEntrance>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedEntrance {
    pub line: String,
    pub entries: Option<u64>,
    pub exits: Option<u64>,
    pub withheld: Vec<String>,
}

/// Published rows (ordered by bucket, the whole space first in each) as
/// buckets, with Laplace noise on every value when `noise` is given. A
/// failed draw withholds the value rather than show it exact.
pub fn published_buckets(
    rows: Vec<PublishedRow>,
    width: i64,
    noise: Option<&LaplaceNoise>,
) -> Vec<PublishedBucket> {
    let noisy = |v: Option<u64>| match (noise, v) {
        (Some(n), Some(v)) => n.noisy_count(v).ok(),
        (None, v) => v,
        (_, None) => None,
    };
    let mut out: Vec<PublishedBucket> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|b| b.start_ms != row.bucket_start) {
            out.push(PublishedBucket {
                start: crate::api::rfc3339(row.bucket_start),
                end: crate::api::rfc3339(row.bucket_start + width),
                start_ms: row.bucket_start,
                entries: None,
                exits: None,
                occupancy_mean: None,
                occupancy_peak: None,
                withheld: Vec::new(),
                entrances: Vec::new(),
            });
        }
        let Some(bucket) = out.last_mut() else {
            continue;
        };
        if row.member.is_empty() {
            bucket.entries = noisy(row.entries);
            bucket.exits = noisy(row.exits);
            bucket.occupancy_peak = noisy(row.occupancy_peak.map(u64::from));
            bucket.occupancy_mean = match noise {
                // Noised as a whole number of people.
                Some(_) => noisy(row.occupancy_mean.map(|m| m.round() as u64)).map(|v| v as f64),
                None => row.occupancy_mean,
            };
            bucket.withheld = row.withheld;
        } else {
            bucket.entrances.push(PublishedEntrance {
                line: row.member,
                entries: noisy(row.entries),
                exits: noisy(row.exits),
                withheld: row.withheld,
            });
        }
    }
    out
}

/// A published bucket as the fleet sends it: with its site, space and width.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetBucket {
    pub site: String,
    pub space: String,
    pub bucket: &'static str,
    #[serde(flatten)]
    pub cells: PublishedBucket,
    /// The epsilon of the noise in these numbers; None: exact.
    pub epsilon: Option<f64>,
}

/// JSON-LD contexts of an NGSI-LD `CrowdFlowObserved` entity.
const NGSI_LD_CONTEXT: [&str; 2] = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
];

impl FleetBucket {
    /// The bucket as a FIWARE Smart Data Models `CrowdFlowObserved` entity in
    /// NGSI-LD normalized form: entries as `peopleCountTowards`, exits as
    /// `peopleCountAway`, both together as `peopleCount`. A withheld value is
    /// left out (NGSI-LD has no null), and so is a sum with a withheld part.
    pub fn ngsi_ld(&self) -> serde_json::Value {
        use serde_json::json;
        let property = |value: serde_json::Value| json!({ "type": "Property", "value": value });
        let time = |at: &str| property(json!({ "@type": "DateTime", "@value": at }));
        let cells = &self.cells;
        let mut entity = serde_json::Map::new();
        let id = format!(
            "urn:ngsi-ld:CrowdFlowObserved:{}:{}:{}",
            self.site, self.space, self.bucket
        );
        entity.insert("id".into(), json!(id));
        entity.insert("type".into(), json!("CrowdFlowObserved"));
        entity.insert("name".into(), property(json!(self.space)));
        entity.insert(
            "dataProvider".into(),
            property(json!(format!("headcount:{}", self.site))),
        );
        entity.insert(
            "dateObserved".into(),
            property(json!(format!("{}/{}", cells.start, cells.end))),
        );
        entity.insert("dateObservedFrom".into(), time(&cells.start));
        entity.insert("dateObservedTo".into(), time(&cells.end));
        if let Some(entries) = cells.entries {
            entity.insert("peopleCountTowards".into(), property(json!(entries)));
        }
        if let Some(exits) = cells.exits {
            entity.insert("peopleCountAway".into(), property(json!(exits)));
        }
        if let (Some(entries), Some(exits)) = (cells.entries, cells.exits) {
            entity.insert("peopleCount".into(), property(json!(entries + exits)));
        }
        entity.insert("@context".into(), json!(NGSI_LD_CONTEXT));
        serde_json::Value::Object(entity)
    }
}

/// The latest fleet bucket of each space and width, for `/metrics`.
#[derive(Clone, Default)]
pub struct FleetBoard(Arc<RwLock<BTreeMap<(String, &'static str), FleetBucket>>>);

impl FleetBoard {
    pub fn latest(&self) -> Vec<FleetBucket> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn put(&self, bucket: FleetBucket) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((bucket.space.clone(), bucket.bucket), bucket);
    }
}

/// Reads newly published buckets and hands each out once.
pub struct FleetFeed {
    site: String,
    database: PathBuf,
    spaces: Vec<String>,
    noise: Option<(f64, LaplaceNoise)>,
    board: FleetBoard,
    /// Per width, buckets starting before this were handed out.
    next: BTreeMap<i64, UnixMs>,
}

impl FleetFeed {
    pub fn new(
        site: &str,
        database: PathBuf,
        spaces: Vec<String>,
        dp: Option<DpConfig>,
        board: FleetBoard,
    ) -> Result<FleetFeed, crate::disclosure::DisclosureError> {
        let noise = dp
            .map(|d| LaplaceNoise::new(d.epsilon, SENSITIVITY).map(|n| (d.epsilon, n)))
            .transpose()?;
        Ok(FleetFeed {
            site: site.to_string(),
            database,
            spaces,
            noise,
            board,
            next: BTreeMap::new(),
        })
    }

    /// Buckets published since the last poll (on the first poll: the latest
    /// of each space and width), oldest first.
    pub fn poll(&mut self) -> Result<Vec<FleetBucket>, StorageError> {
        let db = Database::open_read_only(&self.database)?;
        let mut out = Vec::new();
        for (width, label) in WIDTHS {
            let Some(mark) = db.rollup_mark(width)? else {
                continue;
            };
            for space in &self.spaces {
                let from = match self.next.get(&width) {
                    Some(&next) => next,
                    // First poll: only the newest bucket, so that a restart
                    // does not replay history.
                    None => match db.latest_published(width, space)? {
                        Some(latest) => latest,
                        None => continue,
                    },
                };
                let rows = db.published_aggregates(width, space, from, mark)?;
                let noise = self.noise.as_ref().map(|(_, n)| n);
                out.extend(
                    published_buckets(rows, width, noise)
                        .into_iter()
                        .map(|cells| FleetBucket {
                            site: self.site.clone(),
                            space: space.clone(),
                            bucket: label,
                            cells,
                            epsilon: self.noise.as_ref().map(|(e, _)| *e),
                        }),
                );
            }
            self.next.insert(width, mark);
        }
        out.sort_by_key(|b| b.cells.start_ms);
        for bucket in &out {
            self.board.put(bucket.clone());
        }
        Ok(out)
    }
}
