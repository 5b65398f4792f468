//! Index names, spelled in one place.
//!
//! Jaeger query finds spans, services and dependencies only under the names
//! it derives from its own `--es.index-prefix`, so every process here must
//! spell them exactly as Jaeger does:
//!
//! - daily indices are `<prefix>jaeger-<family>-YYYY-MM-DD`, the UTC day of
//!   the document's event time (span start, window start), never the ingest
//!   time, so late data lands where queries look for it;
//! - hourly span indices are `<prefix>jaeger-span-YYYY-MM-DD-HH`, the UTC
//!   hour of the span's start (Jaeger's `--es.index-rollover-frequency-spans
//!   hour`, date layout `2006-01-02-15`);
//! - in rollover mode writes go to `<prefix>jaeger-<family>-write` and reads
//!   to `<prefix>jaeger-<family>-read`, the first index being
//!   `<prefix>jaeger-<family>-000001` (Jaeger's `--es.use-aliases`);
//! - `<prefix>` is the `index_prefix` setting followed by `-`, or nothing;
//! - the `-` between the date's parts is Jaeger's default
//!   `--es.index-date-separator`; another one ([`DateSeparator`], e.g. `.`
//!   for `jaeger-span-2026.12.07`) goes between every part of Jaeger's
//!   indices, as Jaeger writes them.
//!
//! Other daily indices (the service graph) follow the same
//! `<base>-YYYY-MM-DD` rule through [`daily`].

use time::OffsetDateTime;

/// One of Jaeger's index families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Span documents.
    Span,
    /// Service/operation pairs.
    Service,
    /// Dependency links.
    Dependencies,
}

impl Family {
    /// The family's word in index names.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Span => "span",
            Family::Service => "service",
            Family::Dependencies => "dependencies",
        }
    }
}

/// What goes between the year, month, day (and hour) in the names of
/// Jaeger's dated indices: Jaeger's `--es.index-date-separator`, `-` unless
/// a deployment chose otherwise (Jaeger v2 spells the same choice as a
/// `date_layout` such as `"2006.01.02"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct DateSeparator(String);

impl TryFrom<String> for DateSeparator {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        DateSeparator::new(&text)
    }
}

impl Default for DateSeparator {
    fn default() -> Self {
        DateSeparator("-".to_owned())
    }
}

impl DateSeparator {
    /// Most characters a separator may have.
    pub const MAX_LEN: usize = 8;

    /// `text` if it can sit inside an index name: empty, or at most
    /// [`Self::MAX_LEN`] of `-`, `_`, `.` and `+`. Letters and digits would
    /// make the date unreadable, and the engines refuse most other
    /// punctuation in index names. The error says why.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.len() > Self::MAX_LEN {
            return Err(format!(
                "index date separator {text:?} is longer than {} characters",
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = text.chars().find(|c| !matches!(c, '-' | '_' | '.' | '+')) {
            return Err(format!(
                "index date separator {text:?} holds {bad:?}: it may hold only '-', '_', '.' and '+' (or be empty)"
            ));
        }
        Ok(DateSeparator(text.to_owned()))
    }

    /// The separator as written between a date's parts.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The prefix of every Jaeger index name, separator included, and how the
/// names' dates are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefix {
    text: String,
    date_separator: DateSeparator,
}

impl Prefix {
    /// From the `index_prefix` setting: `prod` gives `prod-`, as Jaeger
    /// does; empty stays empty. Dates are written `YYYY-MM-DD`.
    pub fn new(index_prefix: &str) -> Self {
        let text = if index_prefix.is_empty() {
            String::new()
        } else {
            format!("{index_prefix}-")
        };
        Prefix {
            text,
            date_separator: DateSeparator::default(),
        }
    }

    /// Dated names with `separator` between the date's parts.
    pub fn with_date_separator(self, separator: DateSeparator) -> Self {
        Prefix {
            date_separator: separator,
            ..self
        }
    }

    /// The prefix with its separator (empty or `name-`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `<prefix>jaeger-<family>`: the template name, and the stem of every
    /// index and alias of the family.
    pub fn base(&self, family: Family) -> String {
        format!("{}jaeger-{}", self.text, family.as_str())
    }

    /// The daily index of `family` holding event time `micros`. Written
    /// piece by piece: the ingester names an index for every document.
    pub fn daily(&self, family: Family, micros: i64) -> String {
        let mut name = String::with_capacity(self.text.len() + 30);
        name.push_str(&self.text);
        name.push_str("jaeger-");
        name.push_str(family.as_str());
        name.push('-');
        push_day(&mut name, micros, self.date_separator.as_str());
        name
    }

