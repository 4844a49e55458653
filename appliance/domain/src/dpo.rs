//! The data-protection officer's documents, generated from the config so
//! that they describe what this appliance actually does: the GDPR Art. 30
//! record of processing activities ([`ProcessingRecord`]), the Art. 13
//! first-layer notice for the sign at each camera ([`notice`], after EDPB
//! guidelines 3/2019 on video devices; in each language of `text::Lang`,
//! its words in `dpo/locales/*.ftl`) and a draft Art. 35 impact assessment
//! ([`dpia`]).
//!
//! Both read only the validated `Config`: no database, no clock (the caller
//! passes the time), so the CLI and the API produce the same text.

use crate::clock::UnixMs;
use crate::config::DEFAULT_LEGAL_BASIS;
use crate::config::{Config, Tls};
use crate::disclosure::policy::{self, Class, Exit};
use crate::pixels::redaction::RedactionMode;
use crate::retention::{format_lifetime, lifetime_parts, DataClass};
use crate::security::events::SyslogTarget;
use crate::security::Role;
pub use dpia::dpia;
use serde::Serialize;
use std::fmt::Write;
pub use text::Lang;
use text::Texts;

mod dpia;
mod text;

/// What the record says for a camera without `purpose`.
const NOT_STATED: &str = "not stated";
/// Signs are printed: lines short enough for A4 in a large font.
const SIGN_WIDTH: usize = 48;

