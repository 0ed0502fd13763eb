"""An email made ready to send: tracked links, an open pixel and a working unsubscribe link.

The send activity renders the step's content (passing ``unsubscribe_url(...)`` to the template
context as ``unsubscribe_url``, so a template may place the link itself), then calls
``prepare_email``, which
- rewrites every http(s) link of the HTML part to a signed click redirect ({public_url}/t/c/...),
- appends an open pixel ({public_url}/t/o/...),
- adds the unsubscribe link to the text and HTML parts when the template did not place it, and
  the List-Unsubscribe headers (RFC 2369, one-click per RFC 8058).
The result depends only on its inputs, so a retried send produces the same message.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from html.parser import HTMLParser

from flowline.channels.providers import OutgoingMessage
from flowline.channels.tracking import TrackingToken, tracking_url

# Template variable the send activity fills with ``unsubscribe_url(...)``.
UNSUBSCRIBE_VARIABLE = "unsubscribe_url"


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def unsubscribe_url(*, delivery_id: str, workspace_id: str, public_url: str, secret: bytes | str) -> str:
    """The delivery's unsubscribe link (GET shows a confirmation, POST is RFC 8058 one-click)."""
    token = TrackingToken(workspace_id, delivery_id, "unsubscribe")
    return tracking_url(public_url, token, _key(secret))


class _LinkFinder(HTMLParser):
    """Finds the start tags to rewrite (anchors with an http(s) href) and where the body ends,
    as positions in the source, so everything else is kept byte for byte."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # (line, column, raw tag text, attributes) of each <a>
        self.anchors: list[tuple[int, int, str, list[tuple[str, str | None]]]] = []
        self.body_end: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            raw = self.get_starttag_text()
            if raw is not None:
                line, column = self.getpos()
                self.anchors.append((line, column, raw, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("body", "html") and self.body_end is None:
            self.body_end = self.getpos()


def _offset(line_starts: list[int], position: tuple[int, int]) -> int:
    line, column = position
    return line_starts[line - 1] + column


def _start_tag(tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> str:
    parts = [tag]
    for name, value in attrs:
        parts.append(name if value is None else f'{name}="{html.escape(value, quote=True)}"')
    return f"<{' '.join(parts)}{' /' if closed else ''}>"


def _is_web_link(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def track_html(
    source: str, *, workspace_id: str, delivery_id: str, public_url: str, secret: bytes, footer: str = ""
) -> str:
    """``source`` with its web links going through click redirects, then ``footer`` and the open
    pixel placed before ``</body>`` (at the end when there is none)."""
    finder = _LinkFinder()
    finder.feed(source)
    finder.close()
    line_starts = [0]
    for index, char in enumerate(source):
        if char == "\n":
            line_starts.append(index + 1)
    own = f"{public_url.rstrip('/')}/t/"
    edits: list[tuple[int, int, str]] = []
    for line, column, raw, attrs in finder.anchors:
        href = dict(attrs).get("href")
        # Our own links (the unsubscribe link a template placed) stay as they are.
        if href is None or not _is_web_link(href.strip()) or href.startswith(own):
            continue
        token = TrackingToken(workspace_id, delivery_id, "click", href.strip())
        tracked = [(n, tracking_url(public_url, token, secret) if n == "href" else v) for n, v in attrs]
        start = _offset(line_starts, (line, column))
        edits.append((start, start + len(raw), _start_tag("a", tracked, raw.endswith("/>"))))
    pixel_token = TrackingToken(workspace_id, delivery_id, "open")
    pixel = (
        f'<img src="{html.escape(tracking_url(public_url, pixel_token, secret))}" width="1" height="1"'
        ' alt="" style="display:block;border:0;width:1px;height:1px" />'
    )
    insert_at = _offset(line_starts, finder.body_end) if finder.body_end is not None else len(source)
    edits.append((insert_at, insert_at, footer + pixel))
    out, done = [], 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(source[done:start])
        out.append(text)
        done = end
    out.append(source[done:])
    return "".join(out)


def prepare_email(
    message: OutgoingMessage, *, delivery_id: str, workspace_id: str, public_url: str, secret: bytes | str
) -> OutgoingMessage:
    key = _key(secret)
    leave = unsubscribe_url(
        delivery_id=delivery_id, workspace_id=workspace_id, public_url=public_url, secret=key
    )
    text = message.text
    if text is not None and leave not in text:
        text = f"{text.rstrip()}\n\n--\nUnsubscribe: {leave}\n"
    body = message.html
    if body is not None:
        # The template placed the link (HTML-escaped in an attribute, or as is): no second one.
        placed = leave in body or html.escape(leave) in body
        footer = (
            ""
            if placed
            else f'<p style="font-size:12px;color:#777"><a href="{html.escape(leave)}">Unsubscribe</a></p>'
        )
        body = track_html(
            body,
            workspace_id=workspace_id,
            delivery_id=delivery_id,
            public_url=public_url,
            secret=key,
            footer=footer,
        )
    headers = {
        **message.headers,
        "List-Unsubscribe": f"<{leave}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return dataclasses.replace(message, text=text, html=body, headers=headers)


@dataclass(frozen=True)
class EmailLinks:
    """Where tracking links point and what signs them: the send activity's part of the above."""

    public_url: str
    secret: bytes

    def unsubscribe_url(self, *, workspace_id: str, delivery_id: str) -> str:
        return unsubscribe_url(
            delivery_id=delivery_id, workspace_id=workspace_id, public_url=self.public_url, secret=self.secret
        )

    def prepare(self, message: OutgoingMessage, *, workspace_id: str, delivery_id: str) -> OutgoingMessage:
        return prepare_email(
            message,
            delivery_id=delivery_id,
            workspace_id=workspace_id,
            public_url=self.public_url,
            secret=self.secret,
        )
