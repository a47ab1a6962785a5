"""An app module whose import fails, as a typo or a missing setting would make it fail."""

raise RuntimeError("fails_import: simulated failure while importing the app")
