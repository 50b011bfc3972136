"""The schedule: what a chip does to run a Program, as typed records, made once and run by both backends.

`records` declares the record types; `lower` makes them from a Program (programming section and inference
schedule, with the input and ADC range rule); `execute` runs a crossbar layer's records on given
conductances, vectorised over samples, copies and blocks. The board backend serialises the records and the
simulator executes them, so the two run the same machine (docs/board-format.md, docs/simulator.md).
"""
