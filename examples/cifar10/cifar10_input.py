"""Reads CIFAR-10 binary batches with tf.data and applies contrib's preprocessing.

A record is 1 label byte followed by 3,072 image bytes, a 32x32 RGB picture stored channel by
channel (CHW). Training reads data_batch_1..5.bin, evaluation test_batch.bin.

When `data_dir` holds no CIFAR-10 files, `find_data` writes scikit-learn's digits in the same
format (see `digits_data`) and the same reader runs on them.
"""

import os

import tensorflow as tf

from examples.cifar10 import digits_data

IMAGE_SIZE = 24
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000
NUM_EXAMPLES_PER_EPOCH_FOR_EVAL = 10000

LABEL_BYTES = 1
ORIGINAL_SIZE = 32
DEPTH = 3
IMAGE_BYTES = ORIGINAL_SIZE * ORIGINAL_SIZE * DEPTH
RECORD_BYTES = LABEL_BYTES + IMAGE_BYTES

TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
# The directory the CIFAR-10 binary tarball unpacks to.
CIFAR10_SUBDIR = "cifar-10-batches-bin"
DIGITS_SUBDIR = "sklearn-digits-batches-bin"
# Contrib kept 40% of an epoch in its shuffling queue.
SHUFFLE_BUFFER = int(NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN * 0.4)


def find_data(data_dir):
    """(directory holding the batch files, description of the data set) for `data_dir`.

    Real CIFAR-10 is looked for in `data_dir` and in `data_dir/cifar-10-batches-bin`. With no
    batch file in either, scikit-learn's digits are converted into
    `data_dir/sklearn-digits-batches-bin` (once) and used instead.

    Raises:
      ValueError: if only some of the CIFAR-10 batch files are present.
    """
    wanted = TRAIN_FILES + TEST_FILES
    for candidate in (data_dir, os.path.join(data_dir, CIFAR10_SUBDIR)):
        present = [name for name in wanted if os.path.isfile(os.path.join(candidate, name))]
        if len(present) == len(wanted):
            return candidate, f"CIFAR-10 from {candidate}"
        if present:
            missing = sorted(set(wanted) - set(present))
            raise ValueError(f"Failed to find file(s) {', '.join(missing)} in {candidate}; "
                             f"CIFAR-10 needs all of {', '.join(wanted)}")
    digits_dir = digits_data.write_digits_as_cifar10(os.path.join(data_dir, DIGITS_SUBDIR))
    return digits_dir, (f"scikit-learn digits as CIFAR-10 (no CIFAR-10 files in {data_dir}; "
                        f"converted into {digits_dir})")


def count_records(batches_dir, eval_data):
    """The number of records in the files `eval_data` reads (see `filenames`)."""
    return sum(os.path.getsize(f) // RECORD_BYTES for f in filenames(batches_dir, eval_data))


def filenames(batches_dir, eval_data):
    """The batch files: the test file for eval_data 'test', the training files otherwise."""
    names = TEST_FILES if eval_data == "test" else TRAIN_FILES
    paths = [os.path.join(batches_dir, name) for name in names]
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"Failed to find file: {path}")
    return paths


def parse_record(record):
    """One raw record -> (uint8 image [32, 32, 3] in HWC order, int32 label)."""
    data = tf.io.decode_raw(record, tf.uint8)
    label = tf.cast(data[0], tf.int32)
    chw = tf.reshape(data[LABEL_BYTES:RECORD_BYTES], [DEPTH, ORIGINAL_SIZE, ORIGINAL_SIZE])
    # Stacking the channel planes, not tf.transpose: a uint8 Transpose makes oneDNN log an
    # error line on CPUs without AVX-512, and grappler moves a cast placed before it behind it.
    return tf.stack(tf.unstack(chw), axis=-1), label


def read_records(paths):
    """A dataset of the raw records of CIFAR-10 binary files, in file order."""
    return tf.data.FixedLengthRecordDataset(list(paths), RECORD_BYTES)


def _parse_then(preprocess):
    """A map function: raw record -> (preprocess(image), label)."""
    def parse_and_preprocess(record):
        image, label = parse_record(record)
        return preprocess(image), label
    return parse_and_preprocess


def distort_image(image):
    """Training augmentation: random 24x24 crop, flip, brightness and contrast, standardised."""
    image = tf.image.random_crop(tf.cast(image, tf.float32), [IMAGE_SIZE, IMAGE_SIZE, DEPTH])
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, max_delta=63)
    image = tf.image.random_contrast(image, lower=0.2, upper=1.8)
    return tf.image.per_image_standardization(image)


def eval_image(image):
    """Evaluation preprocessing: the central 24x24 crop, standardised."""
    image = tf.image.resize_with_crop_or_pad(tf.cast(image, tf.float32), IMAGE_SIZE, IMAGE_SIZE)
    return tf.image.per_image_standardization(image)


def distorted_inputs(batches_dir, batch_size):
    """Endless shuffled, augmented training batches: (images [batch, 24, 24, 3], labels [batch])."""
    dataset = (read_records(filenames(batches_dir, "train"))
               .shuffle(SHUFFLE_BUFFER)
               .repeat()
               .map(_parse_then(distort_image), num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size, drop_remainder=True)
               .prefetch(1))
    images, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    tf.compat.v1.summary.image("images", images)
    return images, labels


def inputs(eval_data, batches_dir, batch_size, num_examples=None):
    """One pass of evaluation batches, the last one possibly short.

    Returns (initializer op, images [<=batch, 24, 24, 3], labels [<=batch]); run the initializer
    to start a pass. `num_examples` limits the pass to the first that many records.
    """
    dataset = read_records(filenames(batches_dir, eval_data))
    if num_examples is not None:
        dataset = dataset.take(num_examples)
    dataset = (dataset.map(_parse_then(eval_image), num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size)
               .prefetch(1))
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    images, labels = iterator.get_next()
    return iterator.initializer, images, labels

