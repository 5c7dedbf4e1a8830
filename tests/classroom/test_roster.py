"""The class roster: joining, names, tokens kept only hashed, the teacher's changes, a restart,
and a damaged class file; and the limit on wrong class codes."""
import json

import pytest

from mnist_monitor.classroom.ratelimit import WrongCodes
from mnist_monitor.classroom.roster import (BACKUP_FILE, CLASS_FILE, ClassFileError, Refusal, Roster, check_code,
                                            new_code, normal_code, token_hash)


def test_a_new_class_has_a_readable_code_and_keeps_it_across_a_restart(tmp_path):
    roster = Roster(tmp_path)
    assert len(normal_code(roster.code)) == 8 and not set(normal_code(roster.code)) & set("01OIL")
    assert Roster(tmp_path).code == roster.code  # kept: students go on joining with the code on the board
    assert Roster(tmp_path, code="maths-7b").code == "MATHS-7B"  # --class-code replaces it
    assert Roster(tmp_path).matches("maths 7b") and Roster(tmp_path).matches("MATHS7B")
    assert not Roster(tmp_path).matches("MATHS-7C") and not Roster(tmp_path).matches(None)
    with pytest.raises(ValueError, match="4 to 32"):
        check_code("a!")
    assert new_code() != new_code()


def test_joining_gives_a_random_token_that_is_stored_only_as_its_hash(tmp_path):
    roster = Roster(tmp_path)
    ana, token = roster.join("  Ana  ")
    assert ana.name == "Ana" and len(token) >= 22  # 16 random bytes, URL-safe
    text = (tmp_path / CLASS_FILE).read_text()
    assert token not in text and token_hash(token) in text
    assert roster.identify(token) == ana and roster.identify(token + "x") is None
    ben, token2 = roster.join("Ben")
    assert ben.id != ana.id and token2 != token and roster.identify(token2) == ben


@pytest.mark.parametrize("name", ["", "   ", "a" * 41, "Ana\nBen", "<b>", None, 7])
def test_names_are_checked_like_model_names(tmp_path, name):
    with pytest.raises(Refusal) as refusal:
        Roster(tmp_path).join(name)
    assert refusal.value.kind == "name" and refusal.value.field == "name"


def test_a_name_taken_is_refused_whatever_its_case_and_a_removed_students_name_is_free(tmp_path):
    roster = Roster(tmp_path)
    ana, token = roster.join("Ana")
    with pytest.raises(Refusal, match="taken") as refusal:
        roster.join("ANA")
    assert refusal.value.kind == "taken"
    roster.remove(ana.id)
    assert roster.identify(token) is None  # a removed student cannot sign in
    new_ana, new_token = roster.join("Ana")  # a new student with the name inherits nothing
    assert new_ana.id != ana.id and roster.identify(new_token) == new_ana
    assert roster.name_of(ana.id) == "Ana (removed)" and roster.name_of(new_ana.id) == "Ana"
    assert roster.name_of(None) == "teacher"


def test_the_teacher_renames_resets_a_link_and_closes_joining(tmp_path):
    roster = Roster(tmp_path)
    ana, old = roster.join("Ana")
    roster.join("Ben")
    with pytest.raises(Refusal, match="taken"):
        roster.rename(ana.id, "ben")
    assert roster.rename(ana.id, "ANA").name == "ANA"  # her own name in another case
    _, new = roster.reset_link(ana.id)
    assert roster.identify(old) is None and roster.identify(new).id == ana.id
    roster.settings(joining_open=False, share_runs=False)
    with pytest.raises(Refusal, match="closed"):
        roster.join("Cleo")
    with pytest.raises(Refusal) as unknown:
        roster.rename("nobody", "X")
    assert unknown.value.kind == "unknown"
    again = Roster(tmp_path)  # a restart keeps everything
    assert (again.joining_open, again.share_runs) == (False, False)
    assert again.identify(new).name == "ANA" and [s.name for s in again.students()] == ["ANA", "Ben"]


@pytest.mark.parametrize("damage", [
    lambda path: path.write_text("{not json"),
    lambda path: path.write_text(json.dumps({"version": 1, "code": "ABCD-EFGH", "joining_open": "yes",
                                             "share_runs": True, "students": []})),
    lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "students": [{"id": "x"}]})),
    lambda path: path.unlink(),
])
def test_a_damaged_class_file_stops_the_start_naming_it_and_its_backup(tmp_path, damage):
    roster = Roster(tmp_path)
    _, token = roster.join("Ana")
    roster.join("Ben")  # the backup now holds the file with Ana only
    damage(tmp_path / CLASS_FILE)
    with pytest.raises(ClassFileError) as error:
        Roster(tmp_path)
    message = str(error.value)
    assert str(tmp_path / CLASS_FILE) in message and str(tmp_path / BACKUP_FILE) in message
    (tmp_path / BACKUP_FILE).replace(tmp_path / CLASS_FILE)  # what the message says to do
    assert Roster(tmp_path).identify(token).name == "Ana"


def test_wrong_codes_are_limited_per_address_and_overall():
    now = [0.0]
    limit = WrongCodes(per_address=3, overall=5, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limit.retry_after("a") == 0
        limit.count("a")
    assert limit.retry_after("a") == 60 and limit.retry_after("b") == 0
    limit.count("b")
    limit.count("c")
    assert limit.retry_after("d") == 60  # five wrong codes in the minute from everyone
    now[0] = 30.0
    assert limit.retry_after("a") == 30
    now[0] = 60.5
    assert limit.retry_after("a") == 0 and limit.retry_after("d") == 0
