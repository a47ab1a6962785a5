# Environment for the app set from the config file.
raw_env = ["COMPAT_ONE=1", "COMPAT_TWO=two words", "COMPAT_EMPTY="]
workers = 1
