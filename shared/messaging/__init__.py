"""RabbitMQ topology, confirmed publishing and the consumer runner (aio-pika)."""
