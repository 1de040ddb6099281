"""Integrations of memcache_rs with inference engines and caching layers (SGLang, LMCache)."""
