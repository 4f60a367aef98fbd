//! `--http`: the live page of the fleet, its JSON and event stream, `/metrics` and `/healthz`,
//! served by process 0 from what its worker 0 reports.
//!
//! ```text
//!  worker 0: ReportPrinter ── LiveFeed::report (one Update per reported epoch) ──┐  channel
//!  "hygroflow-live" thread: View + Metrics, the page state as one JSON string <──┘
//!                 │ watch (latest only)
//!  "hygroflow-http" thread: axum on a current-thread tokio runtime
//!        GET /  /app.js  /style.css  /api/report  /api/alerts  /api/events  /metrics  /healthz
//! ```
//!
//! Worker 0 only builds an [`Update`] (the report's facts, already at hand) and sends it; the
//! view, the metrics and every client live on threads of their own, and clients only ever see
//! the latest state (a `tokio::sync::watch`), so a slow or stalled client holds up nothing.

pub(crate) mod lag;
pub mod metrics;
mod server;
pub mod view;

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hygroflow_dataflows::alerts::AlertRules;
use hygroflow_dataflows::{Counter, Epoch, Results, Stat, Transition};
use tracing::{info, warn};

use crate::config::HttpAt;
use crate::epoch::{EpochGrid, Window};
use crate::message::ERROR_KINDS;
use crate::sink::alerts::AlertLine;
use crate::sink::report::snapshot::device_name;
use crate::sink::report::{ActiveLine, JsonReport, Snapshot};

pub use view::Update;

/// What the server thread reads: the latest state, prepared once per update.
pub(crate) struct Shared {
    /// The latest report, page state and active alerts, as JSON text.
    latest: Mutex<Latest>,
    /// Bumped whenever `latest` changes; event streams wait on it.
    changed: tokio::sync::watch::Sender<u64>,
    metrics: Mutex<metrics::Metrics>,
    /// When the last report came (or the server started).
    last_report: Mutex<Instant>,
    /// `/healthz` fails after this long without a report.
    stale_after: Duration,
    epoch_len: Duration,
}

#[derive(Default, Clone)]
pub(crate) struct Latest {
    report: Option<Arc<str>>,
    page: Option<Arc<str>>,
    alerts: Option<Arc<str>>,
}

/// The running server: its address and the feed worker 0 reports into. Dropping it stops
/// the server.
pub struct Live {
    addr: SocketAddr,
    feed: LiveFeed,
    _server: server::Handle,
}

/// Worker 0's end: hands each reported epoch to the live state.
#[derive(Clone)]
pub struct LiveFeed {
    tx: mpsc::Sender<(Update, f64)>,
    grid: EpochGrid,
    window: Window,
}

/// What the view needs to know of the job.
pub struct Settings {
    /// The epoch grid.
    pub grid: EpochGrid,
    /// What reports cover.
    pub window: Window,
    /// The rules, when alerts are on.
    pub rules: Option<AlertRules>,
}

/// Binds `at`: an explicit address in use is an error naming the flag; the demo's default
/// falls back to any free port, with a warning.
pub fn bind(at: &HttpAt) -> anyhow::Result<TcpListener> {
    let listener = match TcpListener::bind(at.addr) {
        Ok(listener) => listener,
        Err(e) if at.fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(at.addr.ip(), 0);
            warn!(address = %at.addr, "--http: address in use; serving the live page on a free port instead");
            TcpListener::bind(any).with_context(|| format!("--http {any}: cannot listen"))?
        }
        Err(e) => return Err(anyhow::anyhow!("--http {}: cannot listen: {e}", at.addr)),
    };
    if !at.addr.ip().is_loopback() {
        warn!(address = %at.addr, "--http listens beyond this machine: the live page, its API and /metrics have no authentication; anyone who can reach the address can read them");
    }
    Ok(listener)
}

