//! The researcher's client: connect to the coordinator with a researcher certificate, submit
//! queries, wait for and print their results (table, CSV or JSON).

use concord_api::tls::{client_config, MAX_MESSAGE_BYTES};
use concord_api::v1::coordinator_client::CoordinatorClient;
use concord_api::v1::{QueryRef, QuerySpec, QueryStatus};
use concord_stats::{Layout, Template, Window, YearMonth};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

pub type Error = Box<dyn std::error::Error>;

/// Connects with `DIR/ca.pem` and `DIR/NAME.pem`, `DIR/NAME.key`.
pub async fn connect(
    url: &str,
    server_name: &str,
    tls_dir: &Path,
    name: &str,
) -> Result<CoordinatorClient<Channel>, Error> {
    let read = |f: String| {
        std::fs::read_to_string(tls_dir.join(&f))
            .map_err(|e| format!("{}: {e}", tls_dir.join(f).display()))
    };
    let tls = client_config(
        &read("ca.pem".into())?,
        &read(format!("{name}.pem"))?,
        &read(format!("{name}.key"))?,
        server_name,
    );
    let channel = Endpoint::from_shared(url.to_owned())?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(CoordinatorClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
}

pub fn spec(
    template: &str,
    from: &str,
    months: u16,
    min_institutions: u32,
) -> Result<QuerySpec, Error> {
    let t = Template::by_id(template)?;
    YearMonth::parse(from).ok_or("--from must be YYYY-MM")?;
    Ok(QuerySpec {
        template: template.into(),
        template_version: t.info().version,
        window_first: from.into(),
        window_months: months as u32,
        min_institutions,
        recipient_key: Vec::new(),
        signature: Vec::new(),
        epsilon: 0.0,
        delta: 0.0,
        publish: false,
    })
}

/// Refuses DP parameters the nodes would refuse (bad ε or δ, a template without a declared
/// sensitivity), before anything is sent.
pub fn check_dp(spec: &QuerySpec, epsilon: f64, delta: f64) -> Result<(), Error> {
    let template = Template::by_id(&spec.template)?;
    concord_query::dp::DpPlan::new(template, epsilon, delta, spec.min_institutions as usize)?;
    Ok(())
}

/// What a DP result cost and how noisy it is, in words; `None` without DP.
pub fn dp_report(status: &QueryStatus) -> Option<String> {
    let spec = status.spec.as_ref()?;
    if spec.epsilon <= 0.0 {
        return None;
    }
    let template = Template::by_id(&spec.template).ok()?;
    let plan = concord_query::dp::DpPlan::new(
        template,
        spec.epsilon,
        spec.delta,
        spec.min_institutions as usize,
    )
    .ok()?;
    let shares = status.contributors.len().max(plan.institutions);
    let (epsilon, delta) = plan.spent(plan_cells(&template, spec), shares);
    Some(format!(
        "differential privacy for one {}: ε = {epsilon:.3} spent, δ = {delta:e} (ρ = {:.4} zCDP); discrete Gaussian noise per cell, σ = {:.2} ({shares} shares of σ = {:.2})",
        plan.unit,
        plan.rho,
        plan.scale * (shares as f64).sqrt(),
        plan.scale
    ))
}

/// The cells of the query's layout (0 where its window is invalid).
fn plan_cells(template: &Template, spec: &QuerySpec) -> usize {
    YearMonth::parse(&spec.window_first)
        .and_then(|first| Window::new(first, spec.window_months as u16).ok())
        .map_or(0, |w| template.layout(&w).cells())
}

/// Signs a query with the researcher's certificate key (`DIR/NAME.key`): nodes take part only
/// in queries the researcher signed, recipient key included.
pub fn sign(spec: &mut QuerySpec, tls_dir: &Path, name: &str) -> Result<(), Error> {
    let path = tls_dir.join(format!("{name}.key"));
    let key = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    concord_api::submission::sign(spec, &key)?;
    Ok(())
}

/// Polls until the query is released or failed (or `timeout` passes).
pub async fn wait(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
    timeout: Duration,
) -> Result<QueryStatus, Error> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let status = client
            .get(QueryRef {
                query_id: id.into(),
            })
            .await?
            .into_inner();
        let finished = status.phase == "released" || status.phase == "failed";
        if finished || deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The phases of a query, in order.
pub const PHASES: &[&str] = &[
    "submitted",
    "proposed",
    "contributing",
    "verifying",
    "decrypting",
    "released",
];

/// A phase in words, with the contributions summed while contributing.
pub fn progress(status: &QueryStatus) -> String {
    match status.phase.as_str() {
        "contributing" => format!(
            "contributing ({} of {} summed)",
            status.contributed, status.asked
        ),
        "proposed" if !status.detail.is_empty() => format!("proposed ({})", status.detail),
        "failed" => format!("failed: {}", status.detail),
        phase => phase.to_owned(),
    }
}

/// Follows a query (the coordinator streams every change) until it is released or failed,
/// with a progress bar per phase (drawn on stderr when it is a terminal).
pub async fn watch(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
) -> Result<QueryStatus, Error> {
    let bar = indicatif::ProgressBar::new(PHASES.len() as u64 - 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut updates = client
        .watch(QueryRef {
            query_id: id.into(),
        })
        .await?
        .into_inner();
    let mut last = None;
    while let Some(status) = updates.message().await? {
        if let Some(i) = PHASES.iter().position(|p| *p == status.phase) {
            bar.set_position(i as u64);
        }
        bar.set_message(format!("{id}: {}", progress(&status)));
        last = Some(status);
    }
    let status = last.ok_or("the coordinator sent no status")?;
    bar.finish_with_message(format!("{id}: {}", progress(&status)));
    Ok(status)
}

/// One line per query: id, phase, template, window, submission time.
pub fn print_list(queries: &[QueryStatus]) {
    for q in queries {
        let spec = q.spec.clone().unwrap_or_default();
        let submitted = std::time::UNIX_EPOCH + Duration::from_secs(q.submitted_at);
        println!(
            "{}  {}  {:<36} {} +{:<3}  {}",
            q.query_id,
            humantime::format_rfc3339_seconds(submitted),
            spec.template,
            spec.window_first,
            spec.window_months,
            progress(q)
        );
    }
}

/// The layout a status's cells follow.
pub fn layout_of(status: &QueryStatus) -> Result<Layout, Error> {
    let spec = status.spec.as_ref().ok_or("status without its query")?;
    let first = YearMonth::parse(&spec.window_first).ok_or("bad window")?;
    Ok(Template::by_id(&spec.template)?.layout(&Window::new(first, spec.window_months as u16)?))
}

/// One row per cell: the labels of its dimensions (or the summary cell's name) and its value.
pub fn rows(layout: &Layout, cells: &[i128]) -> Vec<(Vec<String>, i128)> {
    let sizes: Vec<usize> = layout.dimensions.iter().map(|d| d.labels.len()).collect();
    let table = layout.table_cells();
    let mut out: Vec<(Vec<String>, i128)> = (0..table)
        .map(|i| {
            let mut rest = i;
            let mut labels = vec![String::new(); sizes.len()];
            for (k, size) in sizes.iter().enumerate().rev() {
                labels[k] = layout.dimensions[k].labels[rest % size].clone();
                rest /= size;
            }
            (labels, cells[i])
        })
        .collect();
    for (s, v) in layout.summary.iter().zip(&cells[table..]) {
        out.push((vec![s.name.to_string()], *v));
    }
    out
}

pub fn print_csv(layout: &Layout, cells: &[i128]) {
    let header: Vec<&str> = layout.dimensions.iter().map(|d| d.name).collect();
    println!("{},value", header.join(","));
    for (labels, v) in rows(layout, cells) {
        let quoted: Vec<String> = labels
            .iter()
            .map(|l| format!("\"{}\"", l.replace('"', "\"\"")))
            .collect();
        let pad = header.len().saturating_sub(quoted.len());
        println!("{}{},{v}", quoted.join(","), ",".repeat(pad));
    }
}

pub fn print_json(status: &QueryStatus, layout: &Layout, cells: &[i128]) {
    let dims: Vec<&str> = layout.dimensions.iter().map(|d| d.name).collect();
    let rows: Vec<String> = rows(layout, cells)
        .into_iter()
        .map(|(labels, v)| format!("{{\"cell\":{:?},\"value\":{v}}}", labels))
        .collect();
    println!(
        "{{\"query\":{:?},\"template\":{:?},\"institutions\":{},\"events_covered\":{},\"smudging_lambda\":{:.1},\"contributors\":{:?},\"shares_from\":{:?},\"epsilon\":{},\"delta\":{},\"dimensions\":{:?},\"rows\":[{}]}}",
        status.query_id,
        status.spec.as_ref().map(|s| s.template.as_str()).unwrap_or_default(),
        status.institutions,
        status.events_covered,
        status.smudging_lambda,
        status.contributors,
        status.shares_from,
        status.spec.as_ref().map_or(0.0, |s| s.epsilon),
        status.spec.as_ref().map_or(0.0, |s| s.delta),
        dims,
        rows.join(",")
    );
}

/// Non-zero cells (the 24 largest of a cross-table with more), then summary cells.
pub fn print_table(template: Template, layout: &Layout, cells: &[i128]) {
    let table = layout.table_cells();
    let all = rows(layout, cells);
    let (cross, summary) = all.split_at(table);
    let mut shown: Vec<&(Vec<String>, i128)> = cross.iter().filter(|r| r.1 > 0).collect();
    if layout.dimensions.len() > 1 && shown.len() > 24 {
        println!("  {} non-zero cells; the 24 largest:", shown.len());
        shown.sort_by_key(|r| std::cmp::Reverse(r.1));
        shown.truncate(24);
    }
    let header = layout
        .dimensions
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(" | ");
    println!("  {header:<60} {:>9}", "value");
    for (labels, v) in shown {
        println!("  {:<60} {v:>9}", labels.join(" | "));
    }
    for (labels, v) in summary {
        println!("  {:<60} {v:>9}", labels[0]);
    }
    for finding in template.findings(layout, cells) {
        println!("  {finding}");
    }
}

/// The template of a query's status.
pub fn template_of(status: &QueryStatus) -> Result<Template, Error> {
    let spec = status.spec.as_ref().ok_or("status without its query")?;
    Ok(Template::by_id(&spec.template)?)
}

/// Draws a released result as its template's natural chart into `path` (PNG or SVG), with a
/// caption naming the query, its institutions and its privacy.
pub fn plot(
    status: &QueryStatus,
    layout: &Layout,
    cells: &[i128],
    path: &Path,
) -> Result<(), Error> {
    let spec = status.spec.as_ref().ok_or("status without its query")?;
    let template = Template::by_id(&spec.template)?;
    let info = template.info();
    let mut caption = vec![
        info.question.to_owned(),
        format!(
            "query {}: window {} + {} months; k = {} institutions ({}), {} events covered",
            status.query_id,
            spec.window_first,
            spec.window_months,
            status.institutions,
            status.contributors.join(", "),
            status.events_covered
        ),
        dp_report(status).unwrap_or_else(|| {
            "ε: none (no differential privacy); the exact sum of the institutions' statistics"
                .into()
        }),
    ];
    caption.extend(template.findings(layout, cells));
    crate::plot::write(
        path,
        &crate::plot::Figure {
            layout,
            chart: template.chart(),
            counts: template.counts(),
            cells,
            title: format!("{} v{}", info.id, info.version),
            caption,
        },
    )?;
    Ok(())
}

/// A released result's cells: a sealed result opened with the researcher's key in
/// `keys_dir`, or a public result's cells as released.
pub fn cells_of(status: &QueryStatus, keys_dir: &Path, name: &str) -> Result<Vec<i128>, Error> {
    if !status.sealed.is_empty() {
        let spec = status.spec.as_ref().ok_or("status without its query")?;
        let first = YearMonth::parse(&spec.window_first).ok_or("bad window")?;
        let window = Window::new(first, spec.window_months as u16)?;
        return crate::keys::open_sealed(
            keys_dir,
            name,
            &spec.template,
            window,
            status.institutions as usize,
            &status.sealed,
        );
    }
    Ok(status
        .cells
        .iter()
        .map(|c| c.parse())
        .collect::<Result<Vec<i128>, _>>()?)
}
