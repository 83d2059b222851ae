"""NIfTI sources for ``tfcovseg prepare``: their layouts, label values and quirks.

Every source is read with ``tfcovseg.io.nifti.read_volume`` (reoriented to RAS+, the source's
orientation kept in the manifest) and checked (``tfcovseg.io.checks``). Lesion labels become 0/1;
lung masks become 1 = right lung, 2 = left lung where the source tells the sides (coronacases),
otherwise 1 = lung (the manifest's ``lung_labels`` says which).

``mosmed`` (MosMedData, CT-0..CT-4)::

    studies/CT-*/study_NNNN.nii.gz      masks/study_NNNN_mask.nii.gz  (int16, 0/1)

  Only the 50 studies with a mask are converted (``mosmed_NNNN``). Quirks: stored LAS (looks
  prone when displayed naively; acquired supine); every 10th slice kept (8 mm spacing).

``coronacases`` (Ma et al., Zenodo 3757476)::

    COVID-19-CT-Seg_20cases/coronacases_org_001.nii.gz ...   Infection_Mask/coronacases_001.nii.gz
    Lung_Mask/coronacases_001.nii.gz (optional; 1 left, 2 right: swapped to ours)

  File names are matched by source and number, so mirrors' renames (``coronacases_org_001.nii``,
  ``.nii`` vs ``.nii.gz``) work. The 10 ``radiopaedia_*`` volumes of this set are windowed to
  0..255, not HU: they are detected by their intensity range and skipped (listed in the
  manifest's ``skipped``); the 10 ``coronacases_NNN`` are kept.

``medseg`` (MedSeg COVID-19 CT segmentation, 100 axial slices of < 40 patients)::

    tr_im.nii.gz  tr_mask.nii.gz (1 ground glass, 2 consolidation, 3 pleural effusion)
    tr_lungmasks_updated.nii.gz

  One 512x512x100 stack, written as one case per slice (``medseg_000`` ... ``medseg_099``,
  shape 1x512x512) so that a split by case is a split by slice. Classes 1-3 merge into lesion
  (Bizopoulos et al.).

``radiopaedia`` (the MedSeg team's 9 Radiopaedia volumes, Bizopoulos et al.'s test set)::

    rp_im/1.nii.gz ... rp_im/9.nii.gz   rp_msk/N.nii.gz (1 ground glass, 2 consolidation)
    rp_lung_msk/N.nii.gz

``folder`` (your own data), any of::

    images/ID.nii.gz + labels/ID.nii.gz (or masks/) [+ lungs/ID.nii.gz]
    imagesTr/ID_0000.nii.gz + labelsTr/ID.nii.gz                        (nnU-Net raw layout)
    ID_image.nii.gz + ID_label.nii.gz [+ ID_lung.nii.gz]                 (flat)

  ``.nii`` works too. Label values > 0 are lesion, lung values > 0 lung. An image without a
  label becomes an unlabelled case (for prediction).
"""

import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.checks import intensity_flags, map_values, mask_grid_flags
from tfcovseg.io.converters import ConvertedCase, Source, SourceCase
from tfcovseg.io.nifti import Volume, read_volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ANY_POSITIVE = None  # a value mapping meaning "values > 0 -> 1"
SIDED_LUNGS = {"1": "right lung", "2": "left lung"}
ONE_LUNG = {"1": "lung"}
MA_LUNG_SIDES = {1: 2, 2: 1}  # Ma et al.: 1 left, 2 right; ours: 1 right, 2 left


@dataclasses.dataclass(frozen=True)
class NiftiCase:
    """One case's files and how its label values map to ours; ``load()`` reads and checks."""

    image: Path
    label: Path | None = None
    lung: Path | None = None
    lesion_values: dict | None = ANY_POSITIVE  # source value -> 1
    lung_values: dict | None = ANY_POSITIVE  # source value -> ours
    skip_windowed: bool = False

    def load(self) -> ConvertedCase:
        image = read_volume(self.image)
        flags = intensity_flags(image, self.image)
        if self.skip_windowed and "windowed" in flags:
            raise TfcovsegError("intensities lie in 0..255 (windowed, not HU): not used", self.image)
        case = ConvertedCase(image=image, flags=flags)
        if self.label:
            case.label = self._mask(self.label, image, self.lesion_values, case.flags)
        if self.lung:
            case.lung = self._mask(self.lung, image, self.lung_values, case.flags)
        return case

    @staticmethod
    def _mask(path, image, mapping, flags):
        mask = read_volume(path, dtype=np.float32)
        flags += mask_grid_flags(mask, image, path)
        array, value_flags = map_values(mask.array, mapping, path)
        flags += value_flags
        return array


