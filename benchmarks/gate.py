"""A CI speed gate: each changed built-in strategy A/B-measured against its code at a base git ref.

Comparing this run's numbers with numbers measured earlier fails on shared machines:
two identical runs here differed by 34-54%, so such a gate needs a threshold near
40-60% and catches only ~2.5x slowdowns. This gate measures both versions in one
process instead, interleaved in short blocks (``mfbench ab``'s engine,
:mod:`mfbench.run.ab`), so both see the same load:

1. ``plugins/`` at the merge-base of BASE_REF and HEAD (what this branch changed) is
   unpacked from ``git archive`` as the package ``mfbench_gate_base``;
2. every built-in strategy module whose file differs between BASE_REF and the
   working tree is A/B-measured: BASE = the strategies of ``mfbench_gate_base.MODULE``
   (with ``mfbench.plugins.MODULE`` blocked), NEW = this checkout's;
3. first, one A/A control -- ``CONTROL`` against itself -- checks that the machine is
   quiet enough for the gate to mean something.

::

    python benchmarks/gate.py                        # against main
    python benchmarks/gate.py --base-ref origin/main --threshold 10
    python benchmarks/gate.py --strategies numba als # these, changed or not

Exit status: 0 when nothing is slower by more than the threshold; 1 when a strategy
is (or could not train on one side); 3 when a measurement -- or the A/A control --
is too noisy to rule a slowdown out (rerun, or run with more --blocks); 2 on a usage
problem (no git, unknown ref). A BASE module that does not load with this checkout's
core counts as too noisy to tell (3): the gate cannot say.

What it cannot see: a change in mfbench's core (``mfbench/``) is the same on both
sides, since both import this checkout's core; absolute imports inside a plugin
module (``from mfbench.plugins.x import``) also reach NEW's code. It gates the
strategies' own code. Measured on the shared 2-core machine (benchmarks/noise_study.py,
``results/noise-study-cpu-2core.json``): 0 false alarms in 40 A/A measurements, and a
1.25x slowdown caught 40 times out of 40, with and without a concurrent busy loop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import torch
from tabulate import tabulate

import mfbench
from mfbench.errors import unknown_name
from mfbench.plugin.manager import DEFAULT_PLUGINS
from mfbench.plugin.registry import collect
from mfbench.run.ab import plan_side, run_ab
from mfbench.run.plan import RunConfig
from mfbench.stats.verdict import NOISY, SLOWER, could_be_slower_than, decide

ROOT = Path(__file__).resolve().parents[1]
BASE_PACKAGE = "mfbench_gate_base"
BUILTIN_PREFIX = "mfbench.plugins."
DATASET = "lowrank[n_users=300,n_items=200,nnz=6000]"
#: Tried in order: the first model a strategy trains (libmf and implicit-als decline the biased one).
MODELS = ("biased", "dot")
#: The A/A control: a fast, steady strategy.
CONTROL = "vectorized"
#: Fail when NEW is slower by more than this many percent.
THRESHOLD = 10.0
BLOCKS, BLOCK_SECONDS = 10, 0.1
#: Stop starting new measurements after this many seconds (the rest are listed as not measured).
BUDGET_S = 240.0
EXIT_NOISY = 3


@dataclass
class Outcome:
    strategy: str
    module: str
    verdict: str
    ratio: str = ""
    note: str = ""
    failed: bool = False
    undecided: bool = False


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def unpack_base(ref: str, folder: Path) -> None:
    """``plugins/`` at ``ref`` as the importable package ``BASE_PACKAGE`` under ``folder``."""
    archive = git("archive", "--format=tar", ref, "plugins")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "plugins").rename(folder / BASE_PACKAGE)


def changed_modules(ref: str) -> list[str]:
    """Built-in plugin modules (``mfbench.plugins.X``) whose file differs between ``ref`` and the working tree."""
    names = git("diff", "--name-only", ref, "--", "plugins").decode().split()
    modules = {BUILTIN_PREFIX + ".".join(Path(n).with_suffix("").parts[1:]) for n in names if n.endswith(".py")}
    return sorted(m for m in modules if m in DEFAULT_PLUGINS)


def strategies_of(module: str) -> list[str]:
    """The strategy names a plugin module registers (empty when it does not import, e.g. new since the ref)."""
    try:
        pm = mfbench.make_plugin_manager([module], defaults=False, entry_points=False, env=False)
    except mfbench.MfbenchError:
        return []
    return sorted(collect(pm).strategies)


def module_of(strategy: str) -> str:
    strategies = collect(mfbench.make_plugin_manager(entry_points=False, env=False)).strategies
    if strategy not in strategies:
        raise mfbench.SelectionError(unknown_name("strategy", strategy, strategies))
    return strategies[strategy].plugin


def measure(strategy: str, base_plugins: list[str], threshold: float, blocks: int) -> Outcome:
    config = RunConfig(epochs=1, repeats=1, warmup=1)
    module = base_plugins[-1] if base_plugins else "(same code)"
    try:
        base_pm = mfbench.make_plugin_manager(base_plugins, entry_points=False, env=False)
    except Exception as exc:  # BASE's module may need a core this checkout does not have
        return Outcome(strategy, module, "not measured", note=f"BASE does not load here: {exc!r}"[:160], undecided=True)
    declined = []
    for model in MODELS:
        base = None  # this model's BASE side, once planned
        try:
            base = plan_side("BASE", base_pm, DATASET, model, strategy, "cpu", config)
            new = plan_side(
                "NEW", mfbench.make_plugin_manager(entry_points=False, env=False), DATASET, model, strategy, "cpu", config
            )
            if base.case.strategy.entry.cls.unavailable:
                return Outcome(strategy, module, "not measured", note=f"unavailable: {base.case.strategy.entry.cls.unavailable}")
            result = run_ab(base, new, blocks=blocks, block_seconds=BLOCK_SECONDS)
            break
        except mfbench.MfbenchError as exc:
            # BASE runs first: a BASE that declines this model (skip) is tried on the next one;
            # a NEW that declines what BASE trained is a change, and fails.
            if base is not None and base.record is not None and base.record["status"] == "skipped":
                declined.append(f"{model}: {base.record['reason']}")
                continue
            return Outcome(strategy, module, "FAILED", note=str(exc)[:160], failed=True)
    else:
        return Outcome(strategy, module, "not measured", note=f"declines every gate model ({'; '.join(declined)})"[:160])
    verdict = decide(result.interval, threshold)
    where = "" if model == MODELS[0] else f", on {model} ({declined[0]})"
    outcome = Outcome(strategy, module, verdict, result.interval.describe(), f"{result.seconds:.0f} s{where}"[:160])
    outcome.failed = verdict == SLOWER
    outcome.undecided = verdict == NOISY and could_be_slower_than(result.interval, threshold)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-ref", default="main", help="the git ref BASE's plugin code comes from (default %(default)s)")
    parser.add_argument(
        "--strategies", nargs="+", metavar="NAME", help="measure these, changed or not (default: the changed ones)"
    )
    parser.add_argument(
        "--threshold", type=float, default=THRESHOLD, help="fail beyond this slowdown, in percent (default %(default)s)"
    )
    parser.add_argument("--blocks", type=int, default=BLOCKS, help="block pairs per measurement (default %(default)s)")
    parser.add_argument(
        "--budget", type=float, default=BUDGET_S, help="seconds after which no new measurement starts (default %(default)s)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a script that owns its process: one thread is steadier on shared machines
    try:
        git("rev-parse", "--verify", f"{args.base_ref}^{{commit}}")
    except (OSError, subprocess.CalledProcessError):
        print(
            f"gate: cannot resolve git ref {args.base_ref!r} in {ROOT}; give --base-ref (fetch it first in CI)", file=sys.stderr
        )
        return 2
    base_commit = git("merge-base", args.base_ref, "HEAD").decode().strip()  # what this branch changed, not what REF gained
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        unpack_base(base_commit, Path(folder))
        sys.path.insert(0, folder)
        if args.strategies:
            try:
                jobs = [(name, module_of(name)) for name in args.strategies]
            except mfbench.MfbenchError as exc:
                print(f"gate: {exc}", file=sys.stderr)
                return 2
        else:
            jobs = [(name, module) for module in changed_modules(base_commit) for name in strategies_of(module)]
        outcomes = [measure(CONTROL, [], args.threshold, args.blocks)]
        outcomes[0].strategy += " (A/A control)"
        for name, module in jobs:
            if time.perf_counter() - started > args.budget:
                outcomes.append(Outcome(name, module, "not measured", note=f"over the {args.budget:g} s budget"))
                continue
            short = module[len(BUILTIN_PREFIX) :]
            base_module = f"{BASE_PACKAGE}.{short}"
            if name not in strategies_of(base_module):
                outcomes.append(Outcome(name, module, "new", note=f"not in {base_commit[:10]}"))
                continue
            outcomes.append(measure(name, [f"no:{module}", base_module], args.threshold, args.blocks))
    rows = [[o.strategy, o.module, o.ratio, o.verdict, o.note] for o in outcomes]
    print(tabulate(rows, headers=["strategy", "plugin", "NEW/BASE speed [95%]", "verdict", "note"], disable_numparse=True))
    failed = [o for o in outcomes if o.failed]
    undecided = [o for o in outcomes if o.undecided]
    print(
        f"\ngate: BASE = plugins/ at {base_commit[:10]} (merge-base of {args.base_ref} and HEAD), NEW = this checkout; "
        f"{DATASET}, {' or '.join(MODELS)} (the first each strategy trains); fail beyond "
        f"{args.threshold:g}% slower; {len(jobs)} strateg(ies) measured in {time.perf_counter() - started:.0f} s."
    )
    if failed:
        print(f"gate: FAILED: {', '.join(o.strategy for o in failed)}")
        return 1
    if undecided:
        print(f"gate: too noisy to rule out a slowdown for {', '.join(o.strategy for o in undecided)}: rerun, or raise --blocks")
        return EXIT_NOISY
    print("gate: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
