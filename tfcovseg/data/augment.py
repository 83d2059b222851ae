"""3D augmentations as TensorFlow ops, after the authors' library (faimed3d ``augment.py``).

Bressem et al. name perspective distortion, rotation, mirroring, contrast, brightness and
Gaussian noise; the defaults below are faimed3d's ranges with the example probability 0.15
(PAPERS.md, "Augmentations available in faimed3d"):

- flip: one axis drawn from ``flip_axes`` is mirrored (faimed3d ``RandomFlip3D``).
- rotation: one axis is drawn (D, H or W) and the slices across it are rotated by an angle
  uniform in +-``rotation_degrees`` for that axis (faimed3d ``RandomRotate3DBy``: 30 degrees
  for axial slices, 2 for the other planes), in voxel units as torchvision rotates pixels;
  faimed3d draws whole degrees, here the angle is continuous.
- perspective: the axial plane's four corners move inwards by up to ``perspective_distortion``
  of half the side, the same for all slices (torchvision ``RandomPerspective`` parameters).
- brightness ``x + beta`` and contrast ``x * alpha``, each clipped to the volume's original
  [min, max] (faimed3d clips likewise; with min-max scaled input the bounds are [0, 1]).
  The paper-era code drew constant -0.3 / 0.7 by a bug; here beta and alpha are uniform.
- noise: multiplicative Gaussian noise ``x * (1 + sigma * N(0, 1))`` with sigma uniform in
  ``noise_range`` (faimed3d's ``x + sqrt(std) * N * x``, std in 0.01..0.09: 10-30 %).

Rotation and perspective are composed into one resampling (trilinear for the image, nearest
for the label, the volume's minimum outside the field of view), so image and label always get
the same geometry. All randomness is stateless and derived from one per-element seed.
"""

import itertools
import math

import tensorflow as tf

from tfcovseg.settings.data import Augment3D

SPATIAL_RANK = 3
CORNERS = 4  # a perspective is fixed by where four points go


def augment3d(image, label, seed, cfg: Augment3D):
    """Augment one ``image`` (float [D, H, W, C]) and its ``label`` ([D, H, W, C]) alike.

    ``seed`` is a shape-[2] integer tensor; the same seed gives the same result.
    """
    if not cfg.enabled:
        return image, label
    seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(6)]
    image, label = random_flip(image, label, seeds[0], cfg)
    image, label = random_geometry(image, label, seeds[1], seeds[2], cfg)
    image = _maybe(
        seeds[3], cfg.brightness, image, lambda x: x + _uniform(seeds[3], cfg.brightness_range)
    )
    image = _maybe(
        seeds[4], cfg.contrast, image, lambda x: x * _uniform(seeds[4], cfg.contrast_range)
    )
    image = _maybe(
        seeds[5],
        cfg.noise,
        image,
        lambda x: x * (1.0 + _uniform(seeds[5], cfg.noise_range) * _normal(seeds[5], tf.shape(x))),
        keep_range=False,
    )
    return image, label


def _maybe(seed, p, image, change, keep_range=True):
    """``change(image)`` with probability ``p`` (clipped to the image's range if asked)."""

    def changed():
        if not keep_range:
            return change(image)
        return tf.clip_by_value(change(image), tf.reduce_min(image), tf.reduce_max(image))

    return tf.cond(_coin(seed, p), changed, lambda: image)


def _draw(seed, salt):
    return tf.random.experimental.stateless_fold_in(seed, salt)


def _coin(seed, p):
    return tf.random.stateless_uniform([], _draw(seed, 0)) < p


def _uniform(seed, bounds, shape=()):
    return tf.random.stateless_uniform(shape, _draw(seed, 1), bounds[0], bounds[1])


def _normal(seed, shape):
    return tf.random.stateless_normal(shape, _draw(seed, 2))


def random_flip(image, label, seed, cfg: Augment3D):
    """Mirror one axis drawn from ``cfg.flip_axes``, with probability ``cfg.flip``."""
    axes = tf.constant(cfg.flip_axes, tf.int32)
    pick = tf.random.stateless_uniform([], _draw(seed, 1), 0, len(cfg.flip_axes), tf.int32)
    axis = tf.reshape(tf.gather(axes, pick), [1])
    do = _coin(seed, cfg.flip)
    return (
        tf.cond(do, lambda: tf.reverse(image, axis), lambda: image),
        tf.cond(do, lambda: tf.reverse(label, axis), lambda: label),
    )


def random_geometry(image, label, rotation_seed, perspective_seed, cfg: Augment3D):
    """Random rotation and in-plane perspective, resampled once (image linear, label nearest)."""
    shape = tf.shape(image)[:SPATIAL_RANK]
    rotate = _coin(rotation_seed, cfg.rotation)
    distort = _coin(perspective_seed, cfg.perspective)

    def warp():
        rotation = tf.cond(
            rotate, lambda: random_rotation(shape, rotation_seed, cfg), lambda: tf.eye(3)
        )
        homography = tf.cond(
            distort,
            lambda: random_perspective(shape, perspective_seed, cfg),
            lambda: tf.eye(3, dtype=tf.float64),
        )
        coords = source_coordinates(shape, rotation, homography)
        fill = tf.reduce_min(image)
        return resample_linear(image, coords, fill), resample_nearest(label, coords)

    return tf.cond(rotate | distort, warp, lambda: (image, label))


