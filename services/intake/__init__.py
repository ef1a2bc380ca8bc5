"""intake: accepts issues, feedback and resolutions from channel systems (collect the need)."""
