"""An application module that imports a dependency that is not installed."""

import corral_testapp_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401

app = None
