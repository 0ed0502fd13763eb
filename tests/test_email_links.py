"""Signed tracking tokens and prepare_email (tracked links, open pixel, unsubscribe link)."""

from __future__ import annotations

from html.parser import HTMLParser

from flowline.channels.email_links import prepare_email, unsubscribe_url
from flowline.channels.providers import OutgoingMessage
from flowline.channels.tracking import TrackingToken, claimed_workspace, sign, verify

SECRET = b"s3cret"
PUBLIC = "https://flowline.example/"


def test_a_token_verifies_to_what_was_signed() -> None:
    click = TrackingToken("ws-1", "d-1", "click", "https://shop.example/a?b=1&c=é")
    assert verify(sign(click, SECRET), SECRET, "click") == click
    opened = TrackingToken("ws-1", "d-1", "open")
    assert verify(sign(opened, SECRET), SECRET, "open") == opened
    # Deterministic: the same delivery always gets the same links.
    assert sign(opened, SECRET) == sign(opened, SECRET)


def test_a_tampered_forged_or_misused_token_does_not_verify() -> None:
    token = sign(TrackingToken("ws-1", "d-1", "click", "https://shop.example/"), SECRET)
    payload, tag = token.split(".")
    evil = sign(TrackingToken("ws-1", "d-1", "click", "https://evil.example/"), SECRET).split(".")[0]
    assert verify(f"{evil}.{tag}", SECRET, "click") is None  # another URL under the old tag
    assert verify(f"{payload}.{tag[:-2]}AA", SECRET, "click") is None  # a changed tag
    assert verify(token, b"other secret", "click") is None  # signed by someone else
    assert verify(token, SECRET, "open") is None  # a click token is no open token
    for garbage in ("", ".", "abc", "a.b.c", "é.é", "x" * 10_000):
        assert verify(garbage, SECRET, "open") is None and claimed_workspace(garbage) is None
    # The workspace a token names (to find its key) is readable before it is verified.
    assert claimed_workspace(token) == "ws-1"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"] or "")
        if tag == "img" and found.get("src"):
            self.images.append(found["src"] or "")


def _links(source: str) -> _Links:
    parser = _Links()
    parser.feed(source)
    return parser


HTML = """<html><body>
<p>Hi <a class="cta" href="https://shop.example/sale?a=1&amp;b=2">the sale</a>,
<a href='HTTP://old.example/x'>old</a> <a href="mailto:help@shop.example">mail us</a>
<a href="#top">top</a> <a href="/relative">rel</a> <a name="anchor">x</a></p>
<script>var s = '<a href="https://not.a.link/">';</script>
</body></html>"""


def _prepare(**fields: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "channel": "email",
        "idempotency_key": "d-1",
        "to": "ada@example.test",
        "text": "Hello",
        "html": HTML,
        "headers": {"X-Campaign": "spring"},
    }
    message = OutgoingMessage(**{**values, **fields})  # type: ignore[arg-type]
    return prepare_email(message, delivery_id="d-1", workspace_id="ws-1", public_url=PUBLIC, secret=SECRET)


def test_web_links_go_through_signed_redirects_and_the_rest_is_kept() -> None:
    prepared = _prepare()
    assert prepared.html is not None
    hrefs = _links(prepared.html).hrefs
    clicks = [h for h in hrefs if h.startswith("https://flowline.example/t/c/")]
    assert [verify(h.rsplit("/", 1)[1], SECRET, "click") for h in clicks] == [
        TrackingToken("ws-1", "d-1", "click", "https://shop.example/sale?a=1&b=2"),
        TrackingToken("ws-1", "d-1", "click", "HTTP://old.example/x"),
    ]
    assert "mailto:help@shop.example" in hrefs and "#top" in hrefs and "/relative" in hrefs
    # Markup other than the rewritten tags is untouched (the script's text too).
    assert 'class="cta"' in prepared.html and ">the sale</a>," in prepared.html
    assert """var s = '<a href="https://not.a.link/">';""" in prepared.html
    assert '<a name="anchor">x</a>' in prepared.html


def test_an_open_pixel_and_an_unsubscribe_link_are_added_before_the_body_ends() -> None:
    prepared = _prepare()
    assert prepared.html is not None
    leave = unsubscribe_url(delivery_id="d-1", workspace_id="ws-1", public_url=PUBLIC, secret=SECRET)
    [pixel] = _links(prepared.html).images
    assert verify(pixel.rsplit("/", 1)[1], SECRET, "open") == TrackingToken("ws-1", "d-1", "open")
    assert pixel.startswith("https://flowline.example/t/o/")
    assert leave in _links(prepared.html).hrefs
    assert prepared.html.index(pixel) < prepared.html.index("</body>")
    assert prepared.text == f"Hello\n\n--\nUnsubscribe: {leave}\n"
    assert prepared.headers == {
        "X-Campaign": "spring",
        "List-Unsubscribe": f"<{leave}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert verify(leave.rsplit("/", 1)[1], SECRET, "unsubscribe") == TrackingToken(
        "ws-1", "d-1", "unsubscribe"
    )
    # The same delivery prepared again is the same message (a retried send).
    assert _prepare() == prepared


def test_an_unsubscribe_link_the_template_placed_is_neither_repeated_nor_tracked() -> None:
    leave = unsubscribe_url(delivery_id="d-1", workspace_id="ws-1", public_url=PUBLIC, secret=SECRET)
    prepared = _prepare(
        html=f'<p><a href="https://shop.example/">shop</a> <a href="{leave}">leave</a></p>',
        text=f"Hello. Leave: {leave}",
    )
    assert prepared.html is not None and prepared.text == f"Hello. Leave: {leave}"
    hrefs = _links(prepared.html).hrefs
    assert hrefs.count(leave) == 1 and len(hrefs) == 2
    # A fragment without <body>: the pixel goes at the end.
    assert prepared.html.endswith("/>") and "/t/o/" in prepared.html


def test_a_text_only_email_gets_the_footer_and_headers() -> None:
    prepared = _prepare(html=None)
    assert prepared.html is None
    assert prepared.text is not None and "Unsubscribe: https://flowline.example/t/u/" in prepared.text
