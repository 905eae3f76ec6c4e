"""Baseline for vector-bench: hnswlib on the same data and queries.

Usage: hnsw_baseline.py BASE.npy QUERIES.npy TRUTH.npy SPACE EF
Prints one JSON object: recall@10, p50/p95 latency (one query at a time, one thread), build
seconds and index bytes in memory. hnswlib keeps the whole graph in memory, so its
"fetched fraction" is 1.
"""

import json
import sys
import time

import hnswlib
import numpy as np


def main() -> None:
    base = np.load(sys.argv[1])
    queries = np.load(sys.argv[2])
    truth = np.load(sys.argv[3]).astype(np.int64)
    space, ef = sys.argv[4], int(sys.argv[5])
    n, dim = base.shape
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=1)
    start = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=2)
    build = time.perf_counter() - start
    index.set_ef(ef)
    index.set_num_threads(1)
    k = truth.shape[1]
    found, latencies = 0, []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        labels, _ = index.knn_query(q.reshape(1, -1), k=k)
        latencies.append(time.perf_counter() - t)
        found += len(set(labels[0].tolist()) & set(truth[i].tolist()))
    latencies.sort()
    print(
        json.dumps(
            {
                "recall": found / (len(queries) * k),
                "p50_ms": latencies[len(latencies) // 2] * 1e3,
                "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
                "build_s": build,
                "ef": ef,
                "memory_bytes": n * (dim * 4 + 16 * 2 * 4 + 8),
            }
        )
    )


if __name__ == "__main__":
    main()
