"""The component framework: config, users, login, logging, signals, serving."""
