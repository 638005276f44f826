"""The API fuzzed from its own OpenAPI description (schemathesis) against a real server on loopback: whatever a
client sends, valid or not, no route answers 500 (nor cuts a response short), and every answer is one the
document describes: its status, its content type, its body's schema (errors: RFC 9457 problems), its headers. Bounded: a few examples per
operation and mode, each request 10 s at most, no shrinking (a failure is reported as found), no example
database on disk.

Driven through schemathesis' strategies with Hypothesis directly (its pytest plugin's lazy fixture does not
work with the pytest this project uses). Path parameters are pinned to a served table and a real job half of
the time: random names only ever meet the 404 at the door."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")  # in the test extra

import httpx  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (installed with schemathesis)
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sheetstream.store import open_store  # noqa: E402
from sheetstream.store.demo import seed  # noqa: E402
from sheetstream.tools.harness import ServerProcess  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = 25  # per operation and mode: 8 operations x 2 modes, well under a minute here


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'db.sqlite'}"
    seed(open_store(url), 30)
    with ServerProcess(url, executor="process", workers=1, data_dir=folder) as server:
        yield server


def answers_no_500(operation, mode: GenerationMode, base_url: str, pinned: dict[str, str],
                   headers: dict[str, str]) -> str | None:
    """None when every example got a whole answer below 500; otherwise the first failure, for a person."""

    @given(case=operation.as_strategy(generation_mode=mode), pin=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    def check(case, pin: bool) -> None:
        if pin and case.path_parameters:
            case.path_parameters.update({k: v for k, v in pinned.items() if k in case.path_parameters})
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10, headers=headers)

    try:
        check()
    except Unsatisfiable:  # no invalid input exists for this operation (a plain string in the path, no query)
        return None
    except Exception as exc:  # schemathesis' failure names the request; a cut response raises here too
        inner = "".join(f"\n  {type(e).__name__}: {e}" for e in getattr(exc, "exceptions", ()))
        return f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}{inner}"
    return None


def test_no_route_answers_500(fuzz_server: ServerProcess) -> None:
    # As an admin, so that every route is reached past its credentials check (tests/server/test_access.py
    # covers the answers without them).
    job = httpx.put(f"{fuzz_server.url}/imports/orders", content=b"PK", params={"wait": "true"},
                    headers={"Content-Type": "application/octet-stream", **fuzz_server.headers}, timeout=30).json()
    pinned = {"table": "orders", "job_id": job["id"]}
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json", headers=fuzz_server.headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [o.label for o in operations]
    failures = [failure for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (failure := answers_no_500(operation, mode, fuzz_server.url, pinned, fuzz_server.headers))]
    assert not failures, "\n\n".join(failures)
