//! Publishing a released result back to the community's MISP instance (`concord query
//! publish`): a MISP event holding one `report` object (MISP object template `report`, v8)
//! whose attributes carry the question, the query's metadata and the table, added through
//! MISP's REST API (`concord-misp`).
//!
//! Only a query submitted with `--publish` can be published: every node that agreed to it did
//! so under a policy that allows publication (`allow_publication`), so the community's
//! agreement is part of the signed query, and every node's audit log records it. The event is
//! created unpublished (`published: false`), for the instance's own review workflow.

use concord_api::v1::QueryStatus;
use concord_stats::{Layout, Template};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

/// The MISP object template the result travels in.
const REPORT_TEMPLATE_UUID: &str = "70a68471-df22-4e3f-aa1a-5a3be19f82df";
const REPORT_TEMPLATE_VERSION: &str = "8";
/// The most table rows put in the event; a larger table keeps its largest cells.
const MAX_ROWS: usize = 2000;

/// How the event is shared on the instance.
pub struct Options {
    /// MISP event distribution, 0 (this organisation) to 3 (all communities).
    pub distribution: u8,
    /// Tags for the event (`tlp:green`, …).
    pub tags: Vec<String>,
}

/// The MISP event of a released result.
pub fn report_event(
    status: &QueryStatus,
    layout: &Layout,
    cells: &[i128],
    options: &Options,
) -> Result<Value, Error> {
    let spec = status.spec.as_ref().ok_or("status without its query")?;
    if !status.is_released() {
        return Err(format!(
            "query {} is {}, not released",
            status.query_id,
            status.phase_name()
        )
        .into());
    }
    if !spec.publish {
        return Err(format!(
            "query {} was not submitted for publication: only a query submitted with --publish, which every node agreed to publish, can be published",
            status.query_id
        )
        .into());
    }
    if options.distribution > 3 {
        return Err("--distribution is a MISP event distribution, 0 to 3".into());
    }
    let template = Template::by_id(&spec.template)?;
    let info = template.info();
    let metadata = [
        format!("Concord query {}", status.query_id),
        format!("template {} v{}: {}", info.id, info.version, info.question),
        format!(
            "window {} + {} months; {} institutions contributed ({})",
            spec.window_first,
            spec.window_months,
            status.institutions,
            status.contributors.join(", ")
        ),
        format!(
            "released by the shares of {}",
            status.shares_from.join(", ")
        ),
        crate::client::dp_report(status).unwrap_or_else(|| {
            "no differential privacy: the exact sum of the institutions' statistics".into()
        }),
        "every contributing institution's policy allowed this publication".into(),
    ]
    .join("\n");
    let attribute = |relation: &str, value: String| {
        json!({
            "object_relation": relation,
            "type": "text",
            "category": "Other",
            "value": value,
            "to_ids": false,
            "disable_correlation": true,
            "distribution": "5",
        })
    };
    let today = time::OffsetDateTime::now_utc().date();
    Ok(json!({
        "info": format!(
            "Concord aggregate: {} v{}, {} + {} months, {} institutions",
            info.id, info.version, spec.window_first, spec.window_months, status.institutions
        ),
        "date": format!("{:04}-{:02}-{:02}", today.year(), today.month() as u8, today.day()),
        "distribution": options.distribution.to_string(),
        "threat_level_id": "4",
        "analysis": "2",
        "published": false,
        "Tag": options.tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "Object": [{
            "name": "report",
            "meta-category": "misc",
            "description": "Report object to describe a report along with its metadata.",
            "template_uuid": REPORT_TEMPLATE_UUID,
            "template_version": REPORT_TEMPLATE_VERSION,
            "distribution": "5",
            "Attribute": [
                attribute("title", info.question.to_owned()),
                attribute("type", "Report".into()),
                attribute("summary", metadata),
                attribute("summary", table(template, layout, cells)),
            ],
        }],
    }))
}

/// The result as a Markdown table: its non-zero cells (the largest [`MAX_ROWS`] of a bigger
/// one), its summary cells, and what is read off them.
fn table(template: Template, layout: &Layout, cells: &[i128]) -> String {
    let all = crate::client::rows(layout, cells);
    let (cross, summary) = all.split_at(layout.table_cells());
    let mut shown: Vec<&(Vec<String>, i128)> = cross.iter().filter(|r| r.1 != 0).collect();
    let mut out = String::new();
    if shown.len() > MAX_ROWS {
        out += &format!(
            "{} non-zero cells; the {MAX_ROWS} largest:\n\n",
            shown.len()
        );
        shown.sort_by_key(|r| std::cmp::Reverse(r.1));
        shown.truncate(MAX_ROWS);
    }
    let names: Vec<&str> = layout.dimensions.iter().map(|d| d.name).collect();
    out += &format!("| {} | {} |\n", names.join(" | "), template.counts());
    out += &format!("|{}---|\n", "---|".repeat(names.len()));
    for (labels, value) in shown {
        out += &format!("| {} | {value} |\n", labels.join(" | "));
    }
    for (labels, value) in summary {
        out += &format!("\n{}: {value}", labels[0]);
    }
    for finding in template.findings(layout, cells) {
        out += &format!("\n{finding}");
    }
    out
}