def find_mosmed(src: Path) -> Source:
    studies = {_stem(p): p for p in _nifti_files(src / "studies", "CT-*/study_*")}
    cases = []
    for mask in _nifti_files(src / "masks", "study_*_mask"):
        study = _stem(mask).removesuffix("_mask")
        number = study.removeprefix("study_")
        if study not in studies:
            cases.append(SourceCase(f"mosmed_{number}", _missing(
                src / "studies" / f"CT-*/{study}.nii.gz", "no study for this mask")))
            continue
        cases.append(_case(f"mosmed_{number}", NiftiCase(studies[study], mask,
                                                         lesion_values={1: 1})))
    _require(cases, src, "masks/study_NNNN_mask.nii.gz next to studies/CT-*/study_NNNN.nii.gz")
    return Source(cases, notes="MosMedData: stored LAS (looks prone when displayed naively, "
                               "acquired supine); every 10th slice kept (8 mm spacing).")


def find_coronacases(src: Path) -> Source:
    images = {_ma_key(p): p for p in _nifti_files(src / "COVID-19-CT-Seg_20cases", "*")}
    masks = {_ma_key(p): p for p in _nifti_files(src / "Infection_Mask", "*")}
    lungs = {_ma_key(p): p for p in _nifti_files(src / "Lung_Mask", "*")}
    _require(images, src, "COVID-19-CT-Seg_20cases/*.nii.gz and Infection_Mask/*.nii.gz")
    cases = []
    for key in sorted(images):
        if key not in masks:
            cases.append(SourceCase(key, _missing(images[key], "no Infection_Mask for this image")))
            continue
        cases.append(_case(key, NiftiCase(images[key], masks[key], lungs.get(key),
                                          lesion_values={1: 1}, lung_values=MA_LUNG_SIDES,
                                          skip_windowed=True)))
    return Source(cases, lung_labels=SIDED_LUNGS if lungs else None,
                  notes="Ma et al. COVID-19-CT-Seg: radiopaedia volumes windowed to 0..255 are "
                        "skipped; lung masks swapped from 1 left / 2 right.")


def find_radiopaedia(src: Path) -> Source:
    images = _nifti_files(src / "rp_im", "*")
    _require(images, src, "rp_im/N.nii.gz, rp_msk/N.nii.gz, rp_lung_msk/N.nii.gz")
    cases = []
    for image in sorted(images, key=_natural):
        number = _stem(image)
        cases.append(_case(f"radiopaedia_{number}", NiftiCase(
            image, _sibling(src / "rp_msk", number), _sibling(src / "rp_lung_msk", number),
            lesion_values={1: 1, 2: 1})))
    return Source(cases, lung_labels=ONE_LUNG,
                  notes="MedSeg Radiopaedia volumes: mask 1 ground glass, 2 consolidation -> "
                        "lesion.")


def find_medseg(src: Path) -> Source:
    files = {key: _sibling(src, name) for key, name in (
        ("image", "tr_im"), ("label", "tr_mask"), ("lung", "tr_lungmasks_updated"))}
    if files["image"] is None or files["label"] is None:
        raise TfcovsegError("expected tr_im.nii.gz and tr_mask.nii.gz (and "
                            "tr_lungmasks_updated.nii.gz) here", src)
    stack = NiftiCase(files["image"], files["label"], files["lung"],
                      lesion_values={1: 1, 2: 1, 3: 1}).load()  # one file: a bad one is fatal
    if int(stack.image.original_ornt[2][0]) != 2:
        raise TfcovsegError("the stack's third axis is not axial: cannot cut axial slices",
                            files["image"])
    cases = [SourceCase(f"medseg_{k:03d}", functools.partial(_stack_slice, stack, k))
             for k in range(stack.image.original_shape[2])]
    return Source(cases, lung_labels=ONE_LUNG,
                  notes="MedSeg: one case per axial slice of the 100-slice stack; mask classes "
                        "1-3 (ground glass, consolidation, pleural effusion) -> lesion.")


