-- The schema registry keeps its schemas in PostgreSQL, so ids survive restarts.
CREATE DATABASE apicurio_registry;
