"""aigw configuration: `config/<env>.yaml` files and the typed model that validates them."""

from config.settings import AigwConfig, ConfigError, load_config, with_context

__all__ = ["AigwConfig", "ConfigError", "load_config", "with_context"]
