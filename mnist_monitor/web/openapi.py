"""The API's OpenAPI 3.1 document (``GET /openapi.json``), built from the definitions the code
uses: the start body from ``config.request_schema`` (the validator's limits and choices), run and
model statuses from the status records' fields and types, run ids and file names from the run
store. Objects list their ``required`` keys and allow no others, so a client or a fuzzer learns
the real shapes; a test checks that the document and the URL map name the same routes."""
from __future__ import annotations

import functools
from dataclasses import MISSING, fields

from mnist_monitor.classroom.rules import LIMITS
from mnist_monitor.config import KERNEL_RANGE, MAX_MODELS, NAME_CHARACTERS, NAME_MAX, OPTIMIZERS, request_schema
from mnist_monitor.inference.predict import MAX_SIDE
from mnist_monitor.metrics import KINDS
from mnist_monitor.runstore import (BROKEN_STATE, IDLE_STATE, METRIC_KINDS, NOTE_MAX, RUN_ID_PATTERN, SERVED_FILES,
                                    WRITTEN_STATES, ModelStatus, RunStatus)
from mnist_monitor.sweeps.folder import SWEEP_STATES
from mnist_monitor.sweeps.spec import MAX_TRIALS, PRUNERS, VARIED
from mnist_monitor.sweeps.spec import NAME_MAX as SWEEP_NAME_MAX

VERSION = "1.0.0"
JSON = "application/json"
ERROR_CODES = {400: "bad input: the message (and ``field``) names what is wrong", 401: "the access token is missing "
               "or wrong (servers started with one, and every class server)",
               403: "a foreign Host, Origin or cross-site request; in a class, a run or sweep that is not the "
                    "caller's to see (runs not shared) or to change, or a teacher's operation asked by a student",
               404: "no such run, sweep or file", 405: "method not allowed", 409: "not now: the message says why",
               413: "request body over the limit", 415: "a body that is not application/json",
               429: "too many wrong class codes: try again after the seconds in Retry-After",
               503: "Ray did not take the run, or its workers are unavailable (a server started with --workers "
                    "or --ray-address: the message says why)",
               507: "the runs folder cannot be written"}
READ_ERRORS = (401, 403)
ACTIVITY = {"active_runs": {"type": "array", "items": {"type": "string"},
                            "description": "the runs training now (here and into this runs folder), newest first"},
            "queued": {"type": "integer", "minimum": 0, "description": "runs waiting in the queue"},
            "workers": {"type": "integer", "minimum": 1, "description": "runs this server trains at once"},
            "workers_busy": {"type": "integer", "minimum": 0, "description": "of those, how many train now, "
                             "whoever's (in a class, active_runs lists only a student's own)"},
            "workers_unavailable": {"type": ["string", "null"], "description": "why Ray cannot take runs now (its "
                                    "local instance died and is being restarted, its cluster is lost): starts and "
                                    "resumes are 503 and queued runs wait; null when it can, or without Ray"}}
WRITE_ERRORS = (400, 401, 403, 413, 415)
_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "list": "array", "None": "null"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


