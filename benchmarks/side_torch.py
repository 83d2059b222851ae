"""The PyTorch side of ``compare.py``: the originals tfcovseg is measured against.

- 3D step: the paper's network in PyTorch (``reference_torch.DynamicUnet3D``, faimed3d's
  layout), Adam, cross-entropy; float32, bf16 autocast, bf16 autocast + channels_last_3d.
- 2D step and epoch: ``segmentation_models_pytorch.Unet("resnet18", in_channels=1, classes=1)``
  (what the grid's authors trained), the paper's soft Dice, Adam; the epoch feeds cached
  512x512 slices through torchvision's v2 transforms (flips, rotation and scale, as the grid's
  augmentation) and a ``DataLoader`` with one worker, then validates.
- pipeline: MONAI's ``Dataset`` / ``CacheDataset`` with the transforms closest to tfcovseg's
  (``monai_transforms``); "not installed" without MONAI.
- prediction: MONAI's ``sliding_window_inference`` (Gaussian, sigma 1/8, overlap 0.5) with the
  reference network; without MONAI, a plain loop over the same windows with the same Gaussian
  stands in (and says so).
"""

import sys

sys.modules.setdefault("triton", None)  # triton segfaults on import next to TensorFlow (conftest)

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import reference_torch  # noqa: E402
import torch  # noqa: E402
from compare import passes_per_chunk, summarise, timed_calls, window_starts  # noqa: E402

PAPER_DICE_EPS = 1e-5  # Bizopoulos et al., equation (1)
GAUSSIAN_SIGMA_SCALE = 1 / 8  # nnU-Net's and MONAI's default
AUGMENT_PROBABILITY = 0.15  # faimed3d's example probability (tfcovseg.settings.data.Augment3D)


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "float32")


def step3d(job: dict) -> dict:
    precision = job["precision"]
    batch, *size = job["shape"]
    model = reference_torch.DynamicUnet3D().train()
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((batch, 1, *size), dtype=np.float32)).repeat(1, 3, 1, 1, 1)
    label = torch.from_numpy((rng.random((batch, *size)) > 0.9).astype(np.int64))
    if precision.endswith("channels_last"):
        model = model.to(memory_format=torch.channels_last_3d)
        image = image.contiguous(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        with autocast(precision):
            loss = torch.nn.functional.cross_entropy(model(image).float(), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return summarise(timed_calls(step, job["steps"]))


def soft_dice_loss(mask, probability):
    """The paper's loss over the batch: 1 - 2 sum(yp) / (sum y^2 + sum p^2 + eps)."""
    probability = probability.float()
    return 1 - 2 * (mask * probability).sum() / (
        (mask * mask).sum() + (probability * probability).sum() + PAPER_DICE_EPS)


def smp_unet(precision: str):
    import segmentation_models_pytorch as smp

    model = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1)
    if precision.endswith("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    return model


def train_step_2d(model, optimizer, precision: str):
    channels_last = precision.endswith("channels_last")

    def step(image, mask):
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with autocast(precision):
            loss = soft_dice_loss(mask, torch.sigmoid(model(image).float()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


def step2d(job: dict) -> dict:
    batch, height, width = job["shape"]
    model = smp_unet(job["precision"]).train()
    step = train_step_2d(model, torch.optim.Adam(model.parameters(), 1e-3), job["precision"])
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.standard_normal((batch, 1, height, width), dtype=np.float32))
    mask = torch.from_numpy((rng.random((batch, 1, height, width)) > 0.9).astype(np.float32))
    return summarise(timed_calls(lambda: step(image, mask), job["steps"]))


class Slices(torch.utils.data.Dataset):
    """The axial slices of prepared cases, normalised (mean -500, std 500 HU) and resized to
    512x512 once (bilinear, align_corners; masks nearest), kept in memory; augmented per item."""

    def __init__(self, root: Path, cases: list, size: int, augment: bool):
        import nibabel as nib
        from torchvision.transforms import v2

        images, masks = [], []
        for case in cases:
            image = np.asanyarray(nib.load(root / case["image"]).dataobj).astype(np.float32)
            mask = np.asanyarray(nib.load(root / case["label"]).dataobj) > 0
            images.append(torch.from_numpy((image.transpose(2, 1, 0) + 500.0) / 500.0)[:, None])
            masks.append(torch.from_numpy(mask.transpose(2, 1, 0).astype(np.float32))[:, None])
        resize = dict(size=(size, size))
        self.images = torch.nn.functional.interpolate(torch.cat(images), mode="bilinear",
                                                      align_corners=True, **resize)
        self.masks = torch.nn.functional.interpolate(torch.cat(masks), mode="nearest", **resize)
        self.transform = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5),
                                     v2.RandomAffine(degrees=180, scale=(0.5, 1.5))]) if augment else None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        from torchvision import tv_tensors

        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def epoch2d(job: dict) -> dict:
    """Seconds per epoch (train + validation) of smp's Unet-resnet18; the first epoch untimed."""
    root = Path(job["data"])
    cases = sorted(json.loads((root / "dataset.json").read_text())["cases"], key=lambda c: c["id"])
    loader = dict(batch_size=job["batch"], num_workers=1, persistent_workers=True)
    train = torch.utils.data.DataLoader(Slices(root, cases[:2], 512, True), shuffle=True, **loader)
    validation = torch.utils.data.DataLoader(Slices(root, cases[2:], 512, False), **loader)
    model = smp_unet(job["precision"])
    step = train_step_2d(model, torch.optim.Adam(model.parameters(), 1e-3), job["precision"])

    def epoch():
        model.train()
        for image, mask in train:
            step(image, mask)
        model.eval()
        with torch.no_grad(), autocast(job["precision"]):
            for image, mask in validation:
                soft_dice_loss(mask, torch.sigmoid(model(image).float()))

    return summarise(timed_calls(epoch, job["epochs"] - 1),
                     train_slices=len(train.dataset), validation_slices=len(validation.dataset))


