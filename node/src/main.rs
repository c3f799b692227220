//! `concord-node --config node.toml`: an institution's node.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "An institution's Concord node")]
struct Args {
    /// The node's configuration file (TOML; see the crate docs of concord-node for an example).
    #[arg(long)]
    config: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let result = match concord_node::config::Config::load(&args.config) {
        Ok(config) => {
            concord_node::run(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
