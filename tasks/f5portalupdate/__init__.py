# SPDX-License-Identifier: ISC
"""Seed task: refresh a customer's F5 BIG-IP inventory in the portal database.

Entry point: ``tasks.f5portalupdate.main:run``.
"""
