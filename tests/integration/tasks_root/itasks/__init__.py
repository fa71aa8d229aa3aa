# SPDX-License-Identifier: ISC
"""Tasks the integration tests run through taskexecd (package `itasks`)."""
