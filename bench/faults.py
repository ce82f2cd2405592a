"""Every kind of bad input and fault dlmia has been tried with, and what happened, counted.

Bad inputs (tests/fault_cases.py) run here, in-process, each in a scratch folder: the outcome is
"handled" when the command ended with exit code 2, one `dlmia: error:` line holding the expected
words, no traceback and nothing written. Faults during or between runs (kills, corrupt files,
a second driver, hostile downloads) need Ray or servers: they are listed with the test that
reproduces each, and `--run-faults` runs those tests too.

    .venv/bin/python bench/faults.py                 # the table and the counts
    .venv/bin/python bench/faults.py --run-faults    # ... and the fault tests (minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fault_cases import CASES, Case, outcome, prepare  # noqa: E402

#: (fault, how it is recovered, the test that reproduces it)
FAULTS: tuple[tuple[str, str, str], ...] = (
    ("second driver on the same output folder", "exit 2 naming the holder",
     "tests/test_lock.py"),
    ("lock left by a killed driver", "taken over with a warning", "tests/test_lock.py"),
    ("driver SIGKILLed mid-grid", "rerun resumes, finished cells untouched",
     "tests/test_grid_runner.py::test_killed_driver_resumes_without_recomputing"),
    ("driver SIGTERMed mid-grid", "ends as Ctrl-C does (exit 143), rerun resumes",
     "tests/test_lock.py::test_a_second_grid_driver_fails_and_the_first_ends_resumably_on_sigterm"),
    ("driver SIGKILLed mid-search", "rerun resumes from the trial records",
     "tests/test_grid_search.py::test_killed_search_resumes_without_redoing_finished_trials"),
    ("pickle planted in the output folder", "never loaded",
     "tests/test_grid_search.py::test_killed_search_resumes_without_redoing_finished_trials"),
    ("search interrupted by SIGUSR1", "SearchInterrupted, rerun resumes",
     "tests/test_search.py::test_interrupted_search_resumes"),
    ("side or cell raising", "retried, then recorded failed with its traceback",
     "tests/test_grid_runner.py::test_injected_failures_are_retried_then_recorded"),
    ("failed cell's error", "last line and whole traceback recorded",
     "tests/test_error_records.py"),
    ("truncated side-cache arrays", "reported, trained again",
     "tests/test_recovery.py::test_corrupt_cache_entries_are_reported_and_trained_again"),
    ("side-cache arrays deleted", "reported, trained again",
     "tests/test_recovery.py::test_corrupt_cache_entries_are_reported_and_trained_again"),
    ("side-cache JSON corrupt", "reported, trained again",
     "tests/test_recovery.py::test_corrupt_cache_entries_are_reported_and_trained_again"),
    ("side-cache entries swapped", "misses, warned, trained again",
     "tests/test_cache.py::test_swapped_entries_are_misses_with_a_warning_never_the_other_side"),
    ("side-cache arrays edited, lists index pointed elsewhere", "misses, trained again",
     "tests/test_cache.py::test_edited_arrays_and_a_wrong_lists_index_are_misses"),
    ("a finished cell's scores file deleted", "the cell runs again and rewrites it",
     "tests/test_outputs.py::test_a_cell_missing_any_of_its_files_is_not_finished"),
    ("a searched cell's trials file deleted", "rebuilt from the trial records, none redone",
     "tests/test_grid_search.py::test_searched_cells_write_every_trial_and_mark_the_selected_one"),
    ("Optuna journal torn (last record cut)", "cut back to whole records, search resumes",
     "tests/test_grid_search.py::test_a_torn_journal_is_repaired_and_the_search_resumes_from_its_records"),
    ("Optuna journal damaged mid-file", "cut there, lost trials restored from records",
     "tests/test_journal.py::test_a_study_gets_back_the_trials_a_cut_took_from_the_records"),
    ("driver killed while appending to the journal", "no stale lock: the next run appends at once",
     "tests/test_journal.py::test_an_append_lock_dies_with_its_holder"),
    ("Optuna journal damaged, read by analyze", "no importances, a warning, no traceback",
     "tests/test_journal.py::test_analysis_reads_a_damaged_journal_without_a_traceback"),
    ("trial record cut short", "skipped, the trial runs again",
     "tests/test_recovery.py::test_an_unreadable_trial_record_is_skipped_so_the_trial_runs_again"),
    ("trial scores replaced by a pickle", "refused, the trial runs again",
     "tests/test_recovery.py::test_trial_scores_are_never_unpickled"),
    ("output folder stops taking writes mid-run", "one line, rerun resumes",
     "tests/test_recovery.py::test_an_output_folder_that_stops_taking_writes_ends_the_run_resumably"),
    ("search resumed after an interruption", "the dead run's Tune folder removed",
     "tests/test_search.py::test_interrupted_search_resumes"),
    ("analyze on a read-only or full file system", "one line, the results unchanged",
     "tests/test_analysis.py::test_analyze_on_a_folder_it_cannot_write_is_one_line"),
    ("a local run's listening sockets", "loopback only", "tests/test_listening.py"),
    ("the test suite's own Ray", "started as runs start theirs: loopback only",
     "tests/test_listening.py::test_the_suites_own_ray_listens_on_loopback_only"),
    ("download redirected to another host", "refused, nothing kept", "tests/test_data_fetch.py"),
    ("download truncated", "refused, nothing kept", "tests/test_data_fetch.py"),
    ("download with the wrong content", "checksum refused, nothing kept",
     "tests/test_data_fetch.py"),
    ("download larger than expected", "cut off, refused", "tests/test_data_fetch.py"),
    ("duplicate rows in a ratings file", "removed with a counted warning",
     "tests/test_data_loaders.py"),
)


def check(case: Case) -> tuple[bool, int, str]:
    """Run `case` in a scratch folder: (handled, exit code, last stderr line)."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        argv = prepare(case, tmp)
        before = set(tmp.rglob("*"))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = outcome(argv, case.env)
            except Exception:  # noqa: BLE001 (a crash is an outcome to report, not to stop at)
                code = -1
                traceback.print_exc()
        text = err.getvalue()
        lines = text.strip().splitlines() or [""]
        handled = (
            code == 2 and "Traceback" not in text and lines[-1].startswith("dlmia: error: ")
            and sum(line.startswith("dlmia: error") for line in lines) == 1
            and case.message in lines[-1] and len(lines[-1]) < 1100
            and set(tmp.rglob("*")) == before
        )
        return handled, code, lines[-1].replace(folder, "TMP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-faults", action="store_true", help="also run the fault tests")
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    print(f"{'group':<15} {'bad input':<42} {'ok':<3} {'exit':<4} message")
    for case in CASES:
        handled, code, line = check(case)
        counts[case.group] += 1
        counts["handled"] += handled
        mark = "yes" if handled else "NO"
        print(f"{case.group:<15} {case.name[:42]:<42} {mark:<3} {code:<4} {line[:110]}")
    print()
    print(f"{'fault':<46} {'outcome':<44} test")
    for fault, result, test in FAULTS:
        print(f"{fault:<46} {result:<44} {test}")
    print()
    groups = ", ".join(f"{group}: {n}" for group, n in counts.items() if group != "handled")
    print(f"bad inputs: {len(CASES)} tried, {counts['handled']} handled ({groups})")
    print(f"faults: {len(FAULTS)} kinds, each reproduced by a test")
    print(f"total: {len(CASES) + len(FAULTS)} kinds of bad input and fault")
    if args.run_faults:
        tests = sorted({test for _, _, test in FAULTS})
        command = [sys.executable, "-m", "pytest", "-q", *tests]
        sys.exit(subprocess.call(command, cwd=ROOT))


if __name__ == "__main__":
    main()
