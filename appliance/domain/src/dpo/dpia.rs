//! A draft data protection impact assessment (GDPR Art. 35) made from the
//! config, like the record of processing it builds on: the processing
//! described (Art. 35(7)(a)), its necessity and proportionality argued from
//! what the appliance keeps and discloses (7(b)), the risks to the people
//! filmed with the measures in force against each (7(c), (d)), and what is
//! left for the controller to decide. A draft, in English: the controller
//! completes, decides and signs it with the DPO's advice (Art. 35(2)).

use super::{cell, list_or_none, ProcessingRecord};
use crate::clock::UnixMs;
use crate::config::Config;
use crate::disclosure::policy;
use crate::retention::{format_lifetime, DataClass};
use std::fmt::Write;

/// One risk to the people filmed, the measures of the record that meet it,
/// and what this appliance cannot settle.
struct Risk {
    risk: &'static str,
    source: &'static str,
    /// Names of `ProcessingRecord::measures`.
    measures: &'static [&'static str],
    also: String,
    remains: &'static str,
}

/// The draft as Markdown.
pub fn dpia(config: &Config, now: UnixMs) -> String {
    let record = ProcessingRecord::from_config(config, now);
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = write(&mut md, config, &record);
    md
}

fn write(md: &mut String, config: &Config, record: &ProcessingRecord) -> std::fmt::Result {
    let k = config.aggregates.k;
    writeln!(
        md,
        "# Data protection impact assessment (GDPR Art. 35): draft\n"
    )?;
    writeln!(
        md,
        "Site `{}`, generated {} by headcount {} from its config. Every statement about \
         the appliance below is derived from the settings in force; the parts marked \
         **Controller** are for the controller to complete, decide and sign, having sought \
         the advice of the data protection officer (Art. 35(2)).\n",
        record.site,
        record.generated_at_utc,
        env!("CARGO_PKG_VERSION")
    )?;
    let controller = match &record.controller {
        Some(c) => format!("{} ({})", c.name, c.contact),
        None => "**not configured** ([controller] in the config)".into(),
    };
    writeln!(md, "Controller: {controller}\n")?;

    writeln!(md, "## 1. Why an assessment\n")?;
    writeln!(
        md,
        "{} camera(s) are analysed continuously to count people. Images of the people in view \
         are personal data while they are processed, even though only counts are kept. \
         Systematic monitoring of an area, in particular one accessible to the public \
         (Art. 35(3)(c)), and innovative technology (video analysis with neural networks) are \
         criteria on which supervisory authorities' lists require an assessment (EDPB \
         guidelines 3/2019 on video devices, WP248). **Controller**: confirm whether the areas \
         are publicly accessible and which national list applies.\n",
        record.activities.len()
    )?;

    writeln!(md, "## 2. The processing (Art. 35(7)(a))\n")?;
    writeln!(
        md,
        "| camera | purpose | legal basis | zones | lines | privacy masks | analysed frames/s |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for a in &record.activities {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&a.camera),
            cell(&a.purpose),
            cell(&a.legal_basis),
            cell(&list_or_none(&a.zones)),
            cell(&list_or_none(&a.lines)),
            cell(&list_or_none(&a.privacy_masks)),
            a.analysis_fps
        )?;
    }
    writeln!(
        md,
        "\nPeople concerned: {}.\n",
        record.data_subjects.join("; ")
    )?;
    writeln!(md, "Processed in memory only, never stored:\n")?;
    for c in &record.personal_data.in_memory {
        writeln!(md, "- {}: {}", c.category, c.handling)?;
    }
    writeln!(md, "\nKept, with the lifetime the appliance enforces:\n")?;
    writeln!(md, "| data | kept for | longest without a justification |")?;
    writeln!(md, "|---|---|---|")?;
    for r in &record.retention {
        writeln!(md, "| {} | {} | {} |", r.class, r.limit, r.maximum)?;
    }
    writeln!(
        md,
        "\nRecipients besides the controller: {}.\n\nTransfers outside the EU/EEA: {}\n",
        if record.recipients.is_empty() {
            "none".to_string()
        } else {
            record.recipients.join("; ")
        },
        record.third_country_transfers
    )?;

    writeln!(md, "## 3. Necessity and proportionality (Art. 35(7)(b))\n")?;
    writeln!(
        md,
        "- **Data minimisation (Art. 5(1)(c))**: no image is recorded or stored; faces and heads are \
         redacted before any pixel can leave the process, and redaction fails closed; only counts \
         per zone, line and space are kept.\n\
         - **No singling out**: no consumer outside the site sees a count below k = {k} or one \
         person's times. Who receives what, and how finely, is one policy for every exit:\n"
    )?;
    for line in policy::markdown().lines() {
        if line.starts_with('|') {
            writeln!(md, "  {line}")?;
        }
    }
    if record.small_zones.is_empty() {
        writeln!(md, "\n- **Small zones**: none is counted below k.")?;
    } else {
        writeln!(
            md,
            "\n- **Small zones counted below k**, each with its stated reason:"
        )?;
        for z in &record.small_zones {
            writeln!(
                md,
                "  - {} (capacity {}): {}",
                z.zone, z.capacity, z.justification
            )?;
        }
    }
    writeln!(
        md,
        "- **Storage limitation (Art. 5(1)(e))**: the lifetimes above are enforced by the appliance, \
         each deletion recorded with a receipt in the audit log.\n\
         - **Purpose limitation (Art. 5(1)(b))**: each camera's purpose is stated in the config and \
         printed on its sign (`headcount dpo notice --camera NAME --lang en|de`).\n\
         - **Controller**: why counting is needed for these purposes, and why milder means (door \
         counters, manual counts, booking data) would not do.\n"
    )?;

    writeln!(
        md,
        "## 4. Risks and the measures that address them (Art. 35(7)(c), (d))\n"
    )?;
    writeln!(
        md,
        "| risk to the people filmed | source | measures in force | left to the controller |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for risk in risks(config) {
        let mut measures: Vec<String> = risk
            .measures
            .iter()
            .filter_map(|name| record.measures.iter().find(|m| m.measure == *name))
            .map(|m| format!("{}: {}", m.measure, m.detail))
            .collect();
        if !risk.also.is_empty() {
            measures.push(risk.also.clone());
        }
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            cell(risk.risk),
            cell(risk.source),
            cell(&measures.join("; ")),
            cell(risk.remains)
        )?;
    }
    writeln!(
        md,
        "\n**Controller**: rate each risk's likelihood and severity after these measures. \
         Where a high risk remains, consult the supervisory authority before the processing \
         starts (Art. 36).\n"
    )?;

    writeln!(md, "## 5. Left for the controller to decide\n")?;
    let mut open = vec![
        "The legal basis of each camera; for legitimate interest (Art. 6(1)(f)), the balancing test written down.".to_string(),
        "Whether the people concerned or their representatives were asked (Art. 35(9)); for staff, the works council's agreement where national law requires it (in Germany § 87(1) no. 6 BetrVG).".into(),
        "Where the signs hang (before the camera's view is entered) and who holds which API token.".into(),
        "Whether a high risk remains (prior consultation, Art. 36), and the date of the next review (Art. 35(11)); review at least whenever the config changes, which the audit log records.".into(),
    ];
    open.extend(
        record
            .gaps
            .iter()
            .map(|g| format!("Fill the gap in the record: {g}.")),
    );
    for item in open {
        writeln!(md, "- {item}")?;
    }
    writeln!(
        md,
        "\n## Sign-off\n\nDPO's advice (Art. 35(2)): ______________________  Date: __________\n\n\
         Controller's decision: ______________________  Date: __________"
    )?;
    Ok(())
}

