"""The ``tfcovseg`` command: thin click commands, each parsing options and calling one function.

No TensorFlow import at module level: ``tfcovseg --help`` stays instant.
"""

import sys
import typing

import click

from tfcovseg import __version__, import_tensorflow_quietly, keep_tensorflow_logs
from tfcovseg.config import field_range, field_type, from_dict
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.bench import ARCHS, INITS
from tfcovseg.settings.data import EXPERIMENTS, SOURCES, PipelineKind
from tfcovseg.settings.inference import MIRROR_AXES, EvaluateConfig
from tfcovseg.settings.phantoms import Phantoms
from tfcovseg.settings.train import SPLITS, STRATEGIES

PHANTOMS = Phantoms()  # synth's defaults


def bounds(settings_class, field: str) -> click.ParamType:
    """The click type of a settings field: its ``bounded`` range (``tfcovseg.config``) as an
    ``IntRange``/``FloatRange``, so the CLI refuses what the config loader refuses."""
    allowed = field_range(settings_class, field)
    number = click.IntRange if field_type(settings_class, field) is int else click.FloatRange
    return number(min=allowed.low, max=allowed.high, min_open=allowed.low_open,
                  max_open=allowed.high_open)


class _TensorflowCommand(click.Command):
    """A command that runs TensorFlow: loaded quietly once the options are parsed (so that
    ``--help`` stays instant)."""

    def invoke(self, ctx):
        import_tensorflow_quietly()
        return super().invoke(ctx)


