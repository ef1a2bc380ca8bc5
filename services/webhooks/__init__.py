"""webhooks: signed HTTP deliveries of Kefu events to the endpoints downstream systems register."""
