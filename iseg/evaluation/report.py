"""What an evaluation leaves behind: the metric table, per-sample files, the curve and examples.

Files written into the output dir by :func:`write_reports`:

- ``table.txt``: the printed table (one row per set), with boundary metrics (FCFI's mBIoU@k,
  ASSD@k) a second table, and the list of excluded samples;
- ``results.json``: settings, per set the summary, SPC, exclusions and every sample's clicks,
  IoU and (intersection, union) after each click (and boundary IoU / ASSD when computed);
- ``per_click.csv``: the same per-click rows in long format (dataset, sample, click, ...; columns
  ``biou`` and ``assd`` when computed);
- ``iou_curve.png``: mean IoU vs. clicks per set (see :mod:`iseg.evaluation.plots`);
- ``examples/<set>/<index>_<name>.png``: ground truth | final prediction with the clicks.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from iseg.evaluation.plots import held_iou_curve, plot_iou_curves
from iseg.evaluation.visualize import interaction_panel
from iseg.interaction.metrics import DEFAULT_MIOU_CLICKS, noc, noc_thresholds, threshold_name

if TYPE_CHECKING:
    from iseg.evaluation.runner import DatasetEvaluation

TABLE_COLUMNS = ("NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90") + tuple(f"mIoU@{k}" for k in DEFAULT_MIOU_CLICKS)
SECONDS_NAMES = {"NoC": "SPC", "NoS": "SPR"}
"""Seconds per step in the table: per click, or per scribble round."""
PER_SAMPLE_FORMATS = ("json", "csv")
BOUNDARY_COLUMNS = tuple(f"mBIoU@{k}" for k in DEFAULT_MIOU_CLICKS) + tuple(f"ASSD@{k}" for k in DEFAULT_MIOU_CLICKS)
CSV_FIELDS = ("dataset", "index", "sample", "click", "y", "x", "is_positive", "iou", "intersection", "union")
BOUNDARY_CSV_FIELDS = ("biou", "assd")
ROUND_CSV_FIELDS = ("prompts",)


def count_name(evaluation: DatasetEvaluation) -> str:
    """``NoC`` (clicks) or ``NoS`` (scribble rounds): the protocol's step count of this evaluation."""
    return evaluation.protocol.get("count_name", "NoC")


def table_columns(evaluations: Sequence[DatasetEvaluation]) -> tuple[str, ...]:
    """The metric columns: NoC@85/90/95 (or NoS@, both when a table mixes them), NoF@85/90, mIoU@k."""
    names = list(dict.fromkeys(count_name(e) for e in evaluations)) or ["NoC"]
    counts = tuple(f"{name}@{t}" for name in names for t in ("85", "90", "95"))
    return counts + TABLE_COLUMNS[3:]


def has_rounds(evaluations: Sequence[DatasetEvaluation]) -> bool:
    """Whether some sample had a round of other than one prompt (scribble rounds)."""
    return any(r.result.round_sizes is not None for e in evaluations for r in e.records)


def has_boundary_metrics(evaluations: Sequence[DatasetEvaluation]) -> bool:
    """Whether the run recorded boundary IoU and ASSD (``protocol.boundary_metrics``)."""
    return any(e.protocol.get("boundary_metrics") for e in evaluations)


@dataclass
class ReportFiles:
    """Paths of what :func:`write_reports` wrote, and the table text it printed there."""

    table: str
    table_file: Path
    curve_png: Path
    curves: dict[str, np.ndarray]
    json_file: Path | None = None
    csv_file: Path | None = None
    examples: dict[str, list[Path]] = field(default_factory=dict)


