//! `hygroflow rules`: prints the rules in force, as a TOML file that reads back the same.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::{Rules, RulesSource};
use crate::config::ConfigError;
use crate::epoch::EpochGrid;
use crate::flags;

/// Flags of `rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// `builtin`, `none`, or a TOML rules file that replaces the built-in rules entirely.
    #[arg(
        long,
        default_value = "builtin",
        value_name = "builtin|none|FILE",
        value_parser = super::source
    )]
    pub rules: RulesSource,
    /// Epoch (batch) length the windows are whole multiples of, from 1ms to 1y, as for `run`.
    #[arg(
        long,
        default_value = "3s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::from_millis(1))
    )]
    pub epoch: Duration,
}

impl RulesArgs {
    /// Checks the rules and writes them to `out` as TOML.
    pub fn write(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let grid = EpochGrid::new(self.epoch).ok_or_else(|| {
            ConfigError::Epoch(humantime::format_duration(self.epoch).to_string())
        })?;
        let text = match Rules::load(&self.rules, grid.len()).map_err(ConfigError::from)? {
            Some(rules) => rules.to_toml(),
            None => "# --rules none: no rules, alerts are off.\n".to_owned(),
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}
