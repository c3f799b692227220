//! `concord`: the command line of researchers and operators. A thin shell over the libraries.
//!
//! - `concord ca init --dir DIR` — a development certificate authority;
//! - `concord ca issue --dir DIR --role node|coordinator|researcher --name NAME [--host H]…`;
//! - `concord templates` — the statistics catalogue, one template a line;
//! - `concord query submit|result …` — a researcher's queries to a coordinator;
//! - `concord train …` / `concord evaluate …` — a model trained across the institutions, and
//!   how it predicts held-out data (docs/learning.md);
//! - `concord demo [--data DIR]` — a whole deployment on this machine (see [`demo`]).

mod client;
mod demo;
mod keys;
mod plot;
mod publish;

use clap::{Parser, Subcommand};
use concord_api::pki::{DevCa, Role};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "Concord: aggregate statistics across threat-intelligence sharing institutions, under multiparty homomorphic encryption"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Development certificate authority and certificates.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The statistics catalogue: id, version, the question each template answers.
    Templates {
        /// The whole catalogue page in Markdown (docs/catalogue.md): definitions, MISP
        /// fields, cells, bounds, privacy and what comes back.
        #[arg(long)]
        markdown: bool,
    },
    /// What a differentially private query will cost and guarantee, before it is submitted:
    /// the unit it protects, ρ and ξ (zCDP), ε at the asked δ and at a node's δ, the noise per
    /// node and per released cell. Nothing is sent anywhere.
    Dp {
        /// A template id (see `concord templates`).
        #[arg(long)]
        template: String,
        #[arg(long)]
        epsilon: f64,
        #[arg(long, default_value_t = 1e-6)]
        delta: f64,
        /// The fewest contributing institutions (the noise is split among them).
        #[arg(long, default_value_t = 3)]
        min_institutions: u32,
        /// The δ at which a node keeps its budget (its policy's `budget_delta`).
        #[arg(long, default_value_t = 1e-6)]
        node_delta: f64,
        /// What the researcher has spent so far at a node on this unit, as ε at `node_delta`
        /// (to see what is left after this query of a budget of `--budget`).
        #[arg(long, default_value_t = 0.0)]
        spent: f64,
        #[arg(long, default_value_t = 10.0)]
        budget: f64,
    },
    /// The researcher's result keys: results are sealed to them, and only they open them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Queries to a coordinator, as a researcher.
    Query {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: QueryCommand,
    },
    /// Train a logistic-regression model across the institutions (docs/learning.md): one
    /// query per round of gradient descent, each releasing only the summed gradient, sealed to
    /// you; the model (coefficients, features, losses, the rounds' queries) is written as JSON.
    Train {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        training: client::Training,
    },
    /// How a trained model predicts MISP data you hold: accuracy, AUC, mean log-loss, and the
    /// ROC curve as a chart. Nothing is sent anywhere.
    Evaluate {
        /// A model `concord train` wrote.
        #[arg(long)]
        model: PathBuf,
        /// MISP data (a feed or event exports) held out from training.
        #[arg(long)]
        data: PathBuf,
        /// First month of the window whose events are the samples (YYYY-MM; default: the
        /// model's).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        months: Option<u16>,
        /// Where the ROC chart is written (.png or .svg).
        #[arg(long)]
        roc: Option<PathBuf>,
        /// The evaluation as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// A whole deployment on this machine: CA, node processes, setup, one query per template.
    Demo {
        /// Work directory for certificates, configurations, data and logs (default: a temporary one).
        #[arg(long)]
        work: Option<PathBuf>,
        /// Real MISP data (feeds or exports) to split across the nodes by creator organisation;
        /// default: feeds from the project's generator.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Number of institutions (3 to 8).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// First month of the query window (YYYY-MM).
        #[arg(long)]
        from: Option<String>,
        /// Months in the query window.
        #[arg(long)]
        months: Option<u16>,
        /// Threshold mode: any T of the nodes release a result (set up after CKG).
        #[arg(long)]
        threshold: Option<usize>,
        /// Where the chart of every result is written (PNG and SVG per template).
        #[arg(long, default_value = "concord-demo-plots")]
        plots: PathBuf,
        /// Every result as one JSON object per line on standard output (as `query result
        /// --json` gives it); the demo's narrative goes to standard error.
        #[arg(long)]
        json: bool,
        /// Every non-zero cell of every table, however many.
        #[arg(long, conflicts_with = "json")]
        all: bool,
    },
}