def find_folder(src: Path) -> Source:
    cases = []
    for case_id, files in sorted(_folder_pairs(src).items()):
        if "image" not in files:
            cases.append(SourceCase(case_id, _missing(files["label"], "a mask without an image")))
            continue
        cases.append(_case(case_id, NiftiCase(files["image"], files.get("label"),
                                              files.get("lung"))))
    _require(cases, src, "images/ID.nii.gz + labels/ID.nii.gz, imagesTr/ID_0000.nii.gz + "
                         "labelsTr/ID.nii.gz, or ID_image.nii.gz + ID_label.nii.gz")
    return Source(cases, lung_labels=ONE_LUNG)


FINDERS = {
    "mosmed": find_mosmed,
    "coronacases": find_coronacases,
    "medseg": find_medseg,
    "radiopaedia": find_radiopaedia,
    "folder": find_folder,
}

# (folder of images, folder of labels, folder of lungs, suffix of image names)
_FOLDER_LAYOUTS = (
    ("images", ("labels", "masks"), "lungs", ""),
    ("imagesTr", ("labelsTr",), None, "_0000"),
)
_FLAT_ROLES = {"_image": "image", "_label": "label", "_lung": "lung"}


def _folder_pairs(src: Path) -> dict:
    """``{case id: {"image"|"label"|"lung": path}}`` from the accepted folder layouts."""
    pairs: dict = {}
    for image_dir, label_dirs, lung_dir, image_suffix in _FOLDER_LAYOUTS:
        for path in _nifti_files(src / image_dir, f"*{image_suffix}"):
            pairs.setdefault(_stem(path).removesuffix(image_suffix) if image_suffix else _stem(path),
                             {})["image"] = path
        for role, folders in (("label", label_dirs), ("lung", (lung_dir,) if lung_dir else ())):
            for folder in folders:
                for path in _nifti_files(src / folder, "*"):
                    pairs.setdefault(_stem(path), {})[role] = path
    for path in _nifti_files(src, "*_*"):
        stem = _stem(path)
        for suffix, role in _FLAT_ROLES.items():
            if stem.endswith(suffix):
                pairs.setdefault(stem.removesuffix(suffix), {})[role] = path
    return pairs


def _stack_slice(stack: ConvertedCase, k: int) -> ConvertedCase:
    """Slice ``k`` (file index along the stack's third axis) of a stacked case, as 1xHxW."""
    flip = stack.image.original_ornt[2][1]
    depth = stack.image.array.shape[0]
    d = k if flip > 0 else depth - 1 - k
    affine = stack.image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * d
    shape = (*stack.image.original_shape[:2], 1)
    image = Volume(stack.image.array[d:d + 1], affine, stack.image.original_ornt, shape)

    def cut(mask):
        return None if mask is None else mask[d:d + 1]

    return ConvertedCase(image=image, label=cut(stack.label), lung=cut(stack.lung),
                         flags=stack.flags, notes=f"slice {k} of the stack")


def _case(case_id: str, nifti: NiftiCase) -> SourceCase:
    return SourceCase(case_id, nifti.load)


def _missing(path: Path, problem: str):
    def load():
        raise TfcovsegError(problem, path)

    return load


def _require(found, src: Path, layout: str) -> None:
    if not found:
        raise TfcovsegError(f"no cases found; expected {layout}", src)


def _nifti_files(folder: Path, pattern: str) -> list:
    if not folder.is_dir():
        return []
    return sorted(p for suffix in NIFTI_SUFFIXES for p in folder.glob(pattern + suffix)
                  if p.is_file())


def _sibling(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", _stem(path))]


def _ma_key(path: Path) -> str:
    """``coronacases_001`` / ``radiopaedia_4_85506_1`` from any of Ma et al.'s file names."""
    stem = _stem(path).lower().replace("covid-19", "")
    numbers = re.findall(r"\d+", stem)
    source = "coronacases" if "coronacases" in stem else "radiopaedia" if "radiopaedia" in stem \
        else stem.split("_")[0]
    if source == "coronacases" and numbers:
        return f"coronacases_{int(numbers[-1]):03d}"
    return "_".join([source, *numbers])
