//! Publishing a released result back to MISP with real processes: a query submitted with
//! `--publish` runs only where every node's policy allows publication; once released, the
//! researcher publishes it to a MISP instance (a local server answering `POST /events/add` as
//! MISP does) as an event with a report object holding the table — the released numbers — and
//! the query's metadata. A query not submitted for publication, or a refused API key, is not
//! published.

#![cfg(unix)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use concord_system_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const KEY: &str = "researcher-misp-api-key-0123456789";

/// A MISP instance that records the events added to it.
fn misp_server() -> (String, Arc<Mutex<Vec<Value>>>) {
    async fn add(
        State(events): State<Arc<Mutex<Vec<Value>>>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(KEY) {
            return (
                StatusCode::FORBIDDEN,
                Json(
                    json!({"name": "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.", "message": "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.", "url": "/events/add"}),
                ),
            );
        }
        let mut events = events.lock().unwrap();
        events.push(body["Event"].clone());
        let id = events.len();
        let mut event = body["Event"].clone();
        event["id"] = json!(id.to_string());
        event["uuid"] = json!(format!("5f0c8a3e-0000-4000-8000-{id:012}"));
        (StatusCode::OK, Json(json!({ "Event": event })))
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/events/add", post(add))
        .with_state(events.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            })
    });
    (url, events)
}

fn key_file(dir: &std::path::Path, name: &str, key: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_result_the_community_agreed_to_publish_becomes_a_misp_report_event() {
    let (work, _) = demo(3);
    for i in 1..=2 {
        edit_node(work.path(), &format!("node-{i}"), |config| {
            config.policy.allow_publication = true;
        });
    }
    let mut d = Deployment::start(work);
    let (url, events) = misp_server();
    let key = key_file(d.work.path(), "misp.key", KEY);
    let submit = |d: &Deployment, extra: &[&str]| {
        let out = d.submit_with(extra);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let publish = |d: &Deployment, id: &str, key: &str| {
        d.query(&[
            "publish",
            id,
            "--misp-url",
            &url,
            "--misp-key-file",
            key,
            "--tag",
            "tlp:green",
        ])
    };

    // node-3's policy does not allow publication: the query does not run
    let refused = submit(&d, &["--publish"]);
    let line = d.wait_listed(&refused, "failed");
    assert!(line.contains("publication-not-allowed"), "{line}");
    // a query not submitted for publication is not published
    let private = submit(&d, &[]);
    d.wait_listed(&private, "released");
    let out = publish(&d, &private, &key);
    assert!(
        !out.status.success() && text(&out.stderr).contains("not submitted for publication"),
        "{}",
        text(&out.stderr)
    );

    // node-3 allows it too: the query runs and its result is published
    edit_node(d.work.path(), "node-3", |config| {
        config.policy.allow_publication = true;
    });
    d.restart_nodes();
    let agreed = submit(&d, &["--publish"]);
    d.wait_listed(&agreed, "released");
    let out = publish(&d, &agreed, &key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("as event 1"),
        "{}",
        text(&out.stdout)
    );
    // each node's audit log records that it agreed to publication
    for i in 1..=3 {
        let log = std::fs::read_to_string(
            d.work
                .path()
                .join(format!("keys-node-{i}"))
                .join("audit.jsonl"),
        )
        .unwrap();
        assert!(
            log.lines().any(|l| l.contains(&agreed)
                && l.contains("\"publish\":true")
                && l.contains("\"agree\":true")),
            "node-{i}"
        );
    }
    let (_, released) = d.result_json(&agreed);
    let sent = events.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let event = &sent[0];
    assert_eq!(event["published"], false);
    assert_eq!(event["Tag"][0]["name"], "tlp:green");
    assert!(event["info"]
        .as_str()
        .unwrap()
        .contains("events-by-month-tlp-distribution v1"));
    let report = &event["Object"][0];
    assert_eq!(report["name"], "report");
    let summaries: Vec<&str> = report["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["object_relation"] == "summary")
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert!(summaries[0].contains(&agreed) && summaries[0].contains("3 institutions contributed"));
    // the table holds exactly the released non-zero cells
    let rows: Vec<i128> = summaries[1]
        .lines()
        .skip(2)
        .filter(|l| l.starts_with("| "))
        .map(|l| {
            l.trim_end_matches(" |")
                .rsplit("| ")
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let nonzero: Vec<i128> = released.into_iter().filter(|&v| v != 0).collect();
    assert_eq!(rows, nonzero);
    assert!(summaries[1].starts_with("| month | tlp | distribution | events |"));

    // a refused API key: MISP's message, nothing added
    let wrong = key_file(d.work.path(), "wrong.key", "not-the-key");
    let out = publish(&d, &agreed, &wrong);
    assert!(
        !out.status.success() && text(&out.stderr).contains("refused the API key"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(events.lock().unwrap().len(), 1);
}
