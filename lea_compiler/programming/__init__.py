"""Programming a chip: how a write leaves a device, what a board reads back, and the strategies that use the
read-back (open loop, closed loop) to leave an as-programmed Program (docs/programming.md)."""
