"""The fuzzer's long profile: random kernels (tests/fuzz/grammar.py) checked by tests/fuzz/check.py.

    python tools/fuzz.py --n 2000                 # 2000 kernels, a random seed, a summary at the end
    python tools/fuzz.py --n 500 --seed 7 --chunk 100 --max-statements 5 --max-depth 3 --no-library

Kernels are checked in worker processes of --chunk kernels each (every compiled kernel stays in memory,
so a worker is replaced before it grows large; a worker that crashes, e.g. a segmentation fault in
llad's code, is reported with the kernel it was checking and the run goes on).  Every failing kernel is
written to tests/fuzz/regressions/ (unless --no-save) with XFAIL set, so that tests/test_fuzz.py runs
it as a strict xfail until the bug is fixed: triage it, then delete the XFAIL line.  The exit status
is 1 when any kernel failed.

    python tools/fuzz.py --reduce tests/fuzz/regressions/k_<key>.py   # shrink a failing kernel

A long campaign runs in the background and resumes where it stopped (chunks of --chunk kernels, each with
its own seed, kept as tests/fuzz/campaign/<name>/chunk-<seed>.jsonl once complete):

    python tools/fuzz.py --campaign c10k --n 10000 --chunk 50 --seed 100000 --nested --guard-memory --custom
    python tools/fuzz.py --campaign c10k --report docs/fuzz-campaign.md    # counts per mode, refusals

Linear algebra (np.dot, @, np.linalg.norm/solve/inv/det/slogdet/cholesky): by default a statement is one
with probability fuzz.grammar.LINALG_WEIGHT; `--focus blas` puts one in every kernel and raises the
weight (a run that exercises llad's BLAS/LAPACK rules), `--linalg-weight P` sets it, 0 turns them off.
The summary counts outcomes per linear-algebra feature, refusals by message, and the modes checked.
`--focus recursion` gives every kernel one or two scalar helpers that call themselves (llad differentiates
each call as a call to its own derivative of the helper, llad/recursion.py), and calls one.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def worker(args) -> None:
    """Check args.n kernels drawn with Hypothesis seed args.seed; one JSON line per kernel on stdout."""
    sys.path.insert(0, TESTS)
    import warnings
    warnings.simplefilter("ignore")
    import fuzz.check
    from fuzz.check import EXTRA_MODES_EVERY, FAIL, UNSUPPORTED, check_kernel, save_regression
    from fuzz.grammar import kernels
    from hypothesis import HealthCheck, Phase, given, seed, settings

    import llad  # noqa: F401  (before anything is compiled: llad records Numba's IR)

    assert fuzz.check.EXTRA_MODES_EVERY == 1
    fuzz.check.NESTED_EVERY = 1 if args.nested else 0
    if args.parallel:                                # the fuzzer's small kernels take the parallel sweep too
        import llad.parallel
        llad.parallel._MIN_ITERATIONS_PER_THREAD = 1
    saved_kinds: set = set()

    @seed(args.seed)
    @settings(max_examples=args.n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(kernels(max_statements=args.max_statements, max_depth=args.max_depth, library=args.library,
                   linalg=args.linalg_weight, force_linalg=args.focus == "blas",
                   recursion=args.focus == "recursion", custom=args.custom, parallel=args.parallel))
    def run(kernel):
        with open(args.current, "w") as fh:          # for the parent, should this process die
            json.dump({"source": kernel.source, "spec": kernel.spec_dict()}, fh)
        t0 = time.perf_counter()
        try:
            outcome = check_kernel(kernel)
            status, message = outcome.status, outcome.message
        except Exception as e:                       # noqa: BLE001 - a checker error is a failure too
            outcome, status, message = None, FAIL, f"the checker raised {type(e).__name__}: {e}"
        rec = {"status": status, "key": kernel.key, "seconds": time.perf_counter() - t0,
               "features": sorted(kernel.features), "extra": int(kernel.key, 16) % EXTRA_MODES_EVERY == 0}
        if outcome is not None and "nested" in outcome.numbers:
            rec["nested"] = outcome.numbers["nested"]
        if outcome is not None and "noneed" in outcome.numbers:
            rec["noneed"] = outcome.numbers["noneed"]
        if status == UNSUPPORTED:
            rec["message"] = message.splitlines()[0] if message else ""
        if status == FAIL:
            rec["message"] = message.splitlines()[0] if message else ""
            rec["report"] = outcome.report() if outcome else message + "\n" + kernel.source
            kind = _kind(rec["message"])
            if args.save and outcome is not None and kind not in saved_kinds:
                saved_kinds.add(kind)                # one regression file per kind of failure and worker
                rec["saved"] = _save(outcome, save_regression)
        print(json.dumps(rec), flush=True)
        if log:                                      # every record, for runs stopped before their summary
            with open(log, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    log = args.log or os.environ.get("LLAD_FUZZ_LOG")
    run()


def run_chunk(args, chunk_seed: int, n: int, log: str | None) -> tuple[list, dict | None]:
    """Check n kernels drawn with chunk_seed in a worker process: (their records, the crash or None).  A
    worker that dies is reported with the kernel it was checking; the chunk's other kernels are skipped."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as cur:
        current = cur.name
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--n", str(n), "--seed", str(chunk_seed),
           "--max-statements", str(args.max_statements), "--max-depth", str(args.max_depth),
           "--current", current, "--linalg-weight", str(args.linalg_weight)] + \
        ([] if args.save else ["--no-save"]) + ([] if args.library else ["--no-library"]) + \
        (["--focus", args.focus] if args.focus else []) + (["--log", log] if log else []) + \
        (["--nested"] if args.nested else []) + (["--custom"] if args.custom else []) + \
        (["--parallel"] if args.parallel else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    recs = []
    for line in proc.stdout:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        recs.append(rec)
        if rec["status"] == "fail":
            print(f"  FAIL {rec['key']}: {rec['message']}" + (f" -> {rec['saved']}" if rec.get("saved") else ""),
                  flush=True)
    rc = proc.wait()
    crash = None
    if rc != 0:
        try:
            with open(current) as fh:
                last = json.load(fh)
        except (OSError, json.JSONDecodeError):
            last = {"source": "<unknown>", "spec": {}}
        crash = {"rc": rc, "seed": chunk_seed, **last}
        print(f"  CRASH: worker exited with {rc} while checking a kernel (chunk seed {chunk_seed})", flush=True)
    os.unlink(current)
    return recs, crash


_CAMPAIGN_SETTINGS = ("n", "chunk", "seed", "max_statements", "max_depth", "library", "focus", "linalg_weight",
                      "nested", "guard_memory", "custom", "parallel")


def campaign(args) -> int:
    """Run the chunks of campaign args.campaign not yet complete, in seed order, until its n kernels are
    checked; or, with --report, write its report.  Each complete chunk is one file of records with, first,
    a header line (seed, llad revision, wall time); an interrupted chunk leaves nothing and runs again."""
    folder = os.path.join(os.environ.get("LLAD_FUZZ_CAMPAIGNS", os.path.join(TESTS, "fuzz", "campaign")),
                          args.campaign)
    os.makedirs(folder, exist_ok=True)
    settings_path = os.path.join(folder, "settings.json")
    if os.path.exists(settings_path):
        with open(settings_path) as fh:
            settings = json.load(fh)
        for k in _CAMPAIGN_SETTINGS:
            setattr(args, k, settings.get(k, False))
    else:
        if args.report:
            print(f"no campaign {args.campaign}", file=sys.stderr)
            return 2
        if args.linalg_weight is None:
            sys.path.insert(0, TESTS)
            from fuzz.grammar import LINALG_WEIGHT
            args.linalg_weight = 0.5 if args.focus == "blas" else LINALG_WEIGHT
        if args.seed is None:
            args.seed = int.from_bytes(os.urandom(3), "little") * 1000
        settings = {k: getattr(args, k) for k in _CAMPAIGN_SETTINGS}
        with open(settings_path, "w") as fh:
            json.dump(settings, fh, indent=1)
    if args.guard_memory:
        os.environ["LLAD_GUARD_MEMORY"] = "1"
    args.save = False                            # failures are kept in the chunk files with their reports
    chunks = [(args.seed + i, min(args.chunk, args.n - i * args.chunk))
              for i in range((args.n + args.chunk - 1) // args.chunk)]
    if args.report:
        return campaign_report(folder, settings, chunks, args.report)
    t_start = time.time()
    todo = [(seed, n) for seed, n in chunks if not os.path.exists(os.path.join(folder, f"chunk-{seed}.jsonl"))]
    lock = threading.Lock()

    def one(chunk_seed: int, n: int) -> None:
        path = os.path.join(folder, f"chunk-{chunk_seed}.jsonl")
        t0 = time.time()
        revision = _revision()                   # per chunk: a campaign spans commits
        recs, crash = run_chunk(args, chunk_seed, n, None)
        if crash is not None:
            recs.append({"status": "crash", "key": _source_key(crash["source"]), "seconds": 0.0, "features": [],
                         "message": f"worker exited with {crash['rc']}",
                         "report": f"spec: {crash['spec']}\n{crash['source']}"})
        header = {"chunk_seed": chunk_seed, "kernels": n, "revision": revision, "seconds": round(time.time() - t0, 1)}
        with open(path + ".part", "w") as fh:
            fh.write(json.dumps(header) + "\n")
            for rec in recs:
                fh.write(json.dumps(rec) + "\n")
        os.replace(path + ".part", path)
        stats = collections.Counter(r["status"] for r in recs)
        with lock:
            print(f"  chunk {chunk_seed}: {dict(stats)} in {header['seconds']:.0f} s "
                  f"({time.time() - t_start:.0f} s this run)", flush=True)

    # chunks are independent worker processes: --jobs of them at once (each writes only its own file)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for fut in [pool.submit(one, seed, n) for seed, n in todo]:
            fut.result()
    return 0


def _revision() -> str:
    """llad's commit, with `+dirty` when its sources differ from it."""
    git = ["git", "-C", ROOT]
    rev = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "llad", "tests/fuzz/check.py",
                                  "tests/fuzz/grammar.py"], capture_output=True, text=True).stdout.strip()
    return rev + ("+dirty" if dirty else "")


def _campaign_records(folder: str, chunks) -> tuple[list, list]:
    headers, recs = [], []
    for chunk_seed, _ in chunks:
        path = os.path.join(folder, f"chunk-{chunk_seed}.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            lines = [json.loads(ln) for ln in fh if ln.strip()]
        headers.append(lines[0])
        recs += lines[1:]
    return headers, recs


def campaign_report(folder: str, settings: dict, chunks, out: str) -> int:
    """The campaign's report as markdown: kernels by outcome, per mode, nested, refusals by reason."""
    headers, recs = _campaign_records(folder, chunks)
    stats = collections.Counter(r["status"] for r in recs)
    modes = _mode_counts(recs)
    nested = collections.Counter("refused" if r["nested"].startswith("refused") else r["nested"]
                                 for r in recs if "nested" in r)
    nested_refused = collections.Counter(_reason(r["nested"]) for r in recs
                                         if r.get("nested", "").startswith("refused"))
    if settings.get("nested"):                   # float64 kernels that reached the check
        row = modes.setdefault("nested", collections.Counter())
        row["passed"] = nested.get("ok", 0)
        for k in ("refused", "skip-fd"):
            if nested.get(k):
                row[k] = nested[k]
    refused = collections.Counter(_kind(r.get("message", "")) for r in recs if r["status"] == "unsupported")
    revisions = sorted({h["revision"] for h in headers})
    lines = [
        f"# Fuzz campaign `{os.path.basename(folder)}`",
        "",
        f"Produced by `python tools/fuzz.py --campaign {os.path.basename(folder)} --report <this file>` from the "
        f"chunk files in `tests/fuzz/campaign/{os.path.basename(folder)}/` (resume the run with "
        f"`python tools/fuzz.py --campaign {os.path.basename(folder)}`).",
        "",
        f"- settings: {json.dumps(settings)}",
        f"- progress: **{len(recs)} of {settings['n']} kernels** checked, in {len(headers)} of {len(chunks)} chunks "
        f"(chunk seeds {headers[0]['chunk_seed'] if headers else '-'}.."
        f"{headers[-1]['chunk_seed'] if headers else '-'}), "
        f"{sum(h['seconds'] for h in headers) / 3600:.1f} h of wall time",
        f"- llad revisions the chunks ran at: {', '.join(revisions) or '-'}",
        "",
        "## Outcomes",
        "",
        "| outcome | kernels | meaning |",
        "|---|---|---|",
    ]
    meaning = {"ok": "every mode agrees with every other and with central differences",
               "skip-fd": "every mode agrees; differences not compared (a kink or non-smooth point near x)",
               "raises": "f itself raises at the drawn inputs: llad raises the same",
               "skip-nonfinite": "f's value is not finite at the drawn inputs",
               "unsupported": "llad refuses with a DifferentiationError (by reason below)",
               "known-bug": "a known, documented gap", "fail": "**a wrong derivative or a checker error**",
               "crash": "**the worker process died**"}
    for st in ("ok", "skip-fd", "raises", "skip-nonfinite", "unsupported", "known-bug", "fail", "crash"):
        lines.append(f"| {st} | {stats.get(st, 0)} | {meaning[st]} |")
    lines += ["", "## Per mode", "", "Each kernel runs check.py's checks in this order and stops at its first "
              "failure; split mode and `@njit` run on every kernel of a campaign; `noneed` (Forward with "
              "DuplicatedNoNeed arrays against Duplicated) counts the kernels checked since that check exists.", "",
              "| mode | passed | failed | other |", "|---|---|---|---|"]
    for m, c in modes.items():
        other = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("passed", "failed")) or "-"
        lines.append(f"| {m} | {c.get('passed', 0)} | {c.get('failed', 0)} | {other} |")
    if settings.get("nested"):
        lines += ["", "## Nested (forward over reverse, against differences of the gradient)", "",
                  "float64 kernels that passed every other check: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(nested.items())) or "-"), "",
                  "| kernels | refused because |", "|---|---|"]
        lines += [f"| {n} | {kind.replace('|', '/')} |" for kind, n in nested_refused.most_common()]
    lines += ["", "## Refusals by reason", "", "| kernels | reason |", "|---|---|"]
    for kind, n in refused.most_common():
        lines.append(f"| {n} | {kind.replace('|', '/')} |")
    bad = [r for r in recs if r["status"] in ("fail", "crash")]
    for r in bad:
        if r["key"] == "-":                      # a crash recorded before crash records had a key
            r["key"] = _source_key(r.get("report", "").split("\n", 1)[-1])
    fixed = {}                                   # key -> how it was fixed (the campaign's fixed.json)
    if os.path.exists(os.path.join(folder, "fixed.json")):
        with open(os.path.join(folder, "fixed.json")) as fh:
            fixed = json.load(fh)
    if bad:
        lines += ["", "## Failures and crashes", "",
                  f"{sum(r['key'] in fixed for r in bad)} of {len(bad)} fixed since (the chunk files keep what "
                  "happened; `fixed.json` in the campaign's folder says where each was fixed).", ""]
        for r in bad:
            lines += [f"### {r['key']}: {r.get('message', '')}", ""]
            if r["key"] in fixed:
                lines += [f"**Fixed**: {fixed[r['key']]}", ""]
            lines += ["```", r.get("report", "")[:3000], "```", ""]
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"{len(recs)} kernels: {dict(stats)}")
    return 0


