"""What helps a class learn: lessons (model, files, built-ins), strategy advice, the domain distance, evidence from a
student's own runs, and pictures of encoder features."""
