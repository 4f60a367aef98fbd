//! Humidity rules: which band, rate limit, averaging window and silence apply to each device
//! (gh-9 point 2). Pure: text in, validated [`Rules`] out, no I/O but [`Rules::load`].
//!
//! A rules file (TOML) has a `[defaults]` table, `[modality.NAME]` tables and `[device.ID]`
//! tables; the most specific table wins key by key:
//!
//! ```text
//! [device.MRI12]   over   [modality.MRI]   over   [defaults]   over   built-in key defaults
//! ```
//!
//! A device's modality is its id's leading ASCII letters ([`modality`]). Percentages are held
//! exactly, in millionths of a percent ([`Percent`]), parsed from the literal's text, never
//! through `f64`. `parse` reads and checks a file, `mistake` says what is wrong with one;
//! `command` is `hygroflow rules`.

mod alerting;
mod command;
mod mistake;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub use alerting::{alert_rules, epochs_kept, hour_epochs};
pub use command::RulesArgs;
pub use mistake::{Invalid, Mistake};

/// Millionths of a percent in one percent.
const MICROS: u32 = 1_000_000;

/// A relative humidity, or a change of it, in % RH: from 0 to 100, exactly, in millionths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    /// 100 % RH.
    pub const MAX: Percent = Percent(100 * MICROS);

    /// `micros` millionths of a percent; `None` above 100 %.
    pub const fn from_micros(micros: u32) -> Option<Percent> {
        if micros <= Self::MAX.0 {
            Some(Percent(micros))
        } else {
            None
        }
    }

    /// `n` whole percent, capped at 100.
    pub const fn whole(n: u32) -> Percent {
        if n >= 100 {
            Self::MAX
        } else {
            Percent(n * MICROS)
        }
    }

    /// The value in millionths of a percent.
    pub const fn micros(self) -> u32 {
        self.0
    }

    /// `self - other`, or zero.
    pub const fn saturating_sub(self, other: Percent) -> Percent {
        Percent(self.0.saturating_sub(other.0))
    }
}

impl std::fmt::Display for Percent {
    /// A TOML float that reads back exactly: `30.0`, `60.000001`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fraction = format!("{:06}", self.0 % MICROS);
        let fraction = fraction.trim_end_matches('0');
        let fraction = if fraction.is_empty() { "0" } else { fraction };
        write!(f, "{}.{fraction}", self.0 / MICROS)
    }
}

/// The hysteresis when no table gives one: 1 % RH.
pub const DEFAULT_HYSTERESIS: Percent = Percent::whole(1);
/// The averaging window when no table gives one (rounded up to a multiple of the epoch).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// How long a sensor may stay quiet when no table gives a silence.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(300);
/// How long a silent sensor stays one of its device's when no table says (`retire_after`).
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One table of a rules file: the keys it sets, each `None` where it sets none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Below this, a `low` alert (% RH).
    pub low: Option<Percent>,
    /// Above this, a `high` alert (% RH).
    pub high: Option<Percent>,
    /// How far back past a limit a value must come to resolve its alert (% RH).
    pub hysteresis: Option<Percent>,
    /// The most change within an hour before a `rate` alert (% RH per hour).
    pub rate_per_hour: Option<Percent>,
    /// The span of epochs a device's value is the mean over.
    pub window: Option<Duration>,
    /// How long a sensor may stay quiet before a `silent` alert.
    pub silence: Option<Duration>,
    /// How long a sensor stays one of its device's once silent before it is retired;
    /// `Some(None)`: `off`, never.
    pub retire_after: Option<Option<Duration>>,
    /// The `severity` label of the device's alerts in Alertmanager (`critical`, `warning`,
    /// `info`); `None`: by kind (see [`crate::notify::severity`]).
    pub severity: Option<String>,
    /// A link for the people who handle the device's alerts (`runbook_url` annotation).
    pub runbook_url: Option<String>,
}

/// What a device's alerts carry to Alertmanager beyond the alert itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    /// `severity`, if its tables set one.
    pub severity: Option<String>,
    /// `runbook_url`, if its tables set one.
    pub runbook_url: Option<String>,
}

impl Table {
    /// `self`'s keys, and `base`'s where `self` has none.
    pub fn over(&self, base: &Table) -> Table {
        Table {
            severity: self.severity.clone().or_else(|| base.severity.clone()),
            runbook_url: self
                .runbook_url
                .clone()
                .or_else(|| base.runbook_url.clone()),
            low: self.low.or(base.low),
            high: self.high.or(base.high),
            hysteresis: self.hysteresis.or(base.hysteresis),
            rate_per_hour: self.rate_per_hour.or(base.rate_per_hour),
            window: self.window.or(base.window),
            silence: self.silence.or(base.silence),
            retire_after: self.retire_after.or(base.retire_after),
        }
    }
}

