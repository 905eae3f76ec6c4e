//! Reading vectors: NumPy `.npy` files and a small JSON format.
//!
//! - **`.npy`**: a 2-D array (`n x dim`) of little-endian `float32` (`<f4`) or `float64`
//!   (`<f8`, converted), C order, as written by `numpy.save`. Ids are the row numbers.
//! - **JSON**: either an array of arrays (`[[0.1, 0.2], [0.3, 0.4]]`, ids are row numbers),
//!   an object `{"ids": [10, 11], "vectors": [[...], [...]]}`, or an array of objects
//!   `[{"id": 10, "vector": [...]}, ...]`. Every vector must have the same length.

use crate::{VectorError, VectorId};

/// Vectors read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Vectors {
    /// Dimension.
    pub dim: usize,
    /// `n x dim` values, row-major.
    pub data: Vec<f32>,
    /// Ids, if the file gave them.
    pub ids: Option<Vec<VectorId>>,
}

impl Vectors {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// True without vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `.npy` or JSON, telling them apart by content (`.npy` starts with `\x93NUMPY`).
pub fn parse(bytes: &[u8]) -> Result<Vectors, VectorError> {
    if bytes.starts_with(b"\x93NUMPY") {
        parse_npy(bytes)
    } else {
        parse_json(bytes)
    }
}

/// Parses a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Vectors, VectorError> {
    let bad = |reason: String| VectorError::format(".npy file", reason);
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(bad("no \\x93NUMPY magic".into()));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = String::from_utf8_lossy(header);
    let field = |name: &str| -> Option<String> {
        let at = header.find(&format!("'{name}'"))?;
        let rest = &header[at + name.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_string())
    };
    let descr = field("descr").ok_or_else(|| bad("header has no descr".into()))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(bad(format!(
            "dtype {} is not supported (use float32 or float64)",
            descr.split(',').next().unwrap_or("?")
        )));
    };
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(
            "Fortran order is not supported (save a C-order array)".into()
        ));
    }
    let shape = field("shape").ok_or_else(|| bad("header has no shape".into()))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("bad shape {shape}")))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad shape ({inner})")))
        })
        .collect::<Result<_, _>>()?;
    let [n, dim] = dims[..] else {
        return Err(bad(format!("shape ({inner}) is not 2-D (n, dim)")));
    };
    let body = &bytes[start + header_len..];
    let expected = n.checked_mul(dim).and_then(|x| x.checked_mul(width));
    if expected != Some(body.len()) {
        return Err(bad(format!(
            "{} data bytes, shape ({n}, {dim}) needs {}",
            body.len(),
            expected.map_or("more".to_string(), |e| e.to_string())
        )));
    }
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok(Vectors {
        dim,
        data,
        ids: None,
    })
}

/// Writes `n x dim` f32 values as a `.npy` file (version 1.0).
pub fn to_npy(dim: usize, data: &[f32]) -> Vec<u8> {
    let n = data.len().checked_div(dim).unwrap_or(0);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {dim}), }}");
    // Pad so that the data starts on a 64-byte boundary, ending with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn json_vector(
    value: &serde_json::Value,
    what: impl Fn() -> String,
    out: &mut Vec<f32>,
) -> Result<usize, VectorError> {
    let arr = value.as_array().ok_or_else(|| {
        VectorError::format(
            "JSON vectors",
            format!("{} is not an array of numbers", what()),
        )
    })?;
    for x in arr {
        let f = x.as_f64().ok_or_else(|| {
            VectorError::format("JSON vectors", format!("{} has a non-number {x}", what()))
        })?;
        out.push(f as f32);
    }
    Ok(arr.len())
}

