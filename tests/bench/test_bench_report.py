import csv

import pytest
from synthetic_results import write_bench

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell, grid_cells
from tfcovseg.bench.report import write_report
from tfcovseg.errors import TfcovsegError

ALL_FIGURES = {
    "fig2_histograms_lungs.png", "fig2_histograms_lesions.png",
    "fig3_predictions_lungs.png", "fig3_predictions_lesions.png",
    "fig4_dice_vs_parameters_lungs.png", "fig4_dice_vs_parameters_lesions.png",
    "fig5_losses_lungs.png", "fig5_losses_lesions.png",
    "fig6_dice_by_architecture_lungs.png", "fig6_dice_by_architecture_lesions.png",
    "fig6_dice_by_initialisation.png",
    "fig7_surfaces_lungs.png", "fig7_surfaces_lesions.png",
    "fig8_first_conv_filters.png",
}


def test_report_of_a_small_grid_has_csv_tables_and_every_figure(tmp_path):
    cells = grid_cells(["unet", "pspnet"], ["resnet18", "vgg11"], ["random", "imagenet"],
                       ["lungs", "lesions"])
    write_bench(tmp_path, cells)
    unavailable = Cell("lungs", "fpn", "dpn68", "imagenet")
    store.write_result(tmp_path, {"id": unavailable.id, "status": store.NO_IMAGENET,
                                  "cell": {"experiment": "lungs", "arch": "fpn",
                                           "encoder": "dpn68", "init": "imagenet"},
                                  "reason": "no ImageNet weights for dpn68: offline"})
    report = write_report(tmp_path)

    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == len(cells) + 1
    assert {r["status"] for r in rows} == {"done", "no_imagenet_weights"}
    done = [r for r in rows if r["status"] == "done"]
    assert all(50 <= float(r["dice"]) <= 100 for r in done)

    text = report.read_text()
    assert "convention `paper`" in text
    assert "| Architecture | Encoder | Params (M)" in text
    assert "lungs random Dice" in text and "lesions imagenet Sens" in text
    assert "| unet | mean |" in text and "| pspnet | std |" in text
    assert "### Dice by arch" in text and "### Dice by init" in text
    assert "fpn-dpn68-imagenet" in text and "offline" in text
    assert {p.name for p in (tmp_path / "figures").iterdir()} == ALL_FIGURES


def test_report_of_one_cell_skips_figures_with_notes(tmp_path, capsys):
    write_bench(tmp_path, [Cell("lungs", "unet", "mobilenetv2", "random")])
    report = write_report(tmp_path)
    out = capsys.readouterr().out
    assert "note: fig4 lungs: 1 cells, too few" in out
    assert "note: fig7 lungs: no test volume" in out
    assert "note: fig8:" in out
    assert "Figures skipped or partial" in report.read_text()


def test_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(TfcovsegError, match="no cell results"):
        write_report(tmp_path)
