"""Every runnable setting of tfcovseg as frozen dataclasses: one settings layer.

The modules here import no TensorFlow, so ``cli.py`` and every room can read them (and their
choice lists, the ``Literal`` types, which the CLI's ``click.Choice`` options are made from).
Defaults reproduce the papers; ``tfcovseg.config`` maps YAML onto these dataclasses 1:1 and
checks every value at load. ``data`` (intensity, augmentation, the 3D and 2D pipelines),
``phantoms`` (synthetic CT), ``train`` (Bressem et al.'s recipe), ``bench`` (the 2D grid of
Bizopoulos et al.) and ``evaluate``.
"""
