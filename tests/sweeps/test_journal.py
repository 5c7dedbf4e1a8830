"""A sweep's Optuna journal: an append is all or nothing, and a line torn by a crash is cut off
before the next append (which glued onto it: every later read raised, the sweep vanished)."""
import subprocess
import sys
import textwrap

from helpers import ROOT
from mnist_monitor.sweeps.folder import SweepStore
from mnist_monitor.sweeps.spec import parse_sweep

SPEC = {"base": {"epochs": 1, "models": [{"kernels": [2, 2, 2, 2]}]}, "grid": {"learning_rate": [0.01, 0.02]}}


def journal_of(tmp_path):
    sweep = SweepStore(tmp_path / "runs").create(parse_sweep(SPEC))
    return sweep, sweep.path / "journal.log"


def test_an_append_cut_short_by_a_file_size_limit_leaves_the_journal_as_it_was(tmp_path):
    sweep, journal = journal_of(tmp_path)
    before = journal.read_bytes()
    # another process, limited to a few bytes more than the journal has: its append is cut short
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from mnist_monitor.sweeps.folder import Sweep
        study = Sweep({str(sweep.path)!r}).study()
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 20}, resource.RLIM_INFINITY))
        try:
            study.ask()
        except OSError as exc:
            print("refused:", exc.strerror)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "refused: File too large" in result.stdout, result.stderr
    assert journal.read_bytes() == before  # nothing of the failed append stays
    study = sweep.study()
    trial = study.ask()  # the next append goes on a whole file
    study.tell(trial, 90.0)
    assert [t.value for t in sweep.study().get_trials() if t.state.name == "COMPLETE"] == [90.0]


def test_a_torn_last_line_is_cut_off_before_the_next_append(tmp_path):
    sweep, journal = journal_of(tmp_path)
    whole = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"torn')  # a crash in the middle of a line
    study = sweep.study()
    trial = study.ask()
    study.tell(trial, 80.0)
    text = journal.read_bytes()
    assert text.startswith(whole) and b"torn" not in text and text.endswith(b"\n")
    assert SweepStore(tmp_path / "runs").listing(_no_runs()) != []  # the sweep is still listed
    assert [t.value for t in sweep.study().get_trials() if t.state.name == "COMPLETE"] == [80.0]


def _no_runs():
    class NoRuns:
        def snapshot(self, run_id):
            return None
    return NoRuns()
