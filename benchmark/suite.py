"""Suites: labelled method rows x datasets x seeds, each run trained once and scored.

A suite YAML names a trainer config, datasets (label -> data config) and rows (label -> method
config + overrides, optionally restricted to some datasets with ``datasets: [...]``, since a GAN
for unpaired data has no business on a weakly-paired set). Every (row, dataset, seed) becomes one
run folder
``<out>/<suite>/<label>__<dataset>__s<seed>/`` holding ``config.yaml`` (the composed, resolved
configuration, usable with ``qmap fit --config``), ``run.json``, ``rows.csv``, ``samples/`` and
``checkpoints/last.ckpt``. A run is skipped only when its ``run.json`` says ``done`` and its
config hash matches; editing a config reruns it.

Runs built on other runs' weights (video rows):

* ``checkpoint_from: <dataset>`` (row key): on every *other* dataset of the row, the run trains
  nothing and scores the last checkpoint of the row's own run on ``<dataset>`` — how image methods
  get video rows from their image checkpoints, frame by frame. The row's ``data.*`` overrides
  configure that training data and are not applied to these runs.
* ``init_from: {row: <label>, dataset: <dataset>}`` (row key): the method starts from the last
  checkpoint of run ``<label>`` on ``<dataset>`` (same seed), passed as the model's
  ``init_checkpoint`` argument, and is then trained (recurrent DACAL fine-tuned from DACAL).

Such a run follows its source: it runs after it, its config hash includes the source's, it
reruns whenever the source reran, and it fails with a clear message when the source has no
checkpoint. run.json records ``checkpoint_from`` / ``init_from`` (label, dataset, run id, file).

One device: runs execute in this process (one start-up cost for the whole suite). More than one
device: each run is its own process (``qmap _run-one RUN_DIR``), because DDP relaunches the
command line of the process that starts it and must relaunch one run, never the whole suite.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmark import results

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
TRAINER_PASSTHROUGH = ("accelerator", "devices", "strategy", "num_nodes", "precision")
# Entries that say where things go, not what is computed: excluded from the config hash so a
# moved output folder does not rerun everything (a source checkpoint is hashed by its run's config).
INIT_ARGUMENT = "init_checkpoint"  # the model argument that receives an init_from checkpoint
_UNHASHED = (("evaluator",), ("trainer", "default_root_dir"))
CHECKPOINT = Path("checkpoints") / "last.ckpt"  # where a run's last weights land (ModelCheckpoint save_last)


@dataclass
class RunSpec:
    """One run of a suite: its id, folder, composed config and metadata for run.json."""

    suite: str
    label: str
    dataset: str
    seed: int
    run_dir: Path
    config: dict[str, Any]
    quick: bool = False
    notes: list[str] = field(default_factory=list)
    order: int = 0  # the row's position in the suite: tables list methods in this order
    checkpoint_from: RunSpec | None = None  # score this run's last checkpoint; train nothing
    init_from: RunSpec | None = None  # start from this run's last checkpoint, then train

    @property
    def run_id(self) -> str:
        return results.make_run_id(self.label, self.dataset, self.seed)

    @property
    def checkpoint(self) -> Path:
        """The run's last checkpoint (written when the method trains)."""
        return self.run_dir / CHECKPOINT

    @property
    def sources(self) -> list[RunSpec]:
        return [spec for spec in (self.checkpoint_from, self.init_from) if spec is not None]

    @property
    def config_hash(self) -> str:
        hashed = copy.deepcopy(self.config)
        for path in _UNHASHED:
            _pop_path(hashed, path)
        if self.checkpoint_from is not None:
            hashed["checkpoint_from"] = self.checkpoint_from.config_hash
        if self.init_from is not None:  # its checkpoint path says where, its config what
            _pop_path(hashed, ("model", "init_args", INIT_ARGUMENT))
            hashed["init_from"] = self.init_from.config_hash
        return results.config_hash(hashed)

    def source_info(self) -> dict[str, Any]:
        """run.json entries naming the runs whose weights this run uses."""
        return {name: {"label": spec.label, "dataset": spec.dataset, "run_id": spec.run_id,
                       "checkpoint": str(spec.checkpoint)}
                for name, spec in (("checkpoint_from", self.checkpoint_from), ("init_from", self.init_from))
                if spec is not None}