def pipeline(job: dict) -> dict:
    """Volumes/s of MONAI's Dataset (uncached) or CacheDataset with tfcovseg's transforms,
    timed over runs of epochs (``passes_per_chunk``) after the first."""
    try:
        from monai.data import CacheDataset, DataLoader, Dataset
    except ImportError:
        return {"unavailable": "MONAI not installed"}
    root = Path(job["data"])
    cases = json.loads((root / "dataset.json").read_text())["cases"]
    files = [{"image": str(root / c["image"]), "label": str(root / c["label"])} for c in cases]
    transform = monai_transforms(job["mode"], tuple(job["size"]))
    data = (CacheDataset(files, transform, cache_rate=1.0, progress=False) if job["cache"]
            else Dataset(files, transform))
    loader = DataLoader(data, batch_size=job["batch"], shuffle=True, num_workers=2,
                        persistent_workers=True)
    per_pass = sum(int(batch["image"].shape[0]) for batch in loader)  # first pass: caching
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < job["seconds"] or not rates:
        chunk_start, volumes = time.perf_counter(), 0
        for _ in range(passes_per_chunk(per_pass)):
            volumes += sum(int(batch["image"].shape[0]) for batch in loader)
        rates.append(volumes / (time.perf_counter() - chunk_start))
    return summarise(rates)


