"""A prepared dataset's cases as a ``tf.data`` stream of decoded volumes.

Every element is a dict ``{"id": string, "image": float32 [D, H, W] (HU), "label": uint8
[D, H, W] in {0, 1}, "lung": uint8 [D, H, W] in {0, 1}}`` holding only the keys asked for.
Decoding goes through nibabel (``read_volume``, RAS+) inside ``tf.numpy_function``; zlib and
NumPy release the GIL, so a parallel ``map`` decodes several cases at once.

Cases are checked in Python before the stream is built (``tfcovseg.io.checks.check_case``:
3D files, masks on the image's grid, mask values the manifest declares), so a bad file is
reported as one ``TfcovsegError`` naming it. Voxel data that turns out corrupt only while an
epoch runs reaches the caller as a TensorFlow ``OpError``; iterate inside ``read_errors()`` to
get the ``TfcovsegError`` back.
"""

import contextlib
import re

import numpy as np
import tensorflow as tf

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.checks import check_case
from tfcovseg.io.manifest import MANIFEST, Case, Dataset
from tfcovseg.io.nifti import read_volume

_WRAPPED_ERROR = re.compile(r"TfcovsegError: ([^\n]+)")


def check_cases(dataset: Dataset, cases: list, keys=("image", "label")) -> list:
    """The ``(D, H, W)`` shapes of ``cases``; every file named by ``keys`` must exist and pass
    ``check_case`` (headers: 3D, masks on the image's grid; mask data: declared values only).

    Raises ``TfcovsegError`` naming the manifest or the file that fails.
    """
    if not cases:
        raise TfcovsegError("no cases to read", dataset.root / MANIFEST)
    shapes = []
    for case in cases:
        missing = [key for key in keys if not getattr(case, key)]
        if missing:
            raise TfcovsegError(
                f"case {case.id!r} has no {' or '.join(missing)} file, which this pipeline needs",
                dataset.root / MANIFEST,
            )
        shapes.append(check_case(dataset, case, keys))
    return shapes


def read_case(dataset: Dataset, case: Case, keys=("image", "label")) -> dict:
    """A case's volumes as NumPy arrays: image float32 HU, masks uint8 (any non-zero -> 1)."""
    arrays = {}
    for key in keys:
        volume = read_volume(dataset.path(getattr(case, key)))
        arrays[key] = volume.array if key == "image" else (volume.array > 0).astype(np.uint8)
    return arrays


def case_dataset(
    dataset: Dataset, cases: list, keys=("image", "label"), num_parallel=tf.data.AUTOTUNE
) -> tf.data.Dataset:
    """A stream of the cases' decoded volumes, in the order of ``cases`` (see module doc)."""
    check_cases(dataset, cases, keys)
    by_id = {case.id: case for case in cases}
    dtypes = [tf.float32 if key == "image" else tf.uint8 for key in keys]

    def decode(case_id):
        arrays = read_case(dataset, by_id[case_id.decode()], keys)
        return [arrays[key] for key in keys]

    def load(case_id):
        volumes = tf.numpy_function(decode, [case_id], dtypes, stateful=False)
        element = {"id": case_id}
        for key, volume in zip(keys, volumes):
            volume.set_shape([None, None, None])
            element[key] = volume
        return element

    ids = tf.data.Dataset.from_tensor_slices([case.id for case in cases])
    return ids.map(load, num_parallel_calls=num_parallel, deterministic=True)


@contextlib.contextmanager
def read_errors():
    """Turn a ``TfcovsegError`` raised while ``tf.data`` decodes a case back into itself.

    TensorFlow wraps exceptions of ``tf.numpy_function`` into an ``OpError`` with a long
    traceback; the message names the file and the problem, which is all a user needs.
    """
    try:
        yield
    except tf.errors.OpError as err:
        wrapped = _WRAPPED_ERROR.search(err.message or "")
        if wrapped is None:
            raise
        raise TfcovsegError(wrapped.group(1).strip()) from None
