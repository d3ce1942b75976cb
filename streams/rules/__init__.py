"""Alert rules from YAML, evaluated on closed windows (see ``default.yaml`` for the format)."""

from hoststream.streams.rules.engine import RuleEngine, dedup_key
from hoststream.streams.rules.loader import load_rules, parse_rules
from hoststream.streams.rules.model import Rule, RuleSet, Selector

__all__ = ["Rule", "RuleEngine", "RuleSet", "Selector", "dedup_key", "load_rules", "parse_rules"]
