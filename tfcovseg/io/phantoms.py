"""Synthetic chest CT phantoms in HU with lesion and lung masks: the embedded demo and test data.

A phantom is an axial stack ``[D, H, W]`` on the RAS+ grid of the prepared-dataset convention:
slice index ``d`` runs inferior -> superior, row ``h`` posterior -> anterior, column ``w`` the
patient's left -> right. The anatomy is drawn in coordinates normalised to the field of view
(each axis spans [-1, 1]), so any ``shape`` gives the same chest, scaled; ``spacing`` only sets the
affine. Contents (HU): air outside the body (-1000); a body ellipse of subcutaneous fat (-100)
around soft tissue (40); ribs (700) and vertebrae (cancellous 400, cortex 900, soft discs);
the heart; two lungs (-850, denser posteriorly as in a supine patient) with vessels (30);
COVID-like lesions, either ground glass (-700..-300) or consolidation (-100..+50), mostly
peripheral and basal, 1-6 per case with varying sizes and irregular borders; Gaussian noise.

Masks: ``lesion`` is 0/1 and only inside the lungs; ``lung`` is 1 = right lung, 2 = left lung
(``lung > 0`` for a binary mask). Every fourth case of a dataset (index 3, 7, ...) has no lesions.
"""

import dataclasses
from pathlib import Path

import numpy as np
from scipy import ndimage

from tfcovseg.errors import ConfigError
from tfcovseg.io.manifest import Case, Dataset, case_files, write_dataset
from tfcovseg.io.nifti import ras_affine, write_volume
from tfcovseg.settings.phantoms import MIN_SIZE, Phantoms

AIR, FAT, SOFT_TISSUE, LUNG = -1000.0, -100.0, 40.0, -850.0
RIB, VERTEBRA, CORTEX, VESSEL = 700.0, 400.0, 900.0, 30.0
GROUND_GLASS_HU = (-700.0, -300.0)
CONSOLIDATION_HU = (-100.0, 50.0)
CONSOLIDATION_FRACTION = 0.3  # share of lesions that are consolidations rather than ground glass
POSTERIOR_GRADIENT_HU = 60.0  # dependent lung density: posterior lung this much denser than anterior
NOISE_SD_HU = 20.0
LESION_TEXTURE_HU = 40.0
LESION_EDGE = 0.35  # width of a lesion's partial-volume border, in units of its radius
VESSELS_PER_LUNG = 14
LESION_FREE_EVERY = 4  # case i has no lesions when i % 4 == 3
BASE_FLATNESS = 4.0  # exponent of the lung's height profile below its centre (2 = ellipsoid)
RIGHT_LUNG, LEFT_LUNG = 1, 2
LUNG_LABELS = {"1": "right lung", "2": "left lung"}

# Geometry in normalised field-of-view units; triples are (z, y, x), x > 0 the patient's right.
BODY_RADII = (0.62, 0.86)  # (y, x) semi-axes of the body ellipse, +-5 % per case
BODY_CENTRE_Y = 0.02
SOFT_TISSUE_FRACTION = 0.88  # of the body radii; the fat layer lies outside it
RIB_RING = (0.86, 0.93)  # ribs lie between these fractions of the body radii
RIB_PAIRS = (5.5, 6.5)  # ribs across the field's height
RIB_DESCENT = 0.6  # phase shift per unit y: ribs run lower anteriorly
RIB_WIDTH = 0.55  # threshold on the rib wave: higher, thinner ribs
SPINE_CENTRE_Y, SPINE_RADIUS = -0.6, 0.11
CANCELLOUS_FRACTION = 0.75  # of the vertebral radius; the cortex is the rest
VERTEBRAE = 6.0  # vertebral bodies across the field's height
DISC_WIDTH = -0.7  # threshold on the vertebra wave: lower, thinner discs
LUNG_CENTRE = (0.05, 0.02, 0.4)  # right lung; the left one mirrors it
LUNG_RADII = (0.9, 0.42, 0.29)
LUNG_JITTER = 0.04
HEART_CENTRE, HEART_RADII = (-0.35, 0.25, -0.1), (0.35, 0.3, 0.25)
HILUM = (-0.1, 0.05, 0.15)  # vessel origin: z below the lung centre, y, |x|
VESSEL_RADIUS = (0.012, 0.03)
DEFAULTS = Phantoms()  # the settings' defaults (tfcovseg.settings.phantoms): mild disease


