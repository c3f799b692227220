//! The researcher's client: connect to the coordinator with a researcher certificate, submit
//! queries, wait for and print their results (table, CSV or JSON).

use concord_api::lifecycle::Phase;
use concord_api::tls::{client_config, MAX_MESSAGE_BYTES};
use concord_api::v1::coordinator_client::CoordinatorClient;
use concord_api::v1::{QueryRef, QuerySpec, QueryStatus};
use concord_query::{BinSizing, QueryAgreement, TARGET_MERGE_RATE};
use concord_stats::{Layout, Template, YearMonth};
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
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url:?} is not a coordinator URL (https://HOST:PORT): {e}"))?
        .tls_config(tls)?
        .connect()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the coordinator at {url}: {} (is it running, is the URL https:// with the right port, does its certificate carry the name {server_name:?}?)",
                causes(&e)
            )
        })?;
    Ok(CoordinatorClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
}

/// An error and its causes, innermost last: what a transport error really was.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A failed command in a sentence: a gRPC status as what it means for the researcher (the
/// coordinator's own words, without the status code's boilerplate), anything else with its
/// causes.
pub fn sentence(e: &(dyn std::error::Error + 'static)) -> String {
    let Some(status) = e.downcast_ref::<tonic::Status>() else {
        return causes(e);
    };
    let message = status.message();
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            format!("the coordinator refused: {message}")
        }
        tonic::Code::NotFound | tonic::Code::AlreadyExists => message.to_owned(),
        tonic::Code::ResourceExhausted => format!("not now: {message}"),
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => format!(
            "not allowed: {message} (a researcher's certificate of this deployment's CA is needed)"
        ),
        tonic::Code::Unavailable => format!(
            "the coordinator is unreachable: {message} (is it running, and is --coordinator right?)"
        ),
        tonic::Code::DeadlineExceeded => {
            format!("the coordinator did not answer in time: {message}")
        }
        code => format!("{}: {message}", code.description()),
    }
}

/// What a researcher asks, as the command line takes it (`query submit` and `query prepare`).
#[derive(clap::Args, Clone)]
pub struct Terms {
    /// A template id (see `concord templates`).
    #[arg(long)]
    pub template: String,
    /// First month of the window (YYYY-MM).
    #[arg(long)]
    pub from: String,
    #[arg(long, default_value_t = 12)]
    pub months: u16,
    #[arg(long, default_value_t = 3)]
    pub min_institutions: u32,
    /// A result public to the community (joint decryption), where the nodes' policies allow
    /// it; by default the result is sealed to this researcher's key.
    #[arg(long)]
    pub public: bool,
    /// Differential privacy: the result is (ε, δ)-DP for one event (every node adds its
    /// share of discrete Gaussian noise). Spent from each node's budget for you.
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// δ of a DP query.
    #[arg(long, default_value_t = 1e-6, requires = "epsilon")]
    pub delta: f64,
    /// Ask to publish the result to the community's MISP instance (`query publish`): only
    /// nodes whose policy allows publication agree.
    #[arg(long)]
    pub publish: bool,
    /// An overlap template's bins per histogram (a multiple of the set's N: 16384, or 32768
    /// above 16 institutions; default: the template's own): more bins, fewer indicators merged, more work at every node. `auto`:
    /// `query submit` first asks how many indicators the institutions hold (an
    /// `indicators-held` query with the same window and terms) and sizes the bins for a merge
    /// rate of at most 5 %.
    #[arg(long)]
    pub bins: Option<Bins>,
    /// The institutions the query will be proposed to: the community's members (`query
    /// members`). An overlap query's parameter set, and so the result key it is sealed to,
    /// follows it (`MUL-16384-T26` up to 16, `MUL-32768-T26` up to 127). `query submit` asks
    /// the coordinator; `query prepare` takes it here (default: --min-institutions).
    #[arg(long)]
    pub institutions: Option<u32>,
}

/// `--bins`: a number of bins per histogram, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bins {
    Auto,
    PerHistogram(u32),
}

impl std::str::FromStr for Bins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Bins::Auto);
        }
        s.parse().map(Bins::PerHistogram).map_err(|_| {
            format!("{s:?}: a number of bins per histogram (a multiple of 16384 or, above 16 institutions, of 32768), or auto")
        })
    }
}

