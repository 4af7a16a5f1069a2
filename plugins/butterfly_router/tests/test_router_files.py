"""Static files, downloads and uploads: streaming, metadata, conditional requests, no escapes."""

from __future__ import annotations

import hashlib
import http.client
import os

import pytest

from kernel.testing import Client

FILES = {
    "f/__init__.py": """
    import hashlib
    from butterfly_router import download, upload, retstat

    @download
    def get(req, name: str, as_name: str | None = None):
        return (name, as_name) if as_name else name

    @download
    def bad(req):
        return 42

    @upload
    def put(req, stream, label: str = ""):
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(10000):
            digest.update(chunk)
            size += len(chunk)
        return retstat.OK, {"size": size, "sha256": digest.hexdigest(), "label": label}
"""
}


@pytest.fixture
def dirs(tmp_path):
    """A static dir, a download dir, and secrets outside both (plus symlinks pointing out)."""
    static, downloads, outside = tmp_path / "static", tmp_path / "downloads", tmp_path / "outside"
    for directory in (static / "css", downloads / "sub", outside):
        directory.mkdir(parents=True)
    (static / "app.js").write_text("console.log('hi');\n")
    (static / "css" / "site.css").write_text("body{}\n")
    (static / "blob.bin").write_bytes(os.urandom(300_000))
    (static / ".env").write_text("SECRET=1\n")
    (static / "%2e%2e").write_text("literal name\n")
    (outside / "secret.txt").write_text("TOP SECRET\n")
    os.symlink(outside, static / "link_out")
    os.symlink(outside / "secret.txt", static / "secret_link.txt")
    os.symlink(static / "app.js", static / "inner_link.js")
    (downloads / "report.csv").write_text("a,b\n1,2\n")
    (downloads / "sub" / "data.tar.gz").write_bytes(b"\x1f\x8b fake")
    os.symlink(outside / "secret.txt", downloads / "leak.txt")
    return {"static": static, "downloads": downloads, "outside": outside}


@pytest.fixture
def app(router_app, dirs):
    return router_app(
        FILES,
        settings={
            "router.static_dir": str(dirs["static"]),
            "router.download_dir": str(dirs["downloads"]),
            "server.max_body": 2_000_000,
        },
    )


def test_static_file_with_type_length_and_validators(app, dirs):
    reply = app.client.get("/static/app.js")
    assert reply.status == 200 and reply.body == b"console.log('hi');\n"
    assert reply.headers["content-type"] in ("text/javascript; charset=utf-8", "application/javascript; charset=utf-8")
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.headers["etag"].startswith('"') and reply.headers["last-modified"].endswith("GMT")
    assert reply.headers["cache-control"] == "no-cache"
    assert app.client.get("/static/css/site.css").headers["content-type"] == "text/css; charset=utf-8"
    big = app.client.get("/static/blob.bin")
    assert big.body == (dirs["static"] / "blob.bin").read_bytes()
    assert app.client.get("/static/inner_link.js").status == 200