class _Group(click.Group):
    """Turns our errors into one red line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TfcovsegError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfcovseg")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's C++ log lines (hidden unless TF_CPP_MIN_LOG_LEVEL is set).")
def main(verbose):
    """Segment COVID-19 lesions and lungs in chest CT with Keras/TensorFlow."""
    if verbose:
        keep_tensorflow_logs()  # before any command imports TensorFlow


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--cases", default=PHANTOMS.cases, show_default=True,
              type=bounds(Phantoms, "cases"), help="Number of phantoms.")
@click.option("--seed", default=PHANTOMS.seed, show_default=True, type=bounds(Phantoms, "seed"),
              help="Random seed (same seed, same data).")
@click.option("--shape", nargs=3, default=PHANTOMS.shape, show_default=True,
              type=bounds(Phantoms, "shape"), help="Volume size D H W (slices, rows, columns).")
@click.option("--spacing", nargs=3, default=PHANTOMS.spacing, show_default=True,
              type=bounds(Phantoms, "spacing"), help="Voxel size in mm along D H W.")
@click.option("--lesion-count", nargs=2, default=PHANTOMS.lesion_count, show_default=True,
              type=bounds(Phantoms, "lesion_count"),
              help="Lesions per case: MIN MAX (every fourth case has none).")
@click.option("--lesion-radius", nargs=2, default=PHANTOMS.lesion_radius, show_default=True,
              type=bounds(Phantoms, "lesion_radius"),
              help="Lesion radii MIN MAX in half fields of view.")
def synth(out, **options):
    """Write synthetic chest CT phantoms with lesion and lung masks as a prepared dataset.

    Images in HU (int16), lesion masks 0/1, lung masks 1 = right / 2 = left lung; every fourth
    case has no lesions. The defaults draw mild disease (about 2.5 % of the lung).
    """
    from tfcovseg.io.phantoms import synthesize_dataset

    dataset = synthesize_dataset(out, from_dict(Phantoms, options, "phantoms"))
    click.echo(f"wrote {len(dataset.cases)} phantoms to {dataset.root}")


@main.command()
@click.argument("source", type=click.Choice(SOURCES))
@click.option("--src", required=True, type=click.Path(exists=True), help="The source's folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Prepared dataset folder.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False),
              help="ricord: the MD.ai JSON export (default: the *.json in --src).")
@click.option("--label", "labels", multiple=True,
              help="ricord: an MD.ai label name counted as infiltrate (repeatable).")
@click.option("--window", nargs=2, type=float, metavar="LOW HIGH",
              help="slices: the HU window the 8-bit images were cut from (e.g. -1250 250).")
@click.option("--masks", help="slices: the mask folder next to images/ (default: lesions).")
def prepare(source, src, out, annotations, labels, window, masks):
    """Convert a public dataset (or any NIfTI folder) into a prepared dataset.

    Bad cases are reported and skipped; the others are converted. Layouts under --src:

    \b
    ricord       *.json (MD.ai export) + <PatientID>/<study>/<series>/*.dcm
    mosmed       studies/CT-*/study_NNNN.nii.gz + masks/study_NNNN_mask.nii.gz
    coronacases  COVID-19-CT-Seg_20cases/ + Infection_Mask/ [+ Lung_Mask/]
    medseg       tr_im.nii.gz + tr_mask.nii.gz [+ tr_lungmasks_updated.nii.gz]
    radiopaedia  rp_im/N.nii.gz + rp_msk/N.nii.gz [+ rp_lung_msk/N.nii.gz]
    folder       images/ID + labels/ID [+ lungs/ID], imagesTr/ID_0000 + labelsTr/ID,
                 or ID_image + ID_label [+ ID_lung] (.nii or .nii.gz)
    slices       images/ID.png|jpg + lesions/ID.png (8-bit windowed 2D slices; --window)
    """
    from tfcovseg.io.converters import prepare as prepare_source

    prepare_source(source, src, out, annotations=annotations, labels=labels or None,
                   window=window, masks=masks)


@main.command("convert-weights", cls=_TensorflowCommand)
@click.option("--torchvision", "torchvision_file", type=click.Path(exists=True, dir_okay=False),
              help="A torchvision r3d_18 state_dict (.pth or .safetensors).")
@click.option("--faimed3d", "faimed3d_file", type=click.Path(exists=True, dir_okay=False),
              help="A faimed3d DynamicUnet3D state_dict (.pth or .safetensors).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Keras weights (.h5).")
def convert_weights(torchvision_file, faimed3d_file, out):
    """Convert PyTorch weights (torchvision R3D-18 or a faimed3d U-Net) to Keras."""
    from tfcovseg.models.convert import convert_weights as convert

    convert(torchvision=torchvision_file, faimed3d=faimed3d_file, out=out)


@main.command("convert-imagenet", cls=_TensorflowCommand)
@click.argument("name")
@click.argument("state_dict", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="Keras weights (.h5; default: the cache file segmentation_models loads).")
def convert_imagenet(name, state_dict, out):
    """Convert ImageNet weights of an extra 2D encoder (vgg11, dpn68, ...) for the bench."""
    from tfcovseg.models.grid2d.encoders.convert import convert_or_fetch

    click.echo(f"wrote {convert_or_fetch(name, state_dict, out)}")


@main.command("convert-grid", cls=_TensorflowCommand)
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False),
              help="Bench folder the cells are written into (default: bench_out/released).")
@click.option("--experiment", type=click.Choice(EXPERIMENTS), help="Instead of the file name's.")
@click.option("--arch", type=click.Choice(ARCHS), help="Instead of the file name's.")
@click.option("--encoder", help="smp's encoder name, instead of the file name's.")
@click.option("--init", type=click.Choice(INITS), help="Instead of the file name's.")
def convert_grid(source, out, experiment, arch, encoder, init):
    """Convert the authors' released 2D models (a .pt file or a folder of them) into bench cells."""
    from tfcovseg.bench.released import convert_grid as convert

    results = convert(source, out, experiment=experiment, arch=arch, encoder=encoder, init=init)
    click.echo(f"wrote {len(results)} cell(s): {', '.join(p.stem for p in results)}")


@main.command(cls=_TensorflowCommand)
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="preview.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--pipeline", type=click.Choice(typing.get_args(PipelineKind)), default="3d", show_default=True,
              help="3d: the U-Net's stage-1 volumes; 2d: the bench's slices.")
@click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1),
              help="Number of augmented samples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--experiment", type=click.Choice(EXPERIMENTS),
              default="lesions", show_default=True, help="2d: which target to overlay.")
def preview(dataset, out, pipeline, samples, seed, experiment):
    """Draw augmented training samples of a prepared dataset with their label overlay."""
    from tfcovseg.data.preview import preview_dataset

    click.echo(f"wrote {preview_dataset(dataset, out, pipeline, samples, seed, experiment)}")


@main.command(context_settings={"ignore_unknown_options": False}, cls=_TensorflowCommand)
@click.option("--config", default="demo", show_default=True, help="YAML file or config name.")
@click.option("--data", type=click.Path(), help="Prepared dataset (overrides the config).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False),
              help="Continue a killed run from its last completed epoch.")
