"""A learning-rate search on the real MNIST: pruning stops the hopeless runs, the others finish,
and the importance ranks the learning rate first. (The sweep view's lines and filters are tested
in Chromium on tiny data: tests/browser/test_sweep_view.py.)"""
from helpers import wait_for


def test_a_learning_rate_search_on_mnist_prunes_and_ranks_the_learning_rate_first(tmp_path, mnist_sample, make_app):
    # 8 trials over learning rate 1e-4..0.3 (log) and seed, 2 epochs of 3,000 real training images, pruning on.
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(mnist_sample), "TESTING": True,
                    "TRAINER_OPTIONS": {"pictures": False, "layer_stats": False}})
    client = app.test_client()
    try:
        made = client.post("/sweeps", json={
            "base": {"epochs": 2, "train_samples": 3000, "models": [{"kernels": [16, 32, 32, 32]}]},
            "search": {"learning_rate": {"low": 0.0001, "high": 0.3, "log": True}, "seed": [0, 1, 2]},
            "trials": 8, "prune": "median"})
        assert made.status_code == 202, made.get_json()
        sweep_id = made.get_json()["sweep_id"]
        done = wait_for(lambda: (s := client.get(f"/sweeps/{sweep_id}").get_json())["state"] != "running" and s,
                        timeout=900, interval=1, message="the sweep to end")
    finally:
        app.extensions["sweep_driver"].close()
        app.extensions["training"].shutdown(60)
    states = [r["state"] for r in done["runs"]]
    assert done["state"] == "finished" and len(states) == 8
    assert "pruned" in states and set(states) <= {"finished", "pruned", "failed"}, states
    assert max(done["importance"], key=done["importance"].get) == "learning_rate", done["importance"]
    finished = [r for r in done["runs"] if r["state"] == "finished"]
    assert done["best_run_id"] == max(finished, key=lambda r: r["objective"])["run_id"]
    pruned = [r for r in done["runs"] if r["state"] == "pruned"]
    assert all(r["epochs_reported"] == 1 for r in pruned)  # stopped after epoch 1, before epoch 2 trained
    assert max(r["objective"] for r in pruned) <= max(r["objective"] for r in finished)
