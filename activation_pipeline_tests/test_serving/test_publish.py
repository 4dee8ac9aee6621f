"""Publishing: each evaluation adds a version and names it current; the two before it stay for readers still
on them, older ones are removed; a reader opens the new version whole."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests

from activation_pipeline.compute.sqlutil import table_names
from activation_pipeline.serving.publish import (
    PART_PREFIX,
    publish_serving_copy,
    read_pointer_file,
    serving_directory,
)
from activation_pipeline.serving.store import NotPublishedError, open_reader
from activation_pipeline_tests.test_compute.conftest import PG_URL, at, drop_schemas
from activation_pipeline_tests.test_serving.conftest import (
    AS_OF,
    SERVING_YAML,
    SPACE,
    evaluated,
    running,
)

ENGINES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def _versions(pipeline: object, root: Path, on_duckdb: bool) -> set[int]:
    if on_duckdb:
        return {int(p.stem[1:]) for p in (root / "state" / "serving").glob("v*.duckdb")}
    engine = pipeline.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        names = table_names(conn, engine.schema)
    return {int(n[3:].split("_")[0]) for n in names if n.startswith("srv") and n.endswith("_lookup")}


@pytest.mark.parametrize("engine", ENGINES)
def test_versions_are_kept_two_back_and_the_pointer_names_the_last(tmp_path: Path, engine: str) -> None:
    workspace, pipeline, _, schema = evaluated(tmp_path, engine, SERVING_YAML)
    try:
        assert _versions(pipeline, tmp_path, engine == "duckdb") == {1}
        for n in range(2, 6):
            published = publish_serving_copy(
                pipeline.engine, workspace, at(AS_OF).replace(tzinfo=None) + timedelta(hours=n)
            )
            assert published.version == n and published.profiles == 2
        assert _versions(pipeline, tmp_path, engine == "duckdb") == {3, 4, 5}
        reader = open_reader(workspace)
        try:
            current = reader.current()
            assert current.publication.version == 5
            assert current.publication.as_of == at(AS_OF).replace(tzinfo=None) + timedelta(hours=5)
            found = current.profile("user_id:u-jane")
            assert found is not None and found.doc["custom"]["first_name"] == "Jane"
        finally:
            reader.close()
        if engine == "duckdb":
            pointer = read_pointer_file(serving_directory(workspace))
            assert pointer is not None and pointer["file"] == "v5.duckdb"
        with pipeline.engine.begin() as conn:  # the sub-documents' work tables are gone
            assert not [n for n in table_names(conn, pipeline.engine.schema) if n.startswith(PART_PREFIX)]
    finally:
        pipeline.close()
        if schema is not None:
            drop_schemas(PG_URL, schema)


def test_nothing_published_yet_is_503(tmp_path: Path, token_env: str) -> None:
    workspace, pipeline, _, _ = evaluated(tmp_path, "duckdb", SERVING_YAML)
    pipeline.close()
    for path in serving_directory(workspace).iterdir():
        path.unlink()
    with pytest.raises(NotPublishedError):
        open_reader(workspace).current()
    with running(workspace) as server:
        url = f"http://127.0.0.1:{server.config.port}/v1/spaces/{SPACE}/collections/users/profiles/user_id:u-jane/traits"
        answer = requests.get(url, auth=(token_env, ""), timeout=10)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert answer.json()["error"]["code"] == "unavailable"
