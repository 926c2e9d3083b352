"""Runtime defaults of the shell (the settings that shape stored data are in storage.settings)."""

DEFAULT_DB = "neardup.db"
DEFAULT_K = 10
