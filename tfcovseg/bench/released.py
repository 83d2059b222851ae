"""The authors' 600 released models as bench cells: ``tfcovseg convert-grid FILE.pt|FOLDER``.

Bizopoulos et al. published every trained model as a GitHub release asset of their repository
(the URL their ``hubconf.py`` loads)::

    https://github.com/pbizopoulos/comprehensive-comparison-of-deep-learning-models-for-lung-and-covid-19-lesion-segmentation-in-ct/releases/download/v1/<name>.pt

each a plain segmentation_models_pytorch 0.1.0 state_dict named
``{experiment}-{Arch}-{encoder}-{weights}.pt`` (GRID2D.md section 1): experiment
``lung-segmentation``, ``lesion-segmentation-a`` or ``lesion-segmentation-b`` (the grid's lungs,
lesions, lesions_in_lungs); Arch ``Unet``, ``Linknet``, ``FPN`` or ``PSPNet``; smp's encoder
name; weights ``None`` (random init) or ``imagenet``.

A converted file becomes a cell of a bench folder in ``store``'s layout: the Keras weights of
``paper_network`` and a result with ``"status": "released"``, the paper family's config, the
training image size and the source file's name and SHA-256; ``load_cell_model`` (and so
fine-tuning) reads it as it reads a trained cell. Every file name is parsed before the first
conversion, and a checkpoint is checked key by key before its cell is written.
"""

import dataclasses
import re
from pathlib import Path

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.models2d import trainable_parameters
from tfcovseg.config import to_dict
from tfcovseg.errors import ConfigError
from tfcovseg.files import save_weights
from tfcovseg.models.convert import sha256
from tfcovseg.models.grid2d.convert import load_smp_checkpoint
from tfcovseg.models.grid2d.encoders import ENCODERS
from tfcovseg.models.grid2d.networks import paper_network
from tfcovseg.settings.bench import ARCHS, INITS, BenchConfig, grid_encoder_name, smp_encoder_name
from tfcovseg.settings.data import EXPERIMENTS

SUFFIX = ".pt"
DEFAULT_OUT = "bench_out/released"  # apart from trained grids, which would retrain these cells
# the parts of the authors' file names -> the grid's names
EXPERIMENT_NAMES = {"lung-segmentation": "lungs", "lesion-segmentation-a": "lesions",
                    "lesion-segmentation-b": "lesions_in_lungs"}
ARCH_NAMES = {"Unet": "unet", "Linknet": "linknet", "FPN": "fpn", "PSPNet": "pspnet"}
INIT_NAMES = {"None": "random", "imagenet": "imagenet"}
FILE_NAME = re.compile("^({})-({})-(.+)-({})$".format(
    *("|".join(map(re.escape, names)) for names in (EXPERIMENT_NAMES, ARCH_NAMES, INIT_NAMES))))
NAME_RULE = ("{lung-segmentation|lesion-segmentation-a|lesion-segmentation-b}-"
             "{Unet|Linknet|FPN|PSPNet}-{encoder}-{None|imagenet}.pt")


def convert_grid(source, out=None, experiment=None, arch=None, encoder=None,
                 init=None) -> list[Path]:
    """Convert a released ``.pt`` file, or every one in a folder, into cells of bench folder
    ``out`` (None: ``DEFAULT_OUT``); returns the result files written.

    ``experiment``, ``arch``, ``init`` (the grid's names: ``lungs``, ``unet``, ``random``) and
    ``encoder`` (smp's, as in the file names) replace what the file names say.
    """
    files = _released_files(Path(source))
    cells = [released_cell(f, experiment=experiment, arch=arch, encoder=encoder, init=init)
             for f in files]
    ids = [c.id for c in cells]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"several files would become cell(s) {', '.join(repeated)}", source)
    out = DEFAULT_OUT if out is None else out
    return [convert_released(f, c, out) for f, c in zip(files, cells)]


def released_cell(path, experiment=None, arch=None, encoder=None, init=None) -> Cell:
    """The grid cell a released file holds, by its name; given parts replace the name's."""
    given = {"experiment": experiment, "arch": arch, "encoder": encoder, "init": init}
    match = FILE_NAME.match(Path(path).name.removesuffix(SUFFIX))
    if match is None and None in given.values():
        raise ConfigError(f"not a released model's name ({NAME_RULE}); name the cell with "
                          "--experiment, --arch, --encoder and --init", path)
    if match:
        parsed = dict(zip(given, (EXPERIMENT_NAMES[match[1]], ARCH_NAMES[match[2]], match[3],
                                  INIT_NAMES[match[4]])))
        given = {key: parsed[key] if value is None else value for key, value in given.items()}
    _check_parts(given, path)
    return Cell(given["experiment"], given["arch"], grid_encoder_name(given["encoder"]),
                given["init"])


def convert_released(path, cell: Cell, out=DEFAULT_OUT) -> Path:
    """One released checkpoint -> weights and result of ``cell`` in bench folder ``out``."""
    config = BenchConfig(out=str(out))
    size = config.pipeline.size[0]  # the authors trained on 512 x 512 slices
    network = paper_network(cell.arch, smp_encoder_name(cell.encoder), (size, size, 1),
                            encoder_settings=config.architectures.encoders)
    load_smp_checkpoint(network, path)  # WeightsError before anything is written
    save_weights(network, store.weights_path(out, cell.id))
    result = {"id": cell.id, "cell": dataclasses.asdict(cell), "status": store.RELEASED,
              "image_size": size, "config": to_dict(config),
              "source": {"file": Path(path).name, "sha256": sha256(path)},
              "parameters": trainable_parameters(network)}
    return store.write_result(out, result)


def _released_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(source.glob(f"*{SUFFIX}"))
        if not files:
            raise ConfigError(f"no {SUFFIX} files in the folder", source)
        return files
    if not source.is_file():
        raise ConfigError("no such file or folder", source)
    return [source]


def _check_parts(parts: dict, path) -> None:
    allowed = {"experiment": EXPERIMENTS, "arch": ARCHS, "encoder": tuple(ENCODERS),
               "init": INITS}
    problems = [f"{key} {parts[key]!r} (allowed: {', '.join(allowed[key])})"
                for key in allowed if parts[key] not in allowed[key]]
    if problems:
        raise ConfigError(f"unknown {'; '.join(problems)}", path)
