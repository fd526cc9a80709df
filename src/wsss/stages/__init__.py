"""One module per pipeline stage (irn's ``step/*.py``): read inputs, call library code, write outputs."""
