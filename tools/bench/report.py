"""Benchmark outputs: machine/version metadata, markdown tables, JSON, log-scale plot."""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

# (cell key, column title) for the time tables, in order.
TIME_COLUMNS = [
    ("numba_primal", "Numba primal"),
    ("llad_primal", "llad primal"),
    ("llad_fwd", "llad fwd (1 dir)"),
    ("llad_fwd_batch8", "llad fwd (8 dirs)"),
    ("llad_rev", "llad reverse"),
    ("jax_grad", "JAX grad"),
    ("jax_jvp", "JAX jvp"),
    ("torch_grad", "PyTorch grad"),
    ("fd_estimate", "central FD (est.)"),
]
COMPILE_COLUMNS = [
    ("numba_compile", "Numba primal"),
    ("llad_fwd", "llad fwd"),
    ("llad_fwd_batch8", "llad fwd (8 dirs)"),
    ("llad_rev", "llad reverse"),
    ("jax_grad", "JAX grad"),
    ("jax_jvp", "JAX jvp"),
]
CHECK_COLUMNS = [
    ("jax_grad", "JAX grad"),
    ("jax_jvp", "JAX jvp"),
    ("torch_grad", "PyTorch"),
    ("llad_primal", "llad primal (value)"),
    ("llad_fwd", "llad fwd"),
    ("llad_fwd_batch8", "llad fwd (8 dirs)"),
    ("llad_rev", "llad reverse"),
]
PEER_GRADS = ("jax_grad", "torch_grad")
PLOT_TOOLS = [
    ("numba_primal", "Numba primal (reference)"),
    ("llad_rev", "llad reverse"),
    ("jax_grad", "JAX jit(grad)"),
    ("torch_grad", "PyTorch autograd"),
    ("fd_estimate", "central FD (estimated)"),
]


# ----------------------------------------------------------------------------- metadata
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor() or "unknown"
    except OSError:
        name = platform.processor() or "unknown"
    with contextlib.suppress(Exception):  # purely informative
        import llvmlite.binding as llvm

        name += f" (LLVM host cpu: {llvm.get_host_cpu_name()})"
    return name


def git_revision(path: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                             check=False, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--", "llad"],
                               check=False, capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + (" + local changes to llad/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def metadata(size: str, budget: float, extra_versions: dict[str, str]) -> dict:
    import llvmlite
    import numba
    import numpy

    versions = {"python": platform.python_version(), "numba": numba.__version__,
                "llvmlite": llvmlite.__version__, "numpy": numpy.__version__}
    versions.update(extra_versions)
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "size": size,
        "budget_s_per_measurement": budget,
        "threads": "one thread for every tool (torch.set_num_threads(1), XLA Eigen single-threaded)",
        "versions": versions,
        "repo_revision": git_revision(Path(__file__).resolve().parents[2]),
        "load_average_at_start": load_average(),
        "vector_math": _vector_math(),
    }


def _vector_math() -> str:
    try:
        import llad
        from llad import jit, vecmath
    except ImportError as exc:
        return f"llad not importable ({exc})"
    width = jit.vector_width()
    return (f"{'on' if llad.config.vector_math else 'off'}, {vecmath.describe()}; derivative loops vectorised "
            f"up to {f'{width}-bit' if width else 'LLVM’s default'} vectors (llad.jit.vector_width)")


# ----------------------------------------------------------------------------- formatting
def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}×"


class _Errors:
    """Numbers distinct error strings as footnotes [E1], [E2], ..."""

    def __init__(self):
        self.index: dict[str, int] = {}
        self.where: dict[str, dict[str, list[str]]] = {}

    def ref(self, err: str, kernel: str, key: str) -> str:
        n = self.index.setdefault(err, len(self.index) + 1)
        keys = self.where.setdefault(err, {}).setdefault(kernel, [])
        if key not in keys:
            keys.append(key)
        return f"error [E{n}]"

    def lines(self) -> list[str]:
        out = []
        for err, n in self.index.items():
            first = err.strip().splitlines()[0] if err.strip() else err
            if len(first) > 300:
                first = first[:300] + "…"
            where = "; ".join(f"{kernel}: {', '.join(keys)}" for kernel, keys in self.where[err].items())
            out.append(f"- **[E{n}]** {where}: `{first}`")
        return out


def _time_of(cell: dict | None, stat: str) -> float | None:
    if not cell or cell.get("error"):
        return None
    return cell.get(stat)


