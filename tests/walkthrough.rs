//! The README's "A first deployment by hand", run verbatim: the block after the
//! `walk-through` marker, in bash, in a fresh directory, with the workspace's binaries first on
//! `PATH` and the project's real MISP data. What a new operator and researcher would type
//! works, and gives a released result.

use concord_system_tests::{bin, text};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// The README's walk-through block.
fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let (_, after) = readme
        .split_once("<!-- walk-through:")
        .expect("the README marks its walk-through");
    let (_, block) = after.split_once("```sh\n").unwrap();
    block.split_once("```").unwrap().0.to_owned()
}

#[test]
fn the_readme_walkthrough_works_verbatim() {
    let Some(data) = concord_stats::test_data_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.."
    ))) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let binaries = bin("concord").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // the processes it starts in the background stop with it, whatever happens; the trap's own
    // kill finds nothing left once the walk-through's last line stopped them all, which under
    // `-e` must not turn a finished walk-through into a failure
    let script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        walkthrough()
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env("CONCORD_MISP_DATA", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("the walk-through did not finish in 4 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let first = work.path().join("first");
    let logs: String = ["coordinator", "node-1", "node-2", "node-3"]
        .iter()
        .map(|n| std::fs::read_to_string(first.join(format!("{n}.log"))).unwrap_or_default())
        .collect();
    let said = format!("{}\n{}\n{logs}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    // the result, cell by cell: the sum of the three institutions' own statistics
    let csv = std::fs::read_to_string(first.join("result.csv")).unwrap();
    assert!(csv.starts_with("month,tlp,distribution,value\n"), "{csv}");
    let released: Vec<i128> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let template = concord_stats::Template::EventsByMonthTlpDistribution;
    let window =
        concord_stats::Window::new(concord_stats::YearMonth::parse("2025-01").unwrap(), 12)
            .unwrap();
    let mut pooled = vec![0i128; template.layout(&window).cells()];
    for feed in ["feed-tweetfeed", "feed-infoblox", "events/eset"] {
        let events = concord_stats::load(&data.join(feed)).unwrap().events;
        let own = template
            .compute(&window, &concord_stats::Institution::default(), &events)
            .unwrap();
        for (p, v) in pooled.iter_mut().zip(own.values) {
            *p += i128::from(v);
        }
    }
    assert_eq!(released, pooled, "{said}");
    assert!(released.iter().sum::<i128>() > 0);
    // the operator's view lists it released, with three contributions
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("released") && l.contains("3/3 contributed")),
        "{said}"
    );
    // every node read its data
    for n in 1..=3 {
        let log = std::fs::read_to_string(first.join(format!("node-{n}.log"))).unwrap();
        assert!(log.contains("MISP data loaded"), "{log}");
    }
}
