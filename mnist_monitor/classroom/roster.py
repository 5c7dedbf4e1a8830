"""The class: who joined (a stable random id, a displayed name, a token kept only as its SHA-256),
the class code and the teacher's settings, in ``<runs>/class.json``.

This module is the only one that reads or writes that file. Every change is written at once
(atomically, synced) after the last good file is copied to ``class.json.bak``; a file that
cannot be read stops the server at start with the file named, never a silent reset (which would
lock every student out, or let anyone in).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mnist_monitor.config import NAME_CHARACTERS, NAME_MAX, NAME_PATTERN
from mnist_monitor.runstore.files import Unreadable, atomic_write_json, read_json_object

CLASS_FILE, BACKUP_FILE = "class.json", "class.json.bak"
FILE_VERSION = 1
TEACHER_ID = "teacher"  # the owner of runs no student started (the teacher's, and python train.py's)
TOKEN_BYTES = 16  # 128 random bits: a token cannot be guessed, so it is not rate limited
CODE_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: a code read aloud or off a board
CODE_LENGTH = 8  # 31^8, about 8.5e11 codes (39 bits)
CODE_PATTERN_HELP = "letters and digits, dashes and spaces ignored"
MAX_STUDENTS = 500


class ClassFileError(Exception):
    """class.json cannot be read: the server does not start (the message names the file and the backup)."""


class Refusal(Exception):
    """A class operation refused; ``kind`` says how ("code", "closed", "name", "taken", "unknown",
    "full"), ``field`` the input at fault."""

    def __init__(self, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.kind, self.field = kind, field


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    token_hash: str
    joined_at: float
    removed_at: float | None = None

    @property
    def removed(self) -> bool:
        return self.removed_at is not None

    def public(self) -> dict:
        """What the teacher sees of a student (never the token's hash)."""
        return {"id": self.id, "name": self.name, "joined_at": self.joined_at, "removed": self.removed}


def new_code() -> str:
    """A random class code, 'ABCD-EFGH': easy to read aloud and to type."""
    letters = "".join(secrets.choice(CODE_LETTERS) for _ in range(CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def normal_code(text: str) -> str:
    """A code as compared: upper case, without spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -")


def check_code(text) -> str:
    """A code the teacher chose (--class-code), as it will be shown; ValueError says what is wrong."""
    if not isinstance(text, str) or not 4 <= len(normal_code(text)) <= 32 or not normal_code(text).isalnum():
        raise ValueError(f"a class code is 4 to 32 {CODE_PATTERN_HELP}, got {str(text)[:40]!r}")
    return text.strip().upper()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_name(name, field: str = "name") -> str:
    """A student's name, checked like a model name (Refusal 'name' otherwise); outer spaces dropped."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name.strip()):
        raise Refusal("name", f"{field}: must be 1 to {NAME_MAX} {NAME_CHARACTERS}", field)
    return name.strip()


class Roster:
    """The class of the runs folder ``runs_dir`` (made with a new code the first time). ``code``:
    the code the teacher chose this start (else the code kept from the last start, else a new one)."""

    def __init__(self, runs_dir, code: str | None = None):
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(runs_dir) / CLASS_FILE
        self.backup = Path(runs_dir) / BACKUP_FILE
        self._lock = threading.Lock()
        data = self._load()
        self.code = check_code(code) if code else data.get("code") or new_code()
        self.joining_open = data.get("joining_open", True)
        self.share_runs = data.get("share_runs", True)
        self._students: dict[str, Student] = {s["id"]: Student(**s) for s in data.get("students", [])}
        self._save()

    # ---------------------------------------------------------------- the file
    def _load(self) -> dict:
        """class.json as last written ({} for a new class); ClassFileError if it is damaged."""
        try:
            data = read_json_object(self.path)
        except (Unreadable, OSError) as exc:
            raise self._damaged(str(exc)) from None
        if data is None:
            if self.backup.exists():
                raise self._damaged("it is missing, but its backup is there")
            return {}
        try:
            check_file(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._damaged(f"{type(exc).__name__}: {exc}") from None
        return data

    def _damaged(self, why: str) -> ClassFileError:
        backup = (f"; {self.backup} holds the last good write before it: copy it over {self.path} to go on from "
                  "there" if self.backup.exists() else "")
        return ClassFileError(f"the class file {self.path} cannot be read ({why}){backup}. The server does not "
                              "start rather than lock every student out or let anyone in")

    def _save(self) -> None:
        if self.path.exists():
            shutil.copyfile(self.path, self.backup)  # the last good write: _load read it, or _save wrote it
        atomic_write_json(self.path, {
            "version": FILE_VERSION, "code": self.code, "joining_open": self.joining_open,
            "share_runs": self.share_runs, "students": [asdict(s) for s in self._students.values()]})

    # ---------------------------------------------------------------- reading
    def students(self) -> list[Student]:
        """Everyone who joined, removed students too (their runs stay theirs), in joining order."""
        return list(self._students.values())

    def student(self, student_id: str) -> Student | None:
        return self._students.get(student_id)

    def name_of(self, owner_id: str | None) -> str:
        """The name shown for an owner: a student's, 'teacher' for the teacher's runs."""
        student = self._students.get(owner_id) if owner_id else None
        if student is None:
            return "teacher" if owner_id in (None, TEACHER_ID) else "unknown"
        return f"{student.name} (removed)" if student.removed else student.name

    def identify(self, token: str) -> Student | None:
        """The student whose token this is (every stored hash compared, each in constant time)."""
        presented, found = token_hash(token), None
        for student in self._students.values():
            if hmac.compare_digest(presented, student.token_hash) and not student.removed:
                found = student
        return found

    def matches(self, code) -> bool:
        return isinstance(code, str) and hmac.compare_digest(normal_code(code).encode(), normal_code(self.code).encode())

    # ---------------------------------------------------------------- changes
    def join(self, name) -> tuple[Student, str]:
        """A new student (the code was checked by the caller); (student, token). Refusal if joining
        is closed, the name is not one, or a present student has it."""
        name = check_name(name)
        with self._lock:
            if not self.joining_open:
                raise Refusal("closed", "joining is closed: ask your teacher to open it")
            self._refuse_taken(name)
            if sum(not s.removed for s in self._students.values()) >= MAX_STUDENTS:
                raise Refusal("full", f"the class is full ({MAX_STUDENTS} students)")
            token = new_token()
            student = Student(id=secrets.token_hex(8), name=name, token_hash=token_hash(token), joined_at=time.time())
            self._students[student.id] = student
            self._save()
        return student, token

    def rename(self, student_id: str, name) -> Student:
        name = check_name(name)
        with self._lock:
            student = self._present(student_id)
            if name.casefold() != student.name.casefold():
                self._refuse_taken(name)
            return self._put(replace(student, name=name))

    def remove(self, student_id: str) -> Student:
        """The student can no longer sign in; their runs stay theirs; their name is free again."""
        with self._lock:
            return self._put(replace(self._present(student_id), removed_at=time.time()))

    def reset_link(self, student_id: str) -> tuple[Student, str]:
        """A new token for a student who lost their link; the old one stops working at once."""
        token = new_token()
        with self._lock:
            return self._put(replace(self._present(student_id), token_hash=token_hash(token))), token

    def settings(self, joining_open: bool | None = None, share_runs: bool | None = None) -> None:
        with self._lock:
            if joining_open is not None:
                self.joining_open = joining_open
            if share_runs is not None:
                self.share_runs = share_runs
            self._save()

    def _present(self, student_id: str) -> Student:
        student = self._students.get(student_id)
        if student is None or student.removed:
            raise Refusal("unknown", f"no student {student_id!r} in the class")
        return student

    def _refuse_taken(self, name: str) -> None:
        if any(s.name.casefold() == name.casefold() and not s.removed for s in self._students.values()):
            raise Refusal("taken", f"name: {name!r} is taken in this class: choose another", "name")

    def _put(self, student: Student) -> Student:
        self._students[student.id] = student
        self._save()
        return student


def check_file(data: dict) -> None:
    """ValueError, KeyError or TypeError if class.json is not one this version wrote."""
    if data.get("version") != FILE_VERSION:
        raise ValueError(f"version {data.get('version')!r}, expected {FILE_VERSION}")
    check_code(data["code"])
    for key in ("joining_open", "share_runs"):
        if not isinstance(data[key], bool):
            raise TypeError(f"{key} must be true or false")
    ids = set()
    for entry in data["students"]:
        student = Student(**entry)
        if not (isinstance(student.id, str) and isinstance(student.token_hash, str) and len(student.token_hash) == 64
                and isinstance(student.joined_at, (int, float)) and student.id not in ids):
            raise ValueError(f"student entry {str(entry)[:80]} is malformed")
        check_name(student.name)
        ids.add(student.id)
