"""Where the crossbar forward's time goes, per column current, and what stacking the row bands would change.

The first layer of bench_sim.py's anchor workload (784 + 1 rows, 150 columns, k copies) on 2%-stuck chips of
25 x 25 or 128 x 128 arrays, 1,000 samples, one BLAS thread: the steps of `CrossbarExecutor._read_band` timed
one by one over the forward's chunks and row bands, in ns per column current (samples x bands x 2 k x 150), next
to the ideal float32 forward's time per current (bench_sim.py's `ideal_forward`, both layers, divided by the
first layer's currents):

- product: `_currents` (x @ G of every copy and polarity, in ADC steps);
- sigma: `_noise_scale` (each current's read-noise standard deviation in steps: per vector and per column);
- bits, lookup: the draw (`gaussian`: 16 random bits of the chunk's generator, then the table lookup), timed as
  the bits alone and the whole draw minus the bits;
- scale, add, round, clip, combine: the noise times sigma (the vector's, then the column's), added, the ADC's
  round and clip, `combine`.

`--chunks N ...` also times the band-by-band steps with chunks of about N currents instead of the forward's
`_CHUNK_CURRENTS`. `--stacked` also times the same steps with every row band of the layer stacked into one
batched product per chunk ((B, n, R) @ (B, R, C), the 10-row band padded with zero rows), with the forward's
chunk of samples and with chunks of the same total currents as one band's (`_CHUNK_CURRENTS`).

Run:  python benchmarks/bench_forward_steps.py [--arrays 25 128] [--k 6] [--repeats 3] [--stacked]
      [--chunks 65536 262144]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
from bench_sim import anchor_model, anchor_program, anchor_samples, best_of, ideal_forward
from threadpoolctl import threadpool_limits

from lea_compiler.backends.sim import CrossbarLayer
from lea_compiler.schedule import execute
from lea_compiler.schedule.plan import schedule_of

STEPS = ("product", "sigma", "bits", "lookup", "scale", "add", "round", "clip", "combine")


class Clock:
    """Adds up the wall time of each named step: `with clock("product"): ...`."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STEPS, 0.0)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] += time.perf_counter() - start


