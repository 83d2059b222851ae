"""2D image/mask folders (PNG/JPG slices, as many public COVID-19 sets ship) -> prepared cases.

Layout under ``--src``: ``images/<id>.(png|jpg|jpeg)`` and a mask folder of the same ids
(default ``lesions/``; any non-zero pixel is lesion). Such images are 8-bit windowed CT: the
converter needs the HU window they were cut from (``--window LOW HIGH``, e.g. -1250 250, Ma et
al.'s radiopaedia window) and restores HU linearly (``tfcovseg.io.checks.unwindow``); every
case is flagged ``windowed_restored`` (the HU are an estimate: the 8-bit rounding is lost, and
values outside the window were clipped when the image was made). Each slice is one case of
shape 1 x H x W, read as radiologists view it (anterior at the top, the patient's right on the
left) and stored on the RAS+ grid; without a spacing in the files, pixels are 1 mm
(``flags: no_spacing``). A mask of another size than its image is an error for that case.
"""

from pathlib import Path

import numpy as np

from tfcovseg.errors import DataError
from tfcovseg.io.checks import check_window, unwindow
from tfcovseg.io.converters import ConvertedCase, Source, SourceCase
from tfcovseg.io.nifti import Volume, radiological, ras_affine

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PIXEL_MM = (1.0, 1.0, 1.0)  # no spacing in PNG/JPG slices
RAS = np.array([[0, 1], [1, 1], [2, 1]])  # nibabel orientation of a RAS+ file


def find_slices(src: Path, window, masks: str = "lesions") -> Source:
    """The slices under ``src``: ``images/`` and ``masks/`` of the same ids (see module)."""
    if window is None:
        raise DataError("2D slices are 8-bit windowed images: give the HU window they were cut "
                        "from, --window LOW HIGH (e.g. -1250 250)", src)
    check_window(window)
    images = {p.stem: p for p in sorted((src / "images").glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DataError("expected images/<id>.png|jpg (and a mask folder, default lesions/) here",
                        src)
    cases = [SourceCase(case_id, _loader(path, _mask_file(src / masks, case_id), window))
             for case_id, path in images.items()]
    return Source(cases, notes=f"2D slices windowed to [{window[0]:g}, {window[1]:g}] HU and "
                               "restored linearly; 1 mm pixels (no spacing in the files).",
                  extra={"window_hu": [float(window[0]), float(window[1])], "masks": masks})


def _mask_file(folder: Path, case_id: str) -> Path | None:
    return next((folder / f"{case_id}{s}" for s in IMAGE_SUFFIXES if (folder / f"{case_id}{s}").is_file()),
                None)


def _loader(image_path: Path, mask_path: Path | None, window):
    def load() -> ConvertedCase:
        pixels = read_grey(image_path)
        label = None
        if mask_path is not None:
            mask = read_grey(mask_path)
            if mask.shape != pixels.shape:
                raise DataError(f"mask {mask_path.name} is {mask.shape[1]}x{mask.shape[0]} pixels, "
                                f"its image {pixels.shape[1]}x{pixels.shape[0]}", mask_path)
            label = (radiological(mask) > 0).astype(np.uint8)[None]
        hu = unwindow(radiological(pixels), window)[None]
        image = Volume(hu, ras_affine(hu.shape, PIXEL_MM), RAS, (hu.shape[2], hu.shape[1], 1))
        return ConvertedCase(image=image, label=label, flags=["windowed_restored", "no_spacing"],
                             notes="" if mask_path else "no mask")

    return load


def read_grey(path: Path) -> np.ndarray:
    """An 8-bit image file as a grey ``[H, W]`` uint8 array (RGB averaged to grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = image.convert("L") if image.mode not in ("L", "P") else image
            return np.asarray(grey, np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"not a readable image ({err})", path) from None
