"""Code that the API and the workers both import: settings, contracts, providers, store."""
