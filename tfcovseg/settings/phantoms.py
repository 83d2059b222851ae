"""Settings of the synthetic chest CT phantoms (``tfcovseg synth``, the demo, bench smoke runs).

The generator is ``tfcovseg.io.phantoms``; its anatomy is scaled to the field of view, so any
shape of at least ``MIN_SIZE`` voxels per axis works.
"""


from tfcovseg.config import bounded, frozen_settings

MIN_SIZE = 4  # voxels per axis: the smallest volume the phantom's anatomy can be drawn in


@frozen_settings
class Phantoms:
    """``cases`` phantoms drawn from ``seed``; every fourth case has no lesions."""

    cases: int = bounded(8, low=1)
    seed: int = bounded(0, low=0)
    shape: tuple[int, int, int] = bounded((64, 128, 128), low=MIN_SIZE)  # D, H, W voxels
    spacing: tuple[float, float, float] = bounded((5.0, 2.5, 2.5), low=0.0, low_open=True)  # mm
    lesion_count: tuple[int, int] = bounded((1, 6), low=1)  # lesions per case: [min, max]
    # lesion radii [min, max] in half fields of view; the defaults draw mild disease (~2.5 %)
    lesion_radius: tuple[float, float] = bounded((0.05, 0.2), low=0.0, low_open=True)

    def __post_init__(self):
        for name in ("lesion_count", "lesion_radius"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [min, max] with min <= max, got {[low, high]}")