    /// The hourly index of `family` holding event time `micros`:
    /// [`Prefix::daily`]'s name followed by the separator and `HH`.
    pub fn hourly(&self, family: Family, micros: i64) -> String {
        let mut name = self.daily(family, micros);
        name.push_str(self.date_separator.as_str());
        push_hour(&mut name, micros);
        name
    }

    /// The pattern matching every index of `family`.
    pub fn pattern(&self, family: Family) -> String {
        pattern(&self.base(family))
    }

    /// The alias written to in rollover mode.
    pub fn write_alias(&self, family: Family) -> String {
        format!("{}-write", self.base(family))
    }

    /// The alias read from in rollover mode.
    pub fn read_alias(&self, family: Family) -> String {
        format!("{}-read", self.base(family))
    }

    /// The index the write alias points to before the first rollover.
    pub fn first_rollover_index(&self, family: Family) -> String {
        format!("{}-000001", self.base(family))
    }
}

/// `<base>-YYYY-MM-DD` for event time `micros`.
pub fn daily(base: &str, micros: i64) -> String {
    let mut name = String::with_capacity(base.len() + 11);
    name.push_str(base);
    name.push('-');
    push_day(&mut name, micros, "-");
    name
}

/// `<base>-*`: every daily index (and rollover index) of `base`.
pub fn pattern(base: &str) -> String {
    format!("{base}-*")
}

/// `YYYY-MM-DD` of a UTC instant in microseconds. Instants beyond what a
/// date can hold (a corrupt timestamp) go to the first or last day there is,
/// so such documents gather in one index instead of failing.
pub fn day(micros: i64) -> String {
    let mut text = String::with_capacity(10);
    push_day(&mut text, micros, "-");
    text
}

/// Appends [`day`]'s text to `out`, with `separator` between its parts.
fn push_day(out: &mut String, micros: i64, separator: &str) {
    let (year, month, day) =
        match OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000) {
            Ok(t) => (t.year(), u8::from(t.month()), t.day()),
            Err(_) if micros < 0 => (0, 1, 1),
            Err(_) => (9999, 12, 31),
        };
    match u32::try_from(year) {
        Ok(year) => push_padded(out, year, 4),
        // Years before 0 (a corrupt timestamp): rare enough for `format!`.
        Err(_) => out.push_str(&format!("{year:04}")),
    }
    out.push_str(separator);
    push_padded(out, u32::from(month), 2);
    out.push_str(separator);
    push_padded(out, u32::from(day), 2);
}

/// Appends the two-digit UTC hour of `micros`; instants beyond what a date
/// can hold take the hour of the day [`push_day`] gives them.
fn push_hour(out: &mut String, micros: i64) {
    let hour = match OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000) {
        Ok(t) => t.hour(),
        Err(_) if micros < 0 => 0,
        Err(_) => 23,
    };
    push_padded(out, u32::from(hour), 2);
}

/// `n` in decimal, zero-padded to `width` digits (`n` has at most `width`).
fn push_padded(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (n / 10u32.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// How much of the spans' time one span index holds.
///
/// Every span delivered again goes to the index its first copy went to,
/// because the index is named from the span's own start, so exactly once
/// holds across indices of either length. Hourly indices are for
/// deployments whose Jaeger query already reads them
/// (`--es.index-rollover-frequency-spans=hour`; in Jaeger v2
/// `indices.spans.rollover_frequency: hour` with `date_layout:
/// "2006-01-02-15"`), or whose daily indices grow too large to handle;
/// they cost 24 times the indices, each with its shards. Each span's id is
/// looked up in an hour's index: raw loads in start order cost the engine a
/// sixth less where each hourly index holds 50,000 spans, while through
/// the ingester the benchmark found no saving, neither on a day of spans
/// packed into seconds nor on two hours (docs/benchmarks.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanIndexPeriod {
    /// `…-YYYY-MM-DD`, Jaeger's default.
    #[default]
    Day,
    /// `…-YYYY-MM-DD-HH`.
    Hour,
}

impl SpanIndexPeriod {
    /// The setting's value as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanIndexPeriod::Day => "day",
            SpanIndexPeriod::Hour => "hour",
        }
    }
}

/// Where span and service documents go: daily (or, for spans, hourly)
/// indices, or the write aliases in rollover mode.
#[derive(Debug, Clone)]
pub struct IndexNames {
    prefix: Prefix,
    aliases: bool,
    span_period: SpanIndexPeriod,
}

impl IndexNames {
    /// Daily indices; `index_prefix` may be empty.
    pub fn new(index_prefix: &str) -> Self {
        IndexNames {
            prefix: Prefix::new(index_prefix),
            aliases: false,
            span_period: SpanIndexPeriod::Day,
        }
    }

    /// Span indices of `period` instead of daily ones; service indices stay
    /// daily, as Jaeger's `--es.index-rollover-frequency-services` defaults.
    /// No effect in rollover mode, which writes to the alias.
    pub fn with_span_period(self, period: SpanIndexPeriod) -> Self {
        IndexNames {
            span_period: period,
            ..self
        }
    }

