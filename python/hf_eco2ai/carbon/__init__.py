"""The carbon layer: intensity with provenance, impact, comparisons, budgets, recommendations."""
