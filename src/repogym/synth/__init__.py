"""Task synthesis strategies: `procedural` (AST transforms, no LLM)."""
