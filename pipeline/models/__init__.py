"""The model registry: one ``servers/<name>.toml`` per model (registry), and the LoRA adapter folders a
registry entry may pin (adapters)."""
