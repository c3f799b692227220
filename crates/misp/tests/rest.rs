//! Live MISP ingestion against a local server that answers `POST /events/restSearch` in MISP's
//! response format, built from the real events in `../shared/data/misp/events`: every page
//! read, the same statistics as from the export directory, nothing counted twice, a refused
//! API key, server errors, timeouts and TLS verification.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use concord_misp::{MispApi, MispApiConfig, MispApiError};
use serde_json::{json, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "s3cr3t-api-key-0123456789abcdef0123456789";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// pages as MISP serves them
    Plain,
    /// every page after the first starts with the last event of the page before
    Overlapping,
    /// HTTP 500 for the first `fail` requests of page 2
    FailPageTwo,
    /// every answer takes 3 s
    Slow,
}

struct Server {
    events: Vec<Value>,
    mode: Mode,
    fail: AtomicU32,
    /// (page, limit, body) of every authorised request
    seen: Mutex<Vec<(u64, u64, Value)>>,
    requests: AtomicU32,
}

async fn rest_search(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    server.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(KEY) {
        // MISP's answer to a wrong key
        return (
            StatusCode::FORBIDDEN,
            Json(
                json!({"name": "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.", "message": "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.", "url": "/events/restSearch"}),
            ),
        );
    }
    let (page, limit) = (
        body["page"].as_u64().unwrap(),
        body["limit"].as_u64().unwrap(),
    );
    server
        .seen
        .lock()
        .unwrap()
        .push((page, limit, body.clone()));
    if server.mode == Mode::Slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if server.mode == Mode::FailPageTwo
        && page == 2
        && server
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({"name": "An Internal Error Has Occurred.", "message": "An Internal Error Has Occurred.", "url": "/events/restSearch"}),
            ),
        );
    }
    // the date filter, as MISP applies it to the event date
    let dated = |e: &Value| {
        let date = e["Event"]["date"].as_str().unwrap_or_default();
        body["from"].as_str().is_none_or(|from| date >= from)
            && body["to"].as_str().is_none_or(|to| date <= to)
    };
    let matching: Vec<&Value> = server.events.iter().filter(|e| dated(e)).collect();
    let start = match server.mode {
        // each page repeats the last event of the page before
        Mode::Overlapping => (page - 1) * (limit - 1),
        _ => (page - 1) * limit,
    } as usize;
    let items: Vec<Value> = matching
        .into_iter()
        .skip(start)
        .take(limit as usize)
        .cloned()
        .collect();
    (StatusCode::OK, Json(json!({ "response": items })))
}

fn data_dir() -> Option<PathBuf> {
    concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Every event object under `dir`, as restSearch lists them (`{"Event": …}`), each once.
fn real_events(dir: &Path) -> Vec<Value> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for path in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let events: Vec<Value> = if let Some(e) = v.get("Event") {
            vec![e.clone()]
        } else if let Some(Value::Array(r)) = v.get("response") {
            r.iter()
                .map(|x| x.get("Event").unwrap_or(x).clone())
                .collect()
        } else if v.get("info").is_some() {
            vec![v]
        } else {
            vec![] // the sharing-group fixture
        };
        for e in events {
            if seen.insert(e["uuid"].as_str().unwrap_or_default().to_owned()) {
                out.push(json!({ "Event": e }));
            }
        }
    }
    out
}

async fn serve(events: Vec<Value>, mode: Mode) -> (String, Arc<Server>) {
    let server = Arc::new(Server {
        events,
        mode,
        fail: AtomicU32::new(0),
        seen: Mutex::new(Vec::new()),
        requests: AtomicU32::new(0),
    });
    let app = Router::new()
        .route("/events/restSearch", post(rest_search))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, server)
}

