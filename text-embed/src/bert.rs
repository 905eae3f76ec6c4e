//! A BERT encoder (the architecture of MiniLM and most sentence-embedding models) read from
//! `safetensors` weights and run in plain Rust: no threads, no SIMD intrinsics, so the same
//! code runs natively and in `wasm32-unknown-unknown`.

use std::collections::HashMap;

use serde::Deserialize;

use crate::EmbedError;

/// The parts of a Hugging Face `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest input, in tokens.
    pub max_position_embeddings: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Epsilon of every layer norm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation of the feed-forward layer (only `gelu` is supported).
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

struct Linear {
    /// `[out][in]`, row-major, as PyTorch stores it.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    /// `y = x W^T + b` for `n` rows of `x`.
    fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let out = self.bias.len();
        let mut y = vec![0.0; n * out];
        for (o, row) in self.weight.chunks_exact(self.inputs).enumerate() {
            for t in 0..n {
                y[t * out + o] =
                    dot(row, &x[t * self.inputs..(t + 1) * self.inputs]) + self.bias[o];
            }
        }
        y
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn apply(&self, x: &mut [f32]) {
        let h = self.weight.len();
        for row in x.chunks_exact_mut(h) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * inv * self.weight[i] + self.bias[i];
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// BERT weights in memory.
pub struct Bert {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("config", &self.config)
            .finish()
    }
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The tensors of a `safetensors` file (only `F32` ones can be read).
struct SafeTensors<'a> {
    tensors: HashMap<String, TensorInfo>,
    data: &'a [u8],
}

impl<'a> SafeTensors<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, EmbedError> {
        let bad = |why: String| EmbedError::Weights(why);
        let len_bytes: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("shorter than its 8-byte header length".into()))?;
        let header_len = usize::try_from(u64::from_le_bytes(len_bytes))
            .map_err(|_| bad("header length does not fit in memory".into()))?;
        let header = bytes
            .get(8..8usize.saturating_add(header_len))
            .ok_or_else(|| bad(format!("header of {header_len} bytes runs past the end")))?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
        raw.remove("__metadata__");
        let mut tensors = HashMap::new();
        for (name, value) in raw {
            let info: TensorInfo =
                serde_json::from_value(value).map_err(|e| bad(format!("tensor {name}: {e}")))?;
            tensors.insert(name, info);
        }
        Ok(Self {
            tensors,
            data: &bytes[8 + header_len..],
        })
    }

    /// The tensor `name` as f32s, checked to have `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| EmbedError::Weights(format!("no tensor {name}")))?;
        if info.dtype != "F32" {
            return Err(EmbedError::Weights(format!(
                "tensor {name} is {}, only F32 is supported",
                info.dtype
            )));
        }
        if info.shape != shape {
            return Err(EmbedError::Weights(format!(
                "tensor {name} has shape {:?}, the config says {shape:?}",
                info.shape
            )));
        }
        let [from, to] = info.data_offsets;
        let count: usize = shape.iter().product();
        let bytes = self
            .data
            .get(from..to)
            .filter(|b| b.len() == count * 4)
            .ok_or_else(|| {
                EmbedError::Weights(format!(
                    "tensor {name}: data offsets {from}..{to} are wrong"
                ))
            })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn linear(&self, prefix: &str, out: usize, inputs: usize) -> Result<Linear, EmbedError> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[out, inputs])?,
            bias: self.get(&format!("{prefix}.bias"), &[out])?,
            inputs,
        })
    }

    fn norm(&self, prefix: &str, h: usize, eps: f64) -> Result<LayerNorm, EmbedError> {
        Ok(LayerNorm {
            weight: self.get(&format!("{prefix}.weight"), &[h])?,
            bias: self.get(&format!("{prefix}.bias"), &[h])?,
            eps: eps as f32,
        })
    }
}

