"""Reporting finished runs side by side: summary statistics, curves, seed spread, the comparison sheet, worst images,
the HTML report, the teacher's leaderboard and the take-home bundle."""
