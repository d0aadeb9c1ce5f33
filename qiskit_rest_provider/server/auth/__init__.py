"""Who is calling: users, instances, API tokens, logins and rate limits (both auth channels)."""
