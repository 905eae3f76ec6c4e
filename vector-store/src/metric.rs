use crate::VectorError;

/// How vectors are compared. Smaller distances are nearer for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine distance, `1 - cos(a, b)`, in [0, 2]. Vectors are normalized when stored and
    /// queries when asked.
    Cosine,
    /// Squared Euclidean distance.
    L2,
}

impl Metric {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Cosine => 0,
            Self::L2 => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Cosine),
            1 => Some(Self::L2),
            _ => None,
        }
    }

    /// Name as the CLI and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::L2 => "l2",
        }
    }

    /// Checks a vector's length and values and brings it into the form the index stores
    /// (unit length for cosine).
    pub fn prepare(
        self,
        dim: usize,
        vector: &[f32],
        what: impl Fn() -> String,
    ) -> Result<Vec<f32>, VectorError> {
        if vector.len() != dim {
            return Err(VectorError::Dimension {
                expected: dim,
                what: what(),
                actual: vector.len(),
            });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(VectorError::BadVector {
                what: what(),
                reason: "it has a NaN or infinite component",
            });
        }
        let mut out = vector.to_vec();
        if self == Self::Cosine && !normalize(&mut out) {
            return Err(VectorError::BadVector {
                what: what(),
                reason: "a zero vector has no direction for cosine distance",
            });
        }
        Ok(out)
    }
}

impl core::str::FromStr for Metric {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Self::Cosine),
            "l2" | "euclidean" => Ok(Self::L2),
            other => Err(VectorError::invalid(
                "metric",
                format!("{other:?} (use cosine or l2)"),
            )),
        }
    }
}

impl core::fmt::Display for Metric {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Scales `v` to unit length; false (and `v` unchanged) for a zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    for x in v.iter_mut() {
        *x /= norm;
    }
    true
}

/// Dot product, written so that the compiler vectorizes it.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Squared Euclidean distance, vectorizable.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

/// The distance between two prepared vectors (see [`Metric::prepare`]).
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - dot(a, b),
        Metric::L2 => l2_squared(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_the_textbook() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 3.0 - i as f32).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((l2_squared(&a, &b) - naive).abs() < 1e-3);
        let mut u = a.clone();
        assert!(normalize(&mut u));
        assert!((distance(Metric::Cosine, &u, &u)).abs() < 1e-6);
        assert!(!normalize(&mut [0.0; 4]));
    }

    #[test]
    fn prepare_rejects_bad_vectors_by_name() {
        let err = Metric::L2
            .prepare(3, &[1.0, 2.0], || "vector 7".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dimension mismatch: the index has 3 dimensions, vector 7 has 2"
        );
        let err = Metric::Cosine
            .prepare(2, &[0.0, 0.0], || "the query".into())
            .unwrap_err();
        assert!(err.to_string().contains("zero vector"), "{err}");
        let err = Metric::L2
            .prepare(2, &[f32::NAN, 0.0], || "row 1".into())
            .unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        assert_eq!("L2".parse::<Metric>().unwrap(), Metric::L2);
        assert!("manhattan".parse::<Metric>().is_err());
    }
}
