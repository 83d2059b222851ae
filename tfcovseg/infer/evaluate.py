"""``tfcovseg evaluate``: per-case Dice and NSD as Ma et al.'s benchmark, and the papers' tables.

Each labelled case of a prepared dataset is scored on its label file's own grid and axis order,
as the benchmark's ``COVID-19-Seg-Evaluation.py`` does: masks are the NIfTI arrays as stored
(``[x, y, z]``), lesion = label value 1, spacing = the label header's ``get_zooms()``.

- ``--model RUN_DIR|EXPORT|CELL``: each case's image is predicted (``tfcovseg.infer.predictor``;
  a grid cell slice by slice; a ``lesions_in_lungs`` cell on the case's prepared lung mask, or
  on the lungs the ``lungs`` cell of ``--lung-model`` finds) and
  the mask is brought back to the image file's grid and orientation (``to_source_grid``); the
  masks are kept in ``OUT/predictions/<id>.nii.gz`` so they can be inspected or re-scored.
  Images must be in HU: a case flagged ``windowed`` (0..255) in the manifest, or whose
  intensities look windowed, needs ``--input-window LOW HIGH`` (``tfcovseg.io.checks.unwindow``);
  one flagged ``not_hu`` is refused. Each image goes in with its header spacing (a patch-mode
  run resamples it to the run's target spacing and back), and ``--tta`` mirrors it
  (``tfcovseg.models.sliding_window.mirrored``); every case is checked against the model's input
  spec (``tfcovseg.infer.predictor.check_fits``) before the first one is predicted.
- ``--predictions DIR``: scores existing masks ``DIR/<id>.nii.gz`` (or ``.nii``) from any tool.
  They must lie on the grid of the case's prepared label file (same shape, orientation and
  affine; prepared files are RAS+, so a mask made on the original scan may need reorienting)
  and hold 0/1; anything else is refused rather than silently misaligned.

Before anything is predicted or written, every case is checked (``tfcovseg.io.checks.check_case``:
image and label on one grid, label values those the manifest declares).

Empty masks follow the benchmark (``tfcovseg.metrics``): a case where the label and the
prediction are both empty scores NaN, is excluded from the means and counted in the summary;
one of them empty scores 0. The summary is macro-averaged over patients like the paper's
Tables 1 and 2: cases of the same ``patient`` (a manifest field; the case id otherwise) are
averaged first; then n, mean +- sample standard deviation, lowest and highest over patients.

Outputs (written atomically into ``OUT``, default ``RUN_DIR/evaluation/<dataset>``, for a model
file such as a grid cell's ``cells/<id>.json`` ``cells/<id>_evaluation/<dataset>``, or
``PREDICTIONS/evaluation``): ``cases.csv``, ``summary.csv``, ``summary.md``.
"""

import csv
import io
import math
from pathlib import Path

import nibabel as nib
import numpy as np

from tfcovseg.config import config_path, load_config, to_dict
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.files import write_text
from tfcovseg.infer import GRID_TOLERANCE_MM
from tfcovseg.io.checks import check_case, check_mask_values, check_window, ct_in_hu
from tfcovseg.io.manifest import MANIFEST, load_dataset
from tfcovseg.io.nifti import (
    load_nifti,
    read_grid,
    read_volume,
    save_image,
    spacing_mm,
    to_source_grid,
)
from tfcovseg.metrics import LESION_TOLERANCE_MM, dice, surface_dice
from tfcovseg.rundir import RunFolder
from tfcovseg.settings.inference import EvaluateConfig, check_sliding_window, check_tta_axes
from tfcovseg.settings.train import SPLITS

LESION_LABEL = 1  # Ma et al.: gt == 1 and seg == 1
PREDICTION_VALUES = {0: "background", LESION_LABEL: "lesion"}
STD_DDOF = 1  # sample standard deviation over patients
MM3_PER_ML = 1000.0
CASE_FIELDS = ["id", "patient", "dice", "nsd", "label_ml", "prediction_ml", "note"]


def evaluate_configured(config=None, model_dir=None, predictions=None, out=None, **options) -> list:
    """``evaluate`` with settings from an evaluation config, overridden by given ``options``."""
    settings = to_dict(load_config(EvaluateConfig, config_path(config))) if config else {}
    settings.update({key: value for key, value in options.items() if value is not None})
    return evaluate(model_dir=model_dir, predictions=predictions, out=out, **settings)


