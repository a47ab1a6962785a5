"""`corral ctl`: the control socket's wire format, its client, and the command-line tool."""
