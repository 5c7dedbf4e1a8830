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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mnist_monitor.classroom.rules import DEFAULT_LIMITS, check_limits
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
# the teacher's switches and their defaults: joining, reading each other's runs, hand-ins, the class's
# leaderboard, and anonymity (no student's name shown to another student anywhere)
SETTINGS = {"joining_open": True, "share_runs": True, "hand_ins_open": True, "leaderboard": True, "anonymous": False}


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
    limits: dict = field(default_factory=dict)  # the teacher's limits for this student, over the class's

    @property
    def removed(self) -> bool:
        return self.removed_at is not None

    def public(self) -> dict:
        """What the teacher sees of a student (never the token's hash)."""
        return {"id": self.id, "name": self.name, "joined_at": self.joined_at, "removed": self.removed,
                "limits": self.limits}


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
        for key, default in SETTINGS.items():
            setattr(self, key, data.get(key, default))
        self.limits = {**DEFAULT_LIMITS, **data.get("limits", {})}  # every student's, unless set for one
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
            "version": FILE_VERSION, "code": self.code, **{key: getattr(self, key) for key in SETTINGS},
            "limits": self.limits, "students": [asdict(s) for s in self._students.values()]})

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
            student = self.present(student_id)
            if name.casefold() != student.name.casefold():
                self._refuse_taken(name)
            return self._put(replace(student, name=name))

    def remove(self, student_id: str) -> Student:
        """The student can no longer sign in; their runs stay theirs; their name is free again."""
        with self._lock:
            return self._put(replace(self.present(student_id), removed_at=time.time()))

    def reset_link(self, student_id: str) -> tuple[Student, str]:
        """A new token for a student who lost their link; the old one stops working at once."""
        token = new_token()
        with self._lock:
            return self._put(replace(self.present(student_id), token_hash=token_hash(token))), token

    def limits_of(self, owner_id: str | None) -> dict | None:
        """A student's limits (the class's, with what the teacher set for them); None for the teacher."""
        student = self._students.get(owner_id) if owner_id else None
        return {**self.limits, **student.limits} if student else None

    def settings(self, limits: dict | None = None, **switches: bool) -> None:
        """Switch SETTINGS on or off; change the class's limits (a key set to its default's None: no limit)."""
        with self._lock:
            for key, value in switches.items():
                if key not in SETTINGS:
                    raise KeyError(key)
                setattr(self, key, value)
            if limits is not None:
                self.limits = {**self.limits, **check_limits(limits)}
            self._save()

    def set_limits(self, student_id: str, limits: dict) -> Student:
        """One student's own limits (over the class's); a limit set to the class's value is dropped."""
        with self._lock:
            student = self.present(student_id)
            merged = {**student.limits, **check_limits(limits)}
            return self._put(replace(student, limits={k: v for k, v in merged.items() if self.limits.get(k) != v}))

    def present(self, student_id: str) -> Student:
        """A student who has not been removed (Refusal "unknown" otherwise)."""
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
    for key, default in SETTINGS.items():
        if not isinstance(data.get(key, default), bool):
            raise TypeError(f"{key} must be true or false")
    check_limits(data.get("limits", {}))
    ids = set()
    for entry in data["students"]:
        student = Student(**entry)
        if not (isinstance(student.id, str) and isinstance(student.token_hash, str) and len(student.token_hash) == 64
                and isinstance(student.joined_at, (int, float)) and student.id not in ids):
            raise ValueError(f"student entry {str(entry)[:80]} is malformed")
        check_name(student.name)
        check_limits(student.limits)
        ids.add(student.id)
