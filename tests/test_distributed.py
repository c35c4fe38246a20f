"""The cifar10 example with pruning on a loopback parameter-server cluster: 2 ps, 2 workers."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from examples.cifar10 import cifar10_input

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("conv1", "conv2", "local3", "local4", "softmax_linear")
HPARAMS = ("name=cifar10_pruning,threshold_method=exact,pruning_frequency=5,"
           "target_sparsity=0.75,sparsity_function_end_step=30")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_task(job_name, task_index, hosts, train_dir, data_dir):
    ps_hosts, worker_hosts = hosts
    return subprocess.Popen(
        [sys.executable, "-m", "examples.cifar10.cifar10_distributed_train",
         f"--ps_hosts={ps_hosts}", f"--worker_hosts={worker_hosts}", f"--job_name={job_name}",
         f"--task_index={task_index}", f"--train_dir={train_dir}", f"--data_dir={data_dir}",
         f"--pruning_hparams={HPARAMS}", "--max_steps=50", "--batch_size=32",
         "--learning_rate=0.05", "--save_checkpoint_steps=25"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.long
def test_pruning_on_a_parameter_server_cluster(tmp_path):
    data_dir, train_dir = tmp_path / "data", tmp_path / "train"
    cifar10_input.find_data(str(data_dir))  # convert the data once, before the workers start
    ports = [f"localhost:{port}" for port in free_ports(4)]
    hosts = (",".join(ports[:2]), ",".join(ports[2:]))
    ps_tasks = [start_task("ps", i, hosts, train_dir, data_dir) for i in range(2)]
    try:
        workers = [start_task("worker", i, hosts, train_dir, data_dir) for i in range(2)]
        logs = [worker.communicate(timeout=110)[0] for worker in workers]
    finally:
        for task in ps_tasks:
            task.kill()
            task.wait()
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log[-3000:]
    placements = dict(line.split(": ", 1)[1].split(" on ")
                      for line in logs[0].splitlines() if line.startswith("placement: "))
    # Every mask lives on a ps task; local3's mask is split across both of them.
    assert all("/job:ps/" in device for device in placements.values())
    assert {placements["local3/mask/part_0"], placements["local3/mask/part_1"]} == {
        "/job:ps/task:0", "/job:ps/task:1"}
    reader = tf.train.load_checkpoint(str(train_dir))
    assert reader.get_tensor("global_step") >= 50
    for layer in LAYERS:
        mask = reader.get_tensor(f"{layer}/mask")
        assert mask.sum() == round(mask.size * 0.25), layer
    assert np.all(np.isin(reader.get_tensor("local3/mask"), [0.0, 1.0]))