    /// Dated names with `separator` between the date's parts (Jaeger's
    /// `--es.index-date-separator`).
    pub fn with_date_separator(self, separator: DateSeparator) -> Self {
        IndexNames {
            prefix: self.prefix.with_date_separator(separator),
            ..self
        }
    }

    /// Rollover mode: every document goes to the `…-write` alias, which an
    /// index lifecycle policy or Jaeger's rollover tool moves to new indices.
    pub fn with_aliases(index_prefix: &str) -> Self {
        IndexNames {
            aliases: true,
            ..Self::new(index_prefix)
        }
    }

    /// The span index for a span starting at `start_micros`.
    pub fn span_index(&self, start_micros: u64) -> String {
        match self.span_period {
            SpanIndexPeriod::Hour if !self.aliases => {
                let micros = i64::try_from(start_micros).unwrap_or(i64::MAX);
                self.prefix.hourly(Family::Span, micros)
            }
            _ => self.index(Family::Span, start_micros),
        }
    }

    /// The service index for a span starting at `start_micros`.
    pub fn service_index(&self, start_micros: u64) -> String {
        self.index(Family::Service, start_micros)
    }

    fn index(&self, family: Family, start_micros: u64) -> String {
        if self.aliases {
            self.prefix.write_alias(family)
        } else {
            let micros = i64::try_from(start_micros).unwrap_or(i64::MAX);
            self.prefix.daily(family, micros)
        }
    }

    /// Whether documents go to write aliases.
    pub fn uses_aliases(&self) -> bool {
        self.aliases
    }

