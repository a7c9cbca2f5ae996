"""Keys for a gemini responder: several from one variable, from a file, and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError
from proxy.responders.gemini_spec import GeminiSpec
from tests.conftest import config_from, one_responder_yaml


def yaml_with(keys: str) -> str:
    return one_responder_yaml("google", "gemini", keys)


def spec_of(tmp_path: Path, keys: str, env: dict[str, str]) -> GeminiSpec:
    spec = config_from(tmp_path, yaml_with(keys), env).responders["google"].spec
    assert isinstance(spec, GeminiSpec)
    return spec


@pytest.mark.parametrize(
    "keys",
    ['api_keys: "${GEMINI_API_KEYS}"', 'api_keys: ["${GEMINI_API_KEYS}"]'],
)
def test_a_variable_of_several_keys_is_a_list(tmp_path: Path, keys: str) -> None:
    env = {"GEMINI_API_KEYS": "key-one, key-two\nkey-three  key-four,"}
    spec = spec_of(tmp_path, keys, env)
    assert spec.api_keys == ("key-one", "key-two", "key-three", "key-four")
    assert spec.projects == (0, 1, 2, 3)  # each its own project, as a key written alone


def test_the_default_configs_form_with_one_variable_or_the_other(tmp_path: Path) -> None:
    keys = 'api_keys: ["${GEMINI_API_KEYS:-}", "${GEMINI_API_KEY:-}"]'
    assert spec_of(tmp_path, keys, {"GEMINI_API_KEYS": "a-key,b-key"}).api_keys == (
        "a-key",
        "b-key",
    )
    assert spec_of(tmp_path, keys, {"GEMINI_API_KEY": "c-key"}).api_keys == ("c-key",)


def test_a_keys_file_with_comments_is_read_again_on_each_load(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("# the team's pool\nfile-key-1\n\nfile-key-2  # the spare one\n")
    keys = f'api_keys: ["${{ONE}}"], api_keys_file: "{path}"'
    assert spec_of(tmp_path, keys, {"ONE": "env-key"}).api_keys == (
        "env-key",
        "file-key-1",
        "file-key-2",
    )
    path.write_text("file-key-3\n")  # a reload reads the file again
    assert spec_of(tmp_path, keys, {"ONE": "env-key"}).api_keys == ("env-key", "file-key-3")


def test_an_unreadable_keys_file_is_an_error_naming_the_key_not_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_from(tmp_path, yaml_with('api_keys_file: "/no/such/secret-keys"'), {})
    assert "api_keys_file" in str(info.value)
    assert "/no/such/secret-keys" not in str(info.value)
