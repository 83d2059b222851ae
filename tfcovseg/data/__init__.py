"""tf.data pipelines: 3D volumes for the U-Net, 2D slices for the benchmark grid."""
