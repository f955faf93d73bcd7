"""``qmap``: the one command-line entry point.

Subcommands:
    fit, validate, test, predict   LightningCLI over any method and data module (YAML configs)
    suite                          methods x datasets x seeds, finished runs skipped
    report                         tables, plots and report.html from run folders (loads no torch)
    preference                     preference matrices: BT, Thurstone JOD, bootstrap CIs (no torch)
    score                          score a folder of released outputs against targets
    data demo | check | align      build the offline demo sets; verify a dataset before a run;
                                   align weakly-paired captures into DPED-layout patch pairs

Heavy modules are imported only by the subcommand that needs them, so ``qmap report`` starts in
a fraction of a second and never loads torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

# W&B stays offline unless asked (an air-gapped cluster with a stored key would otherwise hang);
# albumentations would otherwise ask PyPI for a newer version on import.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Under CPU contention (DDP ranks, a second job) spinning OpenMP threads slow torch 10-30x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

USAGE = """usage: qmap <command> [options]

Training and evaluation (LightningCLI; `qmap fit --help` lists every option):
  fit | validate | test | predict   --config trainer.yaml --config method.yaml --config data.yaml

Benchmarks:
  suite SUITE.yaml [--out DIR]      run labelled methods x datasets x seeds, skipping finished runs
  report DIR [--out OUT]            tables, virtual-rater preference matrix, plots, report.html
  preference TRIALS.csv | --counts MATRIX.csv --out DIR
                                    preference matrix, Bradley-Terry and Thurstone JOD with bootstrap CIs
  score PRED_DIR TARGET_DIR --out DIR [--protocol d|f]
                                    score released outputs against targets, matched by image id
  toy [--out DIR] [--paper]         2-D toy study: WGAN, AdaWGAN, SWGAN, AdaSWGAN (figure + SW1/W1 tables)

Data:
  data demo --out DIR               build the offline demo benchmark from photos shipped in wheels
  data check ROOT [--split NAME]    verify a dataset: ids, split counts, partners, sizes, list hashes
  data align RAW_DIR --out DIR [--phone NAME] [--patch 100] [--max-residual PX]
                                    align phone/ and dslr/ captures into DPED-layout patch pairs

Configs ship in benchmark/configs/{trainer,methods,data,suites}.
"""


def _lightning(argv: list[str]) -> int:
    from benchmark.errors import find_user_error
    from benchmark.lightning_cli import run_lightning_cli

    try:
        run_lightning_cli(argv)
    except Exception as err:
        # A missing weight file or a bad image is the user's to fix: one clear message, no traceback.
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"qmap {argv[0]}: {user_error}", file=sys.stderr)
        return 1
    return 0


def _report(argv: list[str]) -> int:
    from reports.cli import main

    return main(argv)


def _preference(argv: list[str]) -> int:
    from reports.preference import main

    return main(argv)


def _score(argv: list[str]) -> int:
    from benchmark.score import main

    return main(argv)


def _suite(argv: list[str]) -> int:
    from benchmark.suite import main

    return main(argv)


def _run_one(argv: list[str]) -> int:
    from benchmark.suite import run_one_main

    return run_one_main(argv)


def _toy(argv: list[str]) -> int:
    from benchmark.toy import main

    return main(argv)


def _data(argv: list[str]) -> int:
    usage = ("usage: qmap data {demo,check,align} ...\n  demo --out DIR [--seed N] [--force]\n"
             "  check ROOT [--split NAME]\n"
             "  align RAW_DIR --out DIR [--phone NAME] [--patch 100] [--max-residual PX] [--part train|test]")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    from datamodules.align import main_align
    from datamodules.check import main_check, main_demo

    commands = {"demo": main_demo, "check": main_check, "align": main_align}
    if argv[0] not in commands:
        print(f"qmap data: unknown command {argv[0]!r}\n{usage}", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    **{name: _lightning for name in LIGHTNING_SUBCOMMANDS},
    "suite": _suite,
    "report": _report,
    "preference": _preference,
    "score": _score,
    "data": _data,
    "toy": _toy,
    "_run-one": _run_one,  # internal: one suite run in its own process (multi-device runs)
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``qmap <command>``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"qmap: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    # LightningCLI reads the subcommand itself; the others get only their own arguments.
    return command(argv if argv[0] in LIGHTNING_SUBCOMMANDS else argv[1:])


if __name__ == "__main__":
    sys.exit(main())