/// A released query's status, protobuf-encoded on standard input (`query open`, `query bins`).
pub fn released_status_from_stdin() -> Result<QueryStatus, Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    let status: QueryStatus = prost::Message::decode(bytes.as_slice())
        .map_err(|e| format!("standard input is not a protobuf-encoded QueryStatus: {e}"))?;
    if !status.is_released() {
        return Err(format!(
            "query {} is {}, not released",
            status.query_id,
            status.phase_name()
        )
        .into());
    }
    Ok(status)
}

/// The template whose result sizes an overlap query's bins.
pub const SIZING_TEMPLATE: &str = "indicators-held";

/// `--bins auto`: submits the `indicators-held` query with the overlap query's terms, waits for
/// its release, and sizes the bins from it ([`bins_from`]); returns its id and the sizing.
pub async fn size_bins(
    client: &mut CoordinatorClient<Channel>,
    terms: &Terms,
    keys_dir: &Path,
    tls_dir: &Path,
    name: &str,
) -> Result<(String, BinSizing), Error> {
    let overlap = Template::by_id(&terms.template)?;
    if !overlap.is_overlap() {
        return Err(format!(
            "--bins is for the overlap templates; {} has no bins",
            terms.template
        )
        .into());
    }
    let held = Terms {
        template: SIZING_TEMPLATE.into(),
        bins: None,
        publish: false,
        ..terms.clone()
    };
    let spec = prepared(&held, keys_dir, tls_dir, name)?;
    let id = client.submit(spec).await?.into_inner().query_id;
    eprintln!("sizing the bins: query {id} ({SIZING_TEMPLATE}) asks how many indicators the institutions hold");
    let status = wait(client, &id, Duration::from_secs(600)).await?;
    if !status.is_released() {
        return Err(format!(
            "query {id}, which sizes the bins, is {}: {}",
            status.phase_name(),
            status.detail
        )
        .into());
    }
    let sizing = bins_from(&status, overlap, keys_dir, name)?;
    Ok((id, sizing))
}

/// The bins of an overlap query of `overlap` sized from a released `indicators-held` result
/// (`concord-query` `size_bins`, for [`TARGET_MERGE_RATE`]). Under DP each count carries
/// noise: three of its standard deviations are added first, so that the bound still holds but
/// with probability about 0.1 %.
pub fn bins_from(
    status: &QueryStatus,
    overlap: Template,
    keys_dir: &Path,
    name: &str,
) -> Result<BinSizing, Error> {
    if template_of(status)?.info().id != SIZING_TEMPLATE {
        return Err(format!(
            "query {} is not an {SIZING_TEMPLATE} query: its result cannot size bins",
            status.query_id
        )
        .into());
    }
    if status.sealed.is_empty() && status.cells.is_empty() {
        return Err(format!(
            "the status of query {} carries no result (the coordinator's Get answers it with the result; Watch does not)",
            status.query_id
        )
        .into());
    }
    let cells = cells_of(status, keys_dir, name)?;
    // the overlap query goes to the community that answered this one
    let institutions = agreement_of(status)?.institutions;
    let margin = noise_sd(status).map_or(0.0, |sd| 3.0 * sd);
    let held: Vec<u64> = cells
        .iter()
        .map(|&c| (c as f64 + margin).max(0.0).ceil() as u64)
        .collect();
    Ok(concord_query::size_bins(
        overlap,
        institutions,
        &held,
        TARGET_MERGE_RATE,
    )?)
}

/// What a sizing means, in a sentence.
pub fn sizing_report(template: &str, sizing: &BinSizing) -> String {
    let ciphertexts = sizing.per_group.div_ceil(sizing.slots);
    let mut line = format!(
        "{template}: {} bins per histogram ({ciphertexts} ciphertext(s)) for at most {} distinct indicators: merge rate at most {:.2}%",
        sizing.per_group,
        sizing.distinct,
        100.0 * sizing.merge_rate
    );
    if sizing.capped {
        line.push_str(&format!(
            " (the most --bins auto asks, {} bins in all: what a node's policy takes by default; the {:.0}% target needs more, which --bins B asks where the nodes take it)",
            concord_query::AUTO_MAX_BINS,
            100.0 * TARGET_MERGE_RATE
        ));
    }
    line
}

