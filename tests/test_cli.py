"""The `qmap` entry point: dispatch, help texts, and torch staying unloaded for reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmark.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("fit", "suite", "report", "score", "data demo", "data check"):
        assert command in text


def test_unknown_command_fails(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_report_help_loads_no_torch():
    code = ("import sys\n"
            "from benchmark.cli import main\n"
            "try:\n    main(['report', '--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: qmap report" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_console_script_is_installed():
    qmap = Path(sys.executable).with_name("qmap")
    done = subprocess.run([str(qmap), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: qmap" in done.stdout
