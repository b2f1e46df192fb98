"""Plain PyTorch reference kernels, written to be read: shapes in comments, no framework magic."""