@dataclasses.dataclass(frozen=True)
class _Lung:
    centre: np.ndarray  # (z, y, x), normalised
    radii: np.ndarray  # (z, y, x) semi-axes, normalised


def phantom(rng: np.random.Generator, shape=DEFAULTS.shape, spacing=DEFAULTS.spacing,
            lesions: bool = True, lesion_count=DEFAULTS.lesion_count,
            lesion_radius=DEFAULTS.lesion_radius):
    """One chest CT phantom: ``(image_hu float32, lesion uint8, lung uint8)``, each ``[D, H, W]``.

    ``spacing`` is accepted for symmetry with the file writer; the anatomy is scaled to the
    field of view (see the module docstring), so it does not change the arrays.
    ``lesion_count`` (min, max) lesions per case, each of a radius drawn from ``lesion_radius``
    (min, max), in units of half the field of view.
    """
    del spacing
    if problem := _shape_problem(shape):
        raise ConfigError(f"phantoms: {problem}")
    shape = tuple(int(s) for s in shape)
    z, y, x = _axes(shape)
    radii = np.array(BODY_RADII) * (1.0 + rng.uniform(-0.05, 0.05, size=2))
    body_q = ((y - BODY_CENTRE_Y) / radii[0]) ** 2 + (x / radii[1]) ** 2  # [H, W]

    image = np.full(shape, AIR, np.float32)
    image[:, body_q <= 1.0] = FAT
    image[:, body_q <= SOFT_TISSUE_FRACTION**2] = SOFT_TISSUE
    _draw_ribs(image, z, y, x, body_q, rng)
    _draw_spine(image, z, y, x)

    lungs = _lungs(rng)
    lung = np.zeros(shape, np.uint8)
    for value, anatomy in ((RIGHT_LUNG, lungs[0]), (LEFT_LUNG, lungs[1])):
        lung[_lung_shape(z, y, x, anatomy)] = value
    lung[_heart(z, y, x)] = 0
    lung[image > SOFT_TISSUE] = 0  # ribs and spine are not lung
    inside = lung > 0
    dependent = np.broadcast_to(LUNG + POSTERIOR_GRADIENT_HU * (-y) / 2.0, shape)
    image[inside] = dependent[inside]

    lesion = np.zeros(shape, np.uint8)
    if lesions:
        for _ in range(rng.integers(lesion_count[0], lesion_count[1] + 1)):
            _draw_lesion(image, lesion, lung, (z, y, x), lungs[rng.integers(2)], rng, lesion_radius)
    for anatomy, side in ((lungs[0], 1.0), (lungs[1], -1.0)):
        for _ in range(VESSELS_PER_LUNG):
            _draw_vessel(image, lung, (z, y, x), anatomy, side, rng)

    image += rng.standard_normal(shape, dtype=np.float32) * np.float32(NOISE_SD_HU)
    return image, lesion, lung


def synthesize_dataset(out, settings: Phantoms = DEFAULTS, name: str = "phantoms") -> Dataset:
    """Write ``settings.cases`` phantoms as a prepared dataset in ``out``; return its manifest.

    Case ``i`` draws from ``np.random.default_rng([settings.seed, i])``: the same seed gives the
    same files whatever the number of cases. Images are stored as int16 HU, masks as uint8.
    ``Phantoms`` checks its values when it is made, so nothing is written for a bad setting.
    """
    shape, spacing, seed = settings.shape, settings.spacing, settings.seed
    root = Path(out)
    affine = ras_affine(shape, spacing)
    entries = []
    for i in range(settings.cases):
        case_id = f"{name}_{i:03d}"
        with_lesions = i % LESION_FREE_EVERY != LESION_FREE_EVERY - 1
        image, lesion, lung = phantom(np.random.default_rng([seed, i]), shape, spacing, with_lesions,
                                      settings.lesion_count, settings.lesion_radius)
        files = case_files(case_id)
        write_volume(root / files["image"], np.rint(image), affine, np.int16)
        write_volume(root / files["label"], lesion, affine, np.uint8)
        write_volume(root / files["lung"], lung, affine, np.uint8)
        entries.append(Case(
            id=case_id, image=files["image"], label=files["label"], lung=files["lung"],
            spacing=[float(s) for s in spacing], shape=[int(s) for s in shape],
            orientation="RAS", notes="" if with_lesions else "no lesions",
        ))
    dataset = Dataset(root=root, name=name, cases=entries, source="phantoms",
                      extra={"lung_labels": dict(LUNG_LABELS), "seed": int(seed)})
    write_dataset(dataset)
    return dataset