OWNER = {"oneOf": [{"type": "null"}, {"type": "object", "additionalProperties": False, "required": ["id"],
                                      "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}],
         "description": "in a class, who owns it (id 'teacher' for the teacher's runs and those python train.py "
                        "writes; no name for another student's when the class is anonymous); null without a class"}
COLOR_LIST = {"type": "array", "items": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}}


def _object(properties: dict, required=None, **extra) -> dict:
    """A closed object: exactly these keys (``required``: all of them unless given)."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": list(properties) if required is None else list(required), **extra}


def record_schema(cls, nullable: bool, overrides: dict | None = None) -> dict:
    """The properties of status record ``cls`` from its fields' annotations ('float | None' ->
    number or null); ``nullable``: every field may be null (a run whose status is not readable)."""
    properties = {}
    for f in fields(cls):
        types = [_JSON_TYPES[part.strip().split("[")[0]] for part in f.type.split("|")]
        if nullable and "null" not in types:
            types.append("null")
        properties[f.name] = {"type": types[0] if len(types) == 1 else types}
        if f.default is not MISSING and f.default is not None:
            properties[f.name]["default"] = f.default
    properties.update(overrides or {})
    return properties


def _view_schemas() -> tuple[dict, dict]:
    """A model's and a run's status as answered (GET /training_status, GET /runs/<id>)."""
    url = {"type": ["string", "null"], "description": "a URL on this server, null when the file is not written yet"}
    model_view = record_schema(ModelStatus, nullable=False, overrides={
        "images": {"type": "object", "additionalProperties": url, "description": "picture kind -> URL"},
        "checkpoint": url, "confusion": url})
    run_view = record_schema(RunStatus, nullable=True, overrides={
        "state": {"enum": list(WRITTEN_STATES) + [BROKEN_STATE, IDLE_STATE]},
        "run_id": {"type": ["string", "null"]},
        "models": {"type": "array", "items": _ref("ModelView")},
        "images": {"type": "object", "additionalProperties": url},
        "resumable": {"type": "boolean"},
        "metrics_csv": {"type": "string", "description": "absent when there is no run"},
        "owner": OWNER})
    run_view.pop("pid")  # known to the run folder, not answered
    return model_view, run_view


def _summary_schema(meta: dict) -> dict:
    """A row of GET /runs."""
    summary_model = {"name": {"type": "string"}, "kernels": {"type": "array", "items": {"type": "integer"}},
                     "optimizer": {"type": "string"}, "learning_rate": {"type": "number"},
                     "batch_size": {"type": "integer"}, "parameters": {"type": "integer"},
                     "best_test_accuracy": {"type": ["number", "null"]},
                     "final_test_accuracy": {"type": ["number", "null"]},
                     "color": {"type": ["integer", "null"], "description": "the model's colour (a palette index)"}}
    settings = {key: {} for key in ("epochs", "lr_schedule", "warmup", "label_smoothing", "precision",
                                    "train_samples", "seed", "device")}
    return _object({
        "run_id": {"type": "string"}, "state": {"enum": list(WRITTEN_STATES) + [BROKEN_STATE]},
        "started_at": {"type": ["number", "null"]}, "duration_seconds": {"type": ["number", "null"]},
        "device": {"type": ["string", "null"]}, "precision": {"type": ["string", "null"]},
        "settings": _object(settings, description="from config.json; null where it does not say"),
        "models": {"type": "array", "items": _object(summary_model)},
        "best_test_accuracy": {"type": ["number", "null"]}, "resumes": {"type": "integer"},
        "resumable": {"type": "boolean"}, "error": {"type": ["string", "null"]},
        "has_checkpoint": {"type": "boolean", "description": "an epoch-end checkpoint exists: POST /predict can read with it"},
        "sweep": {"oneOf": [{"type": "null"}, _object({"sweep_id": {"type": "string"}, "trial": {"type": "integer"}})],
                  "description": "the sweep the run is a trial of (its trial number counts from 0)"},
        "owner": OWNER, **meta})


def _schemas() -> dict:
    model_view, run_view = _view_schemas()
    meta = {"starred": {"type": "boolean"}, "note": {"type": "string", "maxLength": NOTE_MAX}}
    handed_in = {"handed_in_at": {"type": ["number", "null"], "description": "in a class, when its owner handed "
                                  "it in (kept like a starred run; its owner cannot delete it); else null"}}
    layer_view = _object({"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                          "shown": {"type": "integer"}, "image": {"type": "string"}})
    prediction = _object({
        "index": {"type": "integer"}, "model": {"type": "string"}, "epoch": {"type": ["integer", "null"]},
        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
        "probabilities": {"type": "array", "minItems": 10, "maxItems": 10, "items": {"type": "number"}},
        "layers": {"type": "array", "items": _ref("LayerView")}},
        required=("index", "model", "epoch", "digit", "probabilities"))
    return {
        "Error": _object({"error": {"type": "string"}, "field": {"type": "string"}}, required=("error",)),
        "TrainConfig": request_schema(),
        "StartBody": {**request_schema(), "properties": {
            **request_schema()["properties"],
            "queue": {"type": "boolean", "default": False,
                      "description": "true: wait in the queue while a run trains (else 409)"}}},
        "RunAnswer": _object({"run_id": {"type": "string"}, "state": {"type": "string"}}),
        "ModelView": _object(model_view),
        "RunView": _object(run_view, required=[k for k in run_view if k != "metrics_csv"]),
        "TrainingStatus": _object({**run_view, **ACTIVITY}, required=[k for k in run_view if k != "metrics_csv"]
                                  + list(ACTIVITY)),
        "RunSummary": _summary_schema({**meta, **handed_in}),
        "Meta": _object(meta, required=()),
        "LayerView": layer_view,
        "Prediction": prediction,
    }


def _answer(description: str, schema: dict | None = None, media: str = JSON) -> dict:
    answer = {"description": description}
    if schema is not None:
        answer["content"] = {media: {"schema": schema}}
    return answer


ACCESS = {  # who may call an operation in a class (x-class-access); without a class, whoever has the token
    "open": "answers without a token in a class (elsewhere with the server's token, when it has one)",
    "member": "the teacher or a student",
    "read": "the owner of the run or sweep, the teacher, and other students when the teacher shares runs (else 403)",
    "act": "the owner of the run or sweep and the teacher (403 to anyone else)",
    "own": "the teacher, or a student for their own runs (what it reports or changes is theirs)",
    "teacher": "the teacher only (403 to a student)",
}


OPEN = {("/", "get"), ("/static/{filename}", "get"), ("/config", "get"), ("/class/join", "post")}
RUN_READS = {"/runs", "/runs/{run_id}", "/runs/{run_id}/config", "/runs/{run_id}/metrics", "/runs/{run_id}/metrics.csv",
             "/runs/{run_id}/files/{name}", "/runs/{run_id}/export.zip", "/runs.csv", "/sweeps", "/sweeps/{sweep_id}",
             "/predict"}


def access_of(path: str, method: str) -> str:
    """Who may call an operation in a class (a key of ACCESS)."""
    if (path, method) in OPEN:
        return "open"
    if path in ("/training_status", "/stop_training"):
        return "own"
    if path.startswith("/class") and path not in ("/class/me", "/class/board") and not path.startswith("/class/sign"):
        return "teacher"
    if path in RUN_READS and method in ("get", "post"):
        return "read" if method == "get" or path == "/predict" else "member"
    return "act" if "{run_id}" in path or "{sweep_id}" in path else "member"


def with_access(paths: dict) -> dict:
    """Each operation says who may call it in a class (``x-class-access``, and in its description);
    those that answer without a token say so in their ``security``."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            access = access_of(path, method)
            operation.update({"description": f"In a class: {ACCESS[access]}.", "x-class-access": access})
            if access == "open":
                operation["security"] = [{}, {"bearer": []}, {"queryToken": []}, {"cookieToken": []}]
    return paths


