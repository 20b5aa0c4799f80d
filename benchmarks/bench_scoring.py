"""drc_score throughput against a straightforward NumPy reading of the four-similarity equations.

Everything is measured in one run, interleaved round by round, so the ratios hold even on a busy
machine (absolute numbers move with the neighbours' load; the ratios are what count):

- ``numpy_four_sim``: the paper's equations in NumPy: the three operator directions, then four
  GEMMs (s1, s2, sctx, srep) combined as ``w1 s1 + w2 s2 + wctx sctx - w_base rho max(srep, 0)``
  (in place, so it stays within memory; it is not handicapped by temporaries).
- ``drc_score f32`` / ``drc_score bf16``: the jitted two-GEMM form, images in f32 / bf16.
- ``two GEMMs alone``: the two essential XLA GEMMs (``q @ images.T`` and ``neg @ images.T``)
  without anything else: the floor for drc_score.
- ``two GEMMs alone bf16``: the same with bf16 operands, f32 accumulation (drc_score bf16's floor).
- the machine's GEMM rate: one (Q, D) x (D, N) f32 GEMM in NumPy (OpenBLAS) and in XLA; the best of
  the two is "this machine's GEMM rate". bf16 x bf16 -> f32 in XLA is measured on a slice of the
  images too (on a CPU with AVX512-BF16 it runs on the bf16 dot-product instructions).

Run:  .venv/bin/python -m benchmarks.bench_scoring      (Q=4096, N=50,000, D=512; ~10 min)
Writes benchmarks/results/bench_scoring_<backend>.json and prints a table.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import drc_score, drc_vectors

W1, W2, WCTX, RHO = 0.35, 0.35, 0.30, 1.5
T = np.array([1.0, 0.94, 0.92, 0.90])
W_BASE = np.array([0.0, 0.10, 0.20, 0.30])


# ------------------------------------------------------------------ the NumPy reference version
def numpy_operator(a, b, t):
    """Eq. 8 (SpaceVLM's sign), vectorised over rows: rotate a away from b when theta < 2 alpha."""
    alpha = np.arccos(t)
    theta = np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0))
    active = (theta < 2 * alpha) & (np.sin(theta) > 1e-6)
    sin_theta = np.where(active, np.sin(theta), 1.0)
    d = (np.sin(alpha + theta / 2) / sin_theta)[:, None] * a + (
        np.sin(theta / 2 - alpha) / sin_theta
    )[:, None] * b
    return np.where(active[:, None], d, a).astype(np.float32)


def numpy_four_sim(images, aff, neg, cf, full, strength):
    """The equations as written: four similarity matrices, then the weighted combination."""
    t, w_rep = T[strength], (W_BASE * RHO)[strength].astype(np.float32)
    d1 = numpy_operator(aff, neg, t)
    d2 = numpy_operator(aff, cf, t)
    dctx = numpy_operator(full, neg, t)
    s1 = d1 @ images.T
    s2 = d2 @ images.T
    sctx = dctx @ images.T
    srep = neg @ images.T
    score = W1 * s1 + W2 * s2 + WCTX * sctx - w_rep[:, None] * np.maximum(srep, 0.0)
    plain = strength == 0  # eq. 2 for captions without negation
    if plain.any():
        score[plain] = full[plain] @ images.T
    return score


def numpy_four_sim_inplace(images, aff, neg, cf, full, strength):
    """The same four GEMMs, combined in place (two (Q, N) buffers): a tuned NumPy baseline."""
    t, w_rep = T[strength], (W_BASE * RHO)[strength].astype(np.float32)
    d1 = numpy_operator(aff, neg, t)
    d2 = numpy_operator(aff, cf, t)
    dctx = numpy_operator(full, neg, t)
    out = np.matmul(d1, images.T)  # s1
    out *= W1
    s = np.matmul(d2, images.T)  # s2
    s *= W2
    out += s
    np.matmul(dctx, images.T, out=s)  # sctx
    s *= WCTX
    out += s
    np.matmul(neg, images.T, out=s)  # srep
    np.maximum(s, 0.0, out=s)
    s *= w_rep[:, None]
    out -= s
    plain = strength == 0  # eq. 2 for captions without negation
    if plain.any():
        out[plain] = full[plain] @ images.T
    return out