/// The query as submitted: its terms, DP checked, sealed to the researcher's result key (in
/// `keys_dir`) unless public, stamped and signed with their certificate key (in `tls_dir`).
pub fn prepared(
    terms: &Terms,
    keys_dir: &Path,
    tls_dir: &Path,
    name: &str,
) -> Result<QuerySpec, Error> {
    let mut spec = spec(
        &terms.template,
        &terms.from,
        terms.months,
        terms.min_institutions,
    )?;
    spec.publish = terms.publish;
    if terms.bins == Some(Bins::Auto) {
        return Err(format!(
            "--bins auto asks the community first: `query submit` runs the {SIZING_TEMPLATE} query and sizes the bins; an outside client runs that query itself and passes its released status to `concord query bins`"
        )
        .into());
    }
    if let Some(Bins::PerHistogram(bins)) = terms.bins {
        spec.bins = bins;
    }
    if let Some(epsilon) = terms.epsilon {
        (spec.epsilon, spec.delta) = (epsilon, terms.delta);
    }
    // refused here as every node would refuse it (bins, DP terms, too many institutions)
    let institutions = terms
        .institutions
        .unwrap_or(spec.min_institutions)
        .max(spec.min_institutions)
        .max(2);
    let agreement = QueryAgreement::new(&spec.terms(), institutions as usize)?;
    if !terms.public {
        let set = agreement.plan.params.name();
        spec.recipient_key = crate::keys::public_key(keys_dir, name, set)?;
    }
    sign(&mut spec, tls_dir, name)?;
    Ok(spec)
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
        // stamped when signed: a fresh nonce, an expiry a week ahead
        nonce: Vec::new(),
        expires_at: 0,
        bins: 0,
        training: None,
    })
}

/// The agreement of the query a status is of, for the institutions in its result.
fn agreement_of(status: &QueryStatus) -> Result<QueryAgreement, Error> {
    let spec = status.spec.as_ref().ok_or("status without its query")?;
    // the institutions the query was proposed to (what node and coordinator built the
    // agreement for; an overlap query's histogram runs to it)
    let institutions = (status.contributors.len() as u32)
        .max(status.institutions)
        .max(status.asked)
        .max(spec.min_institutions)
        .max(1);
    Ok(spec.agreement(institutions as usize)?)
}

/// What a DP query will cost and guarantee, before it is submitted (`concord dp`): its unit,
/// its zCDP cost, ε at the asked δ and at a node's δ, the noise, and what a budget of `budget`
/// (ε at `node_delta`) keeps after it when `spent` is spent already. A zCDP ledger adds ρ and ξ,
/// so what is left is recomputed from them, not by subtracting ε.
pub fn dp_plan_report(
    plan: &concord_query::dp::DpPlan,
    overlap: bool,
    node_delta: f64,
    spent: f64,
    budget: f64,
) -> String {
    use concord_query::dp::{epsilon_of, rho_for};
    let at_node = plan.epsilon_at(node_delta);
    // the spending so far as zCDP (ρ at the node's δ), plus this query's (ξ, ρ)
    let rho_before = rho_for(spent, node_delta);
    let after = epsilon_of(plan.xi, rho_before + plan.rho, node_delta);
    let counted = if plan.unit == concord_stats::catalogue::HELD_INDICATOR {
        ""
    } else {
        ", wherever it is held: each institution counts only the events it created"
    };
    let adds = if overlap {
        "gives a share of the release and adds to it"
    } else {
        "adds"
    };
    format!(
        "unit: one {unit}{counted} (L2 sensitivity {sens:.3}; moves at most {cells} cell(s))\n\
         cost: ρ = {rho:.5}, ξ = {xi:.3e} (zCDP); ε = {eps:.4} at δ = {delta:e}; ε = {at_node:.4} at the node's δ = {node_delta:e}\n\
         noise: each of at least {k} institutions {adds} N_Z(0, {s:.3}²) per cell (clamped at ±{bound}); a released cell carries σ ≥ {sigma:.3}\n\
         budget at a node: ε = {spent:.4} spent, {after:.4} after this query, of {budget} ({left})\n",
        unit = plan.unit,
        sens = plan.sensitivity,
        cells = plan.cells,
        rho = plan.rho,
        xi = plan.xi,
        eps = plan.spent(1, plan.institutions).0,
        delta = plan.delta,
        k = plan.institutions,
        s = plan.scale,
        bound = plan.bound,
        sigma = plan.aggregate_std_dev(),
        left = if after <= budget { "fits" } else { "refused: budget-exhausted" },
    )
}