/// The rule in force for one device: every key resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Below this, a `low` alert; `None`: no low alert.
    pub low: Option<Percent>,
    /// Above this, a `high` alert; `None`: no high alert.
    pub high: Option<Percent>,
    /// How far back past a limit a value must come to resolve its alert.
    pub hysteresis: Percent,
    /// The most change within an hour; `None`: no rate alert.
    pub rate_per_hour: Option<Percent>,
    /// The span of epochs a device's value is the mean over: a whole number of epochs.
    pub window: Duration,
    /// How long a sensor may stay quiet before a `silent` alert.
    pub silence: Duration,
    /// How long a sensor stays once silent before it is retired (from its last reading:
    /// `silence + retire_after`); `None`: never.
    pub retire_after: Option<Duration>,
}

impl From<&Table> for Rule {
    fn from(t: &Table) -> Rule {
        Rule {
            low: t.low,
            high: t.high,
            hysteresis: t.hysteresis.unwrap_or(DEFAULT_HYSTERESIS),
            rate_per_hour: t.rate_per_hour,
            window: t.window.unwrap_or(DEFAULT_WINDOW),
            silence: t.silence.unwrap_or(DEFAULT_SILENCE),
            retire_after: t.retire_after.unwrap_or(Some(DEFAULT_RETIRE_AFTER)),
        }
    }
}

/// A planned service of some devices (`[[maintenance]]`): while in force, in event time,
/// their alerts are logged as shelved and not notified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    /// Which devices.
    pub target: Target,
    /// Its start, milliseconds since the Unix epoch (inclusive).
    pub from_ms: i64,
    /// Its end, milliseconds since the Unix epoch (exclusive).
    pub to_ms: i64,
    /// `from` and `to` as written.
    pub span: (String, String),
    /// Why, for the people who see it.
    pub reason: String,
}

/// The devices a maintenance entry covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One device id.
    Device(String),
    /// Every device whose id starts so (`MRI*`).
    Prefix(String),
    /// Every device of a modality.
    Modality(String),
}

impl Target {
    /// Whether `device` is covered.
    pub fn covers(&self, device: &str) -> bool {
        match self {
            Target::Device(id) => id == device,
            Target::Prefix(prefix) => device.starts_with(prefix.as_str()),
            Target::Modality(m) => modality(device) == m,
        }
    }
}

/// A device's modality: the leading ASCII letters of its id, case-sensitive (`MRI12` ->
/// `MRI`, `PETCT7` -> `PETCT`); empty for an id that starts otherwise (it takes `[defaults]`).
pub fn modality(device: &str) -> &str {
    let end = device
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(device.len());
    &device[..end]
}

/// Where rules come from (`--rules builtin|none|FILE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesSource {
    /// The built-in rules ([`Rules::builtin`]).
    Builtin,
    /// No rules: alerts are off.
    None,
    /// A TOML file, which replaces the built-in rules entirely.
    File(PathBuf),
}

/// Parses `--rules`: `builtin`, `none`, or the path of a TOML file (`./builtin` or `./none`
/// for a file so named).
pub fn source(text: &str) -> Result<RulesSource, String> {
    match text {
        "" => {
            Err("expected builtin, none or the path of a TOML rules file, got nothing".to_owned())
        }
        "builtin" => Ok(RulesSource::Builtin),
        "none" => Ok(RulesSource::None),
        path => Ok(RulesSource::File(PathBuf::from(path))),
    }
}

/// A rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file cannot be read: the environment (exit code 1).
    #[error("cannot read rules file {}: {error}", crate::escape::escape(&path.display().to_string()))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file holds a mistake: a usage error (exit code 2).
    #[error("rules {} line {}: {}", crate::escape::escape(&path.display().to_string()), invalid.line, crate::escape::escape(&invalid.mistake.to_string()))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what.
        invalid: Box<Invalid>,
    },
}

impl RulesError {
    /// 1 for a file that cannot be read, 2 for a file with a mistake in it.
    pub fn exit_code(&self) -> u8 {
        match self {
            RulesError::Read { .. } => 1,
            RulesError::Invalid { .. } => 2,
        }
    }
}

