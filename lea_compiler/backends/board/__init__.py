"""The board backend: a Program as the instruction stream a board controller executes.

A board controller (an FPGA driving DACs, ADCs and the crossbar arrays) needs
two things from leac: which device to program to which conductance, and what
to do at inference time. `emit_board` writes both, for one Program, as a
`leac-board` file (version 1, or 2 when a region is read more than once per
inference; JSON Lines, UTF-8, ASCII only); `read_board`
turns the file back into typed records and `validate_board` lists the
problems of a file (streaming it; the first `MAX_PROBLEMS`, with a count).
The file is deterministic: the same Program, tolerance and pulse limit always
give the same bytes. docs/board-format.md is the reference for people; this
docstring is the same contract in brief.

Units: conductances `_uS` microsiemens, voltages `_V` volts; currents (what
an ADC returns) are in microamperes (V x uS = uA). Array, row and column
indices start at 0; an array's rows are word lines driven by DACs (inputs),
its columns are bit lines read by ADCs (outputs). Every range
`[start, stop)` includes start and excludes stop.

Line 1 is the header object (`format` "leac-board", `version` 1 or 2,
`leac_version`, `model` {name, file, sha256}, `program_leac_version`,
`compile_options`, `chip` {name, fingerprint}, `arrays` [{id, rows, cols}]
for every array the file touches, `levels_uS`, `periphery` (every periphery
value of the chip, which the schedule assumes), `tolerance_uS`,
`tolerance_rule`, `max_pulses`, `inputs` / `outputs` [{name, dtype, shape}]
of the graph, `counts` {op: number of records}, `records` (lines after the
header) and `skipped` {stuck_high, stuck_low}). Every later line is one record
whose `op` names its kind; its other keys are exactly the fields below.

Programming section (first; all devices of one array together, arrays by
ascending id, devices by row then column, so there is one `select_array` per
array used):

- `select_array` {array, devices}: make `array` the target of the following
  `write`/`skip` records; `devices` of them follow.
- `write` {array, row, col, level, target_uS, tolerance_uS, max_pulses}:
  write-verify one healthy device: pulse until a verify read is within
  +-tolerance_uS of target_uS (= levels_uS[level]) or max_pulses pulses were
  spent. The default tolerance is a quarter of the smallest gap between
  adjacent levels, so neighbouring levels' windows never touch.
- `skip` {array, row, col, state, g_uS, layer, block, copy, polarity,
  target_level}: a stuck device (the Program's level -1) that is not
  programmed; `state` "stuck_high"/"stuck_low" and its conductance `g_uS`
  come from the chip; layer/block/copy/polarity say which copy half it
  belongs to and `target_level` the level it should have had.

Inference schedule (in the Program graph's node order; repeated for every
input sample, and for a crossbar layer for every input vector, i.e. every
index of the input's dimensions between the first (batch) and the last):

- `digital` {node, op_type, domain, inputs, outputs, attrs, constants}: a
  non-crossbar node run in the digital periphery with ONNX semantics
  (`domain` "" is ONNX, "leac" is leac's own, e.g. `Patches` = im2col).
  `inputs` / `outputs` are value names (null: an omitted optional input);
  `attrs` are its attributes, JSON-safe: a numpy array is {"tensor": {dtype,
  shape, data}} with `data` flat in C order; a non-finite float is
  {"float": "nan" | "inf" | "-inf"}. `constants` maps each input that is a
  compile-time constant to its {dtype, shape, data}.
- `layer` {name, input, output, rows, cols, inputs, bias_row, bias, alpha,
  beta, encoding, scale_uS, blocks, row_blocks, col_blocks,
  vectors_per_sample}: a crossbar layer y = x @ W (+ b) on the vector
  axis (the last) of value `input`, result in value `output`. Its crossbar
  matrix has `rows` rows (`inputs` input elements, plus one row driven by the
  constant 1 when `bias_row`) and `cols` output columns; `bias` is "row",
  "digital" or "none". `scale_uS[j]` is column j's scale s_j: uS of
  conductance difference G+ - G- per weight unit (divided by the column's
  stuck-device compensation gain when the Program has one; its offset is
  then in the `bias` values, so a layer without a bias of its own can have
  bias "digital"). The matrix is cut into
  `blocks` blocks along `row_blocks` / `col_blocks` ([start, stop) matrix
  row / column ranges). `vectors_per_sample` is null when the shape is not
  known.
- `read` {layer, block, copy, polarity, array, row, col, rows, cols,
  x_start, x_stop, one_row, reads}: `reads` analog reads (1 to 64; the key
  is in version 2 only, and a version-1 file reads each region once) of the
  region rows
  [row, row + rows) x columns [col, col + cols) of `array`, which holds one
  copy half (polarity "pos" = G+, "neg" = G-). Region row i is driven with
  the voltage of input element x[x_start + i] for i < x_stop - x_start; if
  `one_row` is not null, region row `one_row` is the bias row and is driven
  with the constant input 1. Input value u is driven as
  V = u * v_read_V / x_fs, quantised to dac_bits (signed, full scale
  +-v_read_V); x_fs: see `scale`. Column j then carries
  I_j = sum_i V_i G_ij (uA); the DAC holds V over the `reads` reads, each
  with its own read noise.
- `convert` {layer, block, copy, polarity, array, col_start, col_stop, adcs,
  rounds, full_scale_uA}: digitise the column currents (uA) of array columns
  [col_start, col_stop) just read, with `adcs` ADCs in `rounds` =
  ceil((col_stop - col_start) / adcs) conversion rounds, over +-full_scale_uA:
  the calibrated range when the Program was calibrated at compile time, else
  the block's worst case, v_read_V x its largest column sum of conductance
  (null in files of earlier leac versions: the same worst case); with
  `reads` > 1 every read is digitised, and I is the mean of the `reads`
  digitised currents.
- `combine` {layer, block, col_start, col_stop, copies, divisor}: for the
  block's output column j (layer column col_start + j),
  D_j = (1 / divisor) * sum over c in copies[j] of (I_pos[c, j] - I_neg[c, j]),
  with I the converted currents of copy c's two halves: differential
  subtraction, then the average of the beta selected copies (divisor = beta).
- `accumulate` {layer, cols, terms}: A = zeros(cols); for each [block,
  col_start, col_stop] in `terms`, A[col_start:col_stop] += D of that block
  (partial sums of the row blocks). Units: uA.
- `scale` {layer, scale_uS, v_read_V, x_fs_min, x_fs}: x_fs is the layer's
  calibrated input full scale when the Program has one (inputs clipped to it),
  else null and the per-vector rule below applies;
  y_j = A_j * x_fs / (v_read_V * scale_uS[j]), in weight units, where x_fs is
  this input vector's full scale: max(max_i |x_i| over the layer's whole
  input vector, x_fs_min); x_fs_min is 1 when the layer has a bias row (so
  the constant 1 fits in the DAC range) and 0 otherwise. If x_fs is 0 the
  input is all zeros: drive 0 V, and y = 0 before the bias.
- `bias` {layer, values, dtype}: y_j += values[j] in the digital periphery
  (only for a layer whose bias is "digital").

The layer's result (y after scale and bias) is the value `output`.

A Program compiled with `leac compile --calibrate` carries one calibrated
input full scale per layer and one ADC range per block: the `scale` records
give them as `x_fs` (inputs clip to it) and the `convert` records as
`full_scale_uA`, and the simulator uses the same numbers. Without calibration
both are null: x_fs follows the per-vector rule above (it never clips) and the
ADC range is the board's calibration, while the simulator calibrates both from
its data (docs/simulator.md); both use the same scaling formula.

The modules of this package: `records` (the constants, field checkers, record
and header types and their JSON encoding), `writer` (`emit_board`,
`board_stream`: the programming section and the schedule), `reader`
(`read_board`, `check_board`, `validate_board`: streaming, decoding and the
checks of each line) and `validator` (the checks that span records). Every
public name is re-exported here.
"""

