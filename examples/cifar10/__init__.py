"""The cifar10 pruning example of tf.contrib.model_pruning, rebuilt on tf.data (see README)."""
