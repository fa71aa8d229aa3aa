# SPDX-License-Identifier: ISC
"""Task modules that taskexec may run (see taskexec-tasks(7))."""
