"""A class in real Chromium: a student joins with the class code and a name and is shown their
personal link once; their page follows only their own runs and offers no change on another's; a
personal link opened in a browser that is someone else asks first; the teacher's Class view. At
1280 x 900 and 390 x 844, with axe-core finding nothing."""
import json
import re
import threading

from helpers import POLL_WAIT_MS, axe_violations, expect, fake_run, show_view

CODE = "ROOM-12"
TEACHER = "teacher-token-for-the-page-test"


class Beating:
    """Keeps a fake run's heartbeat fresh (this process beats for it) while the test reads the page."""

    def __init__(self, run_path):
        from mnist_monitor.runstore.liveness import Claim, this_process_beat

        self.path, self.claim, self.beat = run_path, Claim(**json.loads((run_path / "claim.json").read_text())), this_process_beat
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        from mnist_monitor.runstore.files import atomic_write_json

        while not self.stopped.wait(1.0):
            atomic_write_json(self.path / "heartbeat.json", self.beat(self.claim).to_dict(), durable=False)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(5)


def class_server(server_factory, tiny_mnist):
    server = server_factory(tiny_mnist, extra_args=["--class", "--class-code", CODE, "--token", TEACHER])
    code, ben = server.request("POST", "/class/join", {"code": CODE, "name": "Ben"})
    assert code == 201, ben
    return server, ben


def join_in_page(page, name):
    """Joins through the form; the personal link the page shows."""
    page.fill("#join-code", "room 12")
    page.fill("#join-name", name)
    page.click("#join-button")
    expect(page.locator("#joined")).to_be_visible()
    link = page.input_value("#joined-link")
    assert "/?token=" in link
    return link


def test_a_student_joins_and_sees_only_their_own_runs_to_follow_and_change(browser, server_factory, tiny_mnist):
    from mnist_monitor.runstore import RunStore

    server, ben = class_server(server_factory, tiny_mnist)
    store = RunStore(server.runs_dir, create=False)
    ben_done = fake_run(store, owner=ben["id"])
    ben_live = fake_run(store, state="running", beat="this", owner=ben["id"])
    with Beating(store.run(ben_live).path):
        for number, (width, height) in enumerate(((1280, 900), (390, 844))):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.goto(server.url)
            expect(page.locator("#join")).to_be_visible()
            expect(page.locator(".views-nav")).to_be_hidden()  # nothing to see before joining
            assert axe_violations(page) == [], width
            page.fill("#join-code", "WRONG-CODE")
            page.fill("#join-name", "Ana")
            page.click("#join-button")
            expect(page.locator("#join-error")).to_contain_text("not this class's code")
            expect(page.locator("#join-code")).to_have_attribute("aria-invalid", "true")
            page.fill("#join-code", "room 12")
            page.fill("#join-name", "ben")
            page.click("#join-button")
            expect(page.locator("#join-error")).to_contain_text("is taken")
            errors.clear()  # the two refusals above were answered 403 and 409, as they should be
            join_in_page(page, f"Ana {number}")
            assert axe_violations(page) == [], width
            page.click("#joined-continue")
            expect(page.locator("#who")).to_contain_text(f"Signed in as Ana {number}")
            expect(page.locator("a[data-nav=class]")).to_be_hidden()  # the teacher's view only
            # Ben's run trains, and is in her run table (runs are shared), but her page never follows it
            show_view(page, "runs")
            ben_row = page.locator(f"tr[data-run-id='{ben_live}']")
            expect(ben_row).to_be_visible(timeout=POLL_WAIT_MS)
            expect(page.locator(f"tr[data-run-id='{ben_done}'] td[data-column=owner]")).to_have_text("Ben")
            for row in (ben_row, page.locator(f"tr[data-run-id='{ben_done}']")):
                buttons = row.locator("td.actions button")
                assert [buttons.nth(i).inner_text() for i in range(buttons.count())] == ["open", "re-run"]
            assert axe_violations(page) == [], width
            for view in ("sweeps", "explore"):  # her other views: nothing of Ben's to change, nothing for axe
                show_view(page, view)
                assert axe_violations(page) == [], (view, width)
            expect(page.locator("#explore-run-note")).to_contain_text("No run has a checkpoint yet")
            show_view(page, "train")
            expect(page.locator("#state")).to_have_text("idle")
            assert page.evaluate("() => document.body.innerText").count(ben_live) == 0
            page.locator("a[data-nav=runs]").click()
            page.locator(f"tr[data-run-id='{ben_live}'] button", has_text="open").click()
            expect(page.locator("#run-meta")).to_contain_text(ben_live, timeout=POLL_WAIT_MS)  # read-only
            expect(page.locator("#stop")).to_be_disabled()
            assert axe_violations(page) == [], width
            assert errors == [], errors
            context.close()
        mine = server.request("GET", "/runs", headers={"Authorization": f"Bearer {TEACHER}"})[1]["runs"]
        assert {r["run_id"]: r["state"] for r in mine}[ben_live] == "running"  # no student stopped it
        teacher = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        teacher.goto(f"{server.url}/?token={TEACHER}&view=runs")
        head = teacher.locator("#runs-head th")
        expect(head.filter(has_text="Owner")).to_have_count(1)
        expect(teacher.locator(f"tr[data-run-id='{ben_live}'] td")).to_have_count(head.count())  # a heading each
        asked = []
        teacher.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        teacher.locator(f"tr[data-run-id='{ben_live}'] button", has_text="stop").click()
        expect(teacher.locator(f"tr[data-run-id='{ben_live}'] .state")).to_have_text("stopping", timeout=POLL_WAIT_MS)
        assert asked and asked[0].startswith("Stop Ben's run")
        assert teacher.evaluate("() => document.querySelector('#runs-table').scrollWidth") <= \
            teacher.evaluate("() => document.querySelector('#runs-table').parentElement.clientWidth")