def _source_key(source: str) -> str:
    """A kernel's key (tests/fuzz/grammar.py's Kernel.key) from its source."""
    import hashlib
    return hashlib.sha1(source.encode()).hexdigest()[:16]


def _reason(message: str) -> str:
    """A refusal grouped by its error class and what it says after the location: `ActivityError: an active
    value is stored into memory llad cannot give a shadow to ...` (operand names and kernel keys dropped)."""
    import re
    m = re.match(r"(?:refused: )?(\w+Error): cannot differentiate (.*?) at <[^>]*>:\d+(?: \(in \w+\))?: (.*)", message)
    if m is None:
        return _kind(message)
    what = re.sub(r"%[\w.]+|[0-9]+", "#", m.group(2))
    return f"{m.group(1)}: {what[:60]}: {m.group(3).split(' (')[0][:120]}"     # the record cut the rest


def _kind(message: str) -> str:
    """A failure's kind: its message without numbers, names of values and file paths."""
    import re
    return re.sub(r"[0-9]+|%[\w.]+|/\S+", "#", message)[:120]


def _save(outcome, save_regression) -> str:
    path = save_regression(outcome)
    with open(path) as fh:
        text = fh.read()
    reason = (outcome.message.splitlines()[0] if outcome.message else "failure").replace('"', "'")
    text = text.replace('# XFAIL = "llad bug: ..."   (set while the bug is open)',
                        f'XFAIL = "found by tools/fuzz.py, not yet triaged: {reason}"')
    with open(path, "w") as fh:
        fh.write(text)
    return os.path.relpath(path, ROOT)