def _shape_problem(shape) -> str | None:
    """Why ``shape`` cannot be a phantom's (not 3 sizes of at least ``MIN_SIZE``), or None."""
    if len(shape) == 3 and min(shape) >= MIN_SIZE:
        return None
    return (f"shape must be 3 sizes (D, H, W) of at least {MIN_SIZE} voxels, got "
            f"{tuple(int(s) for s in shape)}")


def _axes(shape):
    """Normalised voxel-centre coordinates, broadcastable: z [D,1,1], y [H,1], x [W]."""
    d, h, w = shape
    z = ((np.arange(d, dtype=np.float32) + 0.5) / d * 2 - 1)[:, None, None]
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)[:, None]
    x = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    return z, y, x


def _lungs(rng):
    """Right (x > 0) and left lung; the base (low z) reaches near the field's bottom."""
    lungs = []
    for side in (1.0, -1.0):
        jitter = rng.uniform(-LUNG_JITTER, LUNG_JITTER, size=3)
        centre = np.array(LUNG_CENTRE) * [1.0, 1.0, side] + jitter * [1.0, 0.5, 0.5]
        lungs.append(_Lung(centre, np.array(LUNG_RADII) * (1 + jitter)))
    return lungs


def _height_profile(height):
    """Squared in-plane radius fraction at a relative height: a round apex, a broad flat base."""
    exponent = np.where(height < 0, BASE_FLATNESS, 2.0)
    return np.clip(1.0 - np.abs(height) ** exponent, 0.0, None)


def _lung_shape(z, y, x, anatomy: _Lung):
    centre, radii = anatomy.centre, anatomy.radii
    across = ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    return across <= _height_profile((z - centre[0]) / radii[0])


def _ellipsoid(z, y, x, centre, radii):
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0


def _heart(z, y, x):
    """Soft-tissue ellipsoid in the anterior mediastinum, leaning left: indents the left lung."""
    return _ellipsoid(z, y, x, HEART_CENTRE, HEART_RADII)


def _draw_ribs(image, z, y, x, body_q, rng):
    """Ribs: a ring just inside the body wall, present in oblique bands that descend anteriorly."""
    ring = (body_q >= RIB_RING[0] ** 2) & (body_q <= RIB_RING[1] ** 2)
    rows, cols = np.nonzero(ring)
    phase = rng.uniform(*RIB_PAIRS) * z[:, :, 0] + RIB_DESCENT * y[rows, 0] + rng.uniform()
    bone = np.sin(2 * np.pi * phase) > RIB_WIDTH  # [D, ring pixels]
    column = image[:, rows, cols]
    column[bone] = RIB
    image[:, rows, cols] = column


def _draw_spine(image, z, y, x):
    """Vertebral bodies (cortex around cancellous bone) separated by discs, behind the lungs."""
    r2 = (x / SPINE_RADIUS) ** 2 + ((y - SPINE_CENTRE_Y) / SPINE_RADIUS) ** 2
    vertebrae = np.sin(2 * np.pi * VERTEBRAE * z[:, :, 0]) > DISC_WIDTH  # discs: the gaps
    body = r2 <= CANCELLOUS_FRACTION**2
    cortex = ~body & (r2 <= 1.0)
    levels = np.nonzero(vertebrae[:, 0])[0][:, None]
    for part, value in ((body, VERTEBRA), (cortex, CORTEX)):
        rows, cols = np.nonzero(part)
        image[levels, rows, cols] = value


