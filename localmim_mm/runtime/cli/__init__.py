"""What the command-line tools check and change in a config: ``--cfg-options`` keys that exist,
unknown type names with the close registered ones, ``--epochs`` with the schedule fitted, the
split ``tools/test.py`` evaluates, and errors shown as one clear message."""
from .arguments import add_shared_arguments, parse_tool_args
from .override_keys import check_override_keys
from .registry_hints import registry_hints
from .schedule import fit_schedule_to_run, set_epochs
from .test_split import merge_test_options
from .tool_errors import check_config_path, run_tool

__all__ = ['add_shared_arguments', 'check_config_path', 'check_override_keys',
           'fit_schedule_to_run', 'merge_test_options', 'parse_tool_args', 'registry_hints',
           'run_tool', 'set_epochs']
