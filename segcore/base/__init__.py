"""Plumbing every other package stands on: typed errors, where things live on disk, atomic files, one safe-zip reader,
drawing on arrays, checks of untrusted values. No torch, and no import of any other segcore package."""