def format_table(evaluations: Sequence[DatasetEvaluation], title: str = "") -> str:
    """One row per set with NoC@85/90/95, NoF@85/90, mIoU@k and seconds per click.

    A metric the run cannot give is shown as ``-``, with the reason under the table: NoC@95
    needs ``target_iou`` >= 0.95; mIoU@k is the mean over samples of the k-th IoU, which exists
    for every sample only when none stopped before click k (``target_iou=1.01`` runs them all).
    """
    columns = table_columns(evaluations)
    names = list(dict.fromkeys(count_name(e) for e in evaluations)) or ["NoC"]
    step = "/".join(SECONDS_NAMES.get(name, "SPC") for name in names)
    header = ("dataset", "samples", *columns, f"{step} [s]", "wall/step [s]" if step != "SPC" else "wall/click [s]")
    rows = []
    for evaluation in evaluations:
        summary = evaluation.summary
        cells = [evaluation.key, str(len(evaluation.records))]
        for column in columns:
            value = summary.get(column)
            if value is None:
                cells.append("-")
            elif column.startswith("NoF"):
                cells.append(str(int(value)))
            elif column.startswith("mIoU"):
                cells.append(f"{value:.4f}")
            else:
                cells.append(f"{value:.2f}")
        cells.append(f"{evaluation.result.seconds_per_click:.3f}")
        cells.append(f"{evaluation.wall_seconds_per_click:.3f}")
        rows.append(cells)
    lines = [title] if title else []
    lines.extend(_aligned(header, rows))
    if has_boundary_metrics(evaluations):
        boundary_rows = [
            [e.key, str(len(e.records)), *(_boundary_cell(e.summary.get(c), c) for c in BOUNDARY_COLUMNS)]
            for e in evaluations
        ]
        lines.extend(["", *_aligned(("dataset", "samples", *BOUNDARY_COLUMNS), boundary_rows)])
    lines.extend(_threshold_table(evaluations))
    notes = _missing_metric_notes(evaluations)
    if has_boundary_metrics(evaluations):
        ratio = evaluations[0].protocol.get("dilation_ratio")
        notes.append(
            f"mBIoU@k: mean boundary IoU after click k (band {ratio} x image diagonal); ASSD@k: mean average "
            "symmetric surface distance in pixels; 'nan' when a sample's value is undefined (as in FCFI)"
        )
    if "NoS" in names:
        notes.append(
            "NoS: mean scribble rounds to reach the IoU (max rounds when never); NoF: samples never reaching it; "
            "mIoU@k: after round k; SPR: seconds per round of one process (loading included); wall/step: "
            "elapsed time over all rounds"
        )
    if "NoC" in names:
        notes.append(
            "NoC: mean clicks to reach the IoU (max when never); NoF: samples with NoC = max clicks; "
            "SPC: seconds per click of one process (loading included); wall/click: elapsed time over all clicks"
        )
    lines.extend(notes)
    for evaluation in evaluations:
        if evaluation.exclusions:
            lines.append(f"{evaluation.key}: {len(evaluation.exclusions)} excluded")
            lines.extend(f"  {name}: {reason}" for name, reason in evaluation.exclusions)
    return "\n".join(lines)


def _threshold_table(evaluations: Sequence[DatasetEvaluation]) -> list[str]:
    """IOG's table: mean IoU of ``probs > t`` after prompt k (k = 1: the box and inside point; k = 2, 3:
    one and two correction clicks) for the protocol's ``prob_thresholds``; nothing without them."""
    keys = [key for key in evaluations[0].summary if "/th" in key] if evaluations else []
    if not keys:
        return []
    names = list(dict.fromkeys(key.split("/th")[1] for key in keys))
    header = ("dataset", "prompts", *(f"IoU@{int(n) / 100:g}" for n in names))
    rows = []
    for evaluation in evaluations:
        for k in (1, 2, 3):
            values = [evaluation.summary.get(f"mIoU@{k}/th{n}") for n in names]
            if all(v is not None for v in values):
                rows.append([evaluation.key, str(k), *(f"{v:.4f}" for v in values)])
    return ["", *_aligned(header, rows), "IoU@t: mean IoU of probabilities > t after prompt k (1: box + inside point; 2, 3: + correction clicks)"]


