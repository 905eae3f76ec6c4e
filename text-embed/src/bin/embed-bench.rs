//! Times text embedding natively: model load, then every line of a text file embedded
//! several times, reported per sentence and per token.
//!
//!   cargo run --release -p text-embed --bin embed-bench [MODEL_DIR] [TEXT_FILE] [ROUNDS]
//!
//! Defaults: target/models/all-MiniLM-L6-v2 (`scripts/setup --model`), the example sentences
//! of the browser page, 20 rounds. The last line is a summary a script can read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use text_embed::{Bundle, Embedder};

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: embed-bench [MODEL_DIR] [TEXT_FILE] [ROUNDS]");
        return ExitCode::SUCCESS;
    }
    let model = args.first().map_or_else(
        || root.join("target/models/all-MiniLM-L6-v2"),
        PathBuf::from,
    );
    let texts = args.get(1).map_or_else(
        || root.join("vector-web/www/examples/sentences.txt"),
        PathBuf::from,
    );
    let rounds: usize = match args.get(2).map(|r| r.parse()) {
        None => 20,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("embed-bench: ROUNDS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let embedder = match Bundle::from_dir(&model).and_then(Embedder::new) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("embed-bench: {e} (run scripts/setup --model)");
            return ExitCode::from(2);
        }
    };
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let lines: Vec<String> = match std::fs::read_to_string(&texts) {
        Ok(t) => t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        Err(e) => {
            eprintln!("embed-bench: {}: {e}", texts.display());
            return ExitCode::from(2);
        }
    };
    if lines.is_empty() {
        eprintln!("embed-bench: {} has no text lines", texts.display());
        return ExitCode::from(2);
    }
    let tokens: usize = lines.iter().map(|l| embedder.tokens(l).len()).sum();
    let mut per_sentence = Vec::with_capacity(rounds * lines.len());
    let start = Instant::now();
    for _ in 0..rounds {
        for line in &lines {
            let t = Instant::now();
            if let Err(e) = embedder.embed(line) {
                eprintln!("embed-bench: {e}");
                return ExitCode::FAILURE;
            }
            per_sentence.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let total = start.elapsed().as_secs_f64();
    per_sentence.sort_by(f64::total_cmp);
    let p50 = per_sentence[per_sentence.len() / 2];
    let p95 = per_sentence[per_sentence.len() * 95 / 100];
    let tokens_per_s = (tokens * rounds) as f64 / total;
    println!(
        "model {} (dim {}): loaded in {load_ms:.0} ms",
        embedder.settings().name,
        embedder.dim()
    );
    println!(
        "{} sentences x {rounds} rounds, {:.1} tokens per sentence: p50 {p50:.2} ms, p95 {p95:.2} ms, {tokens_per_s:.0} tokens/s",
        lines.len(),
        tokens as f64 / lines.len() as f64
    );
    println!(
        "summary: load_ms={load_ms:.0} p50_ms={p50:.3} p95_ms={p95:.3} tokens_per_s={tokens_per_s:.0}"
    );
    ExitCode::SUCCESS
}
