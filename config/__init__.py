"""Settings: one frozen object built from defaults, a TOML file and the environment."""

from stockguard.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
