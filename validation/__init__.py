"""Validation: reference PyTorch kernels, measured and compared with costmodel's predictions.

This package imports torch; costmodel itself never imports it.
"""
