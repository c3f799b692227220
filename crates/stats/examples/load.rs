//! Loads a MISP feed or export directory and prints what was read and what was not.
//!
//! `cargo run -p concord-stats --example load -- DIR`

fn main() {
    let dir = std::env::args().nth(1).expect("usage: load DIR");
    let set = concord_stats::load(std::path::Path::new(&dir)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let attributes: usize = set.events.iter().map(|e| e.all_attributes().count()).sum();
    println!(
        "{} files read, {} events, {} attributes",
        set.report.files_read,
        set.events.len(),
        attributes
    );
    for e in &set.report.errors {
        println!("  not used: {e}");
    }
}
