//! The HTTP server: axum on a current-thread tokio runtime of its own thread, answering from
//! the latest state the view's thread prepared. Nothing here waits on a worker.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tracing::warn;

use super::Shared;

/// The page and its assets, compiled into the binary.
const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// Event streams send at most one state per this long, however fast epochs are reported.
const MIN_EVENT_GAP: Duration = Duration::from_millis(250);

/// A running server; dropping it stops the server.
pub(crate) struct Handle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Handle {
    /// Serves `listener` on a thread of its own.
    pub(crate) fn start(
        listener: std::net::TcpListener,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Self> {
        listener
            .set_nonblocking(true)
            .context("--http: cannot set up the listener")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("--http: cannot start the server's runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hygroflow-http".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            warn!(error = %e, "--http: cannot serve");
                            return;
                        }
                    };
                    tokio::select! {
                        () = serve(listener, router(shared)) => {}
                        _ = stopped => {}
                    }
                });
                // Open event streams end with the runtime.
                runtime.shutdown_background();
            })
            .context("--http: cannot start the server's thread")?;
        Ok(Handle { stop: Some(stop) })
    }
}

/// Connections served at once; more are closed as they come. Each costs a file descriptor,
/// which the job needs for its checkpoints and brokers: 20,000 clients that never finished
/// their headers once took them all, and `/healthz` stopped answering (issue 26 point 6).
const MAX_CONNECTIONS: usize = 256;

/// A client that has not sent a request's whole header by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts and serves connections, at most [`MAX_CONNECTIONS`] at once, each with a
/// [`HEADER_TIMEOUT`]; returns only if the listener fails for good.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut refused_logged: Option<std::time::Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was taken: wait a
            // moment rather than spin.
            Err(e) => {
                warn!(error = %e, "--http: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if refused_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                warn!(
                    limit = MAX_CONNECTIONS,
                    "--http: connections at the limit; closing new ones (logged once a minute)"
                );
                refused_logged = Some(std::time::Instant::now());
            }
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A client that goes away is no error of the server's.
            let _ = connection.await;
            drop(slot);
        });
    }
}

/// Every route.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/report", get(report))
        .route("/api/alerts", get(alerts))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(shared)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            // Only the page's own assets run, whatever a name holds.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn json(body: Option<Arc<str>>) -> Response {
    match body {
        Some(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no report yet\n").into_response(),
    }
}

async fn report(State(shared): State<Arc<Shared>>) -> Response {
    json(shared.latest.lock().ok().and_then(|l| l.report.clone()))
}

async fn alerts(State(shared): State<Arc<Shared>>) -> Response {
    json(shared.latest.lock().ok().and_then(|l| l.alerts.clone()))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared
        .metrics
        .lock()
        .map(|m| m.encode())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let since = shared
        .last_report
        .lock()
        .map(|t| t.elapsed())
        .unwrap_or_default();
    let commit = crate::live::metrics::since_last_commit();
    match health(since, commit, (shared.stale_after, shared.epoch_len)) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body).into_response(),
    }
}

/// Healthy unless the last report, or (with checkpoints) the last committed checkpoint, is
/// older than `stale_after` (three epochs of `epoch_len`). Checkpoints that stop being
/// committed while reports go on would leave a restart ever further to replay.
pub(crate) fn health(
    since_report: Duration,
    since_commit: Option<Duration>,
    (stale_after, epoch_len): (Duration, Duration),
) -> Result<(), String> {
    let epochs = humantime::format_duration(epoch_len);
    if since_report > stale_after {
        return Err(format!(
            "no report for {:.1}s: more than three epochs of {epochs}\n",
            since_report.as_secs_f64()
        ));
    }
    match since_commit {
        Some(since) if since > stale_after => Err(format!(
            "no checkpoint committed for {:.1}s: more than three epochs of {epochs}\n",
            since.as_secs_f64()
        )),
        _ => Ok(()),
    }
}

/// The page's event stream: the latest state now, then after each change, at most one per
/// [`MIN_EVENT_GAP`].
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = shared.changed.subscribe();
    let stream =
        futures_util::stream::unfold((shared, rx, true), |(shared, mut rx, first)| async move {
            if !first {
                tokio::time::sleep(MIN_EVENT_GAP).await;
                rx.changed().await.ok()?;
            }
            rx.borrow_and_update();
            let page = shared.latest.lock().ok().and_then(|l| l.page.clone());
            let event = match page {
                Some(page) => Event::default().event("state").data(page.as_ref()),
                None => Event::default().comment("no report yet"),
            }
            .retry(Duration::from_secs(1));
            Some((Ok(event), (shared, rx, false)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn healthz_fails_on_a_stale_report_or_a_stale_checkpoint() {
        let limits = (Duration::from_secs(9), Duration::from_secs(3));
        let s = Duration::from_secs;
        assert_eq!(health(s(1), None, limits), Ok(()));
        assert_eq!(health(s(1), Some(s(2)), limits), Ok(()));
        let report = health(s(10), Some(s(2)), limits).expect_err("stale report");
        assert!(report.starts_with("no report for 10.0s"), "{report}");
        let commit = health(s(1), Some(s(12)), limits).expect_err("stale checkpoint");
        assert!(
            commit.starts_with("no checkpoint committed for 12.0s"),
            "{commit}"
        );
    }
}