def _cell_text(cell: dict | None, stat: str, errors: _Errors, kernel: str, key: str) -> str:
    if not cell:
        return "-"
    if cell.get("error"):
        return errors.ref(cell["error"], kernel, key)
    text = fmt_time(cell.get(stat))
    if cell.get("ok") is False:
        text += " (wrong!)"
    return text


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def to_markdown(data: dict) -> str:
    meta, results = data["meta"], data["results"]
    errors = _Errors()
    v = meta["versions"]
    lines = [
        f"# llad benchmark ({meta['size']} sizes)",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}, {meta['cores']} cores; {meta['platform']}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- repository: {meta['repo_revision']}",
        (f"- load average (1/5/15 min) at start: {meta.get('load_average_at_start')}, at end: "
         f"{meta.get('load_average_at_end')} (on {meta['cores']} cores; above ~0.5 other work was competing "
         "for the CPUs and medians will be noisy)"),
        (f"- {meta['threads']}; each time is the fastest of adaptive repeats "
         f"(~{meta['budget_s_per_measurement']} s per measurement, at least 3 where a call takes less); "
         "first calls (compilation) are excluded and reported separately."),
        ("- llad fwd: one `Duplicated` tangent per differentiated argument; fwd (8 dirs): `BatchDuplicated` "
         "with 8 tangents; reverse: `Reverse` + `Active` return, shadows zeroed outside the timed region; "
         "llad primal: `ReverseWithPrimal` with every argument and the return `Const` (llad's copy of f, no "
         "reverse sweep)."),
        f"- llad.config.vector_math: {meta.get('vector_math', 'not recorded')} (docs/vector-math.md).",
        "- central FD (est.) = 2 × (number of differentiated inputs) × Numba primal time (computed, not run).",
    ]
    if meta.get("isolated_cells"):
        lines.append(f"- {len(meta['isolated_cells'])} measurement(s) crashed or hung the worker process and "
                     "were skipped in a fresh one (see Errors)")
    lines += [
        "",
        "## Fastest time per call",
        "",
    ]
    header = ["kernel", "inputs", "n diff"] + [t for _, t in TIME_COLUMNS]
    rows = []
    for r in results:
        rows.append([r["kernel"], r["shapes"], str(r["n_in"])]
                    + [_cell_text(r["cells"].get(k), "min_s", errors, r["kernel"], k)
                       for k, _ in TIME_COLUMNS])
    lines += _table(header, rows)

    lines += ["", "## Ratios (fastest times)", ""]
    header = ["kernel", "llad primal / Numba", "llad rev / primal", "llad fwd / primal", "llad fwd8 / primal",
              "JAX grad / primal", "PyTorch / primal", "FD / primal", "best peer grad", "llad rev / best peer",
              "llad fwd / JAX jvp", "llad fwd8 / (8 × fwd)"]
    rows = []
    summary = {"beats": [], "rev": [], "fwd": [], "fwd8": []}
    for r in results:
        c = r["cells"]
        t = {k: _time_of(c.get(k), "min_s") for k, _ in TIME_COLUMNS}
        wrong = {k for k in t if (c.get(k) or {}).get("ok") is False}
        peers = {k: t[k] for k in PEER_GRADS if t[k] is not None and k not in wrong}
        best = min(peers, key=peers.get) if peers else None

        def ratio(num: str, den: str | None, factor: float = 1.0, t=t, wrong=wrong) -> str:
            value = _ratio(t[num], factor * t[den] if den and t[den] is not None else None)
            text = fmt_ratio(value)
            return text + " (wrong!)" if value is not None and ({num, den} & wrong) else text

        for key, num in (("rev", "llad_rev"), ("fwd", "llad_fwd"), ("fwd8", "llad_fwd_batch8")):
            if t[num] is not None and t["numba_primal"] and num not in wrong:
                summary[key].append(t[num] / t["numba_primal"])
        if best and t["llad_rev"] is not None and "llad_rev" not in wrong:
            summary["beats"].append(t["llad_rev"] < peers[best])
        rows.append([
            r["kernel"],
            ratio("llad_primal", "numba_primal"),
            ratio("llad_rev", "numba_primal"),
            ratio("llad_fwd", "numba_primal"),
            ratio("llad_fwd_batch8", "numba_primal"),
            ratio("jax_grad", "numba_primal"),
            ratio("torch_grad", "numba_primal"),
            ratio("fd_estimate", "numba_primal"),
            f"{dict(TIME_COLUMNS)[best]} {fmt_time(peers[best])}" if best else "-",
            ratio("llad_rev", best),
            ratio("llad_fwd", "jax_jvp"),
            ratio("llad_fwd_batch8", "llad_fwd", 8.0),
        ])
    lines += _table(header, rows)
    if summary["rev"]:
        med = sorted(summary["rev"])[len(summary["rev"]) // 2] if len(summary["rev"]) % 2 else \
            sum(sorted(summary["rev"])[len(summary["rev"]) // 2 - 1:len(summary["rev"]) // 2 + 1]) / 2
        lines += ["", "Summary (fastest times): llad's reverse gradient is faster than the fastest peer's gradient on "
                  f"{sum(summary['beats'])} of {len(summary['beats'])} kernels; reverse / primal median "
                  f"{med:.2f}×, max {max(summary['rev']):.2f}×"
                  + (f"; forward (1 dir) / primal max {max(summary['fwd']):.2f}×" if summary["fwd"] else "")
                  + (f"; forward (8 dirs) / primal max {max(summary['fwd8']):.2f}×" if summary["fwd8"] else "")
                  + "."]

    lines += ["", "## Median time per call", ""]
    header = ["kernel"] + [t for k, t in TIME_COLUMNS if k != "fd_estimate"]
    rows = [[r["kernel"]] + [_cell_text(r["cells"].get(k), "median_s", errors, r["kernel"], k)
                             for k, _ in TIME_COLUMNS if k != "fd_estimate"] for r in results]
    lines += _table(header, rows)

    lines += ["", "## First-call overhead (compilation): first call minus fastest call", ""]
    header = ["kernel"] + [t for _, t in COMPILE_COLUMNS]
    rows = [[r["kernel"]] + [_cell_text(r["cells"].get(k), "compile_s", errors, r["kernel"], k)
                             for k, _ in COMPILE_COLUMNS] for r in results]
    lines += _table(header, rows)

    lines += ["", ("## Correctness (relative error against the reference; `fd` = finite differences "
                   "on sampled coordinates or along the tangent)"), ""]
    header = ["kernel", "value", "reference"] + [t for _, t in CHECK_COLUMNS]
    rows = []
    for r in results:
        row = [r["kernel"], f"{r['value']:.8g}", r.get("reference", "-")]
        for k, _ in CHECK_COLUMNS:
            cell = r["cells"].get(k)
            if not cell:
                row.append("-")
            elif cell.get("error"):
                row.append(errors.ref(cell["error"], r["kernel"], k))
            else:
                row.append(cell.get("check") or "-")
        rows.append(row)
    lines += _table(header, rows)

    if errors.index:
        lines += ["", "## Errors", ""] + errors.lines()
    return "\n".join(lines) + "\n"


def write_json(data: dict, path: str) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n")


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = data["results"]
    kernels = [r["kernel"] for r in results]
    nt = len(PLOT_TOOLS)
    height = 0.8 / nt
    fig, ax = plt.subplots(figsize=(10, 2.0 + 0.12 * nt * len(kernels)))
    longest = 1e-6
    for j, (key, label) in enumerate(PLOT_TOOLS):
        ys, xs, missing = [], [], []
        for i, r in enumerate(results):
            y = i + (j - (nt - 1) / 2) * height
            t = _time_of(r["cells"].get(key), "min_s")
            if t is None:
                cell = r["cells"].get(key)
                if cell and cell.get("error"):
                    missing.append(y)
            else:
                ys.append(y)
                xs.append(t)
                longest = max(longest, t)
        bars = ax.barh(ys, xs, height=height, label=label,
                       hatch="//" if key == "fd_estimate" else None, alpha=0.85)
        colour = bars.patches[0].get_facecolor() if bars.patches else None
        for y in missing:
            ax.text(1.05e-6, y, f"{label}: error", va="center", fontsize=6, color=colour)
    ax.set_xscale("log")
    ax.set_xlim(1e-6, longest * 5)
    ax.set_yticks(range(len(kernels)), kernels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per gradient (fastest of repeats, log scale)")
    meta = data["meta"]
    ax.set_title(f"Gradient time per kernel ({meta['size']} sizes), {meta['date'][:10]}\n"
                 f"{meta['machine']}, one thread", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
