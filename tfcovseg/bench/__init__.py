"""The 2D architecture x encoder grid of Bizopoulos et al.: cells, executor, results, report.

``tfcovseg.bench.load_cell_model(bench_dir, cell_id)`` returns a trained cell's Keras model
(for fine-tuning); it is imported lazily so that the pure modules (grid, store, report) load
without TensorFlow.
"""


def __getattr__(name):
    if name == "load_cell_model":
        from tfcovseg.bench.models2d import load_cell_model

        return load_cell_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
