"""The fast paths: threads, chunks, batch-last memory, reused buffers, fused bias, and the LeNet-5 benchmark.

Every fast path is checked against a slower ground truth: the naive
convolution, the unfused computation, the same computation on one thread,
PyTorch. Nothing here measures time.
"""
import numpy as np
import pytest

import strided
from strided import _memory, _parallel, conv, models, nn, optim
from strided.bench import lenet5 as bench
from strided.conv import window_rows as fast
from strided.geometry import ConvGeometry
from strided.windows import is_batch_last, to_batch_last

NAIVE = conv.get("naive")
STRIDED = conv.get("strided")


def _step_results(threads_n, set_threads, batch=16, steps=2):
    set_threads(threads_n)
    strided.manual_seed(0)
    model = models.lenet5()
    x, y = bench.random_batch(batch)
    step = bench.strided_step(model, x, y)
    for _ in range(steps):
        step()
    crit = nn.CrossEntropyLoss()
    logits = model(x)
    crit(logits, y)
    model.zero_grad()
    model.backward(crit.backward())
    return logits, {n: (p.data.copy(), p.grad.copy()) for n, p in model.named_parameters()}


# ---- the thread pool -------------------------------------------------------------------------------


def test_training_is_bit_identical_on_one_or_two_threads_and_run_to_run(threads, monkeypatch):
    # every call goes to the pool, however small, so the two-thread runs really run in parallel
    for name in ("MIN_PARALLEL_MACS", "MIN_CHUNK_MACS", "MIN_SPLIT_MACS"):
        monkeypatch.setattr(_parallel, name, 1)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTWISE", 1024)
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)
    monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)       # never back off to the calling thread
    one = _step_results(1, threads)
    two = _step_results(2, threads)
    again = _step_results(2, threads)
    for other in (two, again):
        np.testing.assert_array_equal(one[0], other[0])
        for name, (data, grad) in one[1].items():
            np.testing.assert_array_equal(data, other[1][name][0], err_msg=name)
            np.testing.assert_array_equal(grad, other[1][name][1], err_msg=name)


def test_map_chunks_keeps_order_and_reraises_the_first_error(threads):
    threads(2)
    assert _parallel.map_chunks(lambda i: i * i, 7) == [i * i for i in range(7)]
    assert _parallel.map_chunks(lambda i: i, 0) == []

    def fail(i):
        if i in (3, 5):
            raise KeyError(i)
        return i

    with pytest.raises(KeyError) as err:
        _parallel.map_chunks(fail, 8)
    assert err.value.args == (3,)
    # a chunk that starts chunks of its own runs them inline
    assert _parallel.map_chunks(lambda i: _parallel.map_chunks(lambda j: 10 * i + j, 3), 2) == [[0, 1, 2],
                                                                                               [10, 11, 12]]


def test_elementwise_and_matmul_cover_everything(threads, rng):
    threads(2)
    x = to_batch_last(rng.standard_normal((8, 3, 100, 50)).astype(np.float32))
    out = np.full_like(x, np.nan)
    _parallel.elementwise(lambda o, a: np.multiply(a, 2, out=o), out, x)
    np.testing.assert_array_equal(out, 2 * x)
    a = rng.standard_normal((300, 200))
    b = rng.standard_normal((200, 150))
    np.testing.assert_allclose(_parallel.matmul(a, b), a @ b, rtol=1e-12)
    assert _parallel.matmul(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32


def test_pool_backs_off_when_it_mostly_waits(threads, monkeypatch):
    import threading
    import time
    threads(2)
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)
    monkeypatch.setattr(_parallel, "_long_waits", 0.0)
    for _ in range(50):
        _parallel._record_wait(40e-6, 100e-6)     # workers waking up late: tens of microseconds, no back-off
    assert _parallel._inline_until == 0.0
    for _ in range(5):
        _parallel._record_wait(4e-3, 5e-3)        # the calling thread waited milliseconds for a descheduled worker
    where = _parallel.map_chunks(lambda i: threading.get_ident(), 8)
    assert set(where) == {threading.get_ident()}  # backed off: every chunk ran in the calling thread
    first = _parallel._inline_until - time.perf_counter()
    monkeypatch.setattr(_parallel, "_inline_until", time.perf_counter() - 0.1)   # over, a moment ago
    for _ in range(5):
        _parallel._record_wait(4e-3, 5e-3)        # still busy: backs off again, for longer
    assert _parallel._inline_until - time.perf_counter() > 1.5 * first


