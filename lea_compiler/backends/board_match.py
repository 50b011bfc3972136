"""Which Program a board file is for: a board file's schedule set beside the Program it is simulated with.

`leac simulate BOARD --program PROGRAM` runs the file's records, and the Program gives the rest (the digital
nodes, the chip, the layer errors' reference, the software baseline), so the two must be one compile's: the same
model, chip, compile options, crossbar layers and digital nodes, and records whose values are what the Program
lowers to. A file that is not refused gives the Program's own report.
"""

from __future__ import annotations

import json

from lea_compiler.backends.cost import LatestOf
from lea_compiler.errors import InvalidInputError
from lea_compiler.program import Program
from lea_compiler.schedule.digital import digital_record
from lea_compiler.schedule.lower import is_crossbar
from lea_compiler.schedule.plan import PROGRAMMING, Schedule, schedule_differences, schedule_of


def check_program_match(program: Program, board: Schedule) -> None:
    """Refuse a board schedule that is not this Program's: another model, chip or compile options, other crossbar
    layers or other digital nodes, or, those being the Program's, records whose values differ from what the
    Program lowers to (`schedule_differences`: another calibration or compensation, another placement, an edited
    file or Program), so that what runs is the Program's and its report the Program's. The Program is lowered
    once per board schedule for the latest Program checked (`simulate_trials` checks before its draws, and each
    draw again)."""
    problems = []
    if board.origin is not None:
        if board.origin.get("model_sha256") != program.model.get("sha256"):
            problems.append("it is for another model (SHA-256)")
        if board.origin.get("chip_fingerprint") != program.chip_fingerprint:
            problems.append("it is for another chip (fingerprint)")
        if board.origin.get("compile_options") != json.loads(json.dumps(dict(program.options))):
            problems.append("it was compiled with other options")
    crossbar = [node for node in program.graph.nodes if is_crossbar(node)]
    expected = [(node.name, getattr(node.input(0), "name", ""), node.outputs[0].name) for node in crossbar]
    got = [(plan.name, plan.start.input, plan.start.output) for plan in board.layers.values()]
    if got != expected:
        problems.append("its crossbar layers are not the Program's")
    digital = [digital_record(node) for node in program.graph.nodes if not is_crossbar(node)]
    if board.digital is not None and list(board.digital) != digital:
        problems.append("its digital nodes are not the Program's")
    missing = sorted(set(board.arrays) - {a.id for a in program.chip.arrays})
    if missing:
        problems.append(f"it programs arrays {missing} the Program's chip does not have")
    if not problems:  # the same layers on the same chip: set the records' values beside the Program's
        # kept with the board schedule for the latest Program, which it does not keep alive
        differences = board.derived("differences", LatestOf).of(
            program, lambda: schedule_differences(board, schedule_of(program, check=False)))
        if differences:
            problems.append(_differences_text(program, board, differences))
    if problems:
        raise InvalidInputError(f"the board file was not emitted from this Program: {'; '.join(problems)}")


_FIELD_NAMES = {
    "levels_uS": "device levels (levels_uS)",
    "select_array.array": "arrays (select_array)",
    "write.level": "devices written and skipped (write, skip)",
    "skip.g_uS": "stuck conductances (skip.g_uS)",
    "skip.target_level": "skipped devices' levels (skip.target_level)",
    "layer.scale_uS": "column scales (scale_uS)",
    "scale.scale_uS": "column scales (scale_uS)",
    "convert.full_scale_uA": "ADC ranges (convert.full_scale_uA)",
    "scale.x_fs": "input full scales (scale.x_fs)",
    "layer.bias": "digital biases (bias)",
    "bias": "digital biases (bias)",
    "bias.values": "digital biases (bias)",
    "combine.copies": "copy selections (combine.copies)",
}
"""How a board file's message names a field `schedule_differences` finds (one name for the fields of one thing);
the others are named as they are ("read.row")."""
_CALIBRATED_FIELDS = frozenset({"convert.full_scale_uA", "scale.x_fs", "layer.scale_uS", "scale.scale_uS",
                                "layer.bias", "bias", "bias.values"})
"""The fields compile-time calibration sets: the ranges, and the stuck-device compensation fitted on the same
data (`leac compile --calibrate`, `--compensate`)."""
_COMPENSATION_FIELDS = frozenset({"layer.scale_uS", "scale.scale_uS", "layer.bias", "bias", "bias.values"})
"""The fields of those that the stuck-device compensation sets (`lower.column_scale_and_bias`)."""


def _differences_text(program: Program, board: Schedule, differences: dict[str, list[str]]) -> str:
    """What `_check_board` says of a board file whose records differ from the Program's: which fields, where,
    and what most likely made them differ."""
    names: list[str] = []
    places: list[str] = []
    for field_name, where in differences.items():
        name = _FIELD_NAMES.get(field_name, field_name)
        if name not in names:
            names.append(name)
        places += [place for place in where if place not in places]
    layers = [place for place in places if place != PROGRAMMING]
    shown = [PROGRAMMING] if PROGRAMMING in places else []
    if len(layers) == len(board.layers) > 1:
        shown.append("every crossbar layer")
    elif layers:
        more = f" and {len(layers) - 5} more" if len(layers) > 6 else ""
        shown.append(f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(repr, layers[:5] if more else layers))}"
                     + more)
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    text = f"its {listed} differ{'s' if len(names) == 1 and not names[0].endswith(')') else ''} from the " \
           f"Program's (in {' and '.join(shown)}): "
    if set(differences) <= _CALIBRATED_FIELDS:
        file_calibrated = all(plan.scale.x_fs is not None for plan in board.layers.values())
        program_calibrated = all(layer.input_full_scale is not None for layer in program.layers)
        fitted = "" if set(differences).isdisjoint(_COMPENSATION_FIELDS) else \
            " and the stuck-device compensation fitted with it"
        if program_calibrated and not file_calibrated:
            return text + ("it was emitted from a Program compiled without calibration, and this Program was "
                           f"compiled with it (--calibrate{fitted})")
        if file_calibrated and not program_calibrated:
            return text + (f"it was emitted from a Program compiled with calibration (--calibrate{fitted}), and "
                           "this Program was compiled without")
        return text + ("it was emitted from a Program compiled with other calibration data (--calibrate) or "
                       "stuck-device compensation, or one of the two was edited")
    return text + ("it was emitted from another compile of the model (another placement, other levels or copy "
                   "selections), or one of the two was edited")

