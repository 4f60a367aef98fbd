//! Notifications through Prometheus Alertmanager (`--alertmanager URL`), as Prometheus sends
//! them: every alert state is POSTed to each URL's v2 API (`/api/v2/alerts`) from a thread of
//! its own, so the job never waits on Alertmanager.
//!
//! ```text
//!  alert log ── raise / resolve ──> shared state ──> sender thread ──> POST /api/v2/alerts (each URL)
//!              (report thread)      raised alerts,     batches of 500, retries with backoff,
//!                                   a queue per URL    every raised alert again each resend
//! ```
//!
//! While an alert is raised it is sent again every `--alertmanager-resend`, with `endsAt` a
//! lease of 4 resend intervals, so the alerts of a job that stopped resolve by themselves; a
//! resolve carries `endsAt` = the end of the resolving epoch. Each URL has a queue of at most
//! [`QUEUE_BOUND`] notifications; when full the oldest is dropped and counted (a dropped
//! raise goes out again with the next resend of every raised alert, a dropped resolve ends
//! with its lease). A failed POST (no connection, timeout, 5xx, 429) is retried with backoff
//! from 1 s to 30 s, and the first success after a failure sends every raised alert again.
//! Another 4xx means Alertmanager refused the alerts: logged with its reason, not retried.

pub mod silences;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use hygroflow_dataflows::alerts::{AlertKind, AlertState, Limit, Transition};
use serde::Serialize;
use tracing::{info, warn};

use crate::epoch::{rfc3339, EpochGrid};
use crate::live::metrics::process_metrics;
use crate::rules::{Notice, Rules};
use crate::sink::alerts::percent;

/// Notifications queued per URL at most; the oldest goes first when more come.
pub const QUEUE_BOUND: usize = 10_000;
/// Alerts per POST at most.
const BATCH: usize = 500;
/// Backoff after a failed POST: from this, doubling...
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// ...up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the job waits at its end for queued notifications to go out.
const FINAL_DELIVERY: Duration = Duration::from_secs(5);
/// Bytes of an error response kept for the log.
const REASON_BYTES: usize = 200;

