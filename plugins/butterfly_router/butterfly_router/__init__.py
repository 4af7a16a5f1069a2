"""Butterfly router: handler discovery, parameter binding, JSON/raw/file protocols, static files, OpenAPI"""