/// Parses the JSON format.
pub fn parse_json(bytes: &[u8]) -> Result<Vectors, VectorError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| VectorError::format("JSON vectors", e.to_string()))?;
    let mut data = Vec::new();
    let mut ids = None;
    let mut lens = Vec::new();
    match &value {
        serde_json::Value::Array(rows) => {
            let objects = rows.first().is_some_and(serde_json::Value::is_object);
            let mut id_list = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                if objects {
                    let id = row
                        .get("id")
                        .and_then(serde_json::Value::as_u64)
                        .ok_or_else(|| {
                            VectorError::format(
                                "JSON vectors",
                                format!("entry {i} has no integer \"id\""),
                            )
                        })?;
                    id_list.push(id);
                    let v = row.get("vector").unwrap_or(&serde_json::Value::Null);
                    lens.push(json_vector(
                        v,
                        || format!("entry {i}'s \"vector\""),
                        &mut data,
                    )?);
                } else {
                    lens.push(json_vector(row, || format!("row {i}"), &mut data)?);
                }
            }
            if objects {
                ids = Some(id_list);
            }
        }
        serde_json::Value::Object(map) => {
            let rows = map
                .get("vectors")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| {
                    VectorError::format("JSON vectors", "the object has no \"vectors\" array")
                })?;
            for (i, row) in rows.iter().enumerate() {
                lens.push(json_vector(row, || format!("vector {i}"), &mut data)?);
            }
            if let Some(list) = map.get("ids") {
                let list = list.as_array().ok_or_else(|| {
                    VectorError::format("JSON vectors", "\"ids\" is not an array")
                })?;
                let parsed: Option<Vec<u64>> = list.iter().map(serde_json::Value::as_u64).collect();
                let parsed = parsed.ok_or_else(|| {
                    VectorError::format("JSON vectors", "\"ids\" must be non-negative integers")
                })?;
                if parsed.len() != rows.len() {
                    return Err(VectorError::format(
                        "JSON vectors",
                        format!("{} ids for {} vectors", parsed.len(), rows.len()),
                    ));
                }
                ids = Some(parsed);
            }
        }
        _ => {
            return Err(VectorError::format(
                "JSON vectors",
                "expected an array of vectors or an object with \"vectors\"",
            ));
        }
    }
    let dim = lens.first().copied().unwrap_or(0);
    if let Some((i, &len)) = lens.iter().enumerate().find(|&(_, &l)| l != dim) {
        return Err(VectorError::format(
            "JSON vectors",
            format!("vector {i} has {len} values, the first has {dim}"),
        ));
    }
    Ok(Vectors { dim, data, ids })
}

/// Parses one query vector: a JSON array or comma/space-separated numbers.
pub fn parse_query(text: &str) -> Result<Vec<f32>, VectorError> {
    let text = text.trim();
    let bad = |reason: String| VectorError::format("query vector", reason);
    if text.starts_with('[') {
        let values: Vec<f64> = serde_json::from_str(text)
            .map_err(|e| bad(format!("not a JSON array of numbers: {e}")))?;
        return Ok(values.into_iter().map(|x| x as f32).collect());
    }
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f32>()
                .map_err(|_| bad(format!("{s:?} is not a number")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trips() {
        let data = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = to_npy(3, &data);
        assert_eq!(
            (bytes.len() - 24) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let v = parse(&bytes).unwrap();
        assert_eq!((v.dim, v.len(), v.data.clone()), (3, 2, data));
        let err = parse_npy(&bytes[..bytes.len() - 2]).unwrap_err();
        assert!(err.to_string().contains("data bytes"), "{err}");
    }

    #[test]
    fn json_forms() {
        let v = parse(br#"[[1, 2], [3, 4.5]]"#).unwrap();
        assert_eq!((v.dim, v.ids.clone()), (2, None));
        let v = parse(br#"{"ids": [7, 9], "vectors": [[1, 2], [3, 4]]}"#).unwrap();
        assert_eq!(v.ids, Some(vec![7, 9]));
        let v = parse(br#"[{"id": 5, "vector": [1, 2, 3]}]"#).unwrap();
        assert_eq!((v.dim, v.ids), (3, Some(vec![5])));
        let err = parse(br#"[[1, 2], [3]]"#).unwrap_err();
        assert!(err.to_string().contains("vector 1 has 1 values"), "{err}");
        assert!(
            parse(br#"[[1, "x"]]"#)
                .unwrap_err()
                .to_string()
                .contains("non-number")
        );
        assert_eq!(parse_query("1, 2 3").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parse_query("[0.5, -1]").unwrap(), vec![0.5, -1.0]);
        assert!(parse_query("1, x").is_err());
    }
}
