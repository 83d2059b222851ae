"""The 2D networks of the benchmark grid (Bizopoulos et al.): encoders, decoders, conversion.

``encoders``: the encoders qubvel's segmentation_models lacks, registered with its backbone
factory, in segmentation_models_pytorch's layout.
"""
