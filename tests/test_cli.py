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


def test_missing_vgg_weights_give_one_message_not_a_traceback(tmp_path, tiny_paired):
    """`qmap fit` with the paper's VGG-19 content loss and no weight file: exit 1, one clear line."""
    import os

    configs = REPO / "benchmark" / "configs"
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty_torch_home"), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "fit", "--config", str(configs / "trainer/quick.yaml"),
         "--config", str(configs / "methods/dped.yaml"), "--config", str(configs / "data/demo.yaml"),
         "--data.init_args.root", str(tiny_paired), "--data.init_args.split", "tiny", "--trainer.max_steps", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "vgg19-dcbb9e9d.pth" in done.stderr
    assert str(tmp_path / "empty_torch_home" / "hub" / "checkpoints") in done.stderr