/// Validated rules for an epoch length: every table, and the rule of any device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// `[defaults]`, with every key that has a default filled in.
    defaults: Table,
    /// `[modality.NAME]`, by name.
    modalities: BTreeMap<String, Table>,
    /// `[device.ID]`, by id.
    devices: BTreeMap<String, Table>,
    /// `[[maintenance]]`, in the file's order.
    maintenance: Vec<Maintenance>,
    /// The epoch length the windows are multiples of.
    epoch: Duration,
}

/// The modalities of the simulated fleet (see `fleet`), each with a built-in table.
pub const BUILTIN_MODALITIES: [&str; 5] = ["CT", "LINAC", "MRI", "PETCT", "SPECT"];

impl Rules {
    /// The built-in rules: 30-60 % RH for every modality, and for MRI at most 5 % RH change
    /// per hour (the README gives their sources), default windows rounded up to `epoch`.
    pub fn builtin(epoch: Duration) -> Rules {
        let band = Table {
            low: Some(Percent::whole(30)),
            high: Some(Percent::whole(60)),
            ..Table::default()
        };
        let modalities = BUILTIN_MODALITIES
            .iter()
            .map(|&name| {
                let rate = (name == "MRI").then_some(Percent::whole(5));
                let table = Table {
                    rate_per_hour: rate,
                    ..band.clone()
                };
                (name.to_owned(), table)
            })
            .collect();
        Rules::new(band, modalities, BTreeMap::new(), epoch)
    }

    /// Rules from checked tables: fills in `[defaults]`' missing keys, rounding the default
    /// window up to a multiple of `epoch`.
    fn new(
        defaults: Table,
        modalities: BTreeMap<String, Table>,
        devices: BTreeMap<String, Table>,
        epoch: Duration,
    ) -> Rules {
        let filled = Table {
            hysteresis: Some(DEFAULT_HYSTERESIS),
            window: Some(round_up(DEFAULT_WINDOW, epoch)),
            silence: Some(DEFAULT_SILENCE),
            ..Table::default()
        };
        Rules {
            defaults: defaults.over(&filled),
            modalities,
            devices,
            maintenance: Vec::new(),
            epoch,
        }
    }

    /// The maintenance entry in force for `device` at `time_ms` (milliseconds since the
    /// Unix epoch), if any: the first in the file's order.
    pub fn maintenance_for(&self, device: &str, time_ms: i64) -> Option<&Maintenance> {
        self.maintenance
            .iter()
            .find(|m| m.from_ms <= time_ms && time_ms < m.to_ms && m.target.covers(device))
    }

    /// Whether the rules have maintenance entries.
    pub fn has_maintenance(&self) -> bool {
        !self.maintenance.is_empty()
    }

    /// A short checksum of the resolved rules (`rules#` and 8 hex digits in logs and state):
    /// the same for rules that read alike, whatever the file's layout.
    pub fn checksum(&self) -> u32 {
        crc32fast::hash(self.to_toml().as_bytes())
    }

    /// Parses and checks the text of a rules file for epochs of length `epoch`.
    pub fn parse(text: &str, epoch: Duration) -> Result<Rules, Invalid> {
        parse::parse(text, epoch)
    }

