"""scikit-learn's bundled digits written as CIFAR-10 binary batches: the example's offline data.

CIFAR-10 cannot be downloaded everywhere, but `sklearn.datasets.load_digits()` ships 1,797
labelled 8x8 grey images (values 0..16) inside the package. Each image is scaled to 0..255,
enlarged 3x to 24x24 (nearest neighbour) and centred on a black 32x32 canvas, then copied to
three channels. The margin matters: the eval pipeline's central 24x24 crop then sees the whole
digit, as it sees the centred object of a CIFAR-10 picture, and a random training crop shifts it
by at most 4 pixels.

The split is fixed: in each class, a seeded permutation sends `TEST_FRACTION` of the images to
`test_batch.bin` and the rest, in the same permuted order, to `data_batch_1..5.bin`.
"""

import os
import shutil
import tempfile

import numpy as np

TEST_FRACTION = 1.0 / 6.0
SPLIT_SEED = 0
DIGIT_SCALE = 3
CANVAS_SIZE = 32
NUM_TRAIN_FILES = 5


def digits_as_cifar_images():
    """All digits as (uint8 images [N, 32, 32, 3] in HWC order, uint8 labels [N])."""
    from sklearn.datasets import load_digits  # imported here: only the fallback needs it

    digits = load_digits()
    grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    enlarged = grey.repeat(DIGIT_SCALE, axis=1).repeat(DIGIT_SCALE, axis=2)
    margin = (CANVAS_SIZE - enlarged.shape[1]) // 2
    canvas = np.zeros((len(grey), CANVAS_SIZE, CANVAS_SIZE), np.uint8)
    canvas[:, margin:margin + enlarged.shape[1], margin:margin + enlarged.shape[2]] = enlarged
    images = np.repeat(canvas[..., np.newaxis], 3, axis=3)
    return images, digits.target.astype(np.uint8)


def split_indices(labels):
    """(train indices, test indices): a seeded per-class split, the same on every call."""
    rng = np.random.RandomState(SPLIT_SEED)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_test = int(round(len(members) * TEST_FRACTION))
        test.append(members[:num_test])
        train.append(members[num_test:])
    return np.concatenate(train), np.concatenate(test)


def to_cifar_records(images, labels):
    """CIFAR-10 binary records: per image one label byte, then the pixels in CHW order."""
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, np.newaxis], chw], axis=1).astype(np.uint8).tobytes()


def write_digits_as_cifar10(out_dir):
    """Writes data_batch_1..5.bin and test_batch.bin into `out_dir` unless they are there.

    The files are built in a temporary sibling directory and moved into place in one rename,
    so a concurrent reader never sees a half-written set.
    """
    if os.path.isfile(os.path.join(out_dir, "test_batch.bin")):
        return out_dir
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    images, labels = digits_as_cifar_images()
    train, test = split_indices(labels)
    staging = tempfile.mkdtemp(prefix=".digits-", dir=parent)
    try:
        for number, part in enumerate(np.array_split(train, NUM_TRAIN_FILES), start=1):
            with open(os.path.join(staging, f"data_batch_{number}.bin"), "wb") as f:
                f.write(to_cifar_records(images[part], labels[part]))
        with open(os.path.join(staging, "test_batch.bin"), "wb") as f:
            f.write(to_cifar_records(images[test], labels[test]))
        os.rename(staging, out_dir)
    except OSError:
        if not os.path.isfile(os.path.join(out_dir, "test_batch.bin")):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
