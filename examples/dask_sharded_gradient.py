"""A gradient sharded over a Dask cluster: each worker process differentiates the loss of its shard of the
data with llad, the client sums the shard gradients.  The loss is a sum over data points, so the sum of
the shards' gradients is the gradient of the whole loss; the script checks it against the gradient
computed in one process.

    pip install 'llad[dist]'          # dask.distributed
    python examples/dask_sharded_gradient.py [--points 200000] [--shards 8] [--workers 2]

What travels to the workers is the Numba function (pickled as Numba pickles dispatchers: its Python code)
and the data, never machine code: each worker compiles the derivative the first time it needs it, or
loads it from llad's disk cache (`llad.config.cache_dir`) when an earlier process on that machine compiled
it.  Workers keep their compiled derivatives between tasks.
"""
import argparse
import math
import time

import numba
import numpy as np

import llad


@numba.njit
def oscillator_loss(w, t, y):
    """Least squares of a damped oscillator a exp(-b t) sin(c t + d) against data (t, y)."""
    a, b, c, d = w[0], w[1], w[2], w[3]
    s = 0.0
    for i in range(t.shape[0]):
        r = a * math.exp(-b * t[i]) * math.sin(c * t[i] + d) - y[i]
        s += r * r
    return s


def shard_value_and_gradient(w, t, y):
    """Runs on a worker: the shard's loss and its gradient with respect to w."""
    return llad.value_and_gradient(oscillator_loss, w, t, y)


def make_data(points: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 10.0, points))
    y = 2.0 * np.exp(-0.3 * t) * np.sin(1.7 * t + 0.4) + 0.05 * rng.standard_normal(points)
    return t, y


def sharded_value_and_gradient(client, w, shards):
    """Sum of the shards' (loss, gradient), each computed on a worker."""
    futures = [client.submit(shard_value_and_gradient, w, t, y, pure=False) for t, y in shards]
    results = client.gather(futures)
    return sum(v for v, _ in results), np.sum([g for _, g in results], axis=0)


def main(argv=None) -> float:
    args = _parser().parse_args(argv)
    from dask.distributed import Client, LocalCluster

    t, y = make_data(args.points)
    w = np.array([1.5, 0.2, 1.5, 0.0])
    shards = list(zip(np.array_split(t, args.shards), np.array_split(y, args.shards)))
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        sharded_value_and_gradient(client, w, shards)            # first call: each worker compiles
        t1 = time.perf_counter()
        value, grad = sharded_value_and_gradient(client, w, shards)
        t2 = time.perf_counter()
    serial_value, serial_grad = llad.value_and_gradient(oscillator_loss, w, t, y)
    err = float(np.max(np.abs(grad - serial_grad)) / np.max(np.abs(serial_grad)))
    print(f"{args.points} points in {args.shards} shards on {args.workers} worker processes")
    print(f"sharded gradient: {np.array2string(grad, precision=6)} (loss {value:.6f}; first call "
          f"{t1 - t0:.2f} s with compiling, then {1e3 * (t2 - t1):.1f} ms)")
    print(f"serial gradient:  {np.array2string(serial_grad, precision=6)} (loss {serial_value:.6f})")
    print(f"largest relative difference: {err:.1e}")
    return err


def _parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    return ap


if __name__ == "__main__":
    main()