def test_a_personal_link_asks_before_it_replaces_who_a_browser_is_and_the_teacher_sees_the_class(browser, server_factory,
                                                                                                 tiny_mnist):
    from mnist_monitor.runstore import RunStore

    server, ben = class_server(server_factory, tiny_mnist)
    ben_done = fake_run(RunStore(server.runs_dir, create=False), owner=ben["id"])
    teacher_h = {"Authorization": f"Bearer {TEACHER}"}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server.url)
    join_in_page(page, "Ana")
    page.click("#joined-continue")
    expect(page.locator("#who")).to_contain_text("Signed in as Ana")
    other_tab = context.new_page()
    other_tab.goto(server.url)
    expect(other_tab.locator("#who")).to_contain_text("Signed in as Ana")
    # Ben's run, read-only; the teacher stops sharing: the page says so (not "the server is not reachable")
    show_view(page, "runs")
    page.locator(f"tr[data-run-id='{ben_done}'] button", has_text="open").click()
    expect(page.locator("#viewing")).to_contain_text("Ben's run, read-only", timeout=POLL_WAIT_MS)
    assert server.request("PATCH", "/class", {"share_runs": False}, teacher_h)[0] == 200
    expect(page.locator("#status-note")).to_contain_text("no longer shares the runs", timeout=POLL_WAIT_MS)
    expect(page.locator("#connection")).to_be_hidden()
    expect(page.locator("#viewing")).to_be_hidden()
    server.request("PATCH", "/class", {"share_runs": True}, teacher_h)

    ben_link = f"{server.url}/?token={ben['token']}"
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()
    page.once("dialog", lambda d: answer(d, False))
    page.goto(ben_link)
    expect(page.locator("#who")).to_contain_text("Signed in as Ana")  # she said no
    assert asked == ["This browser is signed in as Ana. Continue as Ben instead?"]
    assert "token" not in page.url  # the token leaves the address bar either way
    page.once("dialog", lambda d: answer(d, True))
    page.goto(ben_link)
    expect(page.locator("#who")).to_contain_text("Signed in as Ben")
    expect(other_tab.locator("#who")).to_contain_text("Signed in as Ben", timeout=POLL_WAIT_MS)  # the other tab too
    assert server.request("PATCH", f"/class/students/{ben['id']}", {"name": "Benjamin"}, teacher_h)[0] == 200
    expect(page.locator("#who")).to_have_text(re.compile("Signed in as Benjamin"), timeout=POLL_WAIT_MS)

    teacher = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    teacher.goto(f"{server.url}/?token={TEACHER}")
    expect(teacher.locator("#who")).to_contain_text("teacher")
    show_view(teacher, "class")
    expect(teacher.locator("#class-code")).to_have_text(CODE)
    expect(teacher.locator("#class-rows tr")).to_have_count(2)
    assert axe_violations(teacher) == []
    teacher.once("dialog", lambda d: d.accept())
    teacher.locator("button[aria-label='new link for Benjamin']").click()
    expect(teacher.locator("#class-new-link textarea")).to_have_value(re.compile(r"/\?token=\S{20,}"))
    expect(teacher.locator("#class-new-link button")).to_have_text("Copy")
    # Ben's browser no longer signs in: it says why, instead of "the server is not reachable"
    expect(page.locator("#join-error")).to_contain_text("made you a new personal link", timeout=POLL_WAIT_MS)
    new_link = teacher.locator("#class-new-link textarea").input_value()
    page.goto(new_link)
    expect(page.locator("#who")).to_contain_text("Signed in as Benjamin")
    teacher.once("dialog", lambda d: d.accept())
    teacher.locator("button[aria-label='remove Benjamin']").click()
    expect(teacher.locator("#class-rows")).to_contain_text("Benjamin (removed)")
    assert server.request("GET", "/class/me", headers={"Authorization": f"Bearer {ben['token']}"})[0] == 401
    teacher.locator("#class-joining").uncheck()
    expect(teacher.locator("#class-joining")).not_to_be_checked()
    assert server.request("POST", "/class/join", {"code": CODE, "name": "Cleo"})[0] == 403
    assert axe_violations(teacher) == []
    context.close()


