import subprocess
import sys

from click.testing import CliRunner

from tfcovseg.cli import main


def test_help_lists_every_command_with_one_line():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "prepare", "convert-weights", "train", "evaluate", "predict", "export", "bench"):
        assert command in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "tfcovseg" in result.output


def test_user_error_is_one_red_line_and_nonzero_exit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfcovseg.cli", "train", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, cwd=tmp_path.parent, env=None,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "nope.yaml" in lines[0]
    assert "Traceback" not in result.stderr


def test_help_does_not_import_tensorflow():
    code = "import sys, tfcovseg.cli as cli; cli.main(['--help'], standalone_mode=False); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False")


def test_preview_draws_augmented_samples_of_a_dataset(phantom_dataset, tmp_path):
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(main, ["preview", str(phantom_dataset.root), "--out", str(out),
                                       "--pipeline", "2d", "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_imagenet_for_an_unknown_encoder_is_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["convert-imagenet", "resnet9000", "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 1
    assert "resnet9000" in result.output
