"""Shared pytest configuration: the fixtures live in plugins under tests/fixtures/."""

pytest_plugins = [
    "fixtures.aws",
    "fixtures.sandbox",
    "fixtures.report",
]
