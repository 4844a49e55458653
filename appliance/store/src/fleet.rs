//! Published buckets as every consumer outside the site receives them: the
//! planners' `/api/v1/aggregates`, `/metrics` and the MQTT fleet feed all
//! carry exactly the cells stored at publication (`storage::publication`:
//! per space, counts below k withheld, noise drawn once and stored), so no
//! consumer can average noise away or see a cell another does not.

use crate::publication::{PublishedRow, WIDTHS};
use crate::{Database, StorageError};
use headcount_domain::clock::UnixMs;
use serde::Serialize;

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
    /// Measures withheld: fewer than k (zero included), would reveal one
    /// that is, or past the day's privacy budget; their values are null.
    pub withheld: Vec<String>,
    /// The epsilon of the Laplace noise in these values (drawn once, at
    /// publication); null: exact.
    pub epsilon: Option<f64>,
}

/// A stored row as the wire shows it.
pub fn published_bucket(row: PublishedRow, width: i64) -> PublishedBucket {
    PublishedBucket {
        start: headcount_domain::clock::rfc3339(row.bucket_start),
        end: headcount_domain::clock::rfc3339(row.bucket_start + width),
        start_ms: row.bucket_start,
        entries: row.entries,
        exits: row.exits,
        occupancy_mean: row.occupancy_mean,
        occupancy_peak: row.occupancy_peak,
        withheld: row.withheld,
        epsilon: row.epsilon,
    }
}

/// A published bucket as the fleet sends it: with its site, space and width.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetBucket {
    /// The idempotency key, `site/space/width/start`: the same for every
    /// delivery of this bucket, so a subscriber can drop a repeat.
    pub id: String,
    pub site: String,
    pub space: String,
    pub bucket: &'static str,
    #[serde(flatten)]
    pub cells: PublishedBucket,
}

/// The version of the fleet's payloads (`docs/schemas/`): a subscriber
/// that reads another refuses rather than misreads.
pub const SCHEMA_VERSION: u32 = 1;

/// What a city's subscriber needs to read the buckets of a site: its
/// spaces and their capacities, its time zone and location, the widths and
/// the disclosure threshold k. Retained on `{prefix}/{site}/descriptor`.
pub fn site_descriptor(config: &headcount_domain::config::Config) -> serde_json::Value {
    serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "site": config.site,
        "timezone": config.timezone.iana_name().unwrap_or("UTC"),
        "location": config.location.map(|(latitude, longitude)| {
            serde_json::json!({ "latitude": latitude, "longitude": longitude })
        }),
        "k": config.aggregates.k,
        "differential_privacy": config.aggregates.differential_privacy.is_some(),
        "widths": WIDTHS.iter().map(|(_, label)| *label).collect::<Vec<_>>(),
        "spaces": config
            .spaces
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "capacity": s.capacity }))
            .collect::<Vec<_>>(),
    })
}

/// The JSON-LD context of the `CrowdFlowObserved` entities: the IRI of
/// each term the appliance sends, as the Smart Data Models attribute
/// database gives them (`scripts/validate_ngsi.py` checks each), shipped
/// in `docs/ngsi-ld/context.jsonld` and sent inline, so that no consumer
/// fetches a context from a public URL. NGSI-LD brokers add their core
/// context (`Property`, `value`) themselves.
const NGSI_LD_CONTEXT: &str = include_str!("../../../docs/ngsi-ld/context.jsonld");

impl FleetBucket {
    pub fn new(site: &str, space: &str, width: i64, row: PublishedRow) -> FleetBucket {
        let label = WIDTHS
            .iter()
            .find(|(w, _)| *w == width)
            .map_or("?", |(_, l)| *l);
        let cells = published_bucket(row, width);
        FleetBucket {
            id: format!("{site}/{space}/{label}/{}", cells.start),
            site: site.to_string(),
            space: space.to_string(),
            bucket: label,
            cells,
        }
    }

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
        let context: serde_json::Value =
            serde_json::from_str(NGSI_LD_CONTEXT).unwrap_or(serde_json::Value::Null);
        entity.insert("@context".into(), json!([context["@context"]]));
        serde_json::Value::Object(entity)
    }
}

/// The newest published bucket of each space and width, for `/metrics`.
pub fn latest(
    db: &Database,
    site: &str,
    spaces: &[String],
) -> Result<Vec<FleetBucket>, StorageError> {
    let mut out = Vec::new();
    for space in spaces {
        for (width, _) in WIDTHS {
            if let Some(row) = db.latest_published(width, space)? {
                out.push(FleetBucket::new(site, space, width, row));
            }
        }
    }
    Ok(out)
}

/// Milliseconds of a bucket label (`15m`, `1h`, `1d`).
pub fn width_of(label: &str) -> Option<i64> {
    WIDTHS.iter().find(|(_, l)| *l == label).map(|(w, _)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_context_defines_every_term_an_entity_carries() {
        let row = PublishedRow {
            bucket_start: 1_796_205_600_000,
            entries: Some(12),
            exits: Some(9),
            occupancy_mean: Some(4.5),
            occupancy_peak: Some(7),
            withheld: Vec::new(),
            epsilon: None,
        };
        let entity = FleetBucket::new("hq", "hall", 15 * 60_000, row).ngsi_ld();
        let context = entity["@context"][0]
            .as_object()
            .expect("an inline context object");
        assert!(context.contains_key("CrowdFlowObserved"));
        for term in entity.as_object().unwrap().keys() {
            if !["id", "type", "@context"].contains(&term.as_str()) {
                assert!(context.contains_key(term), "{term} is not in the context");
            }
        }
        assert_eq!(entity["peopleCount"]["value"], 21);
    }
}