impl Live {
    /// Starts serving on `listener`: the view's thread and the server's thread.
    pub fn start(listener: TcpListener, settings: Settings) -> anyhow::Result<Live> {
        let addr = listener.local_addr().context("--http: no local address")?;
        let cumulative = settings.window == Window::Cumulative;
        let (changed, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            latest: Mutex::new(Latest::default()),
            changed,
            metrics: Mutex::new(metrics::Metrics::new(cumulative)),
            last_report: Mutex::new(Instant::now()),
            stale_after: settings.grid.len() * 3,
            epoch_len: settings.grid.len(),
        });
        let (tx, rx) = mpsc::channel();
        let view = view::View::new(settings.grid, settings.rules, cumulative);
        let for_view = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("hygroflow-live".to_owned())
            .spawn(move || follow(view, &rx, &for_view))
            .context("--http: cannot start the live view's thread")?;
        let server = server::Handle::start(listener, shared)?;
        info!(url = %format!("http://{addr}/"), "live page");
        Ok(Live {
            addr,
            feed: LiveFeed {
                tx,
                grid: settings.grid,
                window: settings.window,
            },
            _server: server,
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The feed for worker 0.
    pub fn feed(&self) -> LiveFeed {
        self.feed.clone()
    }
}

impl LiveFeed {
    /// Hands over the report of `epoch`: the full state in `results`, the alerts `active`
    /// now and the `transitions` logged since the last report, and what the alert log knows
    /// beyond them.
    pub fn report(
        &self,
        epoch: Epoch,
        results: &Results,
        (active, transitions): (Vec<Transition>, Vec<Transition>),
        notes: Notes<'_>,
    ) {
        let latency = SystemTime::now()
            .duration_since(self.grid.end_of(epoch))
            .map_or(0.0, |d| d.as_secs_f64());
        let snapshot = Snapshot::of(results);
        let lines = active
            .iter()
            .map(|t| ActiveLine::Formatted(AlertLine::new(t, &self.grid)))
            .collect();
        let report = JsonReport::new(epoch, (&self.grid, self.window), &snapshot, lines);
        let report_json = serde_json::to_string(&report).unwrap_or_default();
        let mut update = Update {
            epoch,
            report_json,
            totals: view::Totals {
                messages: snapshot.total_messages,
                rejected: snapshot.rejected_messages,
                late: snapshot.late_messages,
                future: snapshot.future_messages,
                sensors: snapshot.total_sensors,
            },
            sensors: snapshot.sensors_by_device.iter().cloned().collect(),
            rejected_by_kind: results
                .facts()
                .filter_map(|(stat, _)| match stat {
                    Stat::Count(Counter::RejectedAs(i), n) => {
                        Some((*ERROR_KINDS.get(usize::from(*i))?, *n))
                    }
                    _ => None,
                })
                .collect(),
            active,
            transitions,
            ..Update::default()
        };
        for (stat, r) in results.facts() {
            if let (
                Stat::DeviceHumidity {
                    device,
                    sum_micro,
                    count,
                },
                true,
            ) = (stat, *r > 0)
            {
                update
                    .sums
                    .insert(device_name(results, device), (*sum_micro, *count));
            }
        }
        let names = update.sums.keys().chain(update.sensors.keys());
        update.maintenance = names
            .filter_map(|d| Some((d.clone(), (notes.maintenance)(d)?)))
            .collect();
        update.silenced = notes.silenced;
        update.rules = notes.rules;
        // The view's thread has gone only when the server has: nothing to tell.
        let _ = self.tx.send((update, latency));
    }
}

/// What the alert log knows of a report's devices and alerts beyond the report.
pub struct Notes<'a> {
    /// The maintenance a device is in, in words.
    pub maintenance: &'a dyn Fn(&str) -> Option<String>,
    /// The alerts Alertmanager reports silenced.
    pub silenced: std::collections::BTreeMap<
        crate::notify::silences::AlertKey,
        crate::notify::silences::Silenced,
    >,
    /// The rules in force (they change by SIGHUP).
    pub rules: Option<AlertRules>,
}

/// The view's thread: takes in updates as they come and publishes the latest state.
fn follow(mut view: view::View, rx: &mpsc::Receiver<(Update, f64)>, shared: &Shared) {
    while let Ok(first) = rx.recv() {
        // A backlog is taken in whole, then published once: the page (and the devices'
        // gauges) only for its last update, the counters for each.
        let backlog: Vec<(Update, f64)> = std::iter::once(first).chain(rx.try_iter()).collect();
        let last_index = backlog.len().saturating_sub(1);
        let mut page = None;
        for (i, (update, latency)) in backlog.into_iter().enumerate() {
            view.update(update);
            let mut values: Vec<(String, Option<f64>)> = Vec::new();
            if i == last_index {
                page = view.page();
                if let Some(page) = &page {
                    values = page
                        .devices
                        .iter()
                        .map(|t| (t.device.clone(), t.value))
                        .collect();
                }
            }
            if let (Ok(mut metrics), Some(last)) = (shared.metrics.lock(), view.last()) {
                metrics.update(last, latency, &values);
            }
        }
        let Some(page) = page else {
            continue;
        };
        let alerts = serde_json::to_string(&page.active).unwrap_or_default();
        let latest = Latest {
            report: view.report_json().map(Arc::from),
            page: serde_json::to_string(&page).ok().map(Arc::from),
            alerts: Some(Arc::from(alerts)),
        };
        if let Ok(mut slot) = shared.latest.lock() {
            *slot = latest;
        }
        if let Ok(mut last) = shared.last_report.lock() {
            *last = Instant::now();
        }
        shared.changed.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_default_moves_to_a_free_port_and_an_explicit_address_does_not() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let moved = bind(&HttpAt {
            addr,
            fallback: true,
        })
        .expect("a free port instead");
        assert_ne!(moved.local_addr().expect("addr").port(), addr.port());
        let refused = bind(&HttpAt {
            addr,
            fallback: false,
        })
        .expect_err("in use");
        let message = refused.to_string();
        assert!(
            message.starts_with(&format!("--http {addr}: ")),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}
