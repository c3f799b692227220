//! How shared information is structured and received: MISP object templates, galaxy clusters
//! (ATT&CK, threat actors, tools, …) and sightings — including false positives.

use super::{
    dimension, table, Cells, Definition, Profile, Tally, LARGE_COUNTS, MAX_ATTRIBUTE_COUNT,
};
use crate::catalogue::{PrivacyUnit, TemplateInfo};
use crate::describe_types::CATEGORY_TYPES;
use crate::layout::{Chart, Dimension, Layout, Window};
use crate::misp::Event;
use crate::vocabulary::{
    galaxy_type, position_or_last, GALAXY_TYPES, OBJECT_TEMPLATES, SIGHTING_TYPES,
};
use std::collections::HashMap;
use std::sync::LazyLock;

/// MISP's attribute types, each once, in the order of its category/type table.
pub fn attribute_types() -> Vec<&'static str> {
    let mut seen = std::collections::HashSet::new();
    CATEGORY_TYPES
        .iter()
        .map(|&(_, t)| t)
        .filter(|t| seen.insert(*t))
        .collect()
}

/// Objects by template.
pub struct ObjectsByTemplate;

impl Definition for ObjectsByTemplate {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "objects-by-template",
                version: 1,
                question: "Which MISP object templates are used to structure what is shared?",
                definition: "Each MISP object of an event dated in the window counts once, in the cell of its template `name` (a list of common templates; others under \"other\").",
                fields: "event `date`, `Object[].name`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(PrivacyUnit {
                unit: "object",
                sensitivity: 1.0,
                cells: 1,
            }),
            chart: Chart::Bars {
                dimension: 0,
                top: Some(20),
            },
            counts: "objects",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![dimension("object template", OBJECT_TEMPLATES)],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        for o in &event.objects {
            tally.add(&[position_or_last(OBJECT_TEMPLATES, o.name.as_deref())], 1);
        }
    }
}

/// Galaxy clusters attached, and events using each galaxy.
pub struct GalaxyClustersByType;

impl Definition for GalaxyClustersByType {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "galaxy-clusters-by-type",
                version: 1,
                question: "How much context is attached: galaxy clusters (ATT&CK techniques, threat actors, tools, ...) per galaxy, and events using each galaxy?",
                definition: "Each galaxy cluster attached to an event dated in the window counts once in \"clusters attached\" of its galaxy (the type in `misp-galaxy:<type>=\"…\"`; a cluster carried both as a tag and in the `Galaxy` list counts once); each event counts once in \"events\" of every galaxy it uses.",
                fields: "event `date`, `Tag[].name` (`misp-galaxy:*`), `Galaxy[].GalaxyCluster[].tag_name`",
            },
            parameter_sets: LARGE_COUNTS,
            // An event adds to several cells at once (each of its galaxy clusters).
            privacy_unit: None,
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: Some(25),
            },
            counts: "clusters or events",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![
                dimension("galaxy", GALAXY_TYPES),
                dimension("count", &["clusters attached", "events"]),
            ],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let mut used = vec![false; GALAXY_TYPES.len()];
        for cluster in event.galaxy_clusters() {
            let galaxy = position_or_last(GALAXY_TYPES, galaxy_type(cluster));
            tally.add(&[galaxy, 0], 1);
            used[galaxy] = true;
        }
        for (galaxy, _) in used.iter().enumerate().filter(|(_, &u)| u) {
            tally.add(&[galaxy, 1], 1);
        }
    }
}

/// Sightings, false positives and expirations per attribute type.
pub struct SightingsByAttributeType;

/// An attribute type's row: its position among [`attribute_types`], or "other".
fn attribute_type_row(kind: &str) -> usize {
    static INDEX: LazyLock<HashMap<&str, usize>> = LazyLock::new(|| {
        attribute_types()
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect()
    });
    INDEX.get(kind).copied().unwrap_or(INDEX.len())
}

impl Definition for SightingsByAttributeType {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "sightings-by-attribute-type",
                version: 1,
                question: "How useful are shared indicators: sightings, false positives and expirations per attribute type (and the false-positive ratio)?",
                definition: "Each sighting of an attribute of an event dated in the window counts once, in the cell of the attribute's type (MISP's types, \"other\" among them; any other under \"(not a MISP type)\") and the sighting's type (0 sighting, 1 false positive, 2 expiration, else other).",
                fields: "event `date`; attributes' `type`, `Sighting[].type`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(PrivacyUnit {
                unit: "sighting",
                sensitivity: 1.0,
                cells: 1,
            }),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: Some(25),
            },
            counts: "sightings",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![
                Dimension {
                    name: "attribute type",
                    // MISP has a type named "other" of its own: the catch-all is named apart
                    labels: attribute_types()
                        .into_iter()
                        .chain(["(not a MISP type)"])
                        .map(str::to_owned)
                        .collect(),
                },
                dimension("sighting type", SIGHTING_TYPES),
            ],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    /// The false-positive ratio of sightings.
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        let by_kind = layout.marginal(cells, &[1]);
        let (seen, false_positive) = (by_kind[0].max(0), by_kind[1].max(0));
        if seen + false_positive == 0 {
            return Vec::new();
        }
        vec![format!(
            "false-positive ratio: {:.3} ({false_positive} false positives of {} sightings and false positives)",
            false_positive as f64 / (seen + false_positive) as f64,
            seen + false_positive
        )]
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let other = SIGHTING_TYPES.len() - 1;
        for a in event.all_attributes().filter(|a| !a.sightings.is_empty()) {
            let row = attribute_type_row(&a.kind);
            for s in &a.sightings {
                let kind = match s.kind {
                    Some(k @ 0..=2) => k as usize,
                    _ => other,
                };
                tally.add(&[row, kind], 1);
            }
        }
    }
}
