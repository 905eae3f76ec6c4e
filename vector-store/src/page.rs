//! Page bytes: one list's vector ids and either its exact f32 vectors or their 8-bit codes.
//!
//! ```text
//! magic "DSIVPG1\0" | kind u8 (0 = f32, 1 = sq8) | dim u32 | count u32
//! | ids: count x u64 | data: count x dim x (f32 | u8)
//! ```
//! All integers and floats little-endian. The encoding is canonical: the same list always
//! gives the same bytes and therefore the same chunk id.

use crate::{VectorError, VectorId};

const MAGIC: &[u8; 8] = b"DSIVPG1\0";
const HEADER: usize = 8 + 1 + 4 + 4;

/// How an index stores list contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One page per list with exact f32 vectors.
    F32,
    /// Per list, a page of 8-bit scalar-quantized codes (a quarter of the bytes) searched
    /// first, and a page of exact vectors fetched only to re-rank the best candidates.
    Sq8,
}

impl Encoding {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::Sq8 => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::F32),
            1 => Some(Self::Sq8),
            _ => None,
        }
    }
}

impl core::fmt::Display for Encoding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Sq8 => "sq8",
        })
    }
}

/// The per-dimension range used to quantize: `x ~ min + code * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sq8Params {
    /// Smallest value per dimension.
    pub min: Vec<f32>,
    /// Step per code per dimension (`(max - min) / 255`, 0 for a constant dimension).
    pub scale: Vec<f32>,
}

impl Sq8Params {
    /// The range of a set of `dim`-dimensional vectors (row-major).
    pub fn fit(dim: usize, data: &[f32]) -> Self {
        let mut min = vec![f32::INFINITY; dim];
        let mut max = vec![f32::NEG_INFINITY; dim];
        for row in data.chunks_exact(dim) {
            for (d, &x) in row.iter().enumerate() {
                min[d] = min[d].min(x);
                max[d] = max[d].max(x);
            }
        }
        for d in 0..dim {
            if !min[d].is_finite() {
                min[d] = 0.0;
                max[d] = 0.0;
            }
        }
        let scale = min
            .iter()
            .zip(&max)
            .map(|(lo, hi)| (hi - lo) / 255.0)
            .collect();
        Self { min, scale }
    }

    /// Codes for one vector (values outside the fitted range are clamped).
    pub fn encode(&self, v: &[f32], out: &mut Vec<u8>) {
        for (d, &x) in v.iter().enumerate() {
            let code = if self.scale[d] > 0.0 {
                ((x - self.min[d]) / self.scale[d])
                    .round()
                    .clamp(0.0, 255.0) as u8
            } else {
                0
            };
            out.push(code);
        }
    }

    /// The approximate vector for some codes.
    pub fn decode(&self, codes: &[u8], out: &mut [f32]) {
        for (d, (&c, o)) in codes.iter().zip(out.iter_mut()).enumerate() {
            *o = self.min[d] + f32::from(c) * self.scale[d];
        }
    }
}

/// The contents of a page.
#[derive(Clone, Debug, PartialEq)]
pub enum PageData {
    /// Exact vectors, row-major.
    F32(Vec<f32>),
    /// 8-bit codes, row-major.
    Sq8(Vec<u8>),
}

/// A decoded page.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Dimension of every vector.
    pub dim: usize,
    /// Vector ids, in row order.
    pub ids: Vec<VectorId>,
    /// The rows.
    pub data: PageData,
}

impl Page {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for a page without vectors (a list emptied by deletes).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Exact vector `row` (f32 pages only).
    pub fn vector(&self, row: usize) -> Option<&[f32]> {
        match &self.data {
            PageData::F32(v) => v.get(row * self.dim..(row + 1) * self.dim),
            PageData::Sq8(_) => None,
        }
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, width) = match self.data {
            PageData::F32(_) => (0u8, 4),
            PageData::Sq8(_) => (1u8, 1),
        };
        let mut out = Vec::with_capacity(HEADER + self.ids.len() * (8 + self.dim * width));
        out.extend_from_slice(MAGIC);
        out.push(kind);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.ids.len() as u32).to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        match &self.data {
            PageData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            PageData::Sq8(c) => out.extend_from_slice(c),
        }
        out
    }

    /// Parses page bytes (already verified against their chunk id).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VectorError> {
        let bad = |reason: String| VectorError::format("page", reason);
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(bad("not a DSI vector page (bad magic)".into()));
        }
        let kind = bytes[8];
        let dim = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]) as usize;
        let count = u32::from_le_bytes([bytes[13], bytes[14], bytes[15], bytes[16]]) as usize;
        let width = match kind {
            0 => 4,
            1 => 1,
            k => return Err(bad(format!("unknown page kind {k}"))),
        };
        let expected = count
            .checked_mul(
                dim.checked_mul(width)
                    .and_then(|w| w.checked_add(8))
                    .unwrap_or(usize::MAX),
            )
            .and_then(|b| b.checked_add(HEADER));
        if expected != Some(bytes.len()) || dim == 0 {
            return Err(bad(format!(
                "{} bytes do not hold {count} vectors of dimension {dim}",
                bytes.len()
            )));
        }
        let body = &bytes[HEADER..];
        let (id_bytes, data) = body.split_at(count * 8);
        let ids = id_bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let data = if kind == 0 {
            PageData::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        } else {
            PageData::Sq8(data.to_vec())
        };
        Ok(Self { dim, ids, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_and_reject_truncation() {
        let page = Page {
            dim: 3,
            ids: vec![7, 9],
            data: PageData::F32(vec![1.0, 2.0, 3.0, -1.0, -2.5, 0.0]),
        };
        let bytes = page.to_bytes();
        assert_eq!(Page::from_bytes(&bytes).unwrap(), page);
        assert!(Page::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(
            Page::from_bytes(&wrong)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let codes = Page {
            dim: 2,
            ids: vec![1],
            data: PageData::Sq8(vec![0, 255]),
        };
        assert_eq!(Page::from_bytes(&codes.to_bytes()).unwrap(), codes);
    }

    #[test]
    fn sq8_error_is_at_most_half_a_step() {
        let data = [0.0f32, 10.0, 1.0, -10.0, 0.5, 0.0];
        let params = Sq8Params::fit(2, &data);
        for row in data.chunks_exact(2) {
            let mut codes = Vec::new();
            params.encode(row, &mut codes);
            let mut back = [0.0f32; 2];
            params.decode(&codes, &mut back);
            for d in 0..2 {
                assert!((back[d] - row[d]).abs() <= params.scale[d] / 2.0 + 1e-6);
            }
        }
    }
}
