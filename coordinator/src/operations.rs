//! The coordinator's views on its operations endpoint (`concord-api` `operations`): the
//! queries (`/queries`, every query with its phase, newest last) and the enrolled nodes
//! (`/nodes`), and, at each scrape of `/metrics`, gauges read from the store — queries per
//! phase and the number of enrolled nodes. The counters and histograms (steps' time and
//! bytes, nodes' decisions and contributions, queries finished, submissions refused) are
//! recorded where they happen.

use crate::store::QueryStore;
use concord_api::lifecycle::Phase;
use serde_json::json;
use std::sync::Arc;

/// The endpoint's routes for this coordinator's `store`.
pub fn router(store: Arc<QueryStore>) -> axum::Router {
    let failed = |e: crate::store::StoreError| {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let views = axum::Router::new()
        .route(
            "/queries",
            axum::routing::get({
                let store = store.clone();
                move || {
                    let store = store.clone();
                    async move {
                        let rows: Vec<serde_json::Value> = store
                            .all()
                            .map_err(failed)?
                            .iter()
                            .map(|r| {
                                json!({
                                    "id": r.id,
                                    "researcher": r.researcher,
                                    "template": r.template,
                                    "window": format!("{} +{}", r.window_first, r.window_months),
                                    "phase": r.phase.as_str(),
                                    "detail": r.detail,
                                    "release": r.release.as_str(),
                                    "epsilon": r.epsilon,
                                    "asked": r.asked,
                                    "contributed": r.contributed.len(),
                                    "submitted_at": r.submitted_at,
                                })
                            })
                            .collect();
                        Ok::<_, (axum::http::StatusCode, String)>(axum::Json(rows))
                    }
                }
            }),
        )
        .route(
            "/nodes",
            axum::routing::get({
                let store = store.clone();
                move || {
                    let store = store.clone();
                    async move {
                        let rows: Vec<serde_json::Value> = crate::service::enrolled(&store)
                            .map_err(failed)?
                            .into_iter()
                            .map(|n| json!({"name": n.name, "url": n.url, "party": n.party}))
                            .collect();
                        Ok::<_, (axum::http::StatusCode, String)>(axum::Json(rows))
                    }
                }
            }),
        );
    concord_api::operations::router(views, move || gauges(&store))
}

/// Queries per phase and enrolled nodes, as the store has them now.
fn gauges(store: &QueryStore) {
    let Ok(queries) = store.all() else { return };
    for phase in Phase::ALL {
        let count = queries.iter().filter(|r| r.phase == phase).count();
        metrics::gauge!("concord_queries", "phase" => phase.as_str()).set(count as f64);
    }
    if let Ok(nodes) = store.nodes() {
        metrics::gauge!("concord_enrolled_nodes").set(nodes.len() as f64);
    }
}
