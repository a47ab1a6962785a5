"""An application module that fails while it is imported, two frames deep in its own code."""


def _settings_value() -> float:
    return 1 / 0


TIMEOUT = _settings_value()


def app(environ: object, start_response: object) -> list[bytes]:
    return [b"never"]