# the check a failure message comes from (check.py's messages), for the per-mode counts
# (first match wins: split mode's and @njit's messages name the ReverseWithPrimal call they are compared with)
_MODES = (("split mode", "split"), ("inside @njit", "njit"), ("DuplicatedNoNeed", "noneed"),
          ("nested:", "nested"), ("ReverseWithPrimal", "reverse"), ("ForwardWithPrimal", "forward"),
          ("reverse primal", "reverse"),
          ("reverse:", "reverse"), ("forward primal", "forward"), ("forward:", "forward"),
          ("dot-product", "dot-test"), ("BatchDuplicated", "batch"), ("finite differences", "finite-differences"),
          ("non-finite derivative", "dot-test"))
_MODE_ORDER = ("reverse", "forward", "dot-test", "batch", "finite-differences", "split", "njit")


def _mode(message: str) -> str:
    for needle, mode in _MODES:
        if needle in message:
            return mode
    return "other"


def _mode_counts(recs) -> dict:
    """Per mode (the checks of check.py, in order): kernels that passed it, and failures in it.  A
    kernel that is ok or skip-fd passed all of them (finite differences: only when ok); split and @njit
    run on every kernel in this tool (EXTRA_MODES_EVERY = 1)."""
    out = {m: collections.Counter() for m in _MODE_ORDER}
    out["noneed"] = collections.Counter()        # checked since it exists: counted where a record says so
    for rec in recs:
        st = rec["status"]
        if rec.get("noneed") == "ok":
            out["noneed"]["passed"] += 1
        if st in ("ok", "skip-fd"):
            for m in _MODE_ORDER:
                if m == "finite-differences":
                    out[m]["passed" if st == "ok" else "skipped (kink)"] += 1
                elif m not in ("split", "njit") or rec.get("extra", True):
                    out[m]["passed"] += 1
        elif st in ("fail", "known-bug") and "message" in rec:
            failed = _mode(rec["message"])
            out.setdefault(failed, collections.Counter())["failed"] += 1
            for m in _MODE_ORDER[:_MODE_ORDER.index(failed)] if failed in _MODE_ORDER else ():
                out[m]["passed"] += 1
    return out


