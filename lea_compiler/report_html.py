"""One page per Program (`leac report`): what was compiled, where it went, what it costs and, with data, how
accurate it is; as a self-contained HTML page and as the same facts in JSON.

Nothing here computes anything new. The facts are those of the reports leac already makes, called and not
copied: `compiler.program_summary` (the `leac compile` report's layers, devices, placement cost and solver
status), `plot_placement` (the picture and the stuck devices under each copy), `backends.cost.estimate_cost`
(the cost model) and, with data, `backends.sim.simulate_trials` (the `leac simulate` report, with its spread
over noise draws).

The page has no script and loads nothing: the placement picture is inlined as base64 PNG data URIs, the style
is inline, and a Content-Security-Policy forbids everything else, so it opens offline and from an e-mail
attachment alike. Every value that comes from a file (model, layer, chip, data and file names, the Program's
options, placement and `-k auto` records) is escaped with `html.escape` after `tables.printable`, numbers too
(`_num` and `_pct` show anything that is not a number as escaped text), so a layer named `<script>` is shown,
never run, and a Program that got past its checks cannot add markup. At most `MAX_INLINE_PAGES` pages of the
placement picture are inlined, and every Figure is rendered and dropped before the next is drawn.
"""

from __future__ import annotations

import base64
import html
import logging
import numbers
from collections.abc import Sequence
from typing import Any

from lea_compiler.backends.cost import estimate_cost, timing_json
from lea_compiler.backends.sim import simulate_trials
from lea_compiler.compiler import program_summary
from lea_compiler.datasets import Dataset
from lea_compiler.errors import UsageError
from lea_compiler.plot_placement import DEFAULT_PER_PAGE, PlacementPicture, placed_halves, render_placement
from lea_compiler.program import Program
from lea_compiler.program.checks import is_finite_number
from lea_compiler.tables import printable

logger = logging.getLogger(__name__)

SECTIONS = {"summary": "Compile summary", "layers": "Layers", "placement": "Placement", "accuracy": "Accuracy",
            "cost": "Cost"}
"""The page's sections, by their HTML id, in order."""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_INLINE_PAGES = 10
"""Most placement picture pages drawn and inlined in one report: a page of 32 arrays (the Yin-Yang MLP at k = 3 on
the paper-like chip) is a PNG of 177 kB, so 10 pages are some 2.4 MB of base64. The report names the arrays of
the others and how to draw them (`leac show --png`)."""


def make_report(program: Program, *, source: str, output: str | None, datasets: Sequence[Dataset] = (),
                trials: int = 5, seed: int = 0, threads: int = 1, model_output: str | None = None,
                per_page: int = DEFAULT_PER_PAGE, all_arrays: bool = False) -> tuple[dict[str, Any], str]:
    """The `leac-report` facts and the HTML page of a Program.

    Args:
        program: The compiled (or as-programmed) Program.
        source: The Program's file, as the user named it.
        output: The HTML file the page goes to, for the facts (None: not written).
        datasets: Test sets to simulate on (none: no accuracy section but a note).
        trials: Independent noise draws to simulate (seeds seed .. seed + trials - 1).
        seed: The first draw's seed.
        threads: Worker threads of the simulator.
        model_output: The model output the top-1 is taken from (`leac simulate --output`).
        per_page, all_arrays: How the placement picture is paginated (`leac show`).

    Raises:
        UsageError: bad `trials`; what `simulate_trials` raises. Without matplotlib the page says that the
            picture needs the plot extra (and the facts have `placement.picture` false) rather than failing.
    """
    halves = placed_halves(program)
    picture: PlacementPicture | None = None
    note = None
    try:
        picture = render_placement(program, per_page=per_page, all_arrays=all_arrays, max_pages=MAX_INLINE_PAGES)
    except UsageError as exc:
        if "plot extra" not in str(exc):
            raise
        note = str(exc)
        logger.warning("no placement picture: %s", exc)
    simulation = None
    if datasets:
        report = simulate_trials(program, datasets, trials=trials, seed=seed, threads=threads,
                                 output=model_output)
        simulation = {**report.to_json(), "program": source}
    cost = estimate_cost(program)
    stuck: dict[str, int] = {layer.name: 0 for layer in program.layers}
    for half in halves:
        stuck[half.layer] += half.stuck
    facts: dict[str, Any] = {
        "report": "leac-report",
        "version": 1,
        "program": source,
        "output": output,
        **program_summary(program),
        "leac_version": program.leac_version,
        "as_programmed": program.as_programmed,
        "placement": {
            "picture": picture is not None,
            "note": note,
            "pages": [] if picture is None else [{"arrays": list(arrays)} for arrays in picture.arrays],
            "pages_not_inlined": [] if picture is None else [{"arrays": list(arrays)}
                                                             for arrays in picture.not_rendered],
            "arrays_not_drawn": [] if picture is None else list(picture.omitted),
            "block_copies": len(halves) // 2,
            "stuck_under_copies": stuck,
        },
        "cost": {
            "cycles_per_inference": cost.cycles_per_inference,
            "latency_ns": cost.latency_ns,
            "throughput_per_s": cost.throughput_per_s,
            **timing_json(cost),
            "energy_pJ_per_inference": cost.energy_pJ_per_inference,
            "energy_breakdown_pJ": dict(cost.energy_breakdown_pJ),
            "program_pulses": cost.program_pulses,
            "program_time_s": cost.program_time_s,
            "program_energy_uJ": cost.program_energy_uJ,
        },
        "simulation": simulation,
    }
    return facts, render_html(facts, [] if picture is None else list(picture.pages))


