"""Master key providers: parsing, rejection without echoing the key, refresh, hidden reprs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import SecretsError
from streams.settings import Settings
from streams.vault import (
    EnvMasterKeyProvider,
    FileMasterKeyProvider,
    Keyring,
    MasterKey,
    MasterKeyError,
    MasterKeyProvider,
    SecretsBackendMasterKeyProvider,
    StaticMasterKeyProvider,
    UnknownMasterKeyError,
    generate_master_key,
    parse_keyring,
    provider_from_settings,
)
from streams.vault.__main__ import main as vault_main

K1 = generate_master_key()
K2 = generate_master_key()


def test_generated_key_is_32_random_bytes() -> None:
    assert len(base64.b64decode(K1, validate=True)) == 32
    assert K1 != K2


def test_bare_key_is_the_default_id() -> None:
    ring = parse_keyring(K1)
    assert ring.current_id == "default"
    assert ring.current.material == base64.b64decode(K1)


def test_keyring_first_entry_is_current() -> None:
    ring = parse_keyring(f" k2:{K2} , k1:{K1} ")
    assert ring.current_id == "k2"
    assert set(ring.keys) == {"k1", "k2"}
    assert ring.keys["k1"].material == base64.b64decode(K1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no master key"),
        (base64.b64encode(b"s" * 16).decode(), "decodes to 16 bytes"),
        ("not*base64!", "not valid base64"),
        (f"k1:{K1},{K2}", "'id:base64'"),
        (f"k1:{K1},k1:{K2}", "appears twice"),
        (f"bad id:{K1}", "is invalid"),
    ],
)
def test_bad_keyrings_are_rejected_without_echoing_the_key(text: str, expected: str) -> None:
    with pytest.raises(MasterKeyError, match=expected) as info:
        parse_keyring(text, "STREAMS_MASTER_KEY")
    message = str(info.value)
    assert "STREAMS_MASTER_KEY" in message
    for secret in (K1, K2, "not*base64!", base64.b64encode(b"s" * 16).decode()):
        assert secret not in message
    assert isinstance(info.value, SecretsError)


def test_env_provider_reads_and_refreshes() -> None:
    environ = {"STREAMS_MASTER_KEY": f"k1:{K1}"}
    provider = EnvMasterKeyProvider(environ=environ)
    assert isinstance(provider, MasterKeyProvider)
    assert provider.current().key_id == "k1"
    environ["STREAMS_MASTER_KEY"] = f"k2:{K2},k1:{K1}"
    assert provider.current().key_id == "k1"  # nothing changes until refresh
    provider.refresh()
    assert provider.current().key_id == "k2"
    assert provider.get("k1").material == base64.b64decode(K1)
    assert provider.key_ids() == ("k2", "k1")


def test_env_provider_missing_variable() -> None:
    with pytest.raises(MasterKeyError, match="STREAMS_MASTER_KEY is not set"):
        EnvMasterKeyProvider(environ={})


def test_failed_refresh_keeps_the_old_keys() -> None:
    environ = {"STREAMS_MASTER_KEY": f"k1:{K1}"}
    provider = EnvMasterKeyProvider(environ=environ)
    environ["STREAMS_MASTER_KEY"] = "k2:short"
    with pytest.raises(MasterKeyError):
        provider.refresh()
    assert provider.current().key_id == "k1"


def test_unknown_key_id() -> None:
    provider = StaticMasterKeyProvider(f"k1:{K1}")
    with pytest.raises(UnknownMasterKeyError, match="'k0'"):
        provider.get("k0")


def test_file_provider_json_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    path.write_text(json.dumps({"current": "k2", "keys": {"k1": K1, "k2": K2}}))
    path.chmod(0o600)
    provider = FileMasterKeyProvider(path)
    assert provider.current().key_id == "k2"
    assert provider.key_ids() == ("k2", "k1")

    lines = tmp_path / "master.keys"
    lines.write_text(f"# rotated 2026-11-27\nk3:{K2}\n\nk1:{K1}\n")
    lines.chmod(0o600)
    assert FileMasterKeyProvider(lines).key_ids() == ("k3", "k1")


def test_file_provider_refresh_rotates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"k1:{K1}\n")
    provider = FileMasterKeyProvider(path)
    path.write_text(f"k2:{K2}\nk1:{K1}\n")
    provider.refresh()
    assert provider.current().key_id == "k2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"keys": ', "not valid JSON"),
        ('{"keys": ["x"]}', "must hold"),
        (json.dumps({"keys": {"k1": K1, "k2": K2}}), 'say which is "current"'),
        (json.dumps({"current": "k9", "keys": {"k1": K1}}), "'k9' is not among"),
        (json.dumps({"keys": {"k1": base64.b64encode(b"x" * 31).decode()}}), "decodes to 31 bytes"),
    ],
)
def test_file_provider_rejects_bad_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "master.json"
    path.write_text(content)
    with pytest.raises(MasterKeyError, match=expected) as info:
        FileMasterKeyProvider(path)
    assert K1 not in str(info.value)
    assert K2 not in str(info.value)


def test_file_provider_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="cannot be read"):
        FileMasterKeyProvider(tmp_path / "absent")


def test_file_provider_warns_on_loose_permissions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"k1:{K1}\n")
    path.chmod(0o644)
    FileMasterKeyProvider(path)
    assert "chmod 600" in caplog.text
    assert K1 not in caplog.text


def test_provider_from_settings(tmp_path: Path) -> None:
    provider = provider_from_settings(Settings(master_key=SecretStr(f"k1:{K1}")))
    assert provider.current().key_id == "k1"
    path = tmp_path / "master.keys"
    path.write_text(f"k2:{K2}\n")
    assert provider_from_settings(Settings(master_key_file=path)).current().key_id == "k2"
    with pytest.raises(MasterKeyError, match="not both"):
        provider_from_settings(Settings(master_key=SecretStr(K1), master_key_file=path))
    with pytest.raises(MasterKeyError, match="no master key"):
        provider_from_settings(Settings(master_key=None, master_key_file=None))


def test_secrets_backend_skeleton() -> None:
    class Unimplemented(SecretsBackendMasterKeyProvider):
        pass

    with pytest.raises(NotImplementedError, match="load_keyring"):
        Unimplemented().current()

    class FromDict(SecretsBackendMasterKeyProvider):
        def load_keyring(self) -> Keyring:
            return parse_keyring(f"v2:{K2},v1:{K1}", "fake backend")

    provider = FromDict()
    assert provider.current().key_id == "v2"
    assert isinstance(provider, MasterKeyProvider)


def test_master_key_rejects_wrong_length() -> None:
    with pytest.raises(MasterKeyError, match="must be 32"):
        MasterKey("k1", b"x" * 16)


def _secret_forms(key: str) -> list[str]:
    raw = base64.b64decode(key)
    return [key, key[:12], raw.hex()[:16], repr(raw)[2:20]]


def test_reprs_hide_material(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"k1:{K1}\n")
    providers = [
        EnvMasterKeyProvider(environ={"STREAMS_MASTER_KEY": f"k2:{K2},k1:{K1}"}),
        FileMasterKeyProvider(path),
        StaticMasterKeyProvider(SecretStr(f"k1:{K1}")),
    ]
    shown = [repr(p) for p in providers] + [str(p) for p in providers]
    for provider in providers:
        master = provider.current()
        shown += [repr(master), str(master), f"{master}", repr(parse_keyring(f"k1:{K1}"))]
    text = "\n".join(shown)
    for key in (K1, K2):
        for form in _secret_forms(key):
            assert form not in text
    assert "<hidden>" in text


def test_generate_key_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert vault_main(["generate-key", "--id", "k7"]) == 0
    out = capsys.readouterr().out.strip()
    assert parse_keyring(out).current_id == "k7"