def _breakdown(recs) -> None:
    """Refusals by message, outcomes per linear-algebra feature, and per mode."""
    refused = collections.Counter(_kind(rec["message"]) for rec in recs if rec["status"] == "unsupported")
    if refused:
        print("refused (unsupported) by message:")
        for kind, n in refused.most_common():
            print(f"  {n:5d}  {kind}")
    linalg = sorted({f for rec in recs for f in rec["features"] if f.startswith(("blas", "lapack", "linalg"))})
    if linalg:
        print("outcomes per linear-algebra feature (kernels):")
        for f in linalg:
            c = collections.Counter(rec["status"] for rec in recs if f in rec["features"])
            print(f"  {f:22s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print("per mode (check.py's checks, in order; a kernel stops at its first failure):")
    for m, c in _mode_counts(recs).items():
        print(f"  {m:19s} " + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "-"))
    nested = collections.Counter(_reason(r["nested"]) if r["nested"].startswith("refused") else r["nested"]
                                 for r in recs if "nested" in r)
    if nested:
        print("nested (forward over reverse against differences of the gradient):")
        for k, n in nested.most_common():
            print(f"  {n:5d}  {k}")


def reduce(path: str, out: str | None = None) -> int:
    """Shrink a regression file: delete lines and whole blocks of the kernel while it still fails the
    same way (same kind of message); writes the result next to it (…_min.py) and prints it."""
    sys.path.insert(0, TESTS)
    import dataclasses
    import re
    import warnings
    warnings.simplefilter("ignore")
    from fuzz.check import FAIL, check_kernel, load_regression, regression_text

    import llad  # noqa: F401

    kernel, _ = load_regression(path)
    first = check_kernel(kernel)
    if first.status != FAIL:
        print(f"{path}: does not fail ({first.status})")
        return 1
    target = _kind(first.message.splitlines()[0])
    print(f"reducing {path}: {target}", flush=True)

    def fails(lines) -> bool:
        k = dataclasses.replace(kernel, source="\n".join(lines) + "\n")
        try:
            compile(k.source, "<reduce>", "exec")
        except SyntaxError:
            return False
        o = check_kernel(k)
        return o.status == FAIL and _kind(o.message.splitlines()[0]) == target

    lines = kernel.source.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("def kern")) + 1
    changed = True
    while changed:
        changed = False
        i = len(lines) - 1
        while i >= start:
            ln = lines[i]
            if (ln.strip().startswith("return s") and ln.startswith("    return")) or \
                    re.fullmatch(r"\s*c\d+ \+= 1", ln):    # keep the final return and while counters
                i -= 1
                continue
            ind = len(ln) - len(ln.lstrip())
            j = i + 1                                  # the line and the block it opens
            while j < len(lines) and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > ind:
                j += 1
            for cand in (lines[:i] + lines[j:], lines[:i] + lines[i + 1:]):
                if cand != lines and fails(cand):
                    lines, changed = cand, True
                    break
            i = min(i, len(lines)) - 1
    small = dataclasses.replace(kernel, source="\n".join(lines) + "\n")
    outcome = check_kernel(small)
    out = out or path[:-3] + "_min.py"
    with open(out, "w") as fh:
        fh.write(regression_text(outcome))
    print(outcome.report())
    print(f"written to {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="number of kernels (default 2000)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first chunk (default: random)")
    p.add_argument("--chunk", type=int, default=200, help="kernels per worker process (default 200)")
    p.add_argument("--max-statements", type=int, default=4)
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--no-library", dest="library", action="store_false",
                   help="no NumPy reductions (np.sum, np.max, np.sort, ...) in the kernels")
    p.add_argument("--focus", choices=("blas", "recursion"), default=None,
                   help="blas: a linear-algebra statement in every kernel, and more of them; recursion: "
                        "every kernel has one or two scalar helpers that call themselves")
    p.add_argument("--linalg-weight", type=float, default=None,
                   help="probability that a statement is np.dot / @ / np.linalg.* (default "
                        "fuzz.grammar.LINALG_WEIGHT; 0.5 with --focus blas; 0: none)")
    p.add_argument("--log", default=None, help="append every kernel's JSON record to this file "
                   "(also LLAD_FUZZ_LOG)")
    p.add_argument("--no-save", dest="save", action="store_false", help="do not write regression files")
    p.add_argument("--verbose", action="store_true", help="print every failure report in full")
    p.add_argument("--reduce", metavar="FILE", help="shrink a failing regression file and exit")
    p.add_argument("--summary", metavar="LOG", help="summarise the records of a --log file and exit")
    p.add_argument("--nested", action="store_true",
                   help="also check forward over reverse (a Hessian-vector product) of every float64 kernel "
                        "against differences of its gradient")
    p.add_argument("--custom", action="store_true",
                   help="every kernel also calls one or two of fuzz.helpers' functions with user derivative "
                        "rules (llad.custom_jvp / custom_vjp)")
    p.add_argument("--parallel", action="store_true",
                   help="every kernel is @njit(parallel=True) with a numba.prange reduction loop (llad "
                        "differentiates its serial copy; differences are of the parallel function)")
    p.add_argument("--guard-memory", action="store_true",
                   help="compile every derivative with llad.config.guard_memory (bounds-checked tapes, canaries "
                        "around shadows): an out-of-bounds access is a failure of its kernel")
    p.add_argument("--campaign", metavar="NAME", help="run (or resume) the campaign kept in "
                   "tests/fuzz/campaign/NAME: its settings are fixed by its first run")
    p.add_argument("--jobs", type=int, default=1, help="with --campaign: chunks checked at once, one worker "
                   "process each (default 1)")
    p.add_argument("--report", metavar="MD", help="with --campaign: write its report to MD and exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--current", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.guard_memory:
        os.environ["LLAD_GUARD_MEMORY"] = "1"      # read by llad at import, in every worker process
    if args.worker:
        worker(args)
        return 0
    if args.reduce:
        return reduce(args.reduce)
    if args.campaign:
        return campaign(args)
    if args.summary:
        with open(args.summary) as fh:
            recs = [json.loads(ln) for ln in fh if ln.strip()]
        stats = collections.Counter(rec["status"] for rec in recs)
        print(f"{len(recs)} kernels: " + ", ".join(f"{k} {v}" for k, v in stats.most_common()))
        _breakdown(recs)
        for rec in recs:
            if rec["status"] == "fail":
                print(f"  FAIL {rec['key']}: {rec['message']}")
        return 0
    if args.linalg_weight is None:
        sys.path.insert(0, TESTS)
        from fuzz.grammar import LINALG_WEIGHT
        args.linalg_weight = 0.5 if args.focus == "blas" else LINALG_WEIGHT

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    stats, features = collections.Counter(), collections.Counter()
    failures, crashes, seconds, recs = [], [], [], []
    t0 = time.time()
    done, c = 0, 0
    print(f"llad fuzz: {args.n} kernels, seed {seed}, chunks of {args.chunk}, max statements "
          f"{args.max_statements}, max depth {args.max_depth}, NumPy calls {'on' if args.library else 'off'}, "
          f"linear algebra {args.linalg_weight}" + (" in every kernel" if args.focus == "blas" else ""), flush=True)
    while done < args.n:
        n = min(args.chunk, args.n - done)
        chunk_recs, crash = run_chunk(args, seed + c, n, args.log)
        for rec in chunk_recs:
            recs.append(rec)
            stats[rec["status"]] += 1
            features.update(rec["features"])
            seconds.append(rec["seconds"])
            if rec["status"] == "fail":
                failures.append(rec)
        if crash is not None:
            crashes.append({"chunk": c, **crash})
            stats["crash"] += 1
        done += max(len(chunk_recs) + (crash is not None), 1) if crash is None else n
        c += 1
        print(f"  {done}/{args.n} kernels, {time.time() - t0:.0f} s: {dict(stats)}", flush=True)

    total = sum(stats.values())
    print("\n=== llad fuzz summary ===")
    print(f"kernels checked : {total} (seed {seed}) in {time.time() - t0:.0f} s, "
          f"{(sum(seconds) / max(len(seconds), 1)):.2f} s per kernel")
    for status in ("ok", "skip-fd", "raises", "skip-nonfinite", "unsupported", "known-bug", "fail", "crash"):
        print(f"  {status:15s} {stats.get(status, 0)}")
    print("features exercised (kernels): " + ", ".join(f"{f} {n}" for f, n in sorted(features.items())))
    _breakdown(recs)
    kinds = collections.Counter(_kind(rec["message"]) for rec in failures)
    if kinds:
        print("failures by kind:")
        for kind, n in kinds.most_common():
            print(f"  {n:5d}  {kind}")
    shown = set()
    for rec in failures:
        kind = _kind(rec["message"])
        if kind in shown and not args.verbose:
            continue
        shown.add(kind)
        print("\n--- failure ---")
        print(rec["report"] if args.verbose else rec["report"][:3000])
    for cr in crashes:
        print(f"\n--- crash (exit {cr['rc']}, chunk seed {cr['seed']}) ---\nspec: {cr['spec']}\n{cr['source']}")
    return 1 if failures or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
