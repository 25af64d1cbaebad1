"""Kept for `from segcore.advice import advise` (README); the code lives in segcore/teaching/advice.py."""

from .teaching.advice import Advice, advise

__all__ = ["Advice", "advise"]
