"""feedback: turns ratings and satisfaction stated in text into one verdict per issue."""