/// The standard deviation of one released cell's DP noise (every contributor's share of it);
/// `None` without DP.
pub fn noise_sd(status: &QueryStatus) -> Option<f64> {
    let agreement = agreement_of(status).ok()?;
    let plan = agreement.plan.dp.as_ref()?;
    Some(plan.scale * (noise_shares(status, &agreement.plan) as f64).sqrt())
}

/// How many parties' noise a released cell carries: every contributor's, or — an overlap
/// query's, added at release — every sharing party's.
fn noise_shares(status: &QueryStatus, plan: &concord_query::QueryPlan) -> usize {
    let k = plan.dp.as_ref().map_or(1, |dp| dp.institutions);
    match plan.layout.overlap {
        Some(_) => status.shares_from.len().max(k),
        None => status.contributors.len().max(k),
    }
}

/// What a DP result cost and how noisy it is, in words; `None` without DP.
pub fn dp_report(status: &QueryStatus) -> Option<String> {
    let agreement = agreement_of(status).ok()?;
    let plan = agreement.plan.dp.as_ref()?;
    let shares = noise_shares(status, &agreement.plan);
    let (epsilon, delta) = plan.spent(agreement.plan.layout.cells(), shares);
    let counted = match agreement.plan.layout.overlap {
        Some(_) => "",
        None => " wherever it is held (counted at its creator)",
    };
    Some(format!(
        "differential privacy for one {}{counted}: ε = {epsilon:.3} spent, δ = {delta:e} (ρ = {:.4} zCDP); discrete Gaussian noise per cell, σ = {:.2} ({shares} shares of σ = {:.2})",
        plan.unit,
        plan.rho,
        plan.scale * (shares as f64).sqrt(),
        plan.scale
    ))
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
        if status.is_finished() || deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A phase in words, with the contributions committed while contributing.
pub fn progress(status: &QueryStatus) -> String {
    match Phase::of(status) {
        Some(Phase::Contributing) => format!(
            "contributing ({} of {} committed)",
            status.contributed, status.asked
        ),
        Some(Phase::Proposed) if !status.detail.is_empty() => {
            format!("proposed ({})", status.detail)
        }
        Some(Phase::Failed) => format!("failed: {}", status.detail),
        _ => status.phase_name().to_owned(),
    }
}

/// Follows a query (the coordinator streams every change) until it is released or failed,
/// with a progress bar per phase (drawn on stderr when it is a terminal).
pub async fn watch(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
) -> Result<QueryStatus, Error> {
    let bar = indicatif::ProgressBar::new(Phase::PROGRESS.len() as u64 - 1);
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
        if let Some(i) = Phase::PROGRESS
            .iter()
            .position(|&p| Some(p) == Phase::of(&status))
        {
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
    Ok(agreement_of(status)?.plan.layout)
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

/// The result as CSV on standard output (one column per dimension, then `value`). A reader
/// that stops early (`| head`) ends the output quietly: a closed pipe is not an error.
pub fn print_csv(layout: &Layout, cells: &[i128]) -> std::io::Result<()> {
    let mut out = csv::WriterBuilder::new()
        .flexible(false)
        .from_writer(std::io::stdout().lock());
    let mut write = || -> Result<(), csv::Error> {
        let header: Vec<&str> = layout.dimensions.iter().map(|d| d.name).collect();
        out.write_record(header.iter().copied().chain(["value"]))?;
        for (labels, v) in rows(layout, cells) {
            // a summary cell has one label: the other dimensions' columns stay empty
            let pad = header.len().saturating_sub(labels.len());
            let value = v.to_string();
            out.write_record(
                labels
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat_n("", pad))
                    .chain([value.as_str()]),
            )?;
        }
        out.flush()?;
        Ok(())
    };
    match write() {
        Ok(()) => Ok(()),
        Err(e) => match e.into_kind() {
            csv::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            csv::ErrorKind::Io(e) => Err(e),
            other => Err(std::io::Error::other(format!("{other:?}"))),
        },
    }
}

/// The result as one JSON object: the query's terms (template and version, window, ε and δ),
/// who contributed and released it, and every cell with its labels.
pub fn print_json(status: &QueryStatus, layout: &Layout, cells: &[i128]) {
    let spec = status.spec.clone().unwrap_or_default();
    let dims: Vec<&str> = layout.dimensions.iter().map(|d| d.name).collect();
    let rows: Vec<serde_json::Value> = rows(layout, cells)
        .into_iter()
        .map(|(labels, v)| serde_json::json!({ "cell": labels, "value": v as i64 }))
        .collect();
    let result = serde_json::json!({
        "query": status.query_id,
        "template": spec.template,
        "template_version": spec.template_version,
        "window": { "first": spec.window_first, "months": spec.window_months },
        "institutions": status.institutions,
        "smudging_lambda": (status.smudging_lambda * 10.0).round() / 10.0,
        "contributors": status.contributors,
        "shares_from": status.shares_from,
        "epsilon": spec.epsilon,
        "delta": spec.delta,
        "dimensions": dims,
        "rows": rows,
    });
    println!("{result}");
}

/// The result as a table: every non-zero cell — negative ones too, as DP noise makes them —
/// then the summary cells and the template's findings. A cross-table with more than 24
/// non-zero cells shows its 24 largest in magnitude unless `all`.
pub fn print_table(template: Template, layout: &Layout, cells: &[i128], all: bool) {
    let table = layout.table_cells();
    let rows = rows(layout, cells);
    let (cross, summary) = rows.split_at(table);
    let mut shown: Vec<&(Vec<String>, i128)> = cross.iter().filter(|r| r.1 != 0).collect();
    if !all && layout.dimensions.len() > 1 && shown.len() > 24 {
        println!(
            "  {} non-zero cells; the 24 largest in magnitude (all of them: --all, --csv or --json):",
            shown.len()
        );
        shown.sort_by_key(|r| std::cmp::Reverse(r.1.unsigned_abs()));
        shown.truncate(24);
    }
    let columns = layout.dimensions.len();
    let mut out = comfy_table::Table::new();
    out.load_style(comfy_table::presets::NOTHING).set_header(
        layout
            .dimensions
            .iter()
            .map(|d| d.name.to_owned())
            .chain(["value".to_owned()]),
    );
    for (labels, v) in shown.into_iter().chain(summary) {
        let pad = columns.saturating_sub(labels.len());
        out.add_row(
            labels
                .iter()
                .cloned()
                .chain(std::iter::repeat_n(String::new(), pad))
                .chain([v.to_string()]),
        );
    }
    if let Some(value) = out.column_mut(columns) {
        value.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    for line in out.to_string().lines() {
        println!(" {}", line.trim_end());
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
        format!(
            "{} v{}, query {}: window {} + {} months; k = {} institutions ({})",
            info.id,
            info.version,
            status.query_id,
            spec.window_first,
            spec.window_months,
            status.institutions,
            status.contributors.join(", ")
        ),
        dp_report(status).unwrap_or_else(|| {
            "ε: none (no differential privacy); the exact sum of the institutions' statistics"
                .into()
        }),
    ];
    caption.extend(template.findings(layout, cells));
    // an overlap histogram is drawn to j = n, the institutions the query was proposed to: the
    // counts above n are zero by construction, not findings
    let (layout, cells) = match layout.overlap {
        Some(_) => {
            let n = agreement_of(status)?.plan.holders();
            let mut trimmed = layout.clone();
            let holders = trimmed.dimensions.last_mut().ok_or("an overlap table")?;
            let all = holders.labels.len();
            holders.labels.truncate(n);
            let cells: Vec<i128> = cells
                .chunks(all)
                .flat_map(|histogram| histogram[..n.min(histogram.len())].to_vec())
                .collect();
            (
                std::borrow::Cow::Owned(trimmed),
                std::borrow::Cow::Owned(cells),
            )
        }
        None => (
            std::borrow::Cow::Borrowed(layout),
            std::borrow::Cow::Borrowed(cells),
        ),
    };
    crate::plot::write(
        path,
        &crate::plot::Figure {
            layout: &layout,
            chart: template.chart(),
            counts: template.counts(),
            cells: &cells,
            title: info.question.to_owned(),
            caption,
            noise_sd: noise_sd(status),
        },
    )?;
    Ok(())
}

/// A released result's cells: a sealed result opened with the researcher's key in
/// `keys_dir`, or a public result's cells as released.
pub fn cells_of(status: &QueryStatus, keys_dir: &Path, name: &str) -> Result<Vec<i128>, Error> {
    if !status.sealed.is_empty() {
        return crate::keys::open_sealed(keys_dir, name, &agreement_of(status)?, &status.sealed);
    }
    Ok(status
        .cells
        .iter()
        .map(|c| c.parse())
        .collect::<Result<Vec<i128>, _>>()?)
}

/// A researcher's budget at every node: per node and unit, ε spent, of the budget, and left.
pub fn print_budget(list: &concord_api::v1::BudgetList, json: bool) {
    if json {
        let nodes: Vec<serde_json::Value> = list
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node": n.node,
                    "epsilon_budget": n.epsilon_budget,
                    "delta": n.delta,
                    "spent": n.spent.iter().map(|s| serde_json::json!({
                        "unit": s.unit,
                        "epsilon_spent": s.epsilon_spent,
                        "epsilon_left": (s.epsilon_budget - s.epsilon_spent).max(0.0),
                        "queries": s.queries,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({"nodes": nodes, "unreachable": list.unreachable});
        println!("{out:#}");
        return;
    }
    for node in &list.nodes {
        if node.spent.is_empty() {
            println!(
                "{}: nothing spent of ε = {} (at δ = {:e}) per unit",
                node.node, node.epsilon_budget, node.delta
            );
        }
        for s in &node.spent {
            println!(
                "{}: per {}: ε = {:.3} spent of {} (at δ = {:e}), {:.3} left, {} queries",
                node.node,
                s.unit,
                s.epsilon_spent,
                s.epsilon_budget,
                s.delta,
                (s.epsilon_budget - s.epsilon_spent).max(0.0),
                s.queries
            );
        }
    }
    for u in &list.unreachable {
        println!("not answered: {u}");
    }
}

/// What `concord train` asks: a training template over a window, and how to train.
#[derive(clap::Args, Clone)]
pub struct Training {
    /// A training template (`train-to-ids`, `train-false-positive`,
    /// `train-shared-beyond-community`; see `concord templates`).
    #[arg(long)]
    pub template: String,
    /// First month of the window (YYYY-MM).
    #[arg(long)]
    pub from: String,
    #[arg(long, default_value_t = 12)]
    pub months: u16,
    #[arg(long, default_value_t = 3)]
    pub min_institutions: u32,
    /// Gradient steps, one query each.
    #[arg(long, default_value_t = 30)]
    pub rounds: u32,
    /// `logistic` regression, or `linear` regression of the 0/1 label (residuals clipped to
    /// [−1, 1]).
    #[arg(long, default_value = "logistic")]
    pub objective: String,
    /// The step size; default: the largest the fixed-point bound holds for (8/d logistic,
    /// 2/d linear).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Each sample's gradient term is rounded to a multiple of 2^-scale_bits.
    #[arg(long, default_value_t = 16)]
    pub scale_bits: u32,
    /// Where the model is written (JSON).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// A trained model as `concord train` writes it: the model, and the queries that made it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TrainedModel {
    pub template: String,
    pub window_first: String,
    pub window_months: u16,
    /// The institutions each round aggregated (the fewest over the rounds).
    pub institutions: u32,
    /// The rounds' query ids, in order.
    pub queries: Vec<String>,
    #[serde(flatten)]
    pub model: concord_stats::learning::Model,
}

/// Trains a model: one query per round, each sealed to the researcher, carrying the model
/// the nodes compute their gradients at; each released sum steps the model
/// (docs/learning.md). Follows the rounds with a progress bar.
pub async fn train(
    client: &mut CoordinatorClient<Channel>,
    training: &Training,
    keys_dir: &Path,
    tls_dir: &Path,
    name: &str,
) -> Result<TrainedModel, Error> {
    use concord_stats::learning::{Design, LocalGradient, Model, Objective, TrainConfig};
    let template = Template::by_id(&training.template)?;
    let label = template.training_label().ok_or_else(|| {
        format!(
            "{} is not a training template (train-to-ids, train-false-positive, train-shared-beyond-community)",
            training.template
        )
    })?;
    let design = Design::new(label);
    let d = design.dimension();
    let objective = Objective::by_id(&training.objective)
        .ok_or_else(|| format!("--objective {}: logistic or linear", training.objective))?;
    let config = TrainConfig {
        rounds: training.rounds,
        learning_rate: training
            .learning_rate
            .unwrap_or(TrainConfig::max_learning_rate(objective, d)),
        scale_bits: training.scale_bits,
        objective,
    };
    let mut model = Model::start(&design, config)?;
    let institutions = client
        .members(concord_api::v1::ListRequest {})
        .await?
        .into_inner()
        .members
        .len();
    let bar = indicatif::ProgressBar::new(u64::from(training.rounds));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} round {pos}/{len} {msg}")
            .expect("a valid progress template"),
    );
    let mut queries = Vec::new();
    let mut fewest = u32::MAX;
    for round in 0..training.rounds {
        let mut spec = spec(
            &training.template,
            &training.from,
            training.months,
            training.min_institutions,
        )?;
        spec.training = Some(concord_api::v1::TrainingRound {
            model: model.coefficients.clone(),
            learning_rate: config.learning_rate,
            scale_bits: config.scale_bits,
            round,
            rounds: training.rounds,
            objective: objective.id().into(),
        });
        let set = spec
            .agreement(institutions.max(spec.min_institutions as usize))?
            .plan
            .params
            .name();
        spec.recipient_key = crate::keys::public_key(keys_dir, name, set)?;
        sign(&mut spec, tls_dir, name)?;
        let id = client.submit(spec).await?.into_inner().query_id;
        let watched = wait(client, &id, Duration::from_secs(600)).await?;
        if !watched.is_released() {
            bar.abandon();
            return Err(format!(
                "round {round}: query {id} is {}: {}",
                watched.phase_name(),
                watched.detail
            )
            .into());
        }
        // the result travels in Get's answer, not in Watch's
        let status = client
            .get(QueryRef {
                query_id: id.clone(),
            })
            .await?
            .into_inner();
        let cells = cells_of(&status, keys_dir, name)?;
        model.step(&LocalGradient::from_cells(&cells, &config)?)?;
        fewest = fewest.min(status.institutions);
        queries.push(id);
        bar.set_message(format!(
            "mean loss {:.4} ({} institutions)",
            model.losses.last().copied().unwrap_or(f64::NAN),
            status.institutions
        ));
        bar.inc(1);
    }
    bar.finish();
    Ok(TrainedModel {
        template: training.template.clone(),
        window_first: training.from.clone(),
        window_months: training.months,
        institutions: fewest,
        queries,
        model,
    })
}

/// How a model predicts the samples of MISP data the researcher holds (`concord evaluate`):
/// accuracy, AUC and the ROC curve, and the samples counted.
pub fn evaluate_model(
    trained: &TrainedModel,
    data: &Path,
    window: &concord_stats::Window,
) -> Result<concord_stats::learning::Evaluation, Error> {
    use concord_stats::learning::{evaluate, Design};
    let design = Design::new(trained.model.label);
    if design.names() != trained.model.features {
        return Err(format!(
            "the model's features are not those of {} in this build (docs/learning.md)",
            trained.model.label.id()
        )
        .into());
    }
    let events = concord_stats::load(data)?.events;
    let samples = design.samples(&events, window);
    if samples.is_empty() {
        return Err(format!(
            "{}: no samples of {} in the window",
            data.display(),
            trained.model.label.id()
        )
        .into());
    }
    Ok(evaluate(&trained.model, &samples))
}
