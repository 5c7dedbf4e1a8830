"""A run carried out of the server: its metrics as CSV."""