def resolve_config_path(name: str | Path, base: Path | None = None) -> Path:
    """Find a config file: as given, next to the suite file, or under ``benchmark/configs``."""
    candidates = [Path(name)]
    if base is not None:
        candidates.append(base / name)
    candidates.append(CONFIG_ROOT / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config {name!s} not found (looked in: {', '.join(str(c) for c in candidates)})")


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; the error names the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` in a nested dict, creating levels as needed."""
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"cannot set {dotted!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _pop_path(config: dict[str, Any], path: tuple[str, ...]) -> None:
    node = config
    for part in path[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def expand_suite(suite_path: str | Path, out: str | Path = "runs", overrides: Mapping[str, Any] | None = None,
                 seeds: list[int] | None = None) -> list[RunSpec]:
    """Expand a suite YAML into run specs (nothing is run).

    Args:
        suite_path: the suite YAML.
        out: folder that receives ``<suite>/<run_id>/``.
        overrides: dotted keys applied to every run last (``trainer.devices``, ``data.init_args.root``).
        seeds: replace the suite's seeds.
    """
    suite_path = Path(suite_path)
    suite = load_yaml(suite_path)
    base = suite_path.parent
    name = suite.get("name") or suite_path.stem
    unknown = set(suite) - {"name", "description", "seeds", "trainer", "datasets", "rows"}
    if unknown:
        raise ValueError(f"{suite_path}: unknown keys {sorted(unknown)}")
    if not suite.get("rows") or not suite.get("datasets"):
        raise ValueError(f"{suite_path}: a suite needs 'rows' and 'datasets'")
    trainer_cfg = load_yaml(resolve_config_path(suite["trainer"], base)) if suite.get("trainer") else {}
    labels = [row.get("label") for row in suite["rows"]]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if None in labels or duplicates:
        raise ValueError(f"{suite_path}: every row needs a unique 'label' (duplicates: {duplicates})")
    specs = []
    requests: dict[int, dict[str, Any]] = {}  # id(spec) -> the row's checkpoint_from / init_from
    for seed in seeds if seeds is not None else suite.get("seeds", [0]):
        for dataset, data_entry in suite["datasets"].items():
            data_entry = {"config": data_entry} if isinstance(data_entry, str) else dict(data_entry)
            data_cfg = load_yaml(resolve_config_path(data_entry["config"], base))
            for order, row in enumerate(suite["rows"]):
                extra = set(row) - {"label", "method", "overrides", "quick", "note", "datasets", "checkpoint_from",
                                    "init_from"}
                if extra:
                    raise ValueError(f"{suite_path}: row {row['label']!r} has unknown keys {sorted(extra)}")
                unknown = set(row.get("datasets") or ()) - set(suite["datasets"])
                if unknown:
                    raise ValueError(f"{suite_path}: row {row['label']!r} names unknown datasets {sorted(unknown)}")
                if row.get("datasets") is not None and dataset not in row["datasets"]:
                    continue  # this row runs on the data regime it was designed for only
                method_cfg = load_yaml(resolve_config_path(row["method"], base))
                config = deep_merge(deep_merge(trainer_cfg, method_cfg), data_cfg)
                for key, value in (data_entry.get("overrides") or {}).items():
                    set_dotted(config, key, value)
                reuses = row.get("checkpoint_from") is not None and row["checkpoint_from"] != dataset
                for key, value in (row.get("overrides") or {}).items():
                    if reuses and key.startswith("data."):
                        continue  # they configure the training data of the run whose checkpoint is scored
                    set_dotted(config, key, value)
                for key, value in (overrides or {}).items():
                    set_dotted(config, key, value)
                set_dotted(config, "data.init_args.dataset", dataset)
                config["seed_everything"] = int(seed)
                run_dir = Path(out) / name / results.make_run_id(row["label"], dataset, seed)
                set_dotted(config, "trainer.default_root_dir", str(run_dir))
                config["evaluator"] = deep_merge(config.get("evaluator") or {}, {
                    "out_dir": str(run_dir), "suite": name, "label": row["label"], "seed": int(seed),
                    "run_id": results.make_run_id(row["label"], dataset, seed)})
                spec = RunSpec(name, row["label"], dataset, int(seed), run_dir, config,
                               quick=bool(row.get("quick", False)),
                               notes=[row["note"]] if row.get("note") else [], order=order)
                specs.append(spec)
                requests[id(spec)] = {"checkpoint_from": row.get("checkpoint_from") if reuses else None,
                                      "init_from": row.get("init_from")}
    _link_sources(specs, requests, suite_path)
    return _sources_first(specs)


def _link_sources(specs: list[RunSpec], requests: dict[int, dict[str, Any]], suite_path: Path) -> None:
    """Resolve the rows' ``checkpoint_from`` / ``init_from`` to the runs they name."""
    by_id = {(spec.label, spec.dataset, spec.seed): spec for spec in specs}
    for spec in specs:
        request = requests[id(spec)]
        if request["checkpoint_from"] is not None:
            source = by_id.get((spec.label, request["checkpoint_from"], spec.seed))
            if source is None:
                raise ValueError(f"{suite_path}: row {spec.label!r} takes checkpoints from dataset "
                                 f"{request['checkpoint_from']!r}, but it does not run there")
            spec.checkpoint_from = source
        if request["init_from"] is not None:
            entry = request["init_from"]
            if not isinstance(entry, Mapping) or set(entry) != {"row", "dataset"}:
                raise ValueError(f"{suite_path}: row {spec.label!r}: init_from must be {{row: LABEL, dataset: NAME}}, "
                                 f"got {entry!r}")
            source = by_id.get((entry["row"], entry["dataset"], spec.seed))
            if source is None:
                raise ValueError(f"{suite_path}: row {spec.label!r} starts from row {entry['row']!r} on dataset "
                                 f"{entry['dataset']!r}, which is not a run of this suite")
            spec.init_from = source
            set_dotted(spec.config, f"model.init_args.{INIT_ARGUMENT}", str(source.checkpoint))


def _sources_first(specs: list[RunSpec]) -> list[RunSpec]:
    """The specs in suite order, except that every run comes after the runs whose weights it uses."""
    def depth(spec: RunSpec, seen: tuple[str, ...] = ()) -> int:
        if spec.run_id in seen:
            raise ValueError(f"runs {' -> '.join([*seen, spec.run_id])} take weights from each other in a cycle")
        return max((1 + depth(source, (*seen, spec.run_id)) for source in spec.sources), default=0)

    return sorted(specs, key=depth)  # stable: suite order within each depth


def is_done(spec: RunSpec) -> bool:
    """True when the run finished with this exact configuration."""
    info_path = spec.run_dir / results.RUN_FILE
    if not info_path.exists():
        return False
    info = results.read_json(info_path)
    return info.get("status") == "done" and info.get("config_hash") == spec.config_hash


def _base_info(spec: RunSpec) -> dict[str, Any]:
    return {
        "suite": spec.suite, "run_id": spec.run_id, "label": spec.label, "dataset": spec.dataset,
        "seed": spec.seed, "config_hash": spec.config_hash, "quick": spec.quick, "notes": spec.notes,
        "order": spec.order, **spec.source_info(),
        "git_commit": results.git_commit(Path(__file__).parent), "versions": results.package_versions(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def prepare(spec: RunSpec) -> None:
    """Write ``config.yaml`` and a ``running`` run.json (a crash leaves a visible trace)."""
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(spec.run_dir / results.CONFIG_FILE, yaml.safe_dump(spec.config, sort_keys=False))
    results.write_json(spec.run_dir / results.RUN_FILE, _base_info(spec) | {"status": "running"})


def execute(run_dir: Path) -> dict[str, Any]:
    """Train (when the method learns) and score one prepared run in this process.

    Returns the final run.json content. The in-memory weights after ``fit`` are the last
    checkpoint's: the last state is what gets scored, and nothing selects on the test split.
    """
    from benchmark import wandb_logging
    from benchmark.lightning_cli import build_cli

    info = results.read_json(run_dir / results.RUN_FILE)
    config = load_yaml(run_dir / results.CONFIG_FILE)
    config = wandb_logging.configure(config, info, run_dir)  # no-op without a WandbLogger
    cli = build_cli(config, run=False, save_config=False)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    durations: dict[str, float] = {}
    reused = info.get("checkpoint_from") if model.trainable else None
    checkpoint = None
    if reused:
        checkpoint = Path(reused["checkpoint"])
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{run_dir.name} scores the checkpoint of run {reused['run_id']}, but "
                                    f"{checkpoint} does not exist: run {reused['run_id']} first (same suite, same --out)")
    elif model.trainable:
        started = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        durations["fit"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    trainer.test(model, datamodule=datamodule, verbose=False, ckpt_path=str(checkpoint) if checkpoint else None)
    durations["test"] = round(time.perf_counter() - started, 3)
    evaluator = next(cb for cb in trainer.callbacks if type(cb).__name__ == "Evaluator")
    enhancer = getattr(model, "generator", model)
    info.update({
        "status": "done",
        "method": type(model).__name__,
        "class_path": f"{type(model).__module__}.{type(model).__qualname__}",
        "split": getattr(datamodule, "split", None),
        "data": datamodule.describe() if hasattr(datamodule, "describe") else {},
        "full_resolution": getattr(model, "full_resolution", "whole image"),
        "durations": durations,
        "iterations": int(getattr(model, "iterations", trainer.global_step)) if model.trainable else 0,
        "params": sum(p.numel() for p in enhancer.parameters()),
        "device": _device_name(trainer),
        "world_size": trainer.world_size,
        "unavailable": evaluator.unavailable,
        "proxy_notes": model.proxy_notes(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    if trainer.is_global_zero:
        results.write_json(run_dir / results.RUN_FILE, info)
    wandb_logging.log_run(trainer, info, run_dir)  # samples and summary; nothing without W&B
    return info


def _device_name(trainer: Any) -> str:
    import torch

    root = trainer.strategy.root_device
    if root.type == "cuda":
        return torch.cuda.get_device_name(root)
    return f"{root.type} ({os.cpu_count()} cores)"


def run_one_main(argv: list[str]) -> int:
    """``qmap _run-one RUN_DIR``: execute one prepared run (also what DDP relaunches)."""
    if len(argv) != 1:
        print("usage: qmap _run-one RUN_DIR", file=sys.stderr)
        return 2
    execute(Path(argv[0]))
    return 0


def _record_failure(spec: RunSpec, error: str) -> None:
    info_path = spec.run_dir / results.RUN_FILE
    info = results.read_json(info_path) if info_path.exists() else _base_info(spec)
    info.update({"status": "failed", "error": error[-4000:],
                 "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    results.write_json(info_path, info)


def run_suite(specs: list[RunSpec], devices: int = 1, force: bool = False) -> dict[str, str]:
    """Run every spec that is not already done; returns run id -> "done" | "skipped" | "failed"."""
    outcome: dict[str, str] = {}
    total = len(specs)
    for index, spec in enumerate(specs, start=1):
        prefix = f"[{index}/{total}] {spec.run_id}"
        failed_sources = [source.run_id for source in spec.sources if outcome.get(source.run_id) == "failed"]
        if failed_sources:
            _record_failure(spec, f"source run(s) {', '.join(failed_sources)} failed")
            print(f"{prefix}: FAILED: it uses the weights of {', '.join(failed_sources)}, which failed",
                  file=sys.stderr, flush=True)
            outcome[spec.run_id] = "failed"
            continue
        rerun_sources = any(outcome.get(source.run_id) == "done" for source in spec.sources)
        if not force and not rerun_sources and is_done(spec):
            print(f"{prefix}: done with this config already, skipped", flush=True)
            outcome[spec.run_id] = "skipped"
            continue
        prepare(spec)
        print(f"{prefix}: running in {spec.run_dir}", flush=True)
        started = time.perf_counter()
        try:
            if devices > 1:
                env = {k: v for k, v in os.environ.items()
                       if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
                subprocess.run([sys.executable, "-m", "benchmark.cli", "_run-one", str(spec.run_dir)],
                               env=env, check=True)
                info = results.read_json(spec.run_dir / results.RUN_FILE)
                if info.get("status") != "done":
                    raise RuntimeError(f"run process ended without marking {spec.run_dir} done")
            else:
                execute(spec.run_dir)
        except Exception as err:  # one failed run must not lose the others: record it and go on
            _record_failure(spec, "".join(traceback.format_exception(err)))
            from benchmark.errors import find_user_error

            reason = find_user_error(err) or err
            print(f"{prefix}: FAILED after {time.perf_counter() - started:.1f} s: {reason}", file=sys.stderr, flush=True)
            outcome[spec.run_id] = "failed"
            continue
        print(f"{prefix}: done in {time.perf_counter() - started:.1f} s", flush=True)
        outcome[spec.run_id] = "done"
    return outcome


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    """``qmap suite SUITE.yaml [--out DIR] [--devices N] ...``."""
    parser = argparse.ArgumentParser(prog="qmap suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite YAML (a path, or a name under benchmark/configs/suites/)")
    parser.add_argument("--out", default="runs", help="output folder; runs land in OUT/<suite>/<run_id>/ (default: runs)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the suite's seeds")
    parser.add_argument("--only", nargs="+", metavar="LABEL", help="run only these row labels")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a dotted config key in every run, e.g. data.init_args.root=/data/fivek")
    parser.add_argument("--force", action="store_true", help="rerun runs that are already done")
    parser.add_argument("--list", action="store_true", help="print the runs and whether they are done, run nothing")
    for option in TRAINER_PASSTHROUGH:
        parser.add_argument(f"--{option}", help=f"Lightning Trainer option {option} for every run")
    args = parser.parse_args(argv)

    suite_path = Path(args.suite)
    if not suite_path.is_file():
        suite_path = resolve_config_path(Path("suites") / (args.suite if args.suite.endswith(".yaml") else f"{args.suite}.yaml"))
    overrides: dict[str, Any] = {}
    for option in TRAINER_PASSTHROUGH:
        value = getattr(args, option)
        if value is not None:
            overrides[f"trainer.{option}"] = _parse_value(value)
    for item in args.sets:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = _parse_value(value)
    specs = expand_suite(suite_path, args.out, overrides, args.seeds)
    if args.only:
        unknown = set(args.only) - {spec.label for spec in specs}
        if unknown:
            parser.error(f"--only: no rows labelled {sorted(unknown)}")
        specs = [spec for spec in specs if spec.label in args.only]
    if args.list:
        for spec in specs:
            print(f"{spec.run_id:40s} {'done' if is_done(spec) else 'to run'}  {spec.run_dir}")
        return 0
    devices = overrides.get("trainer.devices", 1)
    devices = devices if isinstance(devices, int) else 2  # "auto", lists: let each run own its process
    outcome = run_suite(specs, devices=devices, force=args.force)
    failed = [run for run, state in outcome.items() if state == "failed"]
    suite_dir = Path(args.out) / (specs[0].suite if specs else suite_path.stem)
    print(f"Suite finished: {sum(s == 'done' for s in outcome.values())} run, "
          f"{sum(s == 'skipped' for s in outcome.values())} skipped, {len(failed)} failed. Runs are in {suite_dir}/")
    if failed:
        print(f"Failed runs (see their run.json): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