def split_cases(cases: list, run_dir, split: str, data_root) -> list:
    """The ``cases`` in part ``split`` of training run ``run_dir``'s saved train/tuning split."""
    if split not in SPLITS:
        raise TfcovsegError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if run_dir is None:
        raise TfcovsegError("--split needs --model to be the training run's folder")
    ids = set(RunFolder(run_dir).read_split()[split])
    chosen = [case for case in cases if case.id in ids]
    if len(chosen) != len(ids):
        raise TfcovsegError(f"{len(ids) - len(chosen)} of the run's {len(ids)} {split} cases are "
                            "not labelled cases of this dataset: give the dataset the run trained on",
                            data_root)
    return chosen


def _prediction_file(folder: Path, case_id: str) -> Path:
    for suffix in (".nii.gz", ".nii"):
        path = folder / f"{case_id}{suffix}"
        if path.is_file():
            return path
    raise TfcovsegError(f"no prediction for case {case_id!r} ({case_id}.nii.gz)", folder)


def _check_same_grid(prediction: nib.Nifti1Image, label: nib.Nifti1Image, path) -> None:
    same = (
        prediction.shape[:3] == label.shape[:3]
        and nib.aff2axcodes(prediction.affine) == nib.aff2axcodes(label.affine)
        and np.allclose(prediction.affine, label.affine, atol=GRID_TOLERANCE_MM)
    )
    if not same:
        raise TfcovsegError(
            f"not on the label's grid: shape {prediction.shape[:3]} "
            f"{''.join(nib.aff2axcodes(prediction.affine))} vs {label.shape[:3]} "
            f"{''.join(nib.aff2axcodes(label.affine))} (or a different affine)",
            path,
        )


def _lesion(image: nib.Nifti1Image) -> np.ndarray:
    return np.asanyarray(image.dataobj) == LESION_LABEL


def _note(label, prediction) -> str:
    if not label.any() and not prediction.any():
        return "both empty: excluded from the means"
    if not label.any():
        return "empty label"
    return "" if prediction.any() else "empty prediction"


def score_case(label: np.ndarray, prediction: np.ndarray, spacing, tolerance_mm) -> dict:
    """Dice, NSD and volumes of one case (masks and spacing in the same axis order)."""
    voxel_ml = math.prod(spacing) / MM3_PER_ML
    return {
        "dice": dice(label, prediction),
        "nsd": surface_dice(label, prediction, spacing, tolerance_mm),
        "label_ml": float(label.sum()) * voxel_ml,
        "prediction_ml": float(prediction.sum()) * voxel_ml,
        "note": _note(label, prediction),
    }


def summarise(rows: list, metrics=("dice", "nsd")) -> list:
    """Per metric: patients n, excluded (NaN), mean, std, lowest, highest; macro over patients."""
    summary = []
    for metric in metrics:
        per_patient = {}
        for row in rows:
            per_patient.setdefault(row["patient"], []).append(row[metric])
        values = np.array([np.nan if np.isnan(v).all() else np.nanmean(v)
                           for v in per_patient.values()], float)
        scored = values[np.isfinite(values)]
        summary.append({
            "metric": metric,
            "n": int(scored.size),
            "excluded": int(values.size - scored.size),
            "mean": float(scored.mean()) if scored.size else math.nan,
            "std": float(scored.std(ddof=STD_DDOF)) if scored.size > STD_DDOF else math.nan,
            "lowest": float(scored.min()) if scored.size else math.nan,
            "highest": float(scored.max()) if scored.size else math.nan,
        })
    return summary


def _csv(rows: list, fields: list) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_markdown(summary: list, title: str, tolerance_mm: float) -> str:
    """The summary as the papers print it: mean +- std (lowest-highest)."""
    names = {"dice": "Dice", "nsd": f"NSD ({tolerance_mm:g} mm)"}
    lines = [f"## {title}", "", "| metric | n | mean ± std | lowest | highest |",
             "|---|---|---|---|---|"]
    for row in summary:
        lines.append(f"| {names.get(row['metric'], row['metric'])} | {row['n']} | "
                     f"{row['mean']:.3f} ± {row['std']:.3f} | {row['lowest']:.3f} | "
                     f"{row['highest']:.3f} |")
    excluded = max(row["excluded"] for row in summary)
    lines += ["", "n counts patients (cases of one patient are averaged first)."]
    if excluded:
        lines.append(f"{excluded} patient(s) excluded: label and prediction both empty (NaN).")
    return "\n".join(lines) + "\n"


