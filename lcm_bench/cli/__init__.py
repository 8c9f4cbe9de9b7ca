"""The lcm-bench command line: one module per command group."""
