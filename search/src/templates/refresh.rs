//! How often new span and service indices make written documents visible
//! to searches (`index.refresh_interval`).
//!
//! The engine's own default is a refresh a second, skipped on shards that
//! nobody searched for 30 seconds (the next search then waits for one).
//! A span is searchable only after the first refresh that follows its bulk
//! write, so the interval is most of the delay between a span's
//! acknowledgement and Jaeger query finding it: with the engine's second,
//! that delay's p99 sits around 1.5 s at half load on two cores, with half
//! a second about 0.9 s (docs/benchmarks.md, "Freshness").

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The shortest interval accepted: below it the engine spends more on
/// writing tiny segments than it saves anyone.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval accepted; longer ones are almost certainly a unit
/// mistake.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// The configured refresh interval of new indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshInterval {
    /// Leave the setting out: the engine's default (one second, and no
    /// scheduled refresh on shards nobody searches).
    Engine,
    /// Set `index.refresh_interval` to this; shards refresh on schedule
    /// whether or not anyone searches them.
    Every(Duration),
}

impl Default for RefreshInterval {
    fn default() -> Self {
        RefreshInterval::Every(Duration::from_millis(500))
    }
}

impl RefreshInterval {
    /// Why the value is out of range, if it is.
    pub fn check(self) -> Result<(), String> {
        match self {
            RefreshInterval::Engine => Ok(()),
            RefreshInterval::Every(every)
                if (MIN_REFRESH_INTERVAL..=MAX_REFRESH_INTERVAL).contains(&every) =>
            {
                Ok(())
            }
            RefreshInterval::Every(every) => Err(format!(
                "{} is outside {}..={} (or \"engine\" for the engine's default)",
                humantime::format_duration(every),
                humantime::format_duration(MIN_REFRESH_INTERVAL),
                humantime::format_duration(MAX_REFRESH_INTERVAL)
            )),
        }
    }

    /// The index setting to add to a template, if any.
    pub fn index_settings(self) -> Map<String, Value> {
        match self {
            RefreshInterval::Engine => Map::new(),
            RefreshInterval::Every(every) => Map::from_iter([(
                "index.refresh_interval".to_owned(),
                Value::String(format!("{}ms", every.as_millis())),
            )]),
        }
    }
}

impl<'de> Deserialize<'de> for RefreshInterval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "engine" {
            return Ok(RefreshInterval::Engine);
        }
        humantime::parse_duration(text.trim())
            .map(RefreshInterval::Every)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is neither \"engine\" nor a duration such as 500ms: {e}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RefreshInterval, serde_json::Error> {
        serde_json::from_value(Value::String(text.into()))
    }

    #[test]
    fn reads_engine_or_a_duration_and_refuses_the_rest() {
        assert_eq!(parse("engine").unwrap(), RefreshInterval::Engine);
        assert_eq!(
            parse("2s").unwrap(),
            RefreshInterval::Every(Duration::from_secs(2))
        );
        let error = parse("often").unwrap_err().to_string();
        assert!(error.contains("\"often\""), "{error}");
    }

    #[test]
    fn range_is_checked() {
        assert!(RefreshInterval::Engine.check().is_ok());
        assert!(RefreshInterval::default().check().is_ok());
        let short = RefreshInterval::Every(Duration::from_millis(10)).check();
        assert!(short.unwrap_err().contains("10ms is outside"));
        assert!(
            RefreshInterval::Every(Duration::from_secs(7200))
                .check()
                .is_err()
        );
    }

    #[test]
    fn engine_default_adds_no_setting() {
        assert!(RefreshInterval::Engine.index_settings().is_empty());
        let set = RefreshInterval::Every(Duration::from_millis(1500)).index_settings();
        assert_eq!(set["index.refresh_interval"], "1500ms");
    }
}
