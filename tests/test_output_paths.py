"""Outputs never replace anything but a regular file, and never an input (issue 13, items 1 and 2).

Device nodes, FIFOs and sockets are made inside the test's temporary folder; nothing touches /dev.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lea_compiler.cli import main
from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_bytes, check_output
from tests.helpers import save_mlp_and_chip


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _char_device(path: Path) -> Path:
    # device numbers 1, 3 (the null device), made in tmp_path; needs root (CAP_MKNOD), as leac run as root has
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    sockets: list[socket.socket] = []

    def make(path: Path) -> Path:
        if len(str(path)) > 100:
            pytest.skip("temporary folder too deep for a unix socket path")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        sockets.append(server)
        return path

    yield make
    for server in sockets:
        server.close()


def _kinds(unix_socket: Callable[[Path], Path]) -> dict[str, tuple[Callable[[Path], Path], str]]:
    return {"fifo": (_fifo, "is a FIFO"), "device": (_char_device, "is a character device"),
            "socket": (unix_socket, "is a socket")}


def _same_kind(path: Path, kind: str) -> bool:
    mode = path.lstat().st_mode
    return {"fifo": stat.S_ISFIFO, "device": stat.S_ISCHR, "socket": stat.S_ISSOCK}[kind](mode)


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_atomic_write_refuses_what_is_not_a_regular_file(kind: str, tmp_path: Path, unix_socket) -> None:
    make, message = _kinds(unix_socket)[kind]
    target = make(tmp_path / "target")
    with pytest.raises(UsageError, match=message):
        atomic_write_bytes(target, b"data")
    assert _same_kind(target, kind)
    assert os.listdir(tmp_path) == ["target"]  # no temporary file left


def test_atomic_write_refuses_a_symlink_to_a_fifo(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "fifo")
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(UsageError, match="is a FIFO"):
        atomic_write_bytes(link, b"data")
    assert link.is_symlink() and stat.S_ISFIFO(fifo.stat().st_mode)


def test_check_output_accepts_new_and_regular_files(tmp_path: Path) -> None:
    check_output(tmp_path / "new.leac", [])
    (tmp_path / "old.leac").write_bytes(b"old")
    check_output(tmp_path / "old.leac", [None, tmp_path / "other"])


@pytest.fixture
def mlp_and_chip(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    return save_mlp_and_chip(folder)


def _program(tmp_path: Path, model: Path, chip: Path) -> Path:
    program = tmp_path / "in" / "mlp.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "1", "-o", str(program)]) == 0
    return program


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
@pytest.mark.parametrize("command", ["compile", "emit", "chip synth", "chip show --png", "compile --jobs 1"])
def test_commands_refuse_an_output_that_is_not_a_regular_file(
    command: str, kind: str, tmp_path: Path, mlp_and_chip, unix_socket, capsys
) -> None:
    model, chip = mlp_and_chip
    make, message = _kinds(unix_socket)[kind]
    out = tmp_path / "out"
    out.mkdir()
    if command == "compile --jobs 1":  # a batch writes OUTDIR/STEM.leac for every chip
        target = make(out / f"{chip.stem}.leac")
        argv = ["compile", str(model), "--chip", str(chip), "--jobs", "1", "-o", str(out)]
    else:
        target = make(out / "target")
        argv = {
            "compile": ["compile", str(model), "--chip", str(chip), "-k", "1", "-o", str(target)],
            "emit": ["emit", str(_program(tmp_path, model, chip)) if command == "emit" else "", "--target", "board",
                     "-o", str(target)],
            "chip synth": ["chip", "synth", "--arrays", "2", "--seed", "0", "-o", str(target)],
            "chip show --png": ["chip", "show", str(chip), "--png", str(target)],
        }[command]
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err and "never replaces" in err
    assert _same_kind(target, kind)
    assert sorted(os.listdir(out)) == [target.name]  # nothing else written beside it


def test_compile_refuses_to_write_over_its_calibration_data(mlp_and_chip, tmp_path: Path, capsys) -> None:
    model, chip = mlp_and_chip
    calibration = tmp_path / "cal.npz"
    np.savez(calibration, x=np.zeros((4, 4), np.float32), y=np.zeros(4, np.int64))
    before = calibration.read_bytes()
    for output in (calibration, tmp_path / "." / "cal.npz"):
        status = main(["compile", str(model), "--chip", str(chip), "-k", "1", "--calibrate", str(calibration),
                       "-o", str(output)])
        assert status == 2
        assert "refusing to write over the input file" in capsys.readouterr().err
        assert calibration.read_bytes() == before


# ---- inputs that are not regular files (issue 13, item 13)


def _zero_device(path: Path) -> Path:
    try:  # the numbers of /dev/zero, made inside the test's folder; needs root
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


@pytest.mark.parametrize("kind", ["fifo", "zero device", "link to zero device"])
@pytest.mark.parametrize("command", ["simulate", "emit", "board validate", "chip validate"])
def test_readers_refuse_inputs_that_are_not_regular_files(command: str, kind: str, tmp_path: Path, capsys) -> None:
    if kind == "fifo":
        source, message = _fifo(tmp_path / "input"), "is a FIFO"
    else:
        source, message = _zero_device(tmp_path / "zero"), "is a character device"
        if kind.startswith("link"):
            source = tmp_path / "input"
            source.symlink_to(tmp_path / "zero")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((2, 4), np.float32), y=np.zeros(2, np.int64))
    argv = {
        "simulate": ["simulate", str(source), "--data", str(data)],
        "emit": ["emit", str(source), "--target", "board", "-o", str(tmp_path / "out.jsonl")],
        "board validate": ["board", "validate", str(source)],
        "chip validate": ["chip", "validate", str(source)],
    }[command]
    before = sorted(os.listdir(tmp_path))
    assert main(argv) == 3  # at once: a FIFO without a writer, or /dev/zero, is never read
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("looped", ["input", "output"])
def test_a_symlink_loop_as_input_or_output_is_refused_without_a_traceback(
        looped: str, mlp_and_chip, tmp_path: Path, capsys) -> None:
    """Path.resolve() raised RuntimeError ("Symlink loop") in check_output: exit 1 with a traceback."""
    model, chip = mlp_and_chip
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop.name)
    out = tmp_path / "out.leac"
    argv = ["compile", str(model), "--chip", str(loop), "-k", "1", "-o", str(out)] if looped == "input" else \
        ["compile", str(model), "--chip", str(chip), "-k", "1", "-o", str(loop)]
    before = sorted(os.listdir(tmp_path))
    assert main(argv) in (2, 3)
    err = capsys.readouterr().err
    assert err.startswith("leac: error: ") and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before and loop.is_symlink()


# ---- output paths that name a folder, or are empty


@pytest.mark.parametrize("output", ["newdir/", "newdir/.", ".."])
@pytest.mark.parametrize("command", ["compile", "emit", "chip synth", "report", "program", "program --readback",
                                     "chip show --png"])
def test_an_output_path_naming_a_folder_is_refused(command: str, output: str, mlp_and_chip, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`-o newdir/` wrote a regular file named `newdir` (Path drops the trailing slash)."""
    model, chip = mlp_and_chip
    program = _program(tmp_path, model, chip)
    monkeypatch.chdir(tmp_path)
    option = "--readback" if command == "program --readback" else "--png" if command == "chip show --png" else "-o"
    argv = {
        "compile": ["compile", str(model), "--chip", str(chip), "-k", "1", "-o", output],
        "emit": ["emit", str(program), "--target", "board", "-o", output],
        "chip synth": ["chip", "synth", "--arrays", "2", "--seed", "0", "-o", output],
        "report": ["report", str(program), "-o", output],
        "program": ["program", str(program), "-o", output],
        "program --readback": ["program", str(program), "-o", "p.leac", "--readback", output],
        "chip show --png": ["chip", "show", str(chip), "--png", output],
    }[command]
    before = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == f"leac: error: {option} {output}: the path names a folder; give a file name\n"
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("command", ["compile", "compile many", "emit", "chip synth", "report", "program",
                                     "program --readback", "chip import --conductances"])
