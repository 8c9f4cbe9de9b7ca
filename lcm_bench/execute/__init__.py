"""Execution: writing what generation produces without making the device wait."""
