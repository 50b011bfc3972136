"""The write noise's draw: numpy's normal against the table draw leac uses (`programming.devices.write_errors`).

Programming a simulated chip draws one standard normal per device (the "gaussian" programming model's write
error). Timed for the device counts of bench_sim.py's anchor Programs (238,200 devices at k = 1, 1,429,200 at
k = 6), one thread, the fastest CPU time of `--repeats` calls of each:

- numpy: `Generator.standard_normal` (the ziggurat; leac's draw until the table);
- table, one word per device: `write_errors` (float64, the standard normals), and with a scale (the sigma of
  the default device model, 16.66 uS: the errors looked up in a table of the quantiles times it, what
  programming uses);
- table, 16 bits per device: `schedule.normal_draws.gaussian` (the read noise's draw; a draw split into parts
  that are not multiples of 4 devices would not be the one draw's, which is why the write noise takes a word).

Run:  python benchmarks/bench_write_draw.py [--repeats 15]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_sim_steps import cpu_ms
from threadpoolctl import threadpool_limits

from lea_compiler.programming.devices import write_errors
from lea_compiler.schedule.normal_draws import gaussian

DEVICES = (238_200, 1_429_200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for n in DEVICES:
            times = {
                "numpy standard_normal": cpu_ms(lambda: rng.standard_normal(n), args.repeats),  # noqa: B023
                "write_errors (float64)": cpu_ms(lambda: write_errors(rng, (n,)), args.repeats),  # noqa: B023
                "write_errors, scaled (float64)": cpu_ms(lambda: write_errors(rng, (n,), scale=16.66),  # noqa: B023
                                                         args.repeats),
                "table, 16 bits each (float32)": cpu_ms(lambda: gaussian(rng, (n,)), args.repeats),  # noqa: B023
            }
            print(f"{n:,} devices: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in times.items()), flush=True)


if __name__ == "__main__":
    main()