from __future__ import annotations

from lea_compiler.backends.board.reader import (
    MAX_BOARD_BYTES,
    MAX_LINE_BYTES,
    BoardCheck,
    board_schedule,
    check_board,
    periphery_differences,
    read_board,
    validate_board,
)
from lea_compiler.backends.board.records import _SCHEMAS as _SCHEMAS  # the tests check the schemas
from lea_compiler.backends.board.records import (
    BIAS_MODES,
    FORMAT,
    MAX_PROBLEMS,
    POLARITIES,
    RECORD_TYPES,
    STATES,
    VERSION,
    VERSIONS,
    Accumulate,
    Bias,
    BoardArray,
    BoardHeader,
    BoardStream,
    Checker,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    Record,
    Scale,
    SelectArray,
    Skip,
    Write,
    board_version,
    record_line,
)
from lea_compiler.backends.board.validator import MAX_VALUE_NAMES
from lea_compiler.backends.board.writer import (
    DEFAULT_MAX_PULSES,
    TOLERANCE_DEFAULT_RULE,
    TOLERANCE_GIVEN_RULE,
    BoardSummary,
    board_stream,
    default_tolerance_uS,
    emit_board,
)

__all__ = [
    "BIAS_MODES",
    "DEFAULT_MAX_PULSES",
    "FORMAT",
    "MAX_BOARD_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PROBLEMS",
    "MAX_VALUE_NAMES",
    "POLARITIES",
    "RECORD_TYPES",
    "STATES",
    "TOLERANCE_DEFAULT_RULE",
    "TOLERANCE_GIVEN_RULE",
    "VERSION",
    "VERSIONS",
    "Accumulate",
    "Bias",
    "BoardArray",
    "BoardCheck",
    "BoardHeader",
    "BoardStream",
    "BoardSummary",
    "Checker",
    "Combine",
    "Convert",
    "Digital",
    "LayerStart",
    "Read",
    "Record",
    "Scale",
    "SelectArray",
    "Skip",
    "Write",
    "board_schedule",
    "board_stream",
    "board_version",
    "check_board",
    "default_tolerance_uS",
    "emit_board",
    "periphery_differences",
    "read_board",
    "record_line",
    "validate_board",
]
