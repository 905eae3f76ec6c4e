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

/// Times text embedding natively: model load, then every line of a text file embedded
/// ROUNDS times, reported per sentence and per token. The last line is a summary for
/// scripts.
#[derive(clap::Parser, Debug)]
#[command(name = "embed-bench", version)]
struct Args {
    /// The model directory (default: target/models/all-MiniLM-L6-v2, from
    /// `scripts/setup --model`).
    model_dir: Option<PathBuf>,
    /// The sentences, one per line (default: the browser page's examples).
    text_file: Option<PathBuf>,
    /// How many times every sentence is embedded.
    #[arg(default_value_t = 20, value_parser = positive)]
    rounds: usize,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive whole number")),
    }
}

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let args = <Args as clap::Parser>::parse();
    let model = args
        .model_dir
        .unwrap_or_else(|| root.join("target/models/all-MiniLM-L6-v2"));
    let texts = args
        .text_file
        .unwrap_or_else(|| root.join("vector-web/www/examples/sentences.txt"));
    let rounds = args.rounds;
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