def adc_and_noise(clock: Clock, rng: np.random.Generator, clean: np.ndarray, scale: tuple[np.ndarray, ...],
                  adc_max: float) -> None:
    """The draw, the noise times sigma added, the ADC's round and clip, in place on `clean`."""
    state = rng.bit_generator.state
    with clock("bits"):
        rng.bit_generator.random_raw(-(-clean.size // 4))
    rng.bit_generator.state = state  # the same bits again, then the whole draw (bits + lookup)
    with clock("lookup"):
        noise = execute.gaussian(rng, clean.shape)
    with clock("scale"):
        for factor in scale:
            noise *= factor
    with clock("add"):
        clean += noise
    with clock("round"):
        np.rint(clean, out=clean)
    with clock("clip"):
        np.clip(clean, -adc_max, adc_max, out=clean)


def band_by_band(ex: execute.CrossbarExecutor, v: np.ndarray, clock: Clock) -> None:
    """The forward's steps as `_read_band` runs them (reads = 1), chunk by chunk and band by band."""
    adc_max = float((1 << (ex.adc_bits - 1)) - 1)
    chunk = ex._chunk_rows()
    for index, lo in enumerate(range(0, len(v), chunk)):
        rng = execute.noise_generator(0, index)
        for band in ex._bands():
            vb = v[lo:lo + chunk, band.r0:band.r1]
            with clock("product"):
                clean = ex._currents(vb, band.g)
            with clock("sigma"):
                scale = ex._noise_scale(band, vb)
            adc_and_noise(clock, rng, clean, scale, adc_max)
            with clock("combine"):
                np.einsum("sac,ac->sc", clean.reshape(len(vb), 2 * ex.alpha, ex.cols), band.weights)
    clock.seconds["lookup"] -= clock.seconds["bits"]


def stacked(ex: execute.CrossbarExecutor, v: np.ndarray, clock: Clock, chunk: int) -> None:
    """The same steps with all row bands stacked: one batched product, draw, ADC and combine per chunk."""
    bands = ex._bands()
    rows = max(band.r1 - band.r0 for band in bands)
    g = np.zeros((len(bands), rows, bands[0].g.shape[1]), np.float32)
    padded = np.zeros((len(v), len(bands), rows), np.float32)
    for b, band in enumerate(bands):
        g[b, :band.r1 - band.r0] = band.g
        padded[:, b, :band.r1 - band.r0] = v[:, band.r0:band.r1]
    inv_step = np.stack([band.inv_step for band in bands])[:, None, :]
    weights = np.stack([band.weights for band in bands])
    adc_max = float((1 << (ex.adc_bits - 1)) - 1)
    third = np.float32(ex.read_noise ** 2 / 3.0)
    for index, lo in enumerate(range(0, len(v), chunk)):
        rng = execute.noise_generator(0, index)
        vs = padded[lo:lo + chunk]
        with clock("product"):
            clean = np.matmul(vs.transpose(1, 0, 2), g)  # (B, n, C)
        with clock("sigma"):
            scale = np.sqrt(third * np.einsum("sbr,sbr->bs", vs, vs))[:, :, None], inv_step
        adc_and_noise(clock, rng, clean, scale, adc_max)
        with clock("combine"):
            np.einsum("bsac,bac->sc", clean.reshape(len(bands), len(vs), 2 * ex.alpha, ex.cols), weights)
    clock.seconds["lookup"] -= clock.seconds["bits"]


GENERATORS = {"PCG64 (numpy's default)": lambda: np.random.default_rng(0),
              "SFC64 (the forward's)": lambda: execute.noise_generator(0, 0)}


def bits_ns(make: Callable[[], np.random.Generator], repeats: int) -> float:
    """ns per current of drawing 16 random bits for each current of one chunk (`random_raw`, as `gaussian`)."""
    rng = make()
    wall, _ = best_of(rng.bit_generator.random_raw, execute._CHUNK_CURRENTS // 4, repeats=10 * repeats)
    return wall / execute._CHUNK_CURRENTS * 1e9


def with_chunk(currents: int, run: Callable[[Clock], None], clock: Clock) -> None:
    """`run` with the forward's chunks of about `currents` column currents instead of `_CHUNK_CURRENTS`."""
    default = execute._CHUNK_CURRENTS
    execute._CHUNK_CURRENTS = currents
    try:
        run(clock)
    finally:
        execute._CHUNK_CURRENTS = default


def timed(run: Callable[[Clock], None], repeats: int) -> dict[str, float]:
    """Each step's least time over `repeats` runs."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        clock = Clock()
        run(clock)
        best = {step: min(t, best.get(step, t)) for step, t in clock.seconds.items()}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arrays", type=int, nargs="+", default=[25, 128])
    parser.add_argument("--k", type=int, nargs="+", default=[6])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stacked", action="store_true")
    parser.add_argument("--chunks", type=int, nargs="*", default=[], help="other chunk sizes, in currents")
    args = parser.parse_args()
    x = anchor_samples(args.samples)
    with anchor_model() as (model, weights, biases), threadpool_limits(limits=1):
        for size in args.arrays:
            for k in args.k:
                program = anchor_program(model, size, k)
                schedule = schedule_of(program)
                plan = next(iter(schedule.layers.values()))
                ex = CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(0), ideal=False,
                                   exact_read_noise=False).executor
                flat = np.hstack([x, np.ones((len(x), 1), np.float32)])
                v = (flat / flat.max(axis=1, keepdims=True) * np.float32(ex.v_read)).astype(np.float32)
                currents = len(x) * len(ex._bands()) * 2 * ex.alpha * ex.cols
                _, ideal = best_of(ideal_forward, x, weights, biases, k, repeats=args.repeats)
                chunk = ex._chunk_rows()
                small = max(1, execute._CHUNK_CURRENTS * len(x) // currents)
                runs = {"band by band": partial(band_by_band, ex, v)}
                for size_currents in args.chunks:
                    runs[f"band by band, chunks of {size_currents} currents"] = partial(
                        with_chunk, size_currents, partial(band_by_band, ex, v))
                if args.stacked:
                    runs[f"stacked, chunk {chunk}"] = partial(stacked, ex, v, chunk=chunk)
                    runs[f"stacked, chunk {small}"] = partial(stacked, ex, v, chunk=small)
                print(f"{size} x {size}, k = {k}: {len(ex._bands())} row bands, {currents / len(x):.0f} currents "
                      f"per sample; the ideal forward {ideal * 1e3:.1f} ms, {ideal / currents * 1e9:.2f} ns per "
                      "current; 16 random bits per current in one call: " + ", ".join(
                          f"{name} {bits_ns(make, args.repeats):.2f} ns"
                          for name, make in GENERATORS.items()))
                for name, run in runs.items():
                    best = timed(run, args.repeats)
                    total = sum(best.values())
                    print(f"  {name}: " + ", ".join(f"{s} {best[s] / currents * 1e9:.2f}" for s in STEPS)
                          + f"; total {total / currents * 1e9:.2f} ns per current, {total * 1e3:.0f} ms "
                          f"({total / ideal:.1f}x the ideal forward)", flush=True)


if __name__ == "__main__":
    main()
