"""Programming's steps around the write draw (`backends.crossbar.written_uS`), on the device count of bench_sim.py's
25 x 25, k = 6 anchor Program (1,429,200 devices; int8 levels 0-3 of the default chip, 2% skipped), one thread,
the fastest CPU time of `--repeats` calls of each:

- the write errors times sigma: `write_errors` then a multiply (the draw before), and `write_errors(scale=sigma)`
  into a buffer (the scaled quantiles looked up with the draw);
- the levels' targets: the byte table indexed one level at a time (`table.take` of the bytes as intp, before)
  and two at a time (`conductances.pair_gathered`);
- `written_uS` whole, in parts of 2^14 to 2^18 devices (`crossbar._WRITE_PART`).

Run:  python benchmarks/bench_write_parts.py [--repeats 15]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_sim_steps import cpu_ms
from threadpoolctl import threadpool_limits

from lea_compiler.backends import crossbar
from lea_compiler.chip import DeviceModel
from lea_compiler.programming.devices import write_errors
from lea_compiler.schedule.conductances import byte_table, pair_gathered

DEVICES = 1_429_200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    device = DeviceModel()
    levels = np.asarray(device.levels_uS, dtype=np.float64)
    sigma = device.write_noise_uS
    rng = np.random.default_rng(0)
    level = rng.integers(0, len(levels), DEVICES).astype(np.int8)
    level[rng.random(DEVICES) < 0.02] = -1
    table = byte_table(levels, levels[0])
    out = np.empty(DEVICES)

    def scaled_after() -> None:
        errors = write_errors(rng, (DEVICES,))
        errors *= sigma

    times = {}
    with threadpool_limits(limits=1):
        times["write_errors, then times sigma"] = cpu_ms(scaled_after, args.repeats)
        times["write_errors(scale=sigma) into a buffer"] = cpu_ms(
            lambda: write_errors(rng, (DEVICES,), out=out, scale=sigma), args.repeats)
        times["targets, a level at a time"] = cpu_ms(lambda: table.take(level.view(np.uint8).astype(np.intp)),
                                                     args.repeats)
        times["targets, two levels at a time"] = cpu_ms(lambda: pair_gathered(level, table), args.repeats)
        default = crossbar._WRITE_PART
        try:
            for power in range(14, 19):
                crossbar._WRITE_PART = 1 << power
                times[f"written_uS in parts of 2^{power}"] = cpu_ms(
                    lambda: crossbar.written_uS(level, levels, rng, sigma), args.repeats)
        finally:
            crossbar._WRITE_PART = default
    print(f"{DEVICES:,} devices, {len(levels)} levels, sigma {sigma} uS: "
          + ", ".join(f"{name} {ms:.1f} ms" for name, ms in times.items()))


if __name__ == "__main__":
    main()
