"""Alert rules from YAML, evaluated on closed windows (see ``default.yaml`` for the format)."""

from streams.rules.engine import RuleEngine, dedup_key
from streams.rules.loader import load_rules, parse_rules
from streams.rules.model import Rule, RuleSet, Selector

__all__ = ["Rule", "RuleEngine", "RuleSet", "Selector", "dedup_key", "load_rules", "parse_rules"]
