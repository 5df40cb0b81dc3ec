"""Settings machinery shared by every package: typed mapping -> frozen dataclass conversion,
the safe YAML loader and the user-error base class. Imports nothing else of this project."""
