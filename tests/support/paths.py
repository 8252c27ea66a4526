"""Where the tests find the checkout, the test data and the workplace's public data."""

from __future__ import annotations

from pathlib import Path

from pipeline.paths import DEMO_DATA_DIR, REPO_ROOT

TESTS_DIR = Path(__file__).resolve().parents[1]
TEST_DATA = TESTS_DIR / "data"
FIDELITY_DATA = TEST_DATA / "fidelity"
REAL_MEQSUM = REPO_ROOT.parent / "shared/data/meqsum/MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
"""The public MeQSum file (CC BY 4.0) beside the checkout; tests that need it skip when it is absent."""

__all__ = ["DEMO_DATA_DIR", "FIDELITY_DATA", "REAL_MEQSUM", "REPO_ROOT", "TESTS_DIR", "TEST_DATA"]