/// The GDPR Art. 30(1) record for this appliance's processing.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessingRecord {
    pub site: String,
    pub generated_at: UnixMs,
    /// `generated_at` as RFC 3339, UTC.
    pub generated_at_utc: String,
    /// None: `[controller]` is not configured (also listed in `gaps`).
    pub controller: Option<ControllerEntry>,
    /// One processing activity per camera.
    pub activities: Vec<Activity>,
    pub data_subjects: Vec<String>,
    pub personal_data: PersonalData,
    pub recipients: Vec<String>,
    /// Anomalies are person-related events: their purpose, lifetime and how
    /// they leave the box.
    pub person_related_events: EventsEntry,
    /// Zones whose capacity is below k, counted anyway, with why.
    pub small_zones: Vec<SmallZone>,
    pub third_country_transfers: String,
    pub retention: Vec<RetentionEntry>,
    pub measures: Vec<Measure>,
    /// What the record lacks that Art. 30 asks for, with the config key to set.
    pub gaps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventsEntry {
    pub purpose: String,
    pub kinds: Vec<&'static str>,
    /// The events class's lifetime, counted from each anomaly's end.
    pub limit: String,
    /// What leaves the box, and where.
    pub pushes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmallZone {
    /// `camera.zone`
    pub zone: String,
    pub capacity: u32,
    pub justification: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControllerEntry {
    pub name: String,
    pub contact: String,
    pub dpo_contact: Option<String>,
    pub information: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub camera: String,
    /// "not stated" when the config has none (then `purpose_stated` is false).
    pub purpose: String,
    pub purpose_stated: bool,
    pub legal_basis: String,
    pub zones: Vec<String>,
    pub lines: Vec<String>,
    /// Parts of the view blanked before any analysis (Art. 25: data
    /// protection by design), by name.
    pub privacy_masks: Vec<String>,
    pub analysis_fps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonalData {
    /// Processed in memory only, never stored.
    pub in_memory: Vec<Category>,
    /// Every data class the appliance keeps (lifetimes in `retention`).
    pub classes: Vec<ClassEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Category {
    pub category: String,
    pub handling: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassEntry {
    pub class: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionEntry {
    pub class: &'static str,
    /// As configured, e.g. `72h`, `90d`, `2y`.
    pub limit: String,
    pub limit_ms: i64,
    /// The longest lifetime allowed without a justification.
    pub maximum: String,
    pub justification: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub measure: &'static str,
    pub detail: String,
}

impl ProcessingRecord {
    pub fn from_config(config: &Config, now: UnixMs) -> ProcessingRecord {
        let mut gaps = Vec::new();
        let controller = config.controller.as_ref().map(|c| ControllerEntry {
            name: c.name.clone(),
            contact: c.contact.clone(),
            dpo_contact: c.dpo_contact.clone(),
            information: c.information.clone(),
        });
        if controller.is_none() {
            gaps.push(
                "controller: not configured; add a [controller] section with name and contact (GDPR Art. 30(1)(a))"
                    .to_string(),
            );
        }
        let activities: Vec<Activity> = config
            .cameras
            .iter()
            .map(|c| {
                if c.purpose.is_none() {
                    gaps.push(format!(
                        "cameras.{}.purpose: not stated; every camera needs a specified purpose (GDPR Art. 5(1)(b), 30(1)(b))",
                        c.id
                    ));
                }
                Activity {
                    camera: c.id.to_string(),
                    purpose: c.purpose.clone().unwrap_or_else(|| NOT_STATED.into()),
                    purpose_stated: c.purpose.is_some(),
                    legal_basis: c.legal_basis.clone(),
                    zones: c.zones.iter().map(|z| z.name.clone()).collect(),
                    lines: c.lines.iter().map(|l| l.name.clone()).collect(),
                    privacy_masks: c.masks.iter().map(|m| m.name.clone()).collect(),
                    analysis_fps: c.analysis_fps,
                }
            })
            .collect();

        let mut recipients: Vec<String> = config
            .controller
            .iter()
            .flat_map(|c| c.recipients.iter().cloned())
            .collect();
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        recipients.push(format!(
            "API consumers holding tokens: roles {}",
            roles.join(", ")
        ));
        let published = policy::granted(Exit::MqttAggregates, Class::Published).unwrap_or("-");
        let pushed = policy::granted(Exit::Webhook, Class::Events).unwrap_or("-");
        if let Some(mqtt) = &config.mqtt {
            recipients.push(format!(
                "MQTT broker {}:{}: published aggregates ({published})",
                mqtt.host, mqtt.port
            ));
            if mqtt.anomalies {
                recipients.push(format!(
                    "MQTT broker {}:{}: anomaly notices ({pushed})",
                    mqtt.host, mqtt.port
                ));
            }
            if mqtt.live {
                let live = policy::granted(Exit::MqttLive, Class::LiveCounts).unwrap_or("-");
                let discovery = match &mqtt.home_assistant {
                    Some(prefix) => format!(", announced to Home Assistant under `{prefix}/`"),
                    None => String::new(),
                };
                recipients.push(format!(
                    "MQTT broker {}:{}: live counts ({live}) and camera states{discovery}; \
                     its subscribers (building automation, Home Assistant's recorder) keep them \
                     under their own retention",
                    mqtt.host, mqtt.port
                ));
            }
        }
        if let Some(modbus) = &config.modbus {
            let live = policy::granted(Exit::Modbus, Class::LiveCounts).unwrap_or("-");
            recipients.push(format!(
                "Modbus TCP clients on {} (building management, read-only, no authentication): live counts ({live}) and camera states",
                modbus.bind
            ));
        }
        if let Some(bacnet) = &config.bacnet {
            let live = policy::granted(Exit::Bacnet, Class::LiveCounts).unwrap_or("-");
            recipients.push(format!(
                "BACnet/IP clients on {} (building management, read-only, no authentication): live counts ({live})",
                bacnet.bind
            ));
        }
        if let Some(webhook) = &config.anomalies.webhook {
            recipients.push(format!(
                "Webhook {}:{}: anomaly notices ({pushed})",
                webhook.host, webhook.port
            ));
        }
        let person_related_events = events_entry(config, pushed);
        let small_zones = config
            .cameras
            .iter()
            .flat_map(|c| {
                c.zones.iter().filter_map(move |z| {
                    let capacity = z.capacity?;
                    let justification = z.small_zone_justification.clone()?;
                    Some(SmallZone {
                        zone: crate::config::zone_key(&c.id, &z.name),
                        capacity,
                        justification,
                    })
                })
            })
            .collect();

        let retention = config
            .retention
            .limits()
            .iter()
            .map(|l| RetentionEntry {
                class: l.class.key(),
                limit: format_lifetime(l.limit_ms),
                limit_ms: l.limit_ms,
                maximum: format_lifetime(l.class.maximum_ms()),
                justification: l.justification.clone(),
            })
            .collect();

        ProcessingRecord {
            site: config.site.clone(),
            generated_at: now,
            generated_at_utc: utc(now),
            controller,
            activities,
            data_subjects: vec![
                "people in view of the cameras (visitors, staff, passers-by)".into(),
                "people and systems holding API tokens, whose access is recorded in the audit log".into(),
            ],
            personal_data: PersonalData {
                in_memory: in_memory(config),
                classes: DataClass::ALL
                    .iter()
                    .map(|c| ClassEntry {
                        class: c.key(),
                        description: c.description(),
                    })
                    .collect(),
            },
            recipients,
            person_related_events,
            small_zones,
            third_country_transfers: "None by the appliance: it sends data only to the recipients above. \
                 Where one of them is outside the EU/EEA, the controller records that transfer and its safeguards here."
                .into(),
            retention,
            measures: measures(config),
            gaps,
        }
    }

    /// The record as a document for people: headings and tables.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut md);
        md
    }

    fn write_markdown(&self, md: &mut String) -> std::fmt::Result {
        writeln!(md, "# Record of processing activities (GDPR Art. 30)\n")?;
        writeln!(
            md,
            "Site **{}**, generated {} by headcount from its configuration.\n",
            cell(&self.site),
            self.generated_at_utc
        )?;

        writeln!(md, "## 1. Controller\n")?;
        match &self.controller {
            Some(c) => {
                writeln!(md, "| | |\n|---|---|")?;
                writeln!(md, "| Name | {} |", cell(&c.name))?;
                writeln!(md, "| Contact | {} |", cell(&c.contact))?;
                let dpo = c.dpo_contact.as_deref().unwrap_or("none designated");
                writeln!(md, "| Data protection officer | {} |", cell(dpo))?;
                if let Some(info) = &c.information {
                    writeln!(md, "| Full information | {} |", cell(info))?;
                }
                writeln!(md)?;
            }
            None => writeln!(
                md,
                "**Not configured.** Add a `[controller]` section (name, contact, dpo_contact) to the config.\n"
            )?,
        }

        writeln!(md, "## 2. Purposes and legal basis\n")?;
        writeln!(
            md,
            "| Camera | Purpose | Legal basis | Zones | Lines | Privacy masks (blanked before analysis) | Frames analysed |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        for a in &self.activities {
            let purpose = if a.purpose_stated {
                cell(&a.purpose)
            } else {
                format!("**{NOT_STATED}** (gap)")
            };
            writeln!(
                md,
                "| {} | {purpose} | {} | {} | {} | {} | {}/s |",
                cell(&a.camera),
                cell(&a.legal_basis),
                list_or_none(&a.zones),
                list_or_none(&a.lines),
                list_or_none(&a.privacy_masks),
                a.analysis_fps
            )?;
        }
        writeln!(md)?;

        writeln!(md, "## 3. Categories of data subjects\n")?;
        for s in &self.data_subjects {
            writeln!(md, "- {s}")?;
        }
        writeln!(md)?;

        writeln!(md, "## 4. Categories of personal data\n")?;
        writeln!(md, "### Processed in memory only, never stored\n")?;
        writeln!(md, "| Data | Handling |\n|---|---|")?;
        for c in &self.personal_data.in_memory {
            writeln!(md, "| {} | {} |", cell(&c.category), cell(&c.handling))?;
        }
        writeln!(md, "\n### Data classes kept (aggregate counts only)\n")?;
        writeln!(md, "| Class | Content |\n|---|---|")?;
        for c in &self.personal_data.classes {
            writeln!(md, "| `{}` | {} |", c.class, cell(c.description))?;
        }
        writeln!(md)?;

        writeln!(md, "## 5. Recipients\n")?;
        for r in &self.recipients {
            writeln!(md, "- {}", cell(r))?;
        }
        writeln!(md)?;

        writeln!(md, "### Person-related events (anomalies)\n")?;
        let e = &self.person_related_events;
        writeln!(md, "| | |\n|---|---|")?;
        writeln!(md, "| Purpose | {} |", cell(&e.purpose))?;
        writeln!(md, "| Kinds | {} |", e.kinds.join(", "))?;
        writeln!(md, "| Kept | {} after each anomaly ends |", e.limit)?;
        for push in &e.pushes {
            writeln!(md, "| Leaves the box | {} |", cell(push))?;
        }
        writeln!(md)?;
        writeln!(md, "### Small zones counted with a justification\n")?;
        if self.small_zones.is_empty() {
            writeln!(
                md,
                "None: every zone's capacity is at least k, or it has none.\n"
            )?;
        } else {
            writeln!(md, "| Zone | Capacity | Justification |\n|---|---|---|")?;
            for z in &self.small_zones {
                writeln!(
                    md,
                    "| {} | {} | {} |",
                    cell(&z.zone),
                    z.capacity,
                    cell(&z.justification)
                )?;
            }
            writeln!(md)?;
        }

        writeln!(md, "## 6. Transfers to third countries\n")?;
        writeln!(md, "{}\n", self.third_country_transfers)?;

        writeln!(md, "## 7. Retention\n")?;
        writeln!(
            md,
            "Enforced by the appliance: a sweeper deletes what is past its lifetime and leaves a receipt in the audit log.\n"
        )?;
        writeln!(
            md,
            "| Class | Lifetime | Maximum without justification | Justification |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        for r in &self.retention {
            writeln!(
                md,
                "| `{}` | {} | {} | {} |",
                r.class,
                r.limit,
                r.maximum,
                r.justification.as_deref().map(cell).unwrap_or_default()
            )?;
        }
        writeln!(md)?;

        writeln!(md, "## 8. Technical and organisational measures\n")?;
        writeln!(md, "| Measure | How |\n|---|---|")?;
        for m in &self.measures {
            writeln!(md, "| {} | {} |", m.measure, cell(&m.detail))?;
        }
        writeln!(md)?;

        writeln!(md, "## Gaps\n")?;
        if self.gaps.is_empty() {
            writeln!(md, "None found.")?;
        }
        for g in &self.gaps {
            writeln!(md, "- {}", cell(g))?;
        }
        Ok(())
    }
}

/// Why no notice could be made for a camera.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoticeError {
    #[error("unknown camera `{camera}`; known cameras: {}", known.join(", "))]
    UnknownCamera { camera: String, known: Vec<String> },
    /// A sign without these would not meet Art. 13: refuse rather than print it.
    #[error("the notice for camera {camera} needs {} in the config", missing.join(" and "))]
    Incomplete {
        camera: String,
        missing: Vec<String>,
    },
}

/// The Art. 13 first-layer notice for the sign at `camera`, in `lang`:
/// plain text in short lines.
pub fn notice(config: &Config, camera: &str, lang: Lang) -> Result<String, NoticeError> {
    let Some(cam) = config.cameras.iter().find(|c| &*c.id == camera) else {
        return Err(NoticeError::UnknownCamera {
            camera: camera.to_string(),
            known: config.cameras.iter().map(|c| c.id.to_string()).collect(),
        });
    };
    let mut missing = Vec::new();
    if config.controller.is_none() {
        missing.push("[controller] (name, contact)".to_string());
    }
    if cam.purpose.is_none() {
        missing.push(format!("cameras.{camera}.purpose"));
    }
    let (Some(controller), Some(purpose)) = (&config.controller, &cam.purpose) else {
        return Err(NoticeError::Incomplete {
            camera: camera.to_string(),
            missing,
        });
    };
    let texts = Texts::new(lang);
    let mode = match config.privacy.redaction {
        RedactionMode::Blur => "blur",
        RedactionMode::Pixelate => "pixelate",
        RedactionMode::Fill => "fill",
    };
    let counts: Vec<String> = [
        (DataClass::Aggregates1m, "per-minute"),
        (DataClass::Aggregates15m, "per-quarter-hour"),
        (DataClass::Aggregates1h, "per-hour"),
        (DataClass::Aggregates1d, "per-day"),
    ]
    .iter()
    .map(|(class, width)| {
        let (n, unit) = lifetime_parts(config.retention.limit_ms(*class));
        let lifetime = texts.get(
            "lifetime",
            &[("n", (n as f64).into()), ("unit", unit.into())],
        );
        texts.get(width, &[("lifetime", lifetime.into())])
    })
    .collect();
    // The default basis is ours to translate; one the config states is
    // the controller's own words.
    let basis = if cam.legal_basis == DEFAULT_LEGAL_BASIS {
        texts.get("legal-basis-default", &[])
    } else {
        cam.legal_basis.clone()
    };

    let mut paragraphs = vec![
        texts.get("notice-title", &[]),
        texts.get("notice-no-recording", &[("mode", mode.into())]),
        String::new(),
        texts.get(
            "notice-camera",
            &[
                ("camera", camera.into()),
                ("site", config.site.as_str().into()),
            ],
        ),
        texts.get(
            "notice-controller",
            &[("name", controller.name.as_str().into())],
        ),
        texts.get(
            "notice-contact",
            &[("contact", controller.contact.as_str().into())],
        ),
    ];
    if let Some(dpo) = &controller.dpo_contact {
        paragraphs.push(texts.get("notice-dpo", &[("dpo", dpo.as_str().into())]));
    }
    paragraphs.extend([
        String::new(),
        texts.get("notice-purpose", &[("purpose", purpose.as_str().into())]),
        texts.get("notice-legal-basis", &[("basis", basis.into())]),
        String::new(),
        texts.get(
            "notice-what-happens",
            &[("fps", cam.analysis_fps.into()), ("mode", mode.into())],
        ),
    ]);
    if config.privacy.snapshots {
        paragraphs.push(texts.get("notice-calibration", &[]));
    }
    let information = match controller.information.as_deref() {
        Some(place) => place.to_string(),
        None => texts.get("notice-information-default", &[]),
    };
    paragraphs.extend([
        String::new(),
        texts.get("notice-retention", &[("counts", counts.join(", ").into())]),
        String::new(),
        texts.get("notice-rights", &[]),
        String::new(),
        texts.get("notice-information", &[("where", information.into())]),
    ]);
    let mut text = String::new();
    for p in &paragraphs {
        for line in wrap(p, SIGN_WIDTH) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    Ok(text)
}

/// Anomalies as the person-related events they are: loitering times one
/// person's stay, a wrong-way crossing is one person's movement.
fn events_entry(config: &Config, pushed: &str) -> EventsEntry {
    let mut pushes = Vec::new();
    if config.anomalies.webhook.is_some() {
        pushes.push(format!("to the webhook: {pushed}"));
    }
    if config.mqtt.as_ref().is_some_and(|m| m.anomalies) {
        pushes.push(format!("to MQTT: {pushed}"));
    }
    if pushes.is_empty() {
        pushes.push("nowhere: served on site only (API and dashboard)".into());
    }
    EventsEntry {
        purpose: "tell the facilities manager about conditions that need a person on site: over capacity \
                  (fire safety), loitering, presence after hours, wrong-way crossings, a camera covered, moved, \
                  frozen or offline, unusual occupancy or flow"
            .into(),
        kinds: crate::anomaly::Kind::ALL.iter().map(|k| k.as_str()).collect(),
        limit: format_lifetime(config.retention.limit_ms(DataClass::Events)),
        pushes,
    }
}

/// What passes through memory only, derived from the config where it can be.
fn in_memory(config: &Config) -> Vec<Category> {
    let fps = config
        .cameras
        .iter()
        .map(|c| c.analysis_fps)
        .fold(0.0, f64::max);
    vec![
        Category {
            category: "video frames from the cameras".into(),
            handling: format!(
                "decoded and analysed in memory, at most {fps} frames a second per camera (the rest dropped); \
                 never written to disk, never stored, never served unredacted"
            ),
        },
        Category {
            category: "person and face detections (boxes and scores)".into(),
            handling: "in memory for the frame analysed; faces are located only to be redacted: \
                       none is recognised, compared or stored (no biometric data, Art. 9)"
                .into(),
        },
        Category {
            category: "tracks (a person's path within one camera's view)".into(),
            handling: "in memory for the life of the track (seconds after the person leaves the view); \
                       no track id, position or per-person time leaves the process"
                .into(),
        },
    ]
}

/// Art. 32 measures, each stated with the setting that is in force.
fn measures(config: &Config) -> Vec<Measure> {
    let p = &config.privacy;
    let mode = match p.redaction {
        RedactionMode::Blur => "blurred",
        RedactionMode::Pixelate => "pixelated",
        RedactionMode::Fill => "filled grey",
    };
    let mut redaction = format!(
        "faces (boxes grown {}x) and the head of every detected person are {mode}; a region stays redacted {} ms after its last detection",
        p.mask_scale, p.hold_ms
    );
    if p.snapshots {
        redaction.push_str("; calibration snapshots are on, so whole persons are redacted");
    }
    let k = config.aggregates.k;
    let dp = match config.aggregates.differential_privacy {
        Some(dp) => format!(
            "Laplace noise on every published bucket, drawn once at publication and stored, so repeats and \
             other consumers read the same value: epsilon {} per release, at most {} per day of data (ledger)",
            dp.epsilon, dp.daily_epsilon
        ),
        None => "off (aggregates.differential_privacy)".into(),
    };
    let bind = config.api.bind;
    let tls = match &config.api.tls {
        Tls::Off => format!("plain HTTP on loopback only ({bind}); refused beyond loopback"),
        Tls::SelfSigned => format!("TLS on {bind} with the device's own self-signed certificate"),
        Tls::Supplied { .. } => format!("TLS on {bind} with the operator's certificate"),
    };
    let lockout = &config.api.lockout;
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let mut measures = vec![
        Measure {
            measure: "Redaction",
            detail: redaction,
        },
        Measure {
            measure: "Fail-closed redaction",
            detail: format!(
                "a frame whose face detection fails or takes longer than {} ms is obscured whole",
                p.detection_deadline_ms
            ),
        },
        Measure {
            measure: "No unredacted pixel leaves the process",
            detail: "faces are redacted before any pixel leaves: only the redactor makes the one frame type \
                     that can be encoded, stored or served (checked at compile time)"
                .into(),
        },
        Measure {
            measure: "Small-count suppression",
            detail: format!(
                "consumers outside the site read published cells only, per space, in buckets of 15 minutes or \
                 more; counts below k = {k}, zero included, are withheld, with further cells withheld so that \
                 none can be derived from published ones; dwell medians need k visits; a zone below k is \
                 counted only with a justification (above)"
            ),
        },
        Measure {
            measure: "Differential privacy",
            detail: dp,
        },
        Measure {
            measure: "Encryption in transit (API)",
            detail: tls,
        },
    ];
    if let Some(mqtt) = &config.mqtt {
        measures.push(Measure {
            measure: "Encryption in transit (MQTT)",
            detail: if mqtt.tls_ca_file.is_some() {
                format!("mqtts (TLS) to {}:{}", mqtt.host, mqtt.port)
            } else {
                format!("plain MQTT to {}:{} on loopback only", mqtt.host, mqtt.port)
            },
        });
    }
    measures.extend([
        Measure {
            measure: "Access control",
            detail: format!(
                "every route but /livez needs a bearer token with a role ({}) and an expiry; only an HMAC of each \
                 token is stored; {} failed attempts within {} s naming one token lock it for {} s (and slow the address \
                 they come from, never refusing its valid tokens); each token may make \
                 {} requests at once and {} a second after that",
                roles.join(", "),
                lockout.max_failures,
                lockout.window_ms / 1000,
                lockout.lock_ms / 1000,
                config.api.rate.burst,
                config.api.rate.per_sec
            ),
        },
        Measure {
            measure: "Audit log",
            detail: "every access, change, export and deletion is recorded in a hash-chained log with signed checkpoints; \
                     tokens appear in it by pseudonym, their holders' names only in the token table, deleted once a \
                     token ended longer ago than the log's lifetime; identical reads within a minute are one entry \
                     and a count; deletion receipts are keyed (HMAC-SHA256)"
                .into(),
        },
        Measure {
            measure: "Retention",
            detail: "a sweeper deletes each data class past its lifetime (section 7) and records a deletion receipt"
                .into(),
        },
        Measure {
            measure: "Model integrity",
            detail: "models are loaded only after their manifest's Ed25519 signature and each model's sha256 are verified"
                .into(),
        },
        Measure {
            measure: "Camera credentials",
            detail: "never in the config or in URLs: referenced from the environment, files, systemd credentials \
                     or sealed (ChaCha20-Poly1305) in the state directory"
                .into(),
        },
        Measure {
            measure: "Security events",
            detail: match &config.syslog {
                SyslogTarget::Unix(path) => format!("to syslog at {} and the service log", path.display()),
                SyslogTarget::Udp(addr) => format!("to the syslog collector {addr} and the service log"),
                SyslogTarget::None => "to the service log".into(),
            },
        },
        Measure {
            measure: "Hardened service",
            detail: "a systemd unit with a dynamic unprivileged user, no capabilities, a read-only system, \
                     private devices and /tmp, a system-call filter and network access to local addresses only"
                .into(),
        },
    ]);
    measures
}

fn utc(ms: UnixMs) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms after 1970"))
}

/// Text safe in a Markdown table cell: pipes escaped, line breaks kept.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        cell(&items.join(", "))
    }
}

/// Word wrap to `width` columns, keeping the text's own line breaks; a word
/// longer than the width (a URL) stands alone on its line, unbroken.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for source in text.split('\n') {
        let mut line = String::new();
        for word in source.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use std::path::Path;

    struct NoSecrets;

    impl SecretSource for NoSecrets {
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn file(&self, _: &Path) -> Option<String> {
            None
        }
    }

    const CONFIG: &str = r#"
[appliance]
site = "hq"

[controller]
name = "ACME Facilities GmbH"
contact = "privacy@acme.example"
dpo_contact = "dpo@acme.example"
recipients = ["Fire safety officer of the building"]
information = "https://acme.example/privacy/cameras"

[cameras.lobby]
url = "testsrc:ball"
purpose = "occupancy of the lobby for fire-safety capacity"
[cameras.lobby.zones.waiting_area]
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9]]
[cameras.lobby.lines.front_door]
points = [[0.2, 0.9], [0.8, 0.9]]
in = "left"

