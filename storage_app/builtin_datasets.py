"""The built-in datasets: their names, shapes and classes. No torch import here, so
the API validates specs without loading PyTorch; ``workers.splits`` produces them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    is_image: bool
    description: str


SYNTHETIC_FEATURES = 128
SYNTHETIC_CLASSES = 10
SYNTHETIC_DEFAULT_SIZE = 20_000
SYNTHETIC_MAX_SIZE = 2_000_000
SHAPES_DEFAULT_SIZE = 4_000  # shared/bench/reference.py's shapes-resnet workload
SHAPES_MAX_SIZE = 60_000  # CIFAR's size: 60,000 x 3 x 32 x 32 floats is 0.7 GB

BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("digits", (1, 8, 8), 10, True, "scikit-learn's 8x8 handwritten digits, 1,797 images"),
        BuiltinDataset("iris", (4,), 3, False, "scikit-learn's iris flowers, 150 samples"),
        BuiltinDataset("wine", (13,), 3, False, "scikit-learn's wine recognition, 178 samples"),
        BuiltinDataset("breast_cancer", (30,), 2, False, "scikit-learn's breast cancer Wisconsin, 569 samples"),
        BuiltinDataset(
            "synthetic",
            (SYNTHETIC_FEATURES,),
            SYNTHETIC_CLASSES,
            False,
            "Gaussian inputs labelled by a fixed random teacher network; size from the spec",
        ),
        BuiltinDataset(
            "synthetic-shapes",
            (3, 32, 32),
            10,
            True,
            "CIFAR-sized generated images (3x32x32, 10 classes: shifted, contrast-jittered, noisy copies of "
            "each class's smooth random pattern), 4,000 by default; size from the spec",
        ),
    )
}
