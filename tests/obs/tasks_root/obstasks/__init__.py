"""Jobs of the tests/obs suite."""