# ----------------------------------------------------------------------------------------------------------
# The page


def _e(value: object) -> str:
    """A value from a file as HTML text: control characters escaped (printable), then HTML-escaped."""
    return html.escape(printable(value), quote=True)


def _pct(value: object, digits: int = 1) -> str:
    """A fraction as a percentage; None as a dash; anything else (never from leac) as escaped text."""
    if value is None:
        return "&ndash;"
    if not is_finite_number(value):
        return _e(value)
    return f"{100 * float(value):.{digits}f}%"  # type: ignore[arg-type]


def _num(value: object, unit: str = "", digits: int = 3) -> str:
    """A number for people: thousands separated from 1000 on, else `digits` significant digits; None as a dash;
    anything else (never from leac) as escaped text."""
    if value is None:
        return "&ndash;"
    if not is_finite_number(value):
        text = _e(value)
    elif isinstance(value, numbers.Integral) or abs(value) >= 1000:  # type: ignore[arg-type]
        text = f"{value:,.0f}"
    else:
        text = f"{float(value):.{digits}g}"  # type: ignore[arg-type]
    return f"{text}&nbsp;{_e(unit)}" if unit else text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "") -> str:
    """An HTML table; the cells are HTML already (escape with _e first)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts_table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table class=\"facts\"><tbody>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + \
        "</tbody></table>"


def _bar(parts: Sequence[tuple[str, float, str]], unit: str) -> str:
    """A stacked horizontal bar (name, value, colour), each part's width its share, with a legend."""
    total = sum(value for _, value, _ in parts)
    if total <= 0:
        return ""
    cells = "".join(f'<span class="seg" style="width:{100 * value / total:.2f}%;background:{colour}" '
                    f'title="{_e(name)}"></span>' for name, value, colour in parts)
    legend = " &middot; ".join(f'<span class="key" style="background:{colour}"></span>{_e(name)} '
                               f"{_num(value, unit)} ({100 * value / total:.0f}%)"
                               for name, value, colour in parts)
    return f'<div class="bar">{cells}</div><p class="legend">{legend}</p>'


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.6em}
.meta{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{padding:.25em .7em;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #bbb}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{font-weight:normal;color:#555}
img{max-width:100%;height:auto;border:1px solid #ddd}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
.bar{display:flex;height:1.2em;width:100%;max-width:700px;border:1px solid #bbb}
.seg{display:block;height:100%}
.key{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.3em}
.legend{font-size:.9em;color:#444}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:.4em .8em}
"""


def render_html(facts: dict[str, Any], pages: Sequence[bytes]) -> str:
    """The self-contained HTML page of a `leac-report` (`make_report`'s facts) with the picture's PNG pages."""
    title = f"leac report: {printable(facts['model'])} on {printable(facts['chip'] or 'chip')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">Program {_e(facts["program"])}, compiled by leac {_e(facts["leac_version"])}'
        f'{" (as programmed)" if facts["as_programmed"] else ""}; chip fingerprint '
        f'<code>{_e(facts["chip_fingerprint"][:16])}&hellip;</code></p>',
        '<nav><p>' + " &middot; ".join(f'<a href="#{key}">{name}</a>' for key, name in SECTIONS.items()) +
        "</p></nav>",
        _summary(facts),
        _layers(facts),
        _placement(facts, pages),
        _accuracy(facts),
        _cost(facts),
        f'<footer class="meta"><p>leac report, {_e(facts["leac_version"])}. The same facts: '
        "<code>leac report PROGRAM --json</code> (docs/reports.md, leac-report).</p></footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{SECTIONS[key]}</h2>\n{body}\n</section>'


def _summary(f: dict[str, Any]) -> str:
    gap = f["optimality_gap"]
    used, total = f["devices_used"], f["devices_total"]
    rows = [
        ("model", _e(f["model"])),
        ("chip", _e(f["chip"])),
        ("crossbar layers", str(len(f["layers"]))),
        ("copies per block (k)", _e(f["k"]) + (" (network ensemble)" if f["ensemble"] == "network" else "")),
        ("averaged per column (beta)", _e(f["beta"])),
        ("encoding", _e(f["encoding"])),
        ("devices", f"{_e(used)} of {_e(total)} ({100 * used / total:.1f}%)"),
        ("arrays", f"{_e(f['arrays_used'])} of {_e(f['arrays_total'])}"),
        ("block copies", f"{f['placement']['block_copies']} ({2 * f['placement']['block_copies']} halves, "
                         "G+ and G&minus;)"),
        ("placer", f"{_e(f['placer'])} ({_e(f['solver_method'])})"),
        ("solver status", _e(f["solver_status"])),
        ("placement cost", _num(f["mapping_error_uS"], "uS", 6)),
        ("lower bound", _num(f["solver_bound_uS"], "uS", 6)),
        ("optimality gap", _pct(gap, 2)),
        ("weight error", _num(f["effective_error_uS"], "uS", 6)),
        ("calibration", _e(f["calibration"]) if f["calibration"] else "none (ranges set per input vector)"),
    ]
    if "allocation" in f:
        rows.append(("-k auto", _allocation(f["allocation"])))
    return _section("summary", _facts_table(rows))


def _allocation(allocation: object) -> str:
    """The `-k auto` row: the counts chosen, the budget and the predicted agreement. `program_problems` has
    checked their shape (`extra.allocation`); whatever the shape, every value is escaped and nothing raises."""
    if not isinstance(allocation, dict):
        return _e(allocation)
    counts = allocation.get("counts")
    chosen = (", ".join(f"{_e(k)}={_e(v)}" for k, v in counts.items()) if isinstance(counts, dict)
              else _e(counts))
    return (f"{chosen} within {_e(allocation.get('budget'))} devices; predicted agreement "
            f"{_pct(allocation.get('predicted_agreement'))}")


def _layers(f: dict[str, Any]) -> str:
    sim = f["simulation"]
    stuck = f["placement"]["stuck_under_copies"]
    header = ["layer", "matrix", "blocks", "alpha/beta", "devices", "quant. error", "placement cost",
              "stuck under copies", "weight error", "compensated columns"]
    if sim is not None:
        header.append("output error (simulated)")
    rows = []
    for layer in f["layers"]:
        row = [_e(layer["name"]), f"{_e(layer['rows'])} &times; {_e(layer['cols'])}", _e(layer["blocks"]),
               f"{_e(layer['alpha'])}/{_e(layer['beta'])}", _e(layer["devices"]),
               _pct(layer["quantization_relative_rms_error"], 2), _num(layer["mapping_error_uS"], "uS", 6),
               _e(stuck[layer["name"]]), _num(layer["effective_error_uS"], "uS", 6),
               f"{_e(layer['compensated_columns'])} of {_e(layer['cols'])}"]
        if sim is not None:
            row.append(_pct(sim["layer_output_error"].get(layer["name"]), 2))
        rows.append(row)
    notes = ("<p class=\"legend\"><b>quant. error</b>: RMS error of the weights the device levels can represent, "
             "over the RMS weight. <b>placement cost</b>: what the placer minimised, |G<sub>stuck</sub> &minus; "
             "G<sub>target</sub>| over the stuck devices of every copy, plus on a chip whose lines have resistance "
             "each copy's expected IR-drop loss of conductance at its place. <b>weight error</b>: |mean of the "
             "averaged copies' G+ &minus; G&minus; minus their aim|, summed over the weights. "
             + ("<b>output error</b>: relative RMS error of the layer's output against the digital reference, "
                "simulated on the data. " if sim is not None else "")
             + "docs/reports.md (leac-compile) says more.</p>")
    return _section("layers", _table(header, rows) + notes)


def _placement(f: dict[str, Any], pages: Sequence[bytes]) -> str:
    p = f["placement"]
    if not p["picture"]:
        return _section("placement", f'<p class="note">No picture: {_e(p["note"])}.</p>')
    parts = []
    for n, (data, page) in enumerate(zip(pages, p["pages"], strict=True), start=1):
        arrays = page["arrays"]
        total = len(pages) + len(p["pages_not_inlined"])
        caption = (f"Page {n} of {total}: arrays {arrays[0]}&ndash;{arrays[-1]}" if arrays else
                   f"Page {n} of {total}")
        src = base64.b64encode(data).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{src}" alt="placement, page {n} of {total}">'
                     f"<figcaption>{caption}</figcaption></figure>")
    if p["pages_not_inlined"]:
        more = p["pages_not_inlined"]
        arrays = [array for page in more for array in page["arrays"]]
        parts.append(f'<p class="note">{len(more)} more pages (arrays {_e(arrays[0])}&ndash;{_e(arrays[-1])}) are '
                     f"not inlined: a report holds at most {MAX_INLINE_PAGES} pages. <code>leac show PROGRAM --png "
                     "OUT.png</code> draws them all.</p>")
    if p["arrays_not_drawn"]:
        parts.append(f"<p>{len(p['arrays_not_drawn'])} arrays hold no copy and are not drawn.</p>")
    intro = ("<p>Every copy half as a rectangle in its layer's colour over the chip's defect map (G+ solid edge, "
             "G&minus; dashed), labelled with its layer, block and copy; stuck devices under a copy are marked "
             "&times;, columns a copy does not average are hatched, arrays holding no copy are faded. "
             "<code>leac show PROGRAM</code> lists every half.</p>")
    return _section("placement", intro + "\n".join(parts))


def _accuracy(f: dict[str, Any]) -> str:
    sim = f["simulation"]
    if sim is None:
        return _section("accuracy", '<p class="note">No data given: <code>leac report PROGRAM --data '
                                    "TEST.npz</code> simulates the Program and reports its accuracy here.</p>")
    rows = [[_e(d["name"]), str(d["samples"]), _pct(d["accuracy"]), _pct(d["software_accuracy"]),
             _pct(d["agreement"])] for d in sim["data"]]
    if len(sim["data"]) > 1:
        rows.append(["mean", "", _pct(sim["accuracy"]), _pct(sim["software_accuracy"]), _pct(sim["agreement"])])
    body = _table(["data", "samples", "accuracy on the chip", "software (onnxruntime)", "agreement"], rows)
    trials = sim.get("trials")
    if trials is not None:
        seeds = trials["seeds"]
        body += (f"<p>Over {trials['count']} independent noise draws (seeds {seeds[0]}&ndash;{seeds[-1]}): "
                 f"accuracy <b>{_pct(trials['mean'])} &plusmn; {_pct(trials['std'])}</b> (standard deviation), "
                 f"from {_pct(trials['min'])} to {_pct(trials['max'])}; software "
                 f"{_pct(sim['software_accuracy'])}. The table is seed {seeds[0]}'s.</p>")
    else:
        body += f"<p>One noise draw (seed {sim['seed']}); <code>--trials N</code> gives the spread.</p>"
    mode = "ideal devices" if sim["ideal"] else "write and read noise, stuck devices"
    body += f'<p class="legend">Simulated with {mode}; leac simulate --json gives the same report.</p>'
    return _section("accuracy", body)


def _cost(f: dict[str, Any]) -> str:
    c = f["cost"]
    e = c["energy_breakdown_pJ"]
    rows = [("latency per inference", f"{_num(c['latency_ns'] / 1e3, 'us')} ({_num(c['cycles_per_inference'])} "
                                      "cycles)"),
            ("throughput", _num(c["throughput_per_s"], "inferences/s")),
            ("energy per inference", _num(c["energy_pJ_per_inference"], "pJ")),
            ("programming", f"{c['program_pulses']} write-verify pulses, {_num(c['program_time_s'] * 1e3, 'ms')}, "
                            f"{_num(c['program_energy_uJ'], 'uJ')}")]
    body = _facts_table(rows)
    b = c["busy_ns"]
    body += (f"<h3>Where the time goes (one inference; busy time summed over the resources, which overlap; the "
             f"bottleneck, {html.escape(c['bottleneck'])}, is busy {_num(c['period_ns'], 'ns')} a sample)</h3>") + _bar(
        [("DAC settling", b["dac"], "#54a24b"), ("crossbar reads", b["read"], "#4c78a8"),
         ("ADC conversions", b["adc"], "#f58518"), ("digital periphery", b["digital"], "#e45756")], "ns")
    body += "<h3>Where the energy goes (one inference)</h3>" + _bar(
        [("device reads", e["device_reads"], "#4c78a8"), ("ADC", e["adc"], "#f58518"),
         ("DAC", e["dac"], "#54a24b"), ("digital", e["digital"], "#e45756"),
         ("static", e["static"], "#b279a2")], "pJ")
    body += '<p class="legend">The cost model of docs/simulator.md, on the chip the Program was compiled for.</p>'
    return _section("cost", body)