def _missing_metric_notes(evaluations: Sequence[DatasetEvaluation]) -> list[str]:
    """Why a column shows '-', with the settings of this run that would fill it."""
    notes = []
    for name in dict.fromkeys(count_name(e) for e in evaluations):
        missing = [e for e in evaluations if count_name(e) == name and e.summary.get(f"{name}@95") is None]
        excluded = [e for e in missing if e.protocol["target_iou"] >= 0.95 and e.protocol.get("thresholds")]  # chosen without 0.95
        if excluded:
            chosen = sorted({f"{t:g}" for e in excluded for t in e.protocol["thresholds"]})
            notes.append(f"{name}@95 '-': not among protocol.thresholds ({', '.join(chosen)})")
        stopped = [e for e in missing if e not in excluded]
        if stopped:
            targets = ", ".join(sorted({f"{e.protocol['target_iou']:g}" for e in stopped}))
            notes.append(
                f"{name}@95 '-': samples stopped at protocol.target_iou={targets} (0.95 or 1.01 gives {name}@95)"
            )
    missing = {c for e in evaluations for c in TABLE_COLUMNS if "mIoU" in c and e.summary.get(c) is None}
    if missing:
        max_clicks = max(int(e.protocol["max_clicks"]) for e in evaluations)
        clicks = sorted(int(c.split("@")[1]) for c in missing)
        beyond = [k for k in clicks if k > max_clicks]
        within = [k for k in clicks if k <= max_clicks]
        if within:
            notes.append(
                f"mIoU@{','.join(map(str, within))} '-': not every sample ran that many clicks "
                f"(protocol.target_iou=1.01 runs all {max_clicks})"
            )
        if beyond:
            notes.append(
                f"mIoU@{','.join(map(str, beyond))} '-': beyond this run's protocol.max_clicks={max_clicks} "
                f"(protocol.max_clicks={beyond[-1]} protocol.target_iou=1.01 gives them)"
            )
    return notes


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Header and rows as lines, the first column left-aligned and the others right-aligned."""
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in (header, *rows)
    ]


def _boundary_cell(value: float | None, column: str) -> str:
    """mBIoU to 4 decimals like mIoU, ASSD (pixels) to 3; '-' when the run has no value."""
    return "-" if value is None else format(value, ".4f" if column.startswith("mBIoU") else ".3f")


def results_document(evaluations: Sequence[DatasetEvaluation], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``results.json``: plain JSON types, IoUs as the float32 values rounded back to float."""
    datasets = {}
    for evaluation in evaluations:
        max_clicks = evaluation.protocol["max_clicks"]
        thresholds = [(threshold_name(t), t) for t in noc_thresholds(evaluation.protocol["target_iou"])]
        samples = []
        for record in evaluation.records:
            result = record.result
            sample = {
                "index": record.index,
                "name": record.name,
                "clicks": [_prompt_record(prompt) for prompt in result.clicks],
                "ious": [float(v) for v in result.ious],
                "inter_union": result.inter_union.tolist(),
                "noc": {name: noc(result.ious, t, max_clicks) for name, t in thresholds},
            }
            if result.round_sizes is not None:
                sample["round_sizes"] = list(result.round_sizes)
            if result.bious is not None:
                sample["bious"] = [_json_number(v) for v in result.bious]
                sample["assds"] = [_json_number(v) for v in result.assds]
            samples.append(sample)
        datasets[evaluation.key] = {
            "title": evaluation.title,
            "root": evaluation.root,
            "summary": {k: _json_number(v) for k, v in evaluation.summary.items()},
            "num_samples": len(evaluation.records),
            "num_clicks": evaluation.result.num_clicks,
            "seconds": evaluation.result.seconds,
            "seconds_per_click": evaluation.result.seconds_per_click,
            "wall_seconds": evaluation.wall_seconds,
            "wall_seconds_per_click": evaluation.wall_seconds_per_click,
            "world_size": evaluation.world_size,
            "protocol": evaluation.protocol,
            "predictor": evaluation.predictor,
            "exclusions": [{"name": name, "reason": reason} for name, reason in evaluation.exclusions],
            "samples": samples,
        }
    return {**dict(meta), "datasets": datasets}


def _prompt_record(prompt: Any) -> list | dict[str, Any]:
    """A one-point prompt (a click) as [y, x, is_positive]; others (scribbles, boxes) with their type and points."""
    points = prompt.anchor_points()
    if len(points) == 1:
        (y, x), = points
        return [_coordinate(y), _coordinate(x), bool(prompt.is_positive)]
    return {
        "type": type(prompt).__name__,
        "points": [[_coordinate(y), _coordinate(x)] for y, x in points],
        "is_positive": bool(prompt.is_positive),
    }


