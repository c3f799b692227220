//! `concord-coordinator --config coordinator.toml`: the coordinator process.

use clap::Parser;
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
    #[arg(long)]
    config: std::path::PathBuf,
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
    tracing::info!(listen = %config.listen, nodes = deployment.nodes.len(), "coordinator serving");
    let service = CoordinatorServer::new(CoordinatorService::new(store, deployment))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // gRPC health checking (grpc.health.v1)
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;
    tonic::transport::Server::builder()
        .tls_config(server_config(&ca, &cert, &key))?
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
    let result = match Config::load(&args.config) {
        Ok(config) => run(config).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord-coordinator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