def _operation(summary: str, ok: dict, errors=READ_ERRORS, ok_code: int = 200, parameters=(), body=None,
               cached: bool = False) -> dict:
    """``cached``: a GET answered with an ETag, 304 to a request that sends it back unchanged."""
    responses = {str(ok_code): ok}
    if cached:
        responses["304"] = {"description": "not modified since the ETag the request sent (If-None-Match)"}
    for code in sorted(set(errors)):
        responses[str(code)] = (_answer(ERROR_CODES[code], {"type": "string"}, "text/plain") if code == 413 else
                                _answer(ERROR_CODES[code], _ref("Error")))
    operation = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": body[1], "content": {JSON: {"schema": body[0]}}}
    return operation


def _query(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


RUN_ID = {"name": "run_id", "in": "path", "required": True, "description": "a run's id (its folder's name)",
          "schema": {"type": "string", "pattern": f"^{RUN_ID_PATTERN.pattern}$"}}


def ok_json(description: str, schema: dict) -> dict:
    return _answer(description, schema)


RUN_ANSWER = ok_json("the run and its new state", _ref("RunAnswer"))
NO_BODY = (_object({}, description="no fields; the body may be left out"), False)


def _settings_schema() -> dict:
    """GET /config: what the form accepts and the page draws with."""
    return _object({key: {"type": "object"} for key in (
        "defaults", "limits", "choices", "states", "image_sizes", "digit_grid")}
        | {"sweeps": _object({"varied": {"type": "object", "description": "setting -> int, float, str or list"},
                              "per_model": {"type": "array", "items": {"type": "string"},
                                            "description": "settings one model may vary alone (models[i].x)"},
                              "pruners": {"type": "array", "items": {"enum": list(PRUNERS)}},
                              "max_trials": {"type": "integer"}},
                             description="what a sweep may vary, and how")}
        | {"name_characters": {"type": "string"},
           "class": {"type": "boolean", "description": "the server runs a class (--class)"},
           "member": {"oneOf": [{"type": "null"}, _ref("Member")], "description": "in a class, who the request "
                      "is (null: nobody yet, join first; always null without a class)"},
           "token_refused": {"type": "boolean", "description": "in a class, the request carried a token that is "
                             "nobody's any more (the teacher made the student a new link, or removed them)"},
           "labels": _object({"optimizer": _object({name: {"type": "string"} for name in OPTIMIZERS})}),
           "advice": _object({"optimizer": _object({name: {"type": "string"} for name in OPTIMIZERS})}),
           "colors": _object({"models": COLOR_LIST, "more": COLOR_LIST}),
           "metric_kinds": {"type": "array", "description": "the metric kinds a run records: fields with units, "
                            "when each is produced, its charts", "items": _object({
                                "name": {"enum": list(KINDS)}, "title": {"type": "string"},
                                "moment": {"type": "string"}, "panel": {"type": "string"},
                                "fields": {"type": "array"}, "charts": {"type": "array"}})}})


def _app_paths() -> dict:
    """The page, the settings, the active run, starting and stopping, drawings."""
    predict_body = _object({
        "image": {"type": "string", "description": f"a PNG data URL, at most {MAX_SIDE} px a side"},
        "test_index": {"type": "integer", "minimum": 0, "description": "an MNIST test digit instead of image"},
        "run_id": {"type": "string"}, "layers": {"type": "boolean", "default": False}}, required=(),
        oneOf=[{"required": ["image"]}, {"required": ["test_index"]}])
    return {
        "/": {"get": _operation("the page", _answer("the page's HTML", {"type": "string"}, "text/html"))},
        "/openapi.json": {"get": _operation("this document", ok_json("OpenAPI 3.1", {"type": "object"}), cached=True)},
        "/static/{filename}": {"get": _operation(
            "the page's scripts, styles and icons", {"description": "the file"}, errors=READ_ERRORS + (404,),
            parameters=[{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/config": {"get": _operation(
            "the form's defaults, limits, choices and their labels, the palette, the run states, picture sizes",
            ok_json("settings", _settings_schema()))},
        "/training_status": {"get": _operation(
            "the run followed (?run=), else the run started last among the active ones, else the run updated "
            "last; state 'idle' with null fields when there is none", ok_json("a run's status", _ref("TrainingStatus")),
            errors=READ_ERRORS + (400, 404), cached=True,
            parameters=[_query("run", {"type": "string", "pattern": f"^{RUN_ID_PATTERN.pattern}$"},
                               "the run to answer for (404 if there is no such run)")])},
        "/start_training": {"post": _operation(
            "start a run (or queue it)", ok_json("started or queued", _ref("RunAnswer")), ok_code=202,
            errors=WRITE_ERRORS + (409, 503, 507), body=(_ref("StartBody"), True))},
        "/stop_training": {"post": _operation(
            "stop every active run at its next batch", ok_json("the runs asked to stop", _object({
                "run_id": {"type": "string"}, "run_ids": {"type": "array", "items": {"type": "string"}},
                "state": {"const": "stopping"}})), errors=WRITE_ERRORS + (409,), body=NO_BODY)},
        "/model_info": {"get": _operation(
            "a model's layers, shapes, parameters and multiply-accumulates",
            ok_json("the layers", _object({"kernels": {"type": "array"}, "layers": {"type": "array"},
                                           "total_parameters": {"type": "integer"},
                                           "macs_per_image": {"type": "integer"}})),
            errors=READ_ERRORS + (400,),
            parameters=[_query("kernels", {"type": "string"}, "4 comma-separated kernel counts, e.g. 32,64,64,64 "
                               f"(whole numbers from {KERNEL_RANGE[0]} to {KERNEL_RANGE[1]})", required=True)])},
        "/predict": {"post": _operation(
            "each model's reading of a drawn or an MNIST test digit", ok_json("the predictions", _object({
                "run_id": {"type": "string"}, "test_index": {"type": "integer"}, "label": {"type": "integer"},
                "digit_image": {"type": "string"}, "input_image": {"type": "string"},
                "predictions": {"type": "array", "items": _ref("Prediction")}}, required=("run_id", "predictions"))),
            errors=WRITE_ERRORS + (404, 409, 429), body=(predict_body, True))},
    }


FIELD_SCHEMAS = {"number": {"type": ["number", "null"]}, "per_layer": {"type": "array"},
                 "per_digit": {"type": "array", "minItems": 10, "maxItems": 10,
                               "items": {"type": ["number", "null"]}}}


def _metrics_row() -> dict:
    """A metrics row: one of the registry's kinds, where it stands, and that kind's fields."""
    place = {"model": {"type": "integer"}, "epoch": {"type": "number"}, "step": {"type": "integer"},
             "time": {"type": "number"}}
    return {"anyOf": [{"type": "object", "additionalProperties": False, "required": ["kind", *kind.columns],
                       "description": kind.title,
                       "properties": {"kind": {"const": name}, **place,
                                      **{f.name: {**FIELD_SCHEMAS[f.shape], "description": f.description
                                                  + (f" ({f.unit})" if f.unit else "")} for f in kind.fields}}}
                      for name, kind in KINDS.items()]}


def _run_paths(metrics_page_rows: int) -> dict:
    """The runs: list, status, settings, metrics, files, and what can be done to one."""
    file_name = {"name": "name", "in": "path", "required": True, "schema": {"enum": sorted(SERVED_FILES)},
                 "description": "one of the files the trainer writes"}
    metrics = _object({"run_id": {"type": "string"}, "rows": {"type": "array", "items": _metrics_row()},
                       "next": {"type": "integer"}, "more": {"type": "boolean"}, "version": {"type": "string"}})
    return {
        "/runs": {"get": _operation("every run, newest first", ok_json("the runs", _object({
            "runs": {"type": "array", "items": _ref("RunSummary")}, "keep_runs": {"type": "integer"},
            "runs_bytes": {"type": "integer"}})), cached=True)},
        "/runs/{run_id}": {
            "get": _operation("one run's status", ok_json("its status", _ref("RunView")),
                              errors=READ_ERRORS + (404,), parameters=[RUN_ID], cached=True),
            "delete": _operation("delete a run that does not train, and its files",
                                 ok_json("deleted", _object({"run_id": {"type": "string"},
                                                             "deleted": {"const": True}})),
                                 errors=READ_ERRORS + (404, 409, 415), parameters=[RUN_ID])},
        "/runs/{run_id}/resume": {"post": _operation(
            "go on from the last epoch-end checkpoints", RUN_ANSWER, ok_code=202,
            errors=WRITE_ERRORS + (404, 409, 503, 507), parameters=[RUN_ID], body=NO_BODY)},
        "/runs/{run_id}/stop": {"post": _operation("stop one run at its next batch", RUN_ANSWER,
                                                   errors=WRITE_ERRORS + (404, 409), parameters=[RUN_ID], body=NO_BODY)},
        "/runs/{run_id}/cancel": {"post": _operation("take a queued run out of the queue", RUN_ANSWER,
                                                     errors=WRITE_ERRORS + (404, 409), parameters=[RUN_ID],
                                                     body=NO_BODY)},
        "/runs/{run_id}/meta": {"post": _operation(
            "star a run or note something on it", ok_json("the run's meta", _object(
                {"run_id": {"type": "string"}, **_schemas()["Meta"]["properties"], "handed_in_at": NUMBER_OR_NULL})),
            errors=WRITE_ERRORS + (404, 507), parameters=[RUN_ID], body=(_ref("Meta"), True))},
        "/runs/{run_id}/config": {"get": _operation(
            "the run's config.json: a start body that repeats the run", ok_json("the config", _ref("TrainConfig")),
            errors=READ_ERRORS + (404,), parameters=[RUN_ID])},
        "/runs/{run_id}/metrics": {"get": _operation(
            "metrics rows from row 'since' on", ok_json("rows", metrics), errors=READ_ERRORS + (400, 404), cached=True,
            parameters=[RUN_ID, _query("since", {"type": "integer", "minimum": 0}, "the first row"),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": metrics_page_rows},
                               "rows looked at"),
                        _query("kind", {"type": "string"}, f"comma-separated, of {', '.join(METRIC_KINDS)}"),
                        _query("version", {"type": "string"}, "the version the reader's 'since' counts in")])},
        "/runs/{run_id}/metrics.csv": {"get": _operation(
            "the train and eval rows as CSV", _answer("CSV", {"type": "string"}, "text/csv"),
            errors=READ_ERRORS + (404,), parameters=[RUN_ID])},
        "/runs/{run_id}/files/{name}": {"get": _operation(
            "a picture, a confusion matrix or a checkpoint", {"description": "the file", "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                JSON: {"schema": {"type": "object"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            errors=READ_ERRORS + (404,), cached=True,
            parameters=[RUN_ID, file_name, _query("v", {"type": "string"}, "a version: the answer may be cached")])},
    }


def _sweep_schemas() -> dict:
    """A sweep's body (POST /sweeps), summary (GET /sweeps/<id>) and listing row."""
    config = request_schema()["properties"]
    value = {k: (config[k] if k != "kernels" else {"type": "array", "minItems": 4, "maxItems": 4,
                                                   "items": {"type": "integer"}}) for k in VARIED}
    choices = {k: {"type": "array", "minItems": 1, "maxItems": MAX_TRIALS, "items": value[k]} for k in VARIED}
    ranged = {k: _object({"low": {"type": "number"}, "high": {"type": "number"}, "log": {"type": "boolean"}},
                         required=("low", "high")) for k, kind in VARIED.items() if kind in (int, float)}
    search = {k: {"oneOf": [choices[k], ranged[k]]} if k in ranged else choices[k] for k in VARIED}
    one_model = {  # one model's own setting: "models[1].learning_rate"
        f"^models\\[[0-{MAX_MODELS - 1}]\\]\\.{k}$": search[k] for k in ("optimizer", "learning_rate", "batch_size")}
    grid_one = {p: choices[p.split(".")[-1].rstrip("$")] for p in one_model}
    body = _object({
        "base": {**_ref("TrainConfig"), "description": "a start body: the settings every trial shares"},
        "grid": _object(choices, required=(), minProperties=1, patternProperties=grid_one,
                        description="every combination of these values"),
        "search": _object(search, required=(), minProperties=1, patternProperties=one_model,
                          description="ranges and choices to search"),
        "trials": {"type": "integer", "minimum": 1, "maximum": MAX_TRIALS, "description": "a search's trials"},
        "prune": {"enum": list(PRUNERS), "description": "median: stop a run whose best so far is below the median of "
                                                      "the finished trials at an epoch end (default for a search; "
                                                      "none for a grid); successive_halving: keep the top third at "
                                                      "epochs 1, 3, 9, ... (then epochs may not vary)"},
        "name": {"type": "string", "maxLength": SWEEP_NAME_MAX}}, required=("base",),
        oneOf=[{"required": ["grid"]}, {"required": ["search"]}])
    summary = {
        "sweep_id": {"type": "string"}, "name": {"type": "string"}, "kind": {"enum": ["grid", "search"]},
        "state": {"enum": list(SWEEP_STATES)}, "created_at": {"type": ["number", "null"]},
        "ended_at": {"type": ["number", "null"]}, "error": {"type": ["string", "null"]},
        "objective": {"type": "string"}, "varied": {"type": "array", "items": {"type": "string"}},
        "spec": _ref("SweepBody"), "trials": {"type": "integer"}, "prune": {"enum": list(PRUNERS)},
        "runs": {"type": "array", "items": _ref("SweepTrial")}, "best_run_id": {"type": ["string", "null"]},
        "importance": {"type": "object", "additionalProperties": {"type": "number"},
                       "description": "setting -> its share of the objective's variation"},
        "importance_method": {"type": "string"}, "owner": OWNER, "pruner": _pruner_schema(),
        "best_objective": {"type": ["number", "null"], "description": "the best trial's objective (percent)"},
        "trials_done": {"type": "integer", "description": "trials whose run has ended"},
        "trials_pruned": {"type": "integer"}}
    listed = {k: v for k, v in summary.items() if k != "runs"}
    listed["run_states"] = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {"SweepBody": body, "SweepTrial": _trial_schema(), "Sweep": _object(summary), "SweepListed": _object(listed)}


def _trial_schema() -> dict:
    """One trial of a sweep summary."""
    return _object({
        "trial": {"type": "integer"}, "run_id": {"type": ["string", "null"]},
        "values": {"type": "object", "description": "setting -> the value this trial took"},
        "state": {"type": "string", "description": "the run's state; 'waiting' (a grid's combination not queued yet; "
                                                  "'cancelled' once the sweep has ended), 'deleted' when its run is gone"},
        "objective": {"type": ["number", "null"], "description": "best validation accuracy so far (percent)"},
        "epochs_reported": {"type": "integer"},
        **{key: {"type": ["number", "null"], "description": "of the run's best model (percent)"}
           for key in ("final_val_accuracy", "best_test_accuracy", "final_test_accuracy")},
        "duration_seconds": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"], "description": "why it failed"},
        "pruned_because": {"type": ["string", "null"], "description": "a pruned trial: the pruner's verdict in words, "
                                                                      "with the numbers it compared"},
        "verdict": {"type": ["string", "null"], "description": "the pruner's last verdict on the trial, in words "
                                                               "(why it was pruned, or why not)"},
        "intermediate": {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2,
                                                    "maxItems": 2},
                         "description": "[epoch, validation accuracy %] as reported to the pruner"}})


def _pruner_schema() -> dict:
    """A sweep's pruner: when and how it stops trials, and the line the trials are cut against."""
    return _object({
        "kind": {"enum": list(PRUNERS)}, "text": {"type": "string", "description": "when and how it stops trials"},
        "starts_after": {"type": ["integer", "null"], "description": "median: finished trials before it prunes"},
        "rungs": {"type": "array", "items": {"type": "integer"}, "description": "successive halving: the epochs it "
                                                                               "judges at"},
        "line": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                 "description": "[epoch, value] the trials are cut against: the finished trials' median, or each "
                                "rung's cut"},
        "line_name": {"type": "string"}})


SWEEP_ID = {"name": "sweep_id", "in": "path", "required": True, "description": "a sweep's id",
            "schema": {"type": "string", "pattern": f"^{RUN_ID_PATTERN.pattern}$"}}


def _sweep_paths() -> dict:
    sweep = ok_json("the sweep", _ref("Sweep"))
    return {
        "/sweeps": {
            "post": _operation("make a sweep (a grid, or a search with Optuna) and queue its first trials",
                               ok_json("the sweep made", _ref("Sweep")), ok_code=202,
                               errors=WRITE_ERRORS + (409, 503, 507), body=(_ref("SweepBody"), True)),
            "get": _operation("every sweep, newest first", ok_json("the sweeps", _object({
                "sweeps": {"type": "array", "items": _ref("SweepListed")}})), cached=True)},
        "/sweeps/{sweep_id}": {"get": _operation("one sweep: its trials, best run and importances", sweep,
                                                 errors=READ_ERRORS + (404,), parameters=[SWEEP_ID], cached=True)},
        "/sweeps/{sweep_id}/stop": {"post": _operation(
            "stop a sweep: queued trials cancelled, training ones stopped", sweep,
            errors=WRITE_ERRORS + (404, 409), parameters=[SWEEP_ID], body=NO_BODY)},
        "/sweeps/{sweep_id}/trials": {"post": _operation(
            "add trials to a search: the same study goes on (a finished or stopped one runs again); 400 for a grid "
            f"or past {MAX_TRIALS} trials in all", sweep, ok_code=202,
            errors=WRITE_ERRORS + (404, 409, 507), parameters=[SWEEP_ID],
            body=(_object({"trials": {"type": "integer", "minimum": 1, "maximum": MAX_TRIALS,
                                      "description": "how many trials to add"}}), True))},
    }


def _class_schemas() -> dict:
    name = {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "description": f"1 to {NAME_MAX} {NAME_CHARACTERS}"}
    student = {"id": {"type": "string"}, "name": {"type": "string"}, "joined_at": {"type": "number"},
               "removed": {"type": "boolean", "description": "removed by the teacher: cannot sign in; runs kept"},
               "limits": {"type": "object", "description": "the limits set for this student over the class's"}}
    settings = {"joining_open": {"type": "boolean", "description": "students can join with the code"},
                "share_runs": {"type": "boolean", "description": "students can read (never change) each other's and "
                                                                 "the teacher's runs"},
                "hand_ins_open": {"type": "boolean", "description": "students can hand runs in and withdraw them"},
                "leaderboard": {"type": "boolean", "description": "students see the class's best runs (the board)"},
                "anonymous": {"type": "boolean", "description": "no student's name is shown to another student, "
                                                                "anywhere (owners, the board)"}}
    limits = _object({key: {"type": ["integer", "null"], "minimum": low, "maximum": high,
                            "description": f"default {default}" + ("" if default else " (null: no limit)")}
                      for key, (default, low, high) in LIMITS.items()}, required=(),
                     description="a student's limits (null: none); 409 (429 for predictions) when one is reached")
    return {
        "JoinBody": _object({"code": {"type": "string", "maxLength": 100}, "name": name}),
        "Limits": limits,
        "Board": _board_schema(),
        "StudentChange": _object({"name": name, "limits": _ref("Limits")}, required=(), minProperties=1),
        "NewToken": _object({"id": {"type": "string"}, "name": {"type": "string"},
                             "token": {"type": "string", "description": "the student's token: shown once (a "
                                       "personal link is /?token=<token>)"}}),
        "Member": _object({"role": {"enum": ["teacher", "student"]}, "id": {"type": "string"},
                           "name": {"type": "string"}, **settings,
                           "limits": {"oneOf": [{"type": "null"}, _ref("Limits")], "description": "a student's own"}}),
        "Student": _object(student),
        "Class": _object({"code": {"type": "string"}, **settings, "limits": _ref("Limits"), "students": {
            "type": "array", "items": _object({**student, "runs": {"type": "integer", "description": "runs the "
                                                                                                  "student owns"}})}}),
        "ClassSettings": _object({**settings, "limits": _ref("Limits")}, required=(), minProperties=1),
    }


NUMBER_OR_NULL = {"type": ["number", "null"]}
HAND_IN = ok_json("the run's hand-in", _object({"run_id": {"type": "string"},
                                                "handed_in_at": {"type": ["number", "null"]}}))
def _board_schema() -> dict:
    someone = {"you": {"type": "boolean"}, "name": {"type": "string", "description": "left out for another "
                                                                                      "student when anonymous"}}
    leader = _object({**someone, "best_test_accuracy": {"type": "number"}, "settings": {"type": "object"},
                      "models": {"type": "array", "items": {"type": "object"}},
                      "run_id": {"type": "string", "description": "where the caller may read the run"}},
                     required=("you", "best_test_accuracy", "settings", "models"))
    student = _object({"id": {"type": "string"}, "name": {"type": "string"},
                       "training": {"type": "array", "items": {"type": "string"}}, "queued": {"type": "integer"},
                       "best_run_id": {"type": ["string", "null"]}, "best_test_accuracy": NUMBER_OR_NULL,
                       "hand_ins": {"type": "array", "items": _object({"run_id": {"type": "string"},
                                                                       "handed_in_at": {"type": "number"},
                                                                       "best_test_accuracy": NUMBER_OR_NULL})},
                       "disk_mb": {"type": "number"}, "limits": _ref("Limits")})
    return _object({"leaderboard_on": {"type": "boolean"}, "anonymous": {"type": "boolean"},
                    "leaderboard": {"type": "array", "items": leader, "description": "best first; empty for a "
                                    "student while the teacher has turned it off"},
                    "training": {"type": "array", "items": _object({**someone, "runs": {"type": "integer"}},
                                                                   required=("you", "runs"))},
                    "students": {"type": "array", "items": student, "description": "the teacher's only"}},
                   required=("leaderboard_on", "anonymous", "leaderboard", "training"))


STUDENT_ID = {"name": "student_id", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "a student's id (GET /class)"}


def _class_paths() -> dict:
    """A class on one server (--class); 404 on a server without one."""
    cls = ok_json("the class", _ref("Class"))
    member = ok_json("who the caller is", _ref("Member"))
    return {
        "/class/join": {"post": _operation(
            "join the class with its code and a name; the answer's token is also set as the browser's cookie",
            ok_json("joined", _ref("NewToken")), ok_code=201, errors=WRITE_ERRORS + (404, 409, 429),
            body=(_ref("JoinBody"), True))},
        "/class/signin": {"post": _operation(
            "make the token this request carries (a personal link's) the browser's cookie", member,
            errors=WRITE_ERRORS + (404,), body=NO_BODY)},
        "/class/signout": {"post": _operation("forget the browser's cookie (the token goes on working)", member,
                                              errors=WRITE_ERRORS + (404,), body=NO_BODY)},
        "/runs/{run_id}/hand_in": {
            "post": _operation("hand a finished run of one's own in to the teacher", HAND_IN,
                               errors=WRITE_ERRORS + (404, 409), parameters=[RUN_ID], body=NO_BODY),
            "delete": _operation("withdraw a hand-in (while hand-ins are open)", HAND_IN,
                                 errors=READ_ERRORS + (404, 409, 415), parameters=[RUN_ID])},
        "/class/board": {"get": _operation(
            "the class at a glance: the leaderboard and who trains now; for the teacher, every student's runs, "
            "best, hand-ins, disk use and limits", ok_json("the board", _ref("Board")), errors=READ_ERRORS + (404,),
            cached=True)},
        "/class/me": {"get": _operation("who the caller is, and the class's settings", member,
                                        errors=READ_ERRORS + (404,))},
        "/class": {"get": _operation("the class: its code, settings and students", cls, errors=READ_ERRORS + (404,)),
                   "patch": _operation("open or close joining; share runs between students or not", cls,
                                       errors=WRITE_ERRORS + (404,), body=(_ref("ClassSettings"), True))},
        "/class/students/{student_id}": {
            "patch": _operation("rename a student, or set their own limits", ok_json("the student", _ref("Student")),
                                errors=WRITE_ERRORS + (404, 409), parameters=[STUDENT_ID],
                                body=(_ref("StudentChange"), True)),
            "delete": _operation("remove a student: they cannot sign in again; their runs stay theirs",
                                 ok_json("the student", _ref("Student")), errors=READ_ERRORS + (404, 415),
                                 parameters=[STUDENT_ID])},
        "/class/students/{student_id}/link": {"post": _operation(
            "a new personal token for a student who lost their link (the old one stops working)",
            ok_json("the new token", _ref("NewToken")), errors=WRITE_ERRORS + (404,), parameters=[STUDENT_ID],
            body=NO_BODY)},
    }


def _carry_paths() -> dict:
    """Runs carried out and in: a run's zip, an import, every run's metrics as one CSV, the hand-ins."""
    zipped = lambda what: _answer(what, {"type": "string", "format": "binary"}, "application/zip")  # noqa: E731
    imported = _operation(
        "make a run here from a run's export.zip (the body, up to 256 MiB): checked file by file, moved in only "
        "when all pass (a new id if its id is taken)", ok_json("the run made", _object({"run_id": {"type": "string"}})),
        ok_code=201, errors=WRITE_ERRORS + (409, 507))
    imported["requestBody"] = {"required": True, "content": {"application/zip": {
        "schema": {"type": "string", "format": "binary"}}}}
    return {
        "/runs/{run_id}/export.zip": {"get": _operation(
            "the run folder whole as a zip (settings, facts, status, metrics, notes, pictures, checkpoints); 409 "
            "while it has not ended", zipped("the run's zip"), errors=READ_ERRORS + (404, 409), parameters=[RUN_ID])},
        "/runs/import": {"post": imported},
        "/runs.csv": {"get": _operation(
            "every readable run's metrics (or those named) as one CSV, each row with its run's settings",
            _answer("CSV", {"type": "string"}, "text/csv"), errors=READ_ERRORS + (400, 404), parameters=[_query(
                "runs", {"type": "string"}, "run ids, comma-separated (1 to 500); all readable runs without it")])},
        "/class/hand_ins.zip": {"get": _operation(
            "the teacher's: every handed-in run's export.zip, in one zip named by student",
            zipped("a zip of run zips"), errors=READ_ERRORS + (404,))},
    }


@functools.cache
def openapi_document(metrics_page_rows: int) -> dict:
    """The whole document; every path here is a route of the app and every route is here.
    ``metrics_page_rows``: the most metrics rows one answer holds (the API's paging)."""
    paths = with_access({**_app_paths(), **_run_paths(metrics_page_rows), **_carry_paths(), **_sweep_paths(),
                         **_class_paths()})
    return {
        "openapi": "3.1.0",
        "info": {"title": "MNIST Training Monitor", "version": VERSION,
                 "description": f"Train small CNNs on MNIST and watch them. Model names: 1 to {NAME_MAX} "
                                "characters. Errors are {\"error\", \"field\"?} JSON, except 413 (plain text)."},
        "paths": paths,
        "components": {"schemas": {**_schemas(), **_sweep_schemas(), **_class_schemas()}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "the server's token; in a class, the "
                       "teacher's or a student's (POST /class/join answers it)"},
            "queryToken": {"type": "apiKey", "in": "query", "name": "token"},
            "cookieToken": {"type": "apiKey", "in": "cookie", "name": "mnist_monitor_token_<port>",
                            "description": "set by the page's first visit to ?token= (without a class), by "
                                           "POST /class/join and POST /class/signin (in one)"}}},
        # without a class, a token only where the server has one; in a class, every operation not marked
        # x-class-access "open" needs the teacher's or a student's token
        "security": [{}, {"bearer": []}, {"queryToken": []}, {"cookieToken": []}],
    }
