//! `concord-node --config node.toml`: an institution's node. With a command, an operator's tool
//! over the node's local records instead:
//!
//! - `concord-node --config node.toml audit verify`: checks the audit log's hash chain;
//! - `concord-node --config node.toml approvals list|approve ID|deny ID --reason …`: the
//!   operator's decisions on queries waiting for approval (`approval = "manual"`);
//! - `concord-node --config node.toml budgets`: every researcher's spending of this node's
//!   privacy budget, read from the running node's operations endpoint (`[operations]`).

use clap::{Parser, Subcommand};
use concord_node::approvals::{Approvals, Request, Status};
use concord_node::config::Config;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "An institution's Concord node")]
struct Args {
    /// The node's configuration file (TOML; see the crate docs of concord-node for an example).
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The node's audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Queries waiting for this node's operator.
    Approvals {
        #[command(subcommand)]
        action: ApprovalAction,
    },
    /// Every researcher's spending of this node's privacy budget, per privacy unit (from the
    /// running node's operations endpoint).
    Budgets {
        /// The rows as JSON.
        #[arg(long)]
        json: bool,
    },
}

async fn budgets(args: &Args, json: bool) -> Result<ExitCode, String> {
    let config = config(args.config.as_deref())?;
    let rows = concord_api::operations::fetch(config.operations.as_ref(), "/budgets")
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{rows:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no differentially private query has spent any budget at this node");
    }
    for row in rows {
        let number = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "{}  per {}: ε = {:.3} spent of {} (at δ = {:e}), {:.3} left, {} queries",
            row["researcher"].as_str().unwrap_or("?"),
            row["unit"].as_str().unwrap_or("?"),
            number("epsilon_spent"),
            number("epsilon_budget"),
            number("delta"),
            (number("epsilon_budget") - number("epsilon_spent")).max(0.0),
            row["queries"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn approvals(args: &Args, action: &ApprovalAction) -> Result<ExitCode, String> {
    let store = Approvals::new(&config(args.config.as_deref())?.approvals_path());
    let operator = |by: &Option<String>| {
        by.clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".into())
    };
    let decided = |r: Request| {
        println!("{}: {} by {}", r.query, r.status.as_str(), r.by);
        ExitCode::SUCCESS
    };
    match action {
        ApprovalAction::List { all } => {
            let requests = store.list().map_err(|e| e.to_string())?;
            for r in requests
                .iter()
                .filter(|r| *all || r.status == Status::Pending)
            {
                let received = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.received_at),
                );
                let decided = match r.status {
                    Status::Pending => String::new(),
                    _ if r.reason.is_empty() => format!(" by {}", r.by),
                    _ => format!(" by {}: {}", r.by, r.reason),
                };
                println!(
                    "{}  {}{decided}  received {received}  researcher {}  {}  {}  {} institutions  {} cells  {}",
                    r.query,
                    r.status.as_str(),
                    r.researcher,
                    r.template,
                    r.window,
                    r.institutions,
                    r.cells,
                    r.release
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalAction::Approve { query, by } => store
            .decide(query, true, &operator(by), "")
            .map(decided)
            .map_err(|e| e.to_string()),
        ApprovalAction::Deny { query, reason, by } => store
            .decide(query, false, &operator(by), reason)
            .map(decided)
            .map_err(|e| e.to_string()),
    }
}

#[derive(Subcommand)]
enum ApprovalAction {
    /// Queries waiting for approval, and those decided, oldest first.
    List {
        /// Every request, not only the pending ones.
        #[arg(long)]
        all: bool,
    },
    /// Approves a pending query: the node agrees when the coordinator next proposes it.
    Approve {
        query: String,
        /// Who approves (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Denies a pending query; the researcher sees the reason.
    Deny {
        query: String,
        #[arg(long)]
        reason: String,
        /// Who denies (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Checks the hash chain and reports the first broken link and the head (the last line's
    /// hash, to compare with one recorded elsewhere).
    Verify {
        /// The log to check (default: the configured node's).
        #[arg(long)]
        log: Option<std::path::PathBuf>,
    },
}

fn config(path: Option<&std::path::Path>) -> Result<Config, String> {
    let path = path.ok_or("--config node.toml is required")?;
    Config::load(path).map_err(|e| e.to_string())
}

fn audit_verify(args: &Args, log: Option<&std::path::Path>) -> Result<ExitCode, String> {
    let path = match log {
        Some(log) => log.to_path_buf(),
        None => config(args.config.as_deref())?.audit_log_path(),
    };
    let verified =
        concord_node::audit::verify(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match verified.broken {
        None => {
            println!(
                "{}: {} lines, chain intact; head {}",
                path.display(),
                verified.lines,
                verified.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((line, why)) => {
            println!(
                "{}: BROKEN at line {line}: {why} ({} lines before it are intact)",
                path.display(),
                verified.lines
            );
            Ok(ExitCode::from(2))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    concord_api::logging::init();
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Audit {
            action: AuditAction::Verify { log },
        }) => audit_verify(&args, log.as_deref()),
        Some(Command::Approvals { action }) => approvals(&args, action),
        Some(Command::Budgets { json }) => budgets(&args, *json).await,
        None => match config(args.config.as_deref()) {
            Ok(config) => concord_node::run(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| {
        eprintln!("concord-node: {e}");
        ExitCode::FAILURE
    })
}