fn risks(config: &Config) -> Vec<Risk> {
    let events = format_lifetime(config.retention.limit_ms(DataClass::Events));
    let snapshots = if config.privacy.snapshots {
        "calibration snapshots are on (whole persons redacted); turn `privacy.snapshots` off after installation"
    } else {
        "calibration snapshots are off"
    };
    vec![
        Risk {
            risk: "a person recognised from camera images",
            source: "video leaving the appliance, or images kept",
            measures: &["Redaction", "Fail-closed redaction", "No unredacted pixel leaves the process"],
            also: format!("no recording; no frame on disk (no core dump, no swap); {snapshots}"),
            remains: "the camera's own recording and streams to other systems, outside this appliance",
        },
        Risk {
            risk: "one person's presence or times revealed by a small count",
            source: "counts of a room or an hour where few people are",
            measures: &["Small-count suppression", "Differential privacy"],
            also: String::new(),
            remains: "the value of k, and whether a small zone's stated reason holds",
        },
        Risk {
            risk: "one person followed, timed or singled out",
            source: "tracks, dwell times and events about one person (loitering, a wrong-way crossing)",
            measures: &["Retention"],
            also: format!(
                "tracks live in memory only; dwell figures only with at least k visits; person-related events kept {events} after they end"
            ),
            remains: "which anomalies to switch on, and who acts on them",
        },
        Risk {
            risk: "counts used beyond their purpose (staff performance, attendance)",
            source: "function creep by those who read the counts",
            measures: &["Access control", "Audit log"],
            also: "purposes stated per camera and printed on the signs".into(),
            remains: "the internal rule on use; the works council's agreement for staff areas",
        },
        Risk {
            risk: "counts or settings read or changed by someone not entitled",
            source: "the network, a stolen token, the device",
            measures: &[
                "Encryption in transit (API)",
                "Encryption in transit (MQTT)",
                "Access control",
                "Security events",
                "Hardened service",
                "Camera credentials",
                "Model integrity",
            ],
            also: String::new(),
            remains: "the network's segmentation, the box's physical security and disk encryption",
        },
        Risk {
            risk: "people unaware of the analysis (chilling effect, no chance to object)",
            source: "cameras without a visible notice",
            measures: &[],
            also: "the Art. 13 sign per camera, in English and German (`headcount dpo notice`); this record and assessment (`headcount dpo record`, `headcount dpo dpia`)".into(),
            remains: "hanging the signs; the second-layer information at `controller.information`",
        },
        Risk {
            risk: "decisions about people taken on wrong counts (entry refused at capacity)",
            source: "detection errors: missed or doubled people",
            measures: &[],
            also: "on-site validation against an installer's taps, with its error; audited manual correction of a space's count".into(),
            remains: "a person who reviews any decision that affects someone",
        },
        Risk {
            risk: "data kept longer than needed",
            source: "stores that are never emptied",
            measures: &["Retention"],
            also: String::new(),
            remains: "shorter lifetimes where the purpose allows",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnreadSecrets;

    #[test]
    fn the_draft_describes_the_config_and_leaves_the_decisions_to_the_controller() {
        let config = Config::parse(
            "[appliance]\nsite = \"hq\"\n[aggregates]\nk = 7\n\
             [controller]\nname = \"ACME GmbH\"\ncontact = \"privacy@acme.example\"\n\
             [cameras.lobby]\nurl = \"testsrc:ball\"\npurpose = \"fire-safety occupancy\"\n\
             [cameras.lobby.zones.desk]\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]\n\
             [cameras.yard]\nurl = \"testsrc:ball\"\n",
            std::path::Path::new("/etc/headcount"),
            &UnreadSecrets,
        )
        .unwrap();
        let md = dpia(&config, 0);
        for expected in [
            "# Data protection impact assessment (GDPR Art. 35): draft",
            "Controller: ACME GmbH (privacy@acme.example)",
            "2 camera(s)",
            "| lobby | fire-safety occupancy | legitimate interest, GDPR Art. 6(1)(f) | desk |",
            "k = 7",
            "| admin (on site) |",
            "Small-count suppression: ",
            "one person followed, timed or singled out",
            "Art. 36",
            // The record's gap is carried over.
            "cameras.yard.purpose: not stated",
            "## Sign-off",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in\n{md}");
        }
        // Every risk names measures from the record, or says what else meets it.
        let risks = md
            .lines()
            .skip_while(|l| !l.starts_with("## 4."))
            .filter(|l| l.starts_with("| ") && !l.starts_with("| risk"))
            .collect::<Vec<_>>();
        assert_eq!(risks.len(), 8, "{md}");
        for row in risks {
            let measures = row.split(" | ").nth(2).unwrap_or_default();
            assert!(measures.len() > 20, "a risk without measures: {row}");
        }
    }
}
