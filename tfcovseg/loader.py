"""One loader for every model tfcovseg writes: ``tfcovseg.load_model(path)``.

::

    import tfcovseg
    loaded = tfcovseg.load_model("runs/demo")      # a run folder, a converted .h5, a grid cell
    loaded.model                                    # a plain tf.keras.Model, ready to fine-tune
    loaded.spec                                     # what to feed it (size, intensity, ...)

The kinds (``KINDS``): a training run folder (``run.json``, ``tfcovseg.rundir``); U-Net weights
converted from faimed3d and R3D-18 encoder weights converted from torchvision (an ``.h5`` with
the sidecar ``tfcovseg convert-weights`` writes, ``tfcovseg.models.convert``); a trained or
converted cell of the 2D grid (``BENCH_DIR/cells/<id>``, ``tfcovseg.bench.store``). The 3D
kinds come from ``tfcovseg.models.runs``, which ``tfcovseg train --init`` uses below this layer.
"""

import dataclasses
from pathlib import Path
from typing import Literal, get_args

import tensorflow as tf

from tfcovseg.bench import store
from tfcovseg.config import from_dict
from tfcovseg.errors import WeightsError
from tfcovseg.models.runs import build_model_file, find_model_file
from tfcovseg.rundir import InputSpec, SliceSpec
from tfcovseg.settings.data import Pipeline2D

Kind = Literal["run", "faimed3d", "torchvision_encoder", "grid_cell"]
KINDS = get_args(Kind)
ACCEPTED = (  # what load_model takes, in the words of its error
    "a training run folder (with run.json)",
    "weights converted by tfcovseg convert-weights --faimed3d or --torchvision (an .h5 with "
    "its .json sidecar)",
    f"a 2D grid cell (BENCH_DIR/{store.CELLS_DIR}/<cell id>, its .json or .weights.h5)",
)
CELL_FILE_ENDINGS = (".json", ".weights.h5", ".npz")  # tfcovseg.bench.store's files of a cell


class NotAModel(WeightsError):
    """The path holds none of the kinds ``load_model`` loads (``ACCEPTED``)."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model from disk: the network, what kind of file it came from and how to feed it.

    ``spec``: for the 3D kinds a ``tfcovseg.rundir.InputSpec`` (mode, size, intensity, and the
    voxel spacing it was trained at where the run recorded one); for a grid cell a ``SliceSpec``.
    """

    model: tf.keras.Model
    kind: Kind
    spec: InputSpec | SliceSpec
    source: Path


def load_model(path) -> LoadedModel:
    """The model at ``path`` with its weights, whichever of ``KINDS`` it is.

    Raises ``NotAModel`` (a ``WeightsError``) naming the path and the kinds accepted when it
    is none of them.
    """
    path = Path(path)
    cell = grid_cell(path)
    if cell is not None:
        return _load_cell(*cell, path)
    found = find_model_file(path)
    if found is None:
        raise NotAModel(f"not a model tfcovseg can load; expected {'; or '.join(ACCEPTED)}", path)
    return LoadedModel(build_model_file(found), found.kind, found.input, path)


def grid_cell(path: Path) -> tuple[Path, str] | None:
    """``(bench folder, cell id)`` when ``path`` names a cell with a result file, else None."""
    if path.parent.name != store.CELLS_DIR:
        return None
    name = path.name
    for ending in CELL_FILE_ENDINGS:
        name = name.removesuffix(ending)
    bench_dir = path.parent.parent
    return (bench_dir, name) if store.result_path(bench_dir, name).is_file() else None


def _load_cell(bench_dir: Path, cell_id: str, path: Path) -> LoadedModel:
    from tfcovseg.bench import load_cell_model

    model = load_cell_model(bench_dir, cell_id)
    result = store.read_result(bench_dir, cell_id)
    pipeline = from_dict(Pipeline2D, result["config"].get("pipeline", {}), "pipeline")
    size = int(result["image_size"])
    spec = SliceSpec(size=(size, size), intensity=pipeline.intensity,
                     experiment=result["cell"]["experiment"])
    return LoadedModel(model, "grid_cell", spec, path)
