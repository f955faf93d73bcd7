"""LightningCLI wiring: any method x any data module, with the Evaluator always attached.

``class_path`` in the YAML is the registry: ``baselines.hdrnet.HDRNet`` is a real import path,
so adding a method needs no registration step.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI

from baselines.base import EnhancementMethod
from benchmark.evaluation import Evaluator


class BenchmarkCLI(LightningCLI):
    """LightningCLI with the Evaluator as a forced, configurable callback (``--evaluator.*``)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(Evaluator, "evaluator")


def build_cli(args: list[str] | dict[str, Any] | None = None, run: bool = True, save_config: bool = True) -> BenchmarkCLI:
    """Parse ``args`` (a command line or a config dict) and instantiate trainer, model and data."""
    kwargs: dict[str, Any] = {}
    if not save_config:
        kwargs["save_config_callback"] = None
    # A config dict parsed for later use (suite runs) must not see the calling command's options;
    # a real command line (run=True) keeps sys.argv intact because DDP relaunches it.
    with _argv_without_options(isinstance(args, dict)):
        return BenchmarkCLI(
            model_class=EnhancementMethod,
            subclass_mode_model=True,
            datamodule_class=L.LightningDataModule,
            subclass_mode_data=True,
            seed_everything_default=0,
            # A method's optimisers are typed constructor arguments: one source of truth.
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
            **kwargs,
        )


@contextmanager
def _argv_without_options(active: bool):
    """Hide the calling command's options while LightningCLI parses explicit ``args``.

    LightningCLI warns when it gets ``args`` and ``sys.argv`` carries options too (as it does
    inside ``qmap suite`` or pytest). Only the parse sees the shortened ``sys.argv``: DDP
    relaunches read the real one later.
    """
    saved = sys.argv
    if active:
        sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def run_lightning_cli(argv: list[str]) -> None:
    """Run ``qmap fit|validate|test|predict ...``."""
    # When argv is this process's own command line, let LightningCLI read sys.argv itself.
    build_cli(None if argv == sys.argv[1:] else argv, run=True)