def random_rotation(shape, seed, cfg: Augment3D):
    """A 3x3 rotation of (d, h, w) coordinates about one random axis (see module doc)."""
    axis = tf.random.stateless_uniform([], _draw(seed, 1), 0, SPATIAL_RANK, tf.int32)
    limit = tf.gather(tf.constant(cfg.rotation_degrees, tf.float32), axis)
    degrees = tf.random.stateless_uniform([], _draw(seed, 2), -1.0, 1.0) * limit
    return rotation_matrix(axis, degrees * math.pi / 180.0)


def rotation_matrix(axis, angle):
    """Rotation by ``angle`` (radians) in the plane of the two axes other than ``axis``."""
    c, s = tf.cos(angle), tf.sin(angle)
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    about_d = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    about_h = [[c, zero, -s], [zero, one, zero], [s, zero, c]]
    about_w = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    matrices = tf.stack(
        [tf.stack([tf.stack(row) for row in m]) for m in (about_d, about_h, about_w)]
    )
    return tf.gather(matrices, axis)


def random_perspective(shape, seed, cfg: Augment3D):
    """The 3x3 homography taking output (x, y) = (w, h) to source positions in the axial plane.

    Corners move inwards by up to ``perspective_distortion`` of half the side, as torchvision's
    ``RandomPerspective.get_params`` draws them.
    """
    height = tf.cast(shape[1], tf.float64)
    width = tf.cast(shape[2], tf.float64)
    source = tf.stack([[0.0, 0.0], [width - 1, 0.0], [width - 1, height - 1], [0.0, height - 1]])
    inward = tf.constant([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], tf.float64)
    reach = cfg.perspective_distortion * tf.stack([width, height]) / 2.0
    shift = tf.random.stateless_uniform([CORNERS, 2], _draw(seed, 1), dtype=tf.float64) * reach
    moved = source + inward * shift
    return homography_from_points(moved, source)


def homography_from_points(points_from, points_to):
    """The 3x3 homography mapping four points ``[4, 2]`` (x, y) onto four others."""
    rows, rhs = [], []
    for i in range(CORNERS):
        u, v = points_from[i, 0], points_from[i, 1]
        x, y = points_to[i, 0], points_to[i, 1]
        zero, one = tf.zeros_like(u), tf.ones_like(u)
        rows.append(tf.stack([u, v, one, zero, zero, zero, -u * x, -v * x]))
        rows.append(tf.stack([zero, zero, zero, u, v, one, -u * y, -v * y]))
        rhs.extend([x, y])
    solution = tf.linalg.solve(tf.stack(rows), tf.reshape(tf.stack(rhs), [-1, 1]))
    return tf.reshape(tf.concat([solution[:, 0], tf.ones([1], tf.float64)], 0), [3, 3])


def source_coordinates(shape, rotation, homography):
    """Source (d, h, w) positions (three float32 ``[D, H, W]``) of every output voxel.

    The forward transform rotates about the volume centre and then applies the perspective,
    so sampling undoes them in the opposite order: homography first, then ``R^T = R^-1``.
    """
    d, h, w = tf.meshgrid(*[tf.range(shape[i], dtype=tf.float32) for i in range(3)], indexing="ij")
    m = tf.cast(homography, tf.float32)
    denominator = m[2, 0] * w + m[2, 1] * h + m[2, 2]
    x = (m[0, 0] * w + m[0, 1] * h + m[0, 2]) / denominator
    y = (m[1, 0] * w + m[1, 1] * h + m[1, 2]) / denominator
    centre = (tf.cast(shape, tf.float32) - 1.0) / 2.0
    offsets = (d - centre[0], y - centre[1], x - centre[2])
    return tuple(
        sum(rotation[j, i] * offsets[j] for j in range(SPATIAL_RANK)) + centre[i]
        for i in range(SPATIAL_RANK)
    )


def voxel_lookup(volume, fill):
    """A function from integer (d, h, w) index tensors to ``volume`` values, ``fill`` outside.

    The volume is padded by one voxel of ``fill`` and indices are clamped into the padding,
    so any position outside the volume reads ``fill``.
    """
    channels = tf.shape(volume)[-1]
    padded = tf.pad(volume, [[1, 1], [1, 1], [1, 1], [0, 0]], constant_values=fill)
    size = tf.unstack(tf.shape(padded)[:SPATIAL_RANK])
    flat = tf.reshape(padded, [-1, channels])

    def lookup(index):
        d, h, w = (tf.clip_by_value(i + 1, 0, n - 1) for i, n in zip(index, size))
        return tf.gather(flat, (d * size[1] + h) * size[2] + w)

    return lookup


def resample_linear(volume, coords, fill):
    """Trilinear sampling of ``volume`` [D, H, W, C] at ``coords`` (d, h, w); ``fill`` outside."""
    lookup = voxel_lookup(volume, tf.cast(fill, volume.dtype))
    lows = [tf.floor(c) for c in coords]
    fractions = [c - low for c, low in zip(coords, lows)]
    lows = [tf.cast(low, tf.int32) for low in lows]
    result = 0.0
    for corner in itertools.product((0, 1), repeat=SPATIAL_RANK):
        index = [low + k for low, k in zip(lows, corner)]
        weight = 1.0
        for fraction, k in zip(fractions, corner):
            weight *= fraction if k else 1.0 - fraction
        result += weight[..., None] * lookup(index)
    return result


def resample_nearest(volume, coords):
    """Nearest-voxel sampling of ``volume`` [D, H, W, C] at ``coords`` (d, h, w); zero outside."""
    lookup = voxel_lookup(volume, tf.zeros([], volume.dtype))
    return lookup([tf.cast(tf.floor(c + 0.5), tf.int32) for c in coords])