fn key_file(dir: &Path, key: &str) -> PathBuf {
    let path = dir.join("misp.key");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn config(url: &str, key: PathBuf) -> MispApiConfig {
    MispApiConfig {
        url: url.to_owned(),
        api_key_file: key,
        ca: None,
        pin_sha256: None,
        from: None,
        to: None,
        page_size: 7,
        timeout_s: 10,
        retries: 2,
    }
}

#[tokio::test]
async fn every_page_is_read_and_gives_the_statistics_of_the_export_directory() {
    let Some(data) = data_dir() else { return };
    let events = real_events(&data.join("events"));
    assert_eq!(events.len(), 80, "ESET, PyMISP and training events");
    let (url, server) = serve(events.clone(), Mode::Plain).await;
    let tmp = tempfile::tempdir().unwrap();
    let fetched = MispApi::new(config(&url, key_file(tmp.path(), KEY)))
        .unwrap()
        .fetch()
        .await
        .unwrap();
    // 80 events in pages of 7: 11 full pages and a short twelfth
    assert_eq!(fetched.pages, 12);
    assert_eq!((fetched.duplicates, fetched.retried), (0, 0));
    let pages: Vec<u64> = server.seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(pages, (1..=12).collect::<Vec<_>>());
    assert!(server
        .seen
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.1 == 7 && s.2["returnFormat"] == "json"));

    let exported = concord_stats::load(&data.join("events")).unwrap();
    assert_eq!(fetched.events.len(), exported.events.len());
    let window =
        concord_stats::Window::new(concord_stats::YearMonth::parse("2013-01").unwrap(), 120)
            .unwrap();
    let institution = concord_stats::Institution {
        organisation_uuids: exported
            .events
            .iter()
            .filter_map(|e| e.creator_uuid().map(str::to_owned))
            .take(1)
            .collect(),
        sector: Some("IT - Security".into()),
        ..Default::default()
    };
    for t in concord_stats::TEMPLATES {
        if *t == concord_stats::Template::SurveySharingMotivations {
            continue;
        }
        // an overlap template's input (presence bits under a binning key) alike
        let key = concord_stats::overlap::BinningKey::new([3; 32]);
        let round = t.first_round(1);
        let compute = |events: &[concord_stats::Event]| match (t.is_overlap(), &round) {
            (true, _) => {
                t.compute_overlap(&window, events, &t.layout(&window).overlap.unwrap(), &key)
            }
            (false, Some((model, config))) => t.compute_training(&window, events, model, config),
            (false, None) => t.compute(&window, &institution, events),
        };
        let live = compute(&fetched.events).unwrap();
        let files = compute(&exported.events).unwrap();
        assert_eq!(live, files, "{}", t.info().id);
        assert!(live.events_in_window > 0);
    }

    // a date range is asked of the server, and only those events come back
    let ranged = MispApi::new(MispApiConfig {
        from: Some("2018-01-01".into()),
        to: Some("2019-12-31".into()),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .unwrap()
    .fetch()
    .await
    .unwrap();
    let expected = exported
        .events
        .iter()
        .filter(|e| (2018..=2019).contains(&e.date.unwrap().year))
        .count();
    assert!(expected > 0);
    assert_eq!(ranged.events.len(), expected);
    assert_eq!(
        server.seen.lock().unwrap().last().unwrap().2["from"],
        "2018-01-01"
    );
}

#[tokio::test]
async fn an_event_a_later_page_returns_again_is_counted_once() {
    let Some(data) = data_dir() else { return };
    let events = real_events(&data.join("events/pymisp"));
    let (url, _server) = serve(events.clone(), Mode::Overlapping).await;
    let tmp = tempfile::tempdir().unwrap();
    let fetched = MispApi::new(config(&url, key_file(tmp.path(), KEY)))
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!(fetched.events.len(), events.len());
    assert_eq!(fetched.duplicates as u32, fetched.pages - 1);
    let uuids: std::collections::HashSet<_> =
        fetched.events.iter().map(|e| e.uuid.clone()).collect();
    assert_eq!(uuids.len(), events.len());
}

#[tokio::test]
async fn a_refused_api_key_is_reported_at_once_with_misps_message() {
    let Some(data) = data_dir() else { return };
    let (url, server) = serve(real_events(&data.join("events/pymisp")), Mode::Plain).await;
    let tmp = tempfile::tempdir().unwrap();
    let error = MispApi::new(config(&url, key_file(tmp.path(), "wrong-key")))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(error, MispApiError::Auth { status: 403, .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("refused the API key") && text.contains("Authentication failed"),
        "{text}"
    );
    assert!(!text.contains("wrong-key"), "the key is never shown");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "no retry");
}

#[tokio::test]
async fn server_errors_are_retried_and_reported_when_they_persist() {
    let Some(data) = data_dir() else { return };
    let events = real_events(&data.join("events/pymisp"));
    let tmp = tempfile::tempdir().unwrap();
    // two failures, then the page: read in full
    let (url, server) = serve(events.clone(), Mode::FailPageTwo).await;
    server.fail.store(2, Ordering::SeqCst);
    let fetched = MispApi::new(config(&url, key_file(tmp.path(), KEY)))
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!((fetched.events.len(), fetched.retried), (events.len(), 2));
    // failing for good: the page, the status and MISP's message, after 1 + retries attempts
    server.fail.store(100, Ordering::SeqCst);
    let error = MispApi::new(config(&url, key_file(tmp.path(), KEY)))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    match &error {
        MispApiError::Http {
            request,
            status: 500,
            attempts: 3,
            message,
            ..
        } => assert!(request == "events/restSearch page 2" && message.contains("Internal Error")),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_given_up() {
    let Some(data) = data_dir() else { return };
    let (url, _server) = serve(real_events(&data.join("events/pymisp")), Mode::Slow).await;
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let error = MispApi::new(MispApiConfig {
        timeout_s: 1,
        retries: 1,
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    assert!(
        matches!(&error, MispApiError::Transport { request, attempts: 2, reason, .. } if request == "events/restSearch page 1" && reason.contains("timed out")),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn the_server_certificate_is_verified() {
    let Some(data) = data_dir() else { return };
    let (plain, _server) =
        serve(real_events(&data.join("events/misp-training")), Mode::Plain).await;
    let tmp = tempfile::tempdir().unwrap();
    // the MISP instance behind TLS, with a certificate of its own CA
    let ca = concord_api::pki::DevCa::generate("MISP test CA").unwrap();
    let cert = ca
        .issue(
            concord_api::pki::Role::Coordinator,
            "misp",
            &["localhost", "127.0.0.1"],
        )
        .unwrap();
    std::fs::write(tmp.path().join("misp-ca.pem"), ca.certificate_pem()).unwrap();
    let url = tls_proxy(&plain, &cert.certificate_pem, &cert.key_pem).await;
    let trusting = MispApi::new(MispApiConfig {
        ca: Some(tmp.path().join("misp-ca.pem")),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .unwrap()
    .fetch()
    .await
    .unwrap();
    assert_eq!(trusting.events.len(), 7);
    // the system's roots do not know that CA
    let error = MispApi::new(config(&url, key_file(tmp.path(), KEY)))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MispApiError::Transport { reason, .. } if reason.contains("certificate")),
        "{error}"
    );
    // or its own certificate pinned, whoever issued it: only that certificate
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.certificate_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
        .unwrap();
    let fingerprint: Vec<String> = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let pinned = MispApi::new(MispApiConfig {
        pin_sha256: Some(fingerprint.join(":")),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .unwrap()
    .fetch()
    .await
    .unwrap();
    assert_eq!(pinned.events.len(), 7);
    let other = MispApi::new(MispApiConfig {
        pin_sha256: Some("00".repeat(32)),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    assert!(
        other.to_string().contains("is not the pinned one"),
        "{other}"
    );
    let malformed = MispApi::new(MispApiConfig {
        pin_sha256: Some("abc".into()),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .err()
    .unwrap();
    assert!(
        malformed.to_string().contains("not a SHA-256 fingerprint"),
        "{malformed}"
    );
    let both = MispApi::new(MispApiConfig {
        ca: Some(tmp.path().join("misp-ca.pem")),
        pin_sha256: Some(fingerprint.join(":")),
        ..config(&url, key_file(tmp.path(), KEY))
    })
    .err()
    .unwrap();
    assert!(both.to_string().contains("do not go together"), "{both}");
    // a key file others can read is refused before anything is sent
    let loose = key_file(tmp.path(), KEY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = MispApi::new(config(&url, loose)).err().unwrap();
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
    }
}

/// An HTTPS front for `plain`: TLS terminated here, bytes relayed.
async fn tls_proxy(plain: &str, certificate_pem: &str, key_pem: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = plain.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return; // the client refused our certificate
                };
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    format!("https://localhost:{port}")
}
