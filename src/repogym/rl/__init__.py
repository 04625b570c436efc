"""The Gym side: tool-call parsers, token tracking, scored data and the Atropos client."""
