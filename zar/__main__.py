from zar.cli import entry

entry()
