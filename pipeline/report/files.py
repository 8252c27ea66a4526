"""Kept for imports written before the helpers moved to ``pipeline.files`` (one copy, there)."""

from pipeline.files import DIR_MODE, FILE_MODE, private_dir, write_private

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "write_private"]
