"""What the tests share: real servers to talk to, synthetic data, store builders and paths. Not tests."""
