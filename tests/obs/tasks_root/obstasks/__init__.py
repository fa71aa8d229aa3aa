# SPDX-License-Identifier: ISC
"""Jobs of the tests/obs suite."""
