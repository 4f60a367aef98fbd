//! What Alertmanager knows of hygroflow's alerts: which it has silenced, by whom and until
//! when, so that the live page can show an alarm acknowledged there. Silencing stays in
//! Alertmanager (`amtool silence add`); this only reads.
//!
//! Every [`POLL`] a thread of its own reads `GET /api/v2/alerts` (silenced alerts only) and
//! `GET /api/v2/silences` from the first URL that answers. Both are data from the network:
//! read to at most [`MAX_BODY`] bytes, parsed with serde into the few fields used, every
//! text cut to [`MAX_TEXT`] characters with control characters replaced (the page sets text,
//! never markup).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hygroflow_dataflows::alerts::AlertKind;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{alertname, Endpoint};

/// How often Alertmanager is asked.
pub const POLL: Duration = Duration::from_secs(5);
/// The most bytes of a response read.
pub const MAX_BODY: u64 = 8 << 20;
/// The most characters of a name, a comment or a time kept.
pub const MAX_TEXT: usize = 200;

/// An alert as Alertmanager names it: `(device, kind, sensor)`.
pub type AlertKey = (String, AlertKind, Option<String>);

/// A silence that covers an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Silenced {
    /// Who created the silence (`createdBy`).
    pub by: String,
    /// When it ends (`endsAt`, as Alertmanager wrote it).
    pub until: String,
    /// Why (`comment`).
    pub comment: String,
}

/// The silenced alerts, as last read; shared with the live page.
pub type Silences = Arc<Mutex<BTreeMap<AlertKey, Silenced>>>;

#[derive(Deserialize)]
struct GotAlert {
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    status: GotStatus,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GotStatus {
    #[serde(default)]
    silenced_by: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GotSilence {
    id: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    ends_at: String,
}

/// `text` as the page may show it: at most [`MAX_TEXT`] characters, no control characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The kind of an `alertname` hygroflow sends.
fn kind_of(name: &str) -> Option<AlertKind> {
    [
        AlertKind::High,
        AlertKind::Low,
        AlertKind::Rate,
        AlertKind::Silent,
    ]
    .into_iter()
    .find(|k| alertname(*k) == name)
}

/// Which of hygroflow's alerts the answers silence.
pub fn silenced(alerts: &[u8], silences: &[u8]) -> Result<BTreeMap<AlertKey, Silenced>, String> {
    let alerts: Vec<GotAlert> = serde_json::from_slice(alerts).map_err(|e| e.to_string())?;
    let silences: Vec<GotSilence> = serde_json::from_slice(silences).map_err(|e| e.to_string())?;
    let by_id: HashMap<&str, &GotSilence> = silences.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = BTreeMap::new();
    for alert in &alerts {
        let (Some(kind), Some(device)) = (
            alert.labels.get("alertname").and_then(|n| kind_of(n)),
            alert.labels.get("device"),
        ) else {
            continue;
        };
        let Some(silence) = alert
            .status
            .silenced_by
            .iter()
            .find_map(|id| by_id.get(id.as_str()))
        else {
            continue;
        };
        let key = (device.clone(), kind, alert.labels.get("sensor").cloned());
        out.insert(
            key,
            Silenced {
                by: clean(&silence.created_by),
                until: clean(&silence.ends_at),
                comment: clean(&silence.comment),
            },
        );
    }
    Ok(out)
}

/// GETs `url`, at most [`MAX_BODY`] bytes.
fn get(agent: &ureq::Agent, url: &str, authorization: Option<&str>) -> Result<Vec<u8>, String> {
    let mut request = agent.get(url);
    if let Some(authorization) = authorization {
        request = request.set("Authorization", authorization);
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("HTTP {code}"),
        ureq::Error::Transport(e) => e.to_string(),
    })?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}

/// Reads the silenced alerts from the first of `endpoints` that answers.
fn read(agent: &ureq::Agent, endpoints: &[Endpoint]) -> Option<BTreeMap<AlertKey, Silenced>> {
    for endpoint in endpoints {
        let base = endpoint.shown.as_str();
        let auth = endpoint.authorization.as_deref();
        let alerts_url = format!(
            "{base}/api/v2/alerts?active=false&silenced=true&inhibited=false&unprocessed=false"
        );
        let result = get(agent, &alerts_url, auth).and_then(|alerts| {
            let silences = get(agent, &format!("{base}/api/v2/silences"), auth)?;
            silenced(&alerts, &silences)
        });
        match result {
            Ok(found) => return Some(found),
            Err(why) => {
                debug!(url = %endpoint, reason = %clean(&why), "cannot read Alertmanager's silences")
            }
        }
    }
    None
}

/// Starts the thread that keeps `silences` as Alertmanager has them, until `stop` is set.
pub fn follow(
    endpoints: Vec<Endpoint>,
    silences: Silences,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("hygroflow-am-silences".into())
        .spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .redirects(0)
                .build();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(found) = read(&agent, &endpoints) {
                    *silences.lock().unwrap_or_else(|e| e.into_inner()) = found;
                }
                std::thread::sleep(POLL);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_alerts_with_a_known_silence_count_and_their_texts_are_cleaned() {
        let alerts = br#"[
            {"labels":{"alertname":"HumidityHigh","device":"MRI1"},"status":{"silencedBy":["s1"]}},
            {"labels":{"alertname":"SensorSilent","device":"CT1","sensor":"g"},"status":{"silencedBy":["s2"]}},
            {"labels":{"alertname":"Other","device":"X"},"status":{"silencedBy":["s1"]}},
            {"labels":{"alertname":"HumidityLow","device":"CT2"},"status":{"silencedBy":["nope"]}},
            {"labels":{},"status":{}}
        ]"#;
        let silences = br#"[
            {"id":"s1","createdBy":"nurse\u001b[31m","comment":"<b>service</b>","endsAt":"2026-12-07T10:00:00Z"},
            {"id":"s2","createdBy":"bme","comment":"","endsAt":"2026-12-07T11:00:00Z","extra":1}
        ]"#;
        let found = silenced(alerts, silences).expect("parses");
        assert_eq!(found.len(), 2, "{found:?}");
        let high = &found[&("MRI1".to_owned(), AlertKind::High, None)];
        assert_eq!(high.by, "nurse [31m");
        assert_eq!(high.comment, "<b>service</b>", "the page sets it as text");
        assert!(found.contains_key(&("CT1".to_owned(), AlertKind::Silent, Some("g".to_owned()))));
        assert!(silenced(b"{", b"[]").is_err());
        assert!(silenced(b"[]", b"[]").expect("empty").is_empty());
    }
}
