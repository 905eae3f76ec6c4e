//! # text-embed: sentence embeddings without a runtime
//!
//! Turns text into the vectors a `vector-store` index holds, with the same model that
//! embedded the corpus, natively and in the browser (`wasm32-unknown-unknown`): a BERT
//! encoder ([`bert`]) fed by BERT's uncased WordPiece tokenizer ([`tokenizer`]), mean pooling
//! over the tokens and optional L2 normalisation, as sentence-transformers models such as
//! `all-MiniLM-L6-v2` define them.
//!
//! A model travels as one [`bundle`] (`model.dsiemb`): ordinary swarm content, fetched and
//! verified chunk by chunk like any other, so a browser gets the model from seeders too.
//!
//! ```no_run
//! # fn main() -> Result<(), text_embed::EmbedError> {
//! let bundle = text_embed::Bundle::from_dir("all-MiniLM-L6-v2".as_ref())?;
//! let embedder = text_embed::Embedder::new(bundle)?;
//! let v = embedder.embed("The weather is lovely today.")?;
//! assert_eq!(v.len(), embedder.dim());
//! # Ok(()) }
//! ```
//!
//! No threads and no SIMD intrinsics: a sentence of about ten tokens is about 0.25 GFLOP for
//! MiniLM-L6, ~15 ms natively (release, one core; `embed-bench`) and ~30 ms in Chromium.

pub mod bert;
pub mod bundle;
pub mod tokenizer;

pub use bert::{Bert, BertConfig};
pub use bundle::{Bundle, EmbedderSettings, MODEL_CONTENT_NAME};
pub use tokenizer::Tokenizer;

/// Why a model could not be read or a text not embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model bundle or directory is incomplete or damaged.
    #[error("model bundle: {0}")]
    Bundle(String),
    /// The weights do not match the configuration.
    #[error("model weights: {0}")]
    Weights(String),
    /// The vocabulary is unusable.
    #[error("vocabulary: {0}")]
    Vocab(String),
    /// More tokens than the model has positions.
    #[error("{tokens} tokens are more than the model's {max} positions")]
    TooLong {
        /// Tokens given.
        tokens: usize,
        /// Positions the model has.
        max: usize,
    },
}

/// A tokenizer and an encoder: text in, one vector out.
#[derive(Debug)]
pub struct Embedder {
    tokenizer: Tokenizer,
    bert: Bert,
    settings: EmbedderSettings,
}

impl Embedder {
    /// Builds the embedder from a bundle (checks every tensor's shape).
    pub fn new(bundle: Bundle) -> Result<Self, EmbedError> {
        let config: BertConfig = serde_json::from_slice(&bundle.config)
            .map_err(|e| EmbedError::Bundle(format!("config.json: {e}")))?;
        let vocab = std::str::from_utf8(&bundle.vocab)
            .map_err(|_| EmbedError::Vocab("vocab.txt is not UTF-8".into()))?;
        let tokenizer = Tokenizer::from_vocab(vocab)?;
        if tokenizer.len() > config.vocab_size {
            return Err(EmbedError::Vocab(format!(
                "{} tokens in vocab.txt, the model has {}",
                tokenizer.len(),
                config.vocab_size
            )));
        }
        let mut settings = bundle.settings;
        settings.max_seq_length = settings
            .max_seq_length
            .clamp(2, config.max_position_embeddings.max(2));
        let bert = Bert::from_safetensors(config, &bundle.weights)?;
        Ok(Self {
            tokenizer,
            bert,
            settings,
        })
    }

    /// Reads a bundle's bytes and builds the embedder.
    pub fn from_bundle_bytes(bytes: &[u8]) -> Result<Self, EmbedError> {
        Self::new(Bundle::from_bytes(bytes)?)
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    /// Settings (name, longest input, normalisation).
    pub fn settings(&self) -> &EmbedderSettings {
        &self.settings
    }

    /// Token ids of `text` as the model sees them (cut to the longest input).
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.settings.max_seq_length)
    }

    /// The sentence vector of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let ids = self.tokens(text);
        let states = self.bert.forward(&ids)?;
        let h = self.dim();
        let mut v = vec![0.0f32; h];
        for row in states.chunks_exact(h) {
            for (a, b) in v.iter_mut().zip(row) {
                *a += b;
            }
        }
        let n = ids.len() as f32;
        for a in &mut v {
            *a /= n;
        }
        if self.settings.normalize {
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            for a in &mut v {
                *a /= norm;
            }
        }
        Ok(v)
    }
}
