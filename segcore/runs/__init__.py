"""Run folders: their file names (files.py), reading one (run.py, records.py, progress.py), whether it still lives
(liveness.py), the only writers of its files (writer.py, resume.py), and names (naming.py)."""