    /// The built-in rules, a file's, or none (alerts off).
    pub fn load(source: &RulesSource, epoch: Duration) -> Result<Option<Rules>, RulesError> {
        let path = match source {
            RulesSource::Builtin => return Ok(Some(Rules::builtin(epoch))),
            RulesSource::None => return Ok(None),
            RulesSource::File(path) => path,
        };
        let limit = crate::small_file::SMALL_FILE_LIMIT;
        let bytes =
            crate::small_file::read_small(path, limit).map_err(|error| RulesError::Read {
                path: path.clone(),
                error,
            })?;
        let invalid = |invalid| RulesError::Invalid {
            path: path.clone(),
            invalid: Box::new(invalid),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            let bytes = e.as_bytes();
            let valid = e.utf8_error().valid_up_to();
            invalid(Invalid {
                line: parse::line_of(bytes, valid),
                mistake: Mistake::NotUtf8,
            })
        })?;
        Rules::parse(&text, epoch).map(Some).map_err(invalid)
    }

    /// The epoch length the windows are multiples of.
    pub fn epoch(&self) -> Duration {
        self.epoch
    }

    /// The rule of `device`: its `[device.ID]` over its `[modality.NAME]` over `[defaults]`.
    pub fn rule_for(&self, device: &str) -> Rule {
        Rule::from(&self.table_for(device))
    }

    /// What `device`'s alerts carry to Alertmanager: its tables' `severity` and `runbook_url`.
    pub fn notice_for(&self, device: &str) -> Notice {
        let table = self.table_for(device);
        Notice {
            severity: table.severity,
            runbook_url: table.runbook_url,
        }
    }

    /// The resolved table of `device`.
    fn table_for(&self, device: &str) -> Table {
        let general = self.modality_table(modality(device));
        match self.devices.get(device) {
            Some(own) => own.over(&general),
            None => general,
        }
    }

    /// The resolved table of a modality: its own over `[defaults]`.
    fn modality_table(&self, name: &str) -> Table {
        match self.modalities.get(name) {
            Some(own) if !name.is_empty() => own.over(&self.defaults),
            _ => self.defaults.clone(),
        }
    }

    /// Every resolved table: defaults, each modality, each device.
    fn resolved(&self) -> impl Iterator<Item = Rule> + '_ {
        let modalities = self.modalities.keys().map(|m| self.modality_table(m));
        let devices = self.devices.keys().map(|d| self.table_for(d));
        std::iter::once(self.defaults.clone())
            .chain(modalities)
            .chain(devices)
            .map(|t| Rule::from(&t))
    }

    /// The longest window of any table.
    pub fn longest_window(&self) -> Duration {
        self.resolved()
            .map(|r| r.window)
            .max()
            .unwrap_or(DEFAULT_WINDOW)
    }

    /// Whether any table has a rate limit.
    pub fn any_rate(&self) -> bool {
        self.resolved().any(|r| r.rate_per_hour.is_some())
    }

    /// The rules as a TOML file that reads back as the same rules at the same epoch: the
    /// defaults, then each modality, then each device, every table with all its keys resolved.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# Humidity rules in force with --epoch {}: every table resolved (device over\n\
             # modality over defaults), percentages in % RH, windows in whole epochs.\n",
            humantime::format_duration(self.epoch)
        );
        write_table(&mut out, "defaults", &self.defaults);
        for name in self.modalities.keys() {
            let table = self.modality_table(name);
            write_table(&mut out, &format!("modality.{}", toml_key(name)), &table);
        }
        for id in self.devices.keys() {
            write_table(
                &mut out,
                &format!("device.{}", toml_key(id)),
                &self.table_for(id),
            );
        }
        for m in &self.maintenance {
            let _ = writeln!(out, "\n[[maintenance]]");
            let (key, value) = match &m.target {
                Target::Device(id) => ("device", id.clone()),
                Target::Prefix(prefix) => ("device", format!("{prefix}*")),
                Target::Modality(name) => ("modality", name.clone()),
            };
            let string = |s: &str| toml::Value::String(s.to_owned());
            let _ = writeln!(out, "{key} = {}", string(&value));
            let _ = writeln!(out, "from = {}", string(&m.span.0));
            let _ = writeln!(out, "to = {}", string(&m.span.1));
            let _ = writeln!(out, "reason = {}", string(&m.reason));
        }
        out
    }
}

/// `window` rounded up to a whole, positive number of epochs of length `epoch`.
pub fn round_up(window: Duration, epoch: Duration) -> Duration {
    let epoch = epoch.as_nanos().max(1);
    let nanos = window.as_nanos().div_ceil(epoch).max(1) * epoch;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Appends `[name]` and the resolved table's keys, those without a value left out (the
/// notification keys only where set, so that rules without them keep their checksum).
fn write_table(out: &mut String, name: &str, table: &Table) {
    let rule = &Rule::from(table);
    let _ = writeln!(out, "\n[{name}]");
    for (key, value) in [
        ("severity", &table.severity),
        ("runbook_url", &table.runbook_url),
    ] {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {}", toml::Value::String(value.clone()));
        }
    }
    for (key, value) in [
        ("low", rule.low),
        ("high", rule.high),
        ("hysteresis", Some(rule.hysteresis)),
        ("rate_per_hour", rule.rate_per_hour),
    ] {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    for (key, value) in [("window", rule.window), ("silence", rule.silence)] {
        let _ = writeln!(out, "{key} = \"{}\"", humantime::format_duration(value));
    }
    // Only where set, like the notification keys: rules without it keep their checksum.
    if let Some(retire) = table.retire_after {
        let text = retire.map_or("off".to_owned(), |d| {
            humantime::format_duration(d).to_string()
        });
        let _ = writeln!(out, "retire_after = \"{text}\"");
    }
}

/// A TOML key: bare where TOML allows it, else a quoted string with escapes.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        return name.to_owned();
    }
    let mut quoted = String::from("\"");
    for c in name.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
