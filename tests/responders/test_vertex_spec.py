"""The ``vertex`` responder's config: where, which credentials, and errors that name the line and
key but never quote a credential."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.config import ConfigError
from proxy.responders.vertex_spec import VertexSpec
from tests.conftest import config_from, one_responder_yaml

SA = {
    "type": "service_account",
    "project_id": "p",
    "private_key_id": "k1",
    "private_key": (
        "-----BEGIN PRIVATE KEY-----\n"
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n"
        "-----END PRIVATE KEY-----\n"
    ),
    "client_email": "a@p.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def yaml_with(vertex: str) -> str:
    return one_responder_yaml("vx", "vertex", vertex)


def spec_of(tmp_path: Path, vertex: str, env: dict[str, str] | None = None) -> VertexSpec:
    spec = config_from(tmp_path, yaml_with(vertex), env).responders["vx"].spec
    assert isinstance(spec, VertexSpec)
    return spec


def test_a_service_account_file_project_and_region(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(SA))
    spec = spec_of(tmp_path, f"project: p, location: europe-west4, credentials_file: '{path}'")
    assert spec.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert json.loads(spec.service_account)["client_email"] == SA["client_email"]
    assert spec.project_names == ("p",)
    assert not spec.express


def test_the_json_from_a_variable_adc_and_express_keys(tmp_path: Path) -> None:
    env = {"SA_JSON": json.dumps(SA), "VX1": "vx-key-1", "VX2": "vx-key-2"}
    inline = spec_of(tmp_path, 'project: p, credentials: "${SA_JSON}"', env)
    assert inline.service_account
    assert inline.base_url == "https://aiplatform.googleapis.com"  # global
    adc = spec_of(tmp_path, "project: p, location: us, credentials: adc")
    assert adc.adc
    assert adc.base_url == "https://aiplatform.us.rep.googleapis.com"
    express = spec_of(tmp_path, 'api_keys: ["${VX1}", "${VX2}"]', env)
    assert express.express
    assert express.projects == (0, 1)


@pytest.mark.parametrize(
    ("vertex", "expected"),
    [
        ("project: p", "no credentials"),
        ("credentials: adc", "needs the 'project'"),
        ('project: p, credentials: "${SA_JSON}", api_keys: [k]', "give one of"),
        ("project: p, credentials: not-json-at-all", "not shown"),
        ("project: p, credentials_file: /no/such/file", "cannot be read"),
        ("project: p, credentials: adc, api_version: v2", "api_version"),
    ],
)
def test_errors_name_the_key_and_never_the_credential(
    tmp_path: Path, vertex: str, expected: str
) -> None:
    env = {"SA_JSON": json.dumps(SA)}
    with pytest.raises(ConfigError) as info:
        config_from(tmp_path, yaml_with(vertex), env)
    text = str(info.value)
    assert expected in text
    assert "proxy.yaml:4:" in text
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw" not in text
    assert "not-json-at-all" not in text
