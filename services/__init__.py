"""Kefu's four services. None imports another: they share shared/ and events."""
