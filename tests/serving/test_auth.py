"""API keys: hashed configuration, scopes per route, reads closed by default (known answers)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from serving.auth import config_entry, key_digest, new_key, parse_keys
from serving.config import Settings
from tests.serving.conftest import AUTH, READ_KEY, WRITE_KEY, service_env


def test_config_entries_hold_only_the_digest_and_scopes():
    assert key_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    entry = config_entry("abc", ["write", "read"])
    assert entry == f"sha256:{key_digest('abc')}:read+write" and "abc:" not in entry
    (key,) = parse_keys(entry)
    assert key.scopes == {"read", "write"}
    fresh, line = new_key(["admin"])
    assert parse_keys(line)[0].digest == key_digest(fresh) and fresh not in line
    for bad in ("sha256:zz:read", f"sha256:{key_digest('a')}:root", f"sha256:{key_digest('a')}:"):
        with pytest.raises(ValueError, match="entry 1"):
            parse_keys(bad)
    assert parse_keys("plain-old-key")[0].scopes == {"read", "write", "admin"}  # older format, warned


def test_reads_need_a_key_by_default():
    assert Settings.from_env({}).read_requires_key
    assert not Settings.from_env({"RECSYS_READ_REQUIRES_KEY": "false"}).read_requires_key


def test_cli_prints_a_key_and_its_entry(capsys):
    from cli.main import main

    assert main(["keys", "new", "--scope", "read", "--scope", "write"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].split()[-1]
    assert out[1].split()[-1] == config_entry(key, ["read", "write"])


SCOPED = [
    ("/v1/products", {"customer_id": "b1"}, "read"),
    ("/v1/feedback", {"events": [{"customer_id": "b1", "event_type": "view", "item_id": "p_jam"}]}, "write"),
    ("/v1/customers/consent", {"customer_id": "b1", "consent_personalisation": True}, "write"),
    ("/v1/customers/erase", {"customer_id": "zz"}, "write"),
    ("/v1/admin/reload", {}, "admin"),
]


def test_each_route_needs_its_scope(asgi_app, monkeypatch, world, tmp_path):
    service_env(monkeypatch, world, tmp_path, RECSYS_READ_REQUIRES_KEY="true")
    allowed = {"read": {READ_KEY, WRITE_KEY}, "write": {WRITE_KEY}, "admin": set()}
    with TestClient(asgi_app) as c:
        for route, body, scope in SCOPED:
            assert c.post(route, json=body).status_code == 401, route
            for key in (READ_KEY, WRITE_KEY):
                r = c.post(route, json=body, headers={"Authorization": f"Bearer {key}"})
                if key in allowed[scope]:
                    assert r.status_code == 200, (route, key, r.text)
                else:
                    assert r.status_code == 403 and scope in r.json()["error"], (route, key, r.text)
        assert c.post("/v1/admin/reload", json={}, headers=AUTH).status_code == 200  # the admin key
        assert c.get("/v1/health/live").status_code == 200  # probes stay open
