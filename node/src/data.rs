//! The institution's MISP data as the node computes from it: read at start, from a feed or
//! export directory or from a MISP instance, and — with `[data] refresh_s` — read again every
//! so often, so that a long-running node does not go stale.
//!
//! A statistic is computed from the snapshot current when the node commits to a query
//! ([`crate::contribution`]); a refresh replaces the snapshot whole, between two commitments,
//! never during one. A refresh that fails (MISP unreachable, a directory gone) keeps the last
//! good snapshot and says so in the log and in the metrics
//! (`concord_misp_refreshes_total{outcome="failed"}`): the node goes on serving.

use crate::config::DataSource;
use crate::NodeError;
use concord_stats::Event;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The current snapshot of the institution's events.
#[derive(Default)]
pub struct Events(RwLock<Arc<Vec<Event>>>);

impl Events {
    pub fn new(events: Vec<Event>) -> Self {
        let this = Self::default();
        this.replace(events);
        this
    }

    /// The snapshot now (cheap: shared, not copied).
    pub fn current(&self) -> Arc<Vec<Event>> {
        self.0.read().expect("events lock").clone()
    }

    fn replace(&self, events: Vec<Event>) {
        metrics::gauge!("concord_misp_events").set(events.len() as f64);
        metrics::gauge!("concord_misp_loaded_timestamp_seconds").set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        *self.0.write().expect("events lock") = Arc::new(events);
    }
}

/// Reads the configured source once.
pub async fn load(data: &DataSource) -> Result<Vec<Event>, NodeError> {
    match (&data.path, &data.misp) {
        (Some(path), _) => {
            let path = path.clone();
            // reading and parsing thousands of files is blocking work
            let data =
                tokio::task::spawn_blocking(move || concord_stats::load(&path).map(|d| (d, path)))
                    .await
                    .expect("the loader does not panic")?;
            let (data, path) = data;
            tracing::info!(
                events = data.events.len(),
                files = data.report.files_read,
                unusable = data.report.errors.len(),
                path = %path.display(),
                "MISP data loaded"
            );
            for e in &data.report.errors {
                tracing::warn!("not used: {e}");
            }
            Ok(data.events)
        }
        (None, Some(misp)) => {
            let fetched = concord_misp::MispApi::new(misp.clone())?.fetch().await?;
            tracing::info!(
                events = fetched.events.len(),
                pages = fetched.pages,
                duplicates = fetched.duplicates,
                retried = fetched.retried,
                url = %misp.url,
                "MISP data read from the instance"
            );
            Ok(fetched.events)
        }
        (None, None) => unreachable!("the configuration names a data source"),
    }
}

/// Reads the source again every `every`, replacing the snapshot after each good read.
pub fn refresh(data: DataSource, every: Duration, events: Arc<Events>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match load(&data).await {
                Ok(fresh) => {
                    let before = events.current().len();
                    tracing::info!(before, after = fresh.len(), "MISP data refreshed");
                    events.replace(fresh);
                    metrics::counter!("concord_misp_refreshes_total", "outcome" => "ok")
                        .increment(1);
                }
                Err(e) => {
                    tracing::warn!("MISP data refresh failed, keeping the last snapshot: {e}");
                    metrics::counter!("concord_misp_refreshes_total", "outcome" => "failed")
                        .increment(1);
                }
            }
        }
    });
}
