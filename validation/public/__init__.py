"""Readers and evaluation for public GPU measurements (NVIDIA aiconfigurator's tables, Apache-2.0)."""
