//! The real all-MiniLM-L6-v2 (unpacked by `scripts/setup --model`) against published
//! reference figures: the token ids of BERT's uncased vocabulary and the similarity matrix
//! printed in the sentence-transformers quick start for this model.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use text_embed::{Bundle, Embedder};

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DSI_MODEL_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models/all-MiniLM-L6-v2"),
        PathBuf::from,
    );
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("DSI_REQUIRE_MODEL").is_none(),
        "no model in {} (DSI_REQUIRE_MODEL is set): run scripts/setup --model",
        dir.display()
    );
    eprintln!(
        "skipped: no model in {} (scripts/setup --model)",
        dir.display()
    );
    None
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_the_published_figures() {
    let Some(dir) = model_dir() else { return };
    let bundle = Bundle::from_dir(&dir).unwrap();
    assert_eq!(bundle.settings.max_seq_length, 256);
    assert!(bundle.settings.normalize);
    let embedder = Embedder::new(bundle.clone()).unwrap();
    assert_eq!(embedder.dim(), 384);

    // bert-base-uncased ids: [CLS] hello , world ! [SEP]
    assert_eq!(
        embedder.tokens("Hello, world!"),
        vec![101, 7592, 1010, 2088, 999, 102]
    );
    // Long input is cut to 256 tokens, [CLS] and [SEP] kept.
    let long = embedder.tokens(&"word ".repeat(1000));
    assert_eq!(long.len(), 256);
    assert_eq!((long[0], long[255]), (101, 102));

    let sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ];
    let vectors: Vec<Vec<f32>> = sentences
        .iter()
        .map(|s| embedder.embed(s).unwrap())
        .collect();
    for v in &vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // sentence-transformers' quick start prints, for all-MiniLM-L6-v2:
    // [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]
    let reference = [
        [1.0, 0.6660, 0.1046],
        [0.6660, 1.0, 0.1411],
        [0.1046, 0.1411, 1.0],
    ];
    for i in 0..3 {
        for j in 0..3 {
            let got = cosine(&vectors[i], &vectors[j]);
            eprintln!(
                "similarity({i},{j}) = {got:.6} (published {})",
                reference[i][j]
            );
            assert!(
                (got - reference[i][j]).abs() < 1e-4,
                "similarity({i},{j}) = {got:.5}, published {}",
                reference[i][j]
            );
        }
    }

    // The bundle (what the swarm carries) gives the same vectors.
    let from_bytes = Embedder::from_bundle_bytes(&bundle.to_bytes().unwrap()).unwrap();
    assert_eq!(from_bytes.embed(sentences[0]).unwrap(), vectors[0]);
    assert_eq!(from_bytes.settings().name, "all-MiniLM-L6-v2");
}

#[test]
fn damaged_weights_are_refused() {
    let Some(dir) = model_dir() else { return };
    let mut bundle = Bundle::from_dir(&dir).unwrap();
    bundle.weights.truncate(bundle.weights.len() / 2);
    let e = Embedder::new(bundle).unwrap_err().to_string();
    assert!(e.contains("data offsets"), "{e}");
}
