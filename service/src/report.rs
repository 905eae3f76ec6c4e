//! What a command returns and how the binaries print it: the text form on stdout (what a
//! script reads), a summary for a human on stderr, or the whole report as JSON.

use serde::Serialize;

/// A command's result, printable as text or JSON.
pub trait Report: Serialize {
    /// The text form for stdout (what scripts read without `--json`); no final newline.
    fn text(&self) -> String;

    /// A note for a human on stderr, if any.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// Prints a report: pretty JSON when `json`, else its summary on stderr and its text on
/// stdout.
pub fn emit<R: Report>(report: &R, json: bool) -> Result<(), serde_json::Error> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(summary) = report.summary() {
        eprintln!("{summary}");
    }
    let text = report.text();
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}
