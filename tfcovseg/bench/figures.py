"""The paper's figures (2-8) as PNG files, drawn from the cells' result files and arrays.

Each ``fig*`` function takes the finished results, the bench folder and the output folder,
writes its files and returns notes about what it had to skip (data not present: too few cells,
empty masks, no ImageNet cell), so a partial grid still gets every figure it can support.
"""

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402
from skimage.measure import marching_cubes  # noqa: E402

from tfcovseg.bench import store  # noqa: E402
from tfcovseg.settings.bench import ARCHS, INITS  # noqa: E402
from tfcovseg.settings.data import EXPERIMENTS  # noqa: E402

DPI = 120
KDE_GRID = 100  # points per axis of the density image behind Fig. 4 (as the authors)
MIN_KDE_POINTS = 3  # a 2D Gaussian KDE needs more points than dimensions
FILTER_GRID = 8  # Fig. 8 shows the first 8 x 8 filters, as the authors
FILTER_RANGE = 0.4  # grey-scale limits of the filter images (the authors' vmin/vmax)
IMAGE_RANGE = (-1.5, 1.5)  # display window of normalised CT (the authors' vmin/vmax)
MARCHING_LEVEL = 0.5
PAPER_ORDER = {"arch": ARCHS, "init": INITS, "experiment": EXPERIMENTS}


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _by(results, key):
    """Results grouped by a cell key, in the paper's order (then alphabetical)."""
    groups = defaultdict(list)
    for r in results:
        groups[r["cell"][key]].append(r)
    order = PAPER_ORDER.get(key, ())
    return {k: groups[k] for k in [*[k for k in order if k in groups],
                                   *sorted(set(groups) - set(order))]}


def _dice(r) -> float:
    return 100 * r["metrics"]["dice"]


def fig2_histograms(results, bench_dir, out: Path) -> list[str]:
    notes = []
    for experiment, cells in _by(results, "experiment").items():
        arrays = store.read_arrays(bench_dir, cells[0]["id"])
        if "histogram_images" not in arrays:
            notes.append(f"fig2 {experiment}: no histogram arrays")
            continue
        images, masks = (arrays[k].astype(float) for k in ("histogram_images", "histogram_masks"))
        scale = max(images.max(), masks.max(), 1.0)
        edges = np.linspace(*store.HISTOGRAM_RANGE, store.HISTOGRAM_BINS + 1)
        fig, ax = plt.subplots()
        ax.stairs(images / scale, edges, fill=True, label="Images")
        ax.stairs(masks / scale, edges, fill=True, label="Masks", alpha=0.8)
        ax.set(yscale="log", xlabel="Normalised values", xlim=store.HISTOGRAM_RANGE,
               title=f"{experiment}: test intensities")
        ax.grid(True, which="both")
        ax.legend()
        _save(fig, out / f"fig2_histograms_{experiment}.png")
    return notes


def fig3_predictions(results, bench_dir, out: Path) -> list[str]:
    notes = []
    for experiment, cells in _by(results, "experiment").items():
        archs = _by(cells, "arch")
        fig, axes = plt.subplots(len(archs), 2, figsize=(6, 3 * len(archs)), squeeze=False)
        for row, (arch, arch_cells) in enumerate(archs.items()):
            ranked = sorted(arch_cells, key=_dice)
            for col, (label, r) in enumerate((("best", ranked[-1]), ("worst", ranked[0]))):
                _overlay(axes[row, col], store.read_arrays(bench_dir, r["id"]),
                         f"{arch} {label}: {r['cell']['encoder']} ({_dice(r):.1f}%)")
        _save(fig, out / f"fig3_predictions_{experiment}.png")
    return notes


