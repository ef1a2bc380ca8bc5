"""Operations tooling: database bootstrap, migrations, API keys, the dev launcher, DLQ replay."""