def _coordinate(value: float) -> int | float:
    """Protocol clicks are integer pixels: written as ints, any other value as a float."""
    return int(value) if float(value).is_integer() else float(value)


def _json_number(value: float) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None if math.isnan(value) else float(value)


def write_per_click_csv(evaluations: Sequence[DatasetEvaluation], path: Path) -> Path:
    """One row per click of every sample: position, sign, IoU and the counts behind it (and
    boundary IoU and ASSD when the run computed them)."""
    boundary, rounds = has_boundary_metrics(evaluations), has_rounds(evaluations)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS + (BOUNDARY_CSV_FIELDS if boundary else ()) + (ROUND_CSV_FIELDS if rounds else ()))
        for evaluation in evaluations:
            for record in evaluation.records:
                result = record.result
                steps = zip(result.rounds(), result.ious, result.inter_union)
                for k, (prompts, iou, (inter, union)) in enumerate(steps, 1):
                    # y, x, is_positive of a round of one one-point prompt (a click), else empty
                    points = prompts[0].anchor_points() if len(prompts) == 1 else []
                    where = [*points[0], int(prompts[0].is_positive)] if len(points) == 1 else ["", "", ""]
                    row = [evaluation.key, record.index, record.name, k, *where, repr(float(iou)), int(inter), int(union)]
                    if boundary:
                        row += [repr(float(result.bious[k - 1])), repr(float(result.assds[k - 1]))]
                    if rounds:
                        row.append(len(prompts))
                    writer.writerow(row)
    return path


def write_examples(evaluation: DatasetEvaluation, folder: Path) -> list[Path]:
    """PNG per kept example: ground truth overlay | final prediction with the clicks."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for example in evaluation.examples:
        panel = interaction_panel(
            example.image, example.gt, example.probs, example.clicks, evaluation.protocol["pred_thr"]
        )
        path = folder / f"{example.index:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', example.name)}.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(panel[:, :, ::-1])):
            raise OSError(f"cannot write example picture {path}")
        paths.append(path)
    return paths


def check_formats(formats: Sequence[str]) -> list[str]:
    """The per-sample formats as a list, or ValueError naming the unsupported ones (checked before a long run)."""
    unknown = sorted(set(formats) - set(PER_SAMPLE_FORMATS))
    if unknown:
        raise ValueError(f"per-sample formats {unknown} are not supported (choose from {list(PER_SAMPLE_FORMATS)})")
    return list(formats)


def write_reports(
    evaluations: Sequence[DatasetEvaluation],
    output_dir: Path,
    meta: Mapping[str, Any],
    formats: Sequence[str] = PER_SAMPLE_FORMATS,
) -> ReportFiles:
    """Write every file listed in the module docstring into ``output_dir``; returns their paths."""
    formats = check_formats(formats)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = "/".join(dict.fromkeys(count_name(e) for e in evaluations)) or "NoC"
    title = f"{name} evaluation of {meta['checkpoint']}" if "checkpoint" in meta else ""
    table = format_table(evaluations, title)
    table_file = output_dir / "table.txt"
    table_file.write_text(table + "\n", encoding="utf-8")
    curves = {e.key: held_iou_curve([r.result.ious for r in e.records], e.protocol["max_clicks"]) for e in evaluations}
    targets = {e.protocol["target_iou"] for e in evaluations}
    curve_png = plot_iou_curves(curves, output_dir / "iou_curve.png", target_iou=min(targets))
    files = ReportFiles(table, table_file, curve_png, curves)
    if "json" in formats:
        files.json_file = output_dir / "results.json"
        files.json_file.write_text(json.dumps(results_document(evaluations, meta), indent=1), encoding="utf-8")
    if "csv" in formats:
        files.csv_file = write_per_click_csv(evaluations, output_dir / "per_click.csv")
    for evaluation in evaluations:
        if evaluation.examples:
            files.examples[evaluation.key] = write_examples(evaluation, output_dir / "examples" / evaluation.key)
    return files
