"""The dashboard's files are served at / and /ui/… without a token, with a strict content
policy, and the API answers as before around them."""

import httpx

from tests.conftest import Server


def test_index_and_assets(web_server: Server) -> None:
    r = httpx.get(web_server.url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "ui/app.js" in r.text
    assert "://" not in r.text  # nothing is fetched from another origin
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    for name, kind in [("app.js", "javascript"), ("tasks.js", "javascript"), ("app.css", "css")]:
        asset = httpx.get(f"{web_server.url}/ui/{name}")
        assert asset.status_code == 200, name
        assert kind in asset.headers["content-type"], asset.headers
    # the SDK's doubled slashes reach the same files
    assert httpx.get(web_server.url + "//ui//app.js").status_code == 200


def test_api_unchanged_around_the_dashboard(web_server: Server) -> None:
    missing = httpx.get(web_server.url + "/ui/nothing.js")
    assert missing.status_code == 404
    r = httpx.get(web_server.url + "/settings")
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert httpx.post(web_server.url + "/").status_code == 405
    token = web_server.new_user()
    info = httpx.get(web_server.url + "/info", headers={"Authorization": token})
    assert info.status_code == 200 and "email" in info.json()
