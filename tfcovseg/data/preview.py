"""A picture of what the network is fed: augmented training samples with the label overlaid.

For a 3D pipeline each panel is the axial slice with the most lesion voxels of one augmented
sample (the middle slice if it has none); for the 2D pipeline each panel is one augmented
slice. Slices are shown in the radiological convention (anterior up, the patient's right on
the viewer's left; arrays are RAS+), the images in grey on one range shared by all panels,
the target in translucent red.
"""

import math

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from tfcovseg.data.pipeline2d import slice_dataset
from tfcovseg.data.pipeline3d import volume_dataset
from tfcovseg.data.reader import read_errors
from tfcovseg.files import atomic_path
from tfcovseg.io.manifest import Dataset, load_dataset
from tfcovseg.io.nifti import radiological
from tfcovseg.settings.data import Pipeline2D, Pipeline3D

PANELS_PER_ROW = 4
PANEL_INCHES = 3.0
OVERLAY_ALPHA = 0.45


def preview_dataset(dataset, out_png, pipeline="3d", n=4, seed=0, experiment="lesions"):
    """``preview_png`` with the default settings of the 3D (stage 1) or the 2D pipeline."""
    cfg = Pipeline3D() if pipeline == "3d" else Pipeline2D()
    return preview_png(dataset, cfg, out_png, n=n, seed=seed, experiment=experiment)


def preview_png(dataset, cfg, out_png, n: int = 4, seed: int = 0, experiment: str = "lesions"):
    """Write a grid of ``n`` augmented samples of ``cfg`` (``Pipeline3D`` or ``Pipeline2D``).

    ``dataset`` is a ``Dataset`` or a prepared dataset folder; ``experiment`` picks the 2D
    target. Returns the PNG's path.
    """
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    with read_errors():
        panels = list(training_samples(dataset, cfg, n, seed, experiment))
    rows = math.ceil(n / PANELS_PER_ROW)
    cols = min(n, PANELS_PER_ROW)
    low = min(float(image.min()) for image, _, _ in panels)
    high = max(float(image.max()) for image, _, _ in panels)
    figure = Figure(figsize=(PANEL_INCHES * cols, PANEL_INCHES * rows))
    for i, (image, target, title) in enumerate(panels):
        axes = figure.add_subplot(rows, cols, i + 1)
        axes.imshow(radiological(image), cmap="gray", vmin=low, vmax=high)
        axes.imshow(
            np.ma.masked_equal(radiological(target), 0),
            cmap=ListedColormap(["red"]),
            alpha=OVERLAY_ALPHA,
        )
        axes.set_title(title, fontsize="small")
        axes.set_axis_off()
    figure.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return out_png


def training_samples(dataset: Dataset, cfg, n: int, seed: int, experiment: str):
    """``(image [H, W], target [H, W], title)`` of ``n`` augmented samples (passes repeat)."""
    if isinstance(cfg, Pipeline2D):
        slices = slice_dataset(
            dataset,
            dataset.cases,
            cfg,
            experiment=experiment,
            batch_size=1,
            training=True,
            seed=seed,
        )
        for k, (image, mask) in enumerate(slices.repeat().unbatch().take(n)):
            yield image.numpy()[..., 0], mask.numpy()[..., 0], f"{experiment} #{k}"
        return
    if not isinstance(cfg, Pipeline3D):
        raise TypeError(f"cfg must be a Pipeline3D or Pipeline2D, got {type(cfg).__name__}")
    volumes = volume_dataset(
        dataset, dataset.labelled, cfg, batch_size=1, training=True, seed=seed, with_ids=True
    )
    for image, label, case_id in volumes.repeat().unbatch().take(n):
        image, label = image.numpy()[..., 0], label.numpy()[..., 0]
        lesion_per_slice = label.sum(axis=(1, 2))
        z = int(lesion_per_slice.argmax()) if lesion_per_slice.any() else label.shape[0] // 2
        yield image[z], label[z], f"{case_id.numpy().decode()} z={z}"
