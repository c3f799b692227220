//! `concord-coordinator --config coordinator.toml`: the coordinator process. With a command,
//! the operator's view of the running coordinator instead, read from its operations endpoint
//! (`[operations]`):
//!
//! - `concord-coordinator --config coordinator.toml queries [--json]`: every query, its
//!   researcher, template, phase and progress;
//! - `concord-coordinator --config coordinator.toml nodes [--json]`: the enrolled nodes.

use clap::{Parser, Subcommand};
use concord_api::tls::{server_config, MAX_MESSAGE_BYTES};
use concord_api::v1::coordinator_server::CoordinatorServer;
use concord_coordinator::config::Config;
use concord_coordinator::service::CoordinatorService;
use concord_coordinator::store::QueryStore;
use concord_coordinator::Deployment;
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "The Concord coordinator")]
struct Args {
    /// The coordinator's configuration file (TOML; see the crate docs of concord-coordinator).
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Every query the running coordinator knows, oldest first.
    Queries {
        /// The rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The enrolled nodes.
    Nodes {
        /// The rows as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Prints a view of the running coordinator.
async fn view(config: &Config, command: &Command) -> Result<(), Box<dyn std::error::Error>> {
    let (path, json) = match command {
        Command::Queries { json } => ("/queries", *json),
        Command::Nodes { json } => ("/nodes", *json),
    };
    let rows = concord_api::operations::fetch(config.operations.as_ref(), path).await?;
    if json {
        println!("{rows:#}");
        return Ok(());
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    let text = |row: &serde_json::Value, key: &str| match &row[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for row in &rows {
        match command {
            Command::Queries { .. } => {
                let detail = text(row, "detail");
                println!(
                    "{}  {:<12} {}  {}  {}  {}  {}/{} contributed{}",
                    text(row, "id"),
                    text(row, "phase"),
                    text(row, "researcher"),
                    text(row, "template"),
                    text(row, "window"),
                    text(row, "release"),
                    text(row, "contributed"),
                    text(row, "asked"),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!("  {detail}")
                    }
                );
            }
            Command::Nodes { .. } => println!(
                "{:>3}  {}  {}",
                text(row, "party"),
                text(row, "name"),
                text(row, "url")
            ),
        }
    }
    if rows.is_empty() {
        println!("none");
    }
    Ok(())
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let pems = config.tls.read()?;
    let (ca, cert, key) = (pems.ca, pems.certificate, pems.key);
    let store = Arc::new(QueryStore::open(&config.state)?);
    // nodes of the configuration are enrolled with their configured party numbers
    for node in &config.nodes {
        store.enrol(&node.name, &node.url, Some(node.party))?;
    }
    let deployment = Deployment {
        ca_pem: ca.clone(),
        certificate_pem: cert.clone(),
        key_pem: key.clone(),
        nodes: concord_coordinator::service::enrolled(&store)?,
        timeout: std::time::Duration::from_secs_f64(config.node_timeout_s),
        threshold: config.threshold,
    };
    // the port first: a coordinator that cannot listen says so before anything else
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    if let Some(operations) = &config.operations {
        let listener = concord_api::operations::bind(operations).await?;
        concord_api::operations::spawn(
            listener,
            concord_coordinator::operations::router(store.clone()),
        );
    }
    tracing::info!(listen = %config.listen, nodes = deployment.nodes.len(), "coordinator serving");
    let service = CoordinatorServer::new(CoordinatorService::new(
        store,
        deployment,
        config.max_queries_in_flight_per_researcher,
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // gRPC health checking (grpc.health.v1)
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;
    tonic::transport::Server::builder()
        .tls_config(server_config(&ca, &cert, &key))?
        .layer(concord_api::operations::ErrorCounter)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    concord_api::logging::init();
    let args = Args::parse();
    let result = match &args.config {
        None => Err("--config coordinator.toml is required".into()),
        Some(path) => match (Config::load(path), &args.command) {
            (Ok(config), None) => run(config).await,
            (Ok(config), Some(command)) => view(&config, command).await,
            (Err(e), _) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord-coordinator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