def _box(shape, centre, reach):
    """Index slices of the voxels within ``reach`` (normalised) of ``centre``, clipped to the grid."""
    box = []
    for size, c, r in zip(shape, centre, reach, strict=True):
        lo = int(np.floor(((c - r) + 1) / 2 * size))
        hi = int(np.ceil(((c + r) + 1) / 2 * size)) + 1
        box.append(slice(max(lo, 0), min(hi, size)))
    return tuple(box)


def _crop(axes, box):
    z, y, x = axes
    return z[box[0]], y[box[1]], x[box[2]]


def _point_in_lung(anatomy: _Lung, rng, height, radial):
    """A point of the lung from its relative height (-1 base) and radial fraction."""
    across = np.sqrt(_height_profile(height)) * radial
    angle = rng.uniform(0, 2 * np.pi)
    offset = np.array([height, across * np.sin(angle), across * np.cos(angle)])
    return anatomy.centre + offset * anatomy.radii


def _draw_lesion(image, lesion, lung, axes, anatomy, rng, radius):
    """One irregular lesion, mostly peripheral and basal; HU blends into the lung at its border."""
    height = -1 + 2 * rng.beta(1.5, 4.0)  # skewed to the base
    centre = _point_in_lung(anatomy, rng, height, rng.beta(6.0, 1.2))  # skewed to the periphery
    radii = rng.uniform(*radius) * rng.uniform(0.7, 1.3, size=3)  # size, then shape
    box = _box(image.shape, centre, radii * (1 + LESION_EDGE + 0.3))
    z, y, x = _crop(axes, box)
    q = np.sqrt(((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                + ((x - centre[2]) / radii[2]) ** 2)
    outline = q - 0.3 * _smooth_noise(rng, q.shape)  # irregular border
    alpha = np.clip((1 + LESION_EDGE / 2 - outline) / LESION_EDGE, 0, 1)
    in_lung = lung[box] > 0
    consolidation = rng.uniform() < CONSOLIDATION_FRACTION
    low, high = CONSOLIDATION_HU if consolidation else GROUND_GLASS_HU
    value = rng.uniform(low, high) + LESION_TEXTURE_HU * _smooth_noise(rng, q.shape)
    region = image[box]
    blended = region + alpha * (value - region)
    region[in_lung] = blended[in_lung]
    lesion[box][(alpha >= 0.5) & in_lung] = 1


def _draw_vessel(image, lung, axes, anatomy, side, rng):
    """A straight tube from the hilum towards a random point of the lung, drawn over the lung."""
    start = np.array([anatomy.centre[0] + HILUM[0], HILUM[1], side * HILUM[2]])
    end = _point_in_lung(anatomy, rng, rng.uniform(-0.9, 0.9), rng.uniform(0.3, 0.95))
    radius = rng.uniform(*VESSEL_RADIUS)
    box = _box(image.shape, (start + end) / 2, np.abs(end - start) / 2 + radius)
    z, y, x = _crop(axes, box)
    direction = end - start
    t = ((z - start[0]) * direction[0] + (y - start[1]) * direction[1]
         + (x - start[2]) * direction[2]) / float(direction @ direction)
    t = np.clip(t, 0, 1)
    distance2 = ((z - start[0] - t * direction[0]) ** 2 + (y - start[1] - t * direction[1]) ** 2
                 + (x - start[2] - t * direction[2]) ** 2)
    tube = (distance2 <= radius**2) & (lung[box] > 0)
    image[box][tube] = VESSEL


def _smooth_noise(rng, shape):
    """Low-frequency noise in about [-1, 1]: a 4x4x4 random grid interpolated to ``shape``."""
    coarse = rng.uniform(-1, 1, size=(4, 4, 4)).astype(np.float32)
    return ndimage.zoom(coarse, [s / 4 for s in shape], order=1, mode="nearest", grid_mode=True)[
        tuple(slice(0, s) for s in shape)]