def test_an_empty_output_path_is_a_usage_error(command: str, mlp_and_chip, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`compile -o ""` wrote MODEL.leac, `emit -o ""` said '-o : is a directory'."""
    model, chip = mlp_and_chip
    program = _program(tmp_path, model, chip)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "map.txt").write_text("1e-4 2e-4\n3e-4 1e-4\n")
    argv = {
        "compile": ["compile", str(model), "--chip", str(chip), "-k", "1", "-o", ""],
        "compile many": ["compile", str(model), "--chip", str(chip), "--jobs", "1", "-o", ""],
        "emit": ["emit", str(program), "--target", "board", "-o", ""],
        "chip synth": ["chip", "synth", "--arrays", "2", "--seed", "0", "-o", ""],
        "report": ["report", str(program), "-o", ""],
        "program": ["program", str(program), "-o", ""],
        "program --readback": ["program", str(program), "-o", "p.leac", "--readback", ""],
        "chip import --conductances": ["chip", "import", "map.txt", "-o", "c.json", "--conductances", ""],
    }[command]
    message = {
        "compile many": "with many chips, -o OUTDIR names the output folder for the Programs and reports (-o is "
                        "empty)",
        "program --readback": "--readback: the path is empty; give a file name",
        "chip import --conductances": "--conductances: the path is empty; give a file name",
    }.get(command, "-o: the path is empty; give a file name")
    before = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == f"leac: error: {message}\n"
    assert sorted(os.listdir(tmp_path)) == before


def test_atomic_write_refuses_an_empty_path_or_a_folder_name(tmp_path: Path) -> None:
    """Every output goes through atomic_write_bytes, so an API call is refused there too."""
    for path, message in [("", "^output: the path is empty"), (f"{tmp_path}/newdir/", "the path names a folder")]:
        with pytest.raises(UsageError, match=message):
            atomic_write_bytes(path, b"data")
    assert os.listdir(tmp_path) == []