@click.option("--strategy", type=click.Choice(STRATEGIES),
              help="tf.distribute strategy (overrides the config).")
@click.option("--init", type=click.Path(),
              help="Fine-tune: start from this model (a run folder, or a U-Net converted with "
                   "convert-weights --faimed3d); its settings fill the config's model section.")
@click.argument("overrides", nargs=-1)
def train(config, data, out, resume, strategy, init, overrides):
    """Train the 3D U-Net (default: the demo on phantoms). OVERRIDES: key.sub=value; numbers
    index lists (stages.0.phases.1.epochs=50).

    \b
    Examples:
      tfcovseg train                                   # demo: phantoms, minutes on a CPU
      tfcovseg train --config ricord_r3d18 --data data/ricord
      tfcovseg train --config ricord_r3d18 precision=float32 data.split_seed=1
      tfcovseg train --resume runs/demo-20260101-120000
      tfcovseg train --config finetune --init runs/demo --data data/mine
    """
    from tfcovseg.train.run import train as run_training

    run_training(config=config, data=data, out=out, resume=resume, strategy=strategy,
                 overrides=list(overrides), init=init)


OVERLAP = bounds(EvaluateConfig, "overlap")
WINDOWS_PER_BATCH = bounds(EvaluateConfig, "batch_size")
input_window_option = click.option(
    "--input-window", nargs=2, type=float, metavar="LOW HIGH",
    help="The HU window a CT in 0..255 was cut from (e.g. -1250 250 for Ma et al.'s radiopaedia "
         "volumes): mapped back to HU before prediction.")

overlap_option = click.option(
    "--overlap", type=OVERLAP,
    help="Sliding-window overlap (patch-mode runs; default 0.5; an export's is fixed).")
batch_size_option = click.option(
    "--batch-size", type=WINDOWS_PER_BATCH,
    help="Windows per batch (patch-mode runs; default 1), or slices per call (a grid cell; "
         "default 8); an export's is fixed.")
tta_option = click.option(
    "--tta", is_flag=True,
    help="Test-time mirroring: average the probabilities of every combination of flips along "
         "D, H and W (8 predictions per window, nnU-Net's mirroring), or of --tta-axes.")
tta_axes_option = click.option(
    "--tta-axes", "tta_axes", multiple=True, type=click.IntRange(0, 2), metavar="AXIS",
    help="With --tta: mirror only along this axis (0 = D, 1 = H, 2 = W; repeatable).")


MODEL_HELP = ("Run folder, SavedModel export, converted faimed3d U-Net (.h5), or grid cell "
              "(BENCH_DIR/cells/<id>.json; runs slice by slice).")
lung_model_option = click.option(
    "--lung-model", type=click.Path(exists=True),
    help="A grid cell of the lungs experiment (BENCH_DIR/cells/lungs-....json), run slice by "
         "slice: the input mask of a lesions_in_lungs cell, and predict's report lungs.")


def mirror_axes(tta: bool, axes: tuple):
    """The ``tta_axes`` argument of the package from --tta and --tta-axes (None: no mirroring)."""
    if axes and not tta:
        raise click.UsageError("--tta-axes chooses the axes of --tta: give --tta as well")
    return (tuple(axes) or MIRROR_AXES) if tta else None


@main.command(cls=_TensorflowCommand)
@click.option("--model", type=click.Path(exists=True), help=MODEL_HELP)
@click.option("--data", type=click.Path(exists=True), help="Prepared dataset (overrides the config).")
@click.option("--config", help="Evaluation config (file or name: mosmed_eval, coronacases_eval).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the CSV/Markdown results.")
@click.option("--predictions", type=click.Path(exists=True, file_okay=False),
              help="Score existing prediction NIfTIs (<id>.nii.gz) instead of a model.")
@click.option("--tolerance", type=bounds(EvaluateConfig, "tolerance"),
              help="NSD tolerance in mm (default: config, else 3 mm, Ma et al.'s lesion value).")
@overlap_option
@batch_size_option
@click.option("--split", type=click.Choice(SPLITS),
              help="Only this part of the run's saved split (--model RUN, --data its dataset).")
