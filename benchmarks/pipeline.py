"""Throughput of the tf.data pipelines on CT phantoms: batches/s, printed as a Markdown table.

Settings: the paper's two 3D stages in resize mode (18x112x112 batch 6 from 64x128x128
phantoms; 20x256x256 batch 1 from 128x256x256 phantoms), patch mode (32x128x128 patches,
batch 2, half centred on lesions, from the larger phantoms) and the 2D slice pipeline
(512x512, batch 2). All with training augmentation at the default probabilities.
"First pass" includes decoding; "later passes" read the in-memory cache when ``cache`` is on.

    python benchmarks/pipeline.py [--cases 8] [--passes 3] [--quick]
"""

import argparse
import tempfile
import time
from pathlib import Path

import tfcovseg  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tfcovseg.data.pipeline2d import slice_dataset
from tfcovseg.data.pipeline3d import volume_dataset
from tfcovseg.io.phantoms import synthesize_dataset
from tfcovseg.settings.data import Pipeline2D, Pipeline3D
from tfcovseg.settings.phantoms import Phantoms

SMALL_PHANTOM = (64, 128, 128)
LARGE_PHANTOM = (128, 256, 256)
QUICK_LARGE_PHANTOM = (64, 192, 192)


def settings():
    """(name, phantom size, builder(dataset, cache) -> tf.data.Dataset)."""

    def stage(size, batch):
        return lambda ds, cache: volume_dataset(
            ds, ds.cases, Pipeline3D(size=size, cache=cache), batch_size=batch, training=True
        )

    def patches(ds, cache):
        cfg = Pipeline3D(mode="patch", patch_size=(32, 128, 128), lesion_fraction=0.5, cache=cache)
        return volume_dataset(ds, ds.cases, cfg, batch_size=2, training=True)

    def slices(ds, cache):
        return slice_dataset(
            ds, ds.cases, Pipeline2D(cache=cache), experiment="lesions", batch_size=2, training=True
        )

    return [
        ("3D stage 1: resize 18x112x112, batch 6", "small", stage((18, 112, 112), 6)),
        ("3D stage 2: resize 20x256x256, batch 1", "large", stage((20, 256, 256), 1)),
        ("3D patch 32x128x128, batch 2", "large", patches),
        ("2D slices 512x512, batch 2", "small", slices),
    ]


def passes_per_second(dataset, passes: int):
    """Batches/s of the first pass and of the later passes."""
    rates = []
    for _ in range(passes):
        start, batches = time.perf_counter(), 0
        for _batch in dataset:
            batches += 1
        rates.append(batches / (time.perf_counter() - start))
    later = sum(rates[1:]) / max(len(rates) - 1, 1)
    return rates[0], later, batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller large phantoms (64x192x192)")
    args = parser.parse_args()
    large = QUICK_LARGE_PHANTOM if args.quick else LARGE_PHANTOM
    with tempfile.TemporaryDirectory() as tmp:
        data = {
            "small": synthesize_dataset(Path(tmp) / "small", Phantoms(cases=args.cases, shape=SMALL_PHANTOM)),
            "large": synthesize_dataset(Path(tmp) / "large", Phantoms(cases=args.cases, shape=large)),
        }
        shapes = {"small": SMALL_PHANTOM, "large": large}
        print(
            "| setting | phantoms | cache | batches/pass | first pass (batches/s) "
            "| later passes (batches/s) |"
        )
        print("|---|---|---|---|---|---|")
        for name, which, build in settings():
            for cache in (False, True):
                first, later, batches = passes_per_second(build(data[which], cache), args.passes)
                phantom = f"{args.cases} x {'x'.join(map(str, shapes[which]))}"
                print(
                    f"| {name} | {phantom} | {cache} | {batches} | {first:.2f} | {later:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
