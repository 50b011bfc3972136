"""IR drop: the column currents of a region read through resistive word and bit lines (`periphery.lines`).

The circuit (docs/chip-format.md, "Line resistance"). A read drives the rows of one region of an array and
senses its columns; only the region's devices conduct (in a 1T1R array the access transistors of the other rows
are off, and the other columns are not sensed). Row i's DAC drives its word line from the array's column-0 edge
through the driver resistance and one segment per device position up to the region's first column, then one
segment between adjacent devices; column j's bit line runs from the region's devices down to the array's last
row and one more segment to its sense amplifier, a virtual ground behind the sense resistance. So a region at
(row, col) of an array of `array_rows` rows sees, per word line, a lead of

    R_in = driver_ohm + (col + 1) * word_line_segment_ohm

to its first device and, per bit line, a lead of

    R_out = sense_ohm + (array_rows - (row + rows) + 1) * bit_line_segment_ohm

from its last row to the sense amplifier: regions far from the drivers (large col) and far from the sense
amplifiers (small row) lose more. Device (i, j) joins word-line node u_ij to bit-line node w_ij with its
conductance G_ij; the column current is I_j = w_{rows-1, j} / R_out.

For fixed conductances the network is linear in the row voltages V, so I = V @ M for one matrix M
(rows x cols, uS): with ideal lines M = G. `region_map` computes M exactly, once per region and programmed chip,
and the simulator then reads with M in place of G, so a sample costs what it always did. The method is a
direct (non-iterative) elimination, exact up to rounding whatever the resistances:

1. Word lines: given the bit-line voltages w_i of row i, the row's nodes solve a tridiagonal system
   A_i u_i = G_i * w_i + g_in V_i e_0 with A_i = g_seg L + diag(G_i) + g_in e_0 e_0^T (L the path Laplacian of
   the row's nodes), so u_i = P_i w_i + q_i V_i with P_i = A_i^-1 diag(G_i), q_i = g_in A_i^-1 e_0.
2. Bit lines: substituting into the bit-line nodes' current balance leaves a block-tridiagonal system over the
   rows, blocks D_i = (neighbours) g_seg I + diag(G_i)(I - P_i) (plus g_out on the last row) and -g_seg I off
   the diagonal, right-hand side (G_i * q_i) V_i. Block forward elimination (S_i = D_i - g_seg^2 S_{i-1}^-1)
   with one right-hand side per input row gives the last row's voltages for every unit input at once, and
   M^T = g_out w_{rows-1}. No back substitution is needed: only the last row feeds the sense amplifiers.

A zero segment resistance makes a line one node (handled exactly, not as a large conductance); a zero lead on
top makes it the source or the ground. Cost: rows x (cols^3 + cols^2 (cols + rows)) multiply-adds
(`solve_work`), O(n^4) for an n x n region: 0.26 s of one core for 128 x 128, 2.6 s for 256 x 256
(docs/simulator.md). Memory: each row's word line is solved when the elimination reaches it, so the solve holds
O(cols (cols + rows)) numbers, not O(rows cols^2). Regions above the work of `MAX_REGION_SIDE` x
`MAX_REGION_SIDE` are refused up front (`check_regions`). `nodal_currents` is the reference it is checked
against: the dense nodal matrix of all 2 rows cols nodes, solved by numpy.linalg.solve
(only for small arrays: its matrix has (2 rows cols)^2 entries).

Not modelled: the lines' own dissipation in the energy report (device read energy stays V^2 G t), read noise
passing through the lines (it is added to the column current as without IR drop, a second-order difference),
and nonlinear devices or sneak paths through unselected cells.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lea_compiler.chip import Chip, LineModel
from lea_compiler.errors import UsageError

if TYPE_CHECKING:
    from lea_compiler.schedule.plan import LayerPlan

logger = logging.getLogger(__name__)

_MICRO = 1e6
"""uS per S: a resistance of r ohm is a conductance of 1e6 / r uS."""
MAX_REGION_SIDE = 512
"""The largest region (rows and columns) whose IR drop leac solves: the solve's work (`solve_work`) of a
512 x 512 region, about a minute of one core. Its memory is O(cols (cols + rows)) numbers (one row's word line
and the elimination's current block), a few MB at this size. docs/limits.md."""
SECONDS_PER_WORK = 3e-10
"""CPU seconds per multiply-add of `solve_work`, measured (one BLAS thread: 0.25 s for 128 x 128, 2.9 s for
256 x 256, the slower rate kept) for the up-front estimate `check_regions` logs."""


def solve_work(rows: int, cols: int) -> int:
    """Multiply-adds of one `region_map` with resistive lines: per row, the word line's dense solve (cols^3) and
    the elimination's solve against cols + rows right-hand sides (cols^2 (cols + rows))."""
    return rows * cols * cols * (2 * cols + rows)


def _refuse_large(rows: int, cols: int, what: str) -> None:
    """UsageError for a region above the limit (`check_regions`)."""
    limit = solve_work(MAX_REGION_SIDE, MAX_REGION_SIDE)
    if solve_work(rows, cols) > limit:
        raise UsageError(
            f"{what}: the chip's lines have resistance (periphery.lines), and the IR drop of a {rows} x {cols} "
            f"region would take about {solve_work(rows, cols) * SECONDS_PER_WORK:.3g} s of CPU per read region "
            f"(leac solves regions up to {MAX_REGION_SIDE} x {MAX_REGION_SIDE}, about "
            f"{limit * SECONDS_PER_WORK:.3g} s; docs/limits.md): compile with smaller blocks, e.g. "
            f"leac compile --block 256x256, and simulate that Program")


def check_regions(shapes: Iterable[tuple[int, int]], lines: LineModel, what: str) -> float:
    """The estimated CPU seconds of the IR-drop solves of regions of `shapes` read through `lines` (0 with ideal
    lines), logged; refused before any work when one region exceeds `MAX_REGION_SIDE` x `MAX_REGION_SIDE`.

    Raises:
        UsageError: a region larger than the limit, with what to do (compile with smaller blocks).
    """
    if lines.is_default:
        return 0.0
    shapes = list(shapes)
    for rows, cols in shapes:
        _refuse_large(rows, cols, what)
    seconds = sum(solve_work(r, c) for r, c in shapes) * SECONDS_PER_WORK
    logger.info("IR drop: %d regions, about %.3g s of CPU", len(shapes), seconds)
    return seconds


def lead_ohm(lines: LineModel, *, row: Any, col: Any, rows: int, array_rows: int) -> tuple[Any, Any]:
    """(R_in, R_out) in ohms: the word-line lead from the driver to a region's first column and the bit-line lead
    from its last row to the sense amplifier, for a region of `rows` rows at (row, col) of an array of
    `array_rows` rows (module docstring). `row` and `col` may be numpy arrays of offsets (the placement's cost
    maps): the leads are then arrays of the same shapes."""
    r_in = lines.driver_ohm + (col + 1) * lines.word_line_segment_ohm
    r_out = lines.sense_ohm + (array_rows - (row + rows) + 1) * lines.bit_line_segment_ohm
    return r_in, r_out


def _conductance(ohm: float) -> float:
    """uS of a resistance in ohms (inf for 0: a short)."""
    return np.inf if ohm == 0 else _MICRO / ohm


def region_map(g_uS: np.ndarray, lines: LineModel, *, row: int, col: int, array_rows: int) -> np.ndarray:
    """M (rows, cols; uS) with column currents I = V @ M for row voltages V, for a region of conductances g_uS at
    (row, col) of an array of `array_rows` rows, read through `lines` (module docstring). Ideal lines: g_uS
    itself (a copy).

    Raises:
        UsageError: the region is larger than `MAX_REGION_SIDE` x `MAX_REGION_SIDE` (`check_regions`).
    """
    g = np.asarray(g_uS, dtype=np.float64)
    if lines.is_default:
        return g.copy()
    rows, cols = g.shape
    _refuse_large(rows, cols, "IR drop")
    r_in, r_out = lead_ohm(lines, row=row, col=col, rows=rows, array_rows=array_rows)
    return _bit_lines(g, _conductance(lines.word_line_segment_ohm), _conductance(r_in),
                      _conductance(lines.bit_line_segment_ohm), _conductance(r_out))


def _word_line(g_i: np.ndarray, g_seg: float, g_in: float) -> tuple[np.ndarray, np.ndarray]:
    """(P_i, q_i) of one row: u_i = P_i @ w_i + q_i V_i; P_i (cols, cols), q_i (cols,). One row at a time, so the
    solve holds O(cols^2) numbers, not O(rows cols^2)."""
    cols = g_i.shape[0]
    if np.isinf(g_seg):  # the word line is one node
        if np.isinf(g_in):  # ... tied to its source: u = V
            return np.zeros((cols, cols)), np.ones(cols)
        total = g_in + g_i.sum()
        return np.broadcast_to(g_i / total, (cols, cols)).copy(), np.full(cols, g_in / total)
    a = np.zeros((cols, cols))
    index = np.arange(cols)
    degree = np.full(cols, 2.0 * g_seg)
    degree[-1] = g_seg  # the far end of the line is open
    a[index, index] = degree + g_i
    a[0, 0] += g_in - g_seg  # the first node's other neighbour is the lead, not a segment
    if cols > 1:
        a[index[:-1], index[1:]] = -g_seg
        a[index[1:], index[:-1]] = -g_seg
    rhs = np.zeros((cols, cols + 1))
    rhs[index, index] = g_i
    rhs[0, cols] = g_in
    solved = np.linalg.solve(a, rhs)
    return solved[:, :cols], solved[:, cols]


def _bit_lines(g: np.ndarray, g_word: float, g_in: float, g_seg: float, g_out: float) -> np.ndarray:
    """M: the bit-line nodes' block-tridiagonal system, eliminated row by row, each row's word line (P_i, q_i)
    solved when the elimination reaches it (`_word_line`)."""
    rows, cols = g.shape
    eye = np.eye(cols)
    f = np.zeros((rows, cols))  # F_i = (G_i * q_i), the right-hand side per volt of V_i
    if np.isinf(g_seg):  # the bit line is one node per column
        k_sum = np.zeros((cols, cols))
        for i in range(rows):
            p_i, q_i = _word_line(g[i], g_word, g_in)
            k_sum += g[i][:, None] * (eye - p_i)
            f[i] = g[i] * q_i
        if np.isinf(g_out):  # ... at the sense amplifier's virtual ground: w = 0, I_j = sum_i G_ij u_ij
            return f
        w = np.linalg.solve(k_sum + g_out * eye, f.T)  # (cols, rows): column i is the response to V_i
        return (g_out * w).T
    s = None
    y = np.zeros((cols, rows))
    for i in range(rows):
        p_i, q_i = _word_line(g[i], g_word, g_in)
        # K_i = diag(G_i)(I - P_i): the current row i's devices draw from the bit line, per volt of w_i.
        neighbours = (i > 0) + (i < rows - 1)
        d = g[i][:, None] * (eye - p_i)
        d += (neighbours * g_seg + (g_out if i == rows - 1 else 0.0)) * eye  # g_out: R_out >= a segment > 0
        y_i = np.zeros((cols, rows))
        y_i[:, i] = g[i] * q_i
        if s is not None:
            x = np.linalg.solve(s, np.hstack([g_seg * eye, y]))
            d -= g_seg * x[:, :cols]
            y_i += g_seg * x[:, cols:]
        s, y = d, y_i
    assert s is not None
    return (g_out * np.linalg.solve(s, y)).T


def read_maps(plan: LayerPlan, conductances: Sequence[np.ndarray], chip: Chip) -> list[np.ndarray] | None:
    """Per read of a layer's plan (in order, with its region's conductances), the matrix M its currents are read
    with on `chip` (`region_map` at the read's place in its array); None when the chip's lines are ideal, so
    the reads use the conductances exactly as without IR drop."""
    lines = chip.periphery.lines
    if lines.is_default:
        return None
    return [region_map(g, lines, row=read.row, col=read.col, array_rows=chip.array(read.array).rows)
            for (read, _), g in zip(plan.reads, conductances, strict=True)]


def nodal_currents(g_uS: np.ndarray, v: np.ndarray, r_seg_row: float, r_seg_col: float, r_in: float,
                   r_out: float) -> np.ndarray:
    """Column currents (uA, (n, cols)) of a region read with row voltages v (n, rows), from the dense nodal
    equations of all 2 rows cols line nodes solved by numpy.linalg.solve: the reference for `region_map`, for
    small regions and positive resistances (ohms) only. u nodes are 0 .. rows cols - 1, w nodes follow."""
    g = np.asarray(g_uS, dtype=np.float64)
    rows, cols = g.shape
    n = rows * cols
    a = np.zeros((2 * n, 2 * n))
    b = np.zeros((2 * n, len(v)))

    def join(x: int, y: int, conductance: float) -> None:
        a[x, x] += conductance
        a[y, y] += conductance
        a[x, y] -= conductance
        a[y, x] -= conductance

    g_row, g_col = _MICRO / r_seg_row, _MICRO / r_seg_col
    for i in range(rows):
        for j in range(cols):
            u, w = i * cols + j, n + i * cols + j
            join(u, w, g[i, j])
            if j + 1 < cols:
                join(u, u + 1, g_row)
            if i + 1 < rows:
                join(w, w + cols, g_col)
        a[i * cols, i * cols] += _MICRO / r_in  # the lead to row i's source
        b[i * cols] = _MICRO / r_in * np.asarray(v, dtype=np.float64)[:, i]
    last = [n + (rows - 1) * cols + j for j in range(cols)]
    for node in last:
        a[node, node] += _MICRO / r_out  # the lead to the virtual ground
    voltages = np.linalg.solve(a, b)
    return (voltages[last] * (_MICRO / r_out)).T
