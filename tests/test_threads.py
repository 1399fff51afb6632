"""Threads and processes: the same bits for any number of threads, and a forked child that trains at once.

Both are run in fresh processes: the thread count is read from
``STRIDED_NUM_THREADS`` at import, and forking a process that runs pytest's
own threads is best kept out of the test process.
"""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One training step (seeded) and the bytes of every gradient and weight after it, as a digest.
TRAINING_STEP = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    import strided
    from strided import nn, optim

    name, batch = sys.argv[1], int(sys.argv[2])
    strided.manual_seed(0)
    model = strided.models.get_model(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step()
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.grad.tobytes())
        digest.update(p.data.tobytes())
    print(strided._parallel.num_threads(), digest.hexdigest())
""")

WITHOUT_THREADPOOLCTL = "import sys; sys.modules['threadpoolctl'] = None\n"


def _run(code, *args, threads=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads is not None:
        env["STRIDED_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize("blas_control, counts", [("threadpoolctl", (1, 2, 3, 8)), ("without threadpoolctl", (1, 3))])
def test_a_training_step_is_bit_identical_for_any_number_of_threads(blas_control, counts):
    # cifar_cnn at batch 128: its products are large enough to be cut into chunks, which BLAS's own threads
    # used to compute when the pool was off (one thread), in another order than one BLAS thread does
    code = TRAINING_STEP if blas_control == "threadpoolctl" else WITHOUT_THREADPOOLCTL + TRAINING_STEP
    runs = {n: _run(code, "cifar_cnn", 128, threads=n) for n in counts}
    assert [int(threads) for threads, _ in runs.values()] == list(counts)
    digests = {n: digest for n, (_, digest) in runs.items()}
    assert len(set(digests.values())) == 1, digests


# A thread allocates from the buffer cache and trains without pause while the main thread forks; each
# child trains a step on the pool's threads and exits. A lock held by the parent's thread at the fork
# (the buffer cache's, the pool's, BLAS's thread switch) would hang the child: the parent kills a child
# still running after child_timeout seconds (a hang is for ever; a slow child on a busy machine is not) and
# reports it. Before the buffer cache reset its lock after a fork, the first child already hung.
FORK_WHILE_TRAINING = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    import strided
    from strided import _memory, _parallel, nn

    forks, child_timeout = int(sys.argv[1]), float(sys.argv[2])
    _parallel.set_num_threads(2)

    def step(model, x):
        y = model(x)
        model.backward(np.ones_like(y))

    stop = threading.Event()

    def busy():
        model, x = strided.models.lenet5(), np.ones((64, 1, 28, 28), np.float32)
        # every kept buffer of this size in use: each allocation looks at all of them, inside the cache's lock
        held = [_memory.empty((256, 1024), np.float32) for _ in range(_memory.MAX_BUFFERS_PER_SIZE)]
        while not stop.is_set():
            step(model, x)
            for _ in range(200):
                _memory.empty((256, 1024), np.float32)
        del held

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    child_model, child_x = strided.models.lenet5(), np.ones((64, 1, 28, 28), np.float32)
    hung = 0
    for _ in range(forks):
        time.sleep(0.002)
        pid = os.fork()
        if pid == 0:
            try:
                step(child_model, child_x)
                _memory.empty((256, 1024), np.float32)
            finally:
                os._exit(0)
        deadline = time.monotonic() + child_timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.001)
        if hung:
            break
    stop.set()
    thread.join()
    print(hung)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_child_forked_while_another_thread_trains_trains_at_once():
    (hung,) = _run(FORK_WHILE_TRAINING, 300, 60.0, timeout=900)
    assert hung == "0", "a forked child hung"