[cameras.yard]
url = "testsrc:smpte"
purpose = "footfall in the delivery yard"
legal_basis = "legal obligation, GDPR Art. 6(1)(c) (workplace safety)"

[retention]
aggregates_1d = "12y"
justification.aggregates_1d = "building-permit evidence kept for 12 years"

[aggregates]
k = 7
differential_privacy = true
epsilon = 0.5
"#;

    fn config(text: &str) -> Config {
        match Config::parse(text, Path::new("/etc/headcount"), &NoSecrets) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_record_holds_each_purpose_basis_class_limit_justification_and_k() {
        let record = ProcessingRecord::from_config(&config(CONFIG), 1_700_000_000_000);
        let json = serde_json::to_value(&record).unwrap();
        let text = json.to_string();
        assert_eq!(json["generated_at_utc"], "2023-11-14T22:13:20Z");
        assert_eq!(json["controller"]["name"], "ACME Facilities GmbH");
        assert_eq!(json["controller"]["dpo_contact"], "dpo@acme.example");
        let lobby = &json["activities"][0];
        assert_eq!(lobby["camera"], "lobby");
        assert_eq!(
            lobby["purpose"],
            "occupancy of the lobby for fire-safety capacity"
        );
        assert_eq!(
            lobby["legal_basis"],
            "legitimate interest, GDPR Art. 6(1)(f)"
        );
        assert_eq!(lobby["zones"][0], "waiting_area");
        assert_eq!(lobby["lines"][0], "front_door");
        assert_eq!(
            json["activities"][1]["legal_basis"],
            "legal obligation, GDPR Art. 6(1)(c) (workplace safety)"
        );
        let retention = json["retention"].as_array().unwrap();
        assert_eq!(retention.len(), DataClass::ALL.len());
        for class in DataClass::ALL {
            let entry = retention
                .iter()
                .find(|r| r["class"] == class.key())
                .unwrap();
            let expected = if class == DataClass::Aggregates1d {
                "12y".to_string()
            } else {
                format_lifetime(class.default_limit_ms())
            };
            assert_eq!(entry["limit"], expected, "{class:?}");
            assert!(text.contains(class.description()), "{class:?}");
        }
        let daily = retention
            .iter()
            .find(|r| r["class"] == "aggregates_1d")
            .unwrap();
        assert_eq!(
            daily["justification"],
            "building-permit evidence kept for 12 years"
        );
        assert_eq!(daily["maximum"], "10y");
        assert!(text.contains("k = 7"), "{text}");
        assert!(text.contains("epsilon 0.5 per release"), "{text}");
        assert!(text.contains("Fire safety officer of the building"));
        assert!(text.contains("roles admin, facilities, planner, dpo"));
        assert!(!text.contains("MQTT broker"), "no broker is configured");
        assert!(record.gaps.is_empty(), "{:?}", record.gaps);
    }

    #[test]
    fn a_missing_controller_and_purpose_are_gaps_and_the_broker_a_recipient() {
        let c = config(
            "[cameras.lobby]\nurl = \"testsrc:ball\"\n[mqtt]\nbroker = \"mqtt://localhost:1883\"\n",
        );
        let record = ProcessingRecord::from_config(&c, 0);
        assert!(record.controller.is_none());
        assert_eq!(record.activities[0].purpose, "not stated");
        assert!(!record.activities[0].purpose_stated);
        assert_eq!(record.gaps.len(), 2, "{:?}", record.gaps);
        assert!(record.gaps[0].starts_with("controller: not configured"));
        assert!(record.gaps[1].starts_with("cameras.lobby.purpose: not stated"));
        let broker = record
            .recipients
            .iter()
            .find(|r| r.starts_with("MQTT broker localhost:1883: published aggregates"))
            .unwrap_or_else(|| panic!("{:?}", record.recipients));
        assert!(
            broker.contains("per space") && broker.contains("below k, zero included"),
            "{broker}"
        );
        // Anomalies go to the broker only when asked for.
        assert!(!record
            .recipients
            .iter()
            .any(|r| r.contains("anomaly notices")));
        assert!(!record.recipients.iter().any(|r| r.contains("live counts")));
        let live = config(
            "[cameras.lobby]\nurl = \"testsrc:ball\"\n[mqtt]\nbroker = \"mqtt://localhost:1883\"\n\
             live = true\nhome_assistant = true\n",
        );
        let with_live = ProcessingRecord::from_config(&live, 0);
        let live = with_live
            .recipients
            .iter()
            .find(|r| r.starts_with("MQTT broker localhost:1883: live counts"))
            .unwrap_or_else(|| panic!("{:?}", with_live.recipients));
        assert!(
            live.contains("unless small") && live.contains("Home Assistant"),
            "{live}"
        );
        let md = record.to_markdown();
        assert!(md.contains("**Not configured.**"), "{md}");
        assert!(md.contains("**not stated** (gap)"), "{md}");
        assert!(md.contains("off (aggregates.differential_privacy)"), "{md}");
    }

    #[test]
    fn the_markdown_has_every_section_and_table() {
        let md = ProcessingRecord::from_config(&config(CONFIG), 0).to_markdown();
        for heading in [
            "# Record of processing activities (GDPR Art. 30)",
            "## 1. Controller",
            "## 2. Purposes and legal basis",
            "## 3. Categories of data subjects",
            "## 4. Categories of personal data",
            "### Processed in memory only, never stored",
            "### Data classes kept (aggregate counts only)",
            "## 5. Recipients",
            "## 6. Transfers to third countries",
            "## 7. Retention",
            "## 8. Technical and organisational measures",
            "## Gaps",
        ] {
            assert!(
                md.lines().any(|l| l == heading),
                "missing {heading:?} in\n{md}"
            );
        }
        assert!(md.contains(
            "| lobby | occupancy of the lobby for fire-safety capacity | legitimate interest, GDPR Art. 6(1)(f) | waiting_area | front_door | none | 2/s |"
        ), "{md}");
        assert!(
            md.contains(
                "| `aggregates_1d` | 12y | 10y | building-permit evidence kept for 12 years |"
            ),
            "{md}"
        );
        assert!(md.contains("None found."));
    }

    #[test]
    fn the_notice_names_controller_purpose_retention_and_that_no_video_is_stored() {
        let text = notice(&config(CONFIG), "lobby", Lang::En).unwrap();
        // Lines are wrapped, so read it as one string of words.
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for expected in [
            "Controller: ACME Facilities GmbH",
            "Contact: privacy@acme.example",
            "Data protection officer: dpo@acme.example",
            "Purpose: occupancy of the lobby for fire-safety capacity",
            "Legal basis: legitimate interest, GDPR Art. 6(1)(f)",
            "No images are recorded or stored.",
            "Faces are blurred",
            "Counts per minute 7 days, per quarter hour 90 days, per hour 2 years, per day 12 years.",
            "Full information: https://acme.example/privacy/cameras",
            "Art. 15-21",
        ] {
            assert!(words.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            text.lines().all(|l| l.chars().count() <= SIGN_WIDTH),
            "{text}"
        );
        let yard = notice(&config(CONFIG), "yard", Lang::En).unwrap();
        assert!(yard.contains("Art. 6(1)(c)"), "{yard}");
    }

    #[test]
    fn the_german_notice_says_the_same_in_german() {
        let text = notice(&config(CONFIG), "lobby", Lang::De).unwrap();
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for expected in [
            "VIDEOANALYSE: PERSONENZÄHLUNG",
            "Verantwortlicher: ACME Facilities GmbH",
            "Kontakt: privacy@acme.example",
            "Datenschutzbeauftragte(r): dpo@acme.example",
            // The config's own words stay as written...
            "Zweck: occupancy of the lobby for fire-safety capacity",
            // ...the default basis is translated.
            "Rechtsgrundlage: berechtigtes Interesse, Art. 6 Abs. 1 lit. f DSGVO",
            "Es werden keine Bilder aufgezeichnet oder gespeichert.",
            "Zahlen je Minute 7 Tage, je Viertelstunde 90 Tage, je Stunde 2 Jahre, je Tag 12 Jahre.",
            "Vollständige Informationen: https://acme.example/privacy/cameras",
            "Art. 15-21 DSGVO",
        ] {
            assert!(words.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            !words.contains("Purpose") && !words.contains("Controller"),
            "{text}"
        );
        assert!(
            text.lines().all(|l| l.chars().count() <= SIGN_WIDTH),
            "{text}"
        );
    }

    #[test]
    fn a_notice_for_an_unknown_camera_or_without_controller_is_refused() {
        let err = notice(&config(CONFIG), "attic", Lang::En).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown camera `attic`; known cameras: lobby, yard"
        );
        let bare = config("[cameras.lobby]\nurl = \"testsrc:ball\"\n");
        assert_eq!(
            notice(&bare, "lobby", Lang::De).unwrap_err().to_string(),
            "the notice for camera lobby needs [controller] (name, contact) and cameras.lobby.purpose in the config"
        );
    }

    #[test]
    fn wrapping_keeps_words_and_line_breaks() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("a\nb", 10), ["a", "b"]);
        assert_eq!(
            wrap("x https://a.very.long.example/url y", 10),
            ["x", "https://a.very.long.example/url", "y"]
        );
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
    }
}