/// How to reach the coordinator.
#[derive(clap::Args)]
struct Connection {
    /// The coordinator's URL.
    #[arg(long, default_value = "https://127.0.0.1:7400")]
    coordinator: String,
    /// The coordinator certificate's name.
    #[arg(long, default_value = "coordinator")]
    server_name: String,
    /// Directory holding ca.pem and this researcher's NAME.pem and NAME.key.
    #[arg(long)]
    tls_dir: PathBuf,
    /// This researcher's certificate name.
    #[arg(long)]
    name: String,
    /// Directory holding this researcher's result keys (`concord keys init`); default: --tls-dir.
    #[arg(long)]
    keys_dir: Option<PathBuf>,
}

impl Connection {
    /// A client of the coordinator, over mutual TLS as this researcher.
    async fn connect(
        &self,
    ) -> Result<
        concord_api::v1::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
        client::Error,
    > {
        client::connect(
            &self.coordinator,
            &self.server_name,
            &self.tls_dir,
            &self.name,
        )
        .await
    }
}

#[derive(Subcommand)]
enum QueryCommand {
    /// Submit a query; prints its id.
    Submit {
        #[command(flatten)]
        terms: client::Terms,
    },
    /// For an outside client (docs/clients.md): the query `submit` would send — stamped with a
    /// nonce and expiry, sealed to your result key unless --public, signed with your
    /// certificate key — written to standard output as a protobuf-encoded `QuerySpec`, for
    /// the client to submit over its own gRPC connection. Nothing is sent.
    Prepare {
        #[command(flatten)]
        terms: client::Terms,
    },
    /// For an outside client (docs/clients.md): a released query's status, protobuf-encoded
    /// `QueryStatus` as the coordinator's `Get` answers it, read from standard input; its
    /// result — a sealed one opened with your result key — written as JSON, as `result --json`
    /// does. Nothing is sent.
    Open,
    /// For an outside client (docs/clients.md): the bins per histogram `--bins auto` would
    /// give an overlap query of --template, from a released `indicators-held` query's status
    /// (protobuf-encoded `QueryStatus`, read from standard input; a sealed result opened with
    /// your result key). Prints the number; what it means goes to standard error.
    Bins {
        /// The overlap template to size.
        #[arg(long)]
        template: String,
    },
    /// Publish a released result, submitted with --publish, to a MISP instance as an event
    /// holding a report object with the table and the query's metadata.
    Publish {
        id: String,
        /// The MISP instance's base URL.
        #[arg(long)]
        misp_url: String,
        /// A file holding your MISP API key (owner-only).
        #[arg(long)]
        misp_key_file: PathBuf,
        /// The CA of the MISP server's certificate (default: the system's roots).
        #[arg(long)]
        misp_ca: Option<PathBuf>,
        /// Instead of a CA: the SHA-256 fingerprint of the MISP server's own certificate
        /// (for a self-signed instance).
        #[arg(long, conflicts_with = "misp_ca")]
        misp_pin_sha256: Option<String>,
        /// The event's MISP distribution: 0 your organisation, 1 this community, 2 connected
        /// communities, 3 all.
        #[arg(long, default_value_t = 1)]
        distribution: u8,
        /// A tag for the event (repeatable), e.g. --tag tlp:green.
        #[arg(long)]
        tag: Vec<String>,
    },
    /// The institutions' nodes enrolled with the coordinator (name and party number).
    Members,
    /// Your privacy budget at every institution: the ε your differentially private queries
    /// have spent of each node's budget, per privacy unit, and what is left.
    Budget {
        #[arg(long)]
        json: bool,
    },
    /// List this researcher's queries, oldest first: id, submission time, template, window, phase.
    List,
    /// Follow a query phase by phase (a progress bar on a terminal) until it is released or fails.
    Watch { id: String },
    /// A query's status, and its result once released.
    Result {
        id: String,
        /// Wait until the query is released or failed.
        #[arg(long)]
        wait: bool,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
        /// Every non-zero cell in the table, however many.
        #[arg(long, conflicts_with_all = ["csv", "json"])]
        all: bool,
        /// Also draw the result as its template's chart into this file (.png or .svg).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key pair per parameter set: DIR/NAME.SET.pk and DIR/NAME.SET.sk (owner-only).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// This researcher's certificate name.
        #[arg(long)]
        name: String,
        /// Replace existing keys (results sealed to them can no longer be opened).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a development CA (ca.pem, ca.key) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "Concord development CA")]
        name: String,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate (NAME.pem, NAME.key) signed by the CA in DIR. It is valid for NAME
    /// (the name the coordinator and nodes dial each other by), localhost, 127.0.0.1 and every
    /// --host.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// node, coordinator or researcher.
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
        /// More host names or IP addresses the certificate is valid for (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Where to write the certificate and key (default: DIR); ca.pem is copied there too.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing certificate and key of that name.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord: {}", client::sentence(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Ca {
            command: CaCommand::Init { dir, name, force },
        } => {
            if dir.join("ca.key").exists() && !force {
                return Err(format!(
                    "{} already holds a CA (use --force to replace it)",
                    dir.display()
                )
                .into());
            }
            DevCa::generate(&name)?.write(&dir)?;
            println!("CA written to {}", dir.join("ca.pem").display());
        }
        Command::Ca {
            command:
                CaCommand::Issue {
                    dir,
                    role,
                    name,
                    hosts,
                    out,
                    force,
                },
        } => {
            let ca = DevCa::load(&dir)?;
            let mut valid_for = vec![name.as_str(), "localhost", "127.0.0.1"];
            valid_for.extend(hosts.iter().map(String::as_str));
            valid_for.dedup();
            let out = out.unwrap_or_else(|| dir.clone());
            let key = out.join(format!("{name}.key"));
            if key.exists() && !force {
                return Err(format!(
                    "{} exists: a certificate named {name:?} was issued here already (--force replaces it)",
                    key.display()
                )
                .into());
            }
            ca.issue(role, &name, &valid_for)?.write(&out, &name)?;
            let ca_pem = out.join("ca.pem");
            if !ca_pem.exists() {
                concord_api::pki::write_file(&ca_pem, ca.certificate_pem().as_bytes(), false)?;
            }
            println!(
                "{role} certificate for {name:?} written to {}",
                out.join(format!("{name}.pem")).display()
            );
        }
        Command::Train {
            connection,
            training,
        } => {
            let keys_dir = connection.keys_dir.as_ref().unwrap_or(&connection.tls_dir);
            let runtime = tokio::runtime::Runtime::new()?;
            let trained = runtime.block_on(async {
                let mut client = connection.connect().await?;
                client::train(
                    &mut client,
                    &training,
                    keys_dir,
                    &connection.tls_dir,
                    &connection.name,
                )
                .await
            })?;
            std::fs::write(&training.out, serde_json::to_string_pretty(&trained)?)?;
            println!(
                "{}: {} rounds over {} institutions, mean loss {:.4} → {:.4}; model written to {}",
                trained.template,
                trained.queries.len(),
                trained.institutions,
                trained.model.losses.first().copied().unwrap_or(f64::NAN),
                trained.model.losses.last().copied().unwrap_or(f64::NAN),
                training.out.display()
            );
        }
        Command::Evaluate {
            model,
            data,
            from,
            months,
            roc,
            json,
        } => {
            let trained: client::TrainedModel = serde_json::from_slice(&std::fs::read(&model)?)
                .map_err(|e| {
                    format!(
                        "{}: not a model `concord train` wrote: {e}",
                        model.display()
                    )
                })?;
            let first = from.as_deref().unwrap_or(&trained.window_first);
            let months = months.unwrap_or(trained.window_months);
            let window = concord_stats::Window::new(
                concord_stats::YearMonth::parse(first).ok_or("--from must be YYYY-MM")?,
                months,
            )?;
            let evaluation = client::evaluate_model(&trained, &data, &window)?;
            let auc = evaluation
                .auc
                .map_or("undefined (one class only)".to_owned(), |a| {
                    format!("{a:.4}")
                });
            if json {
                println!("{}", serde_json::to_string(&evaluation)?);
            } else {
                println!(
                    "{} ({}) on {}: {} samples ({} positive); accuracy {:.4}, AUC {auc}, mean loss {:.4}",
                    trained.model.label.id(),
                    trained.model.config.objective.id(),
                    data.display(),
                    evaluation.samples,
                    evaluation.positives,
                    evaluation.accuracy,
                    evaluation.mean_loss
                );
            }
            if let Some(path) = roc {
                plot::roc(
                    &path,
                    &format!("ROC of {} ({})", trained.template, trained.model.label.id()),
                    &evaluation.roc,
                    &format!(
                        "{} samples of {} in {first} + {months} months; AUC {auc}; trained over {} institutions in {} rounds",
                        evaluation.samples,
                        data.display(),
                        trained.institutions,
                        trained.queries.len()
                    ),
                )?;
            }
        }
        Command::Query {
            connection,
            command,
        } => {
            let keys_dir = connection.keys_dir.as_ref().unwrap_or(&connection.tls_dir);
            // what an outside client asks of this binary: nothing goes over the network
            match command {
                QueryCommand::Prepare { terms } => {
                    let spec =
                        client::prepared(&terms, keys_dir, &connection.tls_dir, &connection.name)?;
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&prost::Message::encode_to_vec(&spec))?;
                    out.flush()?;
                    return Ok(());
                }
                QueryCommand::Open => {
                    let status = client::released_status_from_stdin()?;
                    let layout = client::layout_of(&status)?;
                    let cells = client::cells_of(&status, keys_dir, &connection.name)?;
                    client::print_json(&status, &layout, &cells);
                    return Ok(());
                }
                QueryCommand::Bins { template } => {
                    let overlap = concord_stats::Template::by_id(&template)?;
                    let status = client::released_status_from_stdin()?;
                    let sizing = client::bins_from(&status, overlap, keys_dir, &connection.name)?;
                    eprintln!("{}", client::sizing_report(&template, &sizing));
                    println!("{}", sizing.per_group);
                    return Ok(());
                }
                _ => {}
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let mut client = connection.connect().await?;
                match command {
                    QueryCommand::Prepare { .. } | QueryCommand::Open | QueryCommand::Bins { .. } => {
                        unreachable!("answered above, without a connection")
                    }
                    QueryCommand::Submit { mut terms } => {
                        if terms.institutions.is_none() {
                            // what the query is proposed to, which sizes its agreement
                            let members = client
                                .members(concord_api::v1::ListRequest {})
                                .await?
                                .into_inner()
                                .members;
                            terms.institutions = Some(members.len() as u32);
                        }
                        if terms.bins == Some(client::Bins::Auto) {
                            let (id, sizing) = client::size_bins(
                                &mut client,
                                &terms,
                                keys_dir,
                                &connection.tls_dir,
                                &connection.name,
                            )
                            .await?;
                            eprintln!(
                                "sized by query {id}: {}",
                                client::sizing_report(&terms.template, &sizing)
                            );
                            terms.bins = Some(client::Bins::PerHistogram(sizing.per_group as u32));
                        }
                        let spec = client::prepared(
                            &terms,
                            keys_dir,
                            &connection.tls_dir,
                            &connection.name,
                        )?;
                        let status = client.submit(spec).await?.into_inner();
                        println!("{}", status.query_id);
                    }
                    QueryCommand::Publish {
                        id,
                        misp_url,
                        misp_key_file,
                        misp_ca,
                        misp_pin_sha256,
                        distribution,
                        tag,
                    } => {
                        let status = client
                            .get(concord_api::v1::QueryRef {
                                query_id: id.clone(),
                            })
                            .await?
                            .into_inner();
                        if !status.is_released() {
                            return Err(format!("query {id} is {}, not released", status.phase_name()).into());
                        }
                        let layout = client::layout_of(&status)?;
                        let cells = client::cells_of(&status, keys_dir, &connection.name)?;
                        let event = publish::report_event(
                            &status,
                            &layout,
                            &cells,
                            &publish::Options {
                                distribution,
                                tags: tag,
                            },
                        )?;
                        let misp = concord_misp::MispApi::new(concord_misp::MispApiConfig {
                            ca: misp_ca,
                            pin_sha256: misp_pin_sha256,
                            ..concord_misp::MispApiConfig::new(misp_url.as_str(), misp_key_file)
                        })?;
                        let published = misp.publish(&event).await?;
                        println!(
                            "published to {misp_url} as event {} (uuid {}), unpublished for the instance's review",
                            published.id, published.uuid
                        );
                    }
                    QueryCommand::Members => {
                        let list = client
                            .members(concord_api::v1::ListRequest {})
                            .await?
                            .into_inner();
                        for m in list.members {
                            println!("{:>3}  {}", m.party, m.name);
                        }
                    }
                    QueryCommand::Budget { json } => {
                        let list = client
                            .budget(concord_api::v1::ListRequest {})
                            .await?
                            .into_inner();
                        client::print_budget(&list, json);
                    }
                    QueryCommand::List => {
                        let list = client
                            .list(concord_api::v1::ListRequest {})
                            .await?
                            .into_inner();
                        client::print_list(&list.queries);
                    }
                    QueryCommand::Watch { id } => {
                        let status = client::watch(&mut client, &id).await?;
                        if !status.is_released() {
                            return Err(format!("query {id} failed: {}", status.detail).into());
                        }
                        println!(
                            "query {id} released ({} institutions)",
                            status.institutions
                        );
                    }
                    QueryCommand::Result {
                        id,
                        wait,
                        csv,
                        json,
                        all,
                        plot,
                    } => {
                        let status = if wait {
                            client::wait(&mut client, &id, std::time::Duration::from_secs(600))
                                .await?
                        } else {
                            client
                                .get(concord_api::v1::QueryRef {
                                    query_id: id.clone(),
                                })
                                .await?
                                .into_inner()
                        };
                        if !status.is_released() {
                            let detail = if status.detail.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", status.detail)
                            };
                            return Err(format!("query {id} is {}{detail}", status.phase_name()).into());
                        }
                        let layout = client::layout_of(&status)?;
                        let cells = client::cells_of(&status, keys_dir, &connection.name)?;
                        if let Some(path) = &plot {
                            client::plot(&status, &layout, &cells, path)?;
                            eprintln!("plot written to {}", path.display());
                        }
                        if csv {
                            client::print_csv(&layout, &cells)?;
                        } else if json {
                            client::print_json(&status, &layout, &cells);
                        } else {
                            client::print_table(client::template_of(&status)?, &layout, &cells, all);
                            println!(
                                "  [{} institutions, smudging λ = {:.1} bits]",
                                status.institutions, status.smudging_lambda
                            );
                            println!(
                                "  [contributed: {}; released by the shares of: {}]",
                                status.contributors.join(", "),
                                status.shares_from.join(", ")
                            );
                            if let Some(dp) = client::dp_report(&status) {
                                println!("  [{dp}]");
                            }
                        }
                    }
                }
                Ok::<(), Box<dyn std::error::Error>>(())
            })?;
        }
        Command::Demo {
            work,
            data,
            nodes,
            from,
            months,
            threshold,
            plots,
            json,
            all,
        } => {
            demo::run(demo::DemoArgs {
                work,
                data,
                nodes,
                from,
                months,
                threshold,
                plots,
                json,
                all,
            })?;
        }
        Command::Keys {
            command: KeysCommand::Init { dir, name, force },
        } => {
            for path in keys::init(&dir, &name, force)? {
                println!("public key written to {}", path.display());
            }
        }
        Command::Dp {
            template,
            epsilon,
            delta,
            min_institutions,
            node_delta,
            spent,
            budget,
        } => {
            let t = concord_stats::Template::by_id(&template)?;
            let plan =
                concord_query::dp::DpPlan::new(t, epsilon, delta, min_institutions as usize)?;
            print!(
                "{}",
                client::dp_plan_report(&plan, t.is_overlap(), node_delta, spent, budget)
            );
        }
        Command::Templates { markdown: true } => print!("{}", concord_stats::page::markdown()),
        Command::Templates { markdown: false } => {
            for t in concord_stats::TEMPLATES {
                let info = t.info();
                println!("{:<36} v{}  {}", info.id, info.version, info.question);
            }
        }
    }
    Ok(())
}
