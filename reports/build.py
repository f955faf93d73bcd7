"""Everything ``qmap report`` writes, in one pass over a folder of runs.

``report/`` after ``qmap report runs/<suite>``:

- ``table.md``, ``table.tex``, ``table.csv`` — the generic method tables (:mod:`reports.tables`);
- ``table_<layout>.md/.tex/.csv`` — every seed layout that applies (or the one ``--layout``
  names), with significance marks and, with ``--reported``, published rows (image datasets only);
- ``compare_<dataset>_<label>.md/.tex/.csv`` — per video dataset, each run fine-tuned from
  another run's checkpoint (run.json ``init_from``) against that label's per-frame run on the
  same dataset: both rows, their difference and per-video wins/ties/losses
  (:func:`reports.tables.comparison_tables`);
- ``preference/<dataset>/`` — the virtual-rater preference matrix (full-reference metrics as
  raters, *not* human judgements) with scores, intervals, significance, metric "observer"
  screening, ``heatmap.png`` and ``jod.png`` (:mod:`reports.preference`);
- ``plots/quality_latency_<dataset>.png`` and ``plots/samples_<dataset>.png`` (inputs and
  targets from the runs' ``references/`` when saved; for a video dataset, the middle frame of
  each sample video);
- ``report.html`` — all of the above in one self-contained page.

With ``--wandb`` the tables, matrices and plots are also logged to a W&B report run (offline
unless ``WANDB_MODE=online``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.results import REFERENCES_DIR, load_run_infos, load_runs
from reports import tables
from reports.html import Section, frame_html, write_html

__all__ = ["ReportFiles", "build_report"]

VIRTUAL_BOOTSTRAP = 200  # bootstrap samples for virtual-rater intervals (report budget: 30 s)


@dataclass
class ReportFiles:
    """What one report wrote (paths), how long each stage took, and notes for the console."""

    generic: dict[str, Path]
    layouts: dict[str, list[Path]] = field(default_factory=dict)
    comparisons: dict[str, list[Path]] = field(default_factory=dict)
    preference: dict[str, dict[str, Path]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    html: Path | None = None
    wandb: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _marked(label: str, proxies: Mapping[str, Any]) -> str:
    return f"{label}{tables.PROXY_MARK}" if label in proxies else label


def _virtual_preference(frame: pd.DataFrame, dataset: str, infos: Sequence[Mapping[str, Any]], order: list[str],
                        out_dir: Path, bootstrap: int) -> tuple[dict[str, Path], Section | None, list[str]]:
    """Virtual-rater matrix of one dataset: files, an HTML section, notes."""
    from reports import preference

    proxies = tables.proxy_labels(infos)
    video = tables.is_video(frame, infos)
    trials = preference.virtual_trials(frame, order=order)
    labels = set(trials["method_a"]) | set(trials["method_b"]) if len(trials) else set()
    if len(labels) < 2:
        return {}, None, [f"{dataset}: no virtual-rater matrix (fewer than two methods with full-reference metrics)"]
    for column in ("method_a", "method_b", "choice"):
        trials[column] = trials[column].map(lambda label: _marked(label, proxies) if label != preference.TIE else label)
    methods = [_marked(label, proxies) for label in dict.fromkeys([*order, *sorted(labels)]) if label in labels]
    try:
        result = preference.analyse_trials(trials, methods=methods, bootstrap=bootstrap, virtual=True,
                                           source=(f"per-video means of {dataset}" if video
                                                   else f"per-image rows of {dataset}"))
    except ValueError as err:  # e.g. methods scored on disjoint images: the tables still stand
        return {}, None, [f"{dataset}: no virtual-rater matrix ({err})"]
    extra = ""
    if proxies:
        extra = f"{tables.PROXY_MARK}: proxy configuration (see the table caption)."
    if video:
        extra = (extra + " Video: each 'image' is a whole video; a metric votes on its per-video mean (frames, "
                 "then seeds averaged), so every video counts once.").strip()
    title = f"Preference matrix, {dataset}"
    paths = preference.write_preference(result, out_dir, title, extra_caption=extra)
    section = Section(
        title=preference.title_of(result, title),
        banner=f"Every number in this section comes from {preference.VIRTUAL_RATERS}.",
        caption=preference.caption_of(result, extra),
        html=frame_html(preference.matrix_cells(result.counts).reset_index(names="row \\ col"),
                        "Count matrix (DPE layout): times the row was preferred over the column")
        + frame_html(result.scores, "Scores: wins, Bradley–Terry, Thurstone JOD with its interval")
        + (frame_html(result.observers, "Metric 'observers': leave-one-out log-likelihood per trial")
           if result.observers is not None else ""),
        images=[(f"{preference.title_of(result, title)} — share preferring row", paths["heatmap"]),
                (f"{preference.title_of(result, title)} — JOD with {result.meta['interval']}", paths["jod"])],
        level=3,
    )
    return paths, section, []


def _plots(frame: pd.DataFrame, dataset: str, infos: Sequence[Mapping[str, Any]], order: list[str],
           runs_dir: Path, out_dir: Path) -> tuple[list[Path], list[Section], list[str]]:
    """Quality-vs-latency scatter and the sample grid of one dataset."""
    from reports import plots, samples

    proxies = tables.proxy_labels(infos)
    names = {label: _marked(label, proxies) for label in frame["label"].unique()}
    written, sections, notes = [], [], []
    video = tables.is_video(frame, infos)
    unit = "frame" if video else "image"
    stats = tables.summary(frame, partial="mark")
    metric = next((m for m in ("psnr", "ssim") if m in set(stats["metric"])), None)
    if metric and "seconds" in set(stats["metric"]):
        path = plots.quality_latency(stats, out_dir / f"quality_latency_{dataset}.png", metric,
                                     f"{tables.DISPLAY_NAMES[metric]} vs per-{unit} time, {dataset}", names,
                                     unit=unit)
        written.append(path)
        devices = sorted({str(i.get("device")) for i in infos if i.get("device")})
        averaged = " (per video, then over videos)" if video else ""
        sections.append(Section(f"Quality vs latency, {dataset}", images=[(
            f"Mean {tables.DISPLAY_NAMES[metric]} against mean seconds per {unit}{averaged} (log scale; inference "
            f"only, data loading excluded; device {', '.join(devices) or 'not recorded'}).", path)], level=3))
    runs = [info for label in order for info in infos if info.get("label") == label]
    runs += [info for info in infos if info not in runs]
    runs = [info for info in runs if info.get("dataset") == dataset and info.get("path")]
    protocol = samples.sample_protocol([Path(info["path"]) for info in runs]) if runs else None
    keys = samples.sample_keys([Path(info["path"]) for info in runs], protocol) if protocol else []
    if keys:
        search = list(runs_dir.resolve().parents)
        rows, grid_notes = samples.grid_rows([(names.get(i["label"], i["label"]), i) for i in runs], protocol, keys,
                                             search)
        which = "middle frame of each sample video, " if video else ""
        title = f"Sample outputs, {dataset}, protocol {protocol}: {which}input | each method | target"
        path = plots.image_grid(rows, out_dir / f"samples_{dataset}.png", title)
        written.append(path)
        saved = all(any((Path(i["path"]) / REFERENCES_DIR / protocol / key).is_dir() for i in runs) for key in keys)
        if saved:
            why = f"protocol {protocol}: input and target as scored (saved by the runs beside each sample)"
        elif protocol == "f":
            why = "protocol f: outputs at full resolution, input and target as stored"
        else:
            why = f"protocol {protocol}: input and target resized to the output size with area interpolation"
        sections.append(Section(f"Sample outputs, {dataset}", warnings=grid_notes,
                                images=[(f"{title}. Fixed sample ids; {why}; panels downscaled for display.", path)],
                                level=3))
        notes += grid_notes
    else:
        notes.append(f"{dataset}: no saved samples shared by every run, no image grid")
    return written, sections, notes


def build_report(runs_dir: str | Path, out_dir: str | Path | None = None, layout: str = "auto",
                 reported: bool = False, wandb: bool = False, bootstrap: int = VIRTUAL_BOOTSTRAP,
                 partial: str = "raise") -> ReportFiles:
    """Write every report output for the finished runs below ``runs_dir``.

    Args:
        runs_dir: a suite folder ``runs/<suite>`` (or a folder of suites).
        out_dir: default ``runs_dir/report``.
        layout: ``auto`` (generic tables plus every seed layout that applies), ``generic`` (only
            the generic tables) or a :data:`reports.tables.LAYOUTS` name.
        reported: add the published rows to the layouts that have them.
        wandb: also log everything to a W&B report run.
        bootstrap: bootstrap samples of the virtual-rater intervals.
        partial: see :func:`reports.tables.summary`.

    Raises:
        reports.tables.NoFinishedRunsError: nothing to report.
        ValueError: unknown or inapplicable layout; rows that cannot be averaged honestly.
    """
    clock = time.perf_counter()
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    files = ReportFiles(generic=tables.write_report(runs_dir, out_dir, partial=partial))
    files.seconds["tables"] = time.perf_counter() - clock

    infos = load_run_infos(runs_dir)
    done = [info for info in infos if info.get("status") == "done"]
    pending = [info for info in infos if info.get("status") != "done"]
    frame = load_runs(runs_dir)
    order = tables.label_order(done)
    datasets = list(dict.fromkeys(frame["dataset"].astype(str)))
    frame = frame.assign(dataset=frame["dataset"].astype(str))

    sections: list[Section] = [Section("Method tables")]
    for dataset, table, text in tables.dataset_tables(frame, done, order, partial):
        sections.append(Section(f"All metrics, {dataset}", html=tables.to_html(table, text), level=3))

    clock = time.perf_counter()
    names = list(tables.applicable_layouts(frame)) if layout == "auto" else [] if layout == "generic" else [layout]
    written = tables.write_layouts(frame, out_dir, names, done, reported=reported, order=order, partial=partial)
    for name, results in written.items():
        files.layouts[name] = [out_dir / f"table_{name}.{ext}" for ext in ("md", "tex", "csv")]
        sections += [Section(r.title, html=tables.to_html(r.table, r.caption), warnings=r.warnings, level=3)
                     for r in results]
    files.seconds["layouts"] = time.perf_counter() - clock

    clock = time.perf_counter()
    comparisons = tables.comparison_tables(frame, done, order, partial)
    if comparisons:
        sections.append(Section("Per-frame vs recurrent"))
    for result in comparisons:
        paths = tables.write_comparison(result, out_dir)
        files.comparisons[result.stem] = list(paths.values())
        sections.append(Section(result.title, html=tables.to_html(result.table, result.caption), level=3))
    if comparisons:
        files.seconds["comparisons"] = time.perf_counter() - clock

    # Each dataset's rows and finished runs, shared by the preference and plot sections.
    per_dataset = [(dataset, frame[frame["dataset"] == dataset], [i for i in done if str(i.get("dataset")) == dataset])
                   for dataset in datasets]

    clock = time.perf_counter()
    sections.append(Section("Preference matrices"))
    for dataset, subset, ds_infos in per_dataset:
        paths, section, notes = _virtual_preference(subset, dataset, ds_infos, order,
                                                    out_dir / "preference" / dataset, bootstrap)
        files.notes += notes
        if paths:
            files.preference[dataset] = paths
            sections.append(section)
    files.seconds["preference"] = time.perf_counter() - clock

    clock = time.perf_counter()
    sections.append(Section("Plots and sample images"))
    for dataset, subset, ds_infos in per_dataset:
        written_plots, plot_sections, notes = _plots(subset, dataset, ds_infos, order, runs_dir, out_dir / "plots")
        files.plots += written_plots
        sections += plot_sections
        files.notes += notes
    files.seconds["plots"] = time.perf_counter() - clock

    clock = time.perf_counter()
    suite = ", ".join(dict.fromkeys(frame["suite"].astype(str))) or runs_dir.name
    intro = []
    if pending:
        intro.append(f"{len(pending)} run(s) not done and left out: "
                     + ", ".join(f"{i.get('run_id', Path(str(i.get('path'))).name)} ({i.get('status')})"
                                 for i in pending))
    if any(d.startswith("demo") for d in datasets):
        intro.append(f"Data: {tables.DEMO_NOTE}.")
    files.html = write_html(out_dir / "report.html", f"qmap-bench report: {suite}", sections, intro)
    files.seconds["html"] = time.perf_counter() - clock

    if wandb:
        clock = time.perf_counter()
        files.wandb = _export_wandb(out_dir, suite, files, written, frame, done, order, partial, runs_dir, bootstrap,
                                    comparisons)
        files.seconds["wandb"] = time.perf_counter() - clock
    return files


def _export_wandb(out_dir: Path, suite: str, files: ReportFiles, layouts: Mapping[str, Any], frame: pd.DataFrame,
                  infos: Sequence[Mapping[str, Any]], order: list[str], partial: str, runs_dir: Path,
                  bootstrap: int, comparisons: Sequence[tables.Comparison] = ()) -> Path:
    from reports import preference
    from reports.wandb_export import export_report

    def numbers(table: tables.Table) -> pd.DataFrame:
        """Numbers with the proxy mark kept on the label (proxy results are labelled everywhere)."""
        out = table.numeric_frame()
        out["label"] = [label + table.row_marks.get(label, "") for label in out["label"]]
        return out

    logged_tables = [(f"tables/{dataset}", numbers(table))
                     for dataset, table, _ in tables.dataset_tables(frame, infos, order, partial)]
    for name, results in layouts.items():
        logged_tables += [(f"layouts/{name}/{r.table.dataset}", numbers(r.table)) for r in results]
    logged_tables += [(f"compare/{c.dataset}/{c.fine_tuned}", c.numbers) for c in comparisons]
    images = []
    for dataset, paths in files.preference.items():
        counts = preference.matrix_frame(pd.read_csv(paths["matrix_csv"], index_col=0).drop(columns="total"))
        logged_tables.append((f"preference/{dataset}/matrix", counts.reset_index(names="method")))
        logged_tables.append((f"preference/{dataset}/scores", pd.read_csv(paths["scores"])))
        note = f"Thurstone Case V JOD, sigma 1.4826; {preference.VIRTUAL_RATERS}"
        images += [(f"preference/{dataset}/heatmap", paths["heatmap"], note),
                   (f"preference/{dataset}/jod", paths["jod"], note)]
    images += [(f"plots/{path.stem}", path, path.stem.replace("_", " ")) for path in files.plots]
    config = {"runs_dir": str(runs_dir), "layouts": list(layouts), "virtual_rater_bootstrap": bootstrap}
    notes = f"Preference panels: {preference.VIRTUAL_RATERS}."
    return export_report(out_dir, suite, logged_tables, images, config, notes)