def test_without_threadpoolctl_blas_chunks_run_in_the_calling_thread(threads, monkeypatch, rng):
    import threading
    threads(2)
    monkeypatch.setattr(_parallel, "_blas", [])                 # as if threadpoolctl were not installed
    assert not _parallel.can_limit_blas()
    assert set(_parallel.map_chunks(lambda i: threading.get_ident(), 4, blas=True)) == {threading.get_ident()}
    geom = ConvGeometry.create((64, 6, 14, 14), (16, 6, 5, 5))
    x, w, _ = _conv_data(geom, np.float64, rng)
    np.testing.assert_allclose(STRIDED.forward(x, w, geom)[0], NAIVE.forward(x, w, geom)[0], rtol=1e-10, atol=1e-10)


def test_pool_spreads_chunks_and_serves_callers_from_several_threads(threads, monkeypatch):
    import threading
    import time
    threads(2)
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)
    monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)

    def slow(i):
        time.sleep(0.01)            # releases the GIL, as NumPy does: the worker takes the other chunks
        return threading.get_ident()

    assert len(set(_parallel.map_chunks(slow, 4))) == 2
    # two threads of a program call the pool at once: whoever finds it busy runs its chunks itself,
    # and each gets its own results
    results, errors = {}, []

    def caller(k):
        try:
            for _ in range(20):
                got = _parallel.map_chunks(lambda i: (time.sleep(0.0005), k * 100 + i)[1], 6)
                assert got == [k * 100 + i for i in range(6)]
            results[k] = True
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert not errors and sorted(results) == [0, 1, 2]


