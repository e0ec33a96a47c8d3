"""Who may call the API: hashed API tokens (django-rest-knox), throttled failed
credentials (DRF throttling) and locked-out logins (django-axes)."""
