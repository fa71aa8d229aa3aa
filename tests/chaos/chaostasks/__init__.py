# SPDX-License-Identifier: ISC
"""Tasks the chaos and scale runs push through taskexecd (package `chaostasks`)."""
