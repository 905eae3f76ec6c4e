//! Lloyd's k-means on a deterministic sample (spherical k-means for cosine).

use crate::metric::{distance, normalize};
use crate::{Metric, SplitMix64};

/// Training parameters.
#[derive(Clone, Debug)]
pub struct KMeansOptions {
    /// Number of clusters.
    pub clusters: usize,
    /// Lloyd iterations.
    pub iterations: usize,
    /// Training points per cluster (the sample is `clusters x this`, at most all points).
    pub sample_per_cluster: usize,
    /// Seed of the sampling.
    pub seed: u64,
}

/// The index of the centroid nearest to `v` (ties: the lowest index).
pub fn nearest(metric: Metric, dim: usize, centroids: &[f32], v: &[f32]) -> usize {
    let mut best = (f32::INFINITY, 0);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let d = distance(metric, v, c);
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// Trains `options.clusters` centroids on `data` (`n x dim`, prepared for `metric`).
/// `progress` is called once per iteration with (iteration, iterations).
pub fn train(
    metric: Metric,
    dim: usize,
    data: &[f32],
    options: &KMeansOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    let n = data.len() / dim;
    let k = options.clusters.clamp(1, n.max(1));
    let mut rng = SplitMix64::new(options.seed);
    // A random sample without replacement (partial Fisher-Yates over row numbers).
    let sample_len = (k * options.sample_per_cluster.max(1)).min(n);
    let mut rows: Vec<usize> = (0..n).collect();
    for i in 0..sample_len {
        let j = i + rng.below(n - i);
        rows.swap(i, j);
    }
    rows.truncate(sample_len);
    rows.sort_unstable();
    let row = |r: usize| &data[r * dim..(r + 1) * dim];
    // Initial centroids: k distinct sample points.
    let mut order = rows.clone();
    for i in 0..k.min(order.len()) {
        let j = i + rng.below(order.len() - i);
        order.swap(i, j);
    }
    let mut centroids: Vec<f32> = order[..k].iter().flat_map(|&r| row(r).to_vec()).collect();
    let mut assign = vec![0usize; rows.len()];
    for iteration in 0..options.iterations {
        progress(iteration, options.iterations);
        for (a, &r) in assign.iter_mut().zip(&rows) {
            *a = nearest(metric, dim, &centroids, row(r));
        }
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (&a, &r) in assign.iter().zip(&rows) {
            counts[a] += 1;
            for (s, &x) in sums[a * dim..(a + 1) * dim].iter_mut().zip(row(r)) {
                *s += f64::from(x);
            }
        }
        for c in 0..k {
            let target = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                // An empty cluster restarts at a random sample point.
                let r = rows[rng.below(rows.len())];
                target.copy_from_slice(row(r));
                continue;
            }
            for (t, s) in target.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *t = (*s / counts[c] as f64) as f32;
            }
            if metric == Metric::Cosine {
                normalize(target);
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let mut rng = SplitMix64::new(1);
        let centers = [[0.0f32, 0.0], [10.0, 10.0], [-10.0, 10.0]];
        let mut data = Vec::new();
        for i in 0..300 {
            let c = centers[i % 3];
            data.push(c[0] + rng.normal() * 0.1);
            data.push(c[1] + rng.normal() * 0.1);
        }
        let options = KMeansOptions {
            clusters: 3,
            iterations: 10,
            sample_per_cluster: 100,
            seed: 7,
        };
        let found = train(Metric::L2, 2, &data, &options, &mut |_, _| {});
        for c in centers {
            let i = nearest(Metric::L2, 2, &found, &c);
            let got = &found[i * 2..i * 2 + 2];
            assert!(
                (got[0] - c[0]).abs() < 0.1 && (got[1] - c[1]).abs() < 0.1,
                "{found:?}"
            );
        }
        // Deterministic: the same seed gives the same centroids.
        assert_eq!(found, train(Metric::L2, 2, &data, &options, &mut |_, _| {}));
    }
}