def monai_transforms(mode: str, size_dhw: tuple):
    """MONAI's closest transforms to tfcovseg's pipeline: load, resize (or pad and crop half
    of the patches on lesions, from indices found once per volume), min-max, then faimed3d's
    augmentations at probability 0.15.

    MONAI has no perspective warp (an affine shear stands in) and adds its Gaussian noise
    (tfcovseg multiplies); MONAI's axes are NIfTI's (x, y, z) = (W, H, D).
    """
    from monai import transforms as mt

    keys = ["image", "label"]
    size_xyz = tuple(reversed(size_dhw))
    p = AUGMENT_PROBABILITY
    load = [mt.LoadImaged(keys, image_only=True), mt.EnsureChannelFirstd(keys)]
    if mode == "resize":
        fit = [mt.Resized("image", size_xyz, mode="trilinear", align_corners=True),
               mt.Resized("label", size_xyz, mode="nearest"), mt.ScaleIntensityd("image")]
        sample = []
    else:
        # the lesion / background voxel indices are found once (cached with the volume), as
        # MONAI's documentation advises for RandCropByPosNegLabeld, then dropped after the crop
        indices = {"fg_indices_key": "label_fg_indices", "bg_indices_key": "label_bg_indices"}
        fit = [mt.ScaleIntensityd("image"), mt.SpatialPadd(keys, size_xyz),
               mt.FgBgToIndicesd("label")]
        sample = [mt.RandCropByPosNegLabeld(keys, "label", size_xyz, pos=1, neg=1, num_samples=1,
                                            **indices),
                  mt.DeleteItemsd(list(indices.values()))]
    augment = [
        *(mt.RandFlipd(keys, prob=p, spatial_axis=axis) for axis in range(3)),
        mt.RandRotated(keys, range_x=np.deg2rad(2), range_y=np.deg2rad(2), range_z=np.deg2rad(30),
                       prob=p, mode=("bilinear", "nearest")),
        mt.RandAffined(keys, prob=p, shear_range=(0.25,) * 6, mode=("bilinear", "nearest")),
        mt.RandShiftIntensityd("image", offsets=0.3, prob=p),
        mt.RandScaleIntensityd("image", factors=(-0.3, 1.0), prob=p),
        mt.RandGaussianNoised("image", prob=p, std=0.2),
    ]
    return mt.Compose(load + fit + sample + augment)


def predict(job: dict) -> dict:
    """Seconds to predict a whole CT with the reference network, window by window (float32)."""
    window, overlap = tuple(job["window"]), job["overlap"]
    volume = np.load(job["ct"])
    scaled = (volume - volume.min()) / max(float(volume.max() - volume.min()), 1e-8)
    x = torch.from_numpy(scaled.astype(np.float32))[None, None]
    model = reference_torch.DynamicUnet3D().eval()

    def network(windows):
        return torch.softmax(model(windows.repeat(1, 3, 1, 1, 1)), dim=1)[:, 1:]

    try:
        from monai.inferers import sliding_window_inference

        peer = "MONAI sliding_window_inference"

        def blend(x):
            return sliding_window_inference(x, window, 1, network, overlap=overlap,
                                            mode="gaussian", sigma_scale=GAUSSIAN_SIGMA_SCALE)
    except ImportError:
        peer = "PyTorch window loop (MONAI not installed)"

        def blend(x):
            return window_loop(x, window, overlap, network)

    with torch.no_grad():
        network(x[(..., *(slice(0, w) for w in window))])  # warm-up: one window
        seconds = timed_calls(lambda: blend(x), 1, warmups=0)
    return summarise(seconds, peer=peer)


def window_loop(x, window, overlap, network):
    """Gaussian-weighted mean of ``network`` over windows at tfcovseg's window starts."""
    starts = [window_starts(n, w, overlap) for n, w in zip(x.shape[2:], window)]
    importance = torch.ones(())
    for w in window:
        axis = torch.exp(-0.5 * ((torch.arange(w) - (w - 1) / 2) / (w * GAUSSIAN_SIGMA_SCALE)) ** 2)
        importance = importance[..., None] * axis
    blended, weight = torch.zeros(x.shape[2:]), torch.zeros(x.shape[2:])
    for d in starts[0]:
        for h in starts[1]:
            for w in starts[2]:
                region = (slice(d, d + window[0]), slice(h, h + window[1]), slice(w, w + window[2]))
                blended[region] += network(x[(..., *region)])[0, 0] * importance
                weight[region] += importance
    return blended / weight