/// One Alertmanager: where alerts are POSTed, and how the URL may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `.../api/v2/alerts`, without credentials.
    alerts_url: String,
    /// `Basic ...` when the URL carried a user name.
    authorization: Option<String>,
    /// The URL without credentials, for logs and errors.
    shown: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log, not even a debug print.
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `--alertmanager`: an `http://` or `https://` URL of an Alertmanager (its root, or a path
/// prefix it is served under), optionally with `user:password@` for basic authentication.
pub fn endpoint(text: &str) -> Result<Endpoint, String> {
    const EXPECTED: &str =
        "expected an http:// or https:// URL of an Alertmanager, such as http://127.0.0.1:9093";
    let mut url = url::Url::parse(text.trim()).map_err(|e| format!("{e}: {EXPECTED}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme is not http or https: {EXPECTED}"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("no host: {EXPECTED}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("a query or fragment has no place here: {EXPECTED}"));
    }
    let authorization = if url.username().is_empty() {
        None
    } else {
        let user = percent_decode(url.username());
        let password = url.password().map(percent_decode).unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {token}"))
    };
    // Neither fails on an http(s) URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let shown = url.as_str().trim_end_matches('/').to_owned();
    Ok(Endpoint {
        alerts_url: format!("{shown}/api/v2/alerts"),
        authorization,
        shown,
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the notifier needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Every URL gets every alert.
    pub endpoints: Vec<Endpoint>,
    /// How often a raised alert is sent again (`--alertmanager-resend`).
    pub resend: Duration,
}

/// The `alertname` of each kind.
pub fn alertname(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::High => "HumidityHigh",
        AlertKind::Low => "HumidityLow",
        AlertKind::Rate => "HumidityRateOfChange",
        AlertKind::Silent => "SensorSilent",
    }
}

/// The `severity` label of each kind: out of the band is `critical`, a fast change and a
/// silent sensor (the room may still be fine) `warning`.
pub fn severity(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::High | AlertKind::Low => "critical",
        AlertKind::Rate | AlertKind::Silent => "warning",
    }
}

/// One alert as Alertmanager's v2 API takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    /// Identify the alert.
    pub labels: BTreeMap<&'static str, String>,
    /// Describe it.
    pub annotations: BTreeMap<&'static str, String>,
    /// The end of the raising epoch.
    pub starts_at: String,
    /// Raised: the lease; resolved: the end of the resolving epoch.
    pub ends_at: String,
    /// The live page, with `--http`.
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// The alert `raised` raised, resolved by `resolved` if given, on epochs of `grid`; a
/// raised alert's lease ends at `lease_end`.
pub fn posted(
    (raised, resolved): (&Transition, Option<&Transition>),
    notice: &Notice,
    grid: &EpochGrid,
    lease_end: SystemTime,
    generator_url: &str,
) -> Posted {
    let device = raised.device.as_str();
    let severity = match &notice.severity {
        Some(severity) => severity.clone(),
        None => severity(raised.kind).to_owned(),
    };
    let mut labels = BTreeMap::from([
        ("alertname", alertname(raised.kind).to_owned()),
        ("device", device.to_owned()),
        ("modality", crate::rules::modality(device).to_owned()),
        ("severity", severity),
    ]);
    if let Some(sensor) = &raised.sensor {
        labels.insert("sensor", sensor.clone());
    }
    let since = rfc3339(grid.end_of(raised.epoch));
    let limit = match raised.limit {
        Limit::Micro(micro) => format!("{} % RH", micro as f64 / 1e6),
        Limit::Millis(ms) => format!("{} s", ms as f64 / 1e3),
    };
    let value = raised.value.map(|v| format!("{} % RH", percent(v)));
    let (summary, description) = match (raised.kind, &raised.sensor) {
        (AlertKind::Silent, sensor) => {
            let sensor = sensor.as_deref().unwrap_or("?");
            (
                format!("{device}: sensor {sensor} silent"),
                format!("Sensor {sensor} of {device} has sent no reading for {limit} (the limit), since {since}."),
            )
        }
        (kind, _) => {
            let (what, side) = match kind {
                AlertKind::High => ("mean humidity", "above the limit"),
                AlertKind::Low => ("mean humidity", "below the limit"),
                _ => ("change of humidity within the hour", "beyond the limit"),
            };
            let value = value.unwrap_or_else(|| "?".to_owned());
            (
                format!("{device}: {what} {side} {limit}"),
                format!("The {what} of {device} is {value}, {side} {limit}, since {since}."),
            )
        }
    };
    let mut annotations = BTreeMap::from([("summary", summary), ("description", description)]);
    if let Some(url) = &notice.runbook_url {
        annotations.insert("runbook_url", url.clone());
    }
    let ends_at = match resolved {
        Some(r) if r.state == AlertState::Resolved => rfc3339(grid.end_of(r.epoch)),
        _ => rfc3339(lease_end),
    };
    Posted {
        labels,
        annotations,
        starts_at: since,
        ends_at,
        generator_url: generator_url.to_owned(),
    }
}

/// An alert by `(device, kind, sensor)`.
type AlertKey = (String, AlertKind, Option<String>);

/// What the alert log hands over and the sender thread takes.
struct State {
    /// Every raised alert's raising transition, and whether a maintenance shelves it (it is
    /// not sent until the maintenance ends).
    raised: BTreeMap<AlertKey, (Transition, bool)>,
    /// How many of `raised` are shelved.
    shelved: usize,
    targets: Vec<Target>,
    stopping: bool,
}

/// One URL's deliveries.
struct Target {
    endpoint: Endpoint,
    /// Raises and resolves not yet delivered, oldest first.
    queue: VecDeque<Queued>,
    /// Every raised alert is due again (the resend interval passed, or a failure ended).
    resend_all: bool,
    next_resend: Instant,
    retry_at: Option<Instant>,
    backoff: Duration,
    dropped_warned: bool,
    /// Notifications queued so far: the next one's number.
    pushed: u64,
}

/// A notification waiting: the raising transition and, for a resolve, the resolving one.
#[derive(Clone)]
struct Queued {
    /// Its number in its target's queue: a POST takes entries by number, since the queue may
    /// drop its oldest while the POST is under way.
    seq: u64,
    raised: Transition,
    resolved: Option<Transition>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    grid: EpochGrid,
    resend: Duration,
    generator_url: String,
    /// Each device's `severity` and `runbook_url` (a rules change replaces them).
    rules: Mutex<Option<Rules>>,
}

impl Shared {
    fn posted(&self, q: (&Transition, Option<&Transition>), lease_end: SystemTime) -> Posted {
        let notice = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|rules| rules.notice_for(&q.0.device))
            .unwrap_or_default();
        posted(q, &notice, &self.grid, lease_end, &self.generator_url)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave this state half-changed: every change is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends alert states to Alertmanager from a thread of its own; dropping it delivers what
/// is queued for up to 5 s, then stops.
pub struct Notifier {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
    /// The alerts Alertmanager reports silenced (read every few seconds).
    silences: silences::Silences,
    /// Stops the thread that reads them.
    stop_reading: Arc<AtomicBool>,
}

impl Notifier {
    /// Starts the sender for `settings`, on epochs of `grid`, with the alerts `active` at a
    /// restart (sent at once) and the resolves `undelivered` then (queued);
    /// `generator_url`: the live page, or empty.
    pub fn start(
        settings: &Settings,
        (grid, rules): (EpochGrid, Option<Rules>),
        (active, undelivered): (Vec<Transition>, Vec<(Transition, Transition)>),
        generator_url: String,
    ) -> anyhow::Result<Self> {
        let now = Instant::now();
        let raised = active
            .into_iter()
            .map(|t| ((t.device.clone(), t.kind, t.sensor.clone()), (t, false)))
            .collect();
        let targets = settings
            .endpoints
            .iter()
            .map(|endpoint| Target {
                endpoint: endpoint.clone(),
                queue: VecDeque::new(),
                resend_all: true,
                next_resend: now + settings.resend,
                retry_at: None,
                backoff: FIRST_BACKOFF,
                dropped_warned: false,
                pushed: 0,
            })
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                raised,
                shelved: 0,
                targets,
                stopping: false,
            }),
            wake: Condvar::new(),
            grid,
            resend: settings.resend,
            generator_url,
            rules: Mutex::new(rules),
        });
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("hygroflow-alertmanager".into())
            .spawn({
                let (shared, done) = (shared.clone(), done.clone());
                move || {
                    send_loop(&shared);
                    done.store(true, Ordering::SeqCst);
                }
            })?;
        info!(
            urls = %settings.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
            resend = %humantime::format_duration(settings.resend),
            "sending alerts to Alertmanager"
        );
        let silences = silences::Silences::default();
        let stop_reading = Arc::new(AtomicBool::new(false));
        silences::follow(
            settings.endpoints.clone(),
            Arc::clone(&silences),
            Arc::clone(&stop_reading),
        )?;
        let notifier = Notifier {
            shared,
            thread: Some(thread),
            done,
            silences,
            stop_reading,
        };
        // Resolves a killed run had logged and not delivered, with their raises.
        let mut state = notifier.shared.lock();
        for (raised, resolved) in undelivered {
            let queued = Queued {
                seq: 0,
                raised,
                resolved: Some(resolved),
            };
            push(&mut state.targets, &queued);
        }
        set_queued(&state);
        drop(state);
        Ok(notifier)
    }

    /// Hands over transitions just logged (sorted, as the log has them); `shelved`: whether
    /// a maintenance shelves one (a shelved raise is not sent, nor its resolve).
    pub fn record(&self, transitions: &[Transition], shelved: impl Fn(&Transition) -> bool) {
        let mut state = self.shared.lock();
        let State {
            raised,
            targets,
            shelved: count,
            ..
        } = &mut *state;
        for t in transitions {
            let key = (t.device.clone(), t.kind, t.sensor.clone());
            let queued = match t.state {
                AlertState::Raised => {
                    let shelf = shelved(t);
                    *count += usize::from(shelf);
                    raised.insert(key, (t.clone(), shelf));
                    if shelf {
                        continue;
                    }
                    Queued {
                        seq: 0,
                        raised: t.clone(),
                        resolved: None,
                    }
                }
                AlertState::Resolved => {
                    let (raising, was_shelved) =
                        raised.remove(&key).unwrap_or_else(|| (t.clone(), false));
                    if was_shelved {
                        *count -= 1;
                        continue;
                    }
                    Queued {
                        seq: 0,
                        raised: raising,
                        resolved: Some(t.clone()),
                    }
                }
            };
            push(targets, &queued);
        }
        set_queued(&state);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Sends the shelved alerts of devices no longer `in_maintenance`.
    pub fn unshelve(&self, in_maintenance: impl Fn(&str) -> bool) {
        let mut state = self.shared.lock();
        if state.shelved == 0 {
            return;
        }
        let State {
            raised,
            targets,
            shelved,
            ..
        } = &mut *state;
        for ((device, ..), (t, shelf)) in raised.iter_mut() {
            if *shelf && !in_maintenance(device) {
                *shelf = false;
                *shelved -= 1;
                let queued = Queued {
                    seq: 0,
                    raised: t.clone(),
                    resolved: None,
                };
                push(targets, &queued);
            }
        }
        set_queued(&state);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// The alerts Alertmanager reports silenced, as last read.
    pub fn silences(&self) -> silences::Silences {
        Arc::clone(&self.silences)
    }

    /// The rules changed: notices from now on carry the new `severity` and `runbook_url`.
    pub fn set_rules(&self, rules: Rules) {
        *self.shared.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(rules);
    }

    /// The resolves queued and not delivered to every URL, once each (what a checkpoint
    /// keeps so that a restart delivers them).
    pub fn undelivered(&self) -> Vec<(Transition, Transition)> {
        let state = self.shared.lock();
        let mut found: Vec<(Transition, Transition)> = state
            .targets
            .iter()
            .flat_map(|t| t.queue.iter())
            .filter_map(|q| Some((q.raised.clone(), q.resolved.clone()?)))
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// Queues `queued` for every target, the oldest dropped from a full queue.
fn push(targets: &mut [Target], queued: &Queued) {
    {
        {
            for target in targets.iter_mut() {
                if target.queue.len() >= QUEUE_BOUND {
                    target.queue.pop_front();
                    process_metrics().notifications_dropped.inc();
                    if !target.dropped_warned {
                        target.dropped_warned = true;
                        warn!(
                            url = %target.endpoint,
                            bound = QUEUE_BOUND,
                            "Alertmanager queue full: dropping the oldest notifications (counted in hygroflow_alertmanager_dropped_total)"
                        );
                    }
                }
                let mut queued = queued.clone();
                queued.seq = target.pushed;
                target.pushed += 1;
                target.queue.push_back(queued);
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop_reading.store(true, Ordering::Relaxed);
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        let deadline = Instant::now() + FINAL_DELIVERY + POST_TIMEOUT;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let (true, Some(thread)) = (self.done.load(Ordering::SeqCst), self.thread.take()) {
            let _ = thread.join();
        }
    }
}

fn set_queued(state: &State) {
    let queued: usize = state.targets.iter().map(|t| t.queue.len()).sum();
    process_metrics()
        .notifications_queued
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
}

/// What one POST carries: how many queued entries it takes, and the alerts.
struct Batch {
    target: usize,
    /// The number of the last queued entry it carries.
    through: Option<u64>,
    resend_all: bool,
    alerts: Vec<Posted>,
}

/// The sender thread: waits for work, POSTs it, and at the end delivers what it can.
fn send_loop(shared: &Shared) {
    let agent = ureq::AgentBuilder::new()
        .timeout(POST_TIMEOUT)
        .redirects(0)
        .build();
    let mut stop_by: Option<Instant> = None;
    loop {
        let batch = {
            let mut state = shared.lock();
            loop {
                let now = Instant::now();
                if state.stopping && stop_by.is_none() {
                    stop_by = Some(now + FINAL_DELIVERY);
                }
                if stop_by.is_some_and(|by| now >= by) {
                    return;
                }
                if let Some(batch) = next_batch(shared, &mut state, now) {
                    break batch;
                }
                if state.stopping && state.targets.iter().all(|t| t.queue.is_empty()) {
                    return;
                }
                let wait = next_wake(&state, now).min(Duration::from_secs(1));
                state = shared
                    .wake
                    .wait_timeout(state, wait)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        let outcome = post(&agent, shared, &batch);
        let mut state = shared.lock();
        settle(&mut state, &batch, outcome);
        set_queued(&state);
    }
}

/// How long until some target may have work.
fn next_wake(state: &State, now: Instant) -> Duration {
    state
        .targets
        .iter()
        .map(|t| match t.retry_at {
            Some(at) => at.saturating_duration_since(now),
            None => t.next_resend.saturating_duration_since(now),
        })
        .min()
        .unwrap_or(Duration::from_secs(1))
}

/// The next POST due, if any.
fn next_batch(shared: &Shared, state: &mut State, now: Instant) -> Option<Batch> {
    let lease_end = SystemTime::now() + shared.resend * 4;
    let raised = &state.raised;
    for (i, target) in state.targets.iter_mut().enumerate() {
        if target.retry_at.is_some_and(|at| now < at) {
            continue;
        }
        target.retry_at = None;
        if now >= target.next_resend {
            target.resend_all = true;
            target.next_resend = now + shared.resend;
        }
        let mut alerts = Vec::new();
        let resend_all = target.resend_all && !raised.is_empty();
        if resend_all {
            let sent = raised.values().filter(|(_, shelved)| !shelved);
            alerts.extend(sent.map(|(t, _)| shared.posted((t, None), lease_end)));
        } else {
            target.resend_all = false;
        }
        let from_queue = target.queue.len().min(BATCH);
        for q in target.queue.iter().take(from_queue) {
            alerts.push(shared.posted((&q.raised, q.resolved.as_ref()), lease_end));
        }
        if !alerts.is_empty() {
            return Some(Batch {
                target: i,
                through: (from_queue.checked_sub(1))
                    .and_then(|last| target.queue.get(last))
                    .map(|q| q.seq),
                resend_all,
                alerts,
            });
        }
    }
    None
}

/// How a POST went.
enum Outcome {
    Delivered,
    /// Worth another try: no connection, a timeout, 5xx, 429.
    Retry(String),
    /// Refused for good (another 4xx): not sent again.
    Refused(String),
}

fn post(agent: &ureq::Agent, shared: &Shared, batch: &Batch) -> Outcome {
    let (url, authorization) = {
        let state = shared.lock();
        let endpoint = &state.targets[batch.target].endpoint;
        (endpoint.alerts_url.clone(), endpoint.authorization.clone())
    };
    let body = match serde_json::to_string(&batch.alerts) {
        Ok(body) => body,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let mut request = agent.post(&url).set("Content-Type", "application/json");
    if let Some(authorization) = &authorization {
        request = request.set("Authorization", authorization);
    }
    match request.send_string(&body) {
        Ok(_) => Outcome::Delivered,
        Err(ureq::Error::Status(code, response)) => {
            let reason = reason(response);
            if code == 429 || code >= 500 {
                Outcome::Retry(format!("HTTP {code}: {reason}"))
            } else {
                Outcome::Refused(format!("HTTP {code}: {reason}"))
            }
        }
        // The transport error names the host and port, never the credentials: they are not
        // in the URL the request was made with.
        Err(ureq::Error::Transport(e)) => Outcome::Retry(e.to_string()),
    }
}

/// The first bytes of an error response, as printable text (it is data from the network).
fn reason(response: ureq::Response) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let _ = response
        .into_reader()
        .take(REASON_BYTES as u64)
        .read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Removes the queued entries up to number `through` (those a POST carried and that are still
/// queued); returns how many.
fn take_through(queue: &mut VecDeque<Queued>, through: Option<u64>) -> usize {
    let Some(through) = through else {
        return 0;
    };
    let mut taken = 0;
    while queue.front().is_some_and(|q| q.seq <= through) {
        queue.pop_front();
        taken += 1;
    }
    taken
}

fn settle(state: &mut State, batch: &Batch, outcome: Outcome) {
    let metrics = process_metrics();
    let target = &mut state.targets[batch.target];
    match outcome {
        Outcome::Delivered => {
            take_through(&mut target.queue, batch.through);
            if batch.resend_all {
                target.resend_all = false;
            }
            if target.backoff > FIRST_BACKOFF {
                info!(url = %target.endpoint, "Alertmanager reachable again");
            }
            target.backoff = FIRST_BACKOFF;
            metrics.notifications_sent.inc_by(batch.alerts.len() as u64);
            let unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics.notifications_last_success.set(unix);
        }
        Outcome::Retry(why) => {
            metrics.notifications_failed.inc();
            if target.backoff == FIRST_BACKOFF {
                warn!(url = %target.endpoint, reason = %why, "Alertmanager did not take the alerts; retrying with backoff");
            }
            target.retry_at = Some(Instant::now() + target.backoff);
            target.backoff = (target.backoff * 2).min(MAX_BACKOFF);
            // On recovery, every raised alert goes again (its lease may have run out).
            target.resend_all = true;
        }
        Outcome::Refused(why) => {
            metrics.notifications_failed.inc();
            let refused = take_through(&mut target.queue, batch.through);
            metrics.notifications_dropped.inc_by(refused as u64);
            warn!(url = %target.endpoint, reason = %why, alerts = batch.alerts.len(), "Alertmanager refused the alerts; not retrying them");
            if batch.resend_all {
                target.resend_all = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hygroflow_dataflows::alerts::Ratio;

    #[test]
    fn urls_are_checked_and_credentials_kept_out_of_sight() {
        let e = endpoint("http://am:secret@127.0.0.1:9093/").expect("valid");
        assert_eq!(e.alerts_url, "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(e.to_string(), "http://127.0.0.1:9093");
        assert_eq!(format!("{e:?}"), "http://127.0.0.1:9093");
        assert_eq!(
            e.authorization.as_deref(),
            Some("Basic YW06c2VjcmV0"),
            "am:secret"
        );
        let prefixed = endpoint("https://alerts.example/am").expect("valid");
        assert_eq!(
            prefixed.alerts_url,
            "https://alerts.example/am/api/v2/alerts"
        );
        assert_eq!(prefixed.authorization, None);
        for bad in [
            "127.0.0.1:9093",
            "ftp://h/",
            "http://",
            "http://h/?q=1",
            "",
            "not a url",
        ] {
            let err = endpoint(bad).expect_err(bad);
            assert!(err.contains("http://127.0.0.1:9093"), "{bad}: {err}");
            assert!(!err.contains("secret"));
        }
        let err = endpoint("ftp://u:secret@h/").expect_err("scheme");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_post_takes_only_the_entries_it_carried_whatever_the_queue_dropped_meanwhile() {
        let t = Transition {
            epoch: 1,
            device: "CT1".into(),
            kind: AlertKind::High,
            sensor: None,
            state: AlertState::Raised,
            value: None,
            limit: Limit::Micro(60_000_000),
            reason: None,
        };
        let entry = |seq| Queued {
            seq,
            raised: t.clone(),
            resolved: None,
        };
        // A POST carried 0..=2; meanwhile the full queue dropped 0..=2 and took 3..=5.
        let mut queue: VecDeque<Queued> = (3..6).map(entry).collect();
        assert_eq!(take_through(&mut queue, Some(2)), 0);
        assert_eq!(queue.len(), 3);
        assert_eq!(take_through(&mut queue, Some(4)), 2);
        assert_eq!(queue.front().map(|q| q.seq), Some(5));
        assert_eq!(take_through(&mut queue, None), 0);
    }

    #[test]
    fn alerts_carry_the_documented_labels_and_times() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let raised = Transition {
            epoch: 553_047_784,
            device: "MRI12".into(),
            kind: AlertKind::High,
            sensor: None,
            state: AlertState::Raised,
            value: Some(Ratio {
                num: 181_000_001,
                den: 3,
            }),
            limit: Limit::Micro(60_000_000),
            reason: None,
        };
        let lease = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let json = serde_json::to_value(posted(
            (&raised, None),
            &Notice::default(),
            &grid,
            lease,
            "",
        ))
        .expect("json");
        assert_eq!(
            json["labels"],
            serde_json::json!({"alertname":"HumidityHigh","device":"MRI12","modality":"MRI","severity":"critical"})
        );
        assert_eq!(json["startsAt"], "2022-07-30T01:09:15.000Z");
        assert_eq!(json["endsAt"], "2033-05-18T03:33:20.000Z");
        assert!(json.get("generatorURL").is_none());
        let summary = json["annotations"]["summary"].as_str().unwrap_or_default();
        assert_eq!(summary, "MRI12: mean humidity above the limit 60 % RH");
        let description = json["annotations"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.contains("60.333334 % RH"), "{description}");
        let resolved = Transition {
            epoch: 553_047_790,
            state: AlertState::Resolved,
            ..raised.clone()
        };
        let json = serde_json::to_value(posted(
            (&raised, Some(&resolved)),
            &Notice::default(),
            &grid,
            lease,
            "http://h/",
        ))
        .expect("json");
        assert_eq!(json["endsAt"], "2022-07-30T01:09:33.000Z");
        assert_eq!(json["generatorURL"], "http://h/");
        let silent = Transition {
            kind: AlertKind::Silent,
            sensor: Some("0-ZZZ1".into()),
            value: None,
            limit: Limit::Millis(300_000),
            ..raised
        };
        let json = serde_json::to_value(posted(
            (&silent, None),
            &Notice::default(),
            &grid,
            lease,
            "",
        ))
        .expect("json");
        assert_eq!(json["labels"]["alertname"], "SensorSilent");
        assert_eq!(json["labels"]["sensor"], "0-ZZZ1");
        assert_eq!(json["labels"]["severity"], "warning");
        assert!(json["annotations"].get("runbook_url").is_none());
        let notice = Notice {
            severity: Some("critical".into()),
            runbook_url: Some("https://wiki.example/mri".into()),
        };
        let json =
            serde_json::to_value(posted((&silent, None), &notice, &grid, lease, "")).expect("json");
        assert_eq!(json["labels"]["severity"], "critical");
        assert_eq!(
            json["annotations"]["runbook_url"],
            "https://wiki.example/mri"
        );
    }
}