# ------------------------------------------------------------------ helpers
def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_case(nq, n, dim, seed=0):
    rng = np.random.default_rng(seed)
    aff = unit(rng.standard_normal((nq, dim)))
    near = lambda x, s: unit(x + s * rng.standard_normal(x.shape) / np.sqrt(dim) * 8)
    neg, cf, full = near(aff, 0.10), near(aff, 0.08), near(aff, 0.05)
    strength = rng.integers(1, 4, nq).astype(np.int32)  # NegBench: every caption is negated
    images = unit(rng.standard_normal((n, dim)))
    f32 = lambda x: np.ascontiguousarray(x, np.float32)
    return f32(images), f32(aff), f32(neg), f32(cf), f32(full), strength


def blas_info() -> dict:
    info = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=cfg.get("name"), version=cfg.get("version"))
    except Exception as e:  # noqa: BLE001 - informational only
        info["show_config_error"] = repr(e)
    libs = glob.glob(
        os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")
    )
    for lib in libs:
        try:
            so = ctypes.CDLL(lib)
            for sym in ("scipy_openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(so, sym):
                    fn = getattr(so, sym)
                    fn.restype = ctypes.c_char_p
                    info["openblas_core_kernel"] = fn().decode()
            for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
                if hasattr(so, sym):
                    info["openblas_threads"] = int(getattr(so, sym)())
        except OSError as e:
            info["load_error"] = repr(e)
    return info


def cpu_flags() -> list[str]:
    """The CPU's bf16 / AVX-512 / AMX features (they decide whether bf16 can be faster here)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    keep = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    return [f for f in flags if f in keep]


def xla_gemm(x, y):
    """(Q, D) x (N, D) -> (Q, N) in f32, contracting D with D: the form drc_score's GEMMs take."""
    return jax.lax.dot_general(x, y, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    if isinstance(out, tuple | list):
        jax.block_until_ready(out)
    elif hasattr(out, "block_until_ready"):
        out.block_until_ready()
    dt = time.perf_counter() - t0
    del out
    return dt


def flops_of(nq: int, n: int, dim: int, n_slice: int) -> dict[str, int]:
    one = 2 * nq * n * dim
    return {
        "numpy_four_sim": 4 * one,
        "numpy_four_sim_inplace": 4 * one,
        "drc_score_f32": 2 * one,
        "drc_score_bf16": 2 * one,
        "two_gemms_xla_f32": 2 * one,
        "two_gemms_xla_bf16": 2 * one,
        "gemm_numpy_f32": one,
        "gemm_xla_f32": one,
        "gemm_xla_f32_slice": 2 * nq * n_slice * dim,
        "gemm_xla_bf16_slice": 2 * nq * n_slice * dim,
    }


def summarize(times, nq, n, dim, n_slice, rounds, backend, max_err):
    """Table rows and summary ratios from per-round times; prints the table."""
    flops_per = flops_of(nq, n, dim, n_slice)
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    gflops = {k: flops_per[k] / best[k] / 1e9 for k in times}
    # This machine's GEMM rate: the best f32 GEMM rate seen anywhere in the run (a single GEMM in
    # NumPy or XLA, or the two-GEMM pair), so a busy moment in one measurement cannot inflate
    # the fractions.
    machine_gemm = max(
        gflops["gemm_numpy_f32"], gflops["gemm_xla_f32"], gflops["two_gemms_xla_f32"]
    )
    pairs = nq * n
    rows = []
    impls = (
        "numpy_four_sim",
        "numpy_four_sim_inplace",
        "drc_score_f32",
        "drc_score_bf16",
        "two_gemms_xla_f32",
        "two_gemms_xla_bf16",
    )
    # Per-round ratios: both sides of a ratio ran within a minute of each other.
    per_round = lambda a, b: [x / y for x, y in zip(times[a], times[b], strict=True)]
    for name in impls:
        rows.append(
            {
                "impl": name,
                "best_s": best[name],
                "median_s": med[name],
                "pairs_per_s": pairs / best[name],
                "speedup_vs_numpy": best["numpy_four_sim"] / best[name],
                "gflops": gflops[name],
                "fraction_of_machine_gemm": gflops[name] / machine_gemm,
            }
        )
    summary = {
        "drc_f32_speedup_vs_numpy_median_of_round_ratios": statistics.median(
            per_round("numpy_four_sim", "drc_score_f32")
        ),
        "drc_f32_speedup_vs_numpy_inplace_best": best["numpy_four_sim_inplace"]
        / best["drc_score_f32"],
        "two_gemms_share_median_of_round_ratios": statistics.median(
            per_round("two_gemms_xla_f32", "drc_score_f32")
        ),
        "bf16_speedup_median_of_round_ratios": statistics.median(
            per_round("drc_score_f32", "drc_score_bf16")
        ),
        "drc_f32_speedup_vs_numpy_best": best["numpy_four_sim"] / best["drc_score_f32"],
        "drc_f32_speedup_vs_numpy_median": med["numpy_four_sim"] / med["drc_score_f32"],
        "two_gemms_share_of_drc_f32_best": best["two_gemms_xla_f32"] / best["drc_score_f32"],
        "two_gemms_share_of_drc_f32_median": med["two_gemms_xla_f32"] / med["drc_score_f32"],
        "bf16_speedup_vs_f32_best": best["drc_score_f32"] / best["drc_score_bf16"],
        "bf16_speedup_vs_f32_median": med["drc_score_f32"] / med["drc_score_bf16"],
        "two_gemms_bf16_share_of_drc_bf16_best": best["two_gemms_xla_bf16"]
        / best["drc_score_bf16"],
        "gemm_gflops_numpy_f32": gflops["gemm_numpy_f32"],
        "gemm_gflops_xla_f32": gflops["gemm_xla_f32"],
        "gemm_gflops_xla_f32_slice": gflops["gemm_xla_f32_slice"],
        "gemm_gflops_xla_bf16_native_slice": gflops["gemm_xla_bf16_slice"],
        "machine_gemm_gflops": machine_gemm,
        "max_abs_err_vs_numpy": max_err,
    }
    print()
    print(f"Q={nq} N={n} D={dim} backend={backend}, best of {rounds} rounds (medians in JSON)")
    print("| impl | best s | median s | Mpairs/s | vs NumPy | GFLOP/s | of GEMM rate |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            r["impl"],
            f"{r['best_s']:.2f}",
            f"{r['median_s']:.2f}",
            f"{r['pairs_per_s'] / 1e6:.0f}",
            f"{r['speedup_vs_numpy']:.2f}x",
            f"{r['gflops']:.0f}",
            f"{100 * r['fraction_of_machine_gemm']:.0f}%",
        ]
        print("| " + " | ".join(cells) + " |")
    g = gflops
    print(
        f"GEMM rate (GFLOP/s): NumPy/OpenBLAS f32 {g['gemm_numpy_f32']:.0f}, XLA f32 "
        f"{g['gemm_xla_f32']:.0f}; on an {n_slice}-image slice XLA f32 "
        f"{g['gemm_xla_f32_slice']:.0f} vs XLA bf16 native dot {g['gemm_xla_bf16_slice']:.0f}"
    )
    for k, v in summary.items():
        print(f"{k}: {v:.4g}")
    return rows, summary


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_integer("q", 4096, "queries")
    flags.DEFINE_integer("n", 50_000, "images")
    flags.DEFINE_integer("d", 512, "embedding dimension")
    flags.DEFINE_integer("rounds", 5, "interleaved timing rounds (best and median reported)")
    flags.DEFINE_string(
        "from_json", None, "re-analyse the per-round times of an earlier run's JSON (no timing)"
    )
    flags.DEFINE_string(
        "out", None, "JSON path (default benchmarks/results/bench_scoring_<backend>.json)"
    )

    def run(_):
        f = flags.FLAGS
        if f.from_json:
            result = json.loads(Path(f.from_json).read_text())
            c = result["config"]
            result["rows"], result["summary"] = summarize(
                result["times_s"],
                c["Q"],
                c["N"],
                c["D"],
                c.get("n_slice", min(c["N"], 8192)),
                c["rounds"],
                result["machine"]["backend"],
                result["summary"]["max_abs_err_vs_numpy"],
            )
            Path(f.out or f.from_json).write_text(json.dumps(result, indent=2) + "\n")
            return
        backend = jax.default_backend()
        out_path = Path(f.out or f"benchmarks/results/bench_scoring_{backend}.json")
        nq, n, dim = f.q, f.n, f.d
        images, aff, neg, cf, full, strength = make_case(nq, n, dim)
        j = {k: jnp.asarray(v) for k, v in dict(aff=aff, neg=neg, cf=cf, full=full).items()}
        j_strength = jnp.asarray(strength)
        j_images = jnp.asarray(images)
        j_images16 = j_images.astype(jnp.bfloat16)
        args = (j["aff"], j["neg"], j["cf"], j["full"], j_strength)

        # Correctness first: the jitted version equals the NumPy equations on this data.
        check = slice(0, 256)
        want = numpy_four_sim(
            images, aff[check], neg[check], cf[check], full[check], strength[check]
        )
        got = np.asarray(drc_score(j_images, *(a[check] for a in args)))
        max_err = float(np.max(np.abs(got - want)))
        assert max_err < 1e-4, max_err
        got16 = np.asarray(drc_score(j_images16, *(a[check] for a in args)))
        max_err_bf16 = float(np.max(np.abs(got16 - want)))  # bf16 rounds inputs to 8 bits
        assert max_err_bf16 < 2e-2, max_err_bf16

        q_dir = jax.jit(drc_vectors)(*args).q
        q16, neg16, aff16 = (x.astype(jnp.bfloat16) for x in (q_dir, j["neg"], j["aff"]))
        gemm_xla = jax.jit(xla_gemm)
        two_gemms = jax.jit(lambda q, ng, im: (xla_gemm(q, im), xla_gemm(ng, im)))
        slice16 = j_images16[: min(n, 8192)]
        cases = {
            "numpy_four_sim": lambda: numpy_four_sim(images, aff, neg, cf, full, strength),
            "numpy_four_sim_inplace": lambda: numpy_four_sim_inplace(
                images, aff, neg, cf, full, strength
            ),
            "drc_score_f32": lambda: drc_score(j_images, *args),
            "drc_score_bf16": lambda: drc_score(j_images16, *args),
            "two_gemms_xla_f32": lambda: two_gemms(q_dir, j["neg"], j_images),
            "two_gemms_xla_bf16": lambda: two_gemms(q16, neg16, j_images16),
            "gemm_numpy_f32": lambda: np.matmul(aff, images.T),
            "gemm_xla_f32": lambda: gemm_xla(j["aff"], j_images),
            "gemm_xla_f32_slice": lambda: gemm_xla(j["aff"], j_images[: slice16.shape[0]]),
            "gemm_xla_bf16_slice": lambda: gemm_xla(aff16, slice16),
        }
        for name, fn in cases.items():  # compile and warm up the jitted ones
            if not name.startswith(("numpy", "gemm_numpy")):
                timed(fn)
        times = {k: [] for k in cases}
        for r in range(f.rounds):
            for name, fn in cases.items():
                times[name].append(timed(fn))
            print(
                f"round {r + 1}/{f.rounds}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            )

        rows, summary = summarize(times, nq, n, dim, slice16.shape[0], f.rounds, backend, max_err)
        summary["max_abs_err_bf16_vs_numpy"] = max_err_bf16
        print(f"max |drc_score bf16 - NumPy f32|: {max_err_bf16:.2g}")
        result = {
            "config": {
                "Q": nq,
                "N": n,
                "D": dim,
                "rounds": f.rounds,
                "n_slice": slice16.shape[0],
            },
            "machine": {
                "backend": backend,
                "devices": [str(dv) for dv in jax.devices()],
                "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "cpu_flags": cpu_flags(),
                "jax": jax.__version__,
                "numpy": np.__version__,
                "blas": blas_info(),
                "xla_flags": os.environ.get("XLA_FLAGS"),
                "load_avg": os.getloadavg(),
            },
            "times_s": times,
            "rows": rows,
            "summary": summary,
        }
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out_path}; BLAS: {result['machine']['blas']}")

    app.run(run, argv)


if __name__ == "__main__":
    main()
