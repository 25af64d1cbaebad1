"""Kept for `from segcore.domain import domain_distance` (README); the code lives in segcore/teaching/domain.py."""

from .teaching.domain import DomainDistance, domain_distance, reference_points

__all__ = ["DomainDistance", "domain_distance", "reference_points"]
