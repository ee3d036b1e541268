"""More than one machine: training and inference on a Dask cluster
===============================================================

With `crnn.dask`.

A `SequenceTagger` learns to echo its input bits 3 steps later (the task of
many_to_many.py), but each training step is computed by the workers of a
Dask cluster: `crnn.dask.DataParallel` cuts every window of 32 streams into
one shard per worker, each worker computes its shard's gradients, a tree of
tasks sums them, and one Adam step follows here. The same training in one
process (`crnn.training.TBPTT`) ends with the same weights, to rounding. A
checkpoint is written every 25 steps; a run resumed from one ends where the
uninterrupted run did. Then `crnn.dask.predict` runs the model over 20,000
new streams held in a dask array, block by block on the workers, and dask
computes the accuracy there.

Run:  python examples/dask_cluster.py                  (a local cluster: 2 workers)
      python examples/dask_cluster.py tcp://host:8786  (the cluster at that scheduler)
      CRNN_EXAMPLES_QUICK=1 for a short run. Needs: pip install "crnn[dask]"
"""

import functools
import os
import sys
import tempfile

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import crnn.dask
from crnn.losses import softmax_cross_entropy
from crnn.models import SequenceTagger, one_hot
from crnn.optim import Adam
from crnn.training import TBPTT

QUICK = bool(os.environ.get("CRNN_EXAMPLES_QUICK"))
STEPS = 50 if QUICK else 200
N_TEST = 2_000 if QUICK else 20_000
DELAY, B, K = 3, 32, 20  # echo delay, streams, truncated-BPTT window


def windows(steps, seed=0):
    """The training stream, window by window: one-hot bits (K, B, 2) and the
    bits DELAY steps earlier (K, B) as targets."""
    bits = np.random.default_rng(seed).integers(0, 2, size=(steps * K + DELAY, B))
    for i in range(steps):
        x = one_hot(bits[DELAY + i * K : DELAY + (i + 1) * K], 2, np.float64)
        yield x, bits[i * K : (i + 1) * K]


def new_model(seed=0):
    return SequenceTagger(2, 32, 2, dtype=np.float64, seed=seed)


def new_optimizer(model):
    return Adam(model.params, lr=1e-2, clip_grad_norm=1.0)


def max_difference(a, b):
    return max(float(np.max(np.abs(a.params[k] - b.params[k]))) for k in a.params)


def main(client, checkpoints):
    workers = len(client.nthreads())
    print(f"cluster: {workers} workers ({client.scheduler.address})")

    model = new_model()
    trainer = crnn.dask.DataParallel(
        model,
        softmax_cross_entropy,
        new_optimizer(model),
        client,
        stateful=True,
        checkpoint_dir=checkpoints,
        checkpoint_every=25,
    )
    with trainer:
        for i, (x, y) in enumerate(windows(STEPS)):
            loss = trainer.step(x, y)
            if i % (STEPS // 5) == 0 or i == STEPS - 1:
                print(f"step {i + 1:4d}/{STEPS}  loss {loss:.5f}  ({workers} shards)")

    alone = new_model()
    tbptt = TBPTT(alone, softmax_cross_entropy, new_optimizer(alone), k=K)
    for x, y in windows(STEPS):
        tbptt.step(x, y)
    print(f"same weights as one process: max difference {max_difference(model, alone):.1e}")

    middle = os.path.join(checkpoints, f"step-{STEPS - 25:08d}")
    resumed = new_model(seed=1)
    with crnn.dask.DataParallel(
        resumed, softmax_cross_entropy, new_optimizer(resumed), client, stateful=True
    ) as again:
        start = again.load_checkpoint(middle)
        for x, y in list(windows(STEPS))[start:]:
            again.step(x, y)
    print(
        f"resumed from the checkpoint of step {start}: max difference from the "
        f"uninterrupted run {max_difference(resumed, model):.1e}"
    )

    # 20,000 fresh streams of 50 steps, generated on the workers.
    bits = da.random.default_rng(1).integers(0, 2, size=(50, N_TEST), chunks=(50, N_TEST // 8))
    X = bits.map_blocks(
        functools.partial(one_hot, num_classes=2, dtype=np.float64),
        new_axis=2,
        chunks=bits.chunks + ((2,),),
        dtype=np.float64,
    )
    logits = crnn.dask.predict(model, X)  # 8 tasks; the model is scattered once
    correct = logits.argmax(axis=-1)[DELAY:] == bits[:-DELAY]
    accuracy = float(correct.mean().compute())
    print(
        f"accuracy on {N_TEST:,} new streams (crnn.dask.predict, {X.numblocks[1]} blocks): "
        f"{accuracy:.1%} (chance: 50%)"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="crnn-checkpoints-") as checkpoints:
        if len(sys.argv) > 1:
            with Client(sys.argv[1]) as c:
                main(c, checkpoints)
        else:
            with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as lc:
                with Client(lc) as c:
                    main(c, checkpoints)
