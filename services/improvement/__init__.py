"""improvement: a follow-up for every customer who is not satisfied (improve the service)."""