def evaluate(model_dir=None, data=None, out=None, predictions=None, tolerance=None,
             overlap=None, batch_size=None, split=None, input_window=None, tta_axes=None,
             lung_model=None) -> list:
    """Score a model (run folder, export, grid cell, ...; ``load_predictor``) or a folder of
    predictions on a dataset's labels.

    ``split`` ("train" or "tuning"): only the cases of that part of the run's saved split
    (``model_dir`` must then be the training run's folder; ``data`` defaults to the dataset the
    run trained on, as its run.json records).
    ``overlap``, ``batch_size``: the sliding window; ``tta_axes``: test-time mirroring
    (0, 1, 2 = D, H, W; ``load_predictor``; None: its defaults).
    ``input_window`` (low, high HU): the window the images were cut from before they were
    rescaled to 0..255 (``--model`` only; see the module docstring).
    ``lung_model``: the ``lungs`` cell whose lungs mask a ``lesions_in_lungs`` cell's input
    (None: the cases' prepared lung masks).
    Every case is checked against the model's input spec (``check_fits``: voxel spacing, extent
    at the model's target spacing) before the first one is predicted.
    """
    if (model_dir is None) == (predictions is None):
        raise TfcovsegError("give either --model (a run or export) or --predictions (a folder)")
    if data is None and split is not None and model_dir is not None:
        data = RunFolder(model_dir).trained_dataset()
    if data is None:
        raise TfcovsegError("--data (a prepared dataset) is required")
    for option, value in (("--input-window", input_window), ("--tta", tta_axes),
                          ("--lung-model", lung_model)):
        if model_dir is None and value is not None:
            raise ConfigError(f"{option} is for images predicted with --model, not for "
                              "--predictions")
    check_sliding_window(overlap, batch_size)
    check_tta_axes(tta_axes)
    tolerance_mm = LESION_TOLERANCE_MM if tolerance is None else float(tolerance)
    if not tolerance_mm > 0:
        raise ConfigError(f"the NSD tolerance must be a positive number of mm, got {tolerance:g}")
    dataset = load_dataset(data)
    cases = _cases_to_score(dataset, model_dir, split, input_window)
    source = Path(model_dir if model_dir is not None else predictions)
    name = dataset.name if split is None else f"{dataset.name}-{split}"
    out = Path(out) if out else _default_out(source, name, model_dir is not None)
    predictor = None
    if model_dir is not None:
        from tfcovseg.infer.predictor import load_predictor

        predictor = load_predictor(model_dir, overlap=overlap, batch_size=batch_size,
                                   tta_axes=tta_axes)
        lungs_of = _lung_source(predictor, lung_model, batch_size, dataset, cases)
        _check_cases_fit(predictor, dataset, cases)

    rows = []
    for case in cases:
        label_image = load_nifti(dataset.path(case.label))
        if predictor is not None:
            prediction_path = out / "predictions" / f"{case.id}.nii.gz"
            prediction_image = _predicted_image(predictor, dataset, case, prediction_path,
                                                input_window, lungs_of)
        else:
            prediction_path = _prediction_file(Path(predictions), case.id)
            prediction_image = _given_prediction(prediction_path)
        _check_same_grid(prediction_image, label_image, prediction_path)
        spacing = [float(z) for z in label_image.header.get_zooms()[:3]]
        row = {"id": case.id, "patient": str(case.extra.get("patient", case.id))}
        row.update(score_case(_lesion(label_image), _lesion(prediction_image), spacing,
                              tolerance_mm))
        print(f"{case.id}: Dice {row['dice']:.3f}  NSD {row['nsd']:.3f}  {row['note']}".rstrip())
        rows.append(row)

    summary = summarise(rows)
    title = f"{source.name} on {name} (NSD tolerance {tolerance_mm:g} mm)"
    markdown = summary_markdown(summary, title, tolerance_mm)
    write_text(out / "cases.csv", _csv(rows, CASE_FIELDS))
    write_text(out / "summary.csv", _csv(summary, list(summary[0])))
    write_text(out / "summary.md", markdown)
    print(markdown + f"\nresults in {out}")
    return summary