def scored_run(store, owner: str, accuracy: float) -> str:
    run_id = fake_run(store, owner=owner)
    path = store.run(run_id).path / "status.json"
    status = json.loads(path.read_text())
    status["models"][0]["best_test_accuracy"] = accuracy
    path.write_text(json.dumps(status))
    return run_id


def test_the_board_ranks_the_class_a_student_hands_a_run_in_and_the_teacher_sees_it(browser, server_factory,
                                                                                     tiny_mnist):
    from mnist_monitor.runstore import RunStore

    server, ben = class_server(server_factory, tiny_mnist)
    code, ana = server.request("POST", "/class/join", {"code": CODE, "name": "Ana"})
    store = RunStore(server.runs_dir, create=False)
    scored_run(store, ben["id"], 99.1)
    ana_run = scored_run(store, ana["id"], 98.4)
    for width, height in ((1280, 900), (390, 844)):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.goto(f"{server.url}/?token={ana['token']}")
        show_view(page, "board")
        rows = page.locator("#leaderboard-rows tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("Ben")
        expect(rows.nth(1)).to_contain_text("you (Ana)")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # nothing wider than the phone
        assert axe_violations(page) == [], width
        page.context.close()
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/?token={ana['token']}&view=runs")
    row = page.locator(f"tr[data-run-id='{ana_run}']")
    row.locator("button", has_text="hand in").click()
    expect(row.locator(".state")).to_have_text("finished · handed in", timeout=POLL_WAIT_MS)
    expect(row.locator("button", has_text="delete")).to_be_disabled()
    expect(row.locator("button", has_text="withdraw")).to_be_visible()
    teacher = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    teacher.goto(f"{server.url}/?token={TEACHER}&view=class")
    ana_row = teacher.locator("#class-rows tr", has_text="Ana")
    expect(ana_row.locator("button[aria-label='open the run Ana handed in']")).to_have_count(1)
    expect(ana_row).to_contain_text("98.40 %")
    assert axe_violations(teacher) == []
    teacher.once("dialog", lambda d: d.accept("active_runs=2, queued_runs=none"))
    ana_row.locator("button", has_text="limits").click()
    expect(teacher.locator("#class-rows tr", has_text="Ana")).to_contain_text("own limits: active runs 2, queued runs none")
    me = server.request("GET", "/class/me", headers={"Authorization": f"Bearer {ana['token']}"})[1]
    assert (me["limits"]["active_runs"], me["limits"]["queued_runs"]) == (2, None)
    teacher.locator("#class-hand-ins").uncheck()  # the deadline: Ana's page says so without her trying
    expect(row.locator("button", has_text="withdraw")).to_be_disabled(timeout=POLL_WAIT_MS)
    teacher.locator("#class-anonymous").check()
    show_view(page, "board")
    expect(page.locator("#leaderboard-rows tr").nth(0)).to_contain_text("a classmate", timeout=POLL_WAIT_MS)
    assert "Ben" not in page.locator("main").inner_text()
    page.locator("#leaderboard-rows tr").nth(0).locator("button", has_text="open").click()
    expect(page.locator("#viewing")).to_contain_text("a classmate's run, read-only", timeout=POLL_WAIT_MS)
    assert "undefined" not in page.locator("body").inner_text() and "Ben" not in page.locator("body").inner_text()
