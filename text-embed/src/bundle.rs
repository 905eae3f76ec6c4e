//! The model bundle: one file holding everything an [`Embedder`](crate::Embedder) needs, so a
//! model is one piece of swarm content (content name [`MODEL_CONTENT_NAME`]).
//!
//! Layout (little-endian): the magic `DSIEMB1\n`, a `u32` entry count, then per entry a `u16`
//! name length, the UTF-8 name, a `u64` data length and the data. Entries: `embedder.json`
//! (pooling settings), `config.json` (the Hugging Face BERT config), `vocab.txt` and
//! `model.safetensors` (F32 weights).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmbedError;

/// Content name of a model bundle in the swarm.
pub const MODEL_CONTENT_NAME: &str = "model.dsiemb";

const MAGIC: &[u8; 8] = b"DSIEMB1\n";

/// How token states become one sentence vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderSettings {
    /// A label for people (the model's name).
    pub name: String,
    /// Longest input in tokens, `[CLS]` and `[SEP]` included; longer text is cut.
    pub max_seq_length: usize,
    /// Mean of the token states (the only pooling supported).
    pub pooling: String,
    /// Whether the vector is scaled to length 1.
    pub normalize: bool,
}

/// The files of a model, borrowed from a bundle or read from a directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Pooling settings.
    pub settings: EmbedderSettings,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `vocab.txt`.
    pub vocab: Vec<u8>,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| EmbedError::Bundle(format!("{}: {e}", path.display())))
}

fn read_json(dir: &Path, name: &str) -> Result<Option<serde_json::Value>, EmbedError> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read(dir, name)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| EmbedError::Bundle(format!("{}: {e}", path.display())))
}

impl Bundle {
    /// Reads a sentence-transformers model directory (`config.json`, `vocab.txt`,
    /// `model.safetensors`, and if present `sentence_bert_config.json`, `modules.json`,
    /// `1_Pooling/config.json`). Models that pool other than by mean are refused.
    pub fn from_dir(dir: &Path) -> Result<Self, EmbedError> {
        let config = read(dir, "config.json")?;
        let config_json: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| EmbedError::Bundle(format!("{}/config.json: {e}", dir.display())))?;
        let max_positions = config_json["max_position_embeddings"]
            .as_u64()
            .unwrap_or(512);
        let max_seq_length = read_json(dir, "sentence_bert_config.json")?
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(max_positions)
            .min(max_positions) as usize;
        if let Some(pooling) = read_json(dir, "1_Pooling/config.json")? {
            let mean = pooling["pooling_mode_mean_tokens"].as_bool() == Some(true);
            let others = [
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
            ]
            .iter()
            .any(|k| pooling[*k].as_bool() == Some(true));
            if !mean || others {
                return Err(EmbedError::Bundle(format!(
                    "{}/1_Pooling/config.json: only mean pooling is supported",
                    dir.display()
                )));
            }
        }
        let normalize = read_json(dir, "modules.json")?
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|modules| {
                modules.iter().any(|m| {
                    m["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("models.Normalize"))
                })
            });
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "model")
            .or_else(|| config_json["_name_or_path"].as_str().map(str::to_string))
            .unwrap_or_else(|| "model".into());
        Ok(Self {
            settings: EmbedderSettings {
                name,
                max_seq_length,
                pooling: "mean".into(),
                normalize,
            },
            config,
            vocab: read(dir, "vocab.txt")?,
            weights: read(dir, "model.safetensors")?,
        })
    }

    /// The bundle's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmbedError> {
        let settings = serde_json::to_vec(&self.settings)
            .map_err(|e| EmbedError::Bundle(format!("settings: {e}")))?;
        let entries: [(&str, &[u8]); 4] = [
            ("embedder.json", &settings),
            ("config.json", &self.config),
            ("vocab.txt", &self.vocab),
            ("model.safetensors", &self.weights),
        ];
        let mut out = Vec::with_capacity(64 + entries.iter().map(|e| e.1.len()).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (name, data) in entries {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// Reads a bundle, checking its framing and that every entry is there.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EmbedError> {
        let bad = |why: &str| EmbedError::Bundle(why.to_string());
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(bad("not a DSI model bundle (no DSIEMB1 magic)"));
        }
        let count = u32::from_le_bytes(r.array()?);
        let (mut settings, mut config, mut vocab, mut weights) = (None, None, None, None);
        for _ in 0..count {
            let name_len = u16::from_le_bytes(r.array()?) as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| bad("an entry name is not UTF-8"))?
                .to_string();
            let len = usize::try_from(u64::from_le_bytes(r.array()?))
                .map_err(|_| bad("an entry is larger than memory"))?;
            let data = r.take(len)?;
            match name.as_str() {
                "embedder.json" => settings = Some(data),
                "config.json" => config = Some(data.to_vec()),
                "vocab.txt" => vocab = Some(data.to_vec()),
                "model.safetensors" => weights = Some(data.to_vec()),
                _ => {}
            }
        }
        if r.at != bytes.len() {
            return Err(bad("trailing bytes after the last entry"));
        }
        let missing = |name: &str| EmbedError::Bundle(format!("the bundle has no {name}"));
        let settings: EmbedderSettings =
            serde_json::from_slice(settings.ok_or_else(|| missing("embedder.json"))?)
                .map_err(|e| EmbedError::Bundle(format!("embedder.json: {e}")))?;
        if settings.pooling != "mean" {
            return Err(EmbedError::Bundle(format!(
                "pooling {:?} is not supported (only mean)",
                settings.pooling
            )));
        }
        Ok(Self {
            settings,
            config: config.ok_or_else(|| missing("config.json"))?,
            vocab: vocab.ok_or_else(|| missing("vocab.txt"))?,
            weights: weights.ok_or_else(|| missing("model.safetensors"))?,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EmbedError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| EmbedError::Bundle("the bundle is cut short".into()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EmbedError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Bundle {
        Bundle {
            settings: EmbedderSettings {
                name: "tiny".into(),
                max_seq_length: 16,
                pooling: "mean".into(),
                normalize: true,
            },
            config: b"{}".to_vec(),
            vocab: b"[UNK]\n".to_vec(),
            weights: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let bytes = sample().to_bytes().unwrap();
        let back = Bundle::from_bytes(&bytes).unwrap();
        assert_eq!(back.settings, sample().settings);
        assert_eq!(back.weights, vec![1, 2, 3]);
        let e = Bundle::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(
            Bundle::from_bytes(&extra)
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
        assert!(
            Bundle::from_bytes(b"PK\x03\x04....")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
