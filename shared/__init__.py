"""Kefu's common library: the only code that services share."""
