"""Test helpers: tiny unet3d stand-ins ([B,D,H,W,C] -> [B,D,H,W,2] logits), CTs, a TF client."""

import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np

import tfcovseg  # noqa: F401  (must precede TensorFlow: selects tf_keras)

import tensorflow as tf  # isort: skip

from tfcovseg.io.nifti import save_image

SHARPNESS = 20.0  # logits of the pointwise stand-in: SHARPNESS * (scaled intensity - 0.5)


def tiny_unet(channels=3, pointwise=False, seed=0):
    """``pointwise``: lesion probability = sigmoid(SHARPNESS * (x - 0.5)) voxel by voxel."""
    inputs = tf.keras.Input((None, None, None, channels))
    if pointwise:
        logits = tf.keras.layers.Conv3D(2, 1, name="logits")(inputs)
        model = tf.keras.Model(inputs, logits)
        kernel = np.zeros((1, 1, 1, channels, 2), np.float32)
        kernel[..., 1] = SHARPNESS / channels
        model.get_layer("logits").set_weights([kernel, np.array([0.0, -SHARPNESS / 2], np.float32)])
        return model
    tf.keras.utils.set_random_seed(seed)
    x = tf.keras.layers.Conv3D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    logits = tf.keras.layers.Conv3D(2, 1, name="logits")(x)
    return tf.keras.Model(inputs, logits)


def pointwise_probability(scaled):
    return 1 / (1 + np.exp(-SHARPNESS * (scaled - 0.5)))


def sphere_ct(shape=(12, 40, 36), radius=0.3, centre=(0.5, 0.5, 0.5)):
    """A [D, H, W] HU volume: -1000 HU, and 100 HU inside a sphere (radius and centre as fractions
    of each axis); returns the volume and the sphere mask."""
    grid = np.meshgrid(*(np.linspace(0, 1, s) for s in shape), indexing="ij")
    inside = sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius**2
    return np.where(inside, 100.0, -1000.0).astype(np.float32), inside


# Plain TensorFlow, as TF Serving sees it: tfcovseg cannot be imported, Keras is not selected.
SERVING_CLIENT = textwrap.dedent("""
    import importlib.abc, sys

    class NoTfcovseg(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tfcovseg" or name.startswith("tfcovseg."):
                raise ImportError("tfcovseg is not available to a serving client")

    sys.meta_path.insert(0, NoTfcovseg())
    import numpy as np
    import tensorflow as tf

    export_dir, volume, spacing, result = sys.argv[1:]
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = signature(ct=tf.constant(np.load(volume)), spacing_mm=tf.constant(np.load(spacing)))
    np.save(result, outputs["lesion_probability"].numpy())
""")


def serve_in_plain_tensorflow(version_dir, batch, spacing_mm, scratch):
    """Run an export's serving_default on ``batch`` (voxel size ``spacing_mm``, D H W) in a
    process that cannot import tfcovseg."""
    np.save(scratch / "ct.npy", batch)
    np.save(scratch / "spacing.npy", np.asarray(spacing_mm, np.float32))
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, "-c", SERVING_CLIENT, str(version_dir), str(scratch / "ct.npy"),
         str(scratch / "spacing.npy"), str(scratch / "out.npy")],
        check=True, cwd=scratch, env=env, timeout=600,
    )
    return np.load(scratch / "out.npy")


def write_predictions(dataset, folder, change=lambda array: array):
    """Copy each label as a prediction, changed by ``change`` (on the file's [x, y, z] array)."""
    folder.mkdir(exist_ok=True)
    for case in dataset.labelled:
        label = nib.load(str(dataset.path(case.label)))
        array = change(np.asanyarray(label.dataobj)).astype(np.uint8)
        save_image(nib.Nifti1Image(array, label.affine), folder / f"{case.id}.nii.gz")
    return folder
