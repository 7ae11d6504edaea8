"""Settings: defaults, file, environment, durations, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockguard.config.settings import SecretStr, Settings, SettingsError, describe, load_settings, parse_duration


def test_defaults_are_the_contracts() -> None:
    s = load_settings(env={})
    r = s.rules
    assert (r.cap_count, r.cap_window, r.purchase_lookback) == (1, 16 * 3_600_000, 7 * 86_400_000)
    assert (r.sends_per_unit, r.budget_window, r.retract_window, r.dedup_window) == (
        20,
        86_400_000,
        4 * 3_600_000,
        86_400_000,
    )
    assert r.unknown_stock_available is True
    assert s.surge.surge_window == 300_000 and s.surge.surge_ratio == 3.0 and s.surge.surge_min_units == 50
    assert s.topics.approved == "marketing.triggers.approved" and s.topics.dlq == "stockguard.dlq"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        'decision_partitions = 2\n[rules]\ncap_count = 3\ncap_window = "2h"\n'
        '[kafka.properties]\n"security.protocol" = "SSL"\n'
    )
    s = load_settings(f, env={"STOCKGUARD_RULES__CAP_COUNT": "5", "KAFKA_BOOTSTRAP_SERVERS": "k:1"})
    assert s.decision_partitions == 2 and s.rules.cap_count == 5 and s.rules.cap_window == 7_200_000
    assert s.kafka.bootstrap_servers == "k:1" and s.kafka.properties["security.protocol"] == "SSL"
    s2 = load_settings(f, env={}, overrides={"rules": {"cap_count": 9}})
    assert s2.rules.cap_count == 9


def test_librdkafka_properties_pass_through_from_env() -> None:
    s = load_settings(
        env={"STOCKGUARD_KAFKA_PROPERTY_SASL_MECHANISM": "PLAIN", "STOCKGUARD_KAFKA_PROPERTY_SASL_PASSWORD": "hunter2"}
    )
    conf = s.kafka.client_config()
    assert conf["sasl.mechanism"] == "PLAIN" and conf["sasl.password"] == "hunter2"


def test_secrets_never_show(tmp_path: Path) -> None:
    s = load_settings(
        env={
            "REDIS_URL": "redis://:topsecret@h:6379/0",
            "STOCKGUARD_KAFKA_PROPERTY_SASL_PASSWORD": "hunter2",
            "STOCKGUARD_KAFKA_PROPERTY_SASL_OAUTHBEARER_CONFIG": "clientSecret=oauth-s3cret",
        }
    )
    text = repr(s) + str(describe(s))
    assert "topsecret" not in text and "hunter2" not in text and "oauth-s3cret" not in text
    assert s.redis.url.get_secret_value() == "redis://:topsecret@h:6379/0"
    assert str(SecretStr("x")) == "**********"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("5m", 300_000),
        ("16h", 57_600_000),
        ("7d", 604_800_000),
        (1500, 1500),
        ("1.5s", 1500),
    ],
)
def test_durations(text: object, ms: int) -> None:
    assert parse_duration(text) == ms


def test_bad_settings_fail_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="rules.cap_count"):
        load_settings(env={"STOCKGUARD_RULES__CAP_COUNT": "many"})
    with pytest.raises(SettingsError, match="unknown setting rules.cap_cuont"):
        load_settings(env={"STOCKGUARD_RULES__CAP_CUONT": "1"})
    with pytest.raises(SettingsError, match="duration"):
        load_settings(env={"STOCKGUARD_RULES__CAP_WINDOW": "soon"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, env={})


def test_script_variables_with_our_prefix_are_not_settings() -> None:
    assert load_settings(env={"STOCKGUARD_CACHE": "/x", "STOCKGUARD_RUN_DIR": "/y"}).decision_partitions == 0


def test_cli_never_prints_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from stockguard.cli import main

    monkeypatch.setenv("REDIS_URL", "redis://:topsecret@h:6379/0")
    monkeypatch.setenv("STOCKGUARD_KAFKA_PROPERTY_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STOCKGUARD_CUSTOMER_HASH_KEY", "pepper")
    assert main(["config"]) == 0
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "sasl.password" in text and "customer_hash_key" in text
    for secret in ("topsecret", "hunter2", "pepper"):
        assert secret not in text


def test_topic_renames_map_contract_names_to_configured_ones() -> None:
    from stockguard.config.settings import topic_env

    s = load_settings(env=topic_env("x."))
    assert s.topics.triggers == "x.marketing.triggers" and s.topics.dlq == "x.stockguard.dlq"
    assert s.topics.from_contract()["shop.orders"] == "x.shop.orders"
    assert len(s.topics.from_contract()) == 14  # the 12 of CONTRACT.md and the deliverers 2


def test_automatic_decision_partitions_follow_the_workers_and_an_explicit_count_wins() -> None:
    auto = Settings()
    assert auto.decision_partitions == 0
    assert auto.with_workers(1).decision_partitions == 1
    assert auto.with_workers(6).decision_partitions == 6
    assert auto.with_workers(0).decision_partitions == 1
    pinned = load_settings(env={"STOCKGUARD_DECISION_PARTITIONS": "4"})
    assert pinned.with_workers(2).decision_partitions == 4
    with pytest.raises(SettingsError, match="decision_partitions"):
        load_settings(env={"STOCKGUARD_DECISION_PARTITIONS": "-1"})


def test_bytewax_run_flags_are_read_in_every_form(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockguard.live import _arg_after

    monkeypatch.setattr("sys.argv", ["bytewax.run", "m:f", "--workers-per-process=3", "-a", "h:1;h:2", "-i", "1"])
    assert _arg_after("-w", "--workers-per-process") == "3"
    assert _arg_after("-a", "--addresses") == "h:1;h:2"
    assert _arg_after("-i", "--process-id") == "1"
    monkeypatch.setattr("sys.argv", ["bytewax.run", "m:f", "--workers-per-process", "2"])
    assert _arg_after("-w", "--workers-per-process") == "2"
    assert _arg_after("-r") is None