def test_set_num_threads_stops_the_old_workers(threads, monkeypatch):
    import threading
    import time
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)       # a back-off left by a busy machine would run
    monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)       # the chunks inline and start no worker
    threads(3)
    _parallel.map_chunks(lambda i: time.sleep(0.002), 6)
    assert sum(t.name.startswith("strided-") for t in threading.enumerate()) >= 2
    threads(1)
    deadline = time.monotonic() + 5
    while any(t.name.startswith("strided-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name.startswith("strided-") for t in threading.enumerate())


def test_single_threaded_blas_restores_the_callers_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _parallel.can_limit_blas():
        pytest.skip("no BLAS library that threadpoolctl can control")

    def blas_threads():
        # the libraries loaded when the pool first looked (NumPy's among them; SciPy may bring another later)
        return [get() for get, _ in _parallel._blas_controllers()]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with _parallel.single_threaded_blas():
            assert blas_threads() == [1] * len(before)
            with _parallel.single_threaded_blas():        # nested: still one thread, restored only at the end
                pass
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == before


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_set_num_threads_validates(bad, exc, threads):
    with pytest.raises(exc, match="n must be a positive int"):
        threads(bad)


# ---- the strided convolution: chunks, batch-last memory, fused bias ------------------------------


def _conv_data(geom, dtype, rng):
    x = rng.standard_normal(geom.x_shape).astype(dtype)
    w = rng.standard_normal(geom.weight_shape).astype(dtype)
    dy = rng.standard_normal(geom.y_shape).astype(dtype)
    return x, w, dy


@pytest.mark.parametrize("kernel_row_k", [1, 10**9])        # weight gradient per kernel row, or per output row
@pytest.mark.parametrize("parallel", [False, True])         # blocks share one copy of R, or copy their own rows
@pytest.mark.parametrize("chunk_bytes, max_columns, row_blocks", [(1, 1, 99), (4096, 7, 2), (10**9, 10**9, 1)])
@pytest.mark.parametrize("groups, stride, dilation, padding", [(1, 1, 1, 2), (2, (2, 1), (1, 2), (3, 0, 1, 2)),
                                                               (1, 2, (2, 1), 1), (2, (1, 2), (1, 2), (0, 3, 2, 1))])
def test_every_chunking_matches_the_naive_reference(monkeypatch, rng, threads, pool_for_every_call, chunk_bytes,
                                                    max_columns, row_blocks, groups, stride, dilation, padding, kernel_row_k, parallel):
    # one column and one row per block, pieces of rows in two blocks, everything in one block
    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "MAX_COLUMNS", max_columns)
    monkeypatch.setattr(fast, "MIN_COLUMNS", 1)
    monkeypatch.setattr(fast, "MIN_KERNEL_ROW_K", kernel_row_k)
    threads(2)
    if parallel:
        pool_for_every_call()
    else:
        monkeypatch.setattr(_parallel, "MIN_PARALLEL_MACS", 10**18)
    monkeypatch.setattr(fast, "ROW_BLOCKS", row_blocks)
    monkeypatch.setattr(fast, "MAX_COPY_GROWTH", 1e9)          # as many blocks as ROW_BLOCKS asks for
    monkeypatch.setattr(fast, "FOLD_BYTES", chunk_bytes)      # the input gradient: one output row per product
    monkeypatch.setattr(fast, "INPUT_ROW_BLOCKS", row_blocks)  # ... or one input row per block (stride 1 along H)
    geom = ConvGeometry.create((5, 4, 11, 9), (6, 4 // groups, 3, 2), stride, padding, dilation, groups)
    x, w, dy = _conv_data(geom, np.float64, rng)
    b = rng.standard_normal(geom.out_channels)
    y, saved = STRIDED.forward(x, w, geom, bias=b)
    y_ref, _ = NAIVE.forward(x, w, geom)
    np.testing.assert_allclose(y, y_ref + b.reshape(1, -1, 1, 1), rtol=1e-10, atol=1e-10)
    dw, db = STRIDED.grad_weight_and_bias(dy, x, geom, saved)
    np.testing.assert_allclose(dw, NAIVE.grad_weight(dy, x, geom), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(STRIDED.grad_input(dy, w, geom, saved), NAIVE.grad_input(dy, w, geom),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("limit", [None, 1])              # 1 byte: over the workspace limit, batch in chunks
@pytest.mark.parametrize("need", [(True, True, True), (False, True, True), (True, False, False), (True, True, False),
                                  (False, False, True)])
def test_one_pass_backward_equals_the_separate_gradients(rng, need, limit):
    geom = ConvGeometry.create((5, 4, 10, 9), (6, 2, 3, 3), stride=(1, 2), padding=1, groups=2)
    x, w, dy = _conv_data(geom, np.float64, rng)
    _, saved = STRIDED.forward(x, w, geom)
    before = conv.get_workspace_limit()
    if limit:
        conv.set_workspace_limit(limit)
    try:
        dx, dw, db = STRIDED.backward(dy, x, w, geom, None if limit else saved, *need)
    finally:
        conv.set_workspace_limit(before)
    need_x, need_w, need_b = need
    assert (dx is None, dw is None, db is None) == (not need_x, not need_w, not need_b)
    if need_x:
        np.testing.assert_allclose(dx, NAIVE.grad_input(dy, w, geom), rtol=1e-10, atol=1e-10)
    if need_w:
        np.testing.assert_allclose(dw, NAIVE.grad_weight(dy, x, geom), rtol=1e-10, atol=1e-10)
    if need_b:
        np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)


def test_fused_bias_equals_adding_it_afterwards(rng):
    geom = ConvGeometry.create((6, 3, 12, 12), (5, 3, 5, 5), padding=2)
    x, w, dy = _conv_data(geom, np.float32, rng)
    b = rng.standard_normal(5).astype(np.float32)
    y_fused, saved = STRIDED.forward(x, w, geom, bias=b)
    y_plain, _ = STRIDED.forward(x, w, geom)
    # the bias joins the dot products ([W | b] @ [cols; 1]): equal up to float32 rounding of the sums
    scale = np.abs(y_plain).max()
    np.testing.assert_allclose(y_fused, y_plain + b.reshape(1, -1, 1, 1), rtol=0, atol=4e-7 * scale)
    assert y_fused.dtype == np.float32
    dw, db = STRIDED.grad_weight_and_bias(dy, x, geom, saved)
    dw_alone = STRIDED.grad_weight(dy, x, geom, saved)
    np.testing.assert_allclose(dw, dw_alone, rtol=0, atol=4e-7 * np.abs(dw_alone).max())
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\) and dtype float32"):
        STRIDED.forward(x, w, geom, bias=b.astype(np.float64))


def test_outputs_are_batch_last_and_either_memory_order_gives_the_same_numbers(rng):
    geom = ConvGeometry.create((4, 2, 9, 9), (3, 2, 3, 3), padding=1)
    x, w, dy = _conv_data(geom, np.float64, rng)
    y, saved = STRIDED.forward(x, w, geom)
    assert y.shape == geom.y_shape and is_batch_last(y)
    y2, saved2 = STRIDED.forward(to_batch_last(x), w, geom)
    np.testing.assert_array_equal(y, y2)
    dx = STRIDED.grad_input(dy, w, geom, saved)
    np.testing.assert_array_equal(dx, STRIDED.grad_input(to_batch_last(dy), w, geom, saved2))
    assert is_batch_last(dx)


@pytest.mark.parametrize("shape", [(32, 3, 8, 12), (9, 2, 7, 5), (16, 4, 1, 64), (3, 2, 5, 5), (8, 1, 28, 28)])
@pytest.mark.parametrize("source", ["c_order", "view", "batch_last"])
def test_copy_to_batch_last_moves_every_number(rng, shape, source):
    from strided.windows import copy_to_batch_last
    base = rng.standard_normal((shape[0], shape[1], shape[2] * 2, shape[3])).astype(np.float32)
    x = {"c_order": base[:, :, :shape[2]].copy(), "view": base[:, :, ::2],
         "batch_last": to_batch_last(base[:, :, :shape[2]])}[source]
    dst = np.full((shape[1], shape[2], shape[3], shape[0]), np.nan, np.float32)
    copy_to_batch_last(dst, x)                                  # two passes through a tile, or one copy
    np.testing.assert_array_equal(dst, x.transpose(1, 2, 3, 0))
    y = to_batch_last(x)
    assert is_batch_last(y) or shape[0] == 1
    np.testing.assert_array_equal(y, x)


def test_layers_keep_the_batch_last_order_from_conv_to_flatten():
    model = models.lenet5()
    h = bench.random_batch(8)[0]
    for layer in list(model)[:6]:
        h = layer(h)
        assert is_batch_last(h), type(layer).__name__


# ---- buffers reused between steps -------------------------------------------------------------------


def test_reused_buffers_never_overwrite_arrays_still_in_use(rng):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2))
    x1, x2 = (rng.standard_normal((64, 1, 32, 32)).astype(np.float32) for _ in range(2))
    y1 = model(x1)
    kept = y1.copy()
    inner = model[1](model[0](x1))          # an intermediate the caller holds on to
    inner_kept = inner.copy()
    for _ in range(3):
        model(x2)
        model.backward(np.ones((64, 4, 16, 16), np.float32))
    np.testing.assert_array_equal(y1, kept)
    np.testing.assert_array_equal(inner, inner_kept)


def test_memory_reuses_a_buffer_only_once_it_is_free():
    _memory.release()
    shape = (32, 8, 32, 33)
    a = _memory.empty(shape, np.float32, batch_last=True)
    assert a.shape == shape and is_batch_last(a)
    view = a[:, 1:3]
    first, nbytes = id(a.base), a.base.nbytes     # no reference kept: that would keep the buffer busy
    del a
    b = _memory.empty(shape, np.float32, batch_last=True)
    assert id(b.base) != first                    # a's buffer is still used by the view
    del view
    c = _memory.empty(shape, np.float32)
    assert id(c.base) == first and c.flags.c_contiguous   # free again: reused
    assert _memory.kept_bytes() == 2 * nbytes
    small = _memory.empty((3, 4), np.float64)
    assert small.base is None                     # small arrays are plain np.empty


# ---- the benchmark ------------------------------------------------------------------------------------


def test_benchmark_network_matches_torch_and_the_check_fails_on_different_weights(torch):
    model, tmodel = bench.build_pair(torch)
    errors = bench.check_agreement(model, tmodel, torch, batch=8)
    assert max(errors.values()) < 1e-5
    model[0].weight.data = model[0].weight.data * 1.01
    with pytest.raises(AssertionError, match="disagree"):
        bench.check_agreement(model, tmodel, torch, batch=8)


def test_benchmark_and_profile_run_without_torch(capsys):
    assert bench.main(["--batches", "4", "--rounds", "1", "--no-torch", "--no-epoch", "--no-inference",
                       "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "strided ms/step" in out and "PyTorch" in out and "strided alone" in out
    assert bench.profile_main(["--batches", "4", "--steps", "2", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "0 Conv2d" in out and "whole step" in out


def test_interleaved_timing_alternates_and_counts_rounds():
    calls = []
    out = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3,
                            warmup=0.0, round_seconds=0.0)
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3}
    # after the warm-up (3 calls and one timed estimate each), round 2 starts with b: the order alternates
    timed = calls[8:]
    per_round = len(timed) // 3
    assert timed[0] == "a" and timed[per_round] == "b" and timed[2 * per_round] == "a"


def test_sgd_step_through_the_benchmark_equals_torchs(torch):
    model, tmodel = bench.build_pair(torch)
    x, y = bench.random_batch(8)
    ours, theirs = bench.strided_step(model, x, y), bench.torch_step(torch, tmodel, x, y)
    for _ in range(3):
        ours()
        theirs()
    tparams = dict(tmodel.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.data, tparams[name].detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_optimizer_keeps_float32(rng):
    model = models.lenet5()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = bench.random_batch(4)
    crit = nn.CrossEntropyLoss()
    crit(model(x), y)
    model.backward(crit.backward())
    opt.step()
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
