//! `concord`: the command line of researchers and operators. A thin shell over the libraries.
//!
//! - `concord ca init --dir DIR` — a development certificate authority;
//! - `concord ca issue --dir DIR --role node|coordinator|researcher --name NAME [--host H]…`;
//! - `concord templates` — the statistics catalogue, one template a line;
//! - `concord demo [--data DIR]` — a whole deployment on this machine (see [`demo`]).

mod demo;

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
    Templates,
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
    /// Issue a certificate (NAME.pem, NAME.key) signed by the CA in DIR.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// node, coordinator or researcher.
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
        /// Host names or IP addresses the certificate is valid for (repeatable).
        #[arg(long = "host", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
        /// Where to write the certificate and key (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord: {e}");
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
                },
        } => {
            let ca = DevCa::load(&dir)?;
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let out = out.unwrap_or(dir);
            ca.issue(role, &name, &hosts)?.write(&out, &name)?;
            println!(
                "{role} certificate for {name:?} written to {}",
                out.join(format!("{name}.pem")).display()
            );
        }
        Command::Demo {
            work,
            data,
            nodes,
            from,
            months,
        } => {
            demo::run(demo::DemoArgs {
                work,
                data,
                nodes,
                from,
                months,
            })?;
        }
        Command::Templates => {
            for t in concord_stats::TEMPLATES {
                let info = t.info();
                println!("{:<36} v{}  {}", info.id, info.version, info.question);
            }
        }
    }
    Ok(())
}
