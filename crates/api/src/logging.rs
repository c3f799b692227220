//! Logging of the node and coordinator binaries, to standard error. `RUST_LOG` sets the levels
//! (default `info`; `RUST_LOG=debug`, or per crate: `RUST_LOG=info,concord_node=debug`);
//! `CONCORD_LOG_FORMAT=json` writes one JSON object per line — timestamp, level, target,
//! message and fields — for a log collector, instead of text. No secret is ever logged at any
//! level.

/// Installs the subscriber for the process (once, at start).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("CONCORD_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        _ => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
