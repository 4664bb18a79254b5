"""config.yaml: strict keys with line numbers, ${VAR} secrets, relative paths."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.config import load_config
from adherence.errors import ConfigError

from conftest import REPO


def write(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_repo_default_config_loads_as_is():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.database == REPO / "adherence.db"
    assert cfg.schedules == REPO / "schedules" and cfg.rules == REPO / "rules"
    assert cfg.timezone == "America/New_York" and cfg.evaluation_interval_ms == 15_000
    assert (cfg.server_host, cfg.server_port, cfg.server_public_url) == ("127.0.0.1", 8080, None)
    assert cfg.twilio_auth_token is None and cfg.api_token is None and cfg.webhook_basic is None


def test_unknown_and_mistyped_keys_name_key_and_line(tmp_path):
    p = write(tmp_path, "database: a.db\ntimezon: UTC\nserver:\n  host: 0.0.0.0\n  prot: 80\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msgs = err.value.messages
    assert any(m.startswith(f"{p}:2: unknown key 'timezon'") for m in msgs)
    assert any(m.startswith(f"{p}:5: unknown key 'server.prot'") for m in msgs)


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("timezone: Mars/Olympus\n", 1, "unknown time zone 'Mars/Olympus'"),
        ("evaluation:\n  interval: soon\n", 2, "expected a duration like 90s"),
        ("server:\n  port: 99999\n", 2, "expected a port number"),
        ("server:\n  public_url: rta.example.com\n", 2, "expected an http(s):// URL"),
        ("auth:\n  webhook_basic: {username: u}\n", 2, "both username and password are needed"),
        ("auth:\n  webhook_basic: {user: u, pass: p}\n", 2, "expected {username: ..., password: ...}"),
        ("database: [a]\n", 1, "expected a file or folder path"),
        ("a: [\n", 2, "invalid YAML"),
        ("- a\n", 1, "expected a mapping of settings"),
    ],
)
def test_bad_values_say_where_and_what(tmp_path, text, line, fragment):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert any(m.startswith(f"{p}:{line}:") and fragment in m for m in err.value.messages), err.value.messages


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    p = write(tmp_path, "auth:\n  twilio_auth_token: ${TW}\n  api_token: ${API}\n"
                        "  webhook_basic: {username: \"${U}\", password: \"${P}\"}\n")
    cfg = load_config(p)
    assert cfg.twilio_auth_token is None and cfg.api_token is None and cfg.webhook_basic is None
    monkeypatch.setenv("TW", "tok")
    monkeypatch.setenv("API", "api")
    monkeypatch.setenv("U", "flex")
    monkeypatch.setenv("P", "pw")
    cfg = load_config(p)
    assert (cfg.twilio_auth_token, cfg.api_token) == ("tok", "api")
    assert (cfg.webhook_basic.username, cfg.webhook_basic.password) == ("flex", "pw")
    assert "tok" not in repr(cfg) and "pw" not in repr(cfg)


def test_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "etc"
    sub.mkdir()
    p = write(sub, "database: data/x.db\nschedules: /abs/schedules\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(p)
    assert cfg.database == sub / "data" / "x.db"
    assert str(cfg.schedules) == "/abs/schedules"
    assert cfg.rules == sub / "rules"


def test_missing_config_file_is_a_clear_cli_error(tmp_path):
    result = CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code != 0
    assert "config file not found" in result.output and "Traceback" not in result.output


def test_check_reports_every_problem_and_fails(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "r.yaml").write_text("agents:\n  a: {worker_sid: 12}\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n  - name: x\n    when: {scheduled: Available}\n    for: soon\n")
    p = write(tmp_path, "timezone: UTC\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(p)])
    assert result.exit_code != 0
    assert "r.yaml:2" in result.output and "r.yaml:4" in result.output
    assert "Traceback" not in result.output


def test_check_passes_on_the_repo_example():
    result = CliRunner().invoke(cli, ["check", "--config", str(REPO / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert "schedules" in result.output and "rules" in result.output
