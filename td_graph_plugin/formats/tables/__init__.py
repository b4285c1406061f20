"""The mapping tables (data): lookups, ECS and OCSF, one entry per source."""