    /// The prefix of all names.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The piecewise day text is `format!`'s, over the whole range a
    /// timestamp can name, corrupt ones included.
    #[test]
    fn day_text_matches_formatting_everywhere() {
        let reference = |micros: i64| match OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(micros) * 1000,
        ) {
            Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            Err(_) if micros < 0 => "0000-01-01".into(),
            Err(_) => "9999-12-31".into(),
        };
        let day_us = 86_400_000_000i64;
        let mut samples = vec![0, -1, 1, i64::MIN, i64::MAX, day_us - 1, day_us];
        // Every 37th day from year -9999 to 9999 and past both ends.
        let mut micros = -400_000_000_000_000_000i64;
        while micros < 400_000_000_000_000_000 {
            samples.push(micros);
            micros += 37 * day_us + 12_345;
        }
        for micros in samples {
            assert_eq!(day(micros), reference(micros), "{micros}");
            assert_eq!(
                Prefix::new("p").daily(Family::Span, micros),
                format!("p-jaeger-span-{}", reference(micros))
            );
        }
    }

    /// 2025-12-31T23:59:59.999999Z.
    const LAST_MICRO_OF_2025: i64 = 1_767_225_599_999_999;

    #[test]
    fn daily_names_follow_jaeger() {
        let none = Prefix::new("");
        assert_eq!(
            none.daily(Family::Span, LAST_MICRO_OF_2025),
            "jaeger-span-2025-12-31"
        );
        assert_eq!(
            none.daily(Family::Service, LAST_MICRO_OF_2025 + 1),
            "jaeger-service-2026-01-01",
            "UTC day boundary"
        );
        let prod = Prefix::new("prod");
        assert_eq!(prod.as_str(), "prod-");
        assert_eq!(
            prod.daily(Family::Dependencies, 0),
            "prod-jaeger-dependencies-1970-01-01"
        );
        assert_eq!(prod.base(Family::Span), "prod-jaeger-span");
        assert_eq!(prod.pattern(Family::Service), "prod-jaeger-service-*");
        assert_eq!(daily("graph", 0), "graph-1970-01-01");
        assert_eq!(pattern("graph"), "graph-*");
    }

    #[test]
    fn rollover_names_follow_jaeger() {
        let prod = Prefix::new("prod");
        assert_eq!(prod.write_alias(Family::Span), "prod-jaeger-span-write");
        assert_eq!(prod.read_alias(Family::Service), "prod-jaeger-service-read");
        assert_eq!(
            prod.first_rollover_index(Family::Span),
            "prod-jaeger-span-000001"
        );
    }

    #[test]
    fn index_names_pick_daily_or_alias() {
        let daily = IndexNames::new("");
        assert_eq!(
            daily.span_index(LAST_MICRO_OF_2025 as u64),
            "jaeger-span-2025-12-31"
        );
        assert!(!daily.uses_aliases());
        let names = IndexNames::with_aliases("prod");
        assert_eq!(names.span_index(0), "prod-jaeger-span-write");
        assert_eq!(names.service_index(0), "prod-jaeger-service-write");
        assert_eq!(
            IndexNames::with_aliases("").span_index(0),
            "jaeger-span-write"
        );
        assert_eq!(names.prefix().as_str(), "prod-");
    }

    #[test]
    fn hourly_span_names_follow_jaegers_hour_layout() {
        let names = IndexNames::new("prod").with_span_period(SpanIndexPeriod::Hour);
        assert_eq!(
            names.span_index(LAST_MICRO_OF_2025 as u64),
            "prod-jaeger-span-2025-12-31-23"
        );
        assert_eq!(
            names.span_index(LAST_MICRO_OF_2025 as u64 + 1),
            "prod-jaeger-span-2026-01-01-00",
            "UTC hour and day boundary"
        );
        let one_hour = 3_600_000_000u64;
        assert_eq!(
            names.span_index(LAST_MICRO_OF_2025 as u64 + 1 + 13 * one_hour + 59),
            "prod-jaeger-span-2026-01-01-13"
        );
        // Services stay daily, as Jaeger reads them by default.
        assert_eq!(
            names.service_index(LAST_MICRO_OF_2025 as u64),
            "prod-jaeger-service-2025-12-31"
        );
        // Rollover mode writes to the alias whatever the period.
        let aliased = IndexNames::with_aliases("prod").with_span_period(SpanIndexPeriod::Hour);
        assert_eq!(aliased.span_index(0), "prod-jaeger-span-write");
        assert_eq!(
            IndexNames::new("")
                .with_span_period(SpanIndexPeriod::Hour)
                .span_index(u64::MAX),
            "jaeger-span-9999-12-31-23"
        );
    }

    /// The hour text is `time`'s, every 7,919 seconds over two centuries.
    #[test]
    fn hour_text_matches_formatting() {
        let names = IndexNames::new("").with_span_period(SpanIndexPeriod::Hour);
        let mut micros = 0i64;
        while micros < 7_258_118_400_000_000 {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
            assert_eq!(
                names.span_index(micros as u64),
                format!(
                    "jaeger-span-{:04}-{:02}-{:02}-{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour()
                ),
                "{micros}"
            );
            micros += 7_919_000_123;
        }
    }

    #[test]
    fn impossible_instants_gather_at_the_ends() {
        assert_eq!(day(i64::MAX), "9999-12-31");
        assert_eq!(
            IndexNames::new("").span_index(u64::MAX),
            "jaeger-span-9999-12-31"
        );
        assert_eq!(day(i64::MIN), "0000-01-01");
        assert_eq!(day(-1), "1969-12-31");
    }

    #[test]
    fn date_separator_goes_between_every_part_as_jaeger_writes_it() {
        let dot = DateSeparator::new(".").unwrap();
        let names = IndexNames::new("prod").with_date_separator(dot.clone());
        assert_eq!(
            names.span_index(LAST_MICRO_OF_2025 as u64),
            "prod-jaeger-span-2025.12.31"
        );
        assert_eq!(
            names.service_index(LAST_MICRO_OF_2025 as u64 + 1),
            "prod-jaeger-service-2026.01.01"
        );
        // Jaeger's hour layout with a separator: "2006" sep "01" sep "02" sep "15".
        let hourly = names.with_span_period(SpanIndexPeriod::Hour);
        assert_eq!(
            hourly.span_index(LAST_MICRO_OF_2025 as u64),
            "prod-jaeger-span-2025.12.31.23"
        );
        let dependencies = Prefix::new("").with_date_separator(DateSeparator::new("").unwrap());
        assert_eq!(
            dependencies.daily(Family::Dependencies, LAST_MICRO_OF_2025),
            "jaeger-dependencies-20251231"
        );
        // Patterns, aliases and template names have no date to separate.
        let prefix = Prefix::new("prod").with_date_separator(dot);
        assert_eq!(prefix.pattern(Family::Span), "prod-jaeger-span-*");
        assert_eq!(prefix.write_alias(Family::Span), "prod-jaeger-span-write");
        assert_eq!(
            IndexNames::with_aliases("prod")
                .with_date_separator(DateSeparator::new("_").unwrap())
                .span_index(0),
            "prod-jaeger-span-write"
        );
        // Other daily indices keep `-`.
        assert_eq!(daily("graph", LAST_MICRO_OF_2025), "graph-2025-12-31");
    }

    #[test]
    fn date_separator_refuses_what_an_index_name_cannot_hold() {
        for good in ["-", ".", "_", "", "+", "--", "._"] {
            assert_eq!(DateSeparator::new(good).unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("/", "'/'"),
            (" ", "' '"),
            ("a", "'a'"),
            ("*", "'*'"),
            (":", "':'"),
            ("---------", "longer than 8"),
        ] {
            let error = DateSeparator::new(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }
}