def _overlay(ax, arrays: dict, title: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    if "figure_image" not in arrays:
        return
    mask, prediction = arrays["figure_mask"], arrays["figure_prediction"]
    ax.imshow(arrays["figure_image"], cmap="gray", vmin=IMAGE_RANGE[0], vmax=IMAGE_RANGE[1])
    ax.imshow(np.ma.masked_equal(mask & prediction, 0), cmap="Greens", alpha=0.5, vmin=0, vmax=1)
    ax.imshow(np.ma.masked_equal(mask ^ prediction, 0), cmap="Reds", alpha=0.5, vmin=0, vmax=1)


def fig4_dice_vs_parameters(results, bench_dir, out: Path) -> list[str]:
    notes = []
    for experiment, cells in _by(results, "experiment").items():
        x = np.array([r["parameters"] / 1e6 for r in cells])
        y = np.array([_dice(r) for r in cells])
        fig, ax = plt.subplots()
        try:
            _kde_image(ax, x, y)
        except (ValueError, np.linalg.LinAlgError):
            notes.append(f"fig4 {experiment}: {len(cells)} cells, too few or collinear for a KDE")
        for arch, arch_cells in _by(cells, "arch").items():
            ax.scatter([r["parameters"] / 1e6 for r in arch_cells],
                       [_dice(r) for r in arch_cells], s=9, label=arch)
        ax.set(xlabel="Parameters (millions)", ylabel="Dice (%)", title=experiment)
        ax.grid(True)
        ax.legend(loc="lower right")
        _save(fig, out / f"fig4_dice_vs_parameters_{experiment}.png")
    return notes


def _kde_image(ax, x, y) -> None:
    if len(x) < MIN_KDE_POINTS:
        raise ValueError("too few points")
    kernel = gaussian_kde(np.vstack([x, y]))
    pad_x, pad_y = max(np.ptp(x), 1.0) * 0.1, max(np.ptp(y), 1.0) * 0.1
    extent = [x.min() - pad_x, x.max() + pad_x, y.min() - pad_y, y.max() + pad_y]
    gx, gy = np.mgrid[extent[0]:extent[1]:KDE_GRID * 1j, extent[2]:extent[3]:KDE_GRID * 1j]
    density = kernel(np.vstack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax.imshow(np.rot90(density), cmap="Greens", extent=extent, alpha=0.5, aspect="auto")


def fig5_losses(results, bench_dir, out: Path) -> list[str]:
    for experiment, cells in _by(results, "experiment").items():
        fig, axes = plt.subplots(2, 1, sharex=True)
        for ax, key, label in ((axes[0], "train_loss", "Train"),
                               (axes[1], "validation_loss", "Validation")):
            for arch, arch_cells in _by(cells, "arch").items():
                epochs = min(len(r[key]) for r in arch_cells)
                curves = np.array([r[key][:epochs] for r in arch_cells])
                t = np.arange(1, epochs + 1)
                mean, std = curves.mean(0), curves.std(0)
                ax.plot(t, mean, label=arch, marker="." if epochs == 1 else None)
                ax.fill_between(t, mean - std, mean + std, alpha=0.3)
            ax.set(ylabel=f"{label} loss", ylim=(0, 1))
            ax.grid(True)
        axes[0].legend(loc="upper right")
        axes[0].set_title(experiment)
        axes[1].set_xlabel("Epoch")
        _save(fig, out / f"fig5_losses_{experiment}.png")
    return []


def fig6_boxplots(results, bench_dir, out: Path) -> list[str]:
    for experiment, cells in _by(results, "experiment").items():
        archs = _by(cells, "arch")
        fig, ax = plt.subplots()
        ax.boxplot([[_dice(r) for r in c] for c in archs.values()], tick_labels=list(archs))
        ax.set(ylabel="Dice (%)", title=f"{experiment}: per architecture")
        ax.grid(True)
        _save(fig, out / f"fig6_dice_by_architecture_{experiment}.png")
    inits = _by(results, "init")
    fig, ax = plt.subplots()
    ax.boxplot([[_dice(r) for r in c] for c in inits.values()], tick_labels=list(inits))
    ax.set(ylabel="Dice (%)", title="per initialisation (all experiments)")
    ax.grid(True)
    _save(fig, out / "fig6_dice_by_initialisation.png")
    return []


def fig7_surfaces(results, bench_dir, out: Path) -> list[str]:
    notes = []
    for experiment, cells in _by(results, "experiment").items():
        volumes = {}
        for r in cells:
            arrays = store.read_arrays(bench_dir, r["id"])
            if "volume_prediction" in arrays:
                volumes.setdefault("true mask", arrays["volume_mask"])
                volumes[r["cell"]["arch"]] = arrays["volume_prediction"]
        drawable = {k: v for k, v in volumes.items() if _has_surface(v)}
        notes += [f"fig7 {experiment}: {k} is empty or flat, no surface" for k in volumes
                  if k not in drawable]
        if not drawable:
            notes.append(f"fig7 {experiment}: no test volume with a surface "
                         "(kept for random-init cells of evaluation.volume_encoder)")
            continue
        fig = plt.figure(figsize=(4 * len(drawable), 4))
        for i, (name, volume) in enumerate(drawable.items(), start=1):
            verts, faces, _, _ = marching_cubes(volume.astype(np.float32), MARCHING_LEVEL)
            ax = fig.add_subplot(1, len(drawable), i, projection="3d")
            ax.plot_trisurf(verts[:, 2], verts[:, 1], faces, verts[:, 0], alpha=0.5)
            ax.set_title(name)
            ax.set_axis_off()
        _save(fig, out / f"fig7_surfaces_{experiment}.png")
    return notes


def _has_surface(volume: np.ndarray) -> bool:
    return min(volume.shape) >= 2 and bool(volume.any()) and not bool(volume.all())


def fig8_filters(results, bench_dir, out: Path) -> list[str]:
    pairs = defaultdict(dict)
    for r in results:
        c = r["cell"]
        pairs[(c["experiment"], c["arch"], c["encoder"])][c["init"]] = r
    complete = [p for p in pairs.values() if len(p) == 2]
    if not complete:
        return ["fig8: no encoder finished with both random and ImageNet initialisation"]
    # the authors show Unet with the encoder of Fig. 7 (resnet18)
    shown = results[0]["config"]["evaluation"]["volume_encoder"]
    chosen = min(complete, key=lambda p: (p["random"]["cell"]["arch"] != "unet",
                                          p["random"]["cell"]["encoder"] != shown))
    fig, axes = plt.subplots(2, 2, figsize=(8, 8))
    for row, init in enumerate(("random", "imagenet")):
        arrays = store.read_arrays(bench_dir, chosen[init]["id"])
        for col, when in enumerate(("before", "after")):
            _filter_mosaic(axes[row, col], arrays[f"filters_{when}"],
                           f"{init}, {when} training")
    c = chosen["random"]["cell"]
    fig.suptitle(f"first convolution of {c['encoder']} ({c['arch']}, {c['experiment']})")
    _save(fig, out / "fig8_first_conv_filters.png")
    return []


def _filter_mosaic(ax, kernel: np.ndarray, title: str) -> None:
    """The first input channel of up to 8 x 8 filters of a ``[kh, kw, in, out]`` kernel."""
    kh, kw, _, n = kernel.shape
    mosaic = np.full((FILTER_GRID * (kh + 1), FILTER_GRID * (kw + 1)), np.nan)
    for i in range(min(n, FILTER_GRID**2)):
        r, c = divmod(i, FILTER_GRID)
        mosaic[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = kernel[..., 0, i]
    ax.imshow(mosaic, cmap="gray", vmin=-FILTER_RANGE, vmax=FILTER_RANGE)
    ax.set_title(title)
    ax.set_axis_off()


FIGURES = (fig2_histograms, fig3_predictions, fig4_dice_vs_parameters, fig5_losses,
           fig6_boxplots, fig7_surfaces, fig8_filters)


def write_figures(results, bench_dir, out) -> list[str]:
    """Every figure the finished ``results`` support, into ``out``; returns the skip notes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    for figure in FIGURES:
        notes += figure(results, Path(bench_dir), out)
    return notes
