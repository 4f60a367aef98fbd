//! The rules in force, and rules loaded while running: `SIGHUP` reads the rules file again.
//!
//! ```text
//!  SIGHUP ─> reload thread: parse, check ─┬─ invalid: the old rules stay, a log line, a metric
//!                                         └─ valid: filed in the book by checksum;
//!                                            each worker announces the checksum on the feed
//!  alerts operator: once every worker of the cluster has announced it, the rules apply from
//!  that epoch on (the same epoch everywhere) ─> the alert log writes one `rules` line
//! ```
//!
//! A change of the rules at a restart takes the same path from the checkpoint's frontier:
//! windows, silence timers and raised alerts carry over and are judged by the new rules at the
//! next reported epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hygroflow_dataflows::alerts::{AlertRules, RuleBook};
use tracing::{error, info, warn};

use crate::epoch::EpochGrid;
use crate::escape::escape;
use crate::live::metrics::process_metrics;
use crate::rules::{Rules, RulesError, RulesSource};

/// `rules#` and the checksum's 8 hex digits, as logs and state directories name rules.
pub(crate) fn rules_name(checksum: u32) -> String {
    format!("rules#{checksum:08x}")
}

/// A process's rules: those in force at start, and every valid file loaded since.
pub(crate) struct LiveRules {
    /// The dataflow's rules, by checksum (the alerts operator switches through it).
    pub(crate) book: RuleBook,
    /// The same rules as parsed, by checksum (the alert log's maintenance and notices).
    catalog: Mutex<HashMap<u32, Rules>>,
    /// `(generation, checksum)` of the rules loaded last: workers announce each generation.
    loaded: Mutex<(u64, u32)>,
    /// Epochs of history a checkpoint keeps; a longer window raises it.
    pub(crate) kept: Arc<AtomicU64>,
    grid: EpochGrid,
    window: Option<u64>,
}

impl LiveRules {
    /// The rules `rules` in force at start, on epochs of `grid`; `window`: `--window` in
    /// epochs.
    pub(crate) fn new(rules: &Rules, grid: EpochGrid, window: Option<u64>) -> Arc<Self> {
        let checksum = rules.checksum();
        let book = RuleBook::default();
        book.add(checksum, crate::rules::alert_rules(rules, &grid, &book));
        let kept = crate::rules::epochs_kept(Some(rules), window, &grid);
        Arc::new(LiveRules {
            book,
            catalog: Mutex::new(HashMap::from([(checksum, rules.clone())])),
            loaded: Mutex::new((0, checksum)),
            kept: Arc::new(AtomicU64::new(kept)),
            grid,
            window,
        })
    }

    fn catalog(&self) -> MutexGuard<'_, HashMap<u32, Rules>> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The dataflow's rules at start.
    pub(crate) fn initial(&self) -> Option<AlertRules> {
        let (_, checksum) = self.loaded();
        self.book.get(checksum)
    }

    /// The parsed rules filed under `checksum`.
    pub(crate) fn rules(&self, checksum: u32) -> Option<Rules> {
        self.catalog().get(&checksum).cloned()
    }

    /// `(generation, checksum)` of the rules this process loaded last.
    pub(crate) fn loaded(&self) -> (u64, u32) {
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `path` again: valid rules are filed and announced, invalid ones refused (the
    /// rules in force stay). Returns whether other rules were loaded.
    pub(crate) fn reload(&self, path: &Path) -> Result<bool, RulesError> {
        let source = RulesSource::File(path.to_owned());
        let Some(rules) = Rules::load(&source, self.grid.len())? else {
            return Ok(false);
        };
        let checksum = rules.checksum();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.1 == checksum {
            return Ok(false);
        }
        let before = self.kept.load(Ordering::Relaxed);
        let kept = crate::rules::epochs_kept(Some(&rules), self.window, &self.grid);
        if kept > before {
            warn!(
                rules = %rules_name(checksum),
                kept_before = before,
                kept_now = kept,
                "a window or rate of the new rules reaches further back than the history kept: until it has filled, it uses what is kept"
            );
            self.kept.store(kept, Ordering::Relaxed);
        }
        self.book.add(
            checksum,
            crate::rules::alert_rules(&rules, &self.grid, &self.book),
        );
        self.catalog().insert(checksum, rules);
        info!(
            was = %rules_name(loaded.1),
            now = %rules_name(checksum),
            "rules reloaded: they apply from the epoch every worker of the cluster has reached once each process has them"
        );
        *loaded = (loaded.0 + 1, checksum);
        Ok(true)
    }

    /// Starts the thread that reloads `path` at each SIGHUP.
    pub(crate) fn watch_sighup(self: &Arc<Self>, path: PathBuf) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let rules = Arc::clone(self);
        std::thread::Builder::new()
            .name("hygroflow-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match rules.reload(&path) {
                        Ok(true) => {
                            process_metrics().rules_reloads.inc();
                        }
                        Ok(false) => info!(
                            file = %escape(&path.display().to_string()),
                            "SIGHUP: the rules file holds the rules in force; nothing changes"
                        ),
                        Err(e) => {
                            process_metrics().rules_reload_failures.inc();
                            error!("SIGHUP: {e}; the rules in force stay");
                        }
                    }
                }
            })?;
        Ok(())
    }
}

/// Without a rules file, SIGHUP has nothing to reload: it is logged, and does not end the
/// job as it would by default.
pub(crate) fn ignore_sighup() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("hygroflow-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                info!("SIGHUP: the rules are built in or off (--rules): nothing to reload");
            }
        })?;
    Ok(())
}
