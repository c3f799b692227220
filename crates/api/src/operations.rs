//! The operations endpoint of the node and the coordinator: plain HTTP for the operator and
//! their monitoring, on its own address (`[operations] listen`), never on the mutual-TLS gRPC
//! port the protocol runs on.
//!
//! | path | what |
//! |---|---|
//! | `/metrics` | Prometheus text exposition of the process's metrics (the `metrics` facade) |
//! | `/ready` | `200 ready` once the process serves (gRPC health checking is on the gRPC port) |
//! | each process's own | JSON views for the operator: the coordinator's `/queries` and `/nodes`, the node's `/budgets` |
//!
//! Metrics are recorded where things happen, with the `metrics` crate's macros, into one
//! process-wide recorder installed by [`recorder`]; a process that installs none (an
//! in-process test) records nothing. Names start with `concord_`; labels are bounded sets
//! (steps, phases, refusal codes, node names), never query ids or free text.
//!
//! The endpoint has no authentication of its own: bind it to loopback (the default in the
//! examples) or to an interface only the operator's monitoring reaches. It shows query ids,
//! researchers' names, node names and privacy budgets spent, never a key, a share or a
//! statistic.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// `[operations]` in a node's or the coordinator's configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsConfig {
    /// Where the operations endpoint listens (plain HTTP), e.g. `127.0.0.1:9400`.
    pub listen: SocketAddr,
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ])
                .expect("fixed buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // another recorder already installed (a test harness): ours then renders nothing
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The endpoint's routes: `/metrics` and `/ready`, and the process's own JSON `views`.
/// `before_scrape` runs before each scrape (to set gauges read from the process's store).
pub fn router(
    views: axum::Router,
    before_scrape: impl Fn() + Clone + Send + Sync + 'static,
) -> axum::Router {
    let handle = recorder();
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (handle, before_scrape) = (handle.clone(), before_scrape.clone());
                async move {
                    before_scrape();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/ready", axum::routing::get(|| async { "ready\n" }))
        .merge(views)
}

/// A layer for the gRPC server of the node and the coordinator that counts every call
/// answered with an error in `concord_grpc_errors_total{method, code}`: refusals, malformed
/// or oversized messages, wrong-parameter values, calls from a certificate of the wrong role —
/// whatever a handler or tonic itself turns down before a response starts (an error inside a
/// response stream travels in its trailers and is counted where it is made). `method` is the
/// gRPC path of a method of Concord's services or of health checking, `unknown` otherwise (a
/// caller chooses the path: labels stay a bounded set); `code` the gRPC status code's name.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorCounter;

impl<S> tower::Layer<S> for ErrorCounter {
    type Service = CountErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountErrors { inner }
    }
}

/// The service [`ErrorCounter`] wraps.
#[derive(Clone, Debug)]
pub struct CountErrors<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for CountErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(tonic::Code::from_i32);
            if let Some(code) = code.filter(|c| *c != tonic::Code::Ok) {
                let method = if code == tonic::Code::Unimplemented {
                    "unknown".to_owned()
                } else {
                    method
                };
                metrics::counter!("concord_grpc_errors_total", "method" => method, "code" => format!("{code:?}"))
                    .increment(1);
            }
            Ok(response)
        })
    }
}

/// The label of a gRPC path: the path of a method of `concord.v1` or of health checking
/// (names of letters only), `unknown` for anything else.
fn method_label(path: &str) -> String {
    let known = [
        "/concord.v1.Node/",
        "/concord.v1.Coordinator/",
        "/grpc.health.v1.Health/",
    ];
    match known.iter().find(|prefix| path.starts_with(*prefix)) {
        Some(prefix)
            if (1..=32).contains(&(path.len() - prefix.len()))
                && path[prefix.len()..]
                    .chars()
                    .all(|c| c.is_ascii_alphabetic()) =>
        {
            path.to_owned()
        }
        _ => "unknown".to_owned(),
    }
}

/// Binds the endpoint's address, so that a process whose operations port is busy says so
/// before it serves anything.
pub async fn bind(config: &OperationsConfig) -> Result<tokio::net::TcpListener, OperationsError> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| OperationsError::Listen {
            addr: config.listen,
            source,
        })
}

/// Serves `router` on `listener` until the process ends.
pub fn spawn(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("operations endpoint: {e}");
        }
    });
}

/// A JSON view of a running process's endpoint, for the operator's command line
/// (`concord-coordinator queries`, `concord-node budgets`).
pub async fn fetch(
    config: Option<&OperationsConfig>,
    path: &str,
) -> Result<serde_json::Value, OperationsError> {
    let config = config.ok_or(OperationsError::NotConfigured)?;
    let url = format!("http://{}{path}", config.listen);
    let unreachable = |e: reqwest::Error| OperationsError::Fetch {
        url: url.clone(),
        detail: e.without_url().to_string(),
    };
    let response = reqwest::get(&url).await.map_err(unreachable)?;
    let response = response.error_for_status().map_err(unreachable)?;
    response.json().await.map_err(unreachable)
}

#[derive(Debug, thiserror::Error)]
pub enum OperationsError {
    #[error("cannot listen on {addr} (operations endpoint): {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the configuration has no [operations] listen address: add one and restart the process to see this")]
    NotConfigured,
    #[error("{url}: {detail} (is the process running with this configuration?)")]
    Fetch { url: String, detail: String },
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn a_method_label_is_a_concord_method_or_unknown() {
        assert_eq!(
            method_label("/concord.v1.Node/Propose"),
            "/concord.v1.Node/Propose"
        );
        assert_eq!(
            method_label("/concord.v1.Coordinator/Submit"),
            "/concord.v1.Coordinator/Submit"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        for path in [
            "/other.Service/Call",
            "/concord.v1.Node/Propose/../x",
            "/concord.v1.Node/",
            "/",
            &format!("/concord.v1.Node/{}", "A".repeat(33)),
        ] {
            assert_eq!(method_label(path), "unknown", "{path}");
        }
    }
}
