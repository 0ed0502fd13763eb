"""An example custom element in code: ``example.score`` asks a scoring service for a person's
lead score and branches on it (docs/elements.md).

A step ``{type: custom, element: example.score, params: {service: ..., email: ...}}`` calls
``GET <service>/scores?email=...`` through Flowline's HTTP helper (so the SSRF guard and the
timeout apply), saves ``score`` and goes down ``hot`` (score >= ``threshold``), ``cold``, or
``unknown`` (the service does not know the person: 404). Any other answer raises: retried like a
call, then the ``error`` outcome.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from flowline.elements.plugins import CodeElement, ElementResult, ElementRun


class ScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: AnyHttpUrl = Field(description="the scoring service's base URL")
    email: str = Field(min_length=3, max_length=320, description="whose score")
    threshold: int = Field(default=50, ge=0, le=100, description="from this score on, hot")


async def _score(run: ElementRun) -> ElementResult:
    params = run.params
    assert isinstance(params, ScoreParams)
    answer = await run.http.request(
        "GET",
        f"{str(params.service).rstrip('/')}/scores",
        params={"email": params.email},
        headers={"Idempotency-Key": run.http.idempotency_key},
    )
    if answer.status == 404:
        return ElementResult("unknown", {"score": None})
    if answer.status != 200:
        raise RuntimeError(f"the scoring service answered {answer.status}")
    score = answer.json()["score"]
    return ElementResult("hot" if score >= params.threshold else "cold", {"score": score})


score = CodeElement(
    params=ScoreParams,
    outcomes=("hot", "cold", "unknown"),
    saves=("score",),
    run=_score,
    description="A person's lead score from a scoring service: hot, cold or unknown",
    timeout=timedelta(seconds=5),
)
