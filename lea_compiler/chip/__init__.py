"""The chip: its crossbar arrays, their defects, and the device and periphery models.

This package implements the `leac-chip` file format, version 1, exactly as
docs/chip-format.md defines it. Its modules, each building on the ones before:

- fields.py: the format's constants and what each single value may be (the messages for one that is not);
- variability.py: the optional conductance-dependent noise models and drift (`NoiseModel`, `DriftModel`);
- parts.py: `DeviceModel` (with its `ProgrammingModel`), `Periphery` (with its `LineModel`), `Array`, `Defect`;
- store.py: the defects as numpy columns (`DefectTable`), their conflict checks, stuck-map plans;
- validate.py: every rule over a whole chip, in bulk, with every problem named by its JSON path;
- defect_text.py: the common defect entry (one device, no g_uS) as JSON text, written and read in bulk;
- forms.py: the chip as JSON, its file text and its fingerprint's canonical text;
- model.py: `Chip`, valid by construction, and its queries (stuck maps, counts, summary, fingerprint);
- io.py: loading (every problem of a bad file collected) and saving chip files;
- synth.py: synthetic chips like the seed paper's; measured.py: chips from measured conductance maps.

Orientation everywhere: an array's rows are word lines (inputs), its columns
are bit lines (outputs); indices start at 0.
"""

from lea_compiler.chip.fields import (
    FORMAT,
    GAUSSIAN,
    MAX_BITS,
    MAX_FILE_BYTES,
    MAX_LEVELS,
    MAX_PROBLEMS,
    PULSE,
    STATES,
    STUCK_HIGH,
    STUCK_LOW,
    VERSION,
)
from lea_compiler.chip.forms import chip_to_json, chip_to_text
from lea_compiler.chip.io import decode_chip_json, load_chip, parse_chip, parse_chip_text, save_chip
from lea_compiler.chip.measured import MapSource, import_maps, import_measured, load_conductance_map
from lea_compiler.chip.model import Chip
from lea_compiler.chip.parts import (
    Array,
    Defect,
    DeviceModel,
    LineModel,
    Periphery,
    ProgrammingModel,
    level_index_dtype,
)
from lea_compiler.chip.synth import synth_chip
from lea_compiler.chip_limits import MAX_ARRAY_COLS, MAX_ARRAY_DEVICES, MAX_ARRAY_ROWS, MAX_ARRAYS, MAX_DEVICES

__all__ = [
    "FORMAT",
    "MAX_ARRAYS",
    "MAX_ARRAY_COLS",
    "MAX_ARRAY_DEVICES",
    "MAX_ARRAY_ROWS",
    "MAX_BITS",
    "MAX_DEVICES",
    "MAX_FILE_BYTES",
    "MAX_LEVELS",
    "MAX_PROBLEMS",
    "STATES",
    "STUCK_HIGH",
    "STUCK_LOW",
    "VERSION",
    "Array",
    "Chip",
    "Defect",
    "DeviceModel",
    "LineModel",
    "MapSource",
    "Periphery",
    "ProgrammingModel",
    "GAUSSIAN",
    "PULSE",
    "chip_to_json",
    "chip_to_text",
    "decode_chip_json",
    "import_maps",
    "import_measured",
    "level_index_dtype",
    "load_chip",
    "load_conductance_map",
    "parse_chip",
    "parse_chip_text",
    "save_chip",
    "synth_chip",
]
