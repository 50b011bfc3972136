"""Samples per chunk: how many samples go through a network at once, so that memory is bounded by a chunk.

The simulator, its digital reference, the calibration and onnxruntime's
baseline all run a data set a chunk of samples at a time. A chunk's size comes
from the graph: every value's bytes per sample (its shape after the batch axis,
which the front end has inferred and bounded), summed over the graph, times
the samples must stay under `CHUNK_BYTES`. So a data file within the data
limit (`datasets.MAX_DATA_BYTES`) costs its own bytes plus about a chunk,
whatever the network makes of each sample.
"""

from __future__ import annotations

import math

from lea_compiler.ir import Graph

CHUNK_BYTES = 64 * 2**20
"""Bytes of all the graph's values for one chunk of samples (64 MiB). The interpreter frees values after
their last reader, and the simulator's crossbar kernels work in cache-sized pieces of a chunk, so a run's
peak is a small multiple of this; 64 MiB keeps that well under a gigabyte while a chunk of a small network
is thousands of samples (numpy's per-call overhead stays negligible)."""


def bytes_per_sample(graph: Graph) -> int:
    """The bytes every non-constant value of `graph` holds for one sample: the product of its dimensions
    after the first (the batch), an unknown or symbolic dimension counting as 1, times its item size."""
    total = 0
    for value in graph.values():
        if value.is_const or value.shape is None:
            continue
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in value.shape[1:]]
        total += math.prod(dims) * max(value.dtype.itemsize, 1)
    return max(total, 1)


def samples_per_chunk(graph: Graph, most: int) -> int:
    """How many samples of `graph`'s input to run at once: as many as fit `CHUNK_BYTES`, at least 1, at most
    `most` (a caller's batch size)."""
    return max(1, min(most, CHUNK_BYTES // bytes_per_sample(graph)))
