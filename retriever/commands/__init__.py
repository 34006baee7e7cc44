"""The command line's shared pieces (options, KEY=VALUE parsing, logging); the commands are in ``cli.py``."""