def _default_out(source: Path, name: str, is_model: bool) -> Path:
    """Where results go without ``--out`` (module docstring): beside a model file, inside a
    model folder or the predictions' folder."""
    if not is_model:
        return source / "evaluation"
    if source.is_file() or not source.exists():  # a grid cell may be named without its .json
        stem = source.name.split(".")[0]
        return source.parent / f"{stem}_evaluation" / name
    return source / "evaluation" / name


def _cases_to_score(dataset, model_dir, split, window) -> list:
    """The labelled cases (of the run's ``split``), all checked before anything is predicted:
    their files (``check_case``) and, to be predicted, the manifest's intensity flags."""
    cases = dataset.labelled
    if split is not None:
        cases = split_cases(cases, model_dir, split, dataset.root)
    if not cases:
        raise TfcovsegError("the dataset has no labelled cases to evaluate", dataset.root)
    for case in cases:
        check_case(dataset, case, ("image", "label"))
    if model_dir is not None:
        _check_flagged_intensities(dataset, cases, window)
    return cases


def _check_flagged_intensities(dataset, cases: list, window) -> None:
    """Refuse cases the manifest flags as not in HU: ``not_hu`` always, ``windowed`` unless the
    ``window`` they were cut from is given (``--input-window``)."""
    check_window(window)
    for case in cases:
        if "not_hu" in case.flags:
            raise DataError(f"case {case.id!r} is flagged not_hu in {MANIFEST}: its image has no "
                            "value below 0, so it is not in HU", dataset.path(case.image))
        if "windowed" in case.flags and window is None:
            raise DataError(f"case {case.id!r} is flagged windowed in {MANIFEST}: its image lies "
                            "in 0..255, not in HU; declare the window it was cut from with "
                            "--input-window LOW HIGH (HU)", dataset.path(case.image))


def _check_cases_fit(predictor, dataset, cases: list) -> None:
    """Every case's image grid against the model's input spec, from the headers."""
    from tfcovseg.infer.predictor import check_fits

    for case in cases:
        path = dataset.path(case.image)
        shape, affine = read_grid(path)
        check_fits(predictor.spec, shape, spacing_mm(affine), path)


def _lung_source(predictor, lung_model, batch_size, dataset, cases):
    """``lungs(case, hu, volume)`` for a predictor that takes lungs (None for one that does
    not): the lungs ``lung_model`` finds, or else each case's prepared lung mask, which every
    case must then have (checked here, before anything is predicted)."""
    from tfcovseg.infer.predictor import check_lung_model_input, load_lung_predictor

    check_lung_model_input(predictor.takes_lungs, lung_model)
    if not predictor.takes_lungs:
        return None
    if lung_model is not None:
        from tfcovseg.models.sliding_window import lesion_mask

        lung_predictor = load_lung_predictor(lung_model, batch_size)
        return lambda case, hu, volume: lesion_mask(lung_predictor(hu, volume.spacing))
    for case in cases:
        if not case.lung:
            raise DataError(f"case {case.id!r} has no lung mask, which the lesions_in_lungs grid "
                            "cell takes as its input mask: give --lung-model LUNGS_CELL",
                            dataset.root / MANIFEST)
        check_case(dataset, case, ("image", "lung"))
    return lambda case, hu, volume: read_volume(dataset.path(case.lung)).array


def _predicted_image(predictor, dataset, case, out_path, window, lungs_of) -> nib.Nifti1Image:
    from tfcovseg.models.sliding_window import lesion_mask  # TensorFlow only when a model is scored

    image_path = dataset.path(case.image)
    volume = read_volume(image_path)
    hu = ct_in_hu(volume.array, image_path, window)
    lungs = None if lungs_of is None else lungs_of(case, hu, volume)
    mask = lesion_mask(predictor(hu, volume.spacing, lungs=lungs)).astype(np.uint8)
    image = to_source_grid(mask, volume)
    save_image(image, out_path)
    return image


def _given_prediction(path) -> nib.Nifti1Image:
    image = load_nifti(path)
    check_mask_values(np.asanyarray(image.dataobj), PREDICTION_VALUES, path, "prediction",
                      "those of a lesion mask")
    return image
