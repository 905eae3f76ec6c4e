//! The Prometheus text format (version 0.0.4), written one way for both servers: every
//! family gets its `# HELP` and `# TYPE` lines before its samples, and [`Text::family`]
//! checks the naming conventions (a counter ends in `_total`; units are base units and come
//! last, `_bytes` or `_seconds`, before `_total` for counters), so a badly named metric
//! fails the servers' tests instead of reaching a dashboard. CI also runs `promtool check
//! metrics` on the real answers (`tests/tests/metrics.rs`).

use std::fmt::{Display, Write};

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Why a metric name breaks the conventions.
pub fn naming_problem(name: &str, kind: Kind) -> Option<String> {
    let valid = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if !valid || name.is_empty() {
        return Some(format!("{name}: use lower-case letters, digits and _"));
    }
    let counter = name.ends_with("_total");
    match kind {
        Kind::Counter if !counter => return Some(format!("{name}: a counter ends in _total")),
        Kind::Gauge | Kind::Histogram if counter => {
            return Some(format!("{name}: only counters end in _total"));
        }
        _ => {}
    }
    let stem = name.strip_suffix("_total").unwrap_or(name);
    for (unit, base) in [
        ("_milliseconds", "_seconds"),
        ("_ms", "_seconds"),
        ("_kilobytes", "_bytes"),
        ("_megabytes", "_bytes"),
    ] {
        if stem.contains(unit) {
            return Some(format!("{name}: use the base unit {base}"));
        }
    }
    for unit in ["bytes", "seconds"] {
        if stem.contains(&format!("_{unit}_")) {
            return Some(format!("{name}: the unit _{unit} comes last"));
        }
    }
    None
}

/// A `/metrics` answer being written.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// An empty answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts family `name`: its `# HELP` and `# TYPE` lines. A name that breaks the
    /// conventions ([`naming_problem`]) is a programming error: it panics in debug builds
    /// (every test renders every family) and is written as it is in release builds.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(
            naming_problem(name, kind).is_none(),
            "{}",
            naming_problem(name, kind).unwrap_or_default()
        );
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample: `name{labels} value` (the family's name, or its `_bucket`, `_sum`,
    /// `_count` for a histogram). Label values are escaped.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Reads one unlabelled sample from Prometheus text (for tests and tools).
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// Families in `text` whose samples come without a `# HELP` or `# TYPE` line before them.
pub fn undocumented(text: &str) -> Vec<String> {
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashMap::new();
    let mut missing = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            typed.insert(name, words.next().unwrap_or_default().to_string());
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            let name = line
                .split(['{', ' '])
                .next()
                .unwrap_or_default()
                .to_string();
            let family = if typed.contains_key(&name) {
                name.clone()
            } else {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                    .map_or(name.clone(), str::to_string)
            };
            let documented = helped.contains(&family) && typed.contains_key(&family);
            if !documented && !missing.contains(&family) {
                missing.push(family);
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        assert_eq!(
            naming_problem("dsi_node_served_bytes_total", Kind::Counter),
            None
        );
        assert_eq!(
            naming_problem("dsi_oracle_ingest_seconds", Kind::Histogram),
            None
        );
        assert_eq!(naming_problem("dsi_node_receipts_held", Kind::Gauge), None);
        for (name, kind) in [
            ("dsi_node_served_bytes", Kind::Counter),
            ("dsi_node_held_total", Kind::Gauge),
            ("dsi_node_bytes_served_total", Kind::Counter),
            ("dsi_close_ms", Kind::Gauge),
            ("Dsi_node", Kind::Gauge),
        ] {
            assert!(naming_problem(name, kind).is_some(), "{name}");
        }
    }

    #[test]
    fn families_are_documented_and_labels_escaped() {
        let mut text = Text::new();
        text.single("a_total", Kind::Counter, "A.", 1);
        text.family("b_seconds", Kind::Histogram, "B.")
            .sample("b_seconds_bucket", &[("le", "+Inf")], 2)
            .sample("b_seconds_sum", &[], 0.5)
            .sample("b_seconds_count", &[], 2);
        text.family("c", Kind::Gauge, "C.")
            .sample("c", &[("why", "a \"b\"")], 3);
        let text = text.finish();
        assert!(text.contains("c{why=\"a \\\"b\\\"\"} 3"), "{text}");
        assert_eq!(undocumented(&text), Vec::<String>::new());
        assert_eq!(sample(&text, "a_total"), Some(1));
        assert_eq!(undocumented("x 1\n"), vec!["x".to_string()]);
    }
}
