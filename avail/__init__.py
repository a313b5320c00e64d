"""Edges shared by the flow, the API and the ``avail`` command.

Settings, the rules loader, the Redis projection layout, and local servers for
development and tests.
"""