@tta_option
@tta_axes_option
@input_window_option
@lung_model_option
def evaluate(model, data, config, out, predictions, tolerance, overlap, batch_size, split,
             tta, tta_axes, input_window, lung_model):
    """Per-case Dice and normalized surface Dice, as Ma et al.'s benchmark computes them.

    Writes cases.csv, summary.csv and summary.md (default: RUN/evaluation/<dataset>, or
    PREDICTIONS/evaluation). --predictions scores <id>.nii.gz masks on the prepared labels' grid.
    """
    from tfcovseg.infer.evaluate import evaluate_configured

    evaluate_configured(config=config, model_dir=model, predictions=predictions, out=out, data=data,
                        tolerance=tolerance, overlap=overlap, batch_size=batch_size, split=split,
                        tta_axes=mirror_axes(tta, tta_axes), input_window=input_window,
                        lung_model=lung_model)


@main.command(cls=_TensorflowCommand)
@click.option("--model", required=True, type=click.Path(exists=True), help=MODEL_HELP)
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), help="Mask NIfTI (default: next to INPUT).")
@click.option("--probabilities", is_flag=True, help="Also write lesion probabilities.")
@click.option("--lung-mask", type=click.Path(exists=True, dir_okay=False),
              help="Lung mask NIfTI for the report (default: --lung-model, else a simple "
                   "threshold extraction).")
@overlap_option
@batch_size_option
@tta_option
@tta_axes_option
@input_window_option
@lung_model_option
def predict(model, input_path, out, probabilities, lung_mask, overlap, batch_size, tta, tta_axes,
            input_window, lung_model):
    """Segment lesions in a CT (NIfTI file or DICOM series folder, in HU), with a report.

    Writes INPUT_lesions.nii.gz (on the input's grid), INPUT_lesions_report.json and .png next
    to INPUT unless --out is given (required for an INPUT inside a prepared dataset).
    """
    from tfcovseg.infer.predict import predict_ct

    predict_ct(model_dir=model, input_path=input_path, out=out, probabilities=probabilities,
               lung_mask=lung_mask, overlap=overlap, batch_size=batch_size,
               tta_axes=mirror_axes(tta, tta_axes), input_window=input_window,
               lung_model=lung_model)


@main.command(cls=_TensorflowCommand)
@click.option("--model", required=True, type=click.Path(exists=True), help=MODEL_HELP)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Export folder.")
@click.option("--version", "version", default=1, show_default=True, type=click.IntRange(min=1),
              help="Model version number.")
@tta_option
@tta_axes_option
@lung_model_option
def export(model, out, version, tta, tta_axes, lung_model):
    """Export a SavedModel for TF Serving (raw HU and voxel spacing in, lesion probabilities
    out; resampling, sliding window and --tta mirroring inside the graph)."""
    from tfcovseg.infer.export import export_savedmodel

    export_savedmodel(model_dir=model, out=out, version=version,
                      tta_axes=mirror_axes(tta, tta_axes), lung_model=lung_model)


@main.group(invoke_without_command=True)
@click.option("--config", default="bench_smoke", show_default=True, help="YAML file or config name.")
@click.option("--data", help="Prepared datasets TRAIN[,TEST] (MedSeg[,Radiopaedia]; overrides "
              "the config).")
@click.option("--out", type=click.Path(file_okay=False), help="Bench folder (one file per cell).")
@click.option("--only", help="Filter cells, e.g. arch=unet,encoder=resnet18|vgg19 "
              "(keys: arch, encoder, init, experiment).")
@click.option("--shard", help="K/N: run the K-th of N deterministic shards (1-based).")
@click.option("--ray", "ray_address", help="Run cells as Ray tasks (address, or 'local').")
@click.pass_context
def bench(ctx, config, data, out, only, shard, ray_address):
    """Train and test the 2D architecture x encoder grid (Bizopoulos et al.).

    Re-running skips finished cells; `tfcovseg bench report DIR` redraws the report.
    """
    if ctx.invoked_subcommand is None:
        import_tensorflow_quietly()
        from tfcovseg.bench.run import run_bench

        run_bench(config=config, data=data, out=out, only=only, shard=shard, ray_address=ray_address)


@bench.command("report")
@click.argument("bench_dir", type=click.Path(exists=True, file_okay=False))
def bench_report(bench_dir):
    """Write results.csv, the paper's tables and figures from a bench folder."""
    from tfcovseg.bench.report import write_report

    write_report(bench_dir)


if __name__ == "__main__":
    main()
