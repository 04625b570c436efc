"""RL environments: gsm8k (math with a Python tool) and swe (repogym's verified coding tasks)."""