impl Bert {
    /// Reads the weights named as in Hugging Face's `BertModel` (with or without a `bert.`
    /// prefix) and checks every shape against `config`.
    pub fn from_safetensors(config: BertConfig, bytes: &[u8]) -> Result<Self, EmbedError> {
        if config.hidden_act != "gelu" {
            return Err(EmbedError::Weights(format!(
                "activation {:?} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(EmbedError::Weights(format!(
                "hidden size {} is not a multiple of {} heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        let st = SafeTensors::parse(bytes)?;
        let p = if st
            .tensors
            .contains_key("bert.embeddings.word_embeddings.weight")
        {
            "bert."
        } else {
            ""
        };
        let h = config.hidden_size;
        let f = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let at = format!("{p}encoder.layer.{l}");
            layers.push(Layer {
                query: st.linear(&format!("{at}.attention.self.query"), h, h)?,
                key: st.linear(&format!("{at}.attention.self.key"), h, h)?,
                value: st.linear(&format!("{at}.attention.self.value"), h, h)?,
                attention_out: st.linear(&format!("{at}.attention.output.dense"), h, h)?,
                attention_norm: st.norm(&format!("{at}.attention.output.LayerNorm"), h, eps)?,
                intermediate: st.linear(&format!("{at}.intermediate.dense"), f, h)?,
                output: st.linear(&format!("{at}.output.dense"), h, f)?,
                output_norm: st.norm(&format!("{at}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word: st.get(
                &format!("{p}embeddings.word_embeddings.weight"),
                &[config.vocab_size, h],
            )?,
            position: st.get(
                &format!("{p}embeddings.position_embeddings.weight"),
                &[config.max_position_embeddings, h],
            )?,
            token_type: {
                let name = format!("{p}embeddings.token_type_embeddings.weight");
                let rows = st.tensors.get(&name).map_or(0, |t| t.shape[0]);
                st.get(&name, &[rows.max(1), h])?
            },
            embedding_norm: st.norm(&format!("{p}embeddings.LayerNorm"), h, eps)?,
            layers,
            config,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The last hidden states (`ids.len()` rows of `hidden_size`) for one sequence without
    /// padding (every token attends to every other).
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>, EmbedError> {
        let h = self.config.hidden_size;
        let n = ids.len();
        if n > self.config.max_position_embeddings {
            return Err(EmbedError::TooLong {
                tokens: n,
                max: self.config.max_position_embeddings,
            });
        }
        let mut x = vec![0.0f32; n * h];
        for (t, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= self.config.vocab_size {
                return Err(EmbedError::Vocab(format!(
                    "token id {id} is outside the model's {} tokens",
                    self.config.vocab_size
                )));
            }
            let row = &mut x[t * h..(t + 1) * h];
            let word = &self.word[id * h..(id + 1) * h];
            let pos = &self.position[t * h..(t + 1) * h];
            for i in 0..h {
                row[i] = word[i] + pos[i] + self.token_type[i];
            }
        }
        self.embedding_norm.apply(&mut x);
        for layer in &self.layers {
            x = self.layer(layer, x, n);
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: Vec<f32>, n: usize) -> Vec<f32> {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let q = layer.query.forward(&x, n);
        let k = layer.key.forward(&x, n);
        let v = layer.value.forward(&x, n);
        let scale = 1.0 / (d as f32).sqrt();
        let mut context = vec![0.0f32; n * h];
        let mut scores = vec![0.0f32; n];
        for head in 0..heads {
            let cols = head * d..(head + 1) * d;
            for i in 0..n {
                let qi = &q[i * h..][cols.clone()];
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(qi, &k[j * h..][cols.clone()]) * scale;
                }
                softmax(&mut scores);
                let out = &mut context[i * h..][cols.clone()];
                for (j, &p) in scores.iter().enumerate() {
                    for (o, vj) in out.iter_mut().zip(&v[j * h..][cols.clone()]) {
                        *o += p * vj;
                    }
                }
            }
        }
        let mut attended = layer.attention_out.forward(&context, n);
        for (a, r) in attended.iter_mut().zip(&x) {
            *a += r;
        }
        layer.attention_norm.apply(&mut attended);
        let mut inner = layer.intermediate.forward(&attended, n);
        for v in &mut inner {
            *v = gelu(*v);
        }
        let mut out = layer.output.forward(&inner, n);
        for (o, r) in out.iter_mut().zip(&attended) {
            *o += r;
        }
        layer.output_norm.apply(&mut out);
        out
    }
}

/// Dot product with eight independent sums, so the compiler can vectorize it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// The exact (erf) GELU that BERT's `gelu` means.
fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// erf with an absolute error below 1.2e-7 (Numerical Recipes' `erfc` by Chebyshev fit),
/// far inside f32 precision.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (-1.0, -0.842_700_792_9),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn dot_and_softmax() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let want: f32 = a.iter().map(|v| v * v).sum();
        assert_eq!(dot(&a, &a), want);
        let mut s = [1.0, 2.0, 3.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[2] > s[1] && s[1] > s[0]);
    }

    #[test]
    fn bad_weights_are_refused_with_a_reason() {
        let config: BertConfig = serde_json::from_str(
            r#"{"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,
                "intermediate_size":8,"max_position_embeddings":8,"vocab_size":10}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = Bert::from_safetensors(config.clone(), b"short").unwrap_err();
        assert!(e.to_string().contains("8-byte"), "{e}");
        let mut file = 2u64.to_le_bytes().to_vec();
        file.extend_from_slice(b"{}");
        let e = Bert::from_safetensors(config, &file).unwrap_err();
        assert!(e.to_string().contains("no tensor"), "{e}");
    }
}
