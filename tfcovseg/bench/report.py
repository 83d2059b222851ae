"""``tfcovseg bench report``: results.csv, the paper's Table 2 and Section 5 summaries, figures.

Table 2 is laid out as the authors' generated table: one row per architecture and encoder
(with mean and std rows per architecture), the encoder's parameters and seconds per image,
then sensitivity / specificity / Dice (%) for each experiment and initialisation.
"""

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from tfcovseg.bench import store
from tfcovseg.bench.metrics2d import METRIC_NAMES
from tfcovseg.errors import TfcovsegError
from tfcovseg.files import write_text
from tfcovseg.settings.bench import ARCHS, INITS
from tfcovseg.settings.data import EXPERIMENTS

FIGURES_DIR = "figures"
CSV_COLUMNS = ("id", "experiment", "arch", "encoder", "init", "status", *METRIC_NAMES,
               "parameters_m", "train_s_per_image", "validation_s_per_image", "best_epoch",
               "epochs", "test_images", "missed_images", "reason")
METRIC_SHORT = {"sensitivity": "Sens", "specificity": "Spec", "dice": "Dice"}
MISSING = "-"


def csv_rows(results) -> list[dict]:
    rows = []
    for r in results:
        row = {"id": r["id"], **r["cell"], "status": r["status"], "reason": r.get("reason", "")}
        if r["status"] == store.DONE:
            row.update({name: f"{100 * r['metrics'][name]:.2f}" for name in METRIC_NAMES})
            row.update(parameters_m=f"{r['parameters'] / 1e6:.3f}",
                       train_s_per_image=f"{r['train_seconds_per_image']:.4f}",
                       validation_s_per_image=f"{r['validation_seconds_per_image']:.4f}",
                       best_epoch=r["best_epoch"], epochs=len(r["train_loss"]),
                       test_images=r["test_images"], missed_images=r.get("missed_images", ""))
        rows.append(row)
    return rows


def results_csv(results) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(results))
    return buffer.getvalue()


def _ordered(values, canonical) -> list:
    return [v for v in canonical if v in values] + sorted(set(values) - set(canonical))


def _mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.2f} ± {values.std():.2f}" if values.size else MISSING


def table2(done) -> str:
    """The paper's Table 2 layout as a Markdown table."""
    index = {tuple(r["cell"][k] for k in ("experiment", "arch", "encoder", "init")): r for r in done}
    experiments = _ordered({k[0] for k in index}, EXPERIMENTS)
    archs = _ordered({k[1] for k in index}, ARCHS)
    encoders = _ordered({k[2] for k in index}, done[0]["config"]["grid"]["encoders"])
    inits = _ordered({k[3] for k in index}, INITS)
    columns = [(e, i, m) for e in experiments for i in inits for m in METRIC_NAMES]
    header = ["Architecture", "Encoder", "Params (M)", "Train (s/img)", "Val (s/img)"]
    header += [f"{e} {i} {METRIC_SHORT[m]}" for e, i, m in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arch in archs:
        block = []
        for encoder in encoders:
            cells = [r for k, r in index.items() if k[1] == arch and k[2] == encoder]
            if not cells:
                continue
            numbers = [np.mean([r["parameters"] / 1e6 for r in cells]),
                       np.mean([r["train_seconds_per_image"] for r in cells]),
                       np.mean([r["validation_seconds_per_image"] for r in cells])]
            for e, i, m in columns:
                r = index.get((e, arch, encoder, i))
                numbers.append(np.nan if r is None else 100 * r["metrics"][m])
            block.append(numbers)
            lines.append(_row([arch, encoder], numbers))
        if block:
            stats = np.array(block)
            lines.append(_row([arch, "mean"], np.nanmean(stats, axis=0)))
            lines.append(_row([arch, "std"], np.nanstd(stats, axis=0)))
    return "\n".join(lines)


def _row(labels, numbers) -> str:
    digits = [3, 4, 4] + [2] * (len(numbers) - 3)
    cells = [MISSING if np.isnan(v) else f"{v:.{d}f}" for v, d in zip(numbers, digits)]
    return "| " + " | ".join([*labels, *cells]) + " |"


def summaries(done) -> str:
    """Dice mean ± std (%) by experiment, architecture, encoder and initialisation (Section 5)."""
    parts = [f"All cells: Dice {_mean_std([100 * r['metrics']['dice'] for r in done])} % "
             f"({len(done)} cells)"]
    canonical = {"experiment": EXPERIMENTS, "arch": ARCHS, "encoder": (), "init": INITS}
    for key, order in canonical.items():
        groups = defaultdict(list)
        for r in done:
            groups[r["cell"][key]].append(r)
        lines = [f"\n### Dice by {key}\n", f"| {key} | cells | Dice % (mean ± std) | "
                 "Sens % | Spec % |", "|---|---|---|---|---|"]
        for value in _ordered(groups, order):
            g = groups[value]
            lines.append(f"| {value} | {len(g)} | " + " | ".join(
                _mean_std([100 * r["metrics"][m] for r in g])
                for m in ("dice", "sensitivity", "specificity")) + " |")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _metric_note(done) -> str:
    evaluation = done[0]["config"]["evaluation"]
    missed = sum(r.get("missed_images", 0) for r in done)
    note = (f"Test metrics per image at threshold {evaluation['threshold']}, eps "
            f"{evaluation['eps']:g}, convention `{evaluation['convention']}`, averaged per cell.")
    if missed and evaluation["convention"] == "paper":
        note += (f" {missed} test image(s) with a non-empty target got no prediction at all and "
                 "score 1 under the paper's TP + FP = 0 rule (column missed_images of results.csv).")
    return note


def markdown(results, figure_notes) -> str:
    done = [r for r in results if r["status"] == store.DONE]
    unavailable = [r for r in results if r["status"] == store.NO_IMAGENET]
    lines = [f"# Bench report ({len(done)} finished cells)", ""]
    if done:
        lines += [_metric_note(done), "", "## Table 2", "", table2(done), "", "## Section 5 summaries", "",
                  summaries(done), ""]
    if unavailable:
        lines += ["## Cells without ImageNet weights (offline; rerun `tfcovseg bench` online "
                  "or with the Keras cache filled)", ""]
        lines += [f"- {r['id']}: {r.get('reason', '')}" for r in unavailable] + [""]
    if figure_notes:
        lines += ["## Figures skipped or partial", ""] + [f"- {n}" for n in figure_notes] + [""]
    return "\n".join(lines)


def write_report(bench_dir) -> Path:
    """Write results.csv, report.md and figures/*.png into ``bench_dir``; return report.md."""
    from tfcovseg.bench.figures import write_figures

    bench_dir = Path(bench_dir)
    results = store.read_results(bench_dir)
    if not results:
        raise TfcovsegError(f"no cell results in {store.CELLS_DIR}/ (run tfcovseg bench first)",
                            bench_dir)
    done = [r for r in results if r["status"] == store.DONE]
    notes = write_figures(done, bench_dir, bench_dir / FIGURES_DIR) if done else []
    for note in notes:
        print(f"note: {note}")
    write_text(bench_dir / "results.csv", results_csv(results))
    report = bench_dir / "report.md"
    write_text(report, markdown(results, notes))
    print(f"report: {report} ({len(done)} finished cells, figures in {bench_dir / FIGURES_DIR})")
    return report
