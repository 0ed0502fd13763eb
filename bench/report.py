"""bench/sends.py's tables and last line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.sends import Measured


def report(
    results: list[tuple[Measured, Measured]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    summary = Table(title="Messages per second: journeys against bare Temporal activities")
    columns = ("path", "messages", "seconds", "per_s", "baseline messages", "baseline s", "baseline per_s")
    for column in columns:
        summary.add_column(column, justify="left" if column == "path" else "right", no_wrap=True)
    summary.add_column("ratio", justify="right")
    sent_n = sent_s = base_n = base_s = 0.0
    for sent, base in results:
        s, b = sent.run, base.run
        summary.add_row(
            sent.path,
            str(s.n),
            f"{s.seconds:.1f}",
            f"{s.per_s:.1f}",
            str(b.n),
            f"{b.seconds:.1f}",
            f"{b.per_s:.1f}",
            f"{s.per_s / b.per_s:.2f}",
        )
        sent_n, sent_s, base_n, base_s = sent_n + s.n, sent_s + s.seconds, base_n + b.n, base_s + b.seconds
    sends_per_s, baseline_per_s = sent_n / sent_s, base_n / base_s
    if len(results) > 1:
        summary.add_row(
            "both",
            f"{sent_n:.0f}",
            f"{sent_s:.1f}",
            f"{sends_per_s:.1f}",
            f"{base_n:.0f}",
            f"{base_s:.1f}",
            f"{baseline_per_s:.1f}",
            f"{sends_per_s / baseline_per_s:.2f}",
        )
    console.print(summary)

    detail = Table(title="Per run (CPU in ms per message)")
    cols = ("path", "mode", "N", "conc.", "seconds", "per_s", "submit_s", "start_p50_ms", "start_p95_ms")
    for column in (*cols, "py_cpu", "server_cpu", "sink_cpu"):
        detail.add_column(column, justify="left" if column in ("path", "mode") else "right", no_wrap=True)
    for pair in results:
        for m in pair:
            r = m.run
            detail.add_row(
                m.path,
                m.mode,
                str(r.n),
                str(r.concurrency),
                f"{r.seconds:.1f}",
                f"{r.per_s:.1f}",
                f"{r.submit_seconds:.1f}",
                f"{r.latency(0.5) * 1000:.0f}",
                f"{r.latency(0.95) * 1000:.0f}",
                f"{r.cpu_seconds / r.n * 1000:.1f}",
                f"{r.server_cpu_seconds / r.n * 1000:.1f}",
                f"{m.sink_cpu_seconds / r.n * 1000:.1f}",
            )
    console.print(detail)
    console.print(
        "seconds: first start until every workflow result is in and every message arrived; submit_s: "
        "until the last POST /v1/events or start_workflow returned; py_cpu: this process (API, workers, "
        "driver), server_cpu: the Temporal dev server, sink_cpu: the SMTP and HTTP receivers' process. "
        f"Load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end.",
        soft_wrap=True,
    )
    ratio = sends_per_s / baseline_per_s
    print(f"sends_per_s={sends_per_s:.1f} baseline_per_s={baseline_per_s:.1f} ratio={ratio:.2f}")
