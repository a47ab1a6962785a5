"""A module with neither `application` nor `app`."""

value = 1