def test_static_conditional_requests_and_head(app):
    first = app.client.get("/static/app.js")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    not_modified = app.client.get("/static/app.js", headers={"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.body == b"" and not_modified.headers["etag"] == etag
    assert app.client.get("/static/app.js", headers={"If-None-Match": f'"x", W/{etag}'}).status == 304
    assert app.client.get("/static/app.js", headers={"If-None-Match": '"other"'}).status == 200
    assert app.client.get("/static/app.js", headers={"If-Modified-Since": modified}).status == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert app.client.get("/static/app.js", headers={"If-Modified-Since": old}).status == 200
    assert app.client.get("/static/app.js", headers={"If-Modified-Since": "garbage"}).status == 200
    head = app.client.request("HEAD", "/static/app.js")
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == first.headers["content-length"]
    assert app.client.post("/static/app.js").status == 405


ESCAPES = [
    "/static/../outside/secret.txt",
    "/static/%2e%2e/outside/secret.txt",
    "/static/..%2foutside%2fsecret.txt",
    "/static/css/..%2F..%2Foutside/secret.txt",
    "/static/%2E%2E%5Coutside%5Csecret.txt",
    "/static/..\\outside\\secret.txt",
    "/static//etc/passwd",
    "/static/" + os.sep + "etc/passwd",
    "/static/link_out/secret.txt",
    "/static/secret_link.txt",
    "/static/css",
    "/static/css/",
    "/static/",
    "/static/.env",
    "/static/app.js%00.png",
    "/static/nope.js",
    "/static/./app.js",
    "/static/%252e%252e/outside/secret.txt",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_static_escapes_and_non_files_are_404_in_process(app, path):
    reply = app.client.get(path)
    assert reply.status == 404, path
    assert reply.json() == {"stat": "ERR_NOT_FOUND"} and b"SECRET" not in reply.body


def test_static_escapes_through_real_waitress(app, live_server):
    server = live_server(app.kernel)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in [*ESCAPES, "/static/app.js\x00", "/static/%00"]:
            connection.putrequest("GET", path.replace("\x00", "%00"), skip_accept_encoding=True)
            connection.endheaders()
            reply = connection.getresponse()
            body = reply.read()
            assert reply.status in (400, 404), (path, reply.status)
            assert b"SECRET" not in body, path
        connection.request("GET", "/static/blob.bin")
        reply = connection.getresponse()
        assert (
            reply.status == 200
            and hashlib.sha256(reply.read()).hexdigest()
            == hashlib.sha256((app.kernel.extensions["router"].static_dir / "blob.bin").read_bytes()).hexdigest()
        )
        connection.request("GET", "/f/get?name=report.csv")
        reply = connection.getresponse()
        assert reply.status == 200 and reply.read() == b"a,b\n1,2\n"
    finally:
        connection.close()


def test_static_switched_off(router_app):
    app = router_app(FILES)
    assert app.kernel.routes.lookup("/static/app.js") is None


def test_download_streams_with_headers(app):
    reply = app.client.get("/f/get", query={"name": "report.csv"})
    assert reply.status == 200 and reply.body == b"a,b\n1,2\n"
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-length"] == "8"
    assert reply.headers["content-disposition"] == "attachment; filename=\"report.csv\"; filename*=UTF-8''report.csv"
    tarball = app.client.get("/f/get", query={"name": "sub/data.tar.gz"})
    assert tarball.headers["content-type"] == "application/gzip"


def test_download_name_is_rfc5987_encoded(app):
    reply = app.client.get("/f/get", query={"name": "report.csv", "as_name": 'rapport "été".csv'})
    disposition = reply.headers["content-disposition"]
    assert disposition == (
        "attachment; filename=\"rapport __t__.csv\"; filename*=UTF-8''rapport%20%22%C3%A9t%C3%A9%22.csv"
    )


def test_download_absolute_path_inside_is_allowed(app, dirs):
    reply = app.client.get("/f/get", query={"name": str(dirs["downloads"] / "report.csv")})
    assert reply.status == 200


@pytest.mark.parametrize(
    "name, status",
    [
        ("../outside/secret.txt", 403),
        ("leak.txt", 403),
        ("/etc/passwd", 403),
        ("missing.csv", 404),
        ("sub", 404),
        ("a\x00b", 404),
    ],
)
def test_download_refuses_escapes_and_non_files(app, name, status):
    reply = app.kernel.call("/f/get", {"name": name})
    assert reply.status == status and reply.data["stat"] in ("ERR_FORBIDDEN", "ERR_NOT_FOUND")


def test_download_bad_return_is_500(app):
    assert app.client.get("/f/bad").status == 500


def test_download_file_is_closed_after_streaming(app):
    response = app.kernel.call("/f/get", {"name": "report.csv"})
    body = response.body
    assert b"".join(body) == b"a,b\n1,2\n"
    body.close()
    assert body.handle.closed


def test_upload_receives_the_body_as_a_stream(app):
    payload = os.urandom(1_500_000)
    reply = app.client.post(
        "/f/put", query={"label": "x"}, body=payload, headers={"Content-Type": "application/octet-stream"}
    )
    assert reply.status == 200
    assert reply.json() == {
        "stat": "OK",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "label": "x",
    }


def test_upload_json_body_is_not_parsed_as_params(app):
    reply = app.client.post("/f/put", json={"label": "not a param"})
    assert reply.json()["label"] == "" and reply.json()["size"] == len(b'{"label": "not a param"}')


def test_upload_limits_and_reserved_params(app):
    too_big = app.client.post("/f/put", body=b"x" * 2_000_001)
    assert too_big.status == 413 and too_big.json()["stat"] == "ERR_PAYLOAD_TOO_LARGE"
    assert app.client.get("/f/put").status == 405
    reply = app.client.post("/f/put", query={"stream": "x", "other": "y"}, body=b"abc")
    assert reply.status == 400
    assert {e["param"] for e in reply.json()["errors"]} == {"stream", "other"}


def test_upload_handler_without_stream_is_a_broken_app(router_app):
    app = router_app(
        {"u/__init__.py": "from butterfly_router import upload\n\n@upload\ndef f(req):\n    return 'OK'\n"}
    )
    assert "u" in app.kernel.extensions["router"].broken_apps


def test_default_download_dir_is_under_data_dir(router_app):
    app = router_app(FILES)
    state = app.kernel.extensions["router"]
    assert state.download_dir == app.kernel.data_dir / "downloads"
    assert Client(app.kernel).get("/f/get", query={"name": "report.csv"}).status == 404
