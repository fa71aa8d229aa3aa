# SPDX-License-Identifier: ISC
"""A task module whose only public name is one it imported: `remove` must
never be an entry point (issue 8 item 9)."""
from os import remove  # noqa: F401 -- the name under test
